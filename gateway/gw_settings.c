/* gw_settings.c: index settings: written through control records so they stay ordered with
 * document writes on every shard; read from one live replica. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gw.h"
#include "task.h"
#include "util.h"

/* Settings are checked synchronously, as a single node checks them, by sending them to a scratch
 * index on a live node: its answer is Meilisearch's own validation, errors included. */
#define SCRATCH_INDEX "miroir-settings-check"

static int validate_on_node(gw *g, const char *body, size_t len, mr_error *err)
{
    for (size_t i = 0; i < g->cfg->node_count; i++) {
        const mr_node *n = &g->cfg->nodes[i];
        if (!gw_node_is_up(g, n->id))
            continue;
        mr_http_req r = {0};
        char url[512];
        snprintf(url, sizeof url, "%s/indexes/%s/settings", n->url, SCRATCH_INDEX);
        mr_http_one(g->http, &r, "PATCH", url, body, len);
        json_t *answer = mr_http_json(&r);
        int rc = -1;
        if (r.status == 202)
            rc = 0;
        else if (r.status >= 400 && r.status < 500 && answer && mr_error_from_json(err, (int)r.status, answer) == 0)
            rc = 1;
        json_decref(answer);
        mr_http_req_reset(&r);
        if (rc >= 0)
            return rc ? -1 : 0;
        gw_node_report(g, n->id, 0);
    }
    mr_error_set(err, "miroir_shard_unavailable", "No node is reachable to check the settings.");
    return -1;
}

/* Reads settings.<group>.<name>: 1 and *out set for an integer, 1 and *out = def for a reset
 * (the group or the value is null), 0 when the settings don't touch it. */
static int setting_long(const json_t *settings, const char *group, const char *name, long def, long *out)
{
    json_t *g = json_object_get(settings, group);
    json_t *v = json_object_get(g, name);
    if (json_is_integer(v)) {
        *out = (long)json_integer_value(v);
        return 1;
    }
    if ((g && json_is_null(g)) || (v && json_is_null(v))) {
        *out = def;
        return 1;
    }
    return 0;
}

/* Stores what the gateway itself needs from the settings (the merge limits) in the index
 * definition. */
static int remember_settings(gw *g, const mr_index *ix, const json_t *settings, mr_error *err)
{
    long mth = ix->max_total_hits, mvpf = ix->max_values_per_facet;
    int touched = setting_long(settings, "pagination", "maxTotalHits", g->cfg->default_max_total_hits, &mth);
    touched |= setting_long(settings, "faceting", "maxValuesPerFacet", 100, &mvpf);
    if (!touched)
        return 0;
    mr_index copy;
    mr_index_copy(&copy, ix);
    copy.max_total_hits = mth;
    copy.max_values_per_facet = mvpf;
    mr_now_rfc3339(copy.updated_at, sizeof copy.updated_at);
    json_t *def = mr_index_to_json(&copy);
    char key[300];
    snprintf(key, sizeof key, "index/%s", ix->uid);
    int rc = mr_meta_put(g->meta, g->producer, key, def, 1, err);
    json_decref(def);
    mr_index_clear(&copy);
    return rc;
}

static void settings_write(gw *g, const gw_request *req, gw_response *res, json_t *settings)
{
    mr_error err;
    char *text = json_dumps(settings, JSON_COMPACT);
    mr_topology *topo = mr_topology_acquire(mr_meta_topology(g->meta));
    const mr_index *ix = gw_find_index(topo, req->captures[0], &err);
    if (!ix || validate_on_node(g, text, strlen(text), &err) || remember_settings(g, ix, settings, &err)) {
        gw_reply_error(res, &err);
    } else {
        json_t *task = mr_task_new(ix->uid, "settingsUpdate", json_deep_copy(settings));
        gw_produce_control(g, ix, MR_OP_SETTINGS, settings, task, res);
        json_decref(task);
    }
    mr_topology_release(mr_meta_topology(g->meta), topo);
    free(text);
}

void gw_route_settings_update(gw *g, const gw_request *req, gw_response *res)
{
    mr_error err;
    json_t *settings = gw_body_object(req, &err);
    if (!settings) {
        gw_reply_error(res, &err);
        return;
    }
    settings_write(g, req, res, settings);
    json_decref(settings);
}

void gw_route_settings_reset(gw *g, const gw_request *req, gw_response *res)
{
    /* Resetting is setting every key to null, which Meilisearch reads as "back to the default". */
    static const char *const keys[] = {
        "displayedAttributes", "searchableAttributes", "filterableAttributes", "sortableAttributes", "rankingRules",
        "stopWords", "nonSeparatorTokens", "separatorTokens", "dictionary", "synonyms", "distinctAttribute",
        "proximityPrecision", "typoTolerance", "faceting", "pagination", "embedders", "searchCutoffMs",
        "localizedAttributes", "facetSearch", "prefixSearch"};
    json_t *settings = json_object();
    for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++)
        json_object_set_new(settings, keys[i], json_null());
    settings_write(g, req, res, settings);
    json_decref(settings);
}

void gw_route_settings_get(gw *g, const gw_request *req, gw_response *res)
{
    mr_error err;
    mr_topology *topo = mr_topology_acquire(mr_meta_topology(g->meta));
    const mr_index *ix = gw_find_index(topo, req->captures[0], &err);
    if (!ix) {
        gw_reply_error(res, &err);
        mr_topology_release(mr_meta_topology(g->meta), topo);
        return;
    }
    /* Every replica holds the same settings once applied; shard 0's first live replica answers. */
    const char *order[MR_MAX_REPLICAS];
    size_t n = gw_replica_order(g, ix, 0, 0, order);
    char shard_index[300];
    mr_shard_index_name(shard_index, sizeof shard_index, ix->uid, 0);
    mr_error_set(&err, "miroir_shard_unavailable", "No replica of index `%s` answered.", ix->uid);
    for (size_t i = 0; i < n; i++) {
        mr_http_req r = {0};
        char url[2048];
        snprintf(url, sizeof url, "%s/indexes/%s/settings", gw_node(g, order[i])->url, shard_index);
        mr_http_one(g->http, &r, "GET", url, NULL, 0);
        json_t *body = mr_http_json(&r);
        gw_node_report(g, order[i], r.status > 0 && r.status < 500);
        int ok = r.status == 200 && json_is_object(body);
        mr_http_req_reset(&r);
        if (ok) {
            gw_reply(res, 200, body);
            mr_topology_release(mr_meta_topology(g->meta), topo);
            return;
        }
        json_decref(body);
    }
    gw_reply_error(res, &err);
    mr_topology_release(mr_meta_topology(g->meta), topo);
}
