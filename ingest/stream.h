/* stream.h: a replica stream and a shard's in-sync state, private to the modules that apply
 * records (apply.c), keep in-sync sets (insync.c) and answer cancelations (cancel.c).
 *
 * Ownership: the ingest context owns both arrays; a stream owns its batch, its queue of records
 * read ahead and its tasks in flight. */
#ifndef MIROIR_INGEST_STREAM_H
#define MIROIR_INGEST_STREAM_H

#include "buf.h"
#include "ingest.h"

/* BATCH_FOLD: a replay's window of document records of any kind, folded per document into its
 * final replace, update or delete (see fold_add in apply.c), sent as up to three tasks. */
enum batch_kind { BATCH_NONE, BATCH_REPLACE, BATCH_UPDATE, BATCH_DELETE, BATCH_CONTROL, BATCH_FOLD };

/* A batch sent to Meilisearch, waiting for its task. */
#define TASK_NONE -1     /* nothing was sent (every record was poison or skipped): done once at the head */
#define TASK_REJECTED -2 /* the node refused the request itself; the reason is in error */

struct inflight {
    int64_t task_uid; /* a Meilisearch task uid, or TASK_NONE / TASK_REJECTED */
    json_t *error;    /* owned; for TASK_REJECTED */
    int64_t first, last; /* last + 1 is applied once it and those before succeeded */
    int64_t window_last; /* a fold's part: the window's last offset, which a failure bisects */
    size_t count;        /* records in the batch (a fold's part: in its window) */
    enum mr_op op;
    int fold;            /* a part of a folded window: a failure bisects the window, never dead-letters */
    /* for a one-record batch, what a DLQ entry needs if Meilisearch rejects it */
    char *key;
    char *value;
};

#define MAX_INFLIGHT 64

/* history.c: how a building replica is filled without replaying its shard's whole history. */
enum fill {
    FILL_NONE,    /* replay the partition from the stream's applied offset (or done filling) */
    FILL_CLEAR,   /* drop what the replica's node holds of the shard, a copy cut short included */
    FILL_DRAIN,   /* the peer takes no new batch; waiting for its tasks in flight to end */
    FILL_EXPORT,  /* the peer's node exports the shard index, pinned to fill_offset, to this node */
    FILL_ABORT,   /* a stalled export is canceled; the replica starts over once it has ended */
    FILL_SETTLE,  /* this node indexes what it was sent */
    FILL_RESTORE, /* reading the shard's newest checkpoint (topic = miroir.ckpt.<storage>) */
};

struct ingest_stream {
    char uid[MR_INDEX_UID_MAX + 1];
    char storage[MR_STORAGE_MAX + 1];
    char topic[300];
    char shard_index[MR_STORAGE_MAX + 16];
    uint32_t shard;
    uint32_t shard_count;
    char primary_key[256];
    char node_id[MR_NODE_ID_MAX];
    char node_url[256];
    uint64_t incarnation; /* the replica's (topology.h); its applied offset is recorded with it */
    int node_slot;
    int ready;      /* the replica is ready: it may be in the shard's in-sync set */
    int dlq_writer; /* the first replica of the shard writes DLQ records, so they are not duplicated */
    int deleted;    /* the incarnation is dropped: only its delete-index records still apply */
    int rebuilding; /* the replica is building: replaying history, in larger batches */
    int64_t applied;     /* next offset to apply; durable in miroir.progress */
    int64_t advanced_ms; /* when applied last moved */
    int64_t behind_since_ms; /* when first seen behind its shard's most advanced replica (insync.h) */
    int64_t expect;      /* next offset this stream wants from Kafka (after the pending records) */
    int64_t sent_upto;   /* past the last offset sent to the node, which may have begun applying it */
    int64_t hold_from;   /* records from here wait for a cancelation to be decided (-1: none) */
    int skips;           /* some part of this shard is canceled: check each record */
    /* the batch being built */
    enum batch_kind kind;
    enum mr_op batch_op;
    mr_buf body;
    json_t *fold;        /* BATCH_FOLD: document id -> ["r"|"u"|"d", document or null] */
    size_t fold_bytes;
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
    int64_t resume_at_ms; /* paused until then after a failure */
    /* A write the node never answered (a batch, or history.c's deletion of the shard index before
     * a fill) may still run, after anything sent later: a hung node runs every request the kernel
     * kept for it when it wakes, in no set order. Until its shard index's tasks stop growing (the
     * strays have landed), the stream sends nothing; the records it then sends again from its
     * applied offset run after them. */
    int unanswered;
    int64_t stray_uid;     /* the newest task of the shard index the node showed (-1: none) */
    int64_t stray_seen_ms; /* when the node first showed it (0: the node has not answered yet) */
    int failures;
    int64_t split_until; /* while bisecting: offsets up to here go in batches of split_size */
    size_t split_size;
    int paused;
    int assigned;            /* its partition is assigned to the node's reader */
    int64_t topic_checked_ms; /* not assigned yet: when the topic was last looked for */
    /* history.c */
    int held;                /* sends no batch: a copy or a checkpoint reads its replica at one offset */
    enum fill fill;
    int fill_gave_up;        /* a restore failed: this life replays the log */
    int fill_peer_failed;    /* a copy failed: this life restores from a checkpoint, or replays */
    char fill_peer[MR_NODE_ID_MAX];
    int64_t fill_offset;     /* the copy's or checkpoint's offset X in the index topic */
    int64_t fill_task;       /* the node task the phase waits for */
    int64_t fill_documents;  /* what the peer held at fill_offset */
    int64_t fill_started_ms, fill_held_ms, fill_phase_ms, fill_polled_ms;
    int64_t fill_received;    /* tasks this node has for the shard index: grows as an export arrives */
    int64_t fill_received_ms; /* when fill_received last grew, or the export began processing */
    char fill_why[400];       /* why an export is being aborted */
    int64_t restore_begin, restore_end; /* FILL_RESTORE: the checkpoint's records in its partition */
};

/* A shard this worker applies: its commit point and in-sync set, as last written. The streams of
 * a shard are next to each other in the ingest context's array (they are made shard by shard, and
 * leave it a lease, so whole shards, at a time). */
struct ingest_shard {
    char storage[MR_STORAGE_MAX + 1];
    uint32_t shard;
    size_t first_stream, stream_count;
    int64_t commit;
    mr_replica isr[MR_MAX_REPLICAS]; /* node and incarnation */
    size_t isr_count;
    int known; /* a commit record was read or written */
    int64_t checkpoint_checked_ms; /* history.c: when a checkpoint was last considered */
};

/* apply.c: drops what the stream built or queued past its last sent batch and reads it again;
 * the batches in flight stay. */
void ingest_stream_unsend(ingest *in, struct ingest_stream *s);
/* apply.c: takes the records queued on s that now fit (after a hold ended). */
void ingest_stream_release(ingest *in, struct ingest_stream *s);

/* insync.c: the shard states of the streams in->streams, made again after a rebuild (a kept
 * shard keeps its state; a new one starts from its commit record). */
void ingest_shards_rebuild(ingest *in);
/* insync.c: works out every shard's in-sync set and commit point from its streams, and queues a
 * commit record where either changed. */
void ingest_shards_update(ingest *in, int64_t now);

/* cancel.c: votes on the parts of cancelations this worker holds the shard of, and sets each
 * stream's holds and skips. */
void ingest_cancels_update(ingest *in);

/* apply.c, for history.c */
void ingest_stream_rewind(ingest *in, struct ingest_stream *s, int64_t offset);
void ingest_write_applied(ingest *in, struct ingest_stream *s);
/* Moves the stream's reader to another topic (the same partition), from offset. */
void ingest_stream_retopic(ingest *in, struct ingest_stream *s, const char *topic, int64_t offset);

/* history.c: fills building replicas from a peer or a checkpoint, holds the replicas they read,
 * takes checkpoints and deletes the history they make needless. */
void ingest_history_round(ingest *in, int64_t now);
/* A restore reached the end of its checkpoint: the stream goes on in its index topic. */
void ingest_history_restored(ingest *in, struct ingest_stream *s);
/* The stream's reader asked for records its partition no longer holds. */
void ingest_history_gone(ingest *in, struct ingest_stream *s);

#endif
