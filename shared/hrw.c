/* hrw.c: shard function and rendezvous placement. */
#include "hrw.h"

#include <stdio.h>
#include <string.h>
#include <xxhash.h>

uint32_t mr_shard_of(const char *id, size_t len, uint32_t shards)
{
    return (uint32_t)(XXH64(id, len, 0) % shards);
}

uint32_t mr_lease_of(const char *storage, uint32_t shard, uint32_t leases)
{
    char buf[600];
    int n = snprintf(buf, sizeof buf, "%s/%u", storage, shard);
    if (n < 0 || leases == 0)
        return 0;
    return (uint32_t)(XXH64(buf, (size_t)n < sizeof buf ? (size_t)n : sizeof buf - 1, 0) % leases);
}

uint64_t mr_hrw_score(const char *index, uint32_t shard, const char *node_id)
{
    char buf[1200];
    int n = snprintf(buf, sizeof buf, "%s/%u/%s", index, shard, node_id);
    if (n < 0)
        return 0;
    return XXH64(buf, (size_t)n < sizeof buf ? (size_t)n : sizeof buf - 1, 0);
}

size_t mr_hrw_place(const char *index, uint32_t shard, const char *const *node_ids, size_t n, size_t rf,
                    size_t *out)
{
    size_t count = rf < n ? rf : n;
    /* Selection of the top `count` by repeated max: n is a node count (tens), not worth a sort. */
    for (size_t k = 0; k < count; k++) {
        size_t best = n;
        uint64_t best_score = 0;
        for (size_t i = 0; i < n; i++) {
            int taken = 0;
            for (size_t j = 0; j < k; j++)
                taken |= out[j] == i;
            if (taken)
                continue;
            uint64_t s = mr_hrw_score(index, shard, node_ids[i]);
            if (best == n || s > best_score) {
                best = i;
                best_score = s;
            }
        }
        out[k] = best;
    }
    return count;
}

static uint64_t rank_score(uint64_t key, const char *candidate)
{
    return XXH64(candidate, strlen(candidate), key);
}

void mr_hrw_rank(uint64_t key, const char **candidates, size_t n)
{
    /* Insertion sort: n is a replica count (RF ≤ 3, a few more during a move). */
    for (size_t i = 1; i < n; i++) {
        const char *c = candidates[i];
        uint64_t s = rank_score(key, c);
        size_t j = i;
        while (j > 0 && rank_score(key, candidates[j - 1]) < s) {
            candidates[j] = candidates[j - 1];
            j--;
        }
        candidates[j] = c;
    }
}
