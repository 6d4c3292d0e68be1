/* place.c: balanced placement with bounded loads (see place.h): keep, fill, then level. */
#include "place.h"

#include <stdlib.h>
#include <string.h>

#include "alloc.h"
#include "hrw.h"

uint32_t mr_place_cap(uint32_t shards, uint32_t rf, size_t n)
{
    if (n == 0)
        return 0;
    uint64_t copies = (uint64_t)shards * (rf < n ? rf : n);
    return (uint32_t)((copies + n - 1) / n);
}

/* zone[i] is the position of the first node of node i's zone, or i for a node without one, so
 * equal numbers mean one failure domain. Returns how many domains there are. */
static size_t zone_ids(const mr_place_node *nodes, size_t n, size_t *zone)
{
    size_t domains = 0;
    for (size_t i = 0; i < n; i++) {
        zone[i] = i;
        if (nodes[i].zone && *nodes[i].zone)
            for (size_t j = 0; j < i; j++)
                if (nodes[j].zone && strcmp(nodes[j].zone, nodes[i].zone) == 0) {
                    zone[i] = zone[j];
                    break;
                }
        domains += zone[i] == i;
    }
    return domains;
}

uint32_t mr_place_zone_cap(const mr_place_node *nodes, size_t n, uint32_t rf)
{
    if (n == 0)
        return 0;
    size_t *zone = mr_calloc(n, sizeof *zone);
    size_t domains = zone_ids(nodes, n, zone);
    free(zone);
    size_t r = rf < n ? rf : n;
    return (uint32_t)((r + domains - 1) / domains);
}

/* Everything one call works on. cnt[i * n + k]: replicas of index i on node k. */
typedef struct placer {
    const mr_place_node *nodes;
    size_t n;
    mr_place_index *ixs;
    size_t count;
    size_t *zone;
    uint32_t zone_cap_by_r[4]; /* by min(rf, n): rf is 1 to 3 */
    uint64_t *load;
    uint32_t *cnt;
} placer;

static uint32_t copies(const placer *p, const mr_place_index *ix)
{
    return ix->rf < p->n ? ix->rf : (uint32_t)p->n;
}

static uint64_t weight_of(const mr_place_index *ix)
{
    return ix->weight ? ix->weight : 1;
}

static uint32_t zone_cap(const placer *p, const mr_place_index *ix)
{
    uint32_t r = copies(p, ix);
    return r < 4 ? p->zone_cap_by_r[r] : 1;
}

static int32_t *slots(const mr_place_index *ix, uint32_t shard)
{
    return ix->out + (size_t)shard * ix->rf;
}

static int holds(const placer *p, const mr_place_index *ix, uint32_t shard, int32_t node)
{
    const int32_t *sl = slots(ix, shard);
    for (uint32_t r = 0; r < copies(p, ix); r++)
        if (sl[r] == node)
            return 1;
    return 0;
}

/* How many of the shard's replicas sit in node's zone, not counting the one on `except` (-1). */
static uint32_t in_zone(const placer *p, const mr_place_index *ix, uint32_t shard, int32_t node, int32_t except)
{
    const int32_t *sl = slots(ix, shard);
    uint32_t c = 0;
    for (uint32_t r = 0; r < copies(p, ix); r++)
        c += sl[r] >= 0 && sl[r] != except && p->zone[sl[r]] == p->zone[node];
    return c;
}

static void put(placer *p, size_t i, uint32_t shard, uint32_t r, int32_t node)
{
    slots(&p->ixs[i], shard)[r] = node;
    p->cnt[i * p->n + (size_t)node]++;
    p->load[node] += weight_of(&p->ixs[i]);
}

/* Rendezvous order between two nodes for one shard: the higher score first, then the id. Scores
 * only break ties, so they are computed only when one is needed. */
static int prefer(const placer *p, const mr_place_index *ix, uint32_t shard, int32_t a, int32_t b)
{
    uint64_t sa = mr_hrw_score(ix->storage, shard, p->nodes[a].id);
    uint64_t sb = mr_hrw_score(ix->storage, shard, p->nodes[b].id);
    if (sa != sb)
        return sa > sb;
    return strcmp(p->nodes[a].id, p->nodes[b].id) < 0;
}

/* ---- keep: what of the previous placement may stay ---- */

typedef struct kept_candidate {
    uint32_t shard, slot;
    int32_t node;
    uint64_t score;
} kept_candidate;

static int by_score(const void *a, const void *b)
{
    const kept_candidate *x = a, *y = b;
    if (x->score != y->score)
        return x->score < y->score ? 1 : -1;
    if (x->shard != y->shard)
        return x->shard < y->shard ? -1 : 1;
    return (x->node > y->node) - (x->node < y->node);
}

static void take(placer *p, size_t i, uint32_t shard, uint32_t r)
{
    int32_t *sl = slots(&p->ixs[i], shard);
    p->cnt[i * p->n + (size_t)sl[r]]--;
    p->load[sl[r]] -= weight_of(&p->ixs[i]);
    sl[r] = -1;
}

/* Keeps the previous replicas that are on live nodes, best scores first while their zone has room.
 * Then a node over the bound gives up the replicas it scores worst on, preferring shards that lost
 * none yet, so that a node that joins can take every one of them. */
static void keep(placer *p, size_t i)
{
    mr_place_index *ix = &p->ixs[i];
    uint32_t r_max = copies(p, ix), cap = mr_place_cap(ix->shards, ix->rf, p->n), zcap = zone_cap(p, ix);
    kept_candidate *c = mr_calloc((size_t)ix->shards * ix->rf + 1, sizeof *c);
    size_t m = 0;
    for (uint32_t s = 0; s < ix->shards; s++)
        for (uint32_t r = 0; r < ix->rf; r++) {
            int32_t node = ix->prev[(size_t)s * ix->rf + r];
            if (node < 0 || (size_t)node >= p->n)
                continue;
            c[m++] = (kept_candidate){s, r, node, mr_hrw_score(ix->storage, s, p->nodes[node].id)};
        }
    qsort(c, m, sizeof *c, by_score);
    size_t kept = 0;
    for (size_t k = 0; k < m; k++) {
        uint32_t s = c[k].shard, r = c[k].slot;
        int32_t node = c[k].node;
        if (holds(p, ix, s, node) || in_zone(p, ix, s, node, -1) >= zcap)
            continue;
        /* in its old slot, so that what stays reads the same; past min(rf, n), in a free one */
        const int32_t *sl = slots(ix, s);
        for (uint32_t q = 0; r >= r_max && q < r_max; q++)
            r = sl[q] < 0 ? q : r;
        if (r < r_max && sl[r] < 0) {
            put(p, i, s, r, node);
            c[kept++] = (kept_candidate){s, r, node, c[k].score};
        }
    }
    uint8_t *lost = mr_calloc(ix->shards, 1);
    for (int pass = 0; pass < 2; pass++)
        for (size_t k = kept; k-- > 0;) {
            uint32_t s = c[k].shard, r = c[k].slot;
            if (slots(ix, s)[r] == c[k].node && p->cnt[i * p->n + (size_t)c[k].node] > cap && (pass || !lost[s])) {
                take(p, i, s, r);
                lost[s] = 1;
            }
        }
    free(lost);
    free(c);
}

/* ---- fill: every empty slot takes the node that holds least of the index, then least load ---- */

/* When every node with room for one more replica of the index holds the shard already (or its
 * zone is full), moves another shard's replica from a full node to one with room, so that the full
 * node can take this shard. Returns whether it moved one. */
static int make_room(placer *p, size_t i, uint32_t shard)
{
    mr_place_index *ix = &p->ixs[i];
    uint32_t cap = mr_place_cap(ix->shards, ix->rf, p->n), zcap = zone_cap(p, ix);
    for (size_t y = 0; y < p->n; y++) {
        int32_t full = (int32_t)y;
        if (p->cnt[i * p->n + y] < cap || holds(p, ix, shard, full) || in_zone(p, ix, shard, full, -1) >= zcap)
            continue;
        for (size_t x = 0; x < p->n; x++) {
            int32_t roomy = (int32_t)x;
            if (p->cnt[i * p->n + x] >= cap)
                continue;
            for (uint32_t t = 0; t < ix->shards; t++) {
                int32_t *sl = slots(ix, t);
                for (uint32_t r = 0; r < copies(p, ix); r++) {
                    if (t == shard || sl[r] != full || holds(p, ix, t, roomy) || in_zone(p, ix, t, roomy, full) >= zcap)
                        continue;
                    sl[r] = roomy;
                    p->cnt[i * p->n + y]--;
                    p->cnt[i * p->n + x]++;
                    p->load[y] -= weight_of(ix);
                    p->load[x] += weight_of(ix);
                    return 1;
                }
            }
        }
    }
    return 0;
}

/* The best node for a new replica of the shard, with the constraints relaxed step by step when
 * nothing meets them all (only when an earlier placement left too few fitting nodes): zones
 * first, then the bound. -1 if every node holds the shard already. */
static int32_t best_node(placer *p, size_t i, uint32_t shard)
{
    const mr_place_index *ix = &p->ixs[i];
    uint32_t cap = mr_place_cap(ix->shards, ix->rf, p->n), zcap = zone_cap(p, ix);
    for (int relax = 0; relax < 3; relax++) {
        int32_t best = -1;
        for (size_t k = 0; k < p->n; k++) {
            int32_t node = (int32_t)k;
            uint32_t c = p->cnt[i * p->n + k];
            if (holds(p, ix, shard, node) || (relax < 2 && c >= cap) ||
                (relax < 1 && in_zone(p, ix, shard, node, -1) >= zcap))
                continue;
            if (best >= 0) {
                uint32_t bc = p->cnt[i * p->n + (size_t)best];
                if (c != bc ? c > bc
                            : p->load[k] != p->load[best] ? p->load[k] > p->load[best]
                                                          : !prefer(p, ix, shard, node, best))
                    continue;
            }
            best = node;
        }
        if (best >= 0)
            return best;
        if (relax == 0 && make_room(p, i, shard))
            relax = -1; /* a node can take it now: look again */
    }
    return -1;
}

static void fill(placer *p, size_t i)
{
    mr_place_index *ix = &p->ixs[i];
    uint32_t r_max = copies(p, ix);
    /* A round per copy, so that no shard is left to find all its nodes at the end. */
    for (uint32_t r = 0; r < r_max; r++)
        for (uint32_t s = 0; s < ix->shards; s++) {
            if (slots(ix, s)[r] >= 0)
                continue;
            int32_t node = best_node(p, i, s);
            if (node >= 0)
                put(p, i, s, r, node);
        }
}

/* ---- level: move replicas off the fullest node, and onto the emptiest, while that evens them ---- */

typedef struct move {
    size_t index;
    uint32_t shard, slot;
    int32_t from, to;
    uint64_t cost; /* the fuller of the two nodes after the move, or, when filling the emptiest
                    * node, how far the emptier of the two stays below the fullest load */
} move;

static int better_move(const placer *p, const move *a, const move *b)
{
    if (a->cost != b->cost)
        return a->cost < b->cost;
    uint64_t wa = weight_of(&p->ixs[a->index]), wb = weight_of(&p->ixs[b->index]);
    if (wa != wb)
        return wa > wb;
    if (a->index != b->index)
        return a->index < b->index;
    if (a->shard != b->shard)
        return a->shard < b->shard;
    if (a->from != b->from)
        return strcmp(p->nodes[a->from].id, p->nodes[b->from].id) < 0;
    return prefer(p, &p->ixs[a->index], a->shard, a->to, b->to);
}

/* The node with the most load (most > 0) or the least (most == 0), the first id on a tie. */
static int32_t extreme(const placer *p, int most)
{
    int32_t e = 0;
    for (size_t k = 1; k < p->n; k++) {
        int beyond = most ? p->load[k] > p->load[e] : p->load[k] < p->load[e];
        if (beyond || (p->load[k] == p->load[e] && strcmp(p->nodes[k].id, p->nodes[e].id) < 0))
            e = (int32_t)k;
    }
    return e;
}

/* The best move of one replica from `from` to `to`, either of them -1 for any node, that brings
 * the two nodes closer without swapping their order, within every bound. peak is the fullest load
 * overall: filling a node is judged by how close to it the emptier node of the move ends. */
static int find_move(const placer *p, int32_t from, int32_t to, uint64_t peak, move *best)
{
    int found = 0;
    for (size_t i = 0; i < p->count; i++) {
        const mr_place_index *ix = &p->ixs[i];
        if (ix->fixed || (from >= 0 && p->cnt[i * p->n + (size_t)from] == 0) ||
            (to >= 0 && p->cnt[i * p->n + (size_t)to] >= mr_place_cap(ix->shards, ix->rf, p->n)))
            continue;
        uint64_t w = weight_of(ix);
        uint32_t cap = mr_place_cap(ix->shards, ix->rf, p->n), zcap = zone_cap(p, ix);
        for (uint32_t s = 0; s < ix->shards; s++)
            for (uint32_t r = 0; r < copies(p, ix); r++) {
                int32_t src = slots(ix, s)[r];
                if (src < 0 || (from >= 0 && src != from))
                    continue;
                for (size_t k = to >= 0 ? (size_t)to : 0; k < (to >= 0 ? (size_t)to + 1 : p->n); k++) {
                    int32_t dst = (int32_t)k;
                    if (p->load[k] + w >= p->load[src] || p->cnt[i * p->n + k] >= cap || holds(p, ix, s, dst) ||
                        in_zone(p, ix, s, dst, src) >= zcap)
                        continue;
                    uint64_t left = p->load[src] - w, got = p->load[k] + w;
                    uint64_t cost = from >= 0 ? (got > left ? got : left) : peak - (got < left ? got : left);
                    move m = {i, s, r, src, dst, cost};
                    if (!found || better_move(p, &m, best))
                        *best = m;
                    found = 1;
                }
            }
    }
    return found;
}

static size_t level(placer *p, const mr_place_opts *opts)
{
    uint64_t total = 0;
    for (size_t k = 0; k < p->n; k++)
        total += p->load[k];
    double mean = (double)total / (double)p->n;
    size_t moves = 0;
    while (opts->max_moves == 0 || moves < opts->max_moves) {
        int32_t hi = extreme(p, 1), lo = extreme(p, 0);
        move m = {0};
        int shed = (double)p->load[hi] > mean * (1.0 + opts->slack) && find_move(p, hi, -1, 0, &m);
        if (!shed && !((double)p->load[lo] < mean * (1.0 - 2 * opts->slack) && find_move(p, -1, lo, p->load[hi], &m)))
            break;
        mr_place_index *ix = &p->ixs[m.index];
        uint64_t w = weight_of(ix);
        slots(ix, m.shard)[m.slot] = m.to;
        p->cnt[m.index * p->n + (size_t)m.from]--;
        p->cnt[m.index * p->n + (size_t)m.to]++;
        p->load[m.from] -= w;
        p->load[m.to] += w;
        moves++;
    }
    return moves;
}

size_t mr_place(const mr_place_node *nodes, size_t n, mr_place_index *ixs, size_t count, const mr_place_opts *opts)
{
    for (size_t i = 0; i < count; i++)
        for (size_t k = 0; k < (size_t)ixs[i].shards * ixs[i].rf; k++)
            ixs[i].out[k] = ixs[i].fixed && ixs[i].prev ? ixs[i].prev[k] : -1;
    if (n == 0)
        return 0;
    placer p = {.nodes = nodes, .n = n, .ixs = ixs, .count = count};
    p.zone = mr_calloc(n, sizeof *p.zone);
    size_t domains = zone_ids(nodes, n, p.zone);
    for (uint32_t r = 1; r < 4; r++) {
        uint32_t copies_r = r < n ? r : (uint32_t)n;
        p.zone_cap_by_r[r] = (uint32_t)((copies_r + domains - 1) / domains);
    }
    p.load = mr_calloc(n, sizeof *p.load);
    p.cnt = mr_calloc(count * n + 1, sizeof *p.cnt);
    for (size_t i = 0; i < count; i++) {
        mr_place_index *ix = &ixs[i];
        if (ix->fixed) {
            for (size_t k = 0; k < (size_t)ix->shards * ix->rf; k++)
                if (ix->out[k] >= 0 && (size_t)ix->out[k] < n) {
                    p.cnt[i * n + (size_t)ix->out[k]]++;
                    p.load[ix->out[k]] += weight_of(ix);
                }
        } else if (ix->prev) {
            keep(&p, i);
        }
    }
    for (size_t i = 0; i < count; i++)
        if (!ixs[i].fixed)
            fill(&p, i);
    size_t moves = opts && opts->slack >= 0 ? level(&p, opts) : 0;
    free(p.cnt);
    free(p.load);
    free(p.zone);
    return moves;
}
