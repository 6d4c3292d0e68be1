/* gw_browse.c: reading documents across shards: one by id (routed to its shard), and browsing
 * with offset, limit, fields, filter, ids and sort (GET /documents, POST /documents/fetch). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gw.h"
#include "hrw.h"
#include "merge.h"
#include "record.h"
#include "seq.h"
#include "alloc.h"

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
        mr_seq_strip(call.answer);
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

/* GET /_miroir/indexes/{uid}/shards/{k}/documents?offset&limit: one page of one shard's documents,
 * from a replica that may serve reads, as clients see them: what miroirctl backup reads, shard by
 * shard, so that a whole index is read in pages each shard serves cheaply. */
void gw_route_shard_documents(gw *g, const gw_request *req, gw_response *res)
{
    mr_error err = {0};
    const mr_index *ix = req->ix;
    char *end;
    unsigned long shard = strtoul(req->captures[1], &end, 10);
    long offset, limit;
    if (*end || !*req->captures[1] || shard >= ix->shard_count) {
        mr_error_set(&err, "miroir_invalid_shard", "`%.20s` is not a shard of index `%s`: it has %u, from 0.",
                     req->captures[1], ix->uid, ix->shard_count);
        gw_reply_error(res, &err);
        return;
    }
    if (gw_offset_limit(req, "document", &offset, &limit, &err)) {
        gw_reply_error(res, &err);
        return;
    }
    char suffix[128];
    snprintf(suffix, sizeof suffix, "/documents?offset=%ld&limit=%ld", offset, limit);
    gw_shard_call call = {.ix = ix, .shard = (uint32_t)shard, .method = "GET"};
    gw_shard_path(call.path, sizeof call.path, ix, call.shard, suffix);
    if (gw_scatter(g, &call, 1, &err, NULL) == 0) {
        size_t i;
        json_t *doc;
        json_array_foreach(json_object_get(call.answer, "results"), i, doc) mr_seq_strip(doc);
        gw_reply(res, 200, json_incref(call.answer));
    } else {
        gw_reply_error(res, &err);
    }
    gw_scatter_clear(&call, 1);
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
    mr_retrieve_for_merge(json_object_get(b->body, "fields"), MR_SEQ_FIELD, &b->added);
    return 0;
}

static void browse_clear(struct browse *b)
{
    json_decref(b->body);
    json_decref(b->added);
}

/* Sort rules first, then write order (seq.h): one node's order among equals. */
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
    return mr_seq_compare(x, y);
}

static json_t *page_of(const struct browse *b, json_t *results, size_t total)
{
    return json_pack("{s:o, s:I, s:I, s:I}", "results", results, "offset", (json_int_t)b->offset, "limit",
                     (json_int_t)b->limit, "total", (json_int_t)total);
}

/* Asks every shard for its documents [offset, offset + limit) of the fetch; calls[s] gets shard
 * s's answer (the caller clears them). */
static int fetch_from_shards(gw *g, const mr_index *ix, struct browse *b, uint64_t key, size_t offset, size_t limit,
                             gw_shard_call *calls, char **body, mr_error *err)
{
    json_object_set_new(b->body, "offset", json_integer((json_int_t)offset));
    json_object_set_new(b->body, "limit", json_integer((json_int_t)limit));
    *body = json_dumps(b->body, JSON_COMPACT);
    for (uint32_t s = 0; s < ix->shard_count; s++) {
        calls[s] = (gw_shard_call){.ix = ix, .shard = s, .key = key, .method = "POST", .body = *body};
        gw_shard_path(calls[s].path, sizeof calls[s].path, ix, s, "/documents/fetch");
    }
    return gw_scatter(g, calls, ix->shard_count, err, NULL);
}

/* Every shard's first documents in its own order, merged: the page of the merged order. */
static json_t *merged_page(const struct browse *b, gw_shard_call *calls, uint32_t n, size_t total)
{
    size_t *pos = mr_calloc(n, sizeof *pos);
    json_t *results = json_array();
    /* S is small and offset + limit bounded: a linear pick per document is enough here */
    for (size_t taken = 0; taken < b->offset + b->limit; taken++) {
        json_t *best = NULL;
        uint32_t from = 0;
        for (uint32_t s = 0; s < n; s++) {
            json_t *doc = json_array_get(json_object_get(calls[s].answer, "results"), pos[s]);
            if (doc && (!best || compare_docs(b, doc, best) < 0)) {
                best = doc;
                from = s;
            }
        }
        if (!best)
            break;
        pos[from]++;
        if (taken >= b->offset)
            json_array_append(results, best);
    }
    free(pos);
    size_t i, k;
    json_t *doc, *f;
    json_array_foreach(results, i, doc) {
        json_array_foreach(b->added, k, f) json_object_del(doc, json_string_value(f));
        mr_seq_strip(doc);
    }
    return page_of(b, results, total);
}

static size_t total_of(gw_shard_call *calls, uint32_t n)
{
    size_t total = 0;
    for (uint32_t s = 0; s < n; s++)
        total += (size_t)json_integer_value(json_object_get(calls[s].answer, "total"));
    return total;
}

/* Past browse_in_order_max documents, without sort: shard by shard, each in its own order,
 * stable for a given replica choice; only the slices that overlap [offset, offset + limit) are
 * read. calls holds the first round's answers, for the shard totals. */
static json_t *browse_in_shard_order(gw *g, const mr_index *ix, struct browse *b, uint64_t key, gw_shard_call *first,
                                     mr_error *err)
{
    uint32_t n = ix->shard_count;
    gw_shard_call *calls = mr_calloc(n, sizeof *calls);
    char **bodies = mr_calloc(n, sizeof *bodies);
    size_t m = 0, start = 0, want_from = b->offset, want_to = b->offset + b->limit;
    for (uint32_t s = 0; s < n; s++) {
        size_t lo = start, hi = start + (size_t)json_integer_value(json_object_get(first[s].answer, "total"));
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
    json_t *out = NULL;
    if (gw_scatter(g, calls, m, err, NULL) == 0) {
        json_t *results = json_array();
        for (size_t i = 0; i < m; i++)
            json_array_extend(results, json_object_get(calls[i].answer, "results"));
        size_t i;
        json_t *doc;
        json_array_foreach(results, i, doc) mr_seq_strip(doc);
        out = page_of(b, results, start);
    }
    gw_scatter_clear(calls, m);
    for (size_t i = 0; i < m; i++)
        free(bodies[i]);
    free(bodies);
    free(calls);
    return out;
}

/* A shard none of whose documents has a sort attribute refuses the sort with
 * invalid_document_sort, naming an attribute its own list of sortable attributes holds, as one
 * node with no such document does. Returns 1 and the attribute in attr for such an answer. */
static int attribute_unknown_to_shard(const mr_error *e, char *attr, size_t len)
{
    const char *a = strchr(e->message, '`'), *a_end = a ? strchr(a + 1, '`') : NULL;
    const char *list = a_end ? strstr(a_end, "attributes are: `") : NULL;
    if (strcmp(e->code, "invalid_document_sort") || !a_end || !list || (size_t)(a_end - a - 1) >= len)
        return 0;
    snprintf(attr, len, "%.*s", (int)(a_end - a - 1), a + 1);
    list += strlen("attributes are: `");
    size_t n = strlen(attr);
    for (const char *p = list; *p && *p != '`'; p += strcspn(p, ",`"), p += *p == ',' ? 2 : 0)
        if (strncmp(p, attr, n) == 0 && (p[n] == ',' || p[n] == '`'))
            return 1;
    return 0;
}

/* The shards that refused the sort for an attribute none of their documents has are asked again
 * without its rule: their documents all lack it, so they rank after every document that has it,
 * where the merge (missing values last) puts them. When no shard knows the attribute, one node
 * wouldn't either: its error stands. Returns 0 once every call has an answer. */
static int fetch_without_unknown_sorts(gw *g, const mr_index *ix, const struct browse *b, gw_shard_call *calls,
                                       char **bodies, mr_error *err)
{
    uint32_t n = ix->shard_count;
    json_t **sorts = mr_calloc(n, sizeof *sorts);
    int rc = -1;
    for (int round = 0; round < 16; round++) {
        size_t refused = 0, answered = 0, retry = 0;
        gw_shard_call *again = mr_calloc(n, sizeof *again);
        uint32_t *which = mr_calloc(n, sizeof *which);
        for (uint32_t s = 0; s < n; s++) {
            char attr[256];
            if (calls[s].answer) {
                answered++;
                continue;
            }
            if (!attribute_unknown_to_shard(&calls[s].error, attr, sizeof attr)) {
                *err = calls[s].error;
                retry = 0;
                refused = n + 1; /* another error: it stands */
                break;
            }
            refused++;
            if (!sorts[s])
                sorts[s] = json_deep_copy(b->sort);
            size_t i;
            json_t *rule;
            json_array_foreach(sorts[s], i, rule) {
                char rule_attr[256];
                int descending;
                if (sort_rule(rule, rule_attr, sizeof rule_attr, &descending) == 0 && strcmp(rule_attr, attr) == 0)
                    json_array_remove(sorts[s], i--);
            }
            json_t *body = json_deep_copy(b->body);
            if (json_array_size(sorts[s]))
                json_object_set(body, "sort", sorts[s]);
            else
                json_object_del(body, "sort");
            free(bodies[s]);
            bodies[s] = json_dumps(body, JSON_COMPACT);
            json_decref(body);
            again[retry] = calls[s];
            again[retry].body = bodies[s];
            which[retry++] = s;
        }
        if (refused > n || (refused == n && !answered)) {
            if (refused == n)
                *err = calls[0].error;
            free(again);
            free(which);
            break;
        }
        if (!retry) {
            rc = 0;
            free(again);
            free(which);
            break;
        }
        gw_scatter(g, again, retry, err, NULL);
        for (size_t k = 0; k < retry; k++) {
            calls[which[k]].answer = again[k].answer;
            calls[which[k]].error = again[k].error;
            calls[which[k]].body = NULL;
        }
        free(again);
        free(which);
    }
    for (uint32_t s = 0; s < n; s++)
        json_decref(sorts[s]);
    free(sorts);
    return rc;
}

/* Browsing merges every shard's first offset + limit documents by sort, then write order, as one
 * node orders them; without sort, that holds up to browse_in_order_max matching documents. The
 * first round asks for those documents when they can be in order, else only for the counts. */
static json_t *browse_shards(gw *g, const mr_index *ix, struct browse *b, uint64_t key, mr_error *err)
{
    uint32_t n = ix->shard_count;
    size_t in_order_max = (size_t)g->cfg->browse_in_order_max, window = b->offset + b->limit;
    gw_shard_call *calls = mr_calloc(n, sizeof *calls);
    char *body = NULL;
    json_t *out = NULL;
    size_t asked = b->sort || window <= in_order_max ? window : 0;
    char **shard_bodies = mr_calloc(n, sizeof *shard_bodies);
    int rc = fetch_from_shards(g, ix, b, key, 0, asked, calls, &body, err);
    if (rc && b->sort)
        rc = fetch_without_unknown_sorts(g, ix, b, calls, shard_bodies, err);
    if (rc == 0) {
        size_t total = total_of(calls, n);
        if (b->sort || (total <= in_order_max && asked >= (window < total ? window : total))) {
            out = merged_page(b, calls, n, total);
        } else if (total <= in_order_max) { /* a page past the end of a small index: read it all */
            gw_scatter_clear(calls, n);
            free(body);
            body = NULL;
            if (fetch_from_shards(g, ix, b, key, 0, total, calls, &body, err) == 0)
                out = merged_page(b, calls, n, total_of(calls, n));
        } else {
            out = browse_in_shard_order(g, ix, b, key, calls, err);
        }
    }
    gw_scatter_clear(calls, n);
    for (uint32_t s = 0; s < n; s++)
        free(shard_bodies[s]);
    free(shard_bodies);
    free(calls);
    free(body);
    return out;
}

static void browse(gw *g, const gw_request *req, json_t *client, gw_response *res)
{
    mr_error err;
    struct browse b;
    json_t *out = NULL;
    if (browse_init(&b, client, &err) == 0) {
        out = browse_shards(g, req->ix, &b, mr_search_affinity(b.body), &err);
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
