/* history.c: what spares a replica the replay of its shard's whole history, and bounds that
 * history (shared/history.h has the rules).
 *
 * A building replica is filled one of three ways, best first:
 *   - copy: a ready peer takes no new batch until its tasks in flight end, at offset X; its node
 *     exports the shard index (POST /export: documents and settings, read in one transaction) to
 *     the new replica's node; once that node has indexed it all and holds as many documents as the
 *     peer did at X, the replica goes on from X. The peer serves reads throughout; its writes wait
 *     only while its tasks drain and the export runs (miroir.progress copy/…, /metrics);
 *   - restore: with no ready peer, from the shard's newest checkpoint (partition k of
 *     miroir.ckpt.<storage>: create-index, settings, every document, as one replica held them at
 *     X), read like any partition, then on from X;
 *   - replay: the partition from offset 0, when neither is there, or when one failed.
 * Whatever a copy or restore cut short left on the node is dropped first, so each starts clean.
 *
 * Checkpoints are taken by the worker holding the shard's lease, from a ready replica held at X
 * while a thread of its own reads the replica's settings and documents and writes them out, once
 * the history since the last one outgrows the shard's documents. Then the records every reader
 * is past go (Kafka's DeleteRecords), and so do older checkpoints. */
#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "alloc.h"
#include "history.h"
#include "kafka.h"
#include "seq.h"
#include "stream.h"
#include "util.h"

typedef struct ingest_stream stream;
typedef struct ingest_shard shard_state;

#define FILL_POLL_MS 200
#define DRAIN_TIMEOUT_MS 30000
/* An export that has sent this node nothing for this long is stalled: the peer's node cannot
 * reach the URL this node is a member by (Meilisearch would retry it for 15 minutes, with the
 * peer's writes held and its node's task queue blocked). */
#define EXPORT_STALL_MS 20000
#define CHECKPOINT_CHECK_MS 10000
#define CHECKPOINT_PAGE 10000
/* A shard this small is replayed faster than a copy is set up (and Meilisearch 1.21's export
 * fails when a sending thread gets no document at all). */
#define COPY_MIN_DOCUMENTS 1000

static int same_shard(const stream *a, const stream *b)
{
    return a->shard == b->shard && strcmp(a->storage, b->storage) == 0;
}

static stream *find_stream(ingest *in, const char *storage, uint32_t shard, const char *node)
{
    for (size_t i = 0; i < in->stream_count; i++) {
        stream *s = &in->streams[i];
        if (s->shard == shard && strcmp(s->storage, storage) == 0 && strcmp(s->node_id, node) == 0)
            return s;
    }
    return NULL;
}

/* One node call, its JSON answer (new reference, or NULL) and status. */
static json_t *node_call(ingest *in, const char *method, const char *url, const char *body, long *status)
{
    mr_http_req r = {0};
    mr_http_one(in->http, &r, method, url, body, body ? strlen(body) : 0);
    json_t *answer = mr_http_json(&r);
    *status = r.status;
    mr_http_req_reset(&r);
    return answer;
}

/* A node task's status ("succeeded", …), or NULL if the node did not say. *error gets its error
 * (new reference) when it failed and error is not NULL. */
static char *task_status(ingest *in, const char *node_url, int64_t task, json_t **error)
{
    char url[512];
    snprintf(url, sizeof url, "%s/tasks/%" PRId64, node_url, task);
    long status;
    json_t *t = node_call(in, "GET", url, NULL, &status);
    const char *st = status == 200 ? json_string_value(json_object_get(t, "status")) : NULL;
    char *out = st ? mr_strdup(st) : NULL;
    if (error)
        *error = json_incref(json_object_get(t, "error"));
    json_decref(t);
    return out;
}

/* An integer field of what a node answers to GET url; -1 if it did not say. */
static int64_t node_count(ingest *in, const char *url, const char *field)
{
    long status;
    json_t *answer = node_call(in, "GET", url, NULL, &status);
    json_t *n = json_object_get(answer, field);
    int64_t count = status == 200 && json_is_integer(n) ? (int64_t)json_integer_value(n) : -1;
    json_decref(answer);
    return count;
}

static int64_t documents_of(ingest *in, const char *node_url, const char *index)
{
    char url[512];
    snprintf(url, sizeof url, "%s/indexes/%s/stats", node_url, index);
    return node_count(in, url, "numberOfDocuments");
}

/* How many tasks a node has for an index, of the given statuses (NULL: any); -1 if it did not say. */
static int64_t tasks_of(ingest *in, const char *node_url, const char *index, const char *statuses)
{
    char url[600];
    snprintf(url, sizeof url, "%s/tasks?indexUids=%s%s%s&limit=1", node_url, index, statuses ? "&statuses=" : "",
             statuses ? statuses : "");
    return node_count(in, url, "total");
}

/* ---------------------------------------------------------------- filling a building replica */

/* A peer this replica may copy: ready, answering, and not waiting to be rebuilt (a replica whose
 * node lost its data, or that verify found divergent, is still ready until the rebalancer acts).
 * The most advanced one. */
static stream *copy_peer(ingest *in, const stream *t, json_t *rebuilds)
{
    stream *best = NULL;
    for (size_t i = 0; i < in->stream_count; i++) {
        stream *p = &in->streams[i];
        char key[700];
        snprintf(key, sizeof key, "%s/%u/%s", p->storage, p->shard, p->node_id);
        if (p == t || !same_shard(p, t) || !p->ready || p->failures || p->deleted || json_object_get(rebuilds, key))
            continue;
        if (!best || p->applied > best->applied)
            best = p;
    }
    return best;
}

static void fill_phase(stream *t, enum fill phase, int64_t now)
{
    t->fill = phase;
    t->fill_phase_ms = now;
    t->fill_polled_ms = 0;
}

/* The copy failed: the replica restores from a checkpoint or replays the log from 0, on a clean
 * index; a restore failed: it replays. */
static void give_up(ingest *in, stream *t, const char *why)
{
    mr_log("warn", "ingest", "filling %s on %s: %s; %s instead", t->shard_index, t->node_id, why,
           t->fill_peer[0] ? "restoring or replaying" : "replaying the log");
    char url[512], topic[300];
    long status;
    snprintf(url, sizeof url, "%s/indexes/%s", t->node_url, t->shard_index);
    json_decref(node_call(in, "DELETE", url, NULL, &status)); /* ordered before the replay's tasks */
    if (t->fill_peer[0])
        t->fill_peer_failed = 1;
    else
        t->fill_gave_up = 1;
    t->fill = FILL_NONE;
    t->applied = 0;
    snprintf(topic, sizeof topic, "%s%s", MR_TOPIC_INDEX_PREFIX, t->storage); /* a restore read another */
    ingest_stream_retopic(in, t, topic, 0);
}

void ingest_history_gone(ingest *in, stream *s)
{
    /* a replica built anew reads from 0 until its fill moves it: the fill puts it where the
     * partition holds what it needs */
    if (s->rebuilding && s->applied == 0 && s->fill != FILL_RESTORE && !s->fill_gave_up)
        return;
    /* the truncation rule keeps every record a replica has yet to apply: this is a bug, or the
     * topic was cut by hand */
    mr_log("error", "ingest", "replica %s on %s needs records from offset %" PRId64 " that %s no longer holds; "
           "rebuild it (miroirctl verify --repair)", s->shard_index, s->node_id, s->expect, s->topic);
    s->failures++;
    ingest_stream_rewind(in, s, s->applied);
    s->resume_at_ms = mr_now_ms() + 5000;
}

static void write_copy(ingest *in, const stream *t, int64_t now)
{
    char key[700], at[48], value[512];
    snprintf(key, sizeof key, "copy/%s/%u/%s", t->storage, t->shard, t->node_id);
    mr_now_rfc3339(at, sizeof at);
    snprintf(value, sizeof value,
             "{\"from\":\"%s\",\"offset\":%" PRId64 ",\"documents\":%" PRId64 ",\"pauseMs\":%" PRId64
             ",\"copyMs\":%" PRId64 ",\"at\":\"%s\"}",
             t->fill_peer, t->fill_offset, t->fill_documents, t->fill_held_ms, now - t->fill_started_ms, at);
    ingest_progress_put(in, t->storage, t->shard, key, value);
}

/* Starts a fill if the stream is a replica built anew (nothing applied, nothing sent): first its
 * node drops whatever it holds of the shard. */
static void fill_start(ingest *in, stream *t, json_t *rebuilds, int64_t now)
{
    if (!t->rebuilding || t->fill != FILL_NONE || t->fill_gave_up || t->applied != 0 || t->sent_upto != 0 ||
        t->inflight_count || t->deleted || t->unanswered)
        return;
    stream *peer = in->cfg->rebuild_from_peer && !t->fill_peer_failed ? copy_peer(in, t, rebuilds) : NULL;
    json_t *checkpoint = peer ? NULL : mr_meta_checkpoint(in->meta, t->storage, t->shard);
    if (!peer && !checkpoint)
        return;
    t->fill_peer[0] = '\0';
    if (peer) {
        snprintf(t->fill_peer, sizeof t->fill_peer, "%s", peer->node_id);
    } else {
        t->fill_offset = json_integer_value(json_object_get(checkpoint, "offset"));
        t->restore_begin = json_integer_value(json_object_get(checkpoint, "begin"));
        t->restore_end = json_integer_value(json_object_get(checkpoint, "end")) + 1;
        t->fill_documents = json_integer_value(json_object_get(checkpoint, "documents"));
        json_decref(checkpoint);
    }
    char url[512];
    long status;
    snprintf(url, sizeof url, "%s/indexes/%s", t->node_url, t->shard_index);
    json_t *answer = node_call(in, "DELETE", url, NULL, &status);
    if (status == 202 || status == 404) {
        t->fill_task = status == 202 ? json_integer_value(json_object_get(answer, "taskUid")) : -1;
        t->fill_started_ms = now;
        t->fill_held_ms = 0;
        fill_phase(t, FILL_CLEAR, now);
    } else if (status == 0) { /* the deletion may run yet, after the copy: wait for it (apply.c) */
        t->unanswered = 1;
        t->stray_seen_ms = 0;
    }
    json_decref(answer);
}

/* CLEAR: the node's old copy of the shard is gone; the peer drains, or the restore begins. */
static void fill_clear(ingest *in, stream *t, int64_t now)
{
    if (t->fill_task >= 0) {
        char *st = task_status(in, t->node_url, t->fill_task, NULL);
        int done = st && (strcmp(st, "succeeded") == 0 || strcmp(st, "failed") == 0);
        free(st);
        if (!done)
            return;
    }
    if (t->fill_peer[0]) {
        mr_log("info", "ingest", "filling %s on %s from a copy of %s", t->shard_index, t->node_id, t->fill_peer);
        fill_phase(t, FILL_DRAIN, now);
        return;
    }
    char topic[300];
    snprintf(topic, sizeof topic, "%s%s", MR_TOPIC_CHECKPOINT_PREFIX, t->storage);
    mr_log("info", "ingest", "restoring %s on %s from its checkpoint at offset %" PRId64 " (%" PRId64 " documents)",
           t->shard_index, t->node_id, t->fill_offset, t->fill_documents);
    fill_phase(t, FILL_RESTORE, now);
    ingest_stream_retopic(in, t, topic, t->restore_begin);
    t->applied = t->restore_begin;
}

/* DRAIN: once the peer's tasks have all ended, its state is that of offset X; its node exports. */
static void fill_drain(ingest *in, stream *t, int64_t now)
{
    stream *p = find_stream(in, t->storage, t->shard, t->fill_peer);
    if (!p || !p->ready || p->failures) {
        give_up(in, t, "the peer went away");
        return;
    }
    if (!t->fill_held_ms)
        t->fill_held_ms = now; /* from here the peer takes no new batch */
    if (p->inflight_count || p->applied != p->sent_upto) {
        if (now - t->fill_phase_ms > DRAIN_TIMEOUT_MS)
            give_up(in, t, "the peer's tasks did not end");
        return;
    }
    t->fill_offset = p->applied;
    t->fill_documents = documents_of(in, p->node_url, p->shard_index);
    if (t->fill_documents < COPY_MIN_DOCUMENTS) {
        t->fill_held_ms = 0;
        t->fill = FILL_NONE;
        t->fill_gave_up = 1; /* replays: no copy is worth it */
        mr_log("info", "ingest", "filling %s on %s: %" PRId64 " documents, replayed rather than copied", t->shard_index,
               t->node_id, t->fill_documents);
        return;
    }
    json_t *body = json_pack("{s:s, s:s, s:s, s:{s:{s:b}}}", "url", t->node_url, "apiKey", in->cfg->node_key,
                             "payloadSize", "50MiB", "indexes", p->shard_index, "overrideSettings", 1);
    char *text = json_dumps(body, JSON_COMPACT), url[512];
    json_decref(body);
    snprintf(url, sizeof url, "%s/export", p->node_url);
    long status;
    json_t *answer = node_call(in, "POST", url, text, &status);
    free(text);
    if (status == 202 || status == 200) {
        t->fill_task = json_integer_value(json_object_get(answer, "taskUid"));
        t->fill_received = -1;
        t->fill_received_ms = 0;
        fill_phase(t, FILL_EXPORT, now);
    } else {
        give_up(in, t, "the peer's node refused the export");
    }
    json_decref(answer);
}

static void cancel_export(ingest *in, stream *t, const stream *p)
{
    char url[512];
    long status;
    mr_log("warn", "ingest", "filling %s on %s: %s; canceling it", t->shard_index, t->node_id, t->fill_why);
    snprintf(url, sizeof url, "%s/tasks/cancel?uids=%" PRId64, p->node_url, t->fill_task);
    json_decref(node_call(in, "POST", url, NULL, &status));
    fill_phase(t, FILL_ABORT, mr_now_ms());
}

/* EXPORT: the peer's node has sent everything; the peer takes batches again. An export that
 * sends this node nothing is canceled: nothing of it may land after the replica starts over. */
static void fill_export(ingest *in, stream *t, int64_t now)
{
    stream *p = find_stream(in, t->storage, t->shard, t->fill_peer);
    if (!p) {
        give_up(in, t, "the peer went away");
        return;
    }
    json_t *error = NULL;
    char *st = task_status(in, p->node_url, t->fill_task, &error);
    const char *why = json_string_value(json_object_get(error, "message"));
    /* Meilisearch 1.21 fails an export when one of its sending threads had no document to send,
     * though the others sent theirs: the count checked once the node has indexed them decides */
    int empty_sender = why && strstr(why, "missing_payload");
    if (st && (strcmp(st, "succeeded") == 0 || (strcmp(st, "failed") == 0 && empty_sender))) {
        t->fill_held_ms = now - t->fill_held_ms;
        fill_phase(t, FILL_SETTLE, now);
    } else if (st && (strcmp(st, "failed") == 0 || strcmp(st, "canceled") == 0)) {
        give_up(in, t, why ? why : "the export failed");
    } else if (st && strcmp(st, "processing") == 0) {
        int64_t received = tasks_of(in, t->node_url, t->shard_index, NULL);
        if (received > t->fill_received || !t->fill_received_ms) {
            t->fill_received = received > t->fill_received ? received : t->fill_received;
            t->fill_received_ms = now;
        } else if (now - t->fill_received_ms > EXPORT_STALL_MS) {
            snprintf(t->fill_why, sizeof t->fill_why, "%s's export sent this node nothing for %d s (can %s reach %s?)",
                     p->node_id, EXPORT_STALL_MS / 1000, p->node_id, t->node_url);
            cancel_export(in, t, p);
        }
    } else {
        t->fill_received_ms = 0; /* queued behind the peer's node's other tasks: no stall yet */
    }
    free(st);
    json_decref(error);
}

/* ABORT: the canceled export has ended on the peer's node; the replica starts over. */
static void fill_abort(ingest *in, stream *t, int64_t now)
{
    stream *p = find_stream(in, t->storage, t->shard, t->fill_peer);
    char *st = p ? task_status(in, p->node_url, t->fill_task, NULL) : NULL;
    int ended = !p || (st && strcmp(st, "enqueued") != 0 && strcmp(st, "processing") != 0);
    free(st);
    if (!ended && now - t->fill_phase_ms < DRAIN_TIMEOUT_MS)
        return;
    if (!ended)
        mr_log("warn", "ingest", "filling %s on %s: %s's export did not end when canceled", t->shard_index, t->node_id,
               t->fill_peer);
    give_up(in, t, t->fill_why);
}

/* SETTLE: the node has indexed what it was sent; with the peer's count, the replica is the peer
 * at X, and goes on from there. */
static void fill_settle(ingest *in, stream *t, int64_t now)
{
    if (tasks_of(in, t->node_url, t->shard_index, "enqueued,processing") != 0)
        return;
    int64_t got = documents_of(in, t->node_url, t->shard_index);
    if (got != t->fill_documents) {
        char why[160];
        snprintf(why, sizeof why, "the copy holds %" PRId64 " documents, the peer %" PRId64, got, t->fill_documents);
        give_up(in, t, why);
        return;
    }
    t->fill = FILL_NONE;
    t->applied = t->fill_offset;
    /* assigned afresh: the reader may have met the cut history while the copy ran */
    ingest_stream_retopic(in, t, t->topic, t->fill_offset);
    ingest_write_applied(in, t);
    write_copy(in, t, now);
    mr_log("info", "ingest",
           "filled %s on %s from %s at offset %" PRId64 ": %" PRId64 " documents in %" PRId64 " ms, the peer's writes "
           "waited %" PRId64 " ms",
           t->shard_index, t->node_id, t->fill_peer, t->fill_offset, got, now - t->fill_started_ms, t->fill_held_ms);
}

void ingest_history_restored(ingest *in, stream *t)
{
    char topic[300];
    snprintf(topic, sizeof topic, "%s%s", MR_TOPIC_INDEX_PREFIX, t->storage);
    ingest_stream_retopic(in, t, topic, t->fill_offset);
    t->fill = FILL_NONE;
    t->applied = t->fill_offset;
    ingest_write_applied(in, t);
    mr_log("info", "ingest", "restored %s on %s from its checkpoint in %" PRId64 " ms; on from offset %" PRId64,
           t->shard_index, t->node_id, mr_now_ms() - t->fill_started_ms, t->fill_offset);
}

static void fill_advance(ingest *in, stream *t, int64_t now)
{
    if (t->fill == FILL_NONE || now - t->fill_polled_ms < FILL_POLL_MS)
        return;
    t->fill_polled_ms = now;
    if (t->fill != FILL_RESTORE && now - t->fill_started_ms > in->cfg->fill_timeout_ms) {
        give_up(in, t, "it took longer than fill_timeout_ms");
        return;
    }
    switch (t->fill) {
    case FILL_CLEAR:
        fill_clear(in, t, now);
        break;
    case FILL_DRAIN:
        fill_drain(in, t, now);
        break;
    case FILL_EXPORT:
        fill_export(in, t, now);
        break;
    case FILL_ABORT:
        fill_abort(in, t, now);
        break;
    case FILL_SETTLE:
        fill_settle(in, t, now);
        break;
    case FILL_RESTORE:
        if (t->applied >= t->restore_end && !t->inflight_count)
            ingest_history_restored(in, t);
        break;
    case FILL_NONE:
        break;
    }
}

/* ---------------------------------------------------------------- checkpoints */

enum job_state { JOB_DRAIN, JOB_RUNNING, JOB_DONE, JOB_FAILED };

struct checkpoint_job {
    char storage[MR_STORAGE_MAX + 1], node_id[MR_NODE_ID_MAX], node_url[256], shard_index[MR_STORAGE_MAX + 16];
    char topic[300], primary_key[256];
    uint32_t shard, shard_count;
    int64_t offset;              /* X: the replica's applied offset when its writes stopped */
    int64_t begin, end, documents; /* the checkpoint's records, once written */
    int64_t started_ms, held_ms;
    atomic_int state;
    atomic_int stop;             /* the worker is stopping: the thread leaves the checkpoint unfinished */
    pthread_t thread;
    int thread_started;
    mr_http *http;               /* the thread's own */
    rd_kafka_t *producer;        /* shared: librdkafka's handles are thread-safe */
    char error[800];
};

/* Produces the batch and forgets it; on failure sets the job's error. */
static int produce_batch(struct checkpoint_job *job, mr_produce_msg *msgs, size_t *n, json_t *keep)
{
    mr_error err = {0};
    int rc = *n ? mr_produce_all(job->producer, msgs, *n, &err) : 0;
    if (rc)
        snprintf(job->error, sizeof job->error, "writing the checkpoint: %s", err.message);
    *n = 0;
    json_array_clear(keep);
    return rc;
}

static void add_control(struct checkpoint_job *job, mr_produce_msg *msg, json_t *keep, enum mr_op op, json_t *value)
{
    char *text = json_dumps(value, JSON_COMPACT);
    json_array_append_new(keep, json_string(text));
    free(text);
    json_decref(value);
    const char *kept = json_string_value(json_array_get(keep, json_array_size(keep) - 1));
    *msg = (mr_produce_msg){.topic = job->topic, .partition = (int32_t)job->shard, .value = kept,
                            .value_len = strlen(kept), .headers = mr_headers_op(mr_op_name(op))};
}

/* The thread: reads the held replica's settings and documents, and writes them to the
 * checkpoint's partition between a begin and an end record. */
static void *checkpoint_write(void *arg)
{
    struct checkpoint_job *job = arg;
    json_t *keep = json_array(); /* owns the bytes of the batch being produced */
    mr_produce_msg *msgs = mr_calloc(CHECKPOINT_PAGE + 4, sizeof *msgs);
    size_t n = 0;
    char url[700];
    int ok = 0;
    mr_http_req r = {0};
    snprintf(url, sizeof url, "%s/indexes/%s/settings", job->node_url, job->shard_index);
    mr_http_one(job->http, &r, "GET", url, NULL, 0);
    json_t *settings = r.status == 200 ? mr_http_json(&r) : NULL;
    mr_http_req_reset(&r);
    if (!settings) {
        snprintf(job->error, sizeof job->error, "reading the settings of %s failed", job->shard_index);
        goto out;
    }
    add_control(job, &msgs[n++], keep, MR_OP_CHECKPOINT, json_pack("{s:I, s:s}", "offset", (json_int_t)job->offset,
                                                                  "phase", "begin"));
    if (produce_batch(job, msgs, &n, keep))
        goto out;
    job->begin = msgs[0].offset;
    add_control(job, &msgs[n++], keep, MR_OP_CREATE_INDEX, json_pack("{s:s}", "primaryKey", job->primary_key));
    add_control(job, &msgs[n++], keep, MR_OP_SETTINGS, settings);
    for (long offset = 0;; offset += CHECKPOINT_PAGE) {
        snprintf(url, sizeof url, "%s/indexes/%s/documents?offset=%ld&limit=%d", job->node_url, job->shard_index, offset,
                 CHECKPOINT_PAGE);
        mr_http_one(job->http, &r, "GET", url, NULL, 0);
        json_t *page = r.status == 200 ? mr_http_json(&r) : NULL;
        mr_http_req_reset(&r);
        json_t *docs = json_object_get(page, "results");
        if (!json_is_array(docs)) {
            snprintf(job->error, sizeof job->error, "reading the documents of %s failed", job->shard_index);
            json_decref(page);
            goto out;
        }
        size_t i;
        json_t *doc;
        json_array_foreach(docs, i, doc) {
            char id[MR_DOCID_MAX + 1];
            mr_error err = {0};
            if (mr_docid_from_json(json_object_get(doc, job->primary_key), id, sizeof id, &err) < 0)
                continue;
            /* the number of its last write goes back into the header it came in (seq.h) */
            uint64_t seq = 0;
            int has_seq = mr_seq_decode(json_string_value(json_object_get(doc, MR_SEQ_FIELD)), &seq) == 0;
            json_object_del(doc, MR_SEQ_FIELD);
            char *text = json_dumps(doc, JSON_COMPACT);
            json_array_append_new(keep, json_string(text));
            free(text);
            json_array_append_new(keep, json_string(id));
            const char *v = json_string_value(json_array_get(keep, json_array_size(keep) - 2));
            const char *k = json_string_value(json_array_get(keep, json_array_size(keep) - 1));
            rd_kafka_headers_t *h = NULL;
            if (has_seq) {
                char number[24];
                snprintf(number, sizeof number, "%" PRIu64, seq);
                h = rd_kafka_headers_new(1);
                rd_kafka_header_add(h, MR_HEADER_SEQ, -1, number, -1);
            }
            msgs[n++] = (mr_produce_msg){.topic = job->topic, .partition = (int32_t)job->shard, .key = k,
                                         .key_len = strlen(k), .value = v, .value_len = strlen(v), .headers = h};
            job->documents++;
        }
        size_t got = json_array_size(docs);
        json_decref(page);
        if (produce_batch(job, msgs, &n, keep))
            goto out;
        if (got < CHECKPOINT_PAGE)
            break;
        if (atomic_load(&job->stop)) {
            snprintf(job->error, sizeof job->error, "the worker stopped");
            goto out;
        }
    }
    add_control(job, &msgs[n++], keep, MR_OP_CHECKPOINT,
                json_pack("{s:I, s:s, s:I, s:I}", "offset", (json_int_t)job->offset, "phase", "end", "begin",
                          (json_int_t)job->begin, "documents", (json_int_t)job->documents));
    if (produce_batch(job, msgs, &n, keep))
        goto out;
    job->end = msgs[0].offset;
    ok = 1;
out:
    for (size_t i = 0; i < n; i++)
        if (msgs[i].headers)
            rd_kafka_headers_destroy(msgs[i].headers);
    free(msgs);
    json_decref(keep);
    atomic_store(&job->state, ok ? JOB_DONE : JOB_FAILED);
    return NULL;
}

static struct checkpoint_job *job_of(ingest *in, const char *storage, uint32_t shard)
{
    for (size_t i = 0; i < in->checkpoint_count; i++)
        if (in->checkpoints[i]->shard == shard && strcmp(in->checkpoints[i]->storage, storage) == 0)
            return in->checkpoints[i];
    return NULL;
}

static void job_free(struct checkpoint_job *job)
{
    atomic_store(&job->stop, 1);
    if (job->thread_started)
        pthread_join(job->thread, NULL);
    mr_http_free(job->http);
    free(job);
}

/* A ready replica to read a checkpoint from: answering, idle of fills, in the in-sync set's
 * company (the most advanced). */
static stream *checkpoint_source(ingest *in, const shard_state *st)
{
    stream *best = NULL;
    for (size_t i = st->first_stream; i < st->first_stream + st->stream_count; i++) {
        stream *s = &in->streams[i];
        if (s->ready && !s->failures && !s->deleted && (!best || s->applied > best->applied))
            best = s;
    }
    for (size_t i = st->first_stream; i < st->first_stream + st->stream_count; i++)
        if (in->streams[i].fill != FILL_NONE)
            return NULL; /* a fill reads the shard already */
    return best;
}

static void checkpoint_consider(ingest *in, shard_state *st, int64_t now)
{
    if (in->cfg->checkpoint_min_records <= 0 || now - st->checkpoint_checked_ms < CHECKPOINT_CHECK_MS ||
        job_of(in, st->storage, st->shard))
        return;
    stream *src = checkpoint_source(in, st);
    json_t *last = src ? mr_meta_checkpoint(in->meta, st->storage, st->shard) : NULL;
    int64_t last_offset = last ? json_integer_value(json_object_get(last, "offset")) : -1;
    json_decref(last);
    /* cheap first: the history since the last one against the floor, before asking a node */
    if (!src || !mr_history_checkpoint_due(src->applied, last_offset, 0, 0, in->cfg->checkpoint_min_records)) {
        st->checkpoint_checked_ms = now;
        return;
    }
    /* Only a worker that still holds its leases may cut history. One with no writes to apply
     * proves them on demand, and the next round looks again. */
    if (!ingest_may_act(in)) {
        ingest_progress_renew(in);
        return;
    }
    st->checkpoint_checked_ms = now;
    int64_t live = documents_of(in, src->node_url, src->shard_index);
    if (live < 0 || !mr_history_checkpoint_due(src->applied, last_offset, live,
                                               (double)in->cfg->checkpoint_history_percent / 100.0,
                                               in->cfg->checkpoint_min_records))
        return;
    struct checkpoint_job *job = mr_calloc(1, sizeof *job);
    snprintf(job->storage, sizeof job->storage, "%s", src->storage);
    snprintf(job->node_id, sizeof job->node_id, "%s", src->node_id);
    snprintf(job->node_url, sizeof job->node_url, "%s", src->node_url);
    snprintf(job->shard_index, sizeof job->shard_index, "%s", src->shard_index);
    snprintf(job->topic, sizeof job->topic, "%s%s", MR_TOPIC_CHECKPOINT_PREFIX, src->storage);
    snprintf(job->primary_key, sizeof job->primary_key, "%s", src->primary_key);
    job->shard = src->shard;
    job->shard_count = src->shard_count;
    job->started_ms = now;
    job->producer = in->producer;
    atomic_store(&job->state, JOB_DRAIN);
    in->checkpoints = mr_realloc(in->checkpoints, (in->checkpoint_count + 1) * sizeof *in->checkpoints);
    in->checkpoints[in->checkpoint_count++] = job;
    mr_log("info", "ingest", "checkpoint of %s from %s: history %" PRId64 " records since the last, %" PRId64
           " documents", src->shard_index, src->node_id, src->applied - (last_offset > 0 ? last_offset : 0), live);
}

/* The first offset of the shard's history that a restore from this checkpoint, or a replica, or
 * a held cancelation still needs (history.h). */
static int64_t keep_from(ingest *in, const struct checkpoint_job *job)
{
    const shard_state *st = NULL;
    for (size_t i = 0; i < in->shard_count && !st; i++)
        if (in->shards[i].shard == job->shard && strcmp(in->shards[i].storage, job->storage) == 0)
            st = &in->shards[i];
    if (!st)
        return 0;
    int64_t applied[MR_MAX_REPLICAS];
    size_t n = 0;
    int64_t hold_from = -1;
    for (size_t i = st->first_stream; i < st->first_stream + st->stream_count && n < MR_MAX_REPLICAS; i++) {
        const stream *s = &in->streams[i];
        /* a fill in progress records 0 until it is done: it needs nothing below its offset, but
         * if it gives up it replays everything */
        applied[n++] = s->fill != FILL_NONE ? 0 : s->applied;
        if (s->hold_from >= 0 && (hold_from < 0 || s->hold_from < hold_from))
            hold_from = s->hold_from;
    }
    return mr_history_keep_from(job->offset, applied, n, hold_from);
}

/* The history the checkpoint makes needless goes: the index topic's records below keep, and the
 * checkpoints before this one. */
static void cut_history(ingest *in, const struct checkpoint_job *job, int64_t keep)
{
    char topic[300], err[256];
    snprintf(topic, sizeof topic, "%s%s", MR_TOPIC_INDEX_PREFIX, job->storage);
    int64_t first = 0, end = 0;
    if (keep > 0 && mr_kafka_partition_range(in->producer, topic, (int32_t)job->shard, &first, &end, 5000) == 0 &&
        keep > first && mr_kafka_delete_records(in->producer, topic, (int32_t)job->shard, keep, 10000, err, sizeof err))
        mr_log("warn", "ingest", "%s", err);
    if (job->begin > 0 && mr_kafka_delete_records(in->producer, job->topic, (int32_t)job->shard, job->begin, 10000, err,
                                                  sizeof err))
        mr_log("warn", "ingest", "%s", err);
}

static void checkpoint_finish(ingest *in, struct checkpoint_job *job, int64_t now)
{
    if (atomic_load(&job->state) == JOB_FAILED) {
        mr_log("warn", "ingest", "checkpoint of %s: %s", job->shard_index, job->error);
        return;
    }
    char key[MR_STORAGE_MAX + 32], at[48], value[512];
    snprintf(key, sizeof key, "checkpoint/%s/%u", job->storage, job->shard);
    mr_now_rfc3339(at, sizeof at);
    int64_t keep = keep_from(in, job);
    /* recorded before anything goes: a restore finds the checkpoint in the progress topic */
    snprintf(value, sizeof value,
             "{\"offset\":%" PRId64 ",\"begin\":%" PRId64 ",\"end\":%" PRId64 ",\"documents\":%" PRId64
             ",\"node\":\"%s\",\"pauseMs\":%" PRId64 ",\"keptFrom\":%" PRId64 ",\"at\":\"%s\"}",
             job->offset, job->begin, job->end, job->documents, job->node_id, job->held_ms, keep, at);
    ingest_progress_put(in, job->storage, job->shard, key, value);
    if (ingest_progress_flush(in, 10000)) {
        mr_log("warn", "ingest", "checkpoint of %s: not recorded within 10 s; nothing deleted", job->shard_index);
        return;
    }
    cut_history(in, job, keep);
    mr_log("info", "ingest",
           "checkpoint of %s at offset %" PRId64 ": %" PRId64 " documents in %" PRId64 " ms (writes to %s waited %" PRId64
           " ms); history kept from offset %" PRId64,
           job->shard_index, job->offset, job->documents, now - job->started_ms, job->node_id, job->held_ms, keep);
}

static void checkpoints_advance(ingest *in, int64_t now)
{
    for (size_t i = 0; i < in->checkpoint_count;) {
        struct checkpoint_job *job = in->checkpoints[i];
        stream *src = find_stream(in, job->storage, job->shard, job->node_id);
        int state = atomic_load(&job->state);
        if (state == JOB_DRAIN) {
            if (!src || !src->ready || src->failures || now - job->started_ms > DRAIN_TIMEOUT_MS) {
                atomic_store(&job->state, JOB_FAILED);
                snprintf(job->error, sizeof job->error, "its replica could not be held");
                state = JOB_FAILED;
            } else if (!src->inflight_count && src->applied == src->sent_upto) {
                job->offset = src->applied;
                job->held_ms = now;
                job->http = mr_http_new(in->cfg->node_key, in->cfg->upstream_timeout_ms, in->cfg->connect_timeout_ms);
                char err[256], segment[24];
                snprintf(segment, sizeof segment, "%ld", in->cfg->history_segment_bytes);
                const char *const compressed[] = {"compression.type", "zstd", "retention.ms", "-1", "segment.bytes",
                                                  segment, NULL};
                if (mr_kafka_create_topic(in->producer, job->topic, (int)job->shard_count, compressed, 10000, err,
                                          sizeof err) < 0) {
                    snprintf(job->error, sizeof job->error, "%s", err);
                    atomic_store(&job->state, JOB_FAILED);
                    state = JOB_FAILED;
                } else {
                    atomic_store(&job->state, JOB_RUNNING);
                    job->thread_started = pthread_create(&job->thread, NULL, checkpoint_write, job) == 0;
                    if (!job->thread_started) {
                        atomic_store(&job->state, JOB_FAILED);
                        state = JOB_FAILED;
                    }
                }
            }
        }
        if (state == JOB_DONE || state == JOB_FAILED) {
            if (job->thread_started)
                pthread_join(job->thread, NULL);
            job->thread_started = 0;
            if (job->held_ms)
                job->held_ms = now - job->held_ms;
            checkpoint_finish(in, job, now);
            job_free(job);
            in->checkpoints[i] = in->checkpoints[--in->checkpoint_count];
            continue;
        }
        i++;
    }
}

/* ---------------------------------------------------------------- holds, and the round */

/* A replica is held while a fill copies it (drain and export) or a checkpoint reads it, and a
 * replica being filled sends nothing of its own until its fill is done or it restores. */
static void update_holds(ingest *in)
{
    for (size_t i = 0; i < in->stream_count; i++) {
        stream *s = &in->streams[i];
        s->held = s->fill != FILL_NONE && s->fill != FILL_RESTORE;
    }
    for (size_t i = 0; i < in->stream_count; i++) {
        stream *t = &in->streams[i];
        if (t->fill == FILL_DRAIN || t->fill == FILL_EXPORT) {
            stream *p = find_stream(in, t->storage, t->shard, t->fill_peer);
            if (p)
                p->held = 1;
        }
    }
    for (size_t i = 0; i < in->checkpoint_count; i++) {
        struct checkpoint_job *job = in->checkpoints[i];
        stream *s = find_stream(in, job->storage, job->shard, job->node_id);
        if (s && atomic_load(&job->state) <= JOB_RUNNING)
            s->held = 1;
    }
}

void ingest_history_round(ingest *in, int64_t now)
{
    json_t *rebuilds = NULL;
    for (size_t i = 0; i < in->stream_count; i++) {
        stream *s = &in->streams[i];
        if (s->rebuilding && s->fill == FILL_NONE && !s->fill_gave_up && s->applied == 0 && s->sent_upto == 0) {
            if (!rebuilds)
                rebuilds = mr_meta_rebuilds(in->meta);
            fill_start(in, s, rebuilds, now);
        }
        fill_advance(in, s, now);
    }
    json_decref(rebuilds);
    for (size_t i = 0; i < in->shard_count; i++)
        checkpoint_consider(in, &in->shards[i], now);
    checkpoints_advance(in, now);
    update_holds(in);
}

void ingest_history_stop(ingest *in)
{
    for (size_t i = 0; i < in->checkpoint_count; i++)
        job_free(in->checkpoints[i]);
    free(in->checkpoints);
    in->checkpoints = NULL;
    in->checkpoint_count = 0;
}
