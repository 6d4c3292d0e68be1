/* insync.h: the rule for a shard's in-sync set and commit point.
 *
 * The in-sync set is the ready replicas that keep up; the commit point is the smallest applied
 * offset among them, and never goes back. A task is succeeded once the commit point passed it
 * (task.h), and only replicas that have applied everything below the point serve reads, so every
 * read sees every task reported succeeded.
 *
 * A member leaves when its node fails, or when it has been behind another member for lag_ms
 * and applied nothing in that time, so a dead or stuck node holds nothing back. If every member would leave, one
 * stays, so the point never moves on without a replica that holds it. A ready replica outside
 * the set joins once it has applied everything below the point. Pure: ingest does the I/O. */
#ifndef MIROIR_INSYNC_H
#define MIROIR_INSYNC_H

#include <stddef.h>
#include <stdint.h>

#include "topology.h"

/* One ready replica of the shard, as its ingest worker sees it. */
typedef struct mr_isr_replica {
    const char *node;
    uint64_t incarnation;
    int64_t applied;     /* next offset to apply */
    int64_t advanced_ms; /* when applied last moved */
    /* When it was first seen behind the most advanced member, 0 if it was not: kept by the
     * caller between calls, updated by mr_isr_next. A replica stands still "while behind" only
     * from then, so one that was idle for an hour is not stalled the moment a peer applies a
     * record before it does. */
    int64_t behind_since_ms;
    int failing; /* its last send to the node failed */
    int member;  /* in the current in-sync set */
} mr_isr_replica;

/* The next in-sync set (written to set, MR_MAX_REPLICAS entries, *count of them) and commit
 * point, from the replicas (n of them, at most MR_MAX_REPLICAS) and the current point; updates
 * each replica's behind_since_ms. */
int64_t mr_isr_next(mr_isr_replica *replicas, size_t n, int64_t commit, int64_t now_ms, int64_t lag_ms,
                    mr_replica *set, size_t *count);

#endif
