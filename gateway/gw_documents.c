/* gw_documents.c: the write path (validate, produce to the shard partition, record a task),
 * index creation, and document deletions by ids, by filter or of all. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gw.h"
#include "hrw.h"
#include "kafka.h"
#include "payload.h"
#include "record.h"
#include "task.h"
#include "util.h"

static void topic_of(char *out, size_t outlen, const char *prefix, const char *uid)
{
    snprintf(out, outlen, "%s%s", prefix, uid);
}

int gw_produce_task(gw *g, mr_produce_msg *msgs, size_t n, json_t *task, gw_response *res)
{
    mr_error err;
    /* Tasks follow the storage they wrote to, which a swap doesn't change. */
    const char *index_uid = json_string_value(json_object_get(task, "indexUid"));
    mr_topology *topo = mr_topology_acquire(mr_meta_topology(g->meta));
    const mr_index *ix = index_uid ? mr_topology_find(topo, index_uid) : NULL;
    if (ix && !json_object_get(task, "storage"))
        json_object_set_new(task, "storage", json_string(ix->storage));
    mr_topology_release(mr_meta_topology(g->meta), topo);
    if (n && mr_produce_all(g->producer, msgs, n, &err)) {
        gw_reply_error(res, &err);
        return -1;
    }
    /* The task covers, per partition, the range of offsets this write produced. */
    int64_t first[MR_MAX_SHARDS], last[MR_MAX_SHARDS];
    for (size_t s = 0; s < MR_MAX_SHARDS; s++)
        first[s] = last[s] = -1;
    for (size_t i = 0; i < n; i++) {
        int32_t p = msgs[i].partition;
        if (first[p] < 0 || msgs[i].offset < first[p])
            first[p] = msgs[i].offset;
        if (msgs[i].offset > last[p])
            last[p] = msgs[i].offset;
    }
    for (uint32_t s = 0; s < MR_MAX_SHARDS; s++)
        if (first[s] >= 0)
            mr_task_add_part(task, s, first[s], last[s]);
    int64_t uid;
    if (mr_meta_add_task(g->meta, g->producer, task, &uid, &err)) {
        gw_reply_error(res, &err);
        return -1;
    }
    gw_reply(res, 202, mr_task_summary(uid, task));
    return 0;
}

int gw_produce_control(gw *g, const mr_index *ix, enum mr_op op, const json_t *value, json_t *task,
                           gw_response *res)
{
    char topic[256];
    topic_of(topic, sizeof topic, MR_TOPIC_INDEX_PREFIX, ix->storage);
    char *text = json_dumps(value, JSON_COMPACT);
    mr_produce_msg *msgs = calloc(ix->shard_count, sizeof *msgs);
    for (uint32_t s = 0; s < ix->shard_count; s++) {
        msgs[s] = (mr_produce_msg){.topic = topic, .partition = (int32_t)s, .value = text, .value_len = strlen(text),
                                   .headers = mr_headers_op(mr_op_name(op))};
    }
    int rc = gw_produce_task(g, msgs, ix->shard_count, task, res);
    free(msgs);
    free(text);
    return rc;
}

/* Before a deleted index's name is used again: its deletion must have reached every replica;
 * then its topics go (their offsets would mean nothing to the new index) and so do its applied
 * offsets and dead-letter marks. */
static int purge_deleted(gw *g, const char *uid, const char *storage, int64_t deletion_task, mr_error *err)
{
    json_t *task = mr_meta_task(g->meta, deletion_task);
    json_t *view = task ? gw_task_view(g, task) : NULL;
    const char *status = json_string_value(json_object_get(view, "status"));
    int done = status && strcmp(status, "succeeded") == 0;
    json_decref(view);
    json_decref(task);
    if (!done) {
        mr_error_set(err, "miroir_index_being_deleted",
                     "Index `%s` is still being deleted (task %lld); create it again once that task has succeeded.",
                     uid, (long long)deletion_task);
        return -1;
    }
    static const char *const prefixes[] = {MR_TOPIC_INDEX_PREFIX, MR_TOPIC_INBOX_PREFIX, MR_TOPIC_DLQ_PREFIX};
    char topic[256], errbuf[512];
    for (size_t i = 0; i < 3; i++) {
        topic_of(topic, sizeof topic, prefixes[i], storage);
        if (mr_kafka_delete_topic(g->producer, topic, 30000, errbuf, sizeof errbuf)) {
            mr_error_set(err, "miroir_kafka_unavailable", "%s", errbuf);
            return -1;
        }
    }
    json_t *keys = mr_meta_index_keys(g->meta, storage);
    size_t i;
    json_t *key;
    int rc = 0;
    json_array_foreach(keys, i, key) {
        if ((rc = mr_meta_put(g->meta, g->producer, json_string_value(key), NULL, 0, err)))
            break;
    }
    json_decref(keys);
    return rc;
}

int gw_create_index(gw *g, const char *uid, const char *primary_key, long shards, long rf, json_t **task_out,
                    mr_error *err)
{
    *task_out = NULL;
    if (!mr_index_uid_valid(uid)) {
        mr_error_set(err, "invalid_index_uid",
                     "`%.200s` is not a valid index uid. Index uid can be an integer or a string containing only "
                     "alphanumeric characters, hyphens (-) and underscores (_), and can not be more than %d bytes.",
                     uid, MR_INDEX_UID_MAX);
        return -1;
    }
    if (shards < 1 || shards > MR_MAX_SHARDS) {
        mr_error_set(err, "miroir_invalid_shards", "`shards` must be an integer from 1 to %d.", MR_MAX_SHARDS);
        return -1;
    }
    size_t active = gw_default_rf(g, NULL);
    if (rf < 1 || rf > 3 || (size_t)rf > active) {
        mr_error_set(err, "miroir_invalid_replication_factor",
                     "`replicationFactor` must be 1, 2 or 3 and at most the number of active nodes (%zu).", active);
        return -1;
    }
    json_t *details = json_pack("{s:s?}", "primaryKey", primary_key && *primary_key ? primary_key : NULL);
    json_t *task = mr_task_new(uid, "indexCreation", details);
    mr_topology *topo = mr_topology_acquire(mr_meta_topology(g->meta));
    const mr_index *old = mr_topology_find(topo, uid);
    int exists = old && !old->deleted;
    int purge = old && old->deleted;
    int64_t deletion_task = old ? old->deletion_task : -1;
    char old_storage[MR_INDEX_UID_MAX + 1] = "", storage[MR_INDEX_UID_MAX + 1];
    if (old)
        snprintf(old_storage, sizeof old_storage, "%s", old->storage);
    /* The storage name is the uid, unless a swap gave that name to another index's data. */
    const mr_index *holder = mr_topology_find_storage(topo, uid);
    if (holder && strcmp(holder->uid, uid) != 0) {
        char now[48];
        mr_now_rfc3339(now, sizeof now);
        snprintf(storage, sizeof storage, "%.180s-%.4s%.2s%.2s%.2s%.2s%.2s", uid, now, now + 5, now + 8, now + 11,
                 now + 14, now + 17);
    } else {
        snprintf(storage, sizeof storage, "%s", uid);
    }
    mr_topology_release(mr_meta_topology(g->meta), topo);
    if (purge && purge_deleted(g, uid, old_storage, deletion_task, err)) {
        json_decref(task);
        return -1;
    }
    if (exists) {
        /* Meilisearch enqueues the creation and fails the task; so do we. */
        mr_error e;
        mr_error_set(&e, "index_already_exists", "Index `%s` already exists.", uid);
        json_object_set_new(task, "error", mr_error_json(&e));
        *task_out = task;
        return 0;
    }
    char topic[256], errbuf[512];
    static const char *const retention[] = {"retention.ms", "-1", "cleanup.policy", "delete", NULL};
    topic_of(topic, sizeof topic, MR_TOPIC_INDEX_PREFIX, storage);
    int rc = mr_kafka_create_topic(g->producer, topic, (int)shards, retention, 10000, errbuf, sizeof errbuf);
    topic_of(topic, sizeof topic, MR_TOPIC_INBOX_PREFIX, storage);
    if (!rc)
        rc = mr_kafka_create_topic(g->producer, topic, (int)shards, retention, 10000, errbuf, sizeof errbuf);
    topic_of(topic, sizeof topic, MR_TOPIC_DLQ_PREFIX, storage);
    if (!rc)
        rc = mr_kafka_create_topic(g->producer, topic, 1, retention, 10000, errbuf, sizeof errbuf);
    if (rc) {
        mr_error_set(err, "miroir_kafka_unavailable", "%s", errbuf);
        json_decref(task);
        return -1;
    }
    mr_index ix = {.shard_count = (uint32_t)shards, .rf = (uint32_t)rf, .max_total_hits = g->cfg->default_max_total_hits,
                   .max_values_per_facet = 100};
    snprintf(ix.uid, sizeof ix.uid, "%s", uid);
    snprintf(ix.storage, sizeof ix.storage, "%s", storage);
    snprintf(ix.primary_key, sizeof ix.primary_key, "%s", primary_key ? primary_key : "");
    mr_now_rfc3339(ix.created_at, sizeof ix.created_at);
    topo = mr_topology_acquire(mr_meta_topology(g->meta));
    const char *ids[MR_MAX_NODES];
    mr_index_place(&ix, ids, mr_topology_active_ids(topo, ids));
    mr_topology_release(mr_meta_topology(g->meta), topo);
    rc = gw_put_index(g, &ix, err);
    mr_index_clear(&ix);
    if (rc) {
        json_decref(task);
        return -1;
    }
    *task_out = task;
    return 0;
}

int gw_put_index(gw *g, mr_index *ix, mr_error *err)
{
    mr_now_rfc3339(ix->updated_at, sizeof ix->updated_at);
    json_t *def = mr_index_to_json(ix);
    char key[300];
    snprintf(key, sizeof key, "index/%s", ix->uid);
    int rc = mr_meta_put(g->meta, g->producer, key, def, 1, err);
    json_decref(def);
    return rc;
}

/* Sets the primary key of an index that has none yet (first write decides, as in Meilisearch). */
static int set_primary_key(gw *g, const mr_index *ix, const char *pk, mr_error *err)
{
    mr_index copy;
    mr_index_copy(&copy, ix);
    snprintf(copy.primary_key, sizeof copy.primary_key, "%s", pk);
    int rc = gw_put_index(g, &copy, err);
    mr_index_clear(&copy);
    return rc;
}

/* Resolves the index of a write, creating it with defaults if needed (Meilisearch does too, when
 * the caller's key may also create indexes). */
static const mr_index *write_target(gw *g, const gw_request *req, const char *uid, mr_topology **topo, mr_error *err)
{
    *topo = mr_topology_acquire(mr_meta_topology(g->meta));
    const mr_index *ix = mr_topology_find(*topo, uid);
    if (ix && !ix->deleted)
        return ix;
    mr_topology_release(mr_meta_topology(g->meta), *topo);
    *topo = NULL;
    if (!gw_may_act(req, "indexes.create")) {
        mr_error_set(err, "index_not_found", "Index `%.200s` not found.", uid);
        return NULL;
    }
    json_t *task = NULL;
    long rf;
    gw_default_rf(g, &rf);
    if (gw_create_index(g, uid, NULL, 4, rf, &task, err))
        return NULL;
    gw_response res = {0};
    mr_topology *t = mr_topology_acquire(mr_meta_topology(g->meta));
    ix = mr_topology_find(t, uid);
    json_t *payload = json_object();
    int rc = ix ? gw_produce_control(g, ix, MR_OP_CREATE_INDEX, payload, task, &res) : -1;
    json_decref(payload);
    json_decref(task);
    if (rc) {
        if (res.body)
            mr_error_from_json(err, res.status, res.body);
        else
            mr_error_set(err, "internal", "index `%s` vanished while being created", uid);
        json_decref(res.body);
        mr_topology_release(mr_meta_topology(g->meta), t);
        return NULL;
    }
    json_decref(res.body);
    *topo = t;
    return ix;
}

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
    mr_topology *topo = NULL;
    const mr_index *ix = write_target(g, req, uid, &topo, &err);
    char pk[256] = "";
    mr_produce_msg *msgs = NULL;
    char **ids = NULL;
    char **values = NULL;
    size_t n = json_array_size(docs);
    if (!ix)
        goto fail;
    if (ix->primary_key[0]) {
        if (pk_param && strcmp(pk_param, ix->primary_key) != 0) {
            mr_error_set(&err, "invalid_index_primary_key",
                         "The primary key inference failed: index `%s` already has the primary key `%s`, not `%.100s`.",
                         ix->uid, ix->primary_key, pk_param);
            goto fail;
        }
        snprintf(pk, sizeof pk, "%s", ix->primary_key);
    } else if (pk_param) {
        snprintf(pk, sizeof pk, "%s", pk_param);
    } else if (n > 0 && mr_primary_key_infer(docs, pk, sizeof pk, &err)) {
        goto fail;
    }
    if (n > 0 && mr_documents_validate(docs, pk, &err))
        goto fail;
    if (n > 0 && !ix->primary_key[0] && set_primary_key(g, ix, pk, &err))
        goto fail;
    char topic[256];
    topic_of(topic, sizeof topic, MR_TOPIC_INDEX_PREFIX, ix->storage);
    msgs = calloc(n ? n : 1, sizeof *msgs);
    ids = calloc(n ? n : 1, sizeof *ids);
    values = calloc(n ? n : 1, sizeof *values);
    for (size_t i = 0; i < n; i++) {
        json_t *doc = json_array_get(docs, i);
        char id[MR_DOCID_MAX + 1];
        int idlen = mr_docid_from_json(json_object_get(doc, pk), id, sizeof id, &err);
        ids[i] = strdup(id);
        values[i] = json_dumps(doc, JSON_COMPACT);
        msgs[i] = (mr_produce_msg){.topic = topic,
                                   .partition = (int32_t)mr_shard_of(id, (size_t)idlen, ix->shard_count),
                                   .key = ids[i],
                                   .key_len = (size_t)idlen,
                                   .value = values[i],
                                   .value_len = strlen(values[i]),
                                   .headers = mr_headers_op(mr_op_name(op))};
    }
    json_t *task = mr_task_new(ix->uid, "documentAdditionOrUpdate",
                               json_pack("{s:I, s:n}", "receivedDocuments", (json_int_t)n, "indexedDocuments"));
    gw_produce_task(g, msgs, n, task, res);
    json_decref(task);
    goto done;
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
    if (topo)
        mr_topology_release(mr_meta_topology(g->meta), topo);
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

void gw_route_document_delete(gw *g, const gw_request *req, gw_response *res)
{
    mr_error err;
    const mr_index *ix = req->ix;
    const char *id = req->captures[1];
    if (!mr_docid_valid(id, strlen(id))) {
        mr_error_set(&err, "invalid_document_id", "Document identifier `%.200s` is invalid.", id);
        gw_reply_error(res, &err);
    } else {
        char topic[256];
        topic_of(topic, sizeof topic, MR_TOPIC_INDEX_PREFIX, ix->storage);
        mr_produce_msg msg = {.topic = topic,
                              .partition = (int32_t)mr_shard_of(id, strlen(id), ix->shard_count),
                              .key = id,
                              .key_len = strlen(id),
                              .headers = mr_headers_op(mr_op_name(MR_OP_DELETE))};
        json_t *task = mr_task_new(ix->uid, "documentDeletion",
                                   json_pack("{s:i, s:n, s:n}", "providedIds", 1, "deletedDocuments", "originalFilter"));
        gw_produce_task(g, &msg, 1, task, res);
        json_decref(task);
    }
}

static json_t *deletion_details(json_int_t provided, const json_t *filter)
{
    char *text = filter ? json_dumps(filter, JSON_ENCODE_ANY | JSON_COMPACT) : NULL;
    json_t *d = json_pack("{s:I, s:n, s:s?}", "providedIds", provided, "deletedDocuments", "originalFilter", text);
    free(text);
    return d;
}

void gw_route_documents_delete_batch(gw *g, const gw_request *req, gw_response *res)
{
    mr_error err;
    json_error_t jerr;
    json_t *ids = req->body_len ? json_loadb(req->body, req->body_len, 0, &jerr) : NULL;
    const mr_index *ix = req->ix;
    size_t n = json_array_size(ids);
    char (*keys)[MR_DOCID_MAX + 1] = calloc(n ? n : 1, sizeof *keys);
    mr_produce_msg *msgs = calloc(n ? n : 1, sizeof *msgs);
    if (!json_is_array(ids)) {
        mr_error_set(&err, req->body_len ? "malformed_payload" : "missing_payload",
                     "The json payload provided is malformed: expected an array of document ids.");
        goto fail;
    }
    char topic[256];
    topic_of(topic, sizeof topic, MR_TOPIC_INDEX_PREFIX, ix->storage);
    for (size_t i = 0; i < n; i++) {
        int len = mr_docid_from_json(json_array_get(ids, i), keys[i], sizeof keys[i], &err);
        if (len < 0)
            goto fail;
        msgs[i] = (mr_produce_msg){.topic = topic, .partition = (int32_t)mr_shard_of(keys[i], (size_t)len, ix->shard_count),
                                   .key = keys[i], .key_len = (size_t)len,
                                   .headers = mr_headers_op(mr_op_name(MR_OP_DELETE))};
    }
    json_t *task = mr_task_new(ix->uid, "documentDeletion", deletion_details((json_int_t)n, NULL));
    gw_produce_task(g, msgs, n, task, res);
    json_decref(task);
    goto done;
fail:
    for (size_t i = 0; i < n; i++)
        if (msgs[i].headers)
            rd_kafka_headers_destroy(msgs[i].headers);
    gw_reply_error(res, &err);
done:
    free(keys);
    free(msgs);
    json_decref(ids);
}

/* A filter is checked synchronously, as one node checks it, by a zero-hit search on a replica. */
static int check_filter(gw *g, const mr_index *ix, const json_t *filter, mr_error *err)
{
    json_t *probe = json_pack("{s:O, s:i}", "filter", filter, "limit", 0);
    char *text = json_dumps(probe, JSON_COMPACT);
    gw_shard_call call = {.ix = ix, .shard = 0, .method = "POST", .body = text};
    gw_shard_path(call.path, sizeof call.path, ix, 0, "/search");
    int rc = gw_scatter(g, &call, 1, err, NULL);
    if (rc && strcmp(err->code, "invalid_search_filter") == 0) {
        char message[sizeof err->message];
        snprintf(message, sizeof message, "%s", err->message);
        mr_error_invalid(err, "invalid_document_filter", "%s", message);
    }
    gw_scatter_clear(&call, 1);
    free(text);
    json_decref(probe);
    return rc;
}

void gw_route_documents_delete_filter(gw *g, const gw_request *req, gw_response *res)
{
    mr_error err;
    json_t *body = gw_body_object(req, &err);
    const mr_index *ix = body ? req->ix : NULL;
    json_t *filter = json_object_get(body, "filter");
    if (ix && (!filter || json_is_null(filter)))
        mr_error_set(&err, "missing_document_filter", "Missing field `filter`");
    if (ix && filter && !json_is_null(filter) && check_filter(g, ix, filter, &err) == 0) {
        json_t *task = mr_task_new(ix->uid, "documentDeletion", deletion_details(0, filter));
        json_t *payload = json_pack("{s:O}", "filter", filter);
        gw_produce_control(g, ix, MR_OP_DELETE_BY_FILTER, payload, task, res);
        json_decref(payload);
        json_decref(task);
    } else {
        gw_reply_error(res, &err);
    }
    json_decref(body);
}

void gw_route_documents_clear(gw *g, const gw_request *req, gw_response *res)
{
    json_t *task = mr_task_new(req->ix->uid, "documentDeletion", deletion_details(0, NULL));
    json_t *payload = json_object();
    gw_produce_control(g, req->ix, MR_OP_CLEAR, payload, task, res);
    json_decref(payload);
    json_decref(task);
}
