/* plan.c: target placement and the diff against the current one. */
#include "plan.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "alloc.h"
#include "hrw.h"
#include "place.h"

/* The active members, sorted by id, as placement sees them. Returns their number. */
static size_t place_nodes(const mr_topology *t, mr_place_node *out)
{
    size_t n = 0;
    for (size_t i = 0; i < t->member_count; i++)
        if (t->members[i].state == MR_MEMBER_ACTIVE)
            out[n++] = (mr_place_node){t->members[i].node.id, t->members[i].node.zone};
    for (size_t i = 1; i < n; i++) /* insertion sort: tens of members */
        for (size_t j = i; j > 0 && strcmp(out[j - 1].id, out[j].id) > 0; j--) {
            mr_place_node tmp = out[j];
            out[j] = out[j - 1];
            out[j - 1] = tmp;
        }
    return n;
}

static int32_t position(const mr_place_node *nodes, size_t n, const char *id)
{
    for (size_t k = 0; k < n; k++)
        if (strcmp(nodes[k].id, id) == 0)
            return (int32_t)k;
    return -1;
}

size_t mr_plan_target(const mr_topology *t, const mr_index *ix, uint32_t shard, const char **out)
{
    if (ix->planned_for) {
        size_t n = 0;
        const mr_shard *s = &ix->shards[shard];
        for (size_t r = 0; r < s->target_count; r++) {
            const mr_member *m = mr_topology_member(t, s->target[r]);
            if (m && m->state == MR_MEMBER_ACTIVE)
                out[n++] = m->node.id;
        }
        return n;
    }
    const char *ids[MR_MAX_NODES];
    size_t top[MR_MAX_REPLICAS];
    size_t active = mr_topology_active_ids(t, ids);
    size_t rf = ix->rf < MR_MAX_REPLICAS ? ix->rf : MR_MAX_REPLICAS;
    size_t n = mr_hrw_place(ix->storage, shard, ids, active, rf, top);
    for (size_t i = 0; i < n; i++)
        out[i] = ids[top[i]];
    return n;
}

static uint32_t rf_of(const mr_index *ix)
{
    return ix->rf < MR_MAX_RF ? ix->rf : MR_MAX_RF;
}

/* Where the index's replicas are meant to be, as positions in nodes: its target, or, never
 * planned, its replicas that are not leaving. A node that is no active member is -1. */
static void previous(const mr_index *ix, const mr_place_node *nodes, size_t n, int32_t *prev)
{
    uint32_t rf = rf_of(ix);
    for (uint32_t s = 0; s < ix->shard_count; s++) {
        const mr_shard *sh = &ix->shards[s];
        int32_t *p = prev + (size_t)s * rf;
        uint32_t k = 0;
        if (ix->planned_for)
            for (size_t r = 0; r < sh->target_count && k < rf; r++)
                p[k++] = position(nodes, n, sh->target[r]);
        else
            for (size_t r = 0; r < sh->count && k < rf; r++)
                if (sh->replicas[r].state != MR_REPLICA_RETIRING)
                    p[k++] = position(nodes, n, sh->replicas[r].node);
        while (k < rf)
            p[k++] = -1;
    }
}

/* storage -> weight, and the mean of the known ones for the rest. */
static uint64_t mean_weight(const json_t *weights)
{
    uint64_t sum = 0, n = 0;
    const char *key;
    json_t *w;
    json_object_foreach((json_t *)weights, key, w)
        if (json_integer_value(w) > 0) {
            sum += (uint64_t)json_integer_value(w);
            n++;
        }
    return n ? sum / n : 1;
}

static uint64_t weight_of(const json_t *weights, const char *storage, uint64_t fallback)
{
    json_int_t w = json_integer_value(json_object_get(weights, storage));
    return w > 0 ? (uint64_t)w : fallback;
}

/* The live indexes of t as placement inputs; prev arrays and outs allocated here (free_inputs). */
static mr_place_index *inputs(const mr_topology *t, const mr_place_node *nodes, size_t n, const json_t *weights,
                              size_t extra, size_t *count)
{
    mr_place_index *ixs = mr_calloc(t->count + extra + 1, sizeof *ixs);
    uint64_t fallback = mean_weight(weights);
    size_t c = 0;
    for (size_t i = 0; i < t->count; i++) {
        const mr_index *ix = &t->indexes[i];
        if (ix->deleted)
            continue;
        size_t slots = (size_t)ix->shard_count * rf_of(ix);
        int32_t *prev = mr_calloc(slots + 1, sizeof *prev);
        previous(ix, nodes, n, prev);
        ixs[c++] = (mr_place_index){.storage = ix->storage, .shards = ix->shard_count, .rf = rf_of(ix),
                                    .weight = weight_of(weights, ix->storage, fallback), .prev = prev,
                                    .out = mr_calloc(slots + 1, sizeof(int32_t))};
    }
    *count = c;
    return ixs;
}

static void free_inputs(mr_place_index *ixs, size_t count)
{
    for (size_t i = 0; i < count; i++) {
        free((void *)ixs[i].prev);
        free(ixs[i].out);
    }
    free(ixs);
}

static void set_target(mr_shard *s, const int32_t *slots, uint32_t rf, const mr_place_node *nodes)
{
    s->target_count = 0;
    for (uint32_t r = 0; r < rf; r++)
        if (slots[r] >= 0)
            snprintf(s->target[s->target_count++], MR_NODE_ID_MAX, "%s", nodes[slots[r]].id);
}

void mr_plan_new_index(const mr_topology *t, mr_index *ix, const json_t *weights)
{
    mr_place_node nodes[MR_MAX_NODES];
    size_t n = place_nodes(t, nodes), count;
    mr_place_index *ixs = inputs(t, nodes, n, weights, 1, &count);
    for (size_t i = 0; i < count; i++)
        ixs[i].fixed = 1;
    uint32_t rf = rf_of(ix);
    size_t slots = (size_t)ix->shard_count * rf;
    ixs[count] = (mr_place_index){.storage = ix->storage, .shards = ix->shard_count, .rf = rf,
                                  .weight = mean_weight(weights), .out = mr_calloc(slots + 1, sizeof(int32_t))};
    mr_place_opts no_levelling = {.slack = -1};
    mr_place(nodes, n, ixs, count + 1, &no_levelling);
    ix->shards = mr_calloc(ix->shard_count, sizeof *ix->shards);
    for (uint32_t s = 0; s < ix->shard_count; s++) {
        mr_shard *sh = &ix->shards[s];
        sh->deleted_at = -1;
        set_target(sh, ixs[count].out + (size_t)s * rf, rf, nodes);
        for (size_t r = 0; r < sh->target_count; r++) {
            snprintf(sh->replicas[r].node, MR_NODE_ID_MAX, "%s", sh->target[r]);
            sh->replicas[r].state = MR_REPLICA_READY;
        }
        sh->count = sh->target_count;
    }
    ix->planned_for = mr_topology_signature(t);
    free_inputs(ixs, count + 1);
}

int mr_plan_due(const mr_topology *t)
{
    uint64_t sig = mr_topology_signature(t);
    for (size_t i = 0; i < t->count; i++)
        if (!t->indexes[i].deleted && t->indexes[i].planned_for != sig)
            return 1;
    return 0;
}

size_t mr_plan_targets(const mr_topology *t, const json_t *weights, double slack, mr_index **out, size_t *out_count)
{
    mr_place_node nodes[MR_MAX_NODES];
    size_t n = place_nodes(t, nodes), count;
    mr_place_index *ixs = inputs(t, nodes, n, weights, 0, &count);
    mr_place_opts opts = {.slack = slack};
    mr_place(nodes, n, ixs, count, &opts);
    uint64_t sig = mr_topology_signature(t);
    size_t moves = 0, changed = 0, c = 0;
    *out = mr_calloc(count + 1, sizeof **out);
    for (size_t i = 0; i < t->count; i++) {
        const mr_index *ix = &t->indexes[i];
        if (ix->deleted)
            continue;
        const mr_place_index *p = &ixs[c++];
        mr_index next;
        mr_index_copy(&next, ix);
        int differs = ix->planned_for != sig;
        for (uint32_t s = 0; s < ix->shard_count; s++) {
            const int32_t *slots = p->out + (size_t)s * p->rf, *before = p->prev + (size_t)s * p->rf;
            for (uint32_t r = 0; r < p->rf; r++) {
                int had = 0;
                for (uint32_t q = 0; q < p->rf; q++)
                    had |= slots[r] >= 0 && before[q] == slots[r];
                moves += slots[r] >= 0 && !had;
            }
            mr_shard old = ix->shards[s];
            set_target(&next.shards[s], slots, p->rf, nodes);
            differs |= old.target_count != next.shards[s].target_count ||
                       memcmp(old.target, next.shards[s].target, sizeof old.target) != 0;
        }
        next.planned_for = sig;
        if (differs)
            (*out)[changed++] = next;
        else
            mr_index_clear(&next);
    }
    *out_count = changed;
    free_inputs(ixs, count);
    return moves;
}

double mr_plan_peak(const mr_topology *t, const json_t *weights, double *replicas_per_node)
{
    mr_place_node nodes[MR_MAX_NODES];
    size_t n = place_nodes(t, nodes);
    uint64_t load[MR_MAX_NODES] = {0}, total = 0, fallback = mean_weight(weights), replicas = 0;
    for (size_t i = 0; i < t->count; i++) {
        const mr_index *ix = &t->indexes[i];
        if (ix->deleted)
            continue;
        uint64_t w = weight_of(weights, ix->storage, fallback);
        for (uint32_t s = 0; s < ix->shard_count; s++) {
            const char *target[MR_MAX_REPLICAS];
            size_t k = mr_plan_target(t, ix, s, target);
            for (size_t r = 0; r < k; r++) {
                int32_t at = position(nodes, n, target[r]);
                if (at >= 0) {
                    load[at] += w;
                    total += w;
                    replicas++;
                }
            }
        }
    }
    uint64_t peak = 0;
    for (size_t k = 0; k < n; k++)
        peak = load[k] > peak ? load[k] : peak;
    if (replicas_per_node)
        *replicas_per_node = n ? (double)replicas / (double)n : 0;
    return total ? (double)peak * (double)n / (double)total : 1;
}

int mr_plan_zone_shared(const mr_topology *t, const mr_index *ix, uint32_t shard)
{
    mr_place_node nodes[MR_MAX_NODES];
    size_t n = place_nodes(t, nodes);
    const mr_shard *s = &ix->shards[shard];
    const char *zones[MR_MAX_REPLICAS];
    size_t live = 0, distinct = 0;
    for (size_t r = 0; r < s->count; r++) {
        if (s->replicas[r].state == MR_REPLICA_RETIRING)
            continue;
        const mr_member *m = mr_topology_member(t, s->replicas[r].node);
        const char *zone = m ? m->node.zone : "";
        int seen = 0;
        for (size_t z = 0; z < distinct && *zone; z++)
            seen |= strcmp(zones[z], zone) == 0;
        if (!seen)
            zones[distinct++] = zone;
        live++;
    }
    /* as many zones as there are domains to spread over, up to one per replica */
    uint32_t cap = mr_place_zone_cap(nodes, n, (uint32_t)(live < MR_MAX_RF ? live : MR_MAX_RF));
    return live > 0 && cap > 0 && distinct < (live + cap - 1) / cap;
}

int mr_plan_wanted(const mr_topology *t, const mr_index *ix, uint32_t shard, const char *node)
{
    const char *target[MR_MAX_REPLICAS];
    size_t n = mr_plan_target(t, ix, shard, target);
    for (size_t i = 0; i < n; i++)
        if (strcmp(target[i], node) == 0)
            return 1;
    return 0;
}

size_t mr_plan_moves(const mr_topology *t, const mr_index *ix)
{
    size_t moves = 0;
    for (uint32_t s = 0; s < ix->shard_count; s++) {
        const char *target[MR_MAX_REPLICAS];
        size_t n = mr_plan_target(t, ix, s, target);
        for (size_t i = 0; i < n; i++) {
            int r = mr_shard_replica_index(&ix->shards[s], target[i]);
            moves += r < 0 || ix->shards[s].replicas[r].state == MR_REPLICA_RETIRING;
        }
    }
    return moves;
}

static void add_step(mr_step *steps, size_t *n, enum mr_step_kind kind, const char *node)
{
    steps[*n].kind = kind;
    snprintf(steps[*n].node, sizeof steps[*n].node, "%s", node);
    (*n)++;
}

size_t mr_plan_shard(const mr_topology *t, const mr_index *ix, uint32_t shard, size_t *building_budget,
                     mr_step *steps)
{
    const mr_shard *s = &ix->shards[shard];
    const char *target[MR_MAX_REPLICAS];
    size_t target_n = mr_plan_target(t, ix, shard, target);
    size_t n = 0, live = 0, ready_on_target = 0;
    for (size_t r = 0; r < s->count; r++) {
        const mr_replica *rep = &s->replicas[r];
        if (!mr_topology_member(t, rep->node))
            add_step(steps, &n, MR_STEP_FORGET, rep->node);
        else if (rep->state != MR_REPLICA_RETIRING)
            live++;
        if (rep->state == MR_REPLICA_READY && mr_plan_wanted(t, ix, shard, rep->node))
            ready_on_target++;
    }
    if (ix->deleted) {
        /* Nothing moves for a deleted index; replicas on leaving nodes go, so the nodes can. */
        for (size_t r = 0; r < s->count; r++) {
            const mr_member *m = mr_topology_member(t, s->replicas[r].node);
            if (m && m->state != MR_MEMBER_ACTIVE && s->replicas[r].state != MR_REPLICA_RETIRING)
                add_step(steps, &n, MR_STEP_RETIRE, s->replicas[r].node);
        }
        return n;
    }
    for (size_t i = 0; i < target_n; i++) {
        if (mr_shard_replica_index(s, target[i]) >= 0 || live >= MR_MAX_REPLICAS || *building_budget == 0)
            continue;
        add_step(steps, &n, MR_STEP_ADD, target[i]);
        (*building_budget)--;
        live++;
    }
    for (size_t r = 0; r < s->count; r++) {
        const mr_replica *rep = &s->replicas[r];
        if (rep->state == MR_REPLICA_RETIRING || !mr_topology_member(t, rep->node) ||
            mr_plan_wanted(t, ix, shard, rep->node))
            continue;
        /* Replicas not yet serving leave at once; a serving one only when it is replaced. */
        if (rep->state != MR_REPLICA_READY || ready_on_target >= target_n)
            add_step(steps, &n, MR_STEP_RETIRE, rep->node);
    }
    return n;
}
