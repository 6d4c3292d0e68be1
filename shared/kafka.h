/* kafka.h: librdkafka handles configured the Miroir way, topic creation, and produce-and-wait. */
#ifndef MIROIR_KAFKA_H
#define MIROIR_KAFKA_H

#include <librdkafka/rdkafka.h>
#include <stddef.h>
#include <stdint.h>

#include "apierr.h"
#include "config.h"

/* An idempotent producer (acks=all) whose delivery reports feed mr_produce_all.
 * Returns NULL with err on failure. Free with rd_kafka_destroy after rd_kafka_flush. */
rd_kafka_t *mr_kafka_producer(const mr_config *cfg, char *err, size_t errlen);
/* mr_kafka_producer with more librdkafka properties (a NULL-terminated name, value, … list),
 * set last. */
rd_kafka_t *mr_kafka_producer_with(const mr_config *cfg, const char *const *extra, char *err, size_t errlen);

/* A consumer; group_id may be NULL for a handle that only uses assign() and never commits.
 * Auto-commit is off. extra (may be NULL) is a NULL-terminated name, value, … list of more
 * librdkafka properties. */
rd_kafka_t *mr_kafka_consumer(const mr_config *cfg, const char *group_id, const char *const *extra, char *err,
                              size_t errlen);
/* mr_kafka_consumer for a group, with a rebalance callback called with opaque. */
rd_kafka_t *mr_kafka_consumer_cb(const mr_config *cfg, const char *group_id, const char *const *extra,
                                 void (*rebalance)(rd_kafka_t *, rd_kafka_resp_err_t, rd_kafka_topic_partition_list_t *,
                                                   void *),
                                 void *opaque, char *err, size_t errlen);

/* Creates a topic (an existing one is fine) and waits until this handle sees it. config is a
 * NULL-terminated name, value, … list. Returns 0 when it made the topic (so it is empty), 1 when
 * it existed already, or -1 with err. */
int mr_kafka_create_topic(rd_kafka_t *rk, const char *topic, int partitions, const char *const *config,
                          int timeout_ms, char *err, size_t errlen);

/* The end offset of an index's shard partition (miroir.idx.<storage>, partition shard): how many
 * records a caught-up replica has applied. -1 if Kafka doesn't say within timeout_ms. */
int64_t mr_kafka_shard_end(rd_kafka_t *rk, const char *storage, uint32_t shard, int timeout_ms);
/* mr_kafka_shard_end for every shard of an index at once (one request to Kafka, not one per
 * shard): fills ends[0..shards), each -1 if Kafka doesn't say within timeout_ms. */
void mr_kafka_index_ends(rd_kafka_t *rk, const char *storage, uint32_t shards, int64_t *ends, int timeout_ms);

/* Whether this handle's fresh metadata lists the topic with partitions: 1, 0, or -1 if the cluster
 * didn't answer. */
int mr_kafka_topic_exists(rd_kafka_t *rk, const char *topic);

/* Deletes a topic and waits until the cluster no longer lists it (a missing topic is fine);
 * with timeout_ms 0, asks and does not wait. Returns 0, or -1 with err. */
int mr_kafka_delete_topic(rd_kafka_t *rk, const char *topic, int timeout_ms, char *err, size_t errlen);

/* Deletes the records of one partition below offset (Kafka's DeleteRecords: the partition's log
 * start moves to offset). Returns 0, or -1 with err. */
int mr_kafka_delete_records(rd_kafka_t *rk, const char *topic, int32_t partition, int64_t before, int timeout_ms,
                            char *err, size_t errlen);

/* A partition's first and next offsets (its log start, after deleted records, and its end), as
 * the broker says them within timeout_ms. Returns 0, or -1. */
int mr_kafka_partition_range(rd_kafka_t *rk, const char *topic, int32_t partition, int64_t *first, int64_t *end,
                             int timeout_ms);

/* One record to produce. headers may be NULL; mr_produce_all takes ownership of it. */
typedef struct mr_produce_msg {
    const char *topic;
    int32_t partition;
    const void *key;
    size_t key_len;
    const void *value;
    size_t value_len;
    rd_kafka_headers_t *headers;
    /* filled in by mr_produce_all */
    int64_t offset;
    rd_kafka_resp_err_t result;
    void *batch_; /* private */
} mr_produce_msg;

/* Produces every message and waits for all delivery reports. Returns 0 if Kafka durably
 * accepted all of them; -1 with err (miroir_kafka_unavailable) if any failed. Messages that
 * did fail carry their error in ->result. Safe to call from several threads at once. */
int mr_produce_all(rd_kafka_t *producer, mr_produce_msg *msgs, size_t n, mr_error *err);

/* Headers with one "miroir.op" entry. */
rd_kafka_headers_t *mr_headers_op(const char *op);

/* Reads one header value as a view; returns NULL if absent. */
const char *mr_header_get(const rd_kafka_message_t *m, const char *name, size_t *len);

#endif
