/* gw_keys.c: /keys, Meilisearch's API key routes, over the records in miroir.meta. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "auth.h"
#include "gw.h"
#include "util.h"

static int need_master_key(gw *g, gw_response *res)
{
    if (g->cfg->master_key[0])
        return 0;
    mr_error err;
    mr_error_set(&err, "missing_master_key",
                 "Meilisearch is running without a master key. To access this API endpoint, you must have set a master key at launch.");
    gw_reply_error(res, &err);
    return -1;
}

/* The record named by a uid or by a key value (new reference), or NULL with api_key_not_found. */
static json_t *find_key(gw *g, const char *uid_or_value, mr_error *err)
{
    json_t *keys = mr_meta_keys(g->meta, NULL);
    json_t *found = json_incref(json_object_get(keys, uid_or_value));
    const char *uid;
    json_t *rec;
    json_object_foreach(keys, uid, rec) {
        if (found)
            break;
        char value[MR_KEY_VALUE_LEN];
        mr_key_value(g->cfg->master_key, uid, value);
        if (strcmp(value, uid_or_value) == 0)
            found = json_incref(rec);
    }
    json_decref(keys);
    if (!found)
        mr_error_set(err, "api_key_not_found", "API key `%.100s` not found.", uid_or_value);
    return found;
}

static int put_key(gw *g, const char *uid, const json_t *rec, mr_error *err)
{
    char k[MR_KEY_UID_LEN + 8];
    snprintf(k, sizeof k, "key/%s", uid);
    return mr_meta_put(g->meta, g->producer, k, rec, 1, err);
}

static int newest_first(const void *a, const void *b)
{
    const json_t *x = *(json_t *const *)a, *y = *(json_t *const *)b;
    int c = strcmp(json_string_value(json_object_get(y, "createdAt")), json_string_value(json_object_get(x, "createdAt")));
    return c ? c : strcmp(json_string_value(json_object_get(x, "uid")), json_string_value(json_object_get(y, "uid")));
}

void gw_route_keys_list(gw *g, const gw_request *req, gw_response *res)
{
    if (need_master_key(g, res))
        return;
    long offset, limit;
    mr_error err;
    if (gw_offset_limit(req, "api_key", &offset, &limit, &err)) {
        gw_reply_error(res, &err);
        return;
    }
    json_t *keys = mr_meta_keys(g->meta, NULL);
    size_t n = json_object_size(keys), i = 0;
    json_t **sorted = calloc(n ? n : 1, sizeof *sorted);
    const char *uid;
    json_t *rec;
    json_object_foreach(keys, uid, rec)
        sorted[i++] = rec;
    qsort(sorted, n, sizeof *sorted, newest_first);
    json_t *results = json_array();
    for (i = (size_t)offset; i < n && i < (size_t)offset + (size_t)limit; i++)
        json_array_append_new(results, mr_key_view(sorted[i], g->cfg->master_key));
    free(sorted);
    json_decref(keys);
    gw_reply(res, 200, json_pack("{s:o, s:I, s:I, s:I}", "results", results, "offset", (json_int_t)offset, "limit",
                                 (json_int_t)limit, "total", (json_int_t)n));
}

void gw_route_key_get(gw *g, const gw_request *req, gw_response *res)
{
    if (need_master_key(g, res))
        return;
    mr_error err;
    json_t *rec = find_key(g, req->captures[0], &err);
    if (!rec) {
        gw_reply_error(res, &err);
        return;
    }
    gw_reply(res, 200, mr_key_view(rec, g->cfg->master_key));
    json_decref(rec);
}

void gw_route_key_create(gw *g, const gw_request *req, gw_response *res)
{
    if (need_master_key(g, res))
        return;
    mr_error err;
    char uid[MR_KEY_UID_LEN];
    json_t *body = gw_body_object(req, &err), *rec = NULL, *existing = NULL;
    if (!body)
        goto fail;
    if (mr_key_random_uid(uid)) {
        mr_error_set(&err, "internal", "No random source for a key uid.");
        goto fail;
    }
    rec = mr_key_create(body, uid, mr_now_real(), &err);
    if (!rec)
        goto fail;
    const char *rec_uid = json_string_value(json_object_get(rec, "uid"));
    json_t *keys = mr_meta_keys(g->meta, NULL);
    existing = json_incref(json_object_get(keys, rec_uid));
    json_decref(keys);
    if (existing) {
        mr_error_set(&err, "api_key_already_exists", "`uid` field value `%s` is already an existing API key.", rec_uid);
        goto fail;
    }
    if (put_key(g, rec_uid, rec, &err))
        goto fail;
    gw_reply(res, 201, mr_key_view(rec, g->cfg->master_key));
    json_decref(body);
    json_decref(rec);
    return;
fail:
    json_decref(body);
    json_decref(rec);
    json_decref(existing);
    gw_reply_error(res, &err);
}

void gw_route_key_update(gw *g, const gw_request *req, gw_response *res)
{
    if (need_master_key(g, res))
        return;
    mr_error err;
    json_t *body = gw_body_object(req, &err), *rec = NULL, *updated = NULL;
    if (body && (rec = find_key(g, req->captures[0], &err)) && (updated = mr_key_update(rec, body, mr_now_real(), &err)) &&
        put_key(g, json_string_value(json_object_get(updated, "uid")), updated, &err) == 0)
        gw_reply(res, 200, mr_key_view(updated, g->cfg->master_key));
    else
        gw_reply_error(res, &err);
    json_decref(body);
    json_decref(rec);
    json_decref(updated);
}

void gw_route_key_delete(gw *g, const gw_request *req, gw_response *res)
{
    if (need_master_key(g, res))
        return;
    mr_error err;
    json_t *rec = find_key(g, req->captures[0], &err);
    if (rec && put_key(g, json_string_value(json_object_get(rec, "uid")), NULL, &err) == 0)
        gw_reply(res, 204, NULL);
    else
        gw_reply_error(res, &err);
    json_decref(rec);
}
