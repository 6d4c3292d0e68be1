/* meta.h: the cluster's metadata, kept in Kafka and followed by every process.
 *
 * Topic miroir.meta (1 partition, compacted) holds, by key:
 *   node/<id>                       {"url", "state": active|draining|removing}: a cluster member;
 *                                   a tombstone removes it
 *   index/<uid>                     the index definition (topology.h), or a tombstone; written by
 *                                   the gateway, with the placement it was created with
 *   placement/<storage>             {"createdAt", "placement"}: the placement as the rebalancer
 *                                   moves replicas; it overrides the definition's (its only writer)
 *   rebuild/<storage>/<shard>/<node> {"at"}: a request to rebuild one replica from the log
 *   applied/<storage>/<shard>/<node> {"offset": next offset to apply, "at": time, "incarnation"}
 *                                   for one replica
 *   dlq/<storage>/<shard>/<offset>  {"error": {…}} for a record that went to the dead-letter topic
 *   swap/<id>                       {"indexes": [definition, …]}: definitions that change together
 *                                   (an index swap), applied in one snapshot
 *   deleted-tasks/<id>              {"ranges": [[first, last], …]}: task uids deleted from the history
 *   key/<uid>                       an API key's record (auth.h; never its value), or a tombstone
 *   keys-seeded                     {"at"}: the default keys were created once; deleting one
 *                                   does not bring it back
 * Topic miroir.tasks (1 partition) holds one record per task; its offset is the task uid.
 *
 * An mr_meta follows both topics from the beginning. Its getters are thread-safe; one thread at a
 * time calls mr_meta_poll. */
#ifndef MIROIR_META_H
#define MIROIR_META_H

#include <jansson.h>
#include <librdkafka/rdkafka.h>
#include <stdint.h>

#include "apierr.h"
#include "config.h"
#include "topology.h"

typedef struct mr_meta mr_meta;

/* Creates the metadata topics if missing and starts following them. NULL with err on failure. */
mr_meta *mr_meta_new(const mr_config *cfg, char *err, size_t errlen);
void mr_meta_free(mr_meta *m);

/* Applies the records that arrive within timeout_ms. Returns how many were applied. */
int mr_meta_poll(mr_meta *m, int timeout_ms);

/* Polls until both topics are read up to their end as of now. Returns 0, or -1 on timeout. */
int mr_meta_sync(mr_meta *m, int timeout_ms);

/* Blocks until the follower (polled by another thread) has applied topic's record at offset.
 * Returns 0, or -1 on timeout. */
int mr_meta_wait(mr_meta *m, const char *topic, int64_t offset, int timeout_ms);

mr_topology_holder *mr_meta_topology(mr_meta *m);

/* The next offset to apply for one replica (0 if it has applied nothing). If at is not NULL,
 * it receives the time of the last applied batch ("" if none). */
int64_t mr_meta_applied(mr_meta *m, const char *index, uint32_t shard, const mr_replica *rep, char *at, size_t atlen);

/* How many records of storage's shards went to the dead-letter topic. */
size_t mr_meta_dlq_count(mr_meta *m, const char *storage);

/* The pending rebuild requests: a new object "storage/shard/node" -> {"at"}. */
json_t *mr_meta_rebuilds(mr_meta *m);

/* The API keys: uid -> record (auth.h), a new reference to an object nobody changes (a new
 * one replaces it when a key changes, so pointer equality says "unchanged"). *seeded (if not
 * NULL) says whether the default keys were ever created. */
json_t *mr_meta_keys(mr_meta *m, int *seeded);

/* How many task records exist: their uids are 0 … count-1. */
int64_t mr_meta_task_count(mr_meta *m);

/* A new reference to task uid's record, or NULL if unknown. */
json_t *mr_meta_task(mr_meta *m, int64_t uid);

/* Counts the dead-lettered records of (index, shard) in [first, last] into *count, and returns
 * the error of the first as a new reference, or NULL if there is none. */
json_t *mr_meta_dlq_error(mr_meta *m, const char *index, uint32_t shard, int64_t first, int64_t last,
                          size_t *count);

/* The applied/ and dlq/ keys of an index (a new array of strings), to clear them when an index
 * of that name is created again. */
json_t *mr_meta_index_keys(mr_meta *m, const char *index);

/* Writes key = value (NULL value: tombstone) to miroir.meta and waits for Kafka's ack; with
 * wait_applied, also until this follower has applied it (read-your-writes). */
int mr_meta_put(mr_meta *m, rd_kafka_t *producer, const char *key, const json_t *value, int wait_applied,
                mr_error *err);

/* What every process needs to take part in the cluster: an idempotent producer, and a follower
 * read up to Kafka's end with the configured nodes seeded as members. Returns 0, or -1 with err
 * and nothing left open. */
int mr_meta_join(const mr_config *cfg, rd_kafka_t **producer, mr_meta **meta, char *err, size_t errlen);

/* Writes the configured nodes as the cluster's members if it has none yet: the config seeds the
 * membership once; afterwards it changes through the admin API. Call it before another thread
 * polls m (it reads the members back itself). Returns 0 or -1 with err. */
int mr_meta_seed_members(mr_meta *m, rd_kafka_t *producer, const mr_config *cfg, mr_error *err);

/* Appends a task record; on success *uid is its uid. */
int mr_meta_add_task(mr_meta *m, rd_kafka_t *producer, const json_t *task, int64_t *uid, mr_error *err);

#endif
