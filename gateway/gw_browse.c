/* gw_browse.c: reading documents across shards: one by id (routed to its shard), and browsing
 * with offset, limit, fields, filter, ids and sort (GET /documents, POST /documents/fetch). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gw.h"
#include "hrw.h"
#include "merge.h"
#include "record.h"

void gw_route_document_get(gw *g, const gw_request *req, gw_response *res)
{
    mr_error err;
    const mr_index *ix = req->ix;
    const char *id = req->captures[1];
    const char *fields = gw_arg(req, "fields");
    char *eid = curl_easy_escape(NULL, id, 0);
    char *efields = fields ? curl_easy_escape(NULL, fields, 0) : NULL;
    char suffix[1200];
    snprintf(suffix, sizeof suffix, "/documents/%s%s%s", eid, efields ? "?fields=" : "", efields ? efields : "");
    gw_shard_call call = {.ix = ix, .shard = mr_shard_of(id, strlen(id), ix->shard_count), .method = "GET"};
    gw_shard_path(call.path, sizeof call.path, ix, call.shard, suffix);
    if (gw_scatter(g, &call, 1, &err, NULL) == 0) {
        gw_reply(res, 200, json_incref(call.answer));
    } else {
        /* a replica whose shard index is not created yet holds no document either */
        if (err.status == 404 && strcmp(err.code, "index_not_found") == 0)
            mr_error_set(&err, "document_not_found", "Document `%.200s` not found.", id);
        gw_reply_error(res, &err);
    }
    gw_scatter_clear(&call, 1);
    curl_free(eid);
    curl_free(efields);
}

struct browse {
    size_t offset, limit;
    json_t *body;   /* fetch body sent to shards, without offset/limit (owned) */
    json_t *fields; /* the client's fields, or NULL for all (borrowed from body's source) */
    json_t *sort;   /* array of "attr:asc|desc", or NULL */
    json_t *added;  /* fields added to fetch the sort attributes, removed from the answer */
};

static int read_index_count(json_t *v, const char *name, size_t *out, mr_error *err)
{
    if (!v || json_is_null(v))
        return 0;
    if (!json_is_integer(v) || json_integer_value(v) < 0) {
        char code[64];
        snprintf(code, sizeof code, "invalid_document_%s", name);
        mr_error_invalid(err, code, "Invalid value type at `.%s`: expected a positive integer", name);
        return -1;
    }
    *out = (size_t)json_integer_value(v);
    return 0;
}

/* Splits a sort rule "attr:asc|desc" into its attribute and direction; -1 if it isn't one. */
static int sort_rule(const json_t *rule, char *attr, size_t attrlen, int *descending)
{
    const char *r = json_string_value(rule);
    const char *colon = r ? strrchr(r, ':') : NULL;
    if (!colon || (size_t)(colon - r) >= attrlen)
        return -1;
    snprintf(attr, attrlen, "%.*s", (int)(colon - r), r);
    *descending = strcmp(colon, ":desc") == 0;
    return 0;
}

/* Builds the shard fetch body from the client's fetch body. */
static int browse_init(struct browse *b, json_t *client, mr_error *err)
{
    memset(b, 0, sizeof *b);
    b->limit = 20;
    if (read_index_count(json_object_get(client, "offset"), "offset", &b->offset, err) ||
        read_index_count(json_object_get(client, "limit"), "limit", &b->limit, err))
        return -1;
    b->body = json_deep_copy(client);
    json_object_del(b->body, "offset");
    json_object_del(b->body, "limit");
    b->sort = json_object_get(b->body, "sort");
    if (json_array_size(b->sort) == 0)
        b->sort = NULL;
    /* the merge compares sort values, so they must come back */
    size_t i;
    json_t *rule;
    json_array_foreach(b->sort, i, rule) {
        char attr[256];
        int descending;
        if (sort_rule(rule, attr, sizeof attr, &descending) == 0)
            mr_retrieve_for_merge(json_object_get(b->body, "fields"), attr, &b->added);
    }
    return 0;
}

static void browse_clear(struct browse *b)
{
    json_decref(b->body);
    json_decref(b->added);
}

static int compare_docs(const struct browse *b, const json_t *x, const json_t *y)
{
    size_t i;
    json_t *rule;
    json_array_foreach(b->sort, i, rule) {
        char attr[256];
        int descending;
        if (sort_rule(rule, attr, sizeof attr, &descending))
            continue;
        int c = mr_compare_sort_values(json_object_get(x, attr), json_object_get(y, attr), descending);
        if (c)
            return c;
    }
    return 0;
}

/* Without sort, the order is shard by shard, each in its own order: stable for a given replica
 * choice. Two rounds: the totals, then the slices that overlap [offset, offset + limit). */
static json_t *browse_in_shard_order(gw *g, const mr_index *ix, struct browse *b, uint64_t key, mr_error *err)
{
    uint32_t n = ix->shard_count;
    gw_shard_call *calls = calloc(n, sizeof *calls);
    char **bodies = calloc(n, sizeof *bodies);
    json_t *out = NULL;
    json_object_set_new(b->body, "limit", json_integer(0));
    char *count_body = json_dumps(b->body, JSON_COMPACT);
    for (uint32_t s = 0; s < n; s++) {
        calls[s] = (gw_shard_call){.ix = ix, .shard = s, .key = key, .method = "POST", .body = count_body};
        gw_shard_path(calls[s].path, sizeof calls[s].path, ix, s, "/documents/fetch");
    }
    if (gw_scatter(g, calls, n, err, NULL))
        goto done;
    size_t *totals = calloc(n, sizeof *totals), total = 0;
    for (uint32_t s = 0; s < n; s++) {
        totals[s] = (size_t)json_integer_value(json_object_get(calls[s].answer, "total"));
        total += totals[s];
    }
    gw_scatter_clear(calls, n);
    size_t m = 0, start = 0, want_from = b->offset, want_to = b->offset + b->limit;
    for (uint32_t s = 0; s < n; s++) {
        size_t lo = start, hi = start + totals[s];
        start = hi;
        if (hi <= want_from || lo >= want_to || b->limit == 0)
            continue;
        size_t from = want_from > lo ? want_from - lo : 0;
        size_t to = (want_to < hi ? want_to : hi) - lo;
        json_object_set_new(b->body, "offset", json_integer((json_int_t)from));
        json_object_set_new(b->body, "limit", json_integer((json_int_t)(to - from)));
        bodies[m] = json_dumps(b->body, JSON_COMPACT);
        calls[m] = (gw_shard_call){.ix = ix, .shard = s, .key = key, .method = "POST", .body = bodies[m]};
        gw_shard_path(calls[m].path, sizeof calls[m].path, ix, s, "/documents/fetch");
        m++;
    }
    free(totals);
    if (gw_scatter(g, calls, m, err, NULL) == 0) {
        json_t *results = json_array();
        for (size_t i = 0; i < m; i++)
            json_array_extend(results, json_object_get(calls[i].answer, "results"));
        out = json_pack("{s:o, s:I, s:I, s:I}", "results", results, "offset", (json_int_t)b->offset, "limit",
                        (json_int_t)b->limit, "total", (json_int_t)total);
    }
    gw_scatter_clear(calls, m);
done:
    for (uint32_t s = 0; s < n; s++)
        free(bodies[s]);
    free(bodies);
    free(count_body);
    free(calls);
    return out;
}

/* With sort, every shard returns its first offset + limit in order; merge them. */
static json_t *browse_sorted(gw *g, const mr_index *ix, struct browse *b, uint64_t key, mr_error *err)
{
    uint32_t n = ix->shard_count;
    json_object_set_new(b->body, "offset", json_integer(0));
    json_object_set_new(b->body, "limit", json_integer((json_int_t)(b->offset + b->limit)));
    char *text = json_dumps(b->body, JSON_COMPACT);
    gw_shard_call *calls = calloc(n, sizeof *calls);
    for (uint32_t s = 0; s < n; s++) {
        calls[s] = (gw_shard_call){.ix = ix, .shard = s, .key = key, .method = "POST", .body = text};
        gw_shard_path(calls[s].path, sizeof calls[s].path, ix, s, "/documents/fetch");
    }
    json_t *out = NULL;
    if (gw_scatter(g, calls, n, err, NULL) == 0) {
        size_t *pos = calloc(n, sizeof *pos), total = 0;
        json_t *results = json_array();
        for (uint32_t s = 0; s < n; s++)
            total += (size_t)json_integer_value(json_object_get(calls[s].answer, "total"));
        /* S is small and offset + limit bounded: a linear pick per document is enough here */
        for (size_t taken = 0; taken < b->offset + b->limit; taken++) {
            int best = -1;
            for (uint32_t s = 0; s < n; s++) {
                json_t *doc = json_array_get(json_object_get(calls[s].answer, "results"), pos[s]);
                if (!doc)
                    continue;
                if (best < 0 ||
                    compare_docs(b, doc, json_array_get(json_object_get(calls[best].answer, "results"), pos[best])) < 0)
                    best = (int)s;
            }
            if (best < 0)
                break;
            json_t *doc = json_array_get(json_object_get(calls[best].answer, "results"), pos[best]++);
            if (taken >= b->offset) {
                size_t i;
                json_t *f;
                json_array_foreach(b->added, i, f) json_object_del(doc, json_string_value(f));
                json_array_append(results, doc);
            }
        }
        free(pos);
        out = json_pack("{s:o, s:I, s:I, s:I}", "results", results, "offset", (json_int_t)b->offset, "limit",
                        (json_int_t)b->limit, "total", (json_int_t)total);
    }
    gw_scatter_clear(calls, n);
    free(calls);
    free(text);
    return out;
}

static void browse(gw *g, const gw_request *req, json_t *client, gw_response *res)
{
    mr_error err;
    struct browse b;
    json_t *out = NULL;
    if (browse_init(&b, client, &err) == 0) {
        uint64_t key = mr_search_affinity(b.body);
        out = b.sort ? browse_sorted(g, req->ix, &b, key, &err) : browse_in_shard_order(g, req->ix, &b, key, &err);
        browse_clear(&b);
    }
    if (out)
        gw_reply(res, 200, out);
    else
        gw_reply_error(res, &err);
}

void gw_route_documents_fetch(gw *g, const gw_request *req, gw_response *res)
{
    mr_error err;
    json_t *body = req->body_len ? gw_body_object(req, &err) : json_object();
    if (!body) {
        gw_reply_error(res, &err);
        return;
    }
    browse(g, req, body, res);
    json_decref(body);
}

void gw_route_documents_browse(gw *g, const gw_request *req, gw_response *res)
{
    json_t *body = json_object();
    static const char *const counts[] = {"offset", "limit"};
    for (size_t i = 0; i < 2; i++) {
        const char *v = gw_arg(req, counts[i]);
        if (!v)
            continue;
        char *end;
        long long n = strtoll(v, &end, 10);
        if (!*v || *end || n < 0) {
            mr_error err;
            char code[64];
            snprintf(code, sizeof code, "invalid_document_%s", counts[i]);
            mr_error_invalid(&err, code, "Invalid value in parameter `%s`: could not parse `%.50s` as a positive integer",
                             counts[i], v);
            gw_reply_error(res, &err);
            json_decref(body);
            return;
        }
        json_object_set_new(body, counts[i], json_integer(n));
    }
    static const char *const lists[] = {"fields", "ids", "sort"};
    for (size_t i = 0; i < 3; i++)
        if (gw_arg(req, lists[i]))
            json_object_set_new(body, lists[i], gw_csv_list(gw_arg(req, lists[i])));
    if (gw_arg(req, "filter"))
        json_object_set_new(body, "filter", json_string(gw_arg(req, "filter")));
    if (gw_arg(req, "retrieveVectors"))
        json_object_set_new(body, "retrieveVectors", json_boolean(strcmp(gw_arg(req, "retrieveVectors"), "true") == 0));
    browse(g, req, body, res);
    json_decref(body);
}
