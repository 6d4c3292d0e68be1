/* hrw.h: the shard function and rendezvous (highest random weight) placement, both on xxh64. */
#ifndef MIROIR_HRW_H
#define MIROIR_HRW_H

#include <stddef.h>
#include <stdint.h>

/* shard = xxh64(id bytes, seed 0) mod shards. id is the document id as text (integers in decimal). */
uint32_t mr_shard_of(const char *id, size_t len, uint32_t shards);

/* The placement score of node_id for (index, shard): xxh64 of "index/shard/node_id". */
uint64_t mr_hrw_score(const char *index, uint32_t shard, const char *node_id);

/* Writes into out[] the positions (in node_ids) of the min(rf, n) best-scoring nodes for
 * (index, shard), best first. Deterministic; ties (never seen with xxh64) break by position.
 * Returns the number written. out must hold rf entries. */
size_t mr_hrw_place(const char *index, uint32_t shard, const char *const *node_ids, size_t n, size_t rf,
                    size_t *out);

/* The lease of a shard: which partition of miroir.progress carries its progress, and so which
 * ingest worker applies it. xxh64 of "storage/shard" mod leases. */
uint32_t mr_lease_of(const char *storage, uint32_t shard, uint32_t leases);

/* Orders candidates[0..n) by rendezvous score against key (best first), in place.
 * Used to pick a replica per query: the same key always meets the same replicas. */
void mr_hrw_rank(uint64_t key, const char **candidates, size_t n);

#endif
