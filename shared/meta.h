/* meta.h: the cluster's metadata, kept in Kafka and followed by every process.
 *
 * Topic miroir.meta (1 partition, compacted) holds, by key:
 *   node/<id>                       {"url", "state": active|draining|removing, "zone"}: a cluster
 *                                   member and its failure domain; a tombstone removes it
 *   index/<uid>                     {"generation", "live": definition (topology.h) or null}: the uid's
 *                                   live incarnation, and how many it ever had (never tombstoned)
 *   dropped/<storage>               the definition of a deleted incarnation whose storage is being
 *                                   collected, with "deletedAt"; it wins over an index/ record that
 *                                   still names it live. A tombstone once collected
 *   collected/<storage>             {"uid", "shards", "deletedAt"}: what tasks of a collected
 *                                   incarnation still need, kept for good
 *   placement/<storage>             {"createdAt", "placement", "target", "plannedFor"}: the
 *                                   placement as the rebalancer moves replicas, and the targets it
 *                                   moves them to; it overrides the definition's (its only writer)
 *   rebuild/<storage>/<shard>/<node> {"at"}: a request to rebuild one replica from the log
 *   swap/<id>                       {"indexes": [definition, …]}: live definitions that change together
 *                                   (an index swap), applied in one snapshot
 *   deleted-tasks/<id>              {"ranges": [[first, last], …]}: task uids deleted from the history
 *   task-done/<uid>                 the view of a finished task, as it was when it finished: a task's
 *                                   end is written once, so it never changes afterwards
 *   key/<uid>                       an API key's record (auth.h; never its value), or a tombstone
 *   keys-seeded                     {"at"}: the default keys were created once; deleting one
 *                                   does not bring it back
 *   features                        the experimental features set through the API
 *   plan                            {"signature", "at", "weights": {storage: weight}, "request",
 *                                   "moves"}: the members the rebalancer last planned targets for
 *                                   (plan.h), what each index's shard weighed then, and the last
 *                                   rebalance request it served. Gateways place new indexes with
 *                                   these weights
 *   rebalance-request               {"at"}: an operator asks for every index to be planned anew
 * Topic miroir.tasks (1 partition) holds one record per task; its offset is the task uid.
 * Topic miroir.progress (one partition per lease, compacted) holds what ingest has done, written
 * only by the worker holding the shard's lease (mr_lease_of), in transactions the broker fences
 * with the ingest group's generation:
 *   applied/<storage>/<shard>/<node> {"offset": next offset to apply, "at", "incarnation"}
 *   commit/<storage>/<shard>        {"offset", "at", "isr": [[node, incarnation], …]}: every replica in
 *                                   the in-sync set has applied everything below offset; only they
 *                                   serve reads. The offset never goes back
 *   dlq/<storage>/<shard>/<offset>  {"error": {…}} for a record that went to the dead-letter topic
 *   removed/<storage>/<shard>/<offset> {"count"}: how many documents a deletion by filter or of
 *                                   everything (one record) removed from the shard, as its node said
 *   vote/<cancel>/<task>/<shard>    {"held": bool}: whether a task's part in a shard could still be
 *                                   canceled (held: no replica had begun it) when the cancel came
 *   checkpoint/<storage>/<shard>    {"offset", "begin", "end", "documents", "node", "at", "keptFrom"}:
 *                                   the shard's newest complete checkpoint, records begin..end of
 *                                   partition shard of miroir.ckpt.<storage>: the shard as one
 *                                   replica held it at offset (history.h), and where the index
 *                                   topic's history was cut after it
 *   copy/<storage>/<shard>/<node>   {"from", "offset", "documents", "pauseMs", "copyMs", "at"}: the
 *                                   last fill of that replica by a copy from a ready peer
 *
 * An mr_meta follows all three topics from the beginning (the progress topic read committed). Its
 * getters are thread-safe; one thread at a time calls mr_meta_poll. */
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

/* Polls until every topic is read up to its end as of now. Returns 0, or -1 on timeout. */
int mr_meta_sync(mr_meta *m, int timeout_ms);

/* Blocks until the follower (polled by another thread) has applied topic's record at offset.
 * Returns 0, or -1 on timeout. */
int mr_meta_wait(mr_meta *m, const char *topic, int64_t offset, int timeout_ms);

/* Blocks until the follower has applied something new, or timeout_ms passed. */
void mr_meta_wait_change(mr_meta *m, int timeout_ms);

mr_topology_holder *mr_meta_topology(mr_meta *m);

/* How many partitions (leases) the progress topic has. */
uint32_t mr_meta_leases(const mr_meta *m);

/* The next offset to apply for one replica (0 if it has applied nothing). If at is not NULL,
 * it receives the time of the last applied batch ("" if none). */
int64_t mr_meta_applied(mr_meta *m, const char *storage, uint32_t shard, const mr_replica *rep, char *at, size_t atlen);

/* A shard's commit point and in-sync set (see miroir.progress above). */
typedef struct mr_commit {
    int known; /* a commit record exists; else offset is 0 and every ready replica counts */
    int64_t offset;
    char at[48];
    size_t isr_count;
    mr_replica isr[MR_MAX_REPLICAS]; /* node and incarnation; state unused */
} mr_commit;

void mr_meta_commit(mr_meta *m, const char *storage, uint32_t shard, mr_commit *out);
/* Whether rep is in c's in-sync set (every ready replica is when c is not known). */
int mr_commit_has(const mr_commit *c, const mr_replica *rep);
/* Whether rep may serve reads: it is ready and has applied everything below c's point. That is
 * every in-sync replica, and one that caught up with the point before ingest took it back into
 * the set, so that a shard whose in-sync replica was just cut off still has one that answers. */
int mr_meta_readable(mr_meta *m, const char *storage, uint32_t shard, const mr_commit *c, const mr_replica *rep);

/* How many records of storage's shards went to the dead-letter topic. */
size_t mr_meta_dlq_count(mr_meta *m, const char *storage);

/* The pending rebuild requests: a new object "storage/shard/node" -> {"at"}. */
json_t *mr_meta_rebuilds(mr_meta *m);

/* The API keys: uid -> record (auth.h), a new reference to an object nobody changes (a new
 * one replaces it when a key changes, so pointer equality says "unchanged"). *seeded (if not
 * NULL) says whether the default keys were ever created. */
json_t *mr_meta_keys(mr_meta *m, int *seeded);
/* A record of one key: "features" (the experimental features set through the API), "plan" (what
 * the rebalancer last planned for) or "rebalance-request" (an operator's request to plan anew).
 * A new object, {} if there is none. */
json_t *mr_meta_singleton(mr_meta *m, const char *key);

/* How many task records exist: their uids are 0 … count-1. */
int64_t mr_meta_task_count(mr_meta *m);

/* A new reference to task uid's record, or NULL if unknown (or deleted). */
json_t *mr_meta_task(mr_meta *m, int64_t uid);
/* A new reference to the view a finished task was recorded with (task-done/), or NULL. */
json_t *mr_meta_task_done(mr_meta *m, int64_t uid);
/* The uids of the tasks not recorded as finished yet, oldest first (a new array). */
json_t *mr_meta_open_tasks(mr_meta *m);

/* Counts the dead-lettered records of (storage, shard) in [first, last] into *count, and returns
 * the error of the first as a new reference, or NULL if there is none. */
json_t *mr_meta_dlq_error(mr_meta *m, const char *storage, uint32_t shard, int64_t first, int64_t last,
                          size_t *count);

/* How many documents the deletion record at (storage, shard, offset) removed, or -1 if no
 * replica has said yet. */
int64_t mr_meta_removed(mr_meta *m, const char *storage, uint32_t shard, int64_t offset);

/* The uid's incarnation counter: how many incarnations it ever had (0: never created). */
uint64_t mr_meta_generation(mr_meta *m, const char *uid);

/* A new reference to collected/<storage> ({"uid", "shards", "deletedAt"}), or NULL. */
json_t *mr_meta_collected(mr_meta *m, const char *storage);

/* The newest complete checkpoint of a shard (see checkpoint/ above), a new reference, or NULL. */
json_t *mr_meta_checkpoint(mr_meta *m, const char *storage, uint32_t shard);
/* {"checkpoints": {"storage/shard": …}, "copies": {"storage/shard/node": …}}, a new object. */
json_t *mr_meta_history(mr_meta *m);

/* The progress keys of a storage (applied/, commit/, checkpoint/, copy/), a new array of
 * [partition, key], to tombstone them once it is collected. */
json_t *mr_meta_progress_keys(mr_meta *m, const char *storage);

/* ---- cancelation: see vote/ above; the decision is a pure function of the votes ---- */

/* Whether task uid was canceled: the uid of the cancel task that did, or -1. */
int64_t mr_meta_canceled_by(mr_meta *m, int64_t uid);
/* The decision of cancel on task: 1 canceled, 0 not (some replica had begun it), -1 pending. */
int mr_meta_cancel_decision(mr_meta *m, int64_t cancel, int64_t task);
/* For ingest, about one shard: the first offset no replica may take yet (a part held for a cancel
 * being decided; -1: none), and whether offset lies in a canceled part (then it is never applied).
 * Both are cheap; version changes whenever either answer may have. */
int64_t mr_meta_hold_from(mr_meta *m, const char *storage, uint32_t shard);
int mr_meta_is_canceled(mr_meta *m, const char *storage, uint32_t shard, int64_t offset);
int mr_meta_has_skips(mr_meta *m, const char *storage, uint32_t shard);
uint64_t mr_meta_cancel_version(mr_meta *m);
/* The parts still waiting for a vote: a new array of {"cancel", "task", "storage", "shard",
 * "first"}. */
json_t *mr_meta_pending_votes(mr_meta *m);

/* Writes key = value (NULL value: tombstone) to miroir.meta and waits for Kafka's ack; with
 * wait_applied, also until this follower has applied it (read-your-writes). */
int mr_meta_put(mr_meta *m, rd_kafka_t *producer, const char *key, const json_t *value, int wait_applied,
                mr_error *err);

/* Tombstones key in the progress topic's partition (for collection: the lease holder no longer
 * writes a collected storage's keys). Does not wait. */
void mr_meta_progress_tombstone(rd_kafka_t *producer, int32_t partition, const char *key);

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
