/* gw_search.c: scatter a search to one replica per shard, fail over, gather, merge. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gw.h"
#include "merge.h"
#include "util.h"

/* One shard's part of a scatter: its replicas in the order to try, and the request in flight. */
struct fragment {
    uint32_t shard;
    const char *order[MR_MAX_REPLICAS];
    size_t replicas, tried;
    mr_http_req http;
    json_t *answer; /* owned */
    mr_error error;
};

static void fragment_send_next(gw *g, const mr_index *ix, struct fragment *f, const char *body)
{
    const char *node = f->order[f->tried++];
    char shard_index[300];
    mr_shard_index_name(shard_index, sizeof shard_index, ix->uid, f->shard);
    f->http.method = "POST";
    snprintf(f->http.url, sizeof f->http.url, "%s/indexes/%s/search", gw_node(g, node)->url, shard_index);
    f->http.body = body;
    f->http.body_len = strlen(body);
}

/* Runs the scatter until every shard has an answer or has run out of replicas. */
static void scatter(gw *g, const mr_index *ix, struct fragment *frags, const char *body)
{
    mr_http_req *batch = calloc(ix->shard_count, sizeof *batch);
    struct fragment **owners = calloc(ix->shard_count, sizeof *owners);
    for (;;) {
        size_t n = 0;
        for (uint32_t s = 0; s < ix->shard_count; s++) {
            struct fragment *f = &frags[s];
            if (f->answer || f->error.status || f->tried == f->replicas)
                continue;
            fragment_send_next(g, ix, f, body);
            batch[n] = f->http;
            owners[n++] = f;
        }
        if (n == 0)
            break;
        mr_http_run(g->http, batch, n);
        for (size_t i = 0; i < n; i++) {
            struct fragment *f = owners[i];
            mr_http_req *r = &batch[i];
            const char *node = f->order[f->tried - 1];
            json_t *body_json = mr_http_json(r);
            if (r->status == 200 && json_is_object(body_json)) {
                f->answer = body_json;
                gw_node_report(g, node, 1);
            } else if (r->status >= 400 && r->status < 500 && body_json &&
                       mr_error_from_json(&f->error, (int)r->status, body_json) == 0) {
                /* the node judged the query itself: every replica would say the same */
                gw_node_report(g, node, 1);
                json_decref(body_json);
            } else {
                mr_log("warn", "gateway", "search on %s shard %u failed on node %s: %ld %s", ix->uid, f->shard, node,
                       r->status, r->status ? "" : r->curl_error);
                gw_node_report(g, node, 0);
                json_decref(body_json);
            }
            mr_http_req_reset(r);
        }
    }
    free(batch);
    free(owners);
}

static void search(gw *g, const gw_request *req, json_t *body, gw_response *res)
{
    int64_t started = mr_now_ms();
    mr_error err = {0};
    mr_search_req sreq;
    if (mr_search_req_init(&sreq, body, &err)) {
        gw_reply_error(res, &err);
        return;
    }
    mr_topology *topo = mr_topology_acquire(mr_meta_topology(g->meta));
    const mr_index *ix = gw_find_index(topo, req->captures[0], &err);
    if (!ix) {
        gw_reply_error(res, &err);
        goto out;
    }
    json_t *shard_body = mr_search_shard_body(&sreq, ix->max_total_hits);
    char *text = json_dumps(shard_body, JSON_COMPACT);
    uint64_t affinity = mr_search_affinity(shard_body);
    struct fragment *frags = calloc(ix->shard_count, sizeof *frags);
    for (uint32_t s = 0; s < ix->shard_count; s++) {
        frags[s].shard = s;
        frags[s].replicas = gw_replica_order(g, ix, s, affinity, frags[s].order);
    }
    scatter(g, ix, frags, text);
    json_t **answers = calloc(ix->shard_count, sizeof *answers);
    const mr_error *first_error = NULL;
    uint32_t missing = 0;
    for (uint32_t s = 0; s < ix->shard_count; s++) {
        answers[s] = frags[s].answer;
        if (frags[s].error.status && !first_error)
            first_error = &frags[s].error;
        if (!frags[s].answer && !frags[s].error.status)
            missing++;
    }
    if (first_error) {
        gw_reply_error(res, first_error);
    } else if (missing) {
        /* Documented choice: no partial answers. A result that silently lacks a shard would look
         * complete to the client. */
        mr_error_set(&err, "miroir_shard_unavailable",
                     "%u of %u shards of index `%s` have no reachable ready replica; the search was not answered.",
                     missing, ix->shard_count, ix->uid);
        gw_reply_error(res, &err);
    } else {
        mr_merge_limits limits = {ix->max_total_hits, ix->max_values_per_facet};
        gw_reply(res, 200, mr_search_merge(&sreq, answers, ix->shard_count, &limits, (long)(mr_now_ms() - started)));
    }
    for (uint32_t s = 0; s < ix->shard_count; s++)
        json_decref(frags[s].answer);
    free(answers);
    free(frags);
    free(text);
    json_decref(shard_body);
out:
    mr_topology_release(mr_meta_topology(g->meta), topo);
    mr_search_req_clear(&sreq);
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

static json_t *list_of(const char *s)
{
    json_t *arr = json_array();
    char *copy = strdup(s), *save = NULL;
    for (char *t = strtok_r(copy, ",", &save); t; t = strtok_r(NULL, ",", &save))
        json_array_append_new(arr, json_string(t));
    free(copy);
    return arr;
}

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
            value = list_of(v);
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
