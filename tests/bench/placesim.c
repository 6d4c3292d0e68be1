/* placesim.c: the placement simulator: rendezvous hashing (the old placement) against bounded-load
 * placement (shared/place.c), over N = 3…1000 nodes, S up to 4096 shards and RF 1–3.
 *
 *   miroir-placesim [--quick]
 *
 * For each (N, S, RF), over many index names: the fullest node's replicas of an index against the
 * mean S*R/N (median and worst), and the replicas a join (N+1) and a leave (N-1, the last node)
 * move, summed over the names, against what plain HRW moves (the "HRW optimum": HRW moves exactly
 * the replicas whose top-R set changed). Then a cluster of many indexes of random sizes: the
 * fullest node's load, weighted by shard size, against the mean. Prints Markdown; deterministic. */
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "alloc.h"
#include "hrw.h"
#include "place.h"

#define MAX_N 1001

typedef struct cluster {
    char ids[MAX_N][16];
    mr_place_node nodes[MAX_N];
    const char *id_ptrs[MAX_N];
} cluster;

static void cluster_init(cluster *c)
{
    for (int k = 0; k < MAX_N; k++) {
        snprintf(c->ids[k], sizeof c->ids[k], "n%d", k + 1);
        c->nodes[k] = (mr_place_node){c->ids[k], NULL};
        c->id_ptrs[k] = c->ids[k];
    }
}

/* out[s*rf + r]: HRW's top R of n nodes. */
static void hrw(const cluster *c, const char *storage, uint32_t shards, uint32_t rf, size_t n, int32_t *out)
{
    size_t top[3];
    for (uint32_t s = 0; s < shards; s++) {
        size_t got = mr_hrw_place(storage, s, c->id_ptrs, n, rf, top);
        for (uint32_t r = 0; r < rf; r++)
            out[(size_t)s * rf + r] = r < got ? (int32_t)top[r] : -1;
    }
}

static void balanced(const cluster *c, const char *storage, uint32_t shards, uint32_t rf, size_t n,
                     const int32_t *prev, int32_t *out)
{
    mr_place_index ix = {.storage = storage, .shards = shards, .rf = rf, .weight = 1, .prev = prev, .out = out};
    mr_place_opts opts = {.slack = 0.05};
    mr_place(c->nodes, n, &ix, 1, &opts);
}

/* The fullest node's count over the mean. */
static double peak_ratio(const int32_t *p, size_t slots, size_t n, uint32_t *count)
{
    memset(count, 0, n * sizeof *count);
    size_t placed = 0;
    for (size_t k = 0; k < slots; k++)
        if (p[k] >= 0) {
            count[p[k]]++;
            placed++;
        }
    uint32_t max = 0;
    for (size_t k = 0; k < n; k++)
        max = count[k] > max ? count[k] : max;
    return placed ? max / ((double)placed / (double)n) : 0;
}

/* Replicas of `after` that `before` did not have on the same node (by node id: positions agree,
 * since only the last node joins or leaves). */
static size_t moved(const int32_t *before, const int32_t *after, uint32_t shards, uint32_t rf)
{
    size_t m = 0;
    for (uint32_t s = 0; s < shards; s++)
        for (uint32_t r = 0; r < rf; r++) {
            int32_t node = after[(size_t)s * rf + r];
            if (node < 0)
                continue;
            int had = 0;
            for (uint32_t q = 0; q < rf; q++)
                had |= before[(size_t)s * rf + q] == node;
            m += !had;
        }
    return m;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* The leave drops the last node: positions past it become -1. */
static void without_last(const int32_t *p, size_t slots, size_t n, int32_t *out)
{
    for (size_t k = 0; k < slots; k++)
        out[k] = p[k] == (int32_t)(n - 1) ? -1 : p[k];
}

static void one_size(const cluster *c, size_t n, uint32_t shards, uint32_t rf, int trials, int *bound_ok)
{
    size_t slots = (size_t)shards * rf;
    int32_t *old = mr_calloc(slots, sizeof *old), *old_join = mr_calloc(slots, sizeof *old),
            *old_leave = mr_calloc(slots, sizeof *old), *neu = mr_calloc(slots, sizeof *neu),
            *neu_join = mr_calloc(slots, sizeof *neu), *neu_leave = mr_calloc(slots, sizeof *neu),
            *gone = mr_calloc(slots, sizeof *gone);
    uint32_t *count = mr_calloc(n + 1, sizeof *count);
    double *old_ratio = mr_calloc((size_t)trials, sizeof *old_ratio), new_worst = 0;
    size_t old_jm = 0, new_jm = 0, old_lm = 0, new_lm = 0, all_on_one = 0;
    uint32_t r_eff = rf < n ? rf : (uint32_t)n;
    uint32_t cap = mr_place_cap(shards, rf, n);
    for (int t = 0; t < trials; t++) {
        char storage[40];
        snprintf(storage, sizeof storage, "index-%d-%u-%u", t, shards, rf);
        hrw(c, storage, shards, rf, n, old);
        old_ratio[t] = peak_ratio(old, slots, n, count);
        int one_holds_all = 0;
        for (size_t k = 0; k < n; k++)
            one_holds_all |= shards > 1 && count[k] == shards && r_eff > 1 && r_eff < n;
        all_on_one += one_holds_all;
        balanced(c, storage, shards, rf, n, NULL, neu);
        double r = peak_ratio(neu, slots, n, count);
        new_worst = r > new_worst ? r : new_worst;
        for (size_t k = 0; k < n; k++)
            *bound_ok &= count[k] <= cap;
        hrw(c, storage, shards, rf, n + 1, old_join);
        old_jm += moved(old, old_join, shards, rf);
        balanced(c, storage, shards, rf, n + 1, neu, neu_join);
        new_jm += moved(neu, neu_join, shards, rf);
        peak_ratio(neu_join, slots, n + 1, count);
        for (size_t k = 0; k <= n; k++)
            *bound_ok &= count[k] <= mr_place_cap(shards, rf, n + 1);
        if (n > rf) {
            hrw(c, storage, shards, rf, n - 1, old_leave);
            old_lm += moved(old, old_leave, shards, rf);
            without_last(neu, slots, n, gone);
            balanced(c, storage, shards, rf, n - 1, gone, neu_leave);
            new_lm += moved(neu, neu_leave, shards, rf);
        }
    }
    qsort(old_ratio, (size_t)trials, sizeof *old_ratio, cmp_double);
    double ideal = (double)cap / ((double)shards * r_eff / (double)n);
    /* HRW moves a replica on a join exactly when the new node enters the shard's top R, which it
     * does with probability R/(N+1); on a leave, every replica the leaving node held */
    double join_expected = (double)trials * shards * r_eff / (double)(n + 1);
    double leave_expected = (double)trials * shards * r_eff / (double)n;
    char leave[96] = "—";
    if (n > rf)
        snprintf(leave, sizeof leave, "%zu / %zu = %.2f× (expected %.0f)", new_lm, old_lm,
                 old_lm ? (double)new_lm / old_lm : 0, leave_expected);
    printf("| %zu | %u | %u | %d | %.2f / %.2f | %.1f%% | %.2f (bound %.2f) | %zu / %zu = %.2f× (expected %.0f) | %s |\n",
           n, shards, rf, trials, old_ratio[trials / 2], old_ratio[trials - 1], 100.0 * all_on_one / trials, new_worst,
           ideal, new_jm, old_jm, old_jm ? (double)new_jm / old_jm : 0, join_expected, leave);
    fflush(stdout);
    free(old);
    free(old_join);
    free(old_leave);
    free(neu);
    free(neu_join);
    free(neu_leave);
    free(gone);
    free(count);
    free(old_ratio);
}

/* A small deterministic generator, so the table is the same on every run. */
static uint64_t next_random(uint64_t *state)
{
    *state ^= *state << 13;
    *state ^= *state >> 7;
    *state ^= *state << 17;
    return *state;
}

/* Many indexes of random sizes, until the mean node holds `per_node` replicas: an index's size is
 * log-normal (median 1 GiB, a factor e either way for one standard deviation), and it has as many
 * shards as 256 MiB pieces, rounded up to a power of two (1…64), as an operator sizing shards to
 * the nodes' memory would choose; RF is 1, 2 or 3. A shard weighs its index's size over S. */
static void many_indexes(const cluster *c, size_t n, size_t per_node)
{
    uint64_t rng = 0x9e3779b97f4a7c15ULL ^ n;
    size_t cap_ix = 64, count = 0, replicas = 0;
    mr_place_index *ixs = mr_calloc(cap_ix, sizeof *ixs);
    char (*names)[32] = mr_calloc(cap_ix, sizeof *names);
    while (replicas < per_node * n) {
        if (count == cap_ix) {
            cap_ix *= 2;
            ixs = mr_realloc(ixs, cap_ix * sizeof *ixs);
            names = mr_realloc(names, cap_ix * sizeof *names);
        }
        mr_place_index *ix = &ixs[count];
        snprintf(names[count], sizeof names[count], "app-%zu", count);
        /* Box-Muller on two uniform draws */
        double u1 = ((double)(next_random(&rng) >> 11) + 1) / 9007199254740993.0;
        double u2 = (double)(next_random(&rng) >> 11) / 9007199254740992.0;
        double z = sqrt(-2 * log(u1)) * cos(2 * M_PI * u2);
        uint64_t mib = (uint64_t)(1024 * exp(z)) + 1;
        uint32_t shards = 1, rf = 1 + (uint32_t)(next_random(&rng) % 3);
        while (shards < 64 && (uint64_t)shards * 256 < mib)
            shards *= 2;
        *ix = (mr_place_index){.shards = shards, .rf = rf, .weight = mib / shards + 1};
        ix->out = mr_calloc((size_t)shards * rf, sizeof *ix->out);
        count++;
        replicas += (size_t)shards * (rf < n ? rf : n);
    }
    for (size_t i = 0; i < count; i++)
        ixs[i].storage = names[i];
    /* old: HRW, index by index */
    double *load = mr_calloc(n + 1, sizeof *load);
    int32_t **first = mr_calloc(count, sizeof *first);
    for (size_t i = 0; i < count; i++) {
        hrw(c, ixs[i].storage, ixs[i].shards, ixs[i].rf, n, ixs[i].out);
        for (size_t k = 0; k < (size_t)ixs[i].shards * ixs[i].rf; k++)
            if (ixs[i].out[k] >= 0)
                load[ixs[i].out[k]] += (double)ixs[i].weight;
    }
    double total = 0, max = 0;
    for (size_t k = 0; k < n; k++) {
        total += load[k];
        max = load[k] > max ? load[k] : max;
    }
    double old_ratio = max / (total / n);
    /* no placement can do better than the heaviest shard alone on a node */
    double heaviest = 0;
    for (size_t i = 0; i < count; i++)
        heaviest = (double)ixs[i].weight > heaviest ? (double)ixs[i].weight : heaviest;
    /* new: the indexes are created one after the other, each placed on the loads of those before
     * it; as the rebalancer does, whenever the fullest node passes 1.10× the mean while the mean
     * is 10 replicas or more, every index is levelled (to 1.05×) */
    mr_place_opts opts = {.slack = 0.05}, creating = {.slack = -1};
    for (size_t i = 0; i < count; i++)
        first[i] = mr_calloc((size_t)ixs[i].shards * ixs[i].rf, sizeof **first);
    size_t creation_moves = 0;
    memset(load, 0, (n + 1) * sizeof *load);
    double placed_total = 0;
    size_t placed_replicas = 0;
    for (size_t i = 0; i < count; i++) {
        for (size_t j = 0; j < i; j++)
            ixs[j].fixed = 1, ixs[j].prev = ixs[j].out;
        ixs[i].fixed = 0, ixs[i].prev = NULL;
        mr_place(c->nodes, n, ixs, i + 1, &creating);
        max = 0;
        for (size_t k = 0; k < (size_t)ixs[i].shards * ixs[i].rf; k++)
            if (ixs[i].out[k] >= 0) {
                load[ixs[i].out[k]] += (double)ixs[i].weight;
                placed_total += (double)ixs[i].weight;
            }
        for (size_t k = 0; k < n; k++)
            max = load[k] > max ? load[k] : max;
        placed_replicas += (size_t)ixs[i].shards * (ixs[i].rf < n ? ixs[i].rf : n);
        if (max <= 1.10 * placed_total / n || placed_replicas < 10 * n)
            continue;
        for (size_t j = 0; j <= i; j++) {
            memcpy(first[j], ixs[j].out, (size_t)ixs[j].shards * ixs[j].rf * sizeof **first);
            ixs[j].fixed = 0, ixs[j].prev = first[j];
        }
        mr_place(c->nodes, n, ixs, i + 1, &opts);
        memset(load, 0, (n + 1) * sizeof *load);
        for (size_t j = 0; j <= i; j++) {
            creation_moves += moved(first[j], ixs[j].out, ixs[j].shards, ixs[j].rf);
            for (size_t k = 0; k < (size_t)ixs[j].shards * ixs[j].rf; k++)
                if (ixs[j].out[k] >= 0)
                    load[ixs[j].out[k]] += (double)ixs[j].weight;
        }
    }
    max = 0;
    for (size_t k = 0; k < n; k++)
        max = load[k] > max ? load[k] : max;
    double created_ratio = max / (total / n);
    /* a join (node n+1), then from there a leave (node 1, the first), each from the placement
     * before it, levelled */
    size_t join_moves = 0, join_hrw = 0, join_levelled = 0, join_floor = 0, leave_moves = 0, leave_hrw = 0,
           leave_levelled = 0, leave_floor = 0;
    double join_max = 0, join_min = 0, leave_max = 0;
    int32_t *tmp_old = NULL, *tmp_new = NULL;
    for (int step = 0; step < 2; step++) {
        const mr_place_node *nodes = step == 0 ? c->nodes : c->nodes + 1;
        size_t nn = step == 0 ? n + 1 : n;
        for (size_t i = 0; i < count; i++) {
            size_t slots = (size_t)ixs[i].shards * ixs[i].rf;
            /* positions shift down by one when node 1 leaves */
            for (size_t k = 0; k < slots; k++)
                first[i][k] = step == 0 ? ixs[i].out[k] : ixs[i].out[k] <= 0 ? -1 : ixs[i].out[k] - 1;
            ixs[i].fixed = 0;
            ixs[i].prev = first[i];
        }
        size_t levelled = mr_place(nodes, nn, ixs, count, &opts);
        memset(load, 0, (n + 1) * sizeof *load);
        size_t moves = 0, hrw_moves = 0;
        for (size_t i = 0; i < count; i++) {
            size_t slots = (size_t)ixs[i].shards * ixs[i].rf;
            moves += moved(first[i], ixs[i].out, ixs[i].shards, ixs[i].rf);
            for (size_t k = 0; k < slots; k++)
                if (ixs[i].out[k] >= 0)
                    load[ixs[i].out[k]] += (double)ixs[i].weight;
            tmp_old = mr_realloc(tmp_old, slots * sizeof *tmp_old);
            tmp_new = mr_realloc(tmp_new, slots * sizeof *tmp_new);
            if (step == 0) {
                hrw(c, ixs[i].storage, ixs[i].shards, ixs[i].rf, n, tmp_old);
                hrw(c, ixs[i].storage, ixs[i].shards, ixs[i].rf, n + 1, tmp_new);
            } else { /* HRW's leave of node 1 from n+1 nodes, by ids: compare in n+1 positions */
                hrw(c, ixs[i].storage, ixs[i].shards, ixs[i].rf, n + 1, tmp_old);
                size_t top[3];
                for (uint32_t sh = 0; sh < ixs[i].shards; sh++) {
                    size_t got = mr_hrw_place(ixs[i].storage, sh, c->id_ptrs + 1, n, ixs[i].rf, top);
                    for (uint32_t r = 0; r < ixs[i].rf; r++)
                        tmp_new[(size_t)sh * ixs[i].rf + r] = r < got ? (int32_t)top[r] + 1 : -1;
                }
            }
            hrw_moves += moved(tmp_old, tmp_new, ixs[i].shards, ixs[i].rf);
        }
        size_t floor_moves = 0; /* a join: what the new node holds; a leave: what the leaving one held */
        for (size_t i = 0; i < count; i++)
            for (size_t k = 0; k < (size_t)ixs[i].shards * ixs[i].rf; k++)
                floor_moves += step == 0 ? ixs[i].out[k] == (int32_t)n : first[i][k] < 0;
        double hi = 0, lo = -1;
        for (size_t k = 0; k < nn; k++) {
            hi = load[k] > hi ? load[k] : hi;
            lo = lo < 0 || load[k] < lo ? load[k] : lo;
        }
        if (step == 0) {
            join_moves = moves, join_hrw = hrw_moves, join_levelled = levelled, join_floor = floor_moves;
            join_max = hi / (total / nn), join_min = lo / (total / nn);
        } else {
            leave_moves = moves, leave_hrw = hrw_moves, leave_levelled = levelled, leave_floor = floor_moves;
            leave_max = hi / (total / nn);
        }
    }
    printf("| %zu | %zu | %.1f | %.2f | %.2f | %.2f (%zu moved) | %.2f / %.2f | %zu (new node holds %zu; HRW %zu) | "
           "%.2f | %zu (leaving node held %zu; HRW %zu) |\n",
           n, count, (double)replicas / n, heaviest / (total / (n + 1)), old_ratio, created_ratio, creation_moves,
           join_max, join_min,
           join_moves, join_floor, join_hrw, leave_max, leave_moves, leave_floor, leave_hrw);
    (void)join_levelled;
    (void)leave_levelled;
    fflush(stdout);
    free(tmp_old);
    free(tmp_new);
    for (size_t i = 0; i < count; i++) {
        free(ixs[i].out);
        free(first[i]);
    }
    free(first);
    free(load);
    free(names);
    free(ixs);
}

int main(int argc, char **argv)
{
    int quick = argc > 1 && strcmp(argv[1], "--quick") == 0;
    static cluster c;
    cluster_init(&c);
    static const size_t ns[] = {3, 4, 5, 10, 30, 100, 1000};
    static const uint32_t ss[] = {1, 4, 8, 16, 64, 256, 4096};
    int bound_ok = 1;
    printf("### One index: the fullest node, and moves on a join and a leave\n\n");
    printf("| N | S | RF | names | HRW max/mean: median / worst | HRW: one node holds every shard | "
           "bounded max/mean, worst | join: replicas moved, bounded / HRW (HRW's expectation) | leave: the same |\n");
    printf("|---|---|---|---|---|---|---|---|---|\n");
    for (size_t a = 0; a < sizeof ns / sizeof ns[0]; a++)
        for (size_t b = 0; b < sizeof ss / sizeof ss[0]; b++)
            for (uint32_t rf = 1; rf <= 3; rf++) {
                size_t n = ns[a];
                uint32_t s = ss[b];
                if (quick && (n > 100 || s > 256))
                    continue;
                if ((size_t)s * rf < n / 4 && s < 64)
                    continue; /* an index far smaller than the cluster: one replica per node at most */
                size_t work = (size_t)s * n;
                int trials = work > 1000000 ? 3 : work > 100000 ? 10 : work > 10000 ? 50 : 200;
                one_size(&c, n, s, rf, trials, &bound_ok);
            }
    printf("\nEvery node held at most ceil(S*R/N) replicas of an index in every placement above: %s.\n\n",
           bound_ok ? "yes" : "NO");
    printf("### Many indexes of random sizes: the fullest node's load, weighted by shard size\n\n");
    printf("| N | indexes | replicas per node | heaviest shard / mean | HRW max/mean | bounded max/mean, created one "
           "by one, levelled past 1.10× | after a join: max / min over mean | join: replicas moved | after a leave: max/mean | "
           "leave: replicas moved |\n");
    printf("|---|---|---|---|---|---|---|---|---|---|\n");
    static const size_t cluster_ns[] = {3, 10, 30, 100, 1000};
    for (size_t a = 0; a < sizeof cluster_ns / sizeof cluster_ns[0]; a++) {
        if (quick && cluster_ns[a] > 100)
            continue;
        many_indexes(&c, cluster_ns[a], 20);
    }
    return bound_ok ? 0 : 1;
}
