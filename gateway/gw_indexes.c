/* gw_indexes.c: index routes: create (with Miroir's shards and replicationFactor), list, get,
 * update, delete, and swap. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gw.h"
#include "kafka.h"
#include "task.h"
#include "util.h"

static json_t *index_view(const mr_index *ix)
{
    return json_pack("{s:s, s:s, s:s, s:s?}", "uid", ix->uid, "createdAt", ix->created_at, "updatedAt", ix->updated_at,
                     "primaryKey", ix->primary_key[0] ? ix->primary_key : NULL);
}

static int read_long(json_t *body, const char *name, long def, long *out, const char *code, mr_error *err)
{
    json_t *v = json_object_get(body, name);
    if (!v || json_is_null(v)) {
        *out = def;
        return 0;
    }
    if (!json_is_integer(v)) {
        mr_error_set(err, code, "Invalid value type at `.%s`: expected an integer.", name);
        return -1;
    }
    *out = (long)json_integer_value(v);
    return 0;
}

void gw_route_index_create(gw *g, const gw_request *req, gw_response *res)
{
    mr_error err;
    json_t *body = gw_body_object(req, &err);
    if (!body) {
        gw_reply_error(res, &err);
        return;
    }
    const char *allowed[] = {"uid", "primaryKey", "shards", "replicationFactor"};
    const char *key;
    json_t *value;
    json_object_foreach(body, key, value) {
        int known = 0;
        for (size_t i = 0; i < sizeof allowed / sizeof allowed[0]; i++)
            known |= strcmp(key, allowed[i]) == 0;
        if (!known) {
            mr_error_set(&err, "bad_request", "Unknown field `%.100s`: expected one of `uid`, `primaryKey`, `shards`, "
                                              "`replicationFactor`", key);
            goto fail;
        }
    }
    json_t *uid = json_object_get(body, "uid");
    json_t *pk = json_object_get(body, "primaryKey");
    if (!uid) {
        mr_error_set(&err, "missing_index_uid", "Missing field `uid`");
        goto fail;
    }
    if (json_is_string(uid) && gw_may_use(req, json_string_value(uid), &err))
        goto fail;
    if (!json_is_string(uid)) {
        mr_error_set(&err, "invalid_index_uid", "Invalid value type at `.uid`: expected a string");
        goto fail;
    }
    if (pk && !json_is_null(pk) && !json_is_string(pk)) {
        mr_error_set(&err, "invalid_index_primary_key", "Invalid value type at `.primaryKey`: expected a string");
        goto fail;
    }
    long shards, rf;
    long default_rf;
    gw_default_rf(g, &default_rf);
    if (read_long(body, "shards", 4, &shards, "miroir_invalid_shards", &err) ||
        read_long(body, "replicationFactor", default_rf, &rf, "miroir_invalid_replication_factor", &err))
        goto fail;
    json_t *task = NULL;
    if (gw_create_index(g, json_string_value(uid), json_string_value(pk), shards, rf, &task, &err))
        goto fail;
    mr_topology *topo = mr_topology_acquire(mr_meta_topology(g->meta));
    const mr_index *ix = mr_topology_find(topo, json_string_value(uid));
    if (json_object_get(task, "error") || !ix) {
        gw_produce_task(g, NULL, 0, task, res); /* a task that is already failed */
    } else {
        json_t *payload = json_pack("{s:s?}", "primaryKey", ix->primary_key[0] ? ix->primary_key : NULL);
        gw_produce_control(g, ix, MR_OP_CREATE_INDEX, payload, task, res);
        json_decref(payload);
    }
    mr_topology_release(mr_meta_topology(g->meta), topo);
    json_decref(task);
    json_decref(body);
    return;
fail:
    json_decref(body);
    gw_reply_error(res, &err);
}

static int parse_count(const char *s, long def, long *out)
{
    if (!s) {
        *out = def;
        return 0;
    }
    char *end;
    long v = strtol(s, &end, 10);
    if (*s == '\0' || *end || v < 0)
        return -1;
    *out = v;
    return 0;
}

int gw_offset_limit(const gw_request *req, const char *resource, long *offset, long *limit, mr_error *err)
{
    static const char *const names[] = {"offset", "limit"};
    long *out[] = {offset, limit};
    const long defaults[] = {0, 20};
    for (int i = 0; i < 2; i++) {
        const char *given = gw_arg(req, names[i]);
        if (parse_count(given, defaults[i], out[i])) {
            mr_error_invalid(err, "", "Invalid value in parameter `%s`: could not parse `%.50s` as a positive integer",
                             names[i], given);
            snprintf(err->code, sizeof err->code, "invalid_%s_%s", resource, names[i]);
            return -1;
        }
    }
    return 0;
}

void gw_route_index_list(gw *g, const gw_request *req, gw_response *res)
{
    long offset, limit;
    mr_error err;
    if (gw_offset_limit(req, "index", &offset, &limit, &err)) {
        gw_reply_error(res, &err);
        return;
    }
    mr_topology *topo = mr_topology_acquire(mr_meta_topology(g->meta));
    json_t *results = json_array();
    size_t live = 0;
    for (size_t i = 0; i < topo->count; i++) {
        if (topo->indexes[i].deleted || !gw_may_see(req, topo->indexes[i].uid))
            continue;
        if (live >= (size_t)offset && live < (size_t)(offset + limit))
            json_array_append_new(results, index_view(&topo->indexes[i]));
        live++;
    }
    gw_reply(res, 200, json_pack("{s:o, s:i, s:i, s:i}", "results", results, "offset", (int)offset, "limit", (int)limit,
                                 "total", (int)live));
    mr_topology_release(mr_meta_topology(g->meta), topo);
}

void gw_route_index_get(gw *g, const gw_request *req, gw_response *res)
{
    (void)g;
    gw_reply(res, 200, index_view(req->ix));
}

/* Deleting: a delete-index record on every partition, ordered after every write; then the
 * definition is marked deleted (hidden from the API) and stays until the name is used again. */
void gw_route_index_delete(gw *g, const gw_request *req, gw_response *res)
{
    mr_error err;
    const mr_index *ix = req->ix;
    json_t *task = mr_task_new(ix->uid, "indexDeletion", json_pack("{s:n}", "deletedDocuments"));
    json_t *payload = json_object();
    if (gw_produce_control(g, ix, MR_OP_DELETE_INDEX, payload, task, res) == 0) {
        mr_index copy;
        mr_index_copy(&copy, ix);
        copy.deleted = 1;
        copy.deletion_task = json_integer_value(json_object_get(res->body, "taskUid"));
        if (gw_put_index(g, &copy, &err))
            gw_reply_error(res, &err);
        mr_index_clear(&copy);
    }
    json_decref(payload);
    json_decref(task);
}

/* PATCH /indexes/{uid}: the primary key, on every replica (a node refuses it once the index has
 * documents, and the task then fails with the node's error). */
void gw_route_index_update(gw *g, const gw_request *req, gw_response *res)
{
    mr_error err;
    json_t *body = gw_body_object(req, &err);
    const mr_index *ix = body ? req->ix : NULL;
    json_t *pk = json_object_get(body, "primaryKey");
    const char *key;
    json_t *value;
    json_object_foreach(body, key, value) {
        if (ix && strcmp(key, "primaryKey") != 0) {
            mr_error_set(&err, "bad_request", "Unknown field `%.100s`: expected one of `primaryKey`", key);
            ix = NULL;
        }
    }
    if (ix && pk && !json_is_null(pk) && !json_is_string(pk)) {
        mr_error_set(&err, "invalid_index_primary_key", "Invalid value type at `.primaryKey`: expected a string");
        ix = NULL;
    }
    if (!ix) {
        gw_reply_error(res, &err);
    } else {
        json_t *task = mr_task_new(ix->uid, "indexUpdate", json_pack("{s:O?}", "primaryKey", pk));
        int rc = 0, empty = 0;
        if (json_is_string(pk) && strcmp(ix->primary_key, json_string_value(pk)) != 0) {
            /* the key may change while the index has no documents, as on one node */
            json_t *stats = gw_index_stats(g, ix, &err);
            rc = stats ? 0 : -1;
            empty = stats && json_integer_value(json_object_get(stats, "numberOfDocuments")) == 0;
            json_decref(stats);
        }
        if (rc) {
            /* err is set */
        } else if (json_is_string(pk) && strcmp(ix->primary_key, json_string_value(pk)) != 0 && empty) {
            mr_index copy;
            mr_index_copy(&copy, ix);
            snprintf(copy.primary_key, sizeof copy.primary_key, "%s", json_string_value(pk));
            rc = gw_put_index(g, &copy, &err);
            mr_index_clear(&copy);
        } else if (json_is_string(pk) && strcmp(ix->primary_key, json_string_value(pk)) != 0) {
            mr_error e;
            mr_error_set(&e, "index_primary_key_already_exists", "Index `%s`: Index already has a primary key: `%s`.",
                         ix->uid, ix->primary_key);
            json_object_set_new(task, "error", mr_error_json(&e));
        }
        if (rc)
            gw_reply_error(res, &err);
        else if (json_object_get(task, "error"))
            gw_produce_task(g, NULL, 0, task, res);
        else
            gw_produce_control(g, ix, MR_OP_UPDATE_INDEX, body, task, res);
        json_decref(task);
    }
    json_decref(body);
}

/* Swapping is a metadata change only: the two definitions exchange their storage (topics,
 * shard indexes, placements) in one record, which readers see apply at once. */
void gw_route_swap_indexes(gw *g, const gw_request *req, gw_response *res)
{
    mr_error err;
    json_error_t jerr;
    json_t *swaps = req->body_len ? json_loadb(req->body, req->body_len, 0, &jerr) : NULL;
    if (!json_is_array(swaps)) {
        mr_error_set(&err, req->body_len ? "malformed_payload" : "missing_payload",
                     "The json payload provided is malformed: expected an array of {\"indexes\": [a, b]}.");
        gw_reply_error(res, &err);
        json_decref(swaps);
        return;
    }
    json_t *seen = json_object(), *defs = json_array();
    json_t *task = mr_task_new(NULL, "indexSwap", json_pack("{s:O}", "swaps", swaps));
    mr_topology *topo = mr_topology_acquire(mr_meta_topology(g->meta));
    size_t i;
    json_t *swap;
    int bad = 0;
    json_array_foreach(swaps, i, swap) {
        json_t *pair = json_object_get(swap, "indexes");
        const char *a = json_string_value(json_array_get(pair, 0)), *b = json_string_value(json_array_get(pair, 1));
        if (!json_is_array(pair) || json_array_size(pair) != 2 || !a || !b) {
            mr_error_invalid(&err, "invalid_swap_indexes", "Invalid value at `[%zu].indexes`: expected an array of two "
                                                           "index uids.", i);
            bad = 1;
            break;
        }
        if (gw_may_use(req, a, &err) || gw_may_use(req, b, &err)) {
            bad = 1;
            break;
        }
        if (json_object_get(seen, a) || json_object_get(seen, b)) {
            mr_error_invalid(&err, "invalid_swap_duplicate_index_found",
                             "Indexes must be declared only once during a swap. `%s` was specified several times.",
                             json_object_get(seen, a) ? a : b);
            bad = 1;
            break;
        }
        json_object_set_new(seen, a, json_true());
        json_object_set_new(seen, b, json_true());
        const mr_index *ia = gw_find_index(topo, a, &err), *ib = ia ? gw_find_index(topo, b, &err) : NULL;
        if (!ia || !ib) { /* Meilisearch enqueues the swap and fails it */
            json_object_set_new(task, "error", mr_error_json(&err));
            break;
        }
        mr_index na, nb;
        mr_index_copy(&na, ib);
        mr_index_copy(&nb, ia);
        snprintf(na.uid, sizeof na.uid, "%s", ia->uid);
        snprintf(nb.uid, sizeof nb.uid, "%s", ib->uid);
        mr_now_rfc3339(na.updated_at, sizeof na.updated_at);
        snprintf(nb.updated_at, sizeof nb.updated_at, "%s", na.updated_at);
        json_array_append_new(defs, mr_index_to_json(&na));
        json_array_append_new(defs, mr_index_to_json(&nb));
        mr_index_clear(&na);
        mr_index_clear(&nb);
    }
    mr_topology_release(mr_meta_topology(g->meta), topo);
    if (bad) {
        gw_reply_error(res, &err);
    } else {
        char key[64];
        snprintf(key, sizeof key, "swap/%" PRId64, mr_now_ms());
        json_t *record = json_pack("{s:O}", "indexes", defs);
        if (!json_object_get(task, "error") && json_array_size(defs) &&
            mr_meta_put(g->meta, g->producer, key, record, 1, &err))
            gw_reply_error(res, &err);
        else
            gw_produce_task(g, NULL, 0, task, res); /* nothing for the replicas to apply */
        json_decref(record);
    }
    json_decref(task);
    json_decref(defs);
    json_decref(seen);
    json_decref(swaps);
}
