/* plan.c: target placement and the diff against the current one. */
#include "plan.h"

#include <stdio.h>
#include <string.h>

#include "hrw.h"

size_t mr_plan_target(const mr_topology *t, const mr_index *ix, uint32_t shard, const char **out)
{
    const char *ids[MR_MAX_NODES];
    size_t top[MR_MAX_REPLICAS];
    size_t active = mr_topology_active_ids(t, ids);
    size_t rf = ix->rf < MR_MAX_REPLICAS ? ix->rf : MR_MAX_REPLICAS;
    size_t n = mr_hrw_place(ix->storage, shard, ids, active, rf, top);
    for (size_t i = 0; i < n; i++)
        out[i] = ids[top[i]];
    return n;
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
