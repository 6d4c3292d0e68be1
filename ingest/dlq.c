/* dlq.c: dead letters: a record that can never be applied is set aside with its error, so the
 * shard keeps flowing and the task that wrote it reports failed. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ingest.h"
#include "kafka.h"
#include "util.h"

/* The dead-letter topic is made in the background with its index; the first dead letter may
 * come sooner. */
static void ensure_topic(ingest *in, const char *uid, const char *topic)
{
    if (json_object_get(in->dlq_topics, uid))
        return;
    static const char *const retention[] = {"retention.ms", "-1", "cleanup.policy", "delete", NULL};
    char err[512];
    if (mr_kafka_create_topic(in->producer, topic, 1, retention, 10000, err, sizeof err) >= 0)
        json_object_set_new(in->dlq_topics, uid, json_true());
    else
        mr_log("warn", "ingest", "%s", err);
}

void ingest_dead_letter(ingest *in, const char *uid, const char *storage, const char *source_topic, int32_t partition,
                        int64_t offset, const char *key, size_t key_len, const char *value, size_t value_len,
                        const char *op, const mr_error *why, int write_topic)
{
    json_t *error = mr_error_json(why);
    char *error_text = json_dumps(error, JSON_COMPACT);
    if (storage) { /* a record of a shard partition */
        /* Every replica records the mark (the same key, so it is idempotent); tasks read it. */
        char mkey[700];
        snprintf(mkey, sizeof mkey, "dlq/%s/%d/%" PRId64, storage, partition, offset);
        json_t *mark = json_pack("{s:O}", "error", error);
        char *mark_text = json_dumps(mark, JSON_COMPACT);
        ingest_progress_put(in, storage, (uint32_t)partition, mkey, mark_text);
        free(mark_text);
        json_decref(mark);
    }
    if (write_topic) {
        char topic[300], source[400];
        snprintf(topic, sizeof topic, "%s%s", MR_TOPIC_DLQ_PREFIX, uid);
        ensure_topic(in, uid, topic);
        snprintf(source, sizeof source, "%s/%d/%" PRId64, source_topic, partition, offset);
        rd_kafka_headers_t *h = rd_kafka_headers_new(3);
        rd_kafka_header_add(h, MR_HEADER_OP, -1, op, -1);
        rd_kafka_header_add(h, "miroir.error", -1, error_text, -1);
        rd_kafka_header_add(h, "miroir.source", -1, source, -1);
        rd_kafka_resp_err_t e = rd_kafka_producev(
            in->producer, RD_KAFKA_V_TOPIC(topic), RD_KAFKA_V_PARTITION(0), RD_KAFKA_V_KEY(key, key ? key_len : 0),
            RD_KAFKA_V_VALUE((void *)value, value ? value_len : 0), RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
            RD_KAFKA_V_HEADERS(h), RD_KAFKA_V_END);
        if (e)
            rd_kafka_headers_destroy(h);
        mr_log("warn", "ingest", "dead-lettered %s: %s", source, why->message);
    }
    free(error_text);
    json_decref(error);
}
