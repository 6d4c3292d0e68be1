/* gw_indexes.c: index routes: create (with Miroir's shards and replicationFactor), list, get. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gw.h"
#include "kafka.h"
#include "task.h"

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
    if (!json_is_string(uid)) {
        mr_error_set(&err, "invalid_index_uid", "Invalid value type at `.uid`: expected a string");
        goto fail;
    }
    if (pk && !json_is_null(pk) && !json_is_string(pk)) {
        mr_error_set(&err, "invalid_index_primary_key", "Invalid value type at `.primaryKey`: expected a string");
        goto fail;
    }
    long shards, rf;
    long default_rf = g->cfg->node_count >= 2 ? 2 : 1;
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

void gw_route_index_list(gw *g, const gw_request *req, gw_response *res)
{
    long offset, limit;
    mr_error err;
    if (parse_count(gw_arg(req, "offset"), 0, &offset)) {
        mr_error_set(&err, "invalid_index_offset", "Invalid value in parameter `offset`: could not parse `%.50s` as a positive integer", gw_arg(req, "offset"));
        gw_reply_error(res, &err);
        return;
    }
    if (parse_count(gw_arg(req, "limit"), 20, &limit)) {
        mr_error_set(&err, "invalid_index_limit", "Invalid value in parameter `limit`: could not parse `%.50s` as a positive integer", gw_arg(req, "limit"));
        gw_reply_error(res, &err);
        return;
    }
    mr_topology *topo = mr_topology_acquire(mr_meta_topology(g->meta));
    json_t *results = json_array();
    for (size_t i = (size_t)offset; i < topo->count && i < (size_t)(offset + limit); i++)
        json_array_append_new(results, index_view(&topo->indexes[i]));
    gw_reply(res, 200, json_pack("{s:o, s:i, s:i, s:i}", "results", results, "offset", (int)offset, "limit", (int)limit,
                                 "total", (int)topo->count));
    mr_topology_release(mr_meta_topology(g->meta), topo);
}

void gw_route_index_get(gw *g, const gw_request *req, gw_response *res)
{
    mr_error err;
    mr_topology *topo = mr_topology_acquire(mr_meta_topology(g->meta));
    const mr_index *ix = gw_find_index(topo, req->captures[0], &err);
    if (ix)
        gw_reply(res, 200, index_view(ix));
    else
        gw_reply_error(res, &err);
    mr_topology_release(mr_meta_topology(g->meta), topo);
}
