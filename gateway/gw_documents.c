/* gw_documents.c: document writes (validate, produce to the shard partition, record a task) and
 * document deletions by ids, by filter or of all. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gw.h"
#include "hrw.h"
#include "kafka.h"
#include "payload.h"
#include "record.h"
#include "seq.h"
#include "task.h"
#include "util.h"
#include "alloc.h"

static void documents_write(gw *g, const gw_request *req, gw_response *res, enum mr_op op)
{
    mr_error err = {0};
    enum mr_payload_format fmt;
    const char *ctype = MHD_lookup_connection_value(req->conn, MHD_HEADER_KIND, "Content-Type");
    if (mr_payload_format_of(ctype, &fmt, &err)) {
        gw_reply_error(res, &err);
        return;
    }
    const char *delimiter = gw_arg(req, "csvDelimiter");
    if (delimiter && (strlen(delimiter) != 1 || (unsigned char)delimiter[0] > 127)) {
        mr_error_invalid(&err, "invalid_document_csv_delimiter",
                         "Invalid value in parameter `csvDelimiter`: expected a string of one character, but found `%.20s`",
                         delimiter);
        gw_reply_error(res, &err);
        return;
    }
    json_t *docs = mr_payload_parse(req->body, req->body_len, fmt, delimiter ? delimiter[0] : ',', &err);
    if (!docs) {
        gw_reply_error(res, &err);
        return;
    }
    const char *uid = req->captures[0];
    const char *pk_param = gw_arg(req, "primaryKey");
    gw_write w = {0};
    const mr_index *ix = gw_write_begin(g, req, uid, 1, &w, &err);
    char pk[256] = "";
    mr_produce_msg *msgs = NULL;
    char **ids = NULL;
    char **values = NULL;
    size_t n = json_array_size(docs);
    if (!ix) {
        /* no index, and the key may not create one: Meilisearch enqueues the write and fails it */
        if (err.status && strcmp(err.code, "index_not_found") == 0)
            gw_failed_task(g, uid, "documentAdditionOrUpdate",
                           json_pack("{s:I, s:i}", "receivedDocuments", (json_int_t)n, "indexedDocuments", 0), &err, res);
        else
            gw_reply_error(res, &err);
        goto done;
    }
    /* What a node finds in the documents fails the task, as a node's does (nothing is produced);
     * only the gateway's own rule, the reserved fields, is refused at once. */
    if (ix->primary_key[0]) {
        if (pk_param && strcmp(pk_param, ix->primary_key) != 0) {
            mr_error_set(&err, "index_primary_key_already_exists", "Index already has a primary key: `%s`.",
                         ix->primary_key);
            goto failed_task;
        }
        snprintf(pk, sizeof pk, "%s", ix->primary_key);
    } else if (pk_param) {
        snprintf(pk, sizeof pk, "%s", pk_param);
    } else if (n > 0 && mr_primary_key_infer(docs, pk, sizeof pk, &err)) {
        goto failed_task;
    }
    if (n > 0 && mr_documents_validate(docs, pk, &err))
        goto failed_task;
    if (n > 0 && !ix->primary_key[0] && gw_update_definition(g, ix, gw_set_primary_key, pk, &err))
        goto fail;
    if (gw_ready_storage(g, ix, &err))
        goto fail;
    char topic[300];
    gw_topic_of(topic, sizeof topic, MR_TOPIC_INDEX_PREFIX, ix->storage);
    msgs = mr_calloc(n, sizeof *msgs);
    ids = mr_calloc(n, sizeof *ids);
    values = mr_calloc(n, sizeof *values);
    uint64_t seq = mr_seq_reserve(&g->write_seq, mr_now_ms(), n);
    for (size_t i = 0; i < n; i++) {
        json_t *doc = json_array_get(docs, i);
        char id[MR_DOCID_MAX + 1];
        int idlen = mr_docid_from_json(json_object_get(doc, pk), id, sizeof id, &err);
        ids[i] = mr_strdup(id);
        values[i] = json_dumps(doc, JSON_COMPACT);
        rd_kafka_headers_t *h = mr_headers_op(mr_op_name(op));
        /* the key the index takes from this very write, for an ingest that hasn't read it yet */
        rd_kafka_header_add(h, MR_HEADER_PRIMARY_KEY, -1, pk, -1);
        char seq_text[24];
        snprintf(seq_text, sizeof seq_text, "%" PRIu64, seq + i);
        rd_kafka_header_add(h, MR_HEADER_SEQ, -1, seq_text, -1);
        msgs[i] = (mr_produce_msg){.topic = topic,
                                   .partition = (int32_t)mr_shard_of(id, (size_t)idlen, ix->shard_count),
                                   .key = ids[i],
                                   .key_len = (size_t)idlen,
                                   .value = values[i],
                                   .value_len = strlen(values[i]),
                                   .headers = h};
    }
    json_t *task = mr_task_new(ix->uid, "documentAdditionOrUpdate",
                               json_pack("{s:I, s:n}", "receivedDocuments", (json_int_t)n, "indexedDocuments"));
    json_object_set_new(task, "storage", json_string(ix->storage));
    gw_produce_task(g, msgs, n, task, res);
    json_decref(task);
    goto done;
failed_task:
    if (strcmp(err.code, "miroir_reserved_field") != 0) {
        gw_failed_task(g, ix->uid, "documentAdditionOrUpdate",
                       json_pack("{s:I, s:i}", "receivedDocuments", (json_int_t)n, "indexedDocuments", 0), &err, res);
        goto done;
    }
fail:
    gw_reply_error(res, &err);
done:
    for (size_t i = 0; ids && i < n; i++) {
        free(ids[i]);
        free(values[i]);
    }
    free(ids);
    free(values);
    free(msgs);
    gw_write_end(g, &w);
    json_decref(docs);
}

void gw_route_documents_add(gw *g, const gw_request *req, gw_response *res)
{
    documents_write(g, req, res, MR_OP_REPLACE);
}

void gw_route_documents_update(gw *g, const gw_request *req, gw_response *res)
{
    documents_write(g, req, res, MR_OP_UPDATE);
}

/* The deletions below run like writes: on the live incarnation, or as a task that fails with
 * index_not_found when there is none, as on one node. Returns the index, or NULL once answered. */
static const mr_index *deletion_target(gw *g, const gw_request *req, gw_write *w, json_t *details, gw_response *res)
{
    mr_error err;
    const mr_index *ix = gw_write_begin(g, req, req->captures[0], 0, w, &err);
    if (!ix)
        gw_failed_task(g, req->captures[0], "documentDeletion", json_incref(details), &err, res);
    return ix;
}

static json_t *deletion_details(json_int_t provided, const json_t *filter)
{
    char *text = filter ? json_dumps(filter, JSON_ENCODE_ANY | JSON_COMPACT) : NULL;
    json_t *d = json_pack("{s:I, s:n, s:s?}", "providedIds", provided, "deletedDocuments", "originalFilter", text);
    free(text);
    return d;
}

/* Produces deletions of the ids in keys (n valid ones of those given) and answers with their task. */
static void delete_ids(gw *g, const mr_index *ix, char (*keys)[MR_DOCID_MAX + 1], size_t n, json_t *details,
                       gw_response *res)
{
    mr_error err;
    if (gw_ready_storage(g, ix, &err)) {
        gw_reply_error(res, &err);
        return;
    }
    char topic[300];
    gw_topic_of(topic, sizeof topic, MR_TOPIC_INDEX_PREFIX, ix->storage);
    mr_produce_msg *msgs = mr_calloc(n, sizeof *msgs);
    for (size_t i = 0; i < n; i++)
        msgs[i] = (mr_produce_msg){.topic = topic, .partition = (int32_t)mr_shard_of(keys[i], strlen(keys[i]), ix->shard_count),
                                   .key = keys[i], .key_len = strlen(keys[i]),
                                   .headers = mr_headers_op(mr_op_name(MR_OP_DELETE))};
    json_t *task = mr_task_new(ix->uid, "documentDeletion", json_incref(details));
    json_object_set_new(task, "storage", json_string(ix->storage));
    if ((json_int_t)n != json_integer_value(json_object_get(details, "providedIds")))
        json_object_set_new(task, "validIds", json_integer((json_int_t)n));
    gw_produce_task(g, msgs, n, task, res);
    json_decref(task);
    free(msgs);
}

/* An invalid id names no document: as on a node, its deletion succeeds and deletes nothing. */
void gw_route_document_delete(gw *g, const gw_request *req, gw_response *res)
{
    const char *id = req->captures[1];
    json_t *details = json_pack("{s:i, s:n, s:n}", "providedIds", 1, "deletedDocuments", "originalFilter");
    gw_write w = {0};
    const mr_index *ix = deletion_target(g, req, &w, details, res);
    if (ix) {
        char key[1][MR_DOCID_MAX + 1];
        snprintf(key[0], sizeof key[0], "%s", id);
        delete_ids(g, ix, key, mr_docid_valid(id, strlen(id)) ? 1 : 0, details, res);
    }
    gw_write_end(g, &w);
    json_decref(details);
}

void gw_route_documents_delete_batch(gw *g, const gw_request *req, gw_response *res)
{
    mr_error err;
    json_error_t jerr;
    json_t *ids = req->body_len ? json_loadb(req->body, req->body_len, 0, &jerr) : NULL;
    size_t n = json_array_size(ids);
    char (*keys)[MR_DOCID_MAX + 1] = mr_calloc(n, sizeof *keys);
    gw_write w = {0};
    if (!json_is_array(ids)) {
        mr_error_set(&err, req->body_len ? "malformed_payload" : "missing_payload",
                     "The json payload provided is malformed: expected an array of document ids.");
        goto fail;
    }
    size_t valid = 0;
    for (size_t i = 0; i < n; i++) /* a value that is no valid id names no document: nothing to delete */
        if (mr_docid_from_json(json_array_get(ids, i), keys[valid], sizeof keys[valid], &err) >= 0)
            valid++;
    json_t *details = deletion_details((json_int_t)n, NULL);
    const mr_index *ix = deletion_target(g, req, &w, details, res);
    if (ix)
        delete_ids(g, ix, keys, valid, details, res);
    json_decref(details);
    goto done;
fail:
    gw_reply_error(res, &err);
done:
    gw_write_end(g, &w);
    free(keys);
    json_decref(ids);
}

/* Meilisearch checks a filter's syntax before it enqueues the deletion, and whether its fields
 * are filterable when it runs it, against the settings then. Miroir has a node check the syntax
 * the same way (a deletion on its scratch index), so that a filter made valid by a settings task
 * queued just before it is accepted, and fails its task otherwise. */
static int check_filter_syntax(gw *g, const char *uid, const json_t *filter, mr_error *err)
{
    json_t *probe = json_pack("{s:O}", "filter", filter);
    char *text = json_dumps(probe, JSON_COMPACT);
    int rc = gw_node_check(g, uid, "POST", "/documents/delete", text, err);
    free(text);
    json_decref(probe);
    return rc;
}

void gw_route_documents_delete_filter(gw *g, const gw_request *req, gw_response *res)
{
    mr_error err;
    json_t *body = gw_body_object(req, &err);
    json_t *filter = json_object_get(body, "filter");
    if (body && (!filter || json_is_null(filter)))
        mr_error_set(&err, "missing_document_filter", "Missing field `filter`");
    if (!body || !filter || json_is_null(filter) || check_filter_syntax(g, req->captures[0], filter, &err)) {
        gw_reply_error(res, &err);
        json_decref(body);
        return;
    }
    json_t *details = deletion_details(0, filter);
    gw_write w = {0};
    const mr_index *ix = deletion_target(g, req, &w, details, res);
    if (ix) {
        json_t *task = mr_task_new(ix->uid, "documentDeletion", json_incref(details));
        json_t *payload = json_pack("{s:O}", "filter", filter);
        gw_produce_control(g, ix, MR_OP_DELETE_BY_FILTER, payload, task, res);
        json_decref(payload);
        json_decref(task);
    }
    gw_write_end(g, &w);
    json_decref(details);
    json_decref(body);
}

void gw_route_documents_clear(gw *g, const gw_request *req, gw_response *res)
{
    json_t *details = deletion_details(0, NULL);
    gw_write w = {0};
    const mr_index *ix = deletion_target(g, req, &w, details, res);
    if (ix) {
        json_t *task = mr_task_new(ix->uid, "documentDeletion", json_incref(details));
        json_t *payload = json_object();
        gw_produce_control(g, ix, MR_OP_CLEAR, payload, task, res);
        json_decref(payload);
        json_decref(task);
    }
    gw_write_end(g, &w);
    json_decref(details);
}
