/* apply.c: replica streams: batch the records of one shard partition, send them to one node,
 * follow the node's tasks, and advance that replica's applied offset only once they succeed. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hrw.h"
#include "ingest.h"
#include "kafka.h"
#include "util.h"

#define MAX_BATCH_BYTES (64u << 20)
#define TASK_POLL_MS 10
#define MAX_BACKOFF_MS 30000
#define MAX_PENDING 20000     /* records queued ahead of the batch; past it the partition pauses */
#define REBUILD_BATCH_MS 1000 /* a replay fills its large batches from Kafka; wait for that, not for live writers */

/* ---------------------------------------------------------------- buffers */

static void buf_add(struct buf *b, const char *p, size_t n)
{
    if (b->len + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 65536;
        while (cap < b->len + n + 1)
            cap *= 2;
        b->data = realloc(b->data, cap);
        b->cap = cap;
    }
    memcpy(b->data + b->len, p, n);
    b->len += n;
    b->data[b->len] = '\0';
}

static void buf_free(struct buf *b)
{
    free(b->data);
    *b = (struct buf){0};
}

/* ---------------------------------------------------------------- stream life cycle */

static void set_paused(ingest *in, struct stream *s, int paused);

static void batch_reset(struct stream *s)
{
    s->kind = BATCH_NONE;
    s->body.len = 0;
    s->batch_docs = 0;
    s->batch_first = s->batch_last = -1;
    free(s->single_key);
    free(s->single_value);
    s->single_key = s->single_value = NULL;
}

static void inflight_pop(struct stream *s)
{
    json_decref(s->inflight[0].error);
    free(s->inflight[0].key);
    free(s->inflight[0].value);
    memmove(&s->inflight[0], &s->inflight[1], (s->inflight_count - 1) * sizeof s->inflight[0]);
    s->inflight_count--;
}

static void stream_clear(struct stream *s)
{
    batch_reset(s);
    while (s->inflight_count)
        inflight_pop(s);
    for (size_t i = s->pending_head; i < s->pending_len; i++)
        rd_kafka_message_destroy(s->pending[i]);
    s->pending_head = s->pending_len = 0;
}

/* The stream's partition as a one-element list, for librdkafka's per-list calls; caller destroys. */
static rd_kafka_topic_partition_list_t *stream_partition(const struct stream *s)
{
    rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(1);
    rd_kafka_topic_partition_list_add(l, s->topic, (int32_t)s->shard);
    return l;
}

/* librdkafka keeps a partition's pause across re-assignments: a stream that ends paused (a node
 * in backoff) would leave its partition never fetched again by the stream that follows it. So
 * the pause ends with the stream that set it. */
static void free_stream_array(ingest *in, struct stream *streams, size_t count)
{
    for (size_t i = 0; i < count; i++) {
        if (streams[i].paused) {
            rd_kafka_topic_partition_list_t *l = stream_partition(&streams[i]);
            rd_kafka_resume_partitions(in->readers[streams[i].node_slot].consumer, l);
            rd_kafka_topic_partition_list_destroy(l);
        }
        stream_clear(&streams[i]);
        buf_free(&streams[i].body);
        free(streams[i].pending);
    }
    free(streams);
}

void ingest_free_streams(ingest *in)
{
    free_stream_array(in, in->streams, in->stream_count);
    in->streams = NULL;
    in->stream_count = 0;
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
    rd_kafka_t *c = mr_kafka_consumer(in->cfg, NULL, err, sizeof err);
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
static int adopt(struct stream *old, size_t old_count, struct stream *s)
{
    for (size_t i = 0; i < old_count; i++) {
        struct stream *o = &old[i];
        if (o->topic[0] && o->shard == s->shard && o->incarnation == s->incarnation &&
            strcmp(o->node_id, s->node_id) == 0 && strcmp(o->topic, s->topic) == 0) {
            struct stream fresh = *s;
            *s = *o;
            memset(o, 0, sizeof *o); /* now owned by s */
            s->deleted = fresh.deleted;
            s->rebuilding = fresh.rebuilding;
            s->dlq_writer = fresh.dlq_writer;
            memcpy(s->primary_key, fresh.primary_key, sizeof s->primary_key);
            memcpy(s->node_url, fresh.node_url, sizeof s->node_url);
            s->node_slot = fresh.node_slot;
            return 1;
        }
    }
    return 0;
}

void ingest_rebuild_streams(ingest *in)
{
    struct stream *old = in->streams;
    size_t old_count = in->stream_count;
    in->streams = NULL;
    in->stream_count = 0;
    mr_meta_sync(in->meta, 5000); /* applied offsets as fresh as Kafka has them */
    mr_topology_holder *holder = mr_meta_topology(in->meta);
    if (in->topo_seen)
        mr_topology_release(holder, in->topo_seen);
    in->topo_seen = mr_topology_acquire(holder);
    in->streams_dirty = 0;
    size_t cap = 0, kept = 0;
    for (int i = 0; in->leased && i < in->leased->cnt; i++) {
        const rd_kafka_topic_partition_t *tp = &in->leased->elems[i];
        const char *storage = tp->topic + strlen(MR_TOPIC_INDEX_PREFIX);
        const mr_index *ix = mr_topology_find_storage(in->topo_seen, storage);
        if (!ix || (uint32_t)tp->partition >= ix->shard_count) {
            /* a topic without a definition yet: look again when the topology changes */
            in->streams_dirty = 1;
            continue;
        }
        const mr_shard *sh = &ix->shards[tp->partition];
        int first_writer = 1;
        for (size_t r = 0; r < sh->count; r++) {
            const mr_replica *rep = &sh->replicas[r];
            const mr_member *member = mr_topology_member(in->topo_seen, rep->node);
            /* new: the rebalancer is still clearing the node; retiring: about to be dropped */
            if (rep->state == MR_REPLICA_RETIRING || rep->state == MR_REPLICA_NEW || !member)
                continue;
            int slot = reader_slot(in, &member->node);
            if (slot < 0)
                continue;
            if (in->stream_count == cap) {
                cap = cap ? cap * 2 : 16;
                in->streams = realloc(in->streams, cap * sizeof *in->streams);
            }
            struct stream *s = &in->streams[in->stream_count++];
            memset(s, 0, sizeof *s);
            snprintf(s->index, sizeof s->index, "%s", ix->storage);
            snprintf(s->topic, sizeof s->topic, "%s", tp->topic);
            mr_shard_index_name(s->shard_index, sizeof s->shard_index, ix->storage, (uint32_t)tp->partition);
            snprintf(s->primary_key, sizeof s->primary_key, "%s", ix->primary_key);
            s->shard = (uint32_t)tp->partition;
            s->shard_count = ix->shard_count;
            snprintf(s->node_id, sizeof s->node_id, "%s", member->node.id);
            snprintf(s->node_url, sizeof s->node_url, "%s", member->node.url);
            s->incarnation = rep->incarnation;
            s->node_slot = slot;
            s->dlq_writer = first_writer;
            s->deleted = ix->deleted;
            s->rebuilding = rep->state == MR_REPLICA_BUILDING;
            first_writer = 0;
            if (adopt(old, old_count, s)) {
                kept++;
                continue;
            }
            s->applied = mr_meta_applied(in->meta, ix->storage, s->shard, rep, NULL, 0);
            s->expect = s->applied;
            s->split_until = -1;
            batch_reset(s);
        }
    }
    free_stream_array(in, old, old_count); /* the streams of replicas this worker no longer applies */
    /* Position every node reader at its replicas' positions; kept streams go on where they were. */
    for (size_t n = 0; n < in->reader_count; n++) {
        rd_kafka_topic_partition_list_t *parts = rd_kafka_topic_partition_list_new(8);
        for (size_t i = 0; i < in->stream_count; i++)
            if (in->streams[i].node_slot == (int)n)
                rd_kafka_topic_partition_list_add(parts, in->streams[i].topic, (int32_t)in->streams[i].shard)->offset =
                    in->streams[i].expect;
        /* librdkafka fails an assignment only for a list it finds invalid; then the reader
         * reads nothing until the next change, so it must at least be seen */
        rd_kafka_resp_err_t err = rd_kafka_assign(in->readers[n].consumer, parts->cnt ? parts : NULL);
        if (err)
            mr_log("error", "ingest", "positioning the reader of node %s failed: %s", in->readers[n].id,
                   rd_kafka_err2str(err));
        rd_kafka_topic_partition_list_destroy(parts);
    }
    for (size_t i = 0; i < in->stream_count; i++) {
        if (in->streams[i].paused) { /* a new assignment starts unpaused */
            in->streams[i].paused = 0;
            set_paused(in, &in->streams[i], 1);
        }
    }
    mr_log("info", "ingest", "applying %zu replica streams (%zu kept)", in->stream_count, kept);
}

static struct stream *stream_find(ingest *in, int slot, const char *topic, int32_t partition)
{
    for (size_t i = 0; i < in->stream_count; i++) {
        struct stream *s = &in->streams[i];
        if (s->node_slot == slot && s->shard == (uint32_t)partition && strcmp(s->topic, topic) == 0)
            return s;
    }
    return NULL;
}

static void set_paused(ingest *in, struct stream *s, int paused)
{
    if (s->paused == paused)
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

static void write_applied(ingest *in, struct stream *s)
{
    char key[700], at[48], value[160];
    snprintf(key, sizeof key, "applied/%s/%u/%s", s->index, s->shard, s->node_id);
    mr_now_rfc3339(at, sizeof at);
    int n = snprintf(value, sizeof value, "{\"offset\":%" PRId64 ",\"at\":\"%s\",\"incarnation\":%" PRIu64 "}",
                     s->applied, at, s->incarnation);
    rd_kafka_producev(in->producer, RD_KAFKA_V_TOPIC(MR_TOPIC_META), RD_KAFKA_V_PARTITION(0),
                      RD_KAFKA_V_KEY(key, strlen(key)), RD_KAFKA_V_VALUE(value, (size_t)n),
                      RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY), RD_KAFKA_V_END);
}

/* Starts over from offset: everything built or sent after it is forgotten and read again.
 * Safe because applying is idempotent and Meilisearch runs the tasks of an index in order. */
static void stream_rewind(ingest *in, struct stream *s, int64_t offset, long backoff_ms)
{
    stream_clear(s);
    s->expect = offset;
    s->resume_at_ms = mr_now_ms() + backoff_ms;
    set_paused(in, s, 1);
}

static void stream_node_failed(ingest *in, struct stream *s, const char *why)
{
    long backoff = in->cfg->ingest_retry_ms << (s->failures < 8 ? s->failures : 8);
    if (backoff > MAX_BACKOFF_MS)
        backoff = MAX_BACKOFF_MS;
    if (s->failures == 0)
        mr_log("warn", "ingest", "replica %s on %s: %s; retrying from offset %" PRId64, s->shard_index, s->node_id,
               why, s->applied);
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

static void extend_range(struct stream *s, int64_t offset)
{
    if (s->batch_first < 0) {
        s->batch_first = offset;
        s->batch_started_ms = mr_now_ms();
    }
    s->batch_last = offset;
}

/* Makes the document line for a replace or update, or sets err. The key is the authority: a
 * document without its primary key gets it from the key; one with another id is poison. */
static char *document_line(const struct stream *s, const mr_record *rec, mr_error *err)
{
    json_error_t jerr;
    json_t *doc = json_loadb(rec->value, rec->value_len, 0, &jerr);
    if (!json_is_object(doc)) {
        mr_error_set(err, "malformed_payload", "record value is not a JSON object: %s", doc ? "" : jerr.text);
        json_decref(doc);
        return NULL;
    }
    json_t *pk = json_object_get(doc, s->primary_key);
    if (!pk) {
        json_object_set_new(doc, s->primary_key, json_stringn(rec->key, rec->key_len));
    } else {
        char id[MR_DOCID_MAX + 1];
        int n = mr_docid_from_json(pk, id, sizeof id, err);
        if (n < 0) {
            json_decref(doc);
            return NULL;
        }
        if ((size_t)n != rec->key_len || memcmp(id, rec->key, rec->key_len) != 0) {
            mr_error_set(err, "invalid_document_id", "record key `%.*s` differs from the document's `%s` `%s`",
                         (int)rec->key_len, rec->key, s->primary_key, id);
            json_decref(doc);
            return NULL;
        }
    }
    char *line = json_dumps(doc, JSON_COMPACT);
    json_decref(doc);
    return line;
}

static size_t batch_limit(const ingest *in, const struct stream *s, int64_t offset)
{
    if (s->split_until >= 0 && offset <= s->split_until)
        return s->split_size;
    /* A replay of history has no reader waiting on it: Meilisearch indexes larger batches faster. */
    return (size_t)(s->rebuilding ? in->cfg->rebuild_batch_docs : in->cfg->ingest_batch_docs);
}

static size_t pending_count(const struct stream *s)
{
    return s->pending_len - s->pending_head;
}

static void pending_push(struct stream *s, rd_kafka_message_t *m)
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
            s->pending = realloc(s->pending, s->pending_cap * sizeof *s->pending);
        }
    }
    s->pending[s->pending_len++] = m;
}

/* Takes one record into the stream's batch, or dead-letters or skips it: returns 0 and owns m.
 * Returns 1, m untouched, when it doesn't fit the batch being built. */
static int stream_take(ingest *in, struct stream *s, rd_kafka_message_t *m)
{
    size_t op_len = 0;
    const char *op = mr_header_get(m, MR_HEADER_OP, &op_len);
    mr_record rec;
    mr_error err = {0};
    char *line = NULL;
    if (mr_record_decode(m->key, m->key_len, m->payload, m->len, op, op_len, &rec, &err) == 0 &&
        !mr_op_is_control(rec.op) && mr_shard_of(rec.key, rec.key_len, s->shard_count) != s->shard)
        mr_error_set(&err, "bad_request", "record for document `%.*s` is on partition %u, but its shard is %u",
                     (int)rec.key_len, rec.key, s->shard, mr_shard_of(rec.key, rec.key_len, s->shard_count));
    if (!err.status && (rec.op == MR_OP_REPLACE || rec.op == MR_OP_UPDATE))
        line = document_line(s, &rec, &err);
    if (err.status) {
        ingest_dead_letter(in, s->index, s->topic, (int32_t)s->shard, m->offset, m->key, m->key_len, m->payload,
                           m->len, op ? mr_op_name(mr_op_parse(op, op_len)) : "replace", &err, s->dlq_writer);
        extend_range(s, m->offset);
        rd_kafka_message_destroy(m);
        return 0;
    }
    if (s->deleted && rec.op != MR_OP_DELETE_INDEX) {
        /* whatever precedes or follows the deletion, the index ends up gone: skip it */
        free(line);
        extend_range(s, m->offset);
        rd_kafka_message_destroy(m);
        return 0;
    }
    enum batch_kind kind = kind_of(rec.op);
    int fits = s->kind == BATCH_NONE ||
               (s->kind == kind && kind != BATCH_CONTROL && s->batch_docs < batch_limit(in, s, m->offset) &&
                s->body.len < MAX_BATCH_BYTES);
    if (!fits) {
        free(line);
        return 1;
    }
    if (s->kind == BATCH_NONE) {
        s->kind = kind;
        s->batch_op = rec.op;
    }
    if (kind == BATCH_DELETE) {
        json_t *id = json_stringn(rec.key, rec.key_len);
        char *quoted = json_dumps(id, JSON_ENCODE_ANY | JSON_COMPACT);
        json_decref(id);
        if (s->body.len)
            buf_add(&s->body, ",", 1);
        buf_add(&s->body, quoted, strlen(quoted));
        free(quoted);
    } else if (kind == BATCH_CONTROL) {
        buf_add(&s->body, rec.value ? rec.value : "", rec.value_len);
    } else {
        buf_add(&s->body, line, strlen(line));
        buf_add(&s->body, "\n", 1);
    }
    s->batch_docs++;
    if (s->batch_docs == 1) {
        s->single_key = strndup(rec.key ? rec.key : "", rec.key_len);
        s->single_value = line ? strdup(line) : strndup(rec.value ? rec.value : "", rec.value_len);
    }
    free(line);
    extend_range(s, m->offset);
    rd_kafka_message_destroy(m);
    return 0;
}

/* A record from the node's reader: into the batch, or queued behind the records waiting. */
static void stream_receive(ingest *in, struct stream *s, rd_kafka_message_t *m)
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

static int batch_due(const ingest *in, const struct stream *s, int64_t now)
{
    /* while bisecting, one task at a time, so that Meilisearch can't batch it with another */
    size_t max_inflight = s->split_until >= 0 ? 1 : (size_t)in->cfg->ingest_inflight;
    if (s->batch_first < 0 || s->inflight_count >= max_inflight || now < s->resume_at_ms)
        return 0;
    if (pending_count(s) > 0 || s->kind == BATCH_CONTROL || s->batch_docs >= batch_limit(in, s, s->batch_first))
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
static void batch_request(const struct stream *s, mr_http_req *r, char *scratch, size_t scratch_len)
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
        case MR_OP_SETTINGS:
            r->method = "PATCH";
            snprintf(r->url, sizeof r->url, "%s/indexes/%s/settings", base, s->shard_index);
            break;
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

static void push_inflight(struct stream *s, int64_t task_uid)
{
    struct inflight *f = &s->inflight[s->inflight_count++];
    *f = (struct inflight){.task_uid = task_uid, .first = s->batch_first, .last = s->batch_last,
                           .count = s->batch_docs, .op = s->batch_op};
    if (s->batch_docs == 1) {
        f->key = s->single_key;
        f->value = s->single_value;
        s->single_key = s->single_value = NULL;
    }
    batch_reset(s);
}

/* After a batch left, the queued records start the next ones. */
static void release_pending(ingest *in, struct stream *s)
{
    while (pending_count(s) && stream_take(in, s, s->pending[s->pending_head]) == 0)
        s->pending_head++;
}

static int send_batches(ingest *in, int64_t now)
{
    size_t due = 0;
    for (size_t i = 0; i < in->stream_count; i++)
        due += batch_due(in, &in->streams[i], now);
    if (!due)
        return 0;
    mr_http_req *reqs = calloc(due, sizeof *reqs);
    struct stream **owners = calloc(due, sizeof *owners);
    char **scratch = calloc(due, sizeof *scratch);
    size_t n = 0;
    for (size_t i = 0; i < in->stream_count; i++) {
        struct stream *s = &in->streams[i];
        if (!batch_due(in, s, now))
            continue;
        if (s->batch_docs == 0) { /* only poison records: nothing to send */
            push_inflight(s, TASK_NONE);
            release_pending(in, s);
            continue;
        }
        size_t scratch_len = s->body.len + 1024;
        scratch[n] = malloc(scratch_len);
        batch_request(s, &reqs[n], scratch[n], scratch_len);
        owners[n++] = s;
    }
    mr_http_run(in->http, reqs, n);
    for (size_t i = 0; i < n; i++) {
        struct stream *s = owners[i];
        json_t *answer = mr_http_json(&reqs[i]);
        json_t *uid = json_object_get(answer, "taskUid");
        if (reqs[i].status == 202 && json_is_integer(uid)) {
            push_inflight(s, json_integer_value(uid));
            release_pending(in, s);
        } else if (reqs[i].status >= 400 && reqs[i].status < 500 && reqs[i].status != 408 && reqs[i].status != 429 &&
                   json_object_get(answer, "code")) {
            /* The node refused the batch itself (e.g. invalid settings): settle it like a failed task. */
            push_inflight(s, TASK_REJECTED);
            s->inflight[s->inflight_count - 1].error = json_incref(answer);
            release_pending(in, s);
        } else {
            char why[300];
            snprintf(why, sizeof why, "sending a batch failed: %ld %.200s", reqs[i].status,
                     reqs[i].status ? (reqs[i].resp ? reqs[i].resp : "") : reqs[i].curl_error);
            stream_node_failed(in, s, why);
        }
        json_decref(answer);
        mr_http_req_reset(&reqs[i]);
        free(scratch[i]);
    }
    free(reqs);
    free(owners);
    free(scratch);
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
static int failed_alone(ingest *in, const struct stream *s, json_t *task)
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

/* Advances the stream over every finished task at the head of its queue. */
static void stream_settle(ingest *in, struct stream *s, json_t *statuses)
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
                    if (head->count > 1 || !failed_alone(in, s, task)) {
                        /* One bad record fails its whole Meilisearch batch: bisect by reading the
                         * range again in halves, one task at a time, down to single records. */
                        s->split_until = head->last;
                        s->split_size = head->count > 1 ? head->count / 2 : 1;
                        stream_rewind(in, s, head->first, 0);
                        return;
                    }
                    mr_error why = {0};
                    if (mr_error_from_json(&why, 400, error))
                        mr_error_set(&why, "internal", "Meilisearch rejected the record");
                    ingest_dead_letter(in, s->index, s->topic, (int32_t)s->shard, head->first, head->key,
                                       head->key ? strlen(head->key) : 0, head->value,
                                       head->value ? strlen(head->value) : 0, mr_op_name(head->op), &why, s->dlq_writer);
                }
            }
        }
        s->applied = head->last + 1;
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
            struct stream *s = &in->streams[i];
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
                struct stream *s = &in->streams[i];
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
            struct stream *s = &in->streams[j];
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
                if (m->err != RD_KAFKA_RESP_ERR__PARTITION_EOF)
                    mr_log("warn", "ingest", "reader %s: %s", in->readers[slot].id, rd_kafka_message_errstr(m));
                rd_kafka_message_destroy(m);
                continue;
            }
            struct stream *s = stream_find(in, (int)slot, rd_kafka_topic_name(m->rkt), m->partition);
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
        struct stream *s = &in->streams[i];
        if (s->paused && pending_count(s) < MAX_PENDING / 2 && now >= s->resume_at_ms)
            set_paused(in, s, 0);
    }
}

int ingest_apply_round(ingest *in)
{
    int work = read_records(in);
    int64_t now = mr_now_ms();
    work |= send_batches(in, now);
    work |= poll_tasks(in, now);
    resume_streams(in, now);
    return work;
}
