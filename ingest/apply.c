/* apply.c: replica streams: batch the records of one shard partition, send them to one node,
 * follow the node's tasks, and advance that replica's applied offset only once they succeed. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "alloc.h"
#include "fold.h"
#include "hrw.h"
#include "kafka.h"
#include "seq.h"
#include "stream.h"
#include "util.h"

#define MAX_BATCH_BYTES (64u << 20)
#define TASK_POLL_MS 10
/* A node that returns is written to again within this; one that hangs costs its worker one
 * connect timeout per this at most (a worker's round waits for all its nodes). */
#define MAX_BACKOFF_MS 5000
#define MAX_PENDING 20000     /* records queued ahead of the batch; past it the partition pauses */
#define REBUILD_BATCH_MS 1000 /* a replay fills its large batches from Kafka; wait for that, not for live writers */

typedef struct ingest_stream stream;

/* Batch bodies start at this size: most batches fit, and larger ones double from it. */
#define BODY_FIRST_CAP 65536

/* ---------------------------------------------------------------- stream life cycle */

static void set_paused(ingest *in, stream *s, int paused);

static void batch_reset(stream *s)
{
    s->kind = BATCH_NONE;
    s->body.len = 0;
    if (s->fold)
        json_object_clear(s->fold);
    s->fold_bytes = 0;
    s->batch_docs = 0;
    s->batch_first = s->batch_last = -1;
    free(s->single_key);
    free(s->single_value);
    s->single_key = s->single_value = NULL;
}

static void inflight_pop(stream *s)
{
    json_decref(s->inflight[0].error);
    free(s->inflight[0].key);
    free(s->inflight[0].value);
    memmove(&s->inflight[0], &s->inflight[1], (s->inflight_count - 1) * sizeof s->inflight[0]);
    s->inflight_count--;
}

static size_t pending_count(const stream *s)
{
    return s->pending_len - s->pending_head;
}

static void pending_drop(stream *s)
{
    for (size_t i = s->pending_head; i < s->pending_len; i++)
        rd_kafka_message_destroy(s->pending[i]);
    s->pending_head = s->pending_len = 0;
}

static void stream_clear(stream *s)
{
    batch_reset(s);
    while (s->inflight_count)
        inflight_pop(s);
    pending_drop(s);
}

/* The stream's partition as a one-element list, for librdkafka's per-list calls; caller destroys. */
static rd_kafka_topic_partition_list_t *stream_partition(const stream *s)
{
    rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(1);
    rd_kafka_topic_partition_list_add(l, s->topic, (int32_t)s->shard);
    return l;
}

/* The stream's partition leaves its node's reader, and what it built or queued is dropped.
 * librdkafka keeps a partition's pause across assignments, so the pause ends here too. */
static void stream_unassign(ingest *in, stream *s)
{
    rd_kafka_topic_partition_list_t *l = stream_partition(s);
    rd_kafka_t *c = in->readers[s->node_slot].consumer;
    if (s->paused)
        rd_kafka_resume_partitions(c, l);
    rd_kafka_error_t *e = s->assigned ? rd_kafka_incremental_unassign(c, l) : NULL;
    if (e) {
        mr_log("warn", "ingest", "unassigning %s/%u from the reader of %s: %s", s->topic, s->shard, s->node_id,
               rd_kafka_error_string(e));
        rd_kafka_error_destroy(e);
    }
    rd_kafka_topic_partition_list_destroy(l);
    stream_clear(s);
    s->assigned = s->paused = 0;
}

/* A stream ends. */
static void stream_end(ingest *in, stream *s)
{
    stream_unassign(in, s);
    mr_buf_free(&s->body);
    json_decref(s->fold);
    free(s->pending);
}

/* How often a stream whose topic isn't there yet looks again. Assigning a partition of a topic
 * the broker doesn't know would leave the reader to find it by its own backoff, seconds later;
 * a new incarnation's topic comes a moment after its definition. */
#define TOPIC_CHECK_MS 10

/* A stream starts: its node's reader reads its partition from where the stream stands, once the
 * topic exists. */
static void stream_start(ingest *in, stream *s, int64_t now)
{
    if (s->assigned || now - s->topic_checked_ms < TOPIC_CHECK_MS)
        return;
    rd_kafka_t *c = in->readers[s->node_slot].consumer;
    char seen[400]; /* each reader asks for itself: the question also fills its metadata */
    snprintf(seen, sizeof seen, "%s %s", s->node_id, s->topic);
    if (!json_object_get(in->topics, seen)) {
        s->topic_checked_ms = now;
        if (mr_kafka_topic_exists(c, s->topic) != 1)
            return;
        json_object_set_new(in->topics, seen, json_true());
    }
    rd_kafka_topic_partition_list_t *l = stream_partition(s);
    l->elems[0].offset = s->expect;
    rd_kafka_error_t *e = rd_kafka_incremental_assign(c, l);
    if (e) { /* then the reader reads nothing of it until the stream is made again: say so */
        mr_log("error", "ingest", "assigning %s/%u to the reader of %s: %s", s->topic, s->shard, s->node_id,
               rd_kafka_error_string(e));
        rd_kafka_error_destroy(e);
    } else {
        s->assigned = 1;
    }
    rd_kafka_topic_partition_list_destroy(l);
}

static void start_streams(ingest *in, int64_t now)
{
    for (size_t i = 0; i < in->stream_count; i++)
        stream_start(in, &in->streams[i], now);
}

void ingest_free_streams(ingest *in)
{
    for (size_t i = 0; i < in->stream_count; i++)
        stream_end(in, &in->streams[i]);
    free(in->streams);
    in->streams = NULL;
    in->stream_count = 0;
    ingest_shards_rebuild(in);
}

void ingest_drop_lease(ingest *in, uint32_t lease)
{
    size_t kept = 0;
    for (size_t i = 0; i < in->stream_count; i++) {
        stream *s = &in->streams[i];
        if (mr_lease_of(s->storage, s->shard, in->leases) == lease)
            stream_end(in, s);
        else
            in->streams[kept++] = *s;
    }
    in->stream_count = kept;
    ingest_shards_rebuild(in);
}

void ingest_free_readers(ingest *in)
{
    for (size_t i = 0; i < in->reader_count; i++) {
        rd_kafka_consumer_close(in->readers[i].consumer);
        rd_kafka_destroy(in->readers[i].consumer);
    }
    in->reader_count = 0;
}

/* The reader of node id (its URL refreshed), created on first use; -1 if none can be. */
static int reader_slot(ingest *in, const mr_node *node)
{
    for (size_t i = 0; i < in->reader_count; i++) {
        if (strcmp(in->readers[i].id, node->id) == 0) {
            snprintf(in->readers[i].url, sizeof in->readers[i].url, "%s", node->url);
            return (int)i;
        }
    }
    if (in->reader_count == MR_MAX_NODES)
        return -1;
    char err[512];
    /* a position below what the partition still holds (its history cut after a checkpoint) must
     * be said, never skipped silently to the partition's start */
    static const char *const strict[] = {"auto.offset.reset", "error", NULL};
    rd_kafka_t *c = mr_kafka_consumer(in->cfg, NULL, strict, err, sizeof err);
    if (!c) {
        mr_log("error", "ingest", "no reader for node %s: %s", node->id, err);
        return -1;
    }
    rd_kafka_poll_set_consumer(c);
    struct node_reader *r = &in->readers[in->reader_count];
    *r = (struct node_reader){.consumer = c};
    snprintf(r->id, sizeof r->id, "%s", node->id);
    snprintf(r->url, sizeof r->url, "%s", node->url);
    return (int)in->reader_count++;
}

/* Takes the stream of the same replica (same life) out of old, if there is one. */
static int adopt(stream *old, size_t old_count, stream *s)
{
    for (size_t i = 0; i < old_count; i++) {
        stream *o = &old[i];
        if (o->topic[0] && o->shard == s->shard && o->incarnation == s->incarnation &&
            strcmp(o->node_id, s->node_id) == 0 && strcmp(o->topic, s->topic) == 0) {
            stream fresh = *s;
            *s = *o;
            memset(o, 0, sizeof *o); /* now owned by s */
            memcpy(s->uid, fresh.uid, sizeof s->uid); /* a swap gives a storage to another uid */
            s->deleted = fresh.deleted;
            s->rebuilding = fresh.rebuilding;
            s->ready = fresh.ready;
            s->dlq_writer = fresh.dlq_writer;
            memcpy(s->primary_key, fresh.primary_key, sizeof s->primary_key);
            memcpy(s->node_url, fresh.node_url, sizeof s->node_url);
            s->node_slot = fresh.node_slot;
            return 1;
        }
    }
    return 0;
}

/* A new stream for replica rep of (ix, shard) on member, or NULL when none is to be. */
static stream *stream_for(ingest *in, const mr_index *ix, uint32_t shard, const mr_replica *rep, int first_writer,
                          size_t *cap)
{
    const mr_member *member = mr_topology_member(in->topo_seen, rep->node);
    /* new: the rebalancer is still clearing the node; retiring: about to be dropped */
    if (rep->state == MR_REPLICA_RETIRING || rep->state == MR_REPLICA_NEW || !member)
        return NULL;
    int slot = reader_slot(in, &member->node);
    if (slot < 0)
        return NULL;
    if (in->stream_count == *cap) {
        *cap = *cap ? *cap * 2 : 16;
        in->streams = mr_realloc(in->streams, *cap * sizeof *in->streams);
    }
    stream *s = &in->streams[in->stream_count++];
    memset(s, 0, sizeof *s);
    snprintf(s->uid, sizeof s->uid, "%s", ix->uid);
    snprintf(s->storage, sizeof s->storage, "%s", ix->storage);
    snprintf(s->topic, sizeof s->topic, "%s%s", MR_TOPIC_INDEX_PREFIX, ix->storage);
    mr_shard_index_name(s->shard_index, sizeof s->shard_index, ix->storage, shard);
    snprintf(s->primary_key, sizeof s->primary_key, "%s", ix->primary_key);
    s->shard = shard;
    s->shard_count = ix->shard_count;
    snprintf(s->node_id, sizeof s->node_id, "%s", member->node.id);
    snprintf(s->node_url, sizeof s->node_url, "%s", member->node.url);
    s->incarnation = rep->incarnation;
    s->node_slot = slot;
    s->dlq_writer = first_writer;
    s->deleted = ix->deleted;
    s->rebuilding = rep->state == MR_REPLICA_BUILDING;
    s->ready = rep->state == MR_REPLICA_READY;
    return s;
}

/* The streams are every replica of every shard whose lease this worker holds. A stream whose
 * replica (node, shard, incarnation) is unchanged is kept as it is, with its batch, its queue and
 * its tasks in flight; only the readers' partitions that come or go are (un)assigned. */
void ingest_rebuild_streams(ingest *in)
{
    int64_t began = mr_now_ms();
    stream *old = in->streams;
    size_t old_count = in->stream_count;
    in->streams = NULL;
    in->stream_count = 0;
    /* A lease taken over must start from the applied offsets and commit point its last holder
     * wrote: read up to Kafka's end first. A topology change alone needs no such wait (a new
     * replica or incarnation has no progress yet), and it comes often. */
    if (in->leases_changed && mr_meta_sync(in->meta, 10000))
        mr_log("warn", "ingest", "the progress topic was not read to its end within 10 s");
    in->leases_changed = 0;
    mr_topology_holder *holder = mr_meta_topology(in->meta);
    if (in->topo_seen)
        mr_topology_release(holder, in->topo_seen);
    in->topo_seen = mr_topology_acquire(holder);
    in->streams_dirty = 0;
    size_t cap = 0, kept = 0, fresh = 0;
    for (size_t i = 0; i < in->topo_seen->count; i++) {
        const mr_index *ix = &in->topo_seen->indexes[i];
        for (uint32_t shard = 0; shard < ix->shard_count; shard++) {
            if (!ingest_owns(in, ix->storage, shard))
                continue;
            const mr_shard *sh = &ix->shards[shard];
            int first_writer = 1;
            for (size_t r = 0; r < sh->count; r++) {
                stream *s = stream_for(in, ix, shard, &sh->replicas[r], first_writer, &cap);
                if (!s)
                    continue;
                first_writer = 0;
                if (adopt(old, old_count, s)) {
                    kept++;
                    continue;
                }
                s->applied = mr_meta_applied(in->meta, ix->storage, shard, &sh->replicas[r], NULL, 0);
                s->expect = s->sent_upto = s->applied;
                s->advanced_ms = mr_now_ms();
                s->split_until = s->hold_from = -1;
                batch_reset(s);
                fresh++;
            }
        }
    }
    /* The replicas this worker no longer applies go first: a replica rebuilt as a new life reads
     * the same partition on the same reader, which takes a partition once. */
    for (size_t i = 0; i < old_count; i++)
        if (old[i].topic[0])
            stream_end(in, &old[i]);
    free(old);
    start_streams(in, mr_now_ms());
    ingest_shards_rebuild(in);
    in->cancels_seen = (uint64_t)-1; /* holds and skips are worked out again for every stream */
    if (fresh || kept != old_count)
        mr_log("info", "ingest", "applying %zu replica streams (%zu kept, %zu new) after %lld ms", in->stream_count,
               kept, fresh, (long long)(mr_now_ms() - began));
}

static stream *stream_find(ingest *in, int slot, const char *topic, int32_t partition)
{
    for (size_t i = 0; i < in->stream_count; i++) {
        stream *s = &in->streams[i];
        if (s->node_slot == slot && s->shard == (uint32_t)partition && strcmp(s->topic, topic) == 0)
            return s;
    }
    return NULL;
}

static void set_paused(ingest *in, stream *s, int paused)
{
    if (s->paused == paused || !s->assigned)
        return;
    rd_kafka_topic_partition_list_t *l = stream_partition(s);
    rd_kafka_t *c = in->readers[s->node_slot].consumer;
    if (paused) {
        rd_kafka_pause_partitions(c, l);
    } else {
        /* Whatever was fetched while paused is stale: read again from where the stream stands. */
        l->elems[0].offset = s->expect;
        rd_kafka_error_t *e = rd_kafka_seek_partitions(c, l, 2000);
        if (e)
            rd_kafka_error_destroy(e);
        rd_kafka_resume_partitions(c, l);
    }
    rd_kafka_topic_partition_list_destroy(l);
    s->paused = paused;
}

static void write_applied(ingest *in, stream *s)
{
    if (s->fill == FILL_RESTORE)
        return; /* offsets of the checkpoint's topic: the replica has applied nothing of its own yet */
    char key[700], at[48], value[160];
    snprintf(key, sizeof key, "applied/%s/%u/%s", s->storage, s->shard, s->node_id);
    mr_now_rfc3339(at, sizeof at);
    snprintf(value, sizeof value, "{\"offset\":%" PRId64 ",\"at\":\"%s\",\"incarnation\":%" PRIu64 "}", s->applied,
             at, s->incarnation);
    ingest_progress_put(in, s->storage, s->shard, key, value);
}

/* Starts over from offset: everything built or sent after it is forgotten and read again.
 * Safe because applying is idempotent and Meilisearch runs the tasks of an index in order. */
static void stream_rewind(ingest *in, stream *s, int64_t offset, long backoff_ms)
{
    stream_clear(s);
    s->expect = offset;
    s->resume_at_ms = mr_now_ms() + backoff_ms;
    set_paused(in, s, 1);
}

void ingest_stream_rewind(ingest *in, stream *s, int64_t offset)
{
    s->sent_upto = offset;
    stream_rewind(in, s, offset, 0);
}

void ingest_write_applied(ingest *in, stream *s)
{
    write_applied(in, s);
}

void ingest_stream_retopic(ingest *in, stream *s, const char *topic, int64_t offset)
{
    char next[sizeof s->topic];
    snprintf(next, sizeof next, "%s", topic); /* topic may be s->topic itself */
    stream_unassign(in, s);
    s->topic_checked_ms = 0;
    memcpy(s->topic, next, sizeof next);
    s->expect = s->sent_upto = offset;
    stream_start(in, s, mr_now_ms());
}

void ingest_stream_unsend(ingest *in, stream *s)
{
    int64_t from = s->batch_first >= 0 ? s->batch_first
                   : pending_count(s) ? s->pending[s->pending_head]->offset
                                      : s->expect;
    batch_reset(s);
    pending_drop(s);
    s->expect = from;
    set_paused(in, s, 1); /* resumed at the next round, reading again from expect */
}

/* The wait before the next try after failures: doubling, up to MAX_BACKOFF_MS. */
static long backoff_ms(const ingest *in, const stream *s)
{
    long backoff = in->cfg->ingest_retry_ms << (s->failures < 8 ? s->failures : 8);
    return backoff > MAX_BACKOFF_MS ? MAX_BACKOFF_MS : backoff;
}

static void stream_node_failed(ingest *in, stream *s, const char *why)
{
    if (s->failures == 0)
        mr_log("warn", "ingest", "replica %s on %s: %s; retrying from offset %" PRId64 "%s", s->shard_index,
               s->node_id, why, s->applied, s->unanswered ? " once what the node may still run has landed" : "");
    long backoff = backoff_ms(in, s);
    s->failures++;
    stream_rewind(in, s, s->applied, backoff);
}

/* ---------------------------------------------------------------- taking records */

static enum batch_kind kind_of(enum mr_op op)
{
    switch (op) {
    case MR_OP_REPLACE:
        return BATCH_REPLACE;
    case MR_OP_UPDATE:
        return BATCH_UPDATE;
    case MR_OP_DELETE:
        return BATCH_DELETE;
    default:
        return BATCH_CONTROL;
    }
}

static void extend_range(stream *s, int64_t offset)
{
    if (s->batch_first < 0) {
        s->batch_first = offset;
        s->batch_started_ms = mr_now_ms();
    }
    s->batch_last = offset;
}

/* Makes the document line for a replace or update, or sets err. The key is the authority: a
 * document without its primary key gets it from the key; one with another id is poison. The
 * primary key is the index's, or the one the record was written with when this worker has not
 * read the index's yet (its first write set it). */
static char *document_line(const mr_record *rec, const char *pk, uint64_t seq, mr_error *err)
{
    json_error_t jerr;
    json_t *doc = json_loadb(rec->value, rec->value_len, 0, &jerr);
    if (!json_is_object(doc)) {
        mr_error_set(err, "malformed_payload", "record value is not a JSON object: %s", doc ? "" : jerr.text);
        json_decref(doc);
        return NULL;
    }
    json_t *id_value = pk[0] ? json_object_get(doc, pk) : NULL;
    if (pk[0] && !id_value) {
        json_object_set_new(doc, pk, json_stringn(rec->key, rec->key_len));
    } else if (id_value) {
        char id[MR_DOCID_MAX + 1];
        int n = mr_docid_from_json(id_value, id, sizeof id, err);
        if (n < 0) {
            json_decref(doc);
            return NULL;
        }
        if ((size_t)n != rec->key_len || memcmp(id, rec->key, rec->key_len) != 0) {
            mr_error_set(err, "invalid_document_id", "record key `%.*s` differs from the document's `%s` `%s`",
                         (int)rec->key_len, rec->key, pk, id);
            json_decref(doc);
            return NULL;
        }
    }
    char seq_text[MR_SEQ_LEN + 1];
    mr_seq_encode(seq, seq_text);
    json_object_set_new(doc, MR_SEQ_FIELD, json_string(seq_text));
    char *line = json_dumps(doc, JSON_COMPACT);
    json_decref(doc);
    return line;
}

static size_t batch_limit(const ingest *in, const stream *s, int64_t offset)
{
    if (s->split_until >= 0 && offset <= s->split_until)
        return s->split_size;
    /* A replay of history has no reader waiting on it: Meilisearch indexes larger batches faster. */
    return (size_t)(s->rebuilding ? in->cfg->rebuild_batch_docs : in->cfg->ingest_batch_docs);
}

static void pending_push(stream *s, rd_kafka_message_t *m)
{
    if (s->pending_head > 0 && s->pending_head == s->pending_len)
        s->pending_head = s->pending_len = 0;
    if (s->pending_len == s->pending_cap) {
        if (s->pending_head > 0) { /* slide the live part to the front before growing */
            memmove(s->pending, s->pending + s->pending_head, pending_count(s) * sizeof *s->pending);
            s->pending_len -= s->pending_head;
            s->pending_head = 0;
        }
        if (s->pending_len == s->pending_cap) {
            s->pending_cap = s->pending_cap ? s->pending_cap * 2 : 256;
            s->pending = mr_realloc(s->pending, s->pending_cap * sizeof *s->pending);
        }
    }
    s->pending[s->pending_len++] = m;
}

/* Folds a record into the stream's window (fold.h). */
static void fold_add(stream *s, enum mr_op op, const char *key, size_t key_len, const char *line)
{
    if (!s->fold)
        s->fold = json_object();
    mr_fold_add(s->fold, op, key, key_len, line ? json_loads(line, 0, NULL) : NULL);
    s->fold_bytes += line ? strlen(line) : key_len;
}

/* A record nothing is to be done with: the incarnation is dropped (only its deletion still
 * applies) or the record belongs to a canceled task. */
static int skipped(ingest *in, const stream *s, const mr_record *rec, int64_t offset)
{
    if (s->deleted && rec->op != MR_OP_DELETE_INDEX)
        return 1; /* whatever precedes or follows the deletion, the index ends up gone */
    return s->skips && mr_meta_is_canceled(in->meta, s->storage, s->shard, offset);
}

/* The record's sequence number (seq.h): the writer's, or its place in the log. */
static uint64_t record_seq(const rd_kafka_message_t *m)
{
    size_t len = 0;
    const char *given = mr_header_get(m, MR_HEADER_SEQ, &len);
    char text[24];
    if (given && len > 0 && len < sizeof text) {
        memcpy(text, given, len);
        text[len] = '\0';
        char *end;
        unsigned long long v = strtoull(text, &end, 10);
        if (!*end)
            return (uint64_t)v;
    }
    return mr_seq_of_record(rd_kafka_message_timestamp(m, NULL), m->offset);
}

/* Takes one record into the stream's batch, or dead-letters or skips it: returns 0 and owns m.
 * Returns 1, m untouched, when it doesn't fit the batch being built, or is held. */
static int stream_take(ingest *in, stream *s, rd_kafka_message_t *m)
{
    /* a restore reads a checkpoint's topic: holds and cancels name offsets of the index topic */
    int restoring = s->fill == FILL_RESTORE;
    if (!restoring && s->hold_from >= 0 && m->offset >= s->hold_from)
        return 1;
    size_t op_len = 0, pk_len = 0;
    const char *op = mr_header_get(m, MR_HEADER_OP, &op_len);
    const char *pk_header = mr_header_get(m, MR_HEADER_PRIMARY_KEY, &pk_len);
    char pk[256];
    snprintf(pk, sizeof pk, "%.*s", s->primary_key[0] || !pk_header ? (int)strlen(s->primary_key) : (int)pk_len,
             s->primary_key[0] || !pk_header ? s->primary_key : pk_header);
    mr_record rec;
    mr_error err = {0};
    char *line = NULL;
    if (mr_record_decode(m->key, m->key_len, m->payload, m->len, op, op_len, &rec, &err) == 0 &&
        !mr_op_is_control(rec.op) && mr_shard_of(rec.key, rec.key_len, s->shard_count) != s->shard)
        mr_error_set(&err, "bad_request", "record for document `%.*s` is on partition %u, but its shard is %u",
                     (int)rec.key_len, rec.key, s->shard, mr_shard_of(rec.key, rec.key_len, s->shard_count));
    int skip = !err.status && (rec.op == MR_OP_CHECKPOINT || (!restoring && skipped(in, s, &rec, m->offset)));
    if (!err.status && !skip && (rec.op == MR_OP_REPLACE || rec.op == MR_OP_UPDATE))
        line = document_line(&rec, pk, record_seq(m), &err);
    if (err.status || skip) {
        if (err.status)
            ingest_dead_letter(in, s->uid, s->storage, s->topic, (int32_t)s->shard, m->offset, m->key, m->key_len, m->payload,
                               m->len, op ? mr_op_name(mr_op_parse(op, op_len)) : "replace", &err, s->dlq_writer);
        extend_range(s, m->offset);
        rd_kafka_message_destroy(m);
        return 0;
    }
    int folding = s->rebuilding && !(s->split_until >= 0 && m->offset <= s->split_until) && !mr_op_is_control(rec.op);
    enum batch_kind kind = folding ? BATCH_FOLD : kind_of(rec.op);
    int fits = s->kind == BATCH_NONE ||
               (s->kind == kind && kind != BATCH_CONTROL && s->batch_docs < batch_limit(in, s, m->offset) &&
                s->body.len + s->fold_bytes < MAX_BATCH_BYTES);
    if (!fits) {
        free(line);
        return 1;
    }
    if (s->kind == BATCH_NONE) {
        s->kind = kind;
        s->batch_op = rec.op;
    }
    if (kind == BATCH_FOLD) {
        fold_add(s, rec.op, rec.key, rec.key_len, line);
    } else if (kind == BATCH_DELETE) {
        json_t *id = json_stringn(rec.key, rec.key_len);
        char *quoted = json_dumps(id, JSON_ENCODE_ANY | JSON_COMPACT);
        json_decref(id);
        if (s->body.len)
            mr_buf_add(&s->body, ",", 1, BODY_FIRST_CAP);
        mr_buf_add(&s->body, quoted, strlen(quoted), BODY_FIRST_CAP);
        free(quoted);
    } else if (kind == BATCH_CONTROL) {
        mr_buf_add(&s->body, rec.value ? rec.value : "", rec.value_len, BODY_FIRST_CAP);
    } else {
        mr_buf_add(&s->body, line, strlen(line), BODY_FIRST_CAP);
        mr_buf_add(&s->body, "\n", 1, BODY_FIRST_CAP);
    }
    s->batch_docs++;
    if (s->batch_docs == 1) {
        s->single_key = mr_strndup(rec.key ? rec.key : "", rec.key_len);
        s->single_value = line ? mr_strdup(line) : mr_strndup(rec.value ? rec.value : "", rec.value_len);
    }
    free(line);
    extend_range(s, m->offset);
    rd_kafka_message_destroy(m);
    return 0;
}

/* After a batch left, or a hold ended, the queued records start the next ones. */
void ingest_stream_release(ingest *in, stream *s)
{
    while (pending_count(s) && stream_take(in, s, s->pending[s->pending_head]) == 0)
        s->pending_head++;
}

/* A record from the node's reader: into the batch, or queued behind the records waiting. */
static void stream_receive(ingest *in, stream *s, rd_kafka_message_t *m)
{
    if (m->offset < s->expect || s->paused) {
        rd_kafka_message_destroy(m); /* stale, or fetched before a pause: read again on resume */
        return;
    }
    s->expect = m->offset + 1;
    if (pending_count(s) == 0 && stream_take(in, s, m) == 0)
        return;
    pending_push(s, m);
    if (pending_count(s) >= MAX_PENDING)
        set_paused(in, s, 1);
}

/* ---------------------------------------------------------------- sending batches */

static int batch_due(const ingest *in, const stream *s, int64_t now)
{
    /* while bisecting, one task at a time, so that Meilisearch can't batch it with another */
    size_t max_inflight = s->split_until >= 0 ? 1 : (size_t)in->cfg->ingest_inflight;
    if (s->held || s->unanswered || s->batch_first < 0 || s->inflight_count >= max_inflight || now < s->resume_at_ms)
        return 0;
    if (pending_count(s) > 0 || s->kind == BATCH_CONTROL || s->batch_docs >= batch_limit(in, s, s->batch_first) ||
        (s->hold_from >= 0 && s->expect >= s->hold_from))
        return 1;
    if (!s->rebuilding)
        return now - s->batch_started_ms >= in->cfg->ingest_batch_ms;
    /* A replay waits for a full batch, unless it has read all there is (the end offset the
     * reader last saw from the broker, no round trip) or has waited long enough. */
    int64_t lo, hi;
    if (rd_kafka_get_watermark_offsets(in->readers[s->node_slot].consumer, s->topic, (int32_t)s->shard, &lo, &hi) ==
            RD_KAFKA_RESP_ERR_NO_ERROR && hi >= 0 && s->expect >= hi)
        return 1;
    return now - s->batch_started_ms >= REBUILD_BATCH_MS;
}

/* Fills r with the Meilisearch call for the stream's batch. */
static void batch_request(const stream *s, mr_http_req *r, char *scratch, size_t scratch_len)
{
    const char *base = s->node_url;
    char *epk = curl_easy_escape(NULL, s->primary_key, 0);
    r->body = s->body.data;
    r->body_len = s->body.len;
    r->content_type = "application/json";
    switch (s->kind) {
    case BATCH_REPLACE:
    case BATCH_UPDATE:
        r->method = s->kind == BATCH_REPLACE ? "POST" : "PUT";
        r->content_type = "application/x-ndjson";
        snprintf(r->url, sizeof r->url, "%s/indexes/%s/documents%s%s", base, s->shard_index, epk[0] ? "?primaryKey=" : "",
                 epk);
        break;
    case BATCH_DELETE:
        r->method = "POST";
        snprintf(scratch, scratch_len, "[%s]", s->body.data);
        r->body = scratch;
        r->body_len = strlen(scratch);
        snprintf(r->url, sizeof r->url, "%s/indexes/%s/documents/delete-batch", base, s->shard_index);
        break;
    default:
        switch (s->batch_op) {
        case MR_OP_CREATE_INDEX: {
            json_t *v = json_loadb(s->body.data ? s->body.data : "{}", s->body.len, 0, NULL);
            const char *pk = json_string_value(json_object_get(v, "primaryKey"));
            json_t *b = json_pack("{s:s, s:s?}", "uid", s->shard_index, "primaryKey", pk ? pk : NULL);
            char *text = json_dumps(b, JSON_COMPACT);
            snprintf(scratch, scratch_len, "%s", text);
            free(text);
            json_decref(b);
            json_decref(v);
            r->method = "POST";
            r->body = scratch;
            r->body_len = strlen(scratch);
            snprintf(r->url, sizeof r->url, "%s/indexes", base);
            break;
        }
        case MR_OP_CLEAR:
            r->method = "DELETE";
            r->body = NULL;
            r->body_len = 0;
            snprintf(r->url, sizeof r->url, "%s/indexes/%s/documents", base, s->shard_index);
            break;
        case MR_OP_DELETE_BY_FILTER:
            r->method = "POST";
            snprintf(r->url, sizeof r->url, "%s/indexes/%s/documents/delete", base, s->shard_index);
            break;
        case MR_OP_SETTINGS: {
            json_t *v = json_loadb(s->body.data ? s->body.data : "", s->body.len, 0, NULL);
            if (json_is_object(v)) { /* else sent as it is, for the node to refuse */
                mr_seq_settings_for_node(v);
                char *text = json_dumps(v, JSON_COMPACT);
                snprintf(scratch, scratch_len, "%s", text);
                free(text);
                r->body = scratch;
                r->body_len = strlen(scratch);
            }
            json_decref(v);
            r->method = "PATCH";
            snprintf(r->url, sizeof r->url, "%s/indexes/%s/settings", base, s->shard_index);
            break;
        }
        case MR_OP_UPDATE_INDEX:
            r->method = "PATCH";
            snprintf(r->url, sizeof r->url, "%s/indexes/%s", base, s->shard_index);
            break;
        default: /* MR_OP_DELETE_INDEX */
            r->method = "DELETE";
            r->body = NULL;
            r->body_len = 0;
            snprintf(r->url, sizeof r->url, "%s/indexes/%s", base, s->shard_index);
            break;
        }
    }
    curl_free(epk);
}

static struct inflight *push_entry(stream *s, int64_t task_uid, int64_t first, int64_t last, size_t count, enum mr_op op)
{
    struct inflight *f = &s->inflight[s->inflight_count++];
    *f = (struct inflight){.task_uid = task_uid, .first = first, .last = last, .window_last = last, .count = count,
                           .op = op};
    return f;
}

static void push_inflight(stream *s, int64_t task_uid)
{
    struct inflight *f = push_entry(s, task_uid, s->batch_first, s->batch_last, s->batch_docs, s->batch_op);
    if (s->batch_docs == 1) {
        f->key = s->single_key;
        f->value = s->single_value;
        s->single_key = s->single_value = NULL;
    }
    batch_reset(s);
}

/* The requests of a folded window, in out (up to three, each with its own body in bodies):
 * deletes, replaces, updates, which touch different documents. Returns how many. */
static size_t fold_requests(const stream *s, mr_http_req *out, mr_buf *bodies)
{
    static const char kinds[3] = {'d', 'r', 'u'};
    char *epk = curl_easy_escape(NULL, s->primary_key, 0);
    size_t n = 0;
    for (int k = 0; k < 3; k++) {
        mr_buf *b = &bodies[n];
        *b = (mr_buf){0};
        const char *id;
        json_t *entry;
        json_object_foreach(s->fold, id, entry) {
            if (mr_fold_kind(entry) != kinds[k])
                continue;
            json_t *quoted = kinds[k] == 'd' ? json_string(id) : NULL;
            char *text = json_dumps(quoted ? quoted : json_array_get(entry, 1), JSON_ENCODE_ANY | JSON_COMPACT);
            json_decref(quoted);
            if (b->len)
                mr_buf_add(b, kinds[k] == 'd' ? "," : "\n", 1, BODY_FIRST_CAP);
            mr_buf_add(b, text, strlen(text), BODY_FIRST_CAP);
            free(text);
        }
        if (!b->len)
            continue;
        mr_http_req *r = &out[n++];
        memset(r, 0, sizeof *r);
        if (kinds[k] == 'd') {
            mr_buf wrapped = {0};
            mr_buf_add(&wrapped, "[", 1, BODY_FIRST_CAP);
            mr_buf_add(&wrapped, b->data, b->len, BODY_FIRST_CAP);
            mr_buf_add(&wrapped, "]", 1, BODY_FIRST_CAP);
            mr_buf_free(b);
            *b = wrapped;
            r->method = "POST";
            r->content_type = "application/json";
            snprintf(r->url, sizeof r->url, "%s/indexes/%s/documents/delete-batch", s->node_url, s->shard_index);
        } else {
            r->method = kinds[k] == 'r' ? "POST" : "PUT";
            r->content_type = "application/x-ndjson";
            snprintf(r->url, sizeof r->url, "%s/indexes/%s/documents%s%s", s->node_url, s->shard_index,
                     epk[0] ? "?primaryKey=" : "", epk);
        }
        r->body = b->data;
        r->body_len = b->len;
    }
    curl_free(epk);
    return n;
}

/* One stream's requests of a round. */
struct sending {
    stream *s;
    size_t first_req, reqs;
    int64_t sent_before;
};

/* Settles what a stream's requests of this round answered: each accepted or refused part is a
 * task in flight (a fold's parts but the last advance nothing); a part the node never answered
 * rewinds the stream (parts it did accept run anyway, which is harmless). */
static void sent(ingest *in, struct sending *w, mr_http_req *reqs)
{
    stream *s = w->s;
    for (size_t k = 0; k < w->reqs; k++) {
        mr_http_req *r = &reqs[w->first_req + k];
        if (r->status == 202 || (r->status >= 400 && r->status < 500 && r->status != 408 && r->status != 429))
            continue;
        if (r->never_sent && k == 0) /* no connection was made: the node never saw these */
            s->sent_upto = w->sent_before;
        if (!r->status && !r->never_sent) { /* it may run yet, after what is sent next */
            s->unanswered = 1;
            s->stray_seen_ms = 0;
        }
        char why[300];
        snprintf(why, sizeof why, "sending a batch failed: %ld %.200s", r->status,
                 r->status ? (r->resp ? r->resp : "") : r->curl_error);
        stream_node_failed(in, s, why);
        return;
    }
    for (size_t k = 0; k < w->reqs; k++) {
        mr_http_req *r = &reqs[w->first_req + k];
        json_t *answer = mr_http_json(r);
        json_t *uid = json_object_get(answer, "taskUid");
        int64_t task = r->status == 202 && json_is_integer(uid) ? json_integer_value(uid) : TASK_REJECTED;
        if (s->kind != BATCH_FOLD) {
            push_inflight(s, task);
        } else {
            int last = k + 1 == w->reqs;
            struct inflight *f = push_entry(s, task, s->batch_first, last ? s->batch_last : s->batch_first - 1,
                                            s->batch_docs, MR_OP_REPLACE);
            f->window_last = s->batch_last;
            f->fold = 1;
            if (last)
                batch_reset(s);
        }
        /* the node refused the request itself (e.g. invalid settings): settled like a failed task */
        if (task == TASK_REJECTED)
            s->inflight[s->inflight_count - 1].error = answer ? json_incref(answer) : json_pack("{s:s}", "code", "internal");
        json_decref(answer);
    }
    ingest_stream_release(in, s);
}

static int send_batches(ingest *in, int64_t now)
{
    size_t due = 0;
    for (size_t i = 0; i < in->stream_count; i++)
        due += batch_due(in, &in->streams[i], now);
    if (!due)
        return 0;
    /* Nothing reaches a node unless the broker has lately accepted this worker's hold on its
     * leases (progress.c); a worker stopped past its session proves it again first, or stops. */
    if (!ingest_may_act(in)) {
        ingest_progress_renew(in);
        return 0;
    }
    mr_http_req *reqs = mr_calloc(due * 3, sizeof *reqs);
    mr_buf *bodies = mr_calloc(due * 3, sizeof *bodies);
    struct sending *ws = mr_calloc(due, sizeof *ws);
    size_t n = 0, m = 0;
    for (size_t i = 0; i < in->stream_count; i++) {
        stream *s = &in->streams[i];
        if (!batch_due(in, s, now))
            continue;
        if (s->batch_docs == 0 || (s->kind == BATCH_FOLD && !json_object_size(s->fold))) {
            push_inflight(s, TASK_NONE); /* only poison or skipped records: nothing to send */
            ingest_stream_release(in, s);
            continue;
        }
        struct sending *w = &ws[m++];
        *w = (struct sending){.s = s, .first_req = n, .sent_before = s->sent_upto};
        if (s->kind == BATCH_FOLD) {
            w->reqs = fold_requests(s, &reqs[n], &bodies[n]);
        } else {
            size_t scratch_len = s->body.len + 1024;
            bodies[n] = (mr_buf){.data = mr_malloc(scratch_len), .cap = scratch_len};
            batch_request(s, &reqs[n], bodies[n].data, scratch_len);
            w->reqs = 1;
        }
        n += w->reqs;
        /* from here the node may begin applying these records: they can no longer be canceled */
        if (s->batch_last + 1 > s->sent_upto)
            s->sent_upto = s->batch_last + 1;
    }
    mr_http_run(in->http, reqs, n);
    for (size_t k = 0; k < m; k++)
        sent(in, &ws[k], reqs);
    for (size_t k = 0; k < n; k++) {
        mr_http_req_reset(&reqs[k]);
        mr_buf_free(&bodies[k]);
    }
    free(reqs);
    free(bodies);
    free(ws);
    return 1;
}

/* ---------------------------------------------------------------- following tasks */

/* Errors that mean "already in the state this record asks for". */
static int benign(enum mr_op op, const char *code)
{
    if (!code)
        return 0;
    if (op == MR_OP_CREATE_INDEX)
        return strcmp(code, "index_already_exists") == 0;
    if (op == MR_OP_DELETE_INDEX || op == MR_OP_CLEAR || op == MR_OP_DELETE || op == MR_OP_DELETE_BY_FILTER)
        return strcmp(code, "index_not_found") == 0;
    return 0;
}

/* Errors of the node rather than of the records: retry the same batch later. */
static int node_level(const char *code)
{
    static const char *const codes[] = {"no_space_left_on_device", "database_size_limit_reached", "io_error",
                                        "too_many_open_files", "max_fields_limit_exceeded_on_node", NULL};
    for (int i = 0; code && codes[i]; i++)
        if (strcmp(code, codes[i]) == 0)
            return 1;
    return 0;
}

/* Meilisearch batches queued tasks of an index together, and one bad document fails every task
 * of the batch. A one-record task is proof of a bad record only if its batch held it alone.
 * task is NULL when the node refused the request itself, which concerns that request alone. */
static int failed_alone(ingest *in, const stream *s, json_t *task)
{
    json_t *batch_uid = json_object_get(task, "batchUid");
    if (!task)
        return 1;
    if (!json_is_integer(batch_uid))
        return 0;
    mr_http_req r = {0};
    char url[512];
    snprintf(url, sizeof url, "%s/batches/%" JSON_INTEGER_FORMAT, s->node_url, json_integer_value(batch_uid));
    mr_http_one(in->http, &r, "GET", url, NULL, 0);
    json_t *batch = mr_http_json(&r);
    json_t *tasks = json_object_get(json_object_get(batch, "stats"), "totalNbTasks");
    int alone = r.status == 200 && json_is_integer(tasks) && json_integer_value(tasks) == 1;
    json_decref(batch);
    mr_http_req_reset(&r);
    return alone;
}

/* A deletion by filter or of everything is one record and one node task: its count of removed
 * documents is the shard's, which the task of the client's deletion adds up (task.c). */
static void report_removed(ingest *in, const stream *s, int64_t offset, const json_t *task)
{
    json_t *count = json_object_get(json_object_get(task, "details"), "deletedDocuments");
    if (!json_is_integer(count))
        return;
    char key[700], value[64];
    snprintf(key, sizeof key, "removed/%s/%u/%" PRId64, s->storage, s->shard, offset);
    snprintf(value, sizeof value, "{\"count\":%" JSON_INTEGER_FORMAT "}", json_integer_value(count));
    ingest_progress_put(in, s->storage, s->shard, key, value);
}

/* Advances the stream over every finished task at the head of its queue. */
static void stream_settle(ingest *in, stream *s, json_t *statuses)
{
    int advanced = 0;
    while (s->inflight_count) {
        struct inflight *head = &s->inflight[0];
        json_t *task = NULL;
        if (head->task_uid != TASK_NONE) {
            char key[32];
            snprintf(key, sizeof key, "%" PRId64, head->task_uid);
            task = head->task_uid == TASK_REJECTED ? NULL : json_object_get(statuses, key);
            if (!task && head->task_uid != TASK_REJECTED)
                break;
            const char *status = task ? json_string_value(json_object_get(task, "status")) : "failed";
            if (!status || strcmp(status, "enqueued") == 0 || strcmp(status, "processing") == 0)
                break;
            if (strcmp(status, "canceled") == 0) {
                stream_rewind(in, s, head->first, 0);
                return;
            }
            if (strcmp(status, "failed") == 0) {
                json_t *error = task ? json_object_get(task, "error") : head->error;
                const char *code = json_string_value(json_object_get(error, "code"));
                if (!benign(head->op, code)) {
                    if (node_level(code)) {
                        stream_node_failed(in, s, code);
                        return;
                    }
                    if (head->fold || head->count > 1 || !failed_alone(in, s, task)) {
                        /* One bad record fails its whole Meilisearch batch: bisect by reading the
                         * range again in halves, one task at a time, down to single records. */
                        s->split_until = head->window_last;
                        s->split_size = head->count > 1 ? head->count / 2 : 1;
                        stream_rewind(in, s, head->first, 0);
                        return;
                    }
                    mr_error why = {0};
                    if (mr_error_from_json(&why, 400, error))
                        mr_error_set(&why, "internal", "Meilisearch rejected the record");
                    ingest_dead_letter(in, s->uid, s->storage, s->topic, (int32_t)s->shard, head->first, head->key,
                                       head->key ? strlen(head->key) : 0, head->value,
                                       head->value ? strlen(head->value) : 0, mr_op_name(head->op), &why, s->dlq_writer);
                }
            } else if ((head->op == MR_OP_DELETE_BY_FILTER || head->op == MR_OP_CLEAR) && head->first == head->last) {
                report_removed(in, s, head->first, task);
            }
        }
        s->applied = head->last + 1;
        s->advanced_ms = mr_now_ms();
        if (s->split_until >= 0 && s->applied > s->split_until)
            s->split_until = -1;
        s->failures = 0;
        inflight_pop(s);
        advanced = 1;
    }
    if (advanced)
        write_applied(in, s);
}

static int poll_tasks(ingest *in, int64_t now)
{
    size_t nodes = in->reader_count;
    mr_http_req reqs[MR_MAX_NODES];
    int slots[MR_MAX_NODES];
    size_t n = 0;
    int work = 0;
    for (size_t slot = 0; slot < nodes; slot++) {
        for (size_t i = 0; i < in->stream_count; i++) {
            stream *s = &in->streams[i];
            if (s->node_slot == (int)slot && s->inflight_count && s->inflight[0].task_uid < 0) {
                stream_settle(in, s, NULL); /* settles without asking the node */
                work = 1;
            }
        }
        if (now - in->readers[slot].last_poll_ms < TASK_POLL_MS)
            continue;
        /* One GET /tasks?uids=… per node. The URL is bounded, so uids go in by depth: every
         * stream's oldest task first (the ones progress waits for), then the next ones. */
        char list[1500];
        size_t used = 0, count = 0;
        for (size_t depth = 0; depth < MAX_INFLIGHT; depth++) {
            for (size_t i = 0; i < in->stream_count; i++) {
                stream *s = &in->streams[i];
                if (s->node_slot != (int)slot || s->inflight_count <= depth || s->inflight[depth].task_uid < 0)
                    continue;
                int len = snprintf(list + used, sizeof list - used, "%s%" PRId64, count ? "," : "",
                                   s->inflight[depth].task_uid);
                if (len < 0 || (size_t)len >= sizeof list - used) {
                    list[used] = '\0';
                    goto full;
                }
                used += (size_t)len;
                count++;
            }
        }
    full:
        if (!count)
            continue;
        memset(&reqs[n], 0, sizeof reqs[n]);
        reqs[n].method = "GET";
        snprintf(reqs[n].url, sizeof reqs[n].url, "%s/tasks?limit=%zu&uids=%s", in->readers[slot].url, count, list);
        slots[n++] = (int)slot;
        in->readers[slot].last_poll_ms = now;
    }
    if (!n)
        return work;
    mr_http_run(in->http, reqs, n);
    for (size_t i = 0; i < n; i++) {
        json_t *answer = mr_http_json(&reqs[i]);
        json_t *statuses = json_object();
        size_t k;
        json_t *task;
        json_array_foreach(json_object_get(answer, "results"), k, task) {
            char key[32];
            snprintf(key, sizeof key, "%" JSON_INTEGER_FORMAT, json_integer_value(json_object_get(task, "uid")));
            json_object_set(statuses, key, task);
        }
        for (size_t j = 0; j < in->stream_count; j++) {
            stream *s = &in->streams[j];
            if (s->node_slot != slots[i] || !s->inflight_count)
                continue;
            if (reqs[i].status == 200)
                stream_settle(in, s, statuses);
            else
                stream_node_failed(in, s, reqs[i].status ? "task poll failed" : reqs[i].curl_error);
        }
        json_decref(statuses);
        json_decref(answer);
        mr_http_req_reset(&reqs[i]);
    }
    return 1;
}

/* ---------------------------------------------------------------- unanswered writes */

#define STRAY_POLL_MS 200

/* Asks each node that left a write of a stream unanswered for the newest task of the shard
 * index, and lets the stream send again once that has not changed for stray_quiet_ms. A request
 * the node was sent registers as soon as the node reads it, so a node that answers a later one
 * and has registered nothing new for that long has none left: the records sent again from the
 * applied offset run after every stray, and the last word on each document is theirs. */
static int await_strays(ingest *in, int64_t now)
{
    size_t due = 0;
    for (size_t i = 0; i < in->stream_count; i++)
        due += in->streams[i].unanswered && now >= in->streams[i].resume_at_ms;
    if (!due)
        return 0;
    mr_http_req *reqs = mr_calloc(due, sizeof *reqs);
    stream **asked = mr_calloc(due, sizeof *asked);
    size_t n = 0;
    for (size_t i = 0; i < in->stream_count && n < due; i++) {
        stream *s = &in->streams[i];
        if (!s->unanswered || now < s->resume_at_ms)
            continue;
        reqs[n].method = "GET";
        reqs[n].timeout_ms = in->cfg->connect_timeout_ms; /* a hung node must not hold up the round */
        snprintf(reqs[n].url, sizeof reqs[n].url, "%s/tasks?limit=1&indexUids=%s", s->node_url, s->shard_index);
        asked[n++] = s;
    }
    mr_http_run(in->http, reqs, n);
    for (size_t k = 0; k < n; k++) {
        stream *s = asked[k];
        json_t *answer = reqs[k].status == 200 ? mr_http_json(&reqs[k]) : NULL;
        json_t *results = json_object_get(answer, "results");
        if (!json_is_array(results)) {
            s->stray_seen_ms = 0; /* still not answering: ask again after the usual backoff */
            s->resume_at_ms = now + backoff_ms(in, s);
            s->failures++;
        } else {
            json_t *newest = json_object_get(json_array_get(results, 0), "uid");
            int64_t uid = json_is_integer(newest) ? json_integer_value(newest) : -1;
            if (!s->stray_seen_ms || uid != s->stray_uid) {
                s->stray_uid = uid;
                s->stray_seen_ms = now;
            } else if (now - s->stray_seen_ms >= in->cfg->stray_quiet_ms) {
                s->unanswered = 0;
                mr_log("info", "ingest", "replica %s on %s: the node answers and has run what it was sent; sending "
                       "again from offset %" PRId64, s->shard_index, s->node_id, s->applied);
            }
            if (s->unanswered)
                s->resume_at_ms = now + STRAY_POLL_MS;
        }
        json_decref(answer);
        mr_http_req_reset(&reqs[k]);
    }
    free(reqs);
    free(asked);
    return 1;
}

/* ---------------------------------------------------------------- one round */

static int read_records(ingest *in)
{
    int got = 0;
    for (size_t slot = 0; slot < in->reader_count; slot++) {
        for (int k = 0; k < 5000; k++) {
            rd_kafka_message_t *m = rd_kafka_consumer_poll(in->readers[slot].consumer, 0);
            if (!m)
                break;
            if (m->err) {
                stream *s = m->rkt ? stream_find(in, (int)slot, rd_kafka_topic_name(m->rkt), m->partition) : NULL;
                if (m->err == RD_KAFKA_RESP_ERR__AUTO_OFFSET_RESET && s)
                    ingest_history_gone(in, s);
                else if (m->err != RD_KAFKA_RESP_ERR__PARTITION_EOF)
                    mr_log("warn", "ingest", "reader %s: %s", in->readers[slot].id, rd_kafka_message_errstr(m));
                rd_kafka_message_destroy(m);
                continue;
            }
            stream *s = stream_find(in, (int)slot, rd_kafka_topic_name(m->rkt), m->partition);
            if (s)
                stream_receive(in, s, m);
            else
                rd_kafka_message_destroy(m);
            got = 1;
        }
    }
    return got;
}

static void resume_streams(ingest *in, int64_t now)
{
    for (size_t i = 0; i < in->stream_count; i++) {
        stream *s = &in->streams[i];
        if (s->paused && !s->unanswered && pending_count(s) < MAX_PENDING / 2 && now >= s->resume_at_ms)
            set_paused(in, s, 0);
    }
}

int ingest_apply_round(ingest *in)
{
    int64_t now = mr_now_ms();
    start_streams(in, now);
    int work = read_records(in);
    ingest_cancels_update(in);
    ingest_history_round(in, now);
    work |= send_batches(in, now);
    work |= await_strays(in, now);
    work |= poll_tasks(in, now);
    ingest_shards_update(in, now);
    resume_streams(in, now);
    return work;
}
