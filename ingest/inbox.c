/* inbox.c: routes records of an index's inbox topic (any partitioning) to the shard partition,
 * through a consumer group of its own over every inbox topic. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "alloc.h"
#include "hrw.h"
#include "ingest.h"
#include "kafka.h"
#include "util.h"

/* The document id of an inbox record: its key, or else the primary key field of its value. */
static int inbox_id(const mr_index *ix, const rd_kafka_message_t *m, char *id, size_t idlen, mr_error *err)
{
    if (m->key_len) {
        if (!mr_docid_valid(m->key, m->key_len) || m->key_len >= idlen) {
            mr_error_set(err, "invalid_document_id", "record key `%.*s` is not a valid document id",
                         (int)(m->key_len > 100 ? 100 : m->key_len), (const char *)m->key);
            return -1;
        }
        memcpy(id, m->key, m->key_len);
        id[m->key_len] = '\0';
        return (int)m->key_len;
    }
    json_t *doc = m->len ? json_loadb(m->payload, m->len, 0, NULL) : NULL;
    json_t *pk = ix->primary_key[0] ? json_object_get(doc, ix->primary_key) : NULL;
    int n = -1;
    if (!pk)
        mr_error_set(err, "missing_document_id", "inbox record has no key and no `%s` field", ix->primary_key);
    else
        n = mr_docid_from_json(pk, id, idlen, err);
    json_decref(doc);
    return n;
}

#define INBOX_GROUP "miroir.inbox"
#define INBOX_TOPICS "^miroir\\.in\\..+"

static int route(ingest *in, rd_kafka_message_t **msgs, size_t n)
{
    mr_produce_msg *out = mr_calloc(n, sizeof *out);
    char (*ids)[MR_DOCID_MAX + 1] = mr_calloc(n, sizeof *ids);
    char (*topics)[300] = mr_calloc(n, sizeof *topics);
    size_t count = 0;
    mr_topology *topo = mr_topology_acquire(mr_meta_topology(in->meta));
    for (size_t i = 0; i < n; i++) {
        rd_kafka_message_t *m = msgs[i];
        /* the inbox is the uid's: its records go to the uid's live incarnation */
        const char *uid = rd_kafka_topic_name(m->rkt) + strlen(MR_TOPIC_INBOX_PREFIX);
        const mr_index *ix = mr_topology_find(topo, uid);
        mr_error err = {0};
        size_t op_len = 0;
        const char *op = mr_header_get(m, MR_HEADER_OP, &op_len);
        if (!ix) {
            mr_error_set(&err, "index_not_found", "Index `%s` not found.", uid);
        } else {
            int len = inbox_id(ix, m, ids[count], sizeof ids[count], &err);
            if (len >= 0) {
                snprintf(topics[count], sizeof topics[count], "%s%s", MR_TOPIC_INDEX_PREFIX, ix->storage);
                rd_kafka_headers_t *h = NULL;
                if (rd_kafka_message_headers(m, &h) == RD_KAFKA_RESP_ERR_NO_ERROR)
                    h = rd_kafka_headers_copy(h);
                else
                    h = NULL;
                out[count] = (mr_produce_msg){.topic = topics[count],
                                              .partition = (int32_t)mr_shard_of(ids[count], (size_t)len, ix->shard_count),
                                              .key = ids[count],
                                              .key_len = (size_t)len,
                                              .value = m->payload,
                                              .value_len = m->len,
                                              .headers = h};
                count++;
                continue;
            }
        }
        ingest_dead_letter(in, uid, NULL, rd_kafka_topic_name(m->rkt), m->partition, m->offset, m->key, m->key_len,
                           m->payload, m->len, op ? mr_op_name(mr_op_parse(op, op_len)) : "replace", &err, 1);
    }
    mr_topology_release(mr_meta_topology(in->meta), topo);
    mr_error err;
    int rc = count ? mr_produce_all(in->producer, out, count, &err) : 0;
    if (rc)
        mr_log("warn", "ingest", "inbox routing: %s", err.message);
    free(out);
    free(ids);
    free(topics);
    return rc ? -1 : (int)count;
}

int ingest_inbox_start(ingest *in, char *err, size_t errlen)
{
    static const char *const group[] = {"session.timeout.ms", "10000", "heartbeat.interval.ms", "1000", NULL};
    in->inbox = mr_kafka_consumer(in->cfg, INBOX_GROUP, group, err, errlen);
    if (!in->inbox)
        return -1;
    rd_kafka_topic_partition_list_t *sub = rd_kafka_topic_partition_list_new(1);
    rd_kafka_topic_partition_list_add(sub, INBOX_TOPICS, RD_KAFKA_PARTITION_UA);
    rd_kafka_resp_err_t e = rd_kafka_subscribe(in->inbox, sub);
    rd_kafka_topic_partition_list_destroy(sub);
    if (e)
        snprintf(err, errlen, "subscribing to the inbox topics: %s", rd_kafka_err2str(e));
    return e ? -1 : 0;
}

/* Routed records are committed (at least once: a record routed twice is applied twice, harmless);
 * records that could not be are read again from the last commit. */
int ingest_inbox_poll(ingest *in)
{
    rd_kafka_message_t *batch[1000];
    size_t n = 0;
    while (n < sizeof batch / sizeof batch[0]) {
        rd_kafka_message_t *m = rd_kafka_consumer_poll(in->inbox, 0);
        if (!m)
            break;
        if (m->err) {
            rd_kafka_message_destroy(m);
            continue;
        }
        batch[n++] = m;
    }
    if (!n)
        return 0;
    if (route(in, batch, n) >= 0) {
        rd_kafka_topic_partition_list_t *offsets = rd_kafka_topic_partition_list_new((int)n);
        for (size_t i = 0; i < n; i++) /* later offsets of a partition overwrite earlier ones */
            rd_kafka_topic_partition_list_add(offsets, rd_kafka_topic_name(batch[i]->rkt), batch[i]->partition)->offset =
                batch[i]->offset + 1;
        rd_kafka_commit(in->inbox, offsets, 0);
        rd_kafka_topic_partition_list_destroy(offsets);
    } else {
        for (size_t i = 0; i < n; i++) {
            rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(1);
            rd_kafka_topic_partition_list_add(l, rd_kafka_topic_name(batch[i]->rkt), batch[i]->partition);
            rd_kafka_committed(in->inbox, l, 5000);
            if (l->elems[0].offset < 0)
                l->elems[0].offset = RD_KAFKA_OFFSET_BEGINNING;
            rd_kafka_error_t *e = rd_kafka_seek_partitions(in->inbox, l, 5000);
            if (e)
                rd_kafka_error_destroy(e);
            rd_kafka_topic_partition_list_destroy(l);
        }
        mr_sleep_ms(200);
    }
    for (size_t i = 0; i < n; i++)
        rd_kafka_message_destroy(batch[i]);
    return 1;
}

void ingest_inbox_stop(ingest *in)
{
    if (in->inbox) {
        rd_kafka_consumer_close(in->inbox);
        rd_kafka_destroy(in->inbox);
        in->inbox = NULL;
    }
}
