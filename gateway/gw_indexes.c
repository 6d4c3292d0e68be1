/* gw_indexes.c: index routes: create (with Miroir's shards and replicationFactor), list, get,
 * update, delete, and swap. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "alloc.h"
#include "gw.h"
#include "kafka.h"
#include "record.h"
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
    gw_produce_task(g, NULL, 0, task, res); /* the janitor writes the create-index records */
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

void gw_route_index_delete(gw *g, const gw_request *req, gw_response *res)
{
    gw_delete_index(g, req->captures[0], res);
}

/* One element of a swap: two indexes exchange their storage, or (rename) the first one's storage
 * takes the second name. */
typedef struct swap_pair {
    const char *lhs, *rhs;
    int rename;
} swap_pair;

/* "`a`, `b`" from names, sorted as Meilisearch lists them. */
static void name_list(const char **names, size_t n, char *out, size_t len)
{
    qsort(names, n, sizeof *names, mr_compare_strings);
    size_t used = 0;
    out[0] = '\0';
    for (size_t i = 0; i < n && used < len; i++)
        used += (size_t)snprintf(out + used, len - used, "%s`%s`", i ? ", " : "", names[i]);
}

/* Why a swap's task fails, as Meilisearch checks it: first every index that must exist and does
 * not, then every new name that is taken (by_update: a rename through PATCH /indexes, which a
 * node refuses in other words). Returns 0 if none. */
static int swap_refused(const mr_topology *topo, const swap_pair *pairs, size_t n, int by_update, mr_error *why)
{
    const char **missing = mr_calloc(2 * n + 1, sizeof *missing), **taken = mr_calloc(n + 1, sizeof *taken);
    size_t nmissing = 0, ntaken = 0, last_taken = 0;
    for (size_t i = 0; i < n; i++) {
        if (!mr_topology_find(topo, pairs[i].lhs))
            missing[nmissing++] = pairs[i].lhs;
        int rhs_live = mr_topology_find(topo, pairs[i].rhs) != NULL;
        if (!rhs_live && !pairs[i].rename)
            missing[nmissing++] = pairs[i].rhs;
        if (rhs_live && pairs[i].rename) {
            taken[ntaken++] = pairs[i].rhs;
            last_taken = i;
        }
    }
    char names[2048];
    if (nmissing == 1) {
        mr_error_set(why, "index_not_found", "Index `%s` not found.", missing[0]);
    } else if (nmissing) {
        name_list(missing, nmissing, names, sizeof names);
        mr_error_set(why, "index_not_found", "Indexes %s not found.", names);
    } else if (ntaken == 1 && by_update) {
        mr_error_set(why, "index_already_exists", "Index `%s` already exists.", taken[0]);
    } else if (ntaken == 1) {
        const char *lhs = pairs[last_taken].lhs, *rhs = pairs[last_taken].rhs;
        mr_error_set(why, "index_already_exists", "Cannot rename `%s` to `%s` as the index already exists. Hint: You can "
                                                  "remove `%s` first and then do your remove.", lhs, rhs, rhs);
    } else if (ntaken) {
        name_list(taken, ntaken, names, sizeof names);
        mr_error_set(why, "index_already_exists", "The following indexes are being renamed but cannot because their new "
                                                  "name conflicts with an already existing index: %s. Renaming doesn't "
                                                  "overwrite the other index name.", names);
    }
    free(missing);
    free(taken);
    return nmissing || ntaken;
}

/* The definitions a swap writes in one record: each storage under its new name. */
static json_t *swapped_definitions(const mr_topology *topo, const swap_pair *pairs, size_t n)
{
    json_t *defs = json_array();
    char now[40];
    mr_now_rfc3339(now, sizeof now);
    for (size_t i = 0; i < n; i++) {
        const mr_index *sides[2] = {mr_topology_find(topo, pairs[i].lhs), mr_topology_find(topo, pairs[i].rhs)};
        const char *names[2] = {pairs[i].rhs, pairs[i].lhs};
        for (int k = 0; k < (pairs[i].rename ? 1 : 2); k++) {
            mr_index moved;
            mr_index_copy(&moved, sides[k]);
            snprintf(moved.uid, sizeof moved.uid, "%s", names[k]);
            snprintf(moved.updated_at, sizeof moved.updated_at, "%s", now);
            json_array_append_new(defs, mr_index_to_json(&moved));
            mr_index_clear(&moved);
        }
    }
    return defs;
}

/* Applies the swap task's pairs, or records in the task why it fails. Swapping is a metadata
 * change only: the definitions exchange their storage (topics, shard indexes, placements) in one
 * record, which readers see apply at once. Returns 0, or -1 with err if it could not be written. */
static int swap_storages(gw *g, const swap_pair *pairs, size_t n, int by_update, json_t *task, mr_error *err)
{
    /* no write may land in a storage while it changes hands, nor a definition change in between */
    pthread_rwlock_wrlock(&g->writes);
    pthread_mutex_lock(&g->defs);
    mr_topology *topo = mr_topology_acquire(mr_meta_topology(g->meta));
    mr_error why;
    int rc = 0;
    if (swap_refused(topo, pairs, n, by_update, &why)) {
        json_object_set_new(task, "error", mr_error_json(&why));
    } else {
        json_t *defs = swapped_definitions(topo, pairs, n);
        rc = gw_swap_definitions(g, defs, err);
        json_decref(defs);
    }
    mr_topology_release(mr_meta_topology(g->meta), topo);
    pthread_mutex_unlock(&g->defs);
    pthread_rwlock_unlock(&g->writes);
    return rc;
}

/* Reads element i of a swap request into pair and its task details; 0, or -1 with err. */
static int read_swap(const gw_request *req, json_t *swap, size_t i, swap_pair *pair, json_t *details, mr_error *err)
{
    if (!json_is_object(swap)) {
        mr_error_invalid(err, "bad_request", "Invalid value type at `[%zu]`: expected an object", i);
        return -1;
    }
    const char *key;
    json_t *value;
    json_object_foreach(swap, key, value) {
        if (strcmp(key, "indexes") != 0 && strcmp(key, "rename") != 0) {
            mr_error_invalid(err, "bad_request", "Unknown field `%.100s` inside `[%zu]`: expected one of `indexes`, "
                                                 "`rename`", key, i);
            return -1;
        }
    }
    json_t *pair_json = json_object_get(swap, "indexes"), *rename = json_object_get(swap, "rename");
    if (!pair_json) {
        mr_error_invalid(err, "missing_swap_indexes", "Missing field `indexes` inside `[%zu]`", i);
        return -1;
    }
    if (rename && !json_is_boolean(rename)) {
        mr_error_invalid(err, "invalid_swap_rename", "Invalid value type at `[%zu].rename`: expected a boolean", i);
        return -1;
    }
    size_t k;
    json_t *uid;
    json_array_foreach(pair_json, k, uid) {
        if (!json_is_string(uid) || !mr_index_uid_valid(json_string_value(uid))) {
            mr_error_invalid(err, "invalid_swap_indexes", "Invalid value at `[%zu].indexes[%zu]`: expected a valid "
                                                          "index uid", i, k);
            return -1;
        }
    }
    if (!json_is_array(pair_json) || json_array_size(pair_json) != 2) {
        char list[1024];
        size_t used = 0;
        list[0] = '\0';
        json_array_foreach(pair_json, k, uid)
            if (used < sizeof list)
                used += (size_t)snprintf(list + used, sizeof list - used, "%s\"%s\"", k ? ", " : "",
                                         json_string_value(uid));
        mr_error_invalid(err, "invalid_swap_indexes", "Two indexes must be given for each swap. The list `[%s]` "
                                                      "contains %zu indexes.", list, json_array_size(pair_json));
        return -1;
    }
    *pair = (swap_pair){json_string_value(json_array_get(pair_json, 0)),
                        json_string_value(json_array_get(pair_json, 1)), json_is_true(rename)};
    if (gw_may_use(req, pair->lhs, err) || gw_may_use(req, pair->rhs, err))
        return -1;
    json_array_append_new(details, json_pack("{s:O, s:b}", "indexes", pair_json, "rename", pair->rename));
    return 0;
}

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
    size_t n = json_array_size(swaps), i;
    swap_pair *pairs = mr_calloc(n + 1, sizeof *pairs);
    json_t *seen = json_object(), *details = json_array(), *swap;
    int bad = 0;
    json_array_foreach(swaps, i, swap) {
        if ((bad = read_swap(req, swap, i, &pairs[i], details, &err)))
            break;
        const char *twice = NULL;
        if (json_object_get(seen, pairs[i].lhs))
            twice = pairs[i].lhs;
        else if (json_object_get(seen, pairs[i].rhs) || strcmp(pairs[i].lhs, pairs[i].rhs) == 0)
            twice = pairs[i].rhs;
        if ((bad = twice != NULL)) {
            mr_error_invalid(&err, "invalid_swap_duplicate_index_found",
                             "Indexes must be declared only once during a swap. `%s` was specified several times.", twice);
            break;
        }
        json_object_set_new(seen, pairs[i].lhs, json_true());
        json_object_set_new(seen, pairs[i].rhs, json_true());
    }
    json_t *task = mr_task_new(NULL, "indexSwap", json_pack("{s:o}", "swaps", details));
    if (bad || swap_storages(g, pairs, n, 0, task, &err))
        gw_reply_error(res, &err);
    else
        gw_produce_task(g, NULL, 0, task, res); /* nothing for the replicas to apply */
    json_decref(task);
    json_decref(seen);
    json_decref(swaps);
    free(pairs);
}

/* PATCH /indexes/{uid}: a new uid (a rename: metadata only, as a swap), then the primary key, on
 * every replica (a node refuses it once the index has documents, and the task then fails with the
 * node's error). As on one node, a rename stands even if the key change then fails. */
void gw_route_index_update(gw *g, const gw_request *req, gw_response *res)
{
    mr_error err;
    json_t *body = gw_body_object(req, &err);
    int ok = body != NULL;
    json_t *pk = json_object_get(body, "primaryKey"), *new_uid = json_object_get(body, "uid");
    const char *key;
    json_t *value;
    json_object_foreach(body, key, value) {
        if (ok && strcmp(key, "primaryKey") != 0 && strcmp(key, "uid") != 0) {
            mr_error_set(&err, "bad_request", "Unknown field `%.100s`: expected one of `primaryKey`, `uid`", key);
            ok = 0;
        }
    }
    if (ok && pk && !json_is_null(pk) && !json_is_string(pk)) {
        mr_error_set(&err, "invalid_index_primary_key", "Invalid value type at `.primaryKey`: expected a string");
        ok = 0;
    }
    if (ok && new_uid && !json_is_null(new_uid) &&
        (!json_is_string(new_uid) || gw_check_uid(json_string_value(new_uid), &err) ||
         gw_may_use(req, json_string_value(new_uid), &err))) {
        if (!json_is_string(new_uid))
            mr_error_set(&err, "invalid_index_uid", "Invalid value type at `.uid`: expected a string");
        ok = 0;
    }
    if (!ok) {
        gw_reply_error(res, &err);
        json_decref(body);
        return;
    }
    const char *uid = req->captures[0], *renamed = json_string_value(new_uid);
    json_t *details = json_pack("{s:O?}", "primaryKey", pk);
    if (renamed) {
        json_object_set_new(details, "oldIndexUid", json_string(uid));
        json_object_set_new(details, "newIndexUid", json_string(renamed));
    }
    json_t *task = mr_task_new(uid, "indexUpdate", details);
    if (renamed && strcmp(renamed, uid) != 0) {
        swap_pair rename = {uid, renamed, 1};
        if (swap_storages(g, &rename, 1, 1, task, &err)) {
            gw_reply_error(res, &err);
            goto done;
        }
        if (json_object_get(task, "error")) {
            gw_produce_task(g, NULL, 0, task, res);
            goto done;
        }
        uid = renamed;
    }
    gw_write w = {0};
    const mr_index *ix = gw_write_begin(g, req, uid, 0, &w, &err);
    int changes = ix && json_is_string(pk) && strcmp(ix->primary_key, json_string_value(pk)) != 0, rc = 0;
    if (!ix) {
        json_object_set_new(task, "error", mr_error_json(&err));
    } else if (changes) {
        /* the key may change while the index has no documents, as on one node */
        json_t *stats = gw_index_stats(g, ix, &err);
        rc = stats ? 0 : -1;
        int empty = stats && json_integer_value(json_object_get(stats, "numberOfDocuments")) == 0;
        json_decref(stats);
        if (rc == 0 && empty) {
            rc = gw_update_definition(g, ix, gw_set_primary_key, json_string_value(pk), &err);
        } else if (rc == 0) {
            mr_error e;
            mr_error_set(&e, "index_primary_key_already_exists", "Index `%s`: Index already has a primary key: `%s`.",
                         ix->uid, ix->primary_key);
            json_object_set_new(task, "error", mr_error_json(&e));
        }
    }
    if (rc) {
        gw_reply_error(res, &err);
    } else if (json_object_get(task, "error") || !json_is_string(pk)) {
        gw_produce_task(g, NULL, 0, task, res);
    } else {
        json_t *control = json_pack("{s:O}", "primaryKey", pk); /* never the uid: shard indexes keep theirs */
        gw_produce_control(g, ix, MR_OP_UPDATE_INDEX, control, task, res);
        json_decref(control);
    }
    gw_write_end(g, &w);
done:
    json_decref(task);
    json_decref(body);
}
