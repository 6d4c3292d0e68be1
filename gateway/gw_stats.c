/* gw_stats.c: statistics summed over shards, one replica each, so every document counts once. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gw.h"
#include "seq.h"

static void add_int(json_t *acc, const char *name, const json_t *from)
{
    json_t *v = json_object_get(from, name);
    json_object_set_new(acc, name, json_integer(json_integer_value(json_object_get(acc, name)) + json_integer_value(v)));
}

json_t *gw_index_stats(gw *g, const mr_index *ix, mr_error *err)
{
    gw_shard_call *calls = calloc(ix->shard_count, sizeof *calls);
    for (uint32_t s = 0; s < ix->shard_count; s++) {
        calls[s] = (gw_shard_call){.ix = ix, .shard = s, .method = "GET"};
        gw_shard_path(calls[s].path, sizeof calls[s].path, ix, s, "/stats");
    }
    json_t *out = NULL;
    if (gw_scatter(g, calls, ix->shard_count, err, NULL) == 0) {
        out = json_pack("{s:i, s:i, s:i, s:b, s:i, s:i, s:{}}", "numberOfDocuments", 0, "rawDocumentDbSize", 0,
                        "avgDocumentSize", 0, "isIndexing", 0, "numberOfEmbeddings", 0, "numberOfEmbeddedDocuments", 0,
                        "fieldDistribution");
        json_t *fields = json_object_get(out, "fieldDistribution");
        int indexing = 0;
        json_int_t value_bytes = 0;
        for (uint32_t s = 0; s < ix->shard_count; s++) {
            json_t *a = calls[s].answer;
            value_bytes += json_integer_value(json_object_get(a, "avgDocumentSize")) *
                           json_integer_value(json_object_get(a, "numberOfDocuments"));
            add_int(out, "numberOfDocuments", a);
            add_int(out, "rawDocumentDbSize", a);
            add_int(out, "numberOfEmbeddings", a);
            add_int(out, "numberOfEmbeddedDocuments", a);
            indexing |= json_is_true(json_object_get(a, "isIndexing"));
            const char *name;
            json_t *count;
            json_object_foreach(json_object_get(a, "fieldDistribution"), name, count) {
                json_t *prev = json_object_get(fields, name);
                json_object_set_new(fields, name, json_integer(json_integer_value(count) + json_integer_value(prev)));
            }
        }
        /* each shard's database is paged on its own: the sizes add up, and the average is over
         * every shard's documents, from each shard's own (see docs/api-compatibility.md) */
        json_int_t docs = json_integer_value(json_object_get(out, "numberOfDocuments"));
        json_object_set_new(out, "avgDocumentSize", json_integer(docs ? value_bytes / docs : 0));
        json_object_set_new(out, "isIndexing", json_boolean(indexing));
        json_object_del(fields, MR_SEQ_FIELD); /* the gateway's own field, not the client's */
    }
    gw_scatter_clear(calls, ix->shard_count);
    free(calls);
    return out;
}

void gw_route_index_stats(gw *g, const gw_request *req, gw_response *res)
{
    mr_error err;
    json_t *out = gw_index_stats(g, req->ix, &err);
    if (out)
        gw_reply(res, 200, out);
    else
        gw_reply_error(res, &err);
}

void gw_route_stats(gw *g, const gw_request *req, gw_response *res)
{
    mr_error err;
    json_t *indexes = json_object();
    mr_topology *topo = mr_topology_acquire(mr_meta_topology(g->meta));
    for (size_t i = 0; i < topo->count; i++) {
        if (topo->indexes[i].deleted || !gw_may_see(req, topo->indexes[i].uid))
            continue;
        json_t *st = gw_index_stats(g, &topo->indexes[i], &err);
        if (!st) {
            gw_reply_error(res, &err);
            json_decref(indexes);
            mr_topology_release(mr_meta_topology(g->meta), topo);
            return;
        }
        json_object_set_new(indexes, topo->indexes[i].uid, st);
    }
    mr_topology_release(mr_meta_topology(g->meta), topo);
    /* Sizes are physical: the sum over nodes, replicas included. */
    mr_member members[MR_MAX_NODES];
    size_t count = gw_members(g, members);
    mr_http_req reqs[MR_MAX_NODES];
    memset(reqs, 0, sizeof reqs);
    for (size_t i = 0; i < count; i++) {
        reqs[i].method = "GET";
        snprintf(reqs[i].url, sizeof reqs[i].url, "%s/stats", members[i].node.url);
    }
    mr_http_run(g->http, reqs, count);
    json_int_t size = 0, used = 0;
    char last[64] = "";
    for (size_t i = 0; i < count; i++) {
        json_t *a = mr_http_json(&reqs[i]);
        size += json_integer_value(json_object_get(a, "databaseSize"));
        used += json_integer_value(json_object_get(a, "usedDatabaseSize"));
        const char *lu = json_string_value(json_object_get(a, "lastUpdate"));
        if (lu && strcmp(lu, last) > 0)
            snprintf(last, sizeof last, "%s", lu);
        json_decref(a);
        mr_http_req_reset(&reqs[i]);
    }
    gw_reply(res, 200, json_pack("{s:I, s:I, s:s?, s:o}", "databaseSize", size, "usedDatabaseSize", used, "lastUpdate",
                                 last[0] ? last : NULL, "indexes", indexes));
}
