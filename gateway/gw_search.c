/* gw_search.c: scatter a search to one replica per shard, fail over, gather, merge. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gw.h"
#include "merge.h"
#include "util.h"

int gw_query_prepare(gw_query *q, const mr_index *ix, json_t *body, mr_error *err)
{
    memset(q, 0, sizeof *q);
    if (mr_search_req_init(&q->sreq, body, ix->distinct_attribute, err))
        return -1;
    q->ix = ix;
    q->shard_body = mr_search_shard_body(&q->sreq, ix->max_total_hits);
    q->text = json_dumps(q->shard_body, JSON_COMPACT);
    q->key = mr_search_affinity(q->shard_body);
    return 0;
}

void gw_query_calls(const gw_query *q, gw_shard_call *calls)
{
    for (uint32_t s = 0; s < q->ix->shard_count; s++) {
        calls[s] = (gw_shard_call){.ix = q->ix, .shard = s, .key = q->key, .method = "POST", .body = q->text};
        gw_shard_path(calls[s].path, sizeof calls[s].path, q->ix, s, "/search");
    }
}

json_t *gw_query_merge(const gw_query *q, gw_shard_call *calls, int *short_answer)
{
    json_t **answers = calloc(q->ix->shard_count, sizeof *answers);
    for (uint32_t s = 0; s < q->ix->shard_count; s++)
        answers[s] = calls[s].answer;
    mr_merge_limits limits = {q->ix->max_total_hits, q->ix->max_values_per_facet};
    json_t *out = mr_search_merge(&q->sreq, answers, q->ix->shard_count, &limits, short_answer);
    free(answers);
    return out;
}

/* With distinct, the same value can stand in several shards, so a page can come out short;
 * ask the shards for more, doubling, a few times at most. */
#define MAX_OVERFETCH 16

json_t *gw_query_run(gw *g, gw_query *q, mr_error *err)
{
    gw_shard_call *calls = calloc(q->ix->shard_count, sizeof *calls);
    json_t *out = NULL;
    for (;;) {
        gw_query_calls(q, calls);
        if (gw_scatter(g, calls, q->ix->shard_count, err, NULL))
            break;
        int short_answer = 0;
        out = gw_query_merge(q, calls, &short_answer);
        gw_scatter_clear(calls, q->ix->shard_count);
        if (!short_answer || q->sreq.overfetch >= MAX_OVERFETCH)
            break;
        json_decref(out);
        out = NULL;
        q->sreq.overfetch *= 2;
        json_decref(q->shard_body);
        free(q->text);
        q->shard_body = mr_search_shard_body(&q->sreq, q->ix->max_total_hits);
        q->text = json_dumps(q->shard_body, JSON_COMPACT);
    }
    gw_scatter_clear(calls, q->ix->shard_count);
    free(calls);
    return out;
}

void gw_query_clear(gw_query *q)
{
    mr_search_req_clear(&q->sreq);
    json_decref(q->shard_body);
    free(q->text);
    memset(q, 0, sizeof *q);
}

/* One shard: its node's answer is the answer (paging, totals, facets, distinct and the caps are
 * the node's own, under the same settings), so the body goes through as the client sent it and
 * the answer comes back unparsed. Validation still runs first, so errors don't differ. */
static int search_one_shard(gw *g, gw_query *q, const json_t *body, gw_response *res, mr_error *err)
{
    char *text = json_dumps(body, JSON_COMPACT);
    gw_shard_call call = {.ix = q->ix, .shard = 0, .key = q->key, .method = "POST", .body = text, .raw = 1};
    gw_shard_path(call.path, sizeof call.path, q->ix, 0, "/search");
    int rc = gw_scatter(g, &call, 1, err, NULL);
    if (rc == 0) {
        res->status = 200;
        res->text = call.raw_answer;
        res->text_type = "application/json";
        call.raw_answer = NULL;
    }
    gw_scatter_clear(&call, 1);
    free(text);
    return rc;
}

static void search(gw *g, const gw_request *req, json_t *body, gw_response *res)
{
    mr_error err = {0};
    gw_query q = {0};
    json_t *out = NULL;
    if (gw_apply_search_rules(req, req->ix->uid, body, &err) == 0 && gw_query_prepare(&q, req->ix, body, &err) == 0) {
        if (req->ix->shard_count == 1) {
            if (search_one_shard(g, &q, body, res, &err))
                gw_reply_error(res, &err);
            gw_query_clear(&q);
            return;
        }
        out = gw_query_run(g, &q, &err);
    }
    if (out)
        gw_reply(res, 200, out);
    else
        gw_reply_error(res, &err);
    gw_query_clear(&q);
}

void gw_route_search_post(gw *g, const gw_request *req, gw_response *res)
{
    mr_error err;
    json_t *body = gw_body_object(req, &err);
    if (!body) {
        gw_reply_error(res, &err);
        return;
    }
    search(g, req, body, res);
    json_decref(body);
}

/* GET parameters in Meilisearch's query-string form: lists are comma-separated. */
struct get_param {
    const char *name;
    enum { P_STRING, P_INT, P_BOOL, P_LIST, P_FLOAT } kind;
};

static const struct get_param get_params[] = {
    {"q", P_STRING},
    {"offset", P_INT},
    {"limit", P_INT},
    {"page", P_INT},
    {"hitsPerPage", P_INT},
    {"filter", P_STRING},
    {"facets", P_LIST},
    {"attributesToRetrieve", P_LIST},
    {"retrieveVectors", P_BOOL},
    {"attributesToCrop", P_LIST},
    {"cropLength", P_INT},
    {"cropMarker", P_STRING},
    {"attributesToHighlight", P_LIST},
    {"highlightPreTag", P_STRING},
    {"highlightPostTag", P_STRING},
    {"showMatchesPosition", P_BOOL},
    {"showRankingScore", P_BOOL},
    {"showRankingScoreDetails", P_BOOL},
    {"sort", P_LIST},
    {"distinct", P_STRING},
    {"matchingStrategy", P_STRING},
    {"attributesToSearchOn", P_LIST},
    {"rankingScoreThreshold", P_FLOAT},
    {"locales", P_LIST},
};

void gw_route_search_get(gw *g, const gw_request *req, gw_response *res)
{
    json_t *body = json_object();
    for (size_t i = 0; i < sizeof get_params / sizeof get_params[0]; i++) {
        const struct get_param *p = &get_params[i];
        const char *v = gw_arg(req, p->name);
        if (!v)
            continue;
        char *end = NULL;
        json_t *value = NULL;
        switch (p->kind) {
        case P_STRING:
            value = json_string(v);
            break;
        case P_LIST:
            value = gw_csv_list(v);
            break;
        case P_BOOL:
            value = strcmp(v, "true") == 0 ? json_true() : strcmp(v, "false") == 0 ? json_false() : NULL;
            break;
        case P_INT: {
            long long n = strtoll(v, &end, 10);
            value = *v && !*end && n >= 0 ? json_integer(n) : NULL;
            break;
        }
        case P_FLOAT: {
            double d = strtod(v, &end);
            value = *v && !*end ? json_real(d) : NULL;
            break;
        }
        }
        if (!value) {
            mr_error err;
            char code[64] = "bad_request";
            /* invalid_search_<snake_case name>, as Meilisearch names them */
            size_t k = strlen("invalid_search_");
            memcpy(code, "invalid_search_", k);
            for (const char *c = p->name; *c && k + 2 < sizeof code; c++) {
                if (*c >= 'A' && *c <= 'Z') {
                    code[k++] = '_';
                    code[k++] = (char)(*c - 'A' + 'a');
                } else {
                    code[k++] = *c;
                }
            }
            code[k] = '\0';
            mr_error_invalid(&err, code, "Invalid value in parameter `%s`: could not parse `%.100s`", p->name, v);
            gw_reply_error(res, &err);
            json_decref(body);
            return;
        }
        json_object_set_new(body, p->name, value);
    }
    search(g, req, body, res);
    json_decref(body);
}

/* Facet search: every shard's facet hits, counts added up per value. Values are merged by their
 * folded form (a shard may show "Apple" where another shows "apple"). Ordered by name and cut at
 * 100, as one node answers. */
void gw_route_facet_search(gw *g, const gw_request *req, gw_response *res)
{
    mr_error err;
    json_t *body = gw_body_object(req, &err);
    const mr_index *ix = body && gw_apply_search_rules(req, req->ix->uid, body, &err) == 0 ? req->ix : NULL;
    if (!ix) {
        gw_reply_error(res, &err);
        goto out;
    }
    char *text = json_dumps(body, JSON_COMPACT);
    uint64_t key = mr_search_affinity(body);
    gw_shard_call *calls = calloc(ix->shard_count, sizeof *calls);
    for (uint32_t s = 0; s < ix->shard_count; s++) {
        calls[s] = (gw_shard_call){.ix = ix, .shard = s, .key = key, .method = "POST", .body = text};
        gw_shard_path(calls[s].path, sizeof calls[s].path, ix, s, "/facet-search");
    }
    if (gw_scatter(g, calls, ix->shard_count, &err, NULL) == 0) {
        json_t **answers = calloc(ix->shard_count, sizeof *answers);
        for (uint32_t s = 0; s < ix->shard_count; s++)
            answers[s] = calls[s].answer;
        json_t *hits = mr_merge_facet_hits(answers, ix->shard_count, 100);
        json_t *q = json_object_get(body, "facetQuery");
        gw_reply(res, 200, json_pack("{s:o, s:O, s:I}", "facetHits", hits, "facetQuery", q ? q : json_null(),
                                     "processingTimeMs", mr_engine_ms(answers, ix->shard_count)));
        free(answers);
    } else {
        gw_reply_error(res, &err);
    }
    gw_scatter_clear(calls, ix->shard_count);
    free(calls);
    free(text);
out:
    json_decref(body);
}
