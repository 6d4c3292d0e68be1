/* gw_similar.c: documents similar to one (/indexes/{uid}/similar), over the shards.
 *
 * A node ranks its documents by their vector's closeness to the given document's, leaving that
 * one out. The document lives on one shard (its home); the others have never seen it. So the
 * gateway reads its vector from the home shard, asks the home shard the query as it came (the
 * node leaves the document out there), asks every other shard the semantic search of that
 * vector (same filter, scores, window), and merges by score: a similar query's score is the
 * vector search's, 1 - distance, shifted by the embedder's distribution. Whatever stops that (a
 * query the merge can't read, no such document, no vector for the embedder) goes to the home
 * shard's node whole, which answers it in its own words. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "alloc.h"
#include "gw.h"
#include "hrw.h"
#include "merge.h"

static const gw_get_param similar_params[] = {
    {"id", GW_P_STRING},
    {"offset", GW_P_INT},
    {"limit", GW_P_INT},
    {"attributesToRetrieve", GW_P_LIST},
    {"retrieveVectors", GW_P_BOOL},
    {"filter", GW_P_FILTER},
    {"showRankingScore", GW_P_BOOL},
    {"showRankingScoreDetails", GW_P_BOOL},
    {"rankingScoreThreshold", GW_P_FLOAT},
    {"embedder", GW_P_STRING},
    {NULL, 0},
};

/* The document id as text (integers in decimal, as the shard function reads them), or 0 if the
 * body's id is no document id a node would look up. */
static int id_text(const json_t *body, char *out, size_t cap)
{
    json_t *id = json_object_get(body, "id");
    if (json_is_string(id))
        return (size_t)snprintf(out, cap, "%s", json_string_value(id)) < cap;
    if (json_is_integer(id))
        return snprintf(out, cap, "%" JSON_INTEGER_FORMAT, json_integer_value(id)) > 0;
    return 0;
}

/* The home shard answers the query as the client sent it. */
static void ask_home(gw *g, const mr_index *ix, uint32_t home, const json_t *body, gw_response *res)
{
    mr_error err;
    if (gw_pass_through(g, ix, home, 0, "/similar", body, res, &err))
        gw_reply_error(res, &err);
}

/* The document's first vector for the embedder (new reference), read on its home shard; NULL if
 * it has none, or none could be read. A node stores one or several per document and embedder. */
static json_t *vector_of(gw *g, const mr_index *ix, uint32_t home, const char *id, const char *embedder)
{
    char *eid = curl_easy_escape(NULL, id, 0);
    char suffix[1200];
    snprintf(suffix, sizeof suffix, "/documents/%s?retrieveVectors=true", eid);
    curl_free(eid);
    gw_shard_call call = {.ix = ix, .shard = home, .method = "GET"};
    gw_shard_path(call.path, sizeof call.path, ix, home, suffix);
    mr_error err;
    json_t *vector = NULL;
    if (gw_scatter(g, &call, 1, &err, NULL) == 0) {
        json_t *v = json_object_get(json_object_get(json_object_get(call.answer, "_vectors"), embedder), "embeddings");
        if (json_is_array(json_array_get(v, 0)))
            v = json_array_get(v, 0);
        if (json_array_size(v) && json_is_number(json_array_get(v, 0)))
            vector = json_incref(v);
    }
    gw_scatter_clear(&call, 1);
    return vector;
}

static void similar(gw *g, const gw_request *req, json_t *body, gw_response *res)
{
    mr_error err;
    const mr_index *ix = req->ix;
    char id[512];
    const char *embedder = json_string_value(json_object_get(body, "embedder"));
    if (gw_apply_search_rules(req, ix->uid, body, &err)) {
        gw_reply_error(res, &err);
        return;
    }
    if (!id_text(body, id, sizeof id) || !embedder || ix->shard_count == 1) {
        ask_home(g, ix, 0, body, res); /* the node's own refusal, or its whole answer */
        return;
    }
    uint32_t home = mr_shard_of(id, strlen(id), ix->shard_count);
    mr_search_req sreq;
    json_t *vector = NULL;
    if (json_object_get(body, "distinct") || json_object_get(body, "hybrid") || json_object_get(body, "vector") ||
        mr_search_req_init(&sreq, body, NULL, &err)) {
        ask_home(g, ix, home, body, res); /* nothing a similar query takes: the node says so */
        return;
    }
    if (!(vector = vector_of(g, ix, home, id, embedder))) {
        ask_home(g, ix, home, body, res);
        mr_search_req_clear(&sreq);
        return;
    }
    json_t *home_body = mr_search_shard_body(&sreq, ix->max_total_hits);
    json_t *other_body = json_deep_copy(home_body);
    json_object_del(other_body, "id");
    json_object_del(other_body, "embedder");
    json_object_set(other_body, "vector", vector);
    json_object_set_new(other_body, "hybrid", json_pack("{s:s, s:f}", "embedder", embedder, "semanticRatio", 1.0));
    char *home_text = json_dumps(home_body, JSON_COMPACT), *other_text = json_dumps(other_body, JSON_COMPACT);
    uint64_t key = mr_search_affinity(home_body);
    gw_shard_call *calls = mr_calloc(ix->shard_count, sizeof *calls);
    json_t **answers = mr_calloc(ix->shard_count, sizeof *answers);
    /* the home shard first: its refusal, if any, is the one told, in a similar query's words */
    gw_search_call(&calls[0], ix, home, key, home_text, "");
    gw_shard_path(calls[0].path, sizeof calls[0].path, ix, home, "/similar");
    for (uint32_t s = 0, k = 1; s < ix->shard_count; s++)
        if (s != home)
            gw_search_call(&calls[k++], ix, s, key, other_text, "");
    if (gw_scatter(g, calls, ix->shard_count, &err, NULL) == 0) {
        for (uint32_t s = 0; s < ix->shard_count; s++)
            answers[s] = calls[s].answer;
        mr_merge_limits limits = {ix->max_total_hits, ix->max_values_per_facet};
        json_t *merged = mr_search_merge(&sreq, answers, ix->shard_count, &limits, NULL);
        /* a node's similar answer: hits, the id as text, the engine's time, the paging */
        json_t *out = json_pack("{s:O, s:s}", "hits", json_object_get(merged, "hits"), "id", id);
        static const char *const kept[] = {"processingTimeMs", "limit", "offset", "estimatedTotalHits"};
        for (size_t k = 0; k < sizeof kept / sizeof *kept; k++)
            json_object_set(out, kept[k], json_object_get(merged, kept[k]));
        json_decref(merged);
        gw_reply(res, 200, out);
    } else {
        gw_reply_error(res, &err);
    }
    gw_scatter_clear(calls, ix->shard_count);
    free(calls);
    free(answers);
    free(home_text);
    free(other_text);
    json_decref(home_body);
    json_decref(other_body);
    json_decref(vector);
    mr_search_req_clear(&sreq);
}

void gw_route_similar_post(gw *g, const gw_request *req, gw_response *res)
{
    mr_error err;
    json_t *body = gw_body_object(req, &err);
    if (!body) {
        gw_reply_error(res, &err);
        return;
    }
    similar(g, req, body, res);
    json_decref(body);
}

void gw_route_similar_get(gw *g, const gw_request *req, gw_response *res)
{
    mr_error err;
    json_t *body = gw_params_body(req, similar_params, "invalid_similar_", &err);
    if (!body) {
        gw_reply_error(res, &err);
        return;
    }
    similar(g, req, body, res);
    json_decref(body);
}
