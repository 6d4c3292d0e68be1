/* rebalancer.h: the rebalancer: the only writer of placements. It plans each shard's target
 * (plan.h: bounded loads, zones) when the members change, and moves replicas toward it, one
 * throttled step at a time.
 *
 * A replica's life: new (placed; the node is cleared of any stale copy) → building (ingest
 * replays the shard's partition into it from offset 0) → ready (caught up: serves reads) →
 * retiring (no reads or writes; its index is dropped after a grace period) → gone. Every state
 * is in miroir.meta, so a rebalancer that dies mid-move resumes from where the placement says.
 *
 * Ownership: main owns the rebalancer context for the life of the process. */
#ifndef MIROIR_REBALANCER_H
#define MIROIR_REBALANCER_H

#include <jansson.h>
#include <librdkafka/rdkafka.h>
#include <stdint.h>

#include "config.h"
#include "meili.h"
#include "meta.h"

typedef struct rebalancer {
    const mr_config *cfg;
    rd_kafka_t *producer;
    mr_meta *meta;
    mr_http *http;
    json_t *retiring_since; /* "storage/shard/node" -> ms when this process first saw it retiring */
    json_t *building_seen;  /* "storage/shard/node" -> [applied offset, ms since it has not moved, pass] */
    uint64_t pass;
    int64_t last_progress_log_ms;
    int64_t last_level_check_ms;
    int64_t last_lost_check_ms;
} rebalancer;

/* One pass: looks at every index and advances each move by at most one step. Returns how many
 * placement changes it wrote. */
int rb_tick(rebalancer *rb);

#endif
