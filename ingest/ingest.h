/* ingest.h: the ingest worker. A consumer group hands out leases (the partitions of
 * miroir.progress); a worker applies the shards whose lease it holds, each replica as a stream of
 * its own from its own applied offset, and records what it applied in its leases' partitions, in
 * transactions that the broker accepts only while the worker still holds them.
 *
 * Ownership: main owns the ingest context. The context owns the lease consumer, the inbox
 * consumer, a plain producer (inbox routing, dead letters), the progress writer (progress.c, a
 * transactional producer and its thread), one plain consumer per node (the readers, positioned
 * per replica), and the streams and shard states (apply.c, insync.c). Their durable state is
 * only what the progress topic holds. */
#ifndef MIROIR_INGEST_H
#define MIROIR_INGEST_H

#include <jansson.h>
#include <librdkafka/rdkafka.h>
#include <stdatomic.h>
#include <stdint.h>

#include "config.h"
#include "meili.h"
#include "meta.h"
#include "record.h"
#include "topology.h"

struct node_reader {
    char id[MR_NODE_ID_MAX];
    char url[256];
    rd_kafka_t *consumer; /* assign()-only: one position per replica of this node */
    int64_t last_poll_ms; /* last task poll */
};

struct ingest_stream;   /* stream.h */
struct ingest_shard;    /* stream.h */
struct ingest_progress; /* progress.c */
struct checkpoint_job;  /* history.c */

typedef struct ingest {
    const mr_config *cfg;
    rd_kafka_t *group;    /* the leases: a consumer group over miroir.progress, never read */
    rd_kafka_t *inbox;    /* a consumer group over the inbox topics */
    rd_kafka_t *producer; /* plain and idempotent: inbox routing, dead-letter topics */
    mr_meta *meta;
    mr_http *http;
    uint32_t leases;
    unsigned char *owned; /* leases entries: 1 while this worker holds the lease */
    struct ingest_progress *progress;
    struct node_reader readers[MR_MAX_NODES]; /* one per node ever seen, created on first use */
    size_t reader_count;
    mr_topology *topo_seen; /* the snapshot the streams were built from */
    uint64_t cancels_seen;  /* mr_meta_cancel_version when holds were last worked out */
    int streams_dirty;
    int leases_changed; /* since the streams were last made */
    struct ingest_stream *streams;
    size_t stream_count;
    struct ingest_shard *shards;
    size_t shard_count;
    json_t *my_votes;   /* "cancel/task/shard" -> {storage, shard, first, held}: voted here, until decided */
    json_t *dlq_topics; /* uid -> true: its dead-letter topic is known to exist */
    json_t *topics;     /* "node topic" -> true: that node's reader knows the index topic exists */
    struct checkpoint_job **checkpoints; /* history.c: the checkpoints being taken */
    size_t checkpoint_count;
} ingest;

/* lease.c: the consumer group that hands out leases */
int ingest_lease_start(ingest *in, char *err, size_t errlen);
/* Serves the group (heartbeats, rebalances). */
void ingest_lease_poll(ingest *in);
void ingest_lease_stop(ingest *in);
/* Whether this worker holds the lease of (storage, shard). */
int ingest_owns(const ingest *in, const char *storage, uint32_t shard);

/* progress.c: what the worker applied, written where only the lease holder may write */
int ingest_progress_start(ingest *in, char *err, size_t errlen);
void ingest_progress_stop(ingest *in);
/* Queues key = value (NULL: tombstone) for (storage, shard)'s lease; a later put of the same key
 * replaces it. The copies are the writer's, which writes them soon, in one transaction the broker
 * fences with the group's generation. */
void ingest_progress_put(ingest *in, const char *storage, uint32_t shard, const char *key, const char *value);
/* Whether the worker may act on its leases now: the broker accepted a transaction of its within
 * the lease window, shorter than the group's session timeout. A worker stopped past that (a
 * frozen process) sends nothing to any node until it has proved it still holds them. */
int ingest_may_act(ingest *in);
/* Asks the writer to prove the leases again (a transaction even with nothing queued). */
void ingest_progress_renew(ingest *in);
/* Waits until everything queued so far is written, at most timeout_ms. Returns 0 or -1. */
int ingest_progress_flush(ingest *in, int timeout_ms);
/* Tells the writer whether this worker holds lease; what is queued for a lease let go is dropped. */
void ingest_progress_hold(ingest *in, uint32_t lease, int held);

/* apply.c */
void ingest_rebuild_streams(ingest *in);
/* Ends the streams of the shards under lease (revoked). */
void ingest_drop_lease(ingest *in, uint32_t lease);
void ingest_free_readers(ingest *in);
void ingest_free_streams(ingest *in);
/* Reads from the node readers, sends batches, polls tasks, keeps the in-sync sets. Returns 1 if
 * it did any work. */
int ingest_apply_round(ingest *in);

/* history.c: stops the checkpoints being written (unfinished, they never count) and frees them. */
void ingest_history_stop(ingest *in);

/* inbox.c: routes records of miroir.in.<uid> to the shard partition of the uid's live index */
int ingest_inbox_start(ingest *in, char *err, size_t errlen);
/* Routes what arrived; returns 1 if it routed anything. */
int ingest_inbox_poll(ingest *in);
void ingest_inbox_stop(ingest *in);

/* dlq.c: sets a record aside in the uid's dead-letter topic (write_topic), and for a record of a
 * shard partition (storage not NULL) marks it in the progress topic, where its task reads it. */
void ingest_dead_letter(ingest *in, const char *uid, const char *storage, const char *source_topic, int32_t partition,
                        int64_t offset, const char *key, size_t key_len, const char *value, size_t value_len,
                        const char *op, const mr_error *why, int write_topic);

#endif
