/* plan.h: where replicas should be, and what the rebalancer changes next to get there.
 *
 * Pure functions over a topology snapshot: the rebalancer does the I/O (clearing a node,
 * watching a replica catch up, dropping an index), these decide. */
#ifndef MIROIR_PLAN_H
#define MIROIR_PLAN_H

#include <stddef.h>
#include <stdint.h>

#include "topology.h"

/* The nodes that should hold the shard: the top rf active members by rendezvous hashing (fewer
 * when fewer are active). out has MR_MAX_REPLICAS entries, pointing into t. */
size_t mr_plan_target(const mr_topology *t, const mr_index *ix, uint32_t shard, const char **out);

/* 1 if node is in the shard's target. */
int mr_plan_wanted(const mr_topology *t, const mr_index *ix, uint32_t shard, const char *node);

/* How many shard-replicas of ix must move to reach the target: target slots with no replica
 * (retiring ones not counted). This is the HRW optimum a rebalance should meet exactly. */
size_t mr_plan_moves(const mr_topology *t, const mr_index *ix);

/* One change to a shard's placement. */
enum mr_step_kind {
    MR_STEP_ADD,    /* place a new replica on node (state new) */
    MR_STEP_RETIRE, /* a ready or building replica leaves: stop reads and writes, then drop it */
    MR_STEP_FORGET, /* the replica's node left the cluster: take it out of the placement */
};

typedef struct mr_step {
    enum mr_step_kind kind;
    char node[MR_NODE_ID_MAX];
} mr_step;

/* The placement changes for one shard that need no I/O to decide, at most MR_MAX_REPLICAS * 2.
 * building_budget is how many more replicas may start building now (the throttle); it is
 * decreased by the additions planned. A ready replica off target retires only once the target
 * nodes hold as many ready replicas as they can, so the shard never drops below its copies. */
size_t mr_plan_shard(const mr_topology *t, const mr_index *ix, uint32_t shard, size_t *building_budget,
                     mr_step *steps);

#endif
