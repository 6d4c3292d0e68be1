/* gw_settings.c: index settings: written through control records so they stay ordered with
 * document writes on every shard; read from one live replica. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gw.h"
#include "seq.h"
#include "task.h"
#include "util.h"

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

/* What the gateway itself needs of the settings (the merge limits), kept in the definition. */
struct merge_settings {
    long max_total_hits, max_values_per_facet;
    const json_t *distinct; /* NULL: untouched */
};

static void set_merge_settings(mr_index *ix, const void *arg)
{
    const struct merge_settings *m = arg;
    if (m->distinct)
        snprintf(ix->distinct_attribute, sizeof ix->distinct_attribute, "%s",
                 json_is_string(m->distinct) ? json_string_value(m->distinct) : "");
    ix->max_total_hits = m->max_total_hits;
    ix->max_values_per_facet = m->max_values_per_facet;
}

static int remember_settings(gw *g, const mr_index *ix, const json_t *settings, mr_error *err)
{
    struct merge_settings m = {ix->max_total_hits, ix->max_values_per_facet, json_object_get(settings, "distinctAttribute")};
    int touched = setting_long(settings, "pagination", "maxTotalHits", g->cfg->default_max_total_hits, &m.max_total_hits);
    touched |= setting_long(settings, "faceting", "maxValuesPerFacet", 100, &m.max_values_per_facet);
    touched |= m.distinct != NULL;
    return touched ? gw_update_definition(g, ix, set_merge_settings, &m, err) : 0;
}

/* Settings are checked as one node checks them (gw_node_check), then written through control
 * records, in order with the writes before and after them; an update to a missing index creates
 * it, as on one node, when the key may create indexes. */
static void settings_write(gw *g, const gw_request *req, gw_response *res, json_t *settings)
{
    mr_error err;
    char *text = json_dumps(settings, JSON_COMPACT);
    gw_write w = {0};
    const mr_index *ix = NULL;
    if (gw_node_check(g, req->captures[0], "PATCH", "/settings", text, &err)) {
        gw_reply_error(res, &err);
    } else if (!(ix = gw_write_begin(g, req, req->captures[0], 1, &w, &err))) {
        gw_failed_task(g, req->captures[0], "settingsUpdate", json_deep_copy(settings), &err, res);
    } else if (remember_settings(g, ix, settings, &err)) {
        gw_reply_error(res, &err);
    } else {
        json_t *task = mr_task_new(ix->uid, "settingsUpdate", json_deep_copy(settings));
        gw_produce_control(g, ix, MR_OP_SETTINGS, settings, task, res);
        json_decref(task);
    }
    gw_write_end(g, &w);
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
    mr_seq_settings_for_client(out);
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
    if (!name)
        res->status = 404; /* no such route, answered as a node answers it: an empty 404 */
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
