/* checksum.h: an order-independent digest of a set of documents, to compare replicas.
 *
 * Two replicas of a shard hold the same documents in different internal orders, so the digest
 * of a document set is the count and the wrapping sum of each document's xxh64 over its
 * canonical JSON (keys sorted, compact). Equal sets give equal digests whatever the order. */
#ifndef MIROIR_CHECKSUM_H
#define MIROIR_CHECKSUM_H

#include <jansson.h>
#include <stdint.h>

typedef struct mr_checksum {
    uint64_t count;
    uint64_t sum;
} mr_checksum;

void mr_checksum_add(mr_checksum *c, const json_t *doc);
/* "<count>:<sum as 16 hex digits>" */
void mr_checksum_format(const mr_checksum *c, char *out, size_t outlen);

#endif
