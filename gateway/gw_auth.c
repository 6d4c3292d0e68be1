/* gw_auth.c: who is calling and what they may do: the master key, API keys (kept in the cluster's
 * metadata, looked up by their derived value) and tenant tokens (their search rules become a
 * filter on every shard). With no master_key configured, everything is open, as on Meilisearch. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "auth.h"
#include "gw.h"
#include "util.h"

void gw_caller_clear(gw_caller *c)
{
    json_decref(c->key);
    json_decref(c->rules);
    memset(c, 0, sizeof *c);
}

/* The key record whose derived value is value (new reference), or NULL. The value → record map
 * is rebuilt whenever the metadata's key set changes (a new object each time). */
static json_t *key_by_value(gw *g, const char *value)
{
    json_t *current = mr_meta_keys(g->meta, NULL);
    pthread_mutex_lock(&g->keys_lock);
    if (current != g->keys_source) {
        json_decref(g->keys_source);
        json_decref(g->keys_by_value);
        g->keys_source = json_incref(current);
        g->keys_by_value = json_object();
        const char *uid;
        json_t *rec;
        json_object_foreach(current, uid, rec) {
            char v[MR_KEY_VALUE_LEN];
            mr_key_value(g->cfg->master_key, uid, v);
            json_object_set(g->keys_by_value, v, rec);
        }
    }
    json_t *found = json_incref(json_object_get(g->keys_by_value, value));
    pthread_mutex_unlock(&g->keys_lock);
    json_decref(current);
    return found;
}

static int invalid_key(mr_error *err)
{
    mr_error_set(err, "invalid_api_key", "The provided API key is invalid.");
    return -1;
}

/* Equal lengths compared without an early exit, so timing says nothing of the master key. */
static int same_secret(const char *a, const char *b)
{
    size_t n = strlen(a), m = strlen(b);
    unsigned char diff = n != m;
    for (size_t i = 0; i < n && i < m; i++)
        diff |= (unsigned char)(a[i] ^ b[i]);
    return diff == 0;
}

static int identify_tenant(gw *g, gw_caller *c, const char *token, mr_error *err)
{
    char uid[MR_KEY_UID_LEN];
    if (mr_tenant_token_key_uid(token, uid, err))
        return -1;
    json_t *keys = mr_meta_keys(g->meta, NULL);
    json_t *key = json_incref(json_object_get(keys, uid));
    json_decref(keys);
    if (!key) {
        mr_error_set(err, "invalid_api_key", "Could not decode tenant token, the API key `%s` does not exist.", uid);
        return -1;
    }
    char value[MR_KEY_VALUE_LEN];
    mr_key_value(g->cfg->master_key, uid, value);
    time_t now = time(NULL);
    c->rules = mr_tenant_token_verify(token, value, now, err);
    if (!c->rules || mr_key_expired(key, now) || !mr_key_allows_action(json_object_get(key, "actions"), "search")) {
        json_decref(key);
        return c->rules ? invalid_key(err) : -1;
    }
    c->key = key;
    return 0;
}

int gw_authorize(gw *g, gw_request *req, const char *action, mr_error *err)
{
    gw_caller *c = &req->caller;
    if (!g->cfg->master_key[0]) {
        c->open = 1;
        return 0;
    }
    if (!action) /* a public route */
        return 0;
    const char *header = MHD_lookup_connection_value(req->conn, MHD_HEADER_KIND, "Authorization");
    if (!header || strncmp(header, "Bearer ", 7) != 0) {
        mr_error_set(err, "missing_authorization_header",
                     "The Authorization header is missing. It must use the bearer authorization method.");
        return -1;
    }
    const char *token = header + 7;
    while (*token == ' ')
        token++;
    if (same_secret(token, g->cfg->master_key)) {
        c->master = 1;
        return 0;
    }
    if (mr_is_jwt(token)) {
        if (strcmp(action, "search") != 0) /* a tenant token only searches */
            return invalid_key(err);
        return identify_tenant(g, c, token, err);
    }
    c->key = key_by_value(g, token);
    if (!c->key || mr_key_expired(c->key, time(NULL)) ||
        !mr_key_allows_action(json_object_get(c->key, "actions"), action)) {
        json_decref(c->key);
        c->key = NULL;
        return invalid_key(err);
    }
    return 0;
}

int gw_may_act(const gw_request *req, const char *action)
{
    const gw_caller *c = &req->caller;
    return c->open || c->master || (c->key && !c->rules && mr_key_allows_action(json_object_get(c->key, "actions"), action));
}

int gw_may_see(const gw_request *req, const char *index)
{
    const gw_caller *c = &req->caller;
    if (c->open || c->master)
        return 1;
    if (!c->key || !mr_key_allows_index(json_object_get(c->key, "indexes"), index))
        return 0;
    json_t *filter = NULL;
    int ok = !c->rules || mr_search_rules_allow(c->rules, index, &filter);
    json_decref(filter);
    return ok;
}

int gw_may_use(const gw_request *req, const char *index, mr_error *err)
{
    if (gw_may_see(req, index))
        return 0;
    const gw_caller *c = &req->caller;
    json_t *names = NULL; /* a token's rules object is named by its index patterns */
    if (c->rules && json_is_object(c->rules)) {
        names = json_array();
        const char *k;
        json_t *v;
        json_object_foreach(c->rules, k, v)
            json_array_append_new(names, json_string(k));
    }
    char *allowed = json_dumps(names ? names : c->rules ? c->rules : json_object_get(c->key, "indexes"), JSON_COMPACT);
    json_decref(names);
    mr_error_set(err, "invalid_api_key", "The %s cannot access the index `%.200s`, authorized indexes are %.200s.",
                 c->rules ? "provided tenant token" : "API key", index, allowed ? allowed : "[]");
    free(allowed);
    return -1;
}

/* Whether the caller's key lists "*" in field ("actions" or "indexes"); the master key, and every
 * caller of an open gateway, have everything; a tenant token, never. */
static int key_lists_all(const gw_request *req, const char *field)
{
    const gw_caller *c = &req->caller;
    if (c->open || c->master)
        return 1;
    if (!c->key || c->rules)
        return 0;
    size_t i;
    json_t *v;
    json_array_foreach(json_object_get(c->key, field), i, v)
        if (strcmp(json_string_value(v), "*") == 0)
            return 1;
    return 0;
}

int gw_may_see_nodes(const gw_request *req)
{
    return key_lists_all(req, "actions");
}

int gw_may_use_all(const gw_request *req)
{
    return key_lists_all(req, "indexes");
}

int gw_apply_search_rules(const gw_request *req, const char *index, json_t *search, mr_error *err)
{
    if (!req->caller.rules)
        return 0;
    json_t *filter = NULL;
    if (!mr_search_rules_allow(req->caller.rules, index, &filter))
        return gw_may_use(req, index, err);
    int rc = filter ? mr_search_add_filter(search, filter) : 0;
    json_decref(filter);
    if (rc)
        mr_error_invalid(err, "invalid_search_filter",
                         "The tenant token's filter or the search's filter is not a string or an array of strings "
                         "and arrays of strings.");
    return rc;
}

/* The defaults Meilisearch creates with a new master key. Their uids come from the master key,
 * so gateways starting together write the same records. Called before the metadata follower
 * thread starts. */
int gw_seed_keys(gw *g, mr_error *err)
{
    int seeded = 0;
    json_decref(mr_meta_keys(g->meta, &seeded));
    if (!g->cfg->master_key[0] || seeded)
        return 0;
    static const struct {
        const char *name, *description, *actions[2];
    } defaults[] = {
        {"Default Search API Key", "Use it to search from the frontend", {"search", NULL}},
        {"Default Admin API Key",
         "Use it for anything that is not a search operation. Caution! Do not expose it on a public frontend",
         {"*", NULL}},
        {"Default Read-Only Admin API Key",
         "Use it to read information across the whole database. Caution! Do not expose this key on a public frontend",
         {"*.get", "keys.get"}},
    };
    for (size_t i = 0; i < sizeof defaults / sizeof defaults[0]; i++) {
        char uid[MR_KEY_UID_LEN], kv[MR_KEY_UID_LEN + 8];
        mr_key_derived_uid(g->cfg->master_key, defaults[i].name, uid);
        json_t *actions = json_array();
        for (size_t a = 0; a < 2 && defaults[i].actions[a]; a++)
            json_array_append_new(actions, json_string(defaults[i].actions[a]));
        json_t *body = json_pack("{s:s, s:s, s:s, s:o, s:[s], s:n}", "uid", uid, "name", defaults[i].name,
                                 "description", defaults[i].description, "actions", actions, "indexes", "*",
                                 "expiresAt");
        json_t *rec = mr_key_create(body, uid, mr_now_real(), err);
        json_decref(body);
        snprintf(kv, sizeof kv, "key/%s", uid);
        int rc = rec ? mr_meta_put(g->meta, g->producer, kv, rec, 0, err) : -1;
        json_decref(rec);
        if (rc)
            return -1;
    }
    json_t *marker = json_pack("{s:b}", "seeded", 1);
    int rc = mr_meta_put(g->meta, g->producer, "keys-seeded", marker, 0, err);
    json_decref(marker);
    if (rc == 0 && mr_meta_sync(g->meta, 15000)) { /* no follower thread runs yet: read them back here */
        mr_error_set(err, "miroir_kafka_unavailable", "The default keys were written but not read back.");
        return -1;
    }
    return rc;
}
