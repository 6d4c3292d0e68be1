/* place.h: balanced placement: which nodes should hold the replicas of every shard of every index.
 *
 * Rendezvous hashing alone spreads an index with few shards unevenly: at S=4, RF=2 on 3 nodes it
 * puts every shard on one node in about half of all indexes, and the fullest node is the one that
 * needs the RAM. This places with bounded loads instead:
 *   - a node holds at most ceil(S*R/N) replicas of one index (R = min(RF, N));
 *   - the replicas of a shard sit on distinct nodes, and in distinct zones whenever there are
 *     enough zones (at most ceil(R/Z) of them in one zone, Z zones);
 *   - across indexes, the nodes' loads (each replica weighs its shard's size) are levelled to within
 *     `slack` of their mean, as far as whole replicas allow;
 *   - it starts from the previous placement, so a join or a leave moves little: a replica stays
 *     unless its node left, its node holds more of its index than the new bound, its shard shares a
 *     zone it need not, or levelling needs it elsewhere.
 * Rendezvous scores (hrw.h) only break ties, so equal inputs give equal outputs on every machine:
 * every gateway and the rebalancer compute the same placement from the same metadata.
 *
 * Pure and allocation-checked (alloc.h); the caller owns every array it passes. */
#ifndef MIROIR_PLACE_H
#define MIROIR_PLACE_H

#include <stddef.h>
#include <stdint.h>

typedef struct mr_place_node {
    const char *id;
    const char *zone; /* NULL or "": a failure domain of its own */
} mr_place_node;

typedef struct mr_place_index {
    const char *storage; /* names the index in rendezvous scores */
    uint32_t shards;
    uint32_t rf;         /* copies wanted; min(rf, node count) are placed */
    uint64_t weight;     /* what one shard weighs (its size in any unit); 0 counts as 1 */
    int fixed;           /* take prev as it is: it counts for the loads and is never changed */
    const int32_t *prev; /* shards * rf positions in the node array, -1 for none; NULL: none at all */
    int32_t *out;        /* shards * rf positions, filled; slots past min(rf, n) are -1 */
} mr_place_index;

typedef struct mr_place_opts {
    /* Levelling stops once the fullest node is within (1 + slack) of the mean load and the
     * emptiest within (1 - 2 slack): a node that joined fills up to within twice the slack, so
     * that evening out the old nodes' small differences costs no moves. Below 0, no levelling (a
     * new index on a live cluster takes the least loaded nodes, and moves nothing else). */
    double slack;
    size_t max_moves; /* levelling moves at most this many replicas (0: no bound) */
} mr_place_opts;

/* Places every index that is not fixed. Indexes are considered in array order, so callers pass
 * them in a stable order (the rebalancer: by storage name). Returns the number of replicas
 * levelling moved. */
size_t mr_place(const mr_place_node *nodes, size_t n, mr_place_index *ixs, size_t count, const mr_place_opts *opts);

/* The most replicas of one index a node may hold: ceil(shards * min(rf, n) / n). */
uint32_t mr_place_cap(uint32_t shards, uint32_t rf, size_t n);

/* The most replicas of one shard one zone may hold, given the zones of the nodes:
 * ceil(min(rf, n) / zones), a node without a zone counting as a zone of its own. */
uint32_t mr_place_zone_cap(const mr_place_node *nodes, size_t n, uint32_t rf);

#endif
