/* ingest.h: the ingest worker: a consumer group leases shard partitions; for each leased shard,
 * one replica stream per replica applies the partition to its node from its own offset.
 *
 * Ownership: main owns the ingest context. The context owns the group consumer (the lease), one
 * plain consumer per node (the readers, positioned per replica), the streams, and a producer for
 * metadata, DLQ and inbox routing. When the lease or the topology changes, the set of streams is
 * made again; a stream whose replica is unchanged keeps its batches and tasks in flight. Their
 * durable state is only the applied offset in miroir.meta. */
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

struct buf {
    char *data;
    size_t len, cap;
};

enum batch_kind { BATCH_NONE, BATCH_REPLACE, BATCH_UPDATE, BATCH_DELETE, BATCH_CONTROL };

/* A batch sent to Meilisearch, waiting for its task. */
#define TASK_NONE -1     /* nothing was sent (every record was poison): done once it is at the head */
#define TASK_REJECTED -2 /* the node refused the request itself; the reason is in error */

struct inflight {
    int64_t task_uid; /* a Meilisearch task uid, or TASK_NONE / TASK_REJECTED */
    json_t *error;    /* owned; for TASK_REJECTED */
    int64_t first, last;
    size_t count;
    enum mr_op op;
    /* for a one-record batch, what a DLQ entry needs if Meilisearch rejects it */
    char *key;
    char *value;
};

#define MAX_INFLIGHT 64

struct stream {
    char index[MR_INDEX_UID_MAX + 1]; /* the index's storage name (see topology.h) */
    char topic[256];
    char shard_index[300];
    uint32_t shard;
    uint32_t shard_count;
    char primary_key[256];
    char node_id[MR_NODE_ID_MAX];
    char node_url[256];
    uint64_t incarnation; /* the replica's (topology.h); its applied offset is recorded with it */
    int node_slot;
    int dlq_writer; /* the first replica of the shard writes DLQ records, so they are not duplicated */
    int deleted;    /* the index is deleted: only its delete-index records still apply */
    int rebuilding; /* the replica is building: replaying history, in larger batches */
    int64_t applied;  /* next offset to apply; durable in miroir.meta */
    int64_t expect;   /* next offset this stream wants from Kafka (after the pending records) */
    /* the batch being built */
    enum batch_kind kind;
    enum mr_op batch_op;
    struct buf body;
    size_t batch_docs;
    int64_t batch_first, batch_last, batch_started_ms;
    char *single_key, *single_value;
    /* Records read but not yet in a batch (the first did not fit the one being built), in
     * offset order. Reading on into this queue, rather than pausing and seeking back at every
     * batch boundary, keeps a replay of mixed operations as fast as a bulk load. */
    rd_kafka_message_t **pending;
    size_t pending_head, pending_len, pending_cap;
    struct inflight inflight[MAX_INFLIGHT];
    size_t inflight_count;
    /* failure handling */
    int64_t resume_at_ms;   /* paused until then after a failure */
    int failures;
    int64_t split_until;    /* while bisecting: offsets up to here go in batches of split_size */
    size_t split_size;
    int paused;
};

struct node_reader {
    char id[MR_NODE_ID_MAX];
    char url[256];
    rd_kafka_t *consumer; /* assign()-only: one position per replica of this node */
    int64_t last_poll_ms; /* last task poll */
};

typedef struct ingest {
    const mr_config *cfg;
    rd_kafka_t *group;    /* the lease on partitions */
    rd_kafka_t *producer;
    mr_meta *meta;
    mr_http *http;
    struct node_reader readers[MR_MAX_NODES]; /* one per node ever seen, created on first use */
    size_t reader_count;
    rd_kafka_topic_partition_list_t *leased; /* index-topic partitions this worker owns */
    mr_topology *topo_seen; /* the snapshot the streams were built from */
    int streams_dirty;
    struct stream *streams;
    size_t stream_count;
    atomic_int stopping;
} ingest;

/* apply.c */
void ingest_rebuild_streams(ingest *in);
void ingest_free_readers(ingest *in);
void ingest_free_streams(ingest *in);
/* Reads from the node readers, sends batches, polls tasks. Returns 1 if it did any work. */
int ingest_apply_round(ingest *in);

/* inbox.c: routes records of miroir.in.<index> to the shard partition. Returns records routed. */
int ingest_route_inbox(ingest *in, rd_kafka_message_t **msgs, size_t n);

/* dlq.c */
void ingest_dead_letter(ingest *in, const char *index, const char *source_topic, int32_t partition, int64_t offset,
                        const char *key, size_t key_len, const char *value, size_t value_len, const char *op,
                        const mr_error *why, int write_topic);

#endif
