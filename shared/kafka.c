/* kafka.c: librdkafka configuration with -X style passthrough, admin, and synchronous produce. */
#include "kafka.h"

#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "record.h"

struct produce_batch {
    pthread_mutex_t lock;
    size_t pending;
};

static void on_delivery(rd_kafka_t *rk, const rd_kafka_message_t *m, void *opaque)
{
    (void)rk;
    (void)opaque;
    mr_produce_msg *msg = m->_private;
    if (!msg)
        return;
    struct produce_batch *b = msg->batch_;
    msg->result = m->err;
    msg->offset = m->offset;
    pthread_mutex_lock(&b->lock);
    b->pending--;
    pthread_mutex_unlock(&b->lock);
}

static int conf_set(rd_kafka_conf_t *conf, const char *name, const char *value, char *err, size_t errlen)
{
    if (rd_kafka_conf_set(conf, name, value, err, errlen) != RD_KAFKA_CONF_OK)
        return -1;
    return 0;
}

static rd_kafka_conf_t *base_conf(const mr_config *cfg, char *err, size_t errlen)
{
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    if (conf_set(conf, "bootstrap.servers", cfg->kafka_brokers, err, errlen) ||
        conf_set(conf, "client.id", cfg->worker_id, err, errlen) ||
        /* librdkafka backs off reconnects up to 10 s, +50 % jitter: after a broker restart a
         * write could wait out its whole produce timeout before the client even tried again.
         * Clusters have few brokers, so trying every second costs nothing. */
        conf_set(conf, "reconnect.backoff.max.ms", "1000", err, errlen))
        goto fail;
    for (size_t i = 0; i < cfg->kafka_prop_count; i++)
        if (conf_set(conf, cfg->kafka_props[i].name, cfg->kafka_props[i].value, err, errlen))
            goto fail;
    return conf;
fail:
    rd_kafka_conf_destroy(conf);
    return NULL;
}

static int conf_extra(rd_kafka_conf_t *conf, const char *const *extra, char *err, size_t errlen)
{
    for (const char *const *kv = extra; kv && kv[0]; kv += 2)
        if (conf_set(conf, kv[0], kv[1], err, errlen))
            return -1;
    return 0;
}

rd_kafka_t *mr_kafka_producer(const mr_config *cfg, char *err, size_t errlen)
{
    return mr_kafka_producer_with(cfg, NULL, err, errlen);
}

rd_kafka_t *mr_kafka_producer_with(const mr_config *cfg, const char *const *extra, char *err, size_t errlen)
{
    rd_kafka_conf_t *conf = base_conf(cfg, err, errlen);
    if (!conf)
        return NULL;
    char timeout[32];
    snprintf(timeout, sizeof timeout, "%ld", cfg->produce_timeout_ms);
    /* Idempotence implies acks=all and ordered, duplicate-free retries per partition. */
    if (conf_set(conf, "enable.idempotence", "true", err, errlen) || conf_set(conf, "acks", "all", err, errlen) ||
        conf_set(conf, "linger.ms", "2", err, errlen) ||
        conf_set(conf, "message.timeout.ms", timeout, err, errlen) ||
        conf_set(conf, "compression.type", "lz4", err, errlen) ||
        /* a topic made a moment ago is written to as soon as the broker knows it */
        conf_set(conf, "topic.metadata.refresh.fast.interval.ms", "20", err, errlen) ||
        conf_extra(conf, extra, err, errlen)) {
        rd_kafka_conf_destroy(conf);
        return NULL;
    }
    rd_kafka_conf_set_dr_msg_cb(conf, on_delivery);
    rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, err, errlen);
    if (!rk)
        rd_kafka_conf_destroy(conf);
    return rk;
}

rd_kafka_t *mr_kafka_consumer(const mr_config *cfg, const char *group_id, const char *const *extra, char *err,
                              size_t errlen)
{
    return mr_kafka_consumer_cb(cfg, group_id, extra, NULL, NULL, err, errlen);
}

rd_kafka_t *mr_kafka_consumer_cb(const mr_config *cfg, const char *group_id, const char *const *extra,
                                 void (*rebalance)(rd_kafka_t *, rd_kafka_resp_err_t, rd_kafka_topic_partition_list_t *,
                                                   void *),
                                 void *opaque, char *err, size_t errlen)
{
    rd_kafka_conf_t *conf = base_conf(cfg, err, errlen);
    if (!conf)
        return NULL;
    /* librdkafka's consumer poll wants a group.id even for assign()-only handles; such a handle
     * never joins the group nor commits to it. */
    if (conf_set(conf, "group.id", group_id ? group_id : "miroir.assign-only", err, errlen) ||
        conf_set(conf, "enable.auto.commit", "false", err, errlen) ||
        conf_set(conf, "enable.auto.offset.store", "false", err, errlen) ||
        conf_set(conf, "auto.offset.reset", "earliest", err, errlen) ||
        conf_set(conf, "topic.metadata.refresh.interval.ms", "2000", err, errlen) ||
        conf_set(conf, "fetch.wait.max.ms", "50", err, errlen) ||
        /* a topic made a moment ago is read as soon as the broker knows it */
        conf_set(conf, "topic.metadata.refresh.fast.interval.ms", "20", err, errlen) ||
        conf_extra(conf, extra, err, errlen)) {
        rd_kafka_conf_destroy(conf);
        return NULL;
    }
    if (rebalance) {
        rd_kafka_conf_set_rebalance_cb(conf, rebalance);
        rd_kafka_conf_set_opaque(conf, opaque);
    }
    rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_CONSUMER, conf, err, errlen);
    if (!rk) {
        rd_kafka_conf_destroy(conf);
        return NULL;
    }
    if (group_id)
        rd_kafka_poll_set_consumer(rk);
    return rk;
}

/* What this handle's fresh metadata says of a topic: TOPIC_READY (listed with partitions),
 * TOPIC_ABSENT, TOPIC_PENDING (listed, not usable yet), or -1 if the cluster didn't answer. */
enum { TOPIC_ABSENT, TOPIC_READY, TOPIC_PENDING };

static int topic_listed(rd_kafka_t *rk, const char *topic)
{
    const struct rd_kafka_metadata *md = NULL;
    rd_kafka_topic_t *t = rd_kafka_topic_new(rk, topic, NULL);
    int listed = -1;
    if (rd_kafka_metadata(rk, 0, t, &md, 5000) == RD_KAFKA_RESP_ERR_NO_ERROR) {
        if (md->topic_cnt != 1 || md->topics[0].err == RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART)
            listed = TOPIC_ABSENT;
        else if (md->topics[0].err == RD_KAFKA_RESP_ERR_NO_ERROR && md->topics[0].partition_cnt > 0)
            listed = TOPIC_READY;
        else
            listed = TOPIC_PENDING;
        rd_kafka_metadata_destroy(md);
    }
    rd_kafka_topic_destroy(t);
    return listed;
}

/* Polls this handle's metadata every step_ms until the topic is in state want. Returns 0, or -1
 * with err (what names the state for the message) once timeout_ms have passed. */
static int wait_topic(rd_kafka_t *rk, const char *topic, int want, int step_ms, int timeout_ms, const char *what,
                      char *err, size_t errlen)
{
    for (int waited = 0; topic_listed(rk, topic) != want; waited += step_ms) {
        if (waited >= timeout_ms) {
            snprintf(err, errlen, "topic %s %s after %d ms", topic, what, timeout_ms);
            return -1;
        }
        usleep((useconds_t)step_ms * 1000);
    }
    return 0;
}

int mr_kafka_create_topic(rd_kafka_t *rk, const char *topic, int partitions, const char *const *config,
                          int timeout_ms, char *err, size_t errlen)
{
    rd_kafka_NewTopic_t *nt = rd_kafka_NewTopic_new(topic, partitions, 1, err, errlen);
    if (!nt)
        return -1;
    for (const char *const *c = config; c && c[0]; c += 2)
        rd_kafka_NewTopic_set_config(nt, c[0], c[1]);
    rd_kafka_queue_t *q = rd_kafka_queue_new(rk);
    rd_kafka_AdminOptions_t *opts = rd_kafka_AdminOptions_new(rk, RD_KAFKA_ADMIN_OP_CREATETOPICS);
    rd_kafka_AdminOptions_set_operation_timeout(opts, timeout_ms, NULL, 0);
    rd_kafka_AdminOptions_set_request_timeout(opts, timeout_ms, NULL, 0);
    rd_kafka_CreateTopics(rk, &nt, 1, opts, q);
    rd_kafka_event_t *ev = rd_kafka_queue_poll(q, timeout_ms + 2000);
    int rc = -1;
    if (!ev) {
        snprintf(err, errlen, "creating topic %s: timed out", topic);
    } else if (rd_kafka_event_error(ev)) {
        snprintf(err, errlen, "creating topic %s: %s", topic, rd_kafka_event_error_string(ev));
    } else {
        size_t n;
        const rd_kafka_topic_result_t **res =
            rd_kafka_CreateTopics_result_topics(rd_kafka_event_CreateTopics_result(ev), &n);
        rd_kafka_resp_err_t e = n ? rd_kafka_topic_result_error(res[0]) : RD_KAFKA_RESP_ERR_UNKNOWN;
        if (e == RD_KAFKA_RESP_ERR_NO_ERROR || e == RD_KAFKA_RESP_ERR_TOPIC_ALREADY_EXISTS)
            rc = e == RD_KAFKA_RESP_ERR_TOPIC_ALREADY_EXISTS;
        else
            snprintf(err, errlen, "creating topic %s: %s", topic,
                     n && rd_kafka_topic_result_error_string(res[0]) ? rd_kafka_topic_result_error_string(res[0])
                                                                     : rd_kafka_err2str(e));
    }
    if (ev)
        rd_kafka_event_destroy(ev);
    rd_kafka_AdminOptions_destroy(opts);
    rd_kafka_queue_destroy(q);
    rd_kafka_NewTopic_destroy(nt);
    /* Until this handle's metadata lists the topic, producing to it fails as unknown (it may
     * remember the topic as deleted). */
    if (rc >= 0 && wait_topic(rk, topic, TOPIC_READY, 10, timeout_ms, "created but not visible", err, errlen))
        rc = -1;
    return rc;
}

int mr_kafka_topic_exists(rd_kafka_t *rk, const char *topic)
{
    int listed = topic_listed(rk, topic);
    return listed < 0 ? -1 : listed == TOPIC_READY;
}

int mr_kafka_delete_topic(rd_kafka_t *rk, const char *topic, int timeout_ms, char *err, size_t errlen)
{
    rd_kafka_DeleteTopic_t *dt = rd_kafka_DeleteTopic_new(topic);
    rd_kafka_queue_t *q = rd_kafka_queue_new(rk);
    rd_kafka_AdminOptions_t *opts = rd_kafka_AdminOptions_new(rk, RD_KAFKA_ADMIN_OP_DELETETOPICS);
    rd_kafka_AdminOptions_set_operation_timeout(opts, timeout_ms, NULL, 0);
    rd_kafka_DeleteTopics(rk, &dt, 1, opts, q);
    rd_kafka_event_t *ev = rd_kafka_queue_poll(q, timeout_ms + 2000);
    int rc = -1;
    if (!ev) {
        snprintf(err, errlen, "deleting topic %s: timed out", topic);
    } else {
        size_t n = 0;
        const rd_kafka_topic_result_t **res =
            rd_kafka_event_error(ev) ? NULL : rd_kafka_DeleteTopics_result_topics(rd_kafka_event_DeleteTopics_result(ev), &n);
        rd_kafka_resp_err_t e = rd_kafka_event_error(ev) ? rd_kafka_event_error(ev)
                                : n ? rd_kafka_topic_result_error(res[0]) : RD_KAFKA_RESP_ERR_UNKNOWN;
        if (e == RD_KAFKA_RESP_ERR_NO_ERROR || e == RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART)
            rc = 0;
        else
            snprintf(err, errlen, "deleting topic %s: %s", topic, rd_kafka_err2str(e));
        rd_kafka_event_destroy(ev);
    }
    rd_kafka_AdminOptions_destroy(opts);
    rd_kafka_queue_destroy(q);
    rd_kafka_DeleteTopic_destroy(dt);
    /* Deletion is asynchronous in the cluster: wait until a new topic of this name can be made. */
    if (rc == 0 && timeout_ms > 0)
        rc = wait_topic(rk, topic, TOPIC_ABSENT, 200, timeout_ms, "still exists", err, errlen);
    return rc;
}

int mr_kafka_delete_records(rd_kafka_t *rk, const char *topic, int32_t partition, int64_t before, int timeout_ms,
                            char *err, size_t errlen)
{
    rd_kafka_topic_partition_list_t *parts = rd_kafka_topic_partition_list_new(1);
    rd_kafka_topic_partition_list_add(parts, topic, partition)->offset = before;
    rd_kafka_DeleteRecords_t *dr = rd_kafka_DeleteRecords_new(parts);
    rd_kafka_topic_partition_list_destroy(parts);
    rd_kafka_queue_t *q = rd_kafka_queue_new(rk);
    rd_kafka_AdminOptions_t *opts = rd_kafka_AdminOptions_new(rk, RD_KAFKA_ADMIN_OP_DELETERECORDS);
    rd_kafka_AdminOptions_set_operation_timeout(opts, timeout_ms, NULL, 0);
    rd_kafka_DeleteRecords(rk, &dr, 1, opts, q);
    rd_kafka_event_t *ev = rd_kafka_queue_poll(q, timeout_ms + 2000);
    int rc = -1;
    if (!ev) {
        snprintf(err, errlen, "deleting records of %s/%d: timed out", topic, partition);
    } else {
        const rd_kafka_topic_partition_list_t *res =
            rd_kafka_event_error(ev) ? NULL : rd_kafka_DeleteRecords_result_offsets(rd_kafka_event_DeleteRecords_result(ev));
        rd_kafka_resp_err_t e = rd_kafka_event_error(ev) ? rd_kafka_event_error(ev)
                                : res && res->cnt ? res->elems[0].err : RD_KAFKA_RESP_ERR_UNKNOWN;
        if (e == RD_KAFKA_RESP_ERR_NO_ERROR)
            rc = 0;
        else
            snprintf(err, errlen, "deleting records of %s/%d below %lld: %s", topic, partition, (long long)before,
                     rd_kafka_err2str(e));
        rd_kafka_event_destroy(ev);
    }
    rd_kafka_AdminOptions_destroy(opts);
    rd_kafka_queue_destroy(q);
    rd_kafka_DeleteRecords_destroy(dr);
    return rc;
}

int mr_kafka_partition_range(rd_kafka_t *rk, const char *topic, int32_t partition, int64_t *first, int64_t *end,
                             int timeout_ms)
{
    return rd_kafka_query_watermark_offsets(rk, topic, partition, first, end, timeout_ms) == RD_KAFKA_RESP_ERR_NO_ERROR
               ? 0
               : -1;
}

rd_kafka_headers_t *mr_headers_op(const char *op)
{
    rd_kafka_headers_t *h = rd_kafka_headers_new(1);
    rd_kafka_header_add(h, MR_HEADER_OP, -1, op, -1);
    return h;
}

const char *mr_header_get(const rd_kafka_message_t *m, const char *name, size_t *len)
{
    rd_kafka_headers_t *h = NULL;
    const void *v = NULL;
    if (rd_kafka_message_headers(m, &h) != RD_KAFKA_RESP_ERR_NO_ERROR)
        return NULL;
    if (rd_kafka_header_get_last(h, name, &v, len) != RD_KAFKA_RESP_ERR_NO_ERROR)
        return NULL;
    return v;
}

int mr_produce_all(rd_kafka_t *producer, mr_produce_msg *msgs, size_t n, mr_error *err)
{
    struct produce_batch batch = {.pending = 0};
    pthread_mutex_init(&batch.lock, NULL);
    size_t failed_enqueue = 0;
    rd_kafka_resp_err_t first_error = RD_KAFKA_RESP_ERR_NO_ERROR;
    for (size_t i = 0; i < n; i++) {
        mr_produce_msg *m = &msgs[i];
        m->batch_ = &batch;
        m->offset = -1;
        m->result = RD_KAFKA_RESP_ERR__IN_PROGRESS;
        pthread_mutex_lock(&batch.lock);
        batch.pending++;
        pthread_mutex_unlock(&batch.lock);
        rd_kafka_resp_err_t e;
        for (;;) {
            rd_kafka_headers_t *h = m->headers ? rd_kafka_headers_copy(m->headers) : NULL;
            if (!h)
                h = rd_kafka_headers_new(0);
            e = rd_kafka_producev(producer, RD_KAFKA_V_TOPIC(m->topic), RD_KAFKA_V_PARTITION(m->partition),
                                  RD_KAFKA_V_KEY(m->key, m->key_len), RD_KAFKA_V_VALUE((void *)m->value, m->value_len),
                                  RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY), RD_KAFKA_V_OPAQUE(m),
                                  RD_KAFKA_V_HEADERS(h), RD_KAFKA_V_END);
            if (e != RD_KAFKA_RESP_ERR_NO_ERROR)
                rd_kafka_headers_destroy(h);
            if (e != RD_KAFKA_RESP_ERR__QUEUE_FULL)
                break;
            rd_kafka_poll(producer, 10); /* backpressure: let deliveries drain the local queue */
        }
        if (e != RD_KAFKA_RESP_ERR_NO_ERROR) {
            m->result = e;
            pthread_mutex_lock(&batch.lock);
            batch.pending--;
            pthread_mutex_unlock(&batch.lock);
            if (!failed_enqueue++)
                first_error = e;
        }
    }
    /* librdkafka reports every message within message.timeout.ms, so this loop ends; it must not
     * return early because the reports write into msgs. */
    for (;;) {
        pthread_mutex_lock(&batch.lock);
        size_t pending = batch.pending;
        pthread_mutex_unlock(&batch.lock);
        if (!pending)
            break;
        rd_kafka_poll(producer, 5);
    }
    pthread_mutex_destroy(&batch.lock);
    for (size_t i = 0; i < n; i++) {
        if (msgs[i].headers) {
            rd_kafka_headers_destroy(msgs[i].headers);
            msgs[i].headers = NULL;
        }
        if (msgs[i].result != RD_KAFKA_RESP_ERR_NO_ERROR && first_error == RD_KAFKA_RESP_ERR_NO_ERROR)
            first_error = msgs[i].result;
    }
    if (first_error != RD_KAFKA_RESP_ERR_NO_ERROR) {
        mr_error_set(err, "miroir_kafka_unavailable",
                     "The write was not accepted by Kafka (%s); nothing was acknowledged. Retry later.",
                     rd_kafka_err2str(first_error));
        return -1;
    }
    return 0;
}

void mr_kafka_index_ends(rd_kafka_t *rk, const char *storage, uint32_t shards, int64_t *ends, int timeout_ms)
{
    char topic[300];
    snprintf(topic, sizeof topic, "%s%s", MR_TOPIC_INDEX_PREFIX, storage);
    /* One ListOffsets request for all partitions: the timestamp "latest" (-1) asks for each
     * partition's end. A partition the answer has an error for falls back to its own watermark
     * query; when the whole request failed (Kafka unreachable) every end is -1 at once, rather
     * than each partition waiting out the same timeout again. */
    rd_kafka_topic_partition_list_t *parts = rd_kafka_topic_partition_list_new((int)shards);
    for (uint32_t s = 0; s < shards; s++)
        rd_kafka_topic_partition_list_add(parts, topic, (int32_t)s)->offset = RD_KAFKA_OFFSET_END;
    int ok = rd_kafka_offsets_for_times(rk, parts, timeout_ms) == RD_KAFKA_RESP_ERR_NO_ERROR;
    for (uint32_t s = 0; s < shards; s++) {
        const rd_kafka_topic_partition_t *p = &parts->elems[s];
        ends[s] = !ok ? -1 : !p->err && p->offset >= 0 ? p->offset : mr_kafka_shard_end(rk, storage, s, timeout_ms);
    }
    rd_kafka_topic_partition_list_destroy(parts);
}

int64_t mr_kafka_shard_end(rd_kafka_t *rk, const char *storage, uint32_t shard, int timeout_ms)
{
    char topic[300];
    int64_t lo, hi;
    snprintf(topic, sizeof topic, "%s%s", MR_TOPIC_INDEX_PREFIX, storage);
    if (rd_kafka_query_watermark_offsets(rk, topic, (int32_t)shard, &lo, &hi, timeout_ms))
        return -1;
    return hi;
}
