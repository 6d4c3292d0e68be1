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

/* Every setting of Meilisearch 1.21, in its JSON name; sub-routes use the kebab-case form. */
static const char *const setting_keys[] = {
    "displayedAttributes", "searchableAttributes", "filterableAttributes", "sortableAttributes", "rankingRules",
    "stopWords", "nonSeparatorTokens", "separatorTokens", "dictionary", "synonyms", "distinctAttribute",
    "proximityPrecision", "typoTolerance", "faceting", "pagination", "embedders", "searchCutoffMs",
    "localizedAttributes", "facetSearch", "prefixSearch"};

/* "filterable-attributes" -> "filterableAttributes" if it names a setting; NULL otherwise. */
static const char *setting_of_route(const char *kebab)
{
    char camel[64];
    size_t n = 0;
    for (const char *p = kebab; *p && n + 1 < sizeof camel; p++) {
        if (*p == '-' && p[1]) {
            p++;
            camel[n++] = (char)(*p >= 'a' && *p <= 'z' ? *p - 32 : *p);
        } else {
            camel[n++] = *p;
        }
    }
    camel[n] = '\0';
    for (size_t i = 0; i < sizeof setting_keys / sizeof setting_keys[0]; i++)
        if (strcmp(setting_keys[i], camel) == 0)
            return setting_keys[i];
    return NULL;
}

static int validate_on_node(gw *g, const char *body, size_t len, mr_error *err)
{
    mr_member members[MR_MAX_NODES];
    size_t count = gw_members(g, members);
    for (size_t i = 0; i < count; i++) {
        const mr_node *n = &members[i].node;
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
    json_t *distinct = json_object_get(settings, "distinctAttribute");
    touched |= distinct != NULL;
    if (!touched)
        return 0;
    mr_index copy;
    mr_index_copy(&copy, ix);
    if (distinct)
        snprintf(copy.distinct_attribute, sizeof copy.distinct_attribute, "%s",
                 json_is_string(distinct) ? json_string_value(distinct) : "");
    copy.max_total_hits = mth;
    copy.max_values_per_facet = mvpf;
    int rc = gw_put_index(g, &copy, err);
    mr_index_clear(&copy);
    return rc;
}

static void settings_write(gw *g, const gw_request *req, gw_response *res, json_t *settings)
{
    mr_error err;
    char *text = json_dumps(settings, JSON_COMPACT);
    const mr_index *ix = req->ix;
    if (validate_on_node(g, text, strlen(text), &err) || remember_settings(g, ix, settings, &err)) {
        gw_reply_error(res, &err);
    } else {
        json_t *task = mr_task_new(ix->uid, "settingsUpdate", json_deep_copy(settings));
        gw_produce_control(g, ix, MR_OP_SETTINGS, settings, task, res);
        json_decref(task);
    }
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
    json_t *settings = json_object();
    for (size_t i = 0; i < sizeof setting_keys / sizeof setting_keys[0]; i++)
        json_object_set_new(settings, setting_keys[i], json_null());
    settings_write(g, req, res, settings);
    json_decref(settings);
}

/* The settings as one replica holds them (every replica holds the same once applied): a new
 * reference, or NULL with err. */
static json_t *read_settings(gw *g, const mr_index *ix, mr_error *err)
{
    gw_shard_call call = {.ix = ix, .shard = 0, .method = "GET"};
    gw_shard_path(call.path, sizeof call.path, ix, 0, "/settings");
    json_t *out = gw_scatter(g, &call, 1, err, NULL) == 0 ? json_incref(call.answer) : NULL;
    gw_scatter_clear(&call, 1);
    return out;
}

void gw_route_settings_get(gw *g, const gw_request *req, gw_response *res)
{
    mr_error err;
    json_t *settings = read_settings(g, req->ix, &err);
    if (settings)
        gw_reply(res, 200, settings);
    else
        gw_reply_error(res, &err);
}

static const char *sub_route_setting(const gw_request *req, gw_response *res)
{
    const char *name = setting_of_route(req->captures[1]);
    if (!name) {
        mr_error err;
        mr_error_set(&err, "not_found", "Route `%s %.200s` does not exist.", req->method, req->path);
        gw_reply_error(res, &err);
    }
    return name;
}

void gw_route_setting_get(gw *g, const gw_request *req, gw_response *res)
{
    const char *name = sub_route_setting(req, res);
    if (!name)
        return;
    mr_error err;
    json_t *settings = read_settings(g, req->ix, &err);
    if (settings)
        gw_reply(res, 200, json_incref(json_object_get(settings, name)));
    else
        gw_reply_error(res, &err);
    json_decref(settings);
}

void gw_route_setting_update(gw *g, const gw_request *req, gw_response *res)
{
    const char *name = sub_route_setting(req, res);
    if (!name)
        return;
    mr_error err;
    json_error_t jerr;
    json_t *value = req->body_len ? json_loadb(req->body, req->body_len, JSON_DECODE_ANY, &jerr) : NULL;
    if (!value) {
        mr_error_set(&err, req->body_len ? "malformed_payload" : "missing_payload", "The json payload provided is %s.",
                     req->body_len ? "malformed" : "missing");
        gw_reply_error(res, &err);
        return;
    }
    json_t *settings = json_object();
    json_object_set_new(settings, name, value);
    settings_write(g, req, res, settings);
    json_decref(settings);
}

void gw_route_setting_reset(gw *g, const gw_request *req, gw_response *res)
{
    const char *name = sub_route_setting(req, res);
    if (!name)
        return;
    json_t *settings = json_object();
    json_object_set_new(settings, name, json_null());
    settings_write(g, req, res, settings);
    json_decref(settings);
}
