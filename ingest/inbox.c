/* inbox.c: routes records of an index's inbox topic (any partitioning) to the shard partition. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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

int ingest_route_inbox(ingest *in, rd_kafka_message_t **msgs, size_t n)
{
    mr_produce_msg *out = calloc(n, sizeof *out);
    char (*ids)[MR_DOCID_MAX + 1] = calloc(n, sizeof *ids);
    char (*topics)[256] = calloc(n, sizeof *topics);
    size_t count = 0;
    mr_topology *topo = mr_topology_acquire(mr_meta_topology(in->meta));
    for (size_t i = 0; i < n; i++) {
        rd_kafka_message_t *m = msgs[i];
        const char *uid = rd_kafka_topic_name(m->rkt) + strlen(MR_TOPIC_INBOX_PREFIX); /* a storage name */
        const mr_index *ix = mr_topology_find_storage(topo, uid);
        if (ix && ix->deleted)
            ix = NULL;
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
        ingest_dead_letter(in, uid, rd_kafka_topic_name(m->rkt), m->partition, m->offset, m->key, m->key_len,
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
