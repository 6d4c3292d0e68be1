/* plan.h: where replicas should be, and what the rebalancer changes next to get there.
 *
 * Pure functions over a topology snapshot: the rebalancer does the I/O (clearing a node,
 * watching a replica catch up, dropping an index), these decide. Where replicas should be is each
 * shard's target, planned by bounded-load placement (place.h) for the active members, with their
 * zones: a new index is placed beside the others as they stand, and when the members change, every
 * index is planned anew from its targets, so that only what must move moves. Weights (what one
 * shard of an index weighs: storage -> integer, any unit) level the nodes' loads; an index without
 * one weighs the mean of the others, or 1. */
#ifndef MIROIR_PLAN_H
#define MIROIR_PLAN_H

#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "topology.h"

/* The nodes that should hold the shard: its target's active members; for an index placed before
 * targets existed (planned_for 0), the top rf active members by rendezvous hashing. out has
 * MR_MAX_REPLICAS entries, pointing into t. */
size_t mr_plan_target(const mr_topology *t, const mr_index *ix, uint32_t shard, const char **out);

/* Places a new incarnation beside every live index as it stands, moving nothing else: its
 * replicas (ready: an empty index is caught up) and its targets. ix->storage, shard_count and rf
 * must be set; allocates ix->shards. weights may be NULL. */
void mr_plan_new_index(const mr_topology *t, mr_index *ix, const json_t *weights);

/* Whether some live index was planned for other active members (or zones) than t's, or never. */
int mr_plan_due(const mr_topology *t);

/* Plans every live index anew for t's active members, each from its target (or, never planned,
 * from its replicas), levelling the loads to within slack (place.h). *out (free each with
 * mr_index_clear, then the array) gets copies of the indexes whose target changed or was planned
 * for other members, with their new target; *out_count their number. Returns how many replicas
 * the new targets move. */
size_t mr_plan_targets(const mr_topology *t, const json_t *weights, double slack, mr_index **out, size_t *out_count);

/* The active members' loads under the targets (each replica weighing its shard): the fullest
 * over the mean. *replicas_per_node (if not NULL) gets the mean number of replicas. */
double mr_plan_peak(const mr_topology *t, const json_t *weights, double *replicas_per_node);

/* Whether the shard's replicas (retiring ones aside) share a zone although the active members
 * have zones enough for them not to. */
int mr_plan_zone_shared(const mr_topology *t, const mr_index *ix, uint32_t shard);

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
