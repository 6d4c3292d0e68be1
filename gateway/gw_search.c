/* gw_search.c: scatter a search to one replica per shard, fail over, gather, merge. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "alloc.h"
#include "answer.h"
#include "gw.h"
#include "merge.h"
#include "seq.h"
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
    for (uint32_t s = 0; s < q->ix->shard_count; s++)
        gw_search_call(&calls[s], q->ix, s, q->key, q->text, q->sreq.distinct);
}

json_t *gw_query_merge(const gw_query *q, gw_shard_call *calls, int *short_answer)
{
    json_t **answers = mr_calloc(q->ix->shard_count, sizeof *answers);
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

/* ---- query then fetch ----
 *
 * With many shards, most of the hits the shards send are thrown away by the merge, and parsing
 * them costs the gateway more than the merge. So in two phases: first each shard sends only what
 * the merge needs (the primary key, the ranking score and its details when sorting, the write
 * order, the distinct attribute; no highlighting, cropping or match positions), and the merge
 * picks the page; then each shard that holds some of the page is asked the same query again for
 * its first k hits, k reaching its last hit on the page, with everything the client asked for.
 * The same query on the same replica ranks the same way, so the page equals the one-phase answer;
 * should a hit have moved (a write applied in between), the query runs again in one phase.
 * A semantic search keeps to one phase: its nearest neighbours depend on how many are asked for. */

static int two_phases(const gw *g, const gw_query *q)
{
    return g->cfg->two_phase_min_shards > 0 && q->ix->shard_count >= (uint32_t)g->cfg->two_phase_min_shards &&
           q->ix->primary_key[0] && !q->sreq.semantic;
}

/* The shard body as text: in the first of two phases (slim), asked only for what the merge
 * reads; with a narrowed window (hits > 0), for that many hits. */
static char *shard_text(const gw_query *q, int slim, size_t hits)
{
    static const char *const presentation[] = {"attributesToHighlight", "attributesToCrop", "cropLength",
                                                "cropMarker", "highlightPreTag", "highlightPostTag",
                                                "showMatchesPosition", "retrieveVectors", NULL};
    json_t *b = json_deep_copy(q->shard_body);
    if (slim) {
        for (size_t i = 0; presentation[i]; i++)
            json_object_del(b, presentation[i]);
        json_t *fields = json_pack("[s, s]", q->ix->primary_key, MR_SEQ_FIELD);
        if (q->sreq.distinct[0])
            json_array_append_new(fields, json_string(q->sreq.distinct));
        json_object_set_new(b, "attributesToRetrieve", fields);
    }
    if (hits)
        mr_search_body_window(b, &q->sreq, hits);
    char *text = json_dumps(b, JSON_COMPACT);
    json_decref(b);
    return text;
}

/* Marks each first-phase hit with where it stands: its shard and its position there. */
static void mark_hits(gw_shard_call *calls, uint32_t n)
{
    for (uint32_t s = 0; s < n; s++) {
        json_t *hits = json_object_get(calls[s].answer, "hits");
        for (size_t i = 0; i < json_array_size(hits); i++) {
            json_t *hit = mr_hits_at(hits, i);
            json_object_set_new(hit, "_miroir_shard", json_integer(s));
            json_object_set_new(hit, "_miroir_pos", json_integer((json_int_t)i));
        }
    }
}

/* Replaces the page's first-phase hits with the shards' full hits. Returns 0, or -1 if some hit
 * was not where the first phase saw it (then the caller runs the query in one phase). */
static int fetch_page(gw *g, gw_query *q, json_t *out, mr_error *err)
{
    uint32_t n = q->ix->shard_count;
    json_t *hits = json_object_get(out, "hits");
    size_t *depth = mr_calloc(n, sizeof *depth);
    size_t i;
    json_t *hit;
    json_array_foreach(hits, i, hit) {
        json_int_t s = json_integer_value(json_object_get(hit, "_miroir_shard"));
        json_int_t pos = json_integer_value(json_object_get(hit, "_miroir_pos"));
        if (s >= 0 && (uint32_t)s < n && (size_t)pos + 1 > depth[s])
            depth[s] = (size_t)pos + 1;
    }
    json_t *body = json_deep_copy(q->shard_body), *added = NULL;
    mr_retrieve_for_merge(json_object_get(body, "attributesToRetrieve"), q->ix->primary_key, &added);
    gw_shard_call *calls = mr_calloc(n, sizeof *calls);
    char **texts = mr_calloc(n, sizeof *texts);
    size_t used = 0;
    for (uint32_t s = 0; s < n; s++) {
        if (!depth[s])
            continue;
        json_object_set_new(body, json_object_get(body, "page") ? "hitsPerPage" : "limit",
                            json_integer((json_int_t)depth[s]));
        texts[s] = json_dumps(body, JSON_COMPACT);
        gw_search_call(&calls[used++], q->ix, s, q->key, texts[s], q->sreq.distinct);
    }
    int rc = gw_scatter(g, calls, used, err, NULL);
    for (size_t k = 0; k < used && rc == 0; k++) {
        json_t *full = json_object_get(calls[k].answer, "hits");
        size_t j;
        json_array_foreach(hits, j, hit) {
            if ((uint32_t)json_integer_value(json_object_get(hit, "_miroir_shard")) != calls[k].shard)
                continue;
            json_t *found = mr_hits_at(full, (size_t)json_integer_value(json_object_get(hit, "_miroir_pos")));
            json_t *id = mr_hit_get(hit, q->ix->primary_key);
            if (!found || !id || !json_equal(mr_hit_get(found, q->ix->primary_key), id)) {
                rc = -1; /* moved between the phases */
                break;
            }
            json_t *copy = json_deep_copy(found);
            for (size_t a = 0; a < json_array_size(added); a++) {
                const char *name = json_string_value(json_array_get(added, a));
                mr_hit_drop(copy, &name, 1, NULL);
            }
            mr_search_hit_finish(&q->sreq, copy);
            json_array_set_new(hits, j, copy);
        }
    }
    gw_scatter_clear(calls, used);
    for (uint32_t s = 0; s < n; s++)
        free(texts[s]);
    free(texts);
    free(calls);
    free(depth);
    json_decref(body);
    json_decref(added);
    return rc;
}

/* The shards' answers, each missing one named in missing (allowPartialResults). */
static void note_missing(const gw_shard_call *calls, uint32_t n, json_t *missing)
{
    for (uint32_t s = 0; s < n; s++)
        if (!calls[s].answer)
            json_array_append_new(missing, json_integer(s));
}

void gw_query_narrow(gw *g, gw_query *q, gw_shard_call *calls, int slim)
{
    free(q->narrow_text);
    q->narrow_text = NULL;
    q->narrow = g->cfg->narrow_shard_windows ? mr_search_narrow_window(&q->sreq, q->ix->max_total_hits,
                                                                       q->ix->shard_count) : 0;
    if (!q->narrow)
        return;
    q->narrow_text = shard_text(q, slim, q->narrow);
    for (uint32_t s = 0; s < q->ix->shard_count; s++)
        calls[s].body = q->narrow_text;
}

int gw_query_widen(gw *g, gw_query *q, gw_shard_call *calls, const char *body, int partial, mr_error *err)
{
    uint32_t n = q->ix->shard_count;
    size_t narrow = q->narrow;
    if (!narrow)
        return 0;
    json_t **answers = mr_calloc(n, sizeof *answers);
    unsigned char *doubt = mr_calloc(n, 1);
    for (uint32_t s = 0; s < n; s++)
        answers[s] = calls[s].answer;
    size_t count = mr_search_doubt(&q->sreq, answers, n, q->ix->max_total_hits, narrow, doubt);
    int rc = 0;
    if (count) {
        gw_shard_call *again = mr_calloc(count, sizeof *again);
        size_t used = 0;
        for (uint32_t s = 0; s < n; s++) {
            if (!doubt[s])
                continue;
            gw_search_call(&again[used], q->ix, s, q->key, body, q->sreq.distinct);
            again[used++].allow_missing = partial;
        }
        atomic_fetch_add(&g->window_retries, count);
        rc = gw_scatter(g, again, used, err, NULL);
        for (size_t k = 0; k < used && rc == 0; k++) {
            json_decref(calls[again[k].shard].answer); /* without its answer, a shard is missing (partial) */
            calls[again[k].shard].answer = again[k].answer;
            again[k].answer = NULL;
        }
        gw_scatter_clear(again, used);
        free(again);
    }
    free(doubt);
    free(answers);
    return rc;
}

static json_t *run(gw *g, gw_query *q, int two, int partial, mr_error *err)
{
    uint32_t n = q->ix->shard_count;
    gw_shard_call *calls = mr_calloc(n, sizeof *calls);
    json_t *out = NULL, *missing = json_array();
    for (;;) {
        gw_query_calls(q, calls);
        char *slim = two ? shard_text(q, 1, 0) : NULL;
        for (uint32_t s = 0; s < n; s++) {
            calls[s].allow_missing = partial;
            if (slim)
                calls[s].body = slim;
        }
        gw_query_narrow(g, q, calls, two);
        int rc = gw_scatter(g, calls, n, err, NULL);
        if (rc == 0)
            rc = gw_query_widen(g, q, calls, slim ? slim : q->text, partial, err);
        json_array_clear(missing);
        note_missing(calls, n, missing);
        if (rc == 0 && json_array_size(missing) == n) {
            mr_error_set(err, "miroir_shard_unavailable", "No shard of index `%s` has a reachable ready replica.",
                         q->ix->uid);
            rc = -1;
        }
        if (rc) {
            free(slim);
            break;
        }
        if (two)
            mark_hits(calls, n);
        int short_answer = 0;
        out = gw_query_merge(q, calls, &short_answer);
        gw_scatter_clear(calls, n);
        free(slim);
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
    gw_scatter_clear(calls, n);
    free(calls);
    if (out && two && fetch_page(g, q, out, err) != 0) {
        json_decref(out);
        out = NULL;
    }
    if (out && json_array_size(missing)) /* a Miroir extension: what the answer lacks */
        json_object_set_new(out, "missingShards", json_incref(missing));
    json_decref(missing);
    return out;
}

json_t *gw_query_run(gw *g, gw_query *q, mr_error *err)
{
    return gw_query_run_partial(g, q, 0, err);
}

json_t *gw_query_run_partial(gw *g, gw_query *q, int partial, mr_error *err)
{
    mr_error e = {0};
    int two = two_phases(g, q);
    json_t *out = run(g, q, two, partial, &e);
    if (!out && two && e.status == 0) /* a hit moved between the phases */
        out = run(g, q, 0, partial, &e);
    if (!out)
        *err = e;
    return out;
}

void gw_query_clear(gw_query *q)
{
    mr_search_req_clear(&q->sreq);
    json_decref(q->shard_body);
    free(q->text);
    free(q->narrow_text);
    memset(q, 0, sizeof *q);
}

/* allowPartialResults, Miroir's own search parameter: taken out of the body (no node knows it).
 * Returns 0, 1, or -1 with err when it is no boolean. */
static int take_partial(json_t *body, mr_error *err)
{
    json_t *v = json_object_get(body, "allowPartialResults");
    if (!v)
        return 0;
    if (!json_is_boolean(v)) {
        mr_error_invalid(err, "invalid_search_allow_partial_results",
                         "Invalid value type at `.allowPartialResults`: expected a boolean, but found %s.",
                         json_is_string(v) ? "a string" : json_is_number(v) ? "a number" : "another type");
        return -1;
    }
    int partial = json_is_true(v);
    json_object_del(body, "allowPartialResults");
    return partial;
}

static void search(gw *g, const gw_request *req, json_t *body, gw_response *res)
{
    mr_error err = {0};
    gw_query q = {0};
    json_t *out = NULL;
    int partial = take_partial(body, &err);
    if (partial >= 0 && gw_apply_search_rules(req, req->ix->uid, body, &err) == 0 &&
        gw_query_prepare(&q, req->ix, body, &err) == 0) {
        if (req->ix->shard_count == 1) {
            /* one shard: its node's answer is the answer (paging, totals, facets, distinct and
             * the caps are the node's own, under the same settings); validation ran first */
            if (gw_pass_through(g, q.ix, 0, q.key, "/search", body, res, &err))
                gw_reply_error(res, &err);
            gw_query_clear(&q);
            return;
        }
        out = gw_query_run_partial(g, &q, partial, &err);
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

static const gw_get_param search_params[] = {
    {"q", GW_P_STRING},
    {"offset", GW_P_INT},
    {"limit", GW_P_INT},
    {"page", GW_P_INT},
    {"hitsPerPage", GW_P_INT},
    {"filter", GW_P_FILTER},
    {"facets", GW_P_LIST},
    {"attributesToRetrieve", GW_P_LIST},
    {"retrieveVectors", GW_P_BOOL},
    {"attributesToCrop", GW_P_LIST},
    {"cropLength", GW_P_INT},
    {"cropMarker", GW_P_STRING},
    {"attributesToHighlight", GW_P_LIST},
    {"highlightPreTag", GW_P_STRING},
    {"highlightPostTag", GW_P_STRING},
    {"showMatchesPosition", GW_P_BOOL},
    {"showRankingScore", GW_P_BOOL},
    {"showRankingScoreDetails", GW_P_BOOL},
    {"sort", GW_P_LIST},
    {"distinct", GW_P_STRING},
    {"matchingStrategy", GW_P_STRING},
    {"attributesToSearchOn", GW_P_LIST},
    {"rankingScoreThreshold", GW_P_FLOAT},
    {"locales", GW_P_LIST},
    {"allowPartialResults", GW_P_BOOL},
    {NULL, 0},
};

json_t *gw_params_body(const gw_request *req, const gw_get_param *params, const char *code_prefix, mr_error *err)
{
    json_t *body = json_object();
    for (const gw_get_param *p = params; p->name; p++) {
        const char *v = gw_arg(req, p->name);
        if (!v)
            continue;
        char *end = NULL;
        json_t *value = NULL;
        switch (p->kind) {
        case GW_P_STRING:
            value = json_string(v);
            break;
        case GW_P_FILTER: /* JSON when it reads as JSON (an array of conditions), else an expression */
            value = json_loads(v, JSON_DECODE_ANY, NULL);
            if (!value)
                value = json_string(v);
            break;
        case GW_P_LIST:
            value = gw_csv_list(v);
            break;
        case GW_P_BOOL:
            value = strcmp(v, "true") == 0 ? json_true() : strcmp(v, "false") == 0 ? json_false() : NULL;
            break;
        case GW_P_INT: {
            long long n = strtoll(v, &end, 10);
            value = *v && !*end && n >= 0 ? json_integer(n) : NULL;
            break;
        }
        case GW_P_FLOAT: {
            double d = strtod(v, &end);
            value = *v && !*end ? json_real(d) : NULL;
            break;
        }
        }
        if (!value) {
            /* <prefix><snake_case name>, as Meilisearch names them */
            char code[64];
            size_t k = (size_t)snprintf(code, sizeof code, "%s", code_prefix);
            for (const char *c = p->name; *c && k + 2 < sizeof code; c++) {
                if (*c >= 'A' && *c <= 'Z') {
                    code[k++] = '_';
                    code[k++] = (char)(*c - 'A' + 'a');
                } else {
                    code[k++] = *c;
                }
            }
            code[k] = '\0';
            mr_error_invalid(err, code, "Invalid value in parameter `%s`: could not parse `%.100s`%s", p->name, v,
                             p->kind == GW_P_INT    ? " as a positive integer"
                             : p->kind == GW_P_BOOL ? " as a boolean, expected either `true` or `false`"
                                                    : "");
            json_decref(body);
            return NULL;
        }
        json_object_set_new(body, p->name, value);
    }
    return body;
}

/* A GET search names its hybrid part in two parameters, and its vector as a list of numbers. */
static int hybrid_from_params(const gw_request *req, json_t *body, mr_error *err)
{
    const char *embedder = gw_arg(req, "hybridEmbedder"), *ratio = gw_arg(req, "hybridSemanticRatio");
    const char *vector = gw_arg(req, "vector");
    if (ratio && !embedder) {
        mr_error_invalid(err, "invalid_search_hybrid_query",
                         "`hybridEmbedder` is mandatory when `hybridSemanticRatio` is present");
        return -1;
    }
    if (vector && !embedder) {
        mr_error_invalid(err, "missing_search_hybrid", "`hybridEmbedder` is mandatory when `vector` is present");
        return -1;
    }
    if (!embedder)
        return 0;
    json_t *hybrid = json_pack("{s:s}", "embedder", embedder);
    json_object_set_new(body, "hybrid", hybrid);
    char *end = NULL;
    if (ratio) {
        double r = strtod(ratio, &end);
        if (!*ratio || *end || !(r >= 0.0 && r <= 1.0)) {
            mr_error_invalid(err, "invalid_search_semantic_ratio",
                             "Invalid value in parameter `hybridSemanticRatio`: the value of `semanticRatio` is "
                             "invalid, expected a float between `0.0` and `1.0`.");
            return -1;
        }
        json_object_set_new(hybrid, "semanticRatio", json_real(r));
    }
    if (vector) {
        json_t *numbers = json_array();
        json_object_set_new(body, "vector", numbers);
        for (const char *v = vector; *v; v = *end ? end + 1 : end) {
            double x = strtod(v, &end);
            if (end == v || (*end && *end != ',')) {
                mr_error_invalid(err, "invalid_search_vector",
                                 "Invalid value in parameter `vector`: could not parse `%.100s` as a float", v);
                return -1;
            }
            json_array_append_new(numbers, json_real(x));
        }
    }
    return 0;
}

void gw_route_search_get(gw *g, const gw_request *req, gw_response *res)
{
    mr_error err;
    json_t *body = gw_params_body(req, search_params, "invalid_search_", &err);
    if (!body || hybrid_from_params(req, body, &err))
        gw_reply_error(res, &err);
    else
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
    gw_shard_call *calls = mr_calloc(ix->shard_count, sizeof *calls);
    for (uint32_t s = 0; s < ix->shard_count; s++) {
        calls[s] = (gw_shard_call){.ix = ix, .shard = s, .key = key, .method = "POST", .body = text};
        gw_shard_path(calls[s].path, sizeof calls[s].path, ix, s, "/facet-search");
    }
    if (gw_scatter(g, calls, ix->shard_count, &err, NULL) == 0) {
        json_t **answers = mr_calloc(ix->shard_count, sizeof *answers);
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
