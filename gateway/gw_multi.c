/* gw_multi.c: POST /multi-search: every query of every index in one fan-out round, answered one
 * by one (plain) or merged into one list by weighted ranking score (federation). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "answer.h"
#include "gw.h"
#include "seq.h"
#include "util.h"

struct multi {
    size_t count;
    gw_query *queries;
    json_t **bodies;   /* each query's body without indexUid and federationOptions */
    double *weights;
    size_t *first_call; /* index of each query's first call */
    gw_shard_call *calls;
    size_t call_count;
};

static void multi_clear(struct multi *m)
{
    for (size_t i = 0; i < m->count; i++) {
        gw_query_clear(&m->queries[i]);
        json_decref(m->bodies[i]);
    }
    if (m->calls)
        gw_scatter_clear(m->calls, m->call_count);
    free(m->queries);
    free(m->bodies);
    free(m->weights);
    free(m->first_call);
    free(m->calls);
}

/* Meilisearch prefixes errors of one query with its position, and answers 400 for an unknown
 * index there. */
static void in_query(mr_error *err, size_t i)
{
    if (err->status == 404)
        err->status = 400;
    char message[sizeof err->message];
    snprintf(message, sizeof message, "Inside `.queries[%zu]`: %.470s", i, err->message);
    snprintf(err->message, sizeof err->message, "%s", message);
}

/* window: for a federated search, how many hits each query brings to the merge (offset + limit). */
static int multi_prepare(gw *g, struct multi *m, const gw_request *req, mr_topology *topo, json_t *queries,
                         int federated, size_t window, const json_t *facets_by_index, mr_error *err)
{
    m->count = json_array_size(queries);
    m->queries = calloc(m->count ? m->count : 1, sizeof *m->queries);
    m->bodies = calloc(m->count ? m->count : 1, sizeof *m->bodies);
    m->weights = calloc(m->count ? m->count : 1, sizeof *m->weights);
    m->first_call = calloc(m->count ? m->count : 1, sizeof *m->first_call);
    for (size_t i = 0; i < m->count; i++) {
        json_t *q = json_array_get(queries, i);
        const char *uid = json_string_value(json_object_get(q, "indexUid"));
        if (!json_is_object(q) || !uid) {
            mr_error_set(err, "missing_index_uid", "Missing field `indexUid`");
            in_query(err, i);
            return -1;
        }
        const mr_index *ix = gw_may_use(req, uid, err) ? NULL : gw_find_index(topo, uid, err);
        if (!ix) {
            in_query(err, i);
            return -1;
        }
        m->bodies[i] = json_deep_copy(q);
        json_object_del(m->bodies[i], "indexUid");
        if (gw_apply_search_rules(req, uid, m->bodies[i], err)) {
            in_query(err, i);
            return -1;
        }
        json_t *opts = json_object_get(q, "federationOptions");
        m->weights[i] = 1.0;
        if (opts) {
            if (!federated) {
                mr_error_invalid(err, "invalid_multi_search_federation_options",
                                 "Using `federationOptions` is not allowed in a non-federated search.");
                in_query(err, i);
                return -1;
            }
            json_t *w = json_object_get(opts, "weight");
            if (w && (!json_is_number(w) || json_number_value(w) < 0)) {
                mr_error_invalid(err, "invalid_multi_search_weight", "Invalid value at `.federationOptions.weight`: "
                                                                     "expected a positive number");
                in_query(err, i);
                return -1;
            }
            if (w)
                m->weights[i] = json_number_value(w);
            json_t *remote = json_object_get(opts, "remote");
            if (remote && !json_is_null(remote)) { /* the cluster is the gateway's network */
                mr_error_set(err, "miroir_feature_unavailable",
                             "Inside `.queries[%zu]`: `federationOptions.remote` is not available through Miroir's "
                             "gateway: every shard of the cluster is searched already.", i);
                return -1;
            }
            json_object_del(m->bodies[i], "federationOptions");
        }
        if (federated) {
            static const char *const paging[] = {"offset", "limit", "page", "hitsPerPage"};
            for (size_t k = 0; k < 4; k++)
                if (json_object_get(m->bodies[i], paging[k])) {
                    mr_error_invalid(err, "invalid_multi_search_query_pagination",
                                     "Inside `.queries[%zu]`: Using pagination options is not allowed in federated "
                                     "queries. Hint: remove `%s` from query #%zu or remove `federation` from the "
                                     "request",
                                     i, paging[k], i);
                    return -1;
                }
            json_object_set_new(m->bodies[i], "limit", json_integer((json_int_t)window));
            json_t *facets = json_object_get(facets_by_index, uid);
            if (json_is_array(facets))
                json_object_set(m->bodies[i], "facets", facets);
        }
        if (gw_query_prepare(&m->queries[i], ix, m->bodies[i], err)) {
            in_query(err, i);
            return -1;
        }
        m->first_call[i] = m->call_count;
        m->call_count += ix->shard_count;
    }
    m->calls = calloc(m->call_count ? m->call_count : 1, sizeof *m->calls);
    for (size_t i = 0; i < m->count; i++) {
        gw_query_calls(&m->queries[i], m->calls + m->first_call[i]);
        if (!federated) /* a federated page is cut from all queries' hits at once: not narrowed */
            gw_query_narrow(g, &m->queries[i], m->calls + m->first_call[i], 0);
    }
    return 0;
}

struct fed_hit {
    json_t *hit;
    double weighted;
    size_t query, shard, pos;
};

static int fed_order(const void *a, const void *b)
{
    const struct fed_hit *x = a, *y = b;
    if (x->weighted != y->weighted)
        return x->weighted > y->weighted ? -1 : 1;
    if (x->query != y->query)
        return x->query < y->query ? -1 : 1;
    int written = mr_seq_compare(x->hit, y->hit);
    if (written)
        return written;
    if (x->shard != y->shard)
        return x->shard < y->shard ? -1 : 1;
    return x->pos < y->pos ? -1 : x->pos > y->pos;
}

/* Every query's shards were asked at once: the slowest answer of all is on the critical path. */
static json_int_t engine_ms(const struct multi *m)
{
    json_int_t slowest = 0;
    for (size_t c = 0; c < m->call_count; c++) {
        json_t *answer = m->calls[c].answer;
        json_int_t ms = mr_engine_ms(&answer, 1);
        if (ms > slowest)
            slowest = ms;
    }
    return slowest;
}

static json_t *federated_answer(struct multi *m, size_t offset, size_t limit)
{
    size_t total_hits = 0;
    json_int_t estimated = 0;
    for (size_t c = 0; c < m->call_count; c++)
        total_hits += json_array_size(json_object_get(m->calls[c].answer, "hits"));
    struct fed_hit *all = calloc(total_hits ? total_hits : 1, sizeof *all);
    size_t k = 0;
    for (size_t i = 0; i < m->count; i++) {
        const mr_index *ix = m->queries[i].ix;
        json_int_t sum = 0;
        for (uint32_t s = 0; s < ix->shard_count; s++) {
            json_t *answer = m->calls[m->first_call[i] + s].answer;
            sum += json_integer_value(json_object_get(answer, "estimatedTotalHits"));
            json_t *shard_hits = json_object_get(answer, "hits");
            for (size_t p = 0; p < json_array_size(shard_hits); p++) {
                json_t *hit = mr_hits_at(shard_hits, p);
                static const char *const compared[] = {"_rankingScore", MR_SEQ_FIELD};
                mr_hit_read(hit, compared, 2); /* now: the sort's comparisons find them */
                double score = json_number_value(json_object_get(hit, "_rankingScore"));
                all[k++] = (struct fed_hit){hit, score * m->weights[i], i, s, p};
            }
        }
        estimated += sum > ix->max_total_hits ? ix->max_total_hits : sum;
    }
    qsort(all, k, sizeof *all, fed_order);
    /* A document matched by several queries appears once, where it ranks best; Meilisearch
     * also counts it once. */
    json_t *seen = json_object();
    size_t kept = 0;
    for (size_t h = 0; h < k; h++) {
        const mr_index *ix = m->queries[all[h].query].ix;
        json_t *id = mr_hit_get(all[h].hit, ix->primary_key);
        char *text = id ? json_dumps(id, JSON_ENCODE_ANY | JSON_COMPACT) : NULL;
        char key[700];
        snprintf(key, sizeof key, "%s/%s", ix->uid, text ? text : "");
        free(text);
        if (id && json_object_get(seen, key)) {
            estimated--;
            continue;
        }
        if (id)
            json_object_set_new(seen, key, json_true());
        all[kept++] = all[h];
    }
    json_decref(seen);
    k = kept;
    json_t *hits = json_array();
    /* as a node counts them: the page's semantic hits, when some query is semantic or hybrid */
    int semantic = 0;
    json_int_t semantic_hits = 0;
    for (size_t i = 0; i < m->count; i++)
        semantic |= m->queries[i].sreq.semantic;
    for (size_t h = offset; h < k && h < offset + limit; h++) {
        const struct fed_hit *f = &all[h];
        semantic_hits += mr_search_hit_semantic(&m->queries[f->query].sreq, f->hit);
        json_object_set_new(f->hit, "_federation",
                            json_pack("{s:s, s:I, s:f}", "indexUid", m->queries[f->query].ix->uid, "queriesPosition",
                                      (json_int_t)f->query, "weightedRankingScore", f->weighted));
        mr_search_hit_finish(&m->queries[f->query].sreq, f->hit);
        json_array_append(hits, f->hit);
    }
    free(all);
    json_t *out = json_pack("{s:o, s:I, s:I, s:I, s:I}", "hits", hits, "processingTimeMs", engine_ms(m), "limit",
                            (json_int_t)limit, "offset", (json_int_t)offset, "estimatedTotalHits", estimated);
    if (semantic)
        json_object_set_new(out, "semanticHitCount", json_integer(semantic_hits));
    return out;
}

/* facetsByIndex: per index, the facets of its queries added up (a document two queries of one
 * index both match counts twice; a node counts it once). mergeFacets: the same over all. */
static void add_facets(struct multi *m, json_t *answer, const json_t *facets_by_index, const json_t *merge)
{
    json_t *by_index = json_object();
    json_t **parts = calloc(m->call_count ? m->call_count : 1, sizeof *parts);
    json_t **per_index = calloc(json_object_size(facets_by_index) + 1, sizeof *per_index);
    size_t nindex = 0;
    const char *uid;
    json_t *facets;
    json_object_foreach((json_t *)facets_by_index, uid, facets) {
        size_t n = 0;
        long max_values = 100;
        for (size_t i = 0; i < m->count; i++) {
            if (strcmp(m->queries[i].ix->uid, uid) != 0)
                continue;
            max_values = m->queries[i].ix->max_values_per_facet;
            for (uint32_t s = 0; s < m->queries[i].ix->shard_count; s++)
                parts[n++] = m->calls[m->first_call[i] + s].answer;
        }
        json_t *dist = mr_merge_facet_distribution(parts, n, (size_t)max_values);
        json_t *stats = mr_merge_facet_stats(parts, n);
        json_t *entry = json_pack("{s:o, s:o}", "distribution", dist ? dist : json_object(), "stats",
                                  stats ? stats : json_object());
        json_object_set_new(by_index, uid, entry);
        /* shaped like an answer, for mergeFacets below */
        per_index[nindex++] = json_pack("{s:O, s:O}", "facetDistribution", json_object_get(entry, "distribution"),
                                        "facetStats", json_object_get(entry, "stats"));
    }
    if (merge && !json_is_null(merge)) {
        json_t *mv = json_object_get(merge, "maxValuesPerFacet");
        size_t max_values = json_is_integer(mv) ? (size_t)json_integer_value(mv) : 100;
        json_t *dist = mr_merge_facet_distribution(per_index, nindex, max_values);
        json_t *stats = mr_merge_facet_stats(per_index, nindex);
        json_object_set_new(answer, "facetDistribution", dist ? dist : json_object());
        json_object_set_new(answer, "facetStats", stats ? stats : json_object());
        json_decref(by_index);
    } else {
        json_object_set_new(answer, "facetsByIndex", by_index);
    }
    for (size_t i = 0; i < nindex; i++)
        json_decref(per_index[i]);
    free(per_index);
    free(parts);
}

void gw_route_multi_search(gw *g, const gw_request *req, gw_response *res)
{
    mr_error err;
    json_t *body = gw_body_object(req, &err);
    if (!body) {
        gw_reply_error(res, &err);
        return;
    }
    json_t *queries = json_object_get(body, "queries");
    json_t *federation = json_object_get(body, "federation");
    if (!json_is_array(queries)) {
        mr_error_set(&err, "bad_request", "Missing field `queries`");
        gw_reply_error(res, &err);
        json_decref(body);
        return;
    }
    size_t fed_offset = 0, fed_limit = 20;
    if (federation && !json_is_null(federation)) {
        json_t *o = json_object_get(federation, "offset"), *l = json_object_get(federation, "limit");
        json_t *fbi = json_object_get(federation, "facetsByIndex");
        if ((o && !json_is_integer(o)) || (l && !json_is_integer(l)) || json_integer_value(o) < 0 ||
            json_integer_value(l) < 0 || (fbi && !json_is_object(fbi) && !json_is_null(fbi))) {
            mr_error_invalid(&err, "invalid_multi_search_federation_options",
                             "`federation.offset` and `federation.limit` must be positive integers, and "
                             "`federation.facetsByIndex` an object.");
            gw_reply_error(res, &err);
            json_decref(body);
            return;
        }
        if (o)
            fed_offset = (size_t)json_integer_value(o);
        if (l)
            fed_limit = (size_t)json_integer_value(l);
    }
    int federated = federation && !json_is_null(federation);
    struct multi m = {0};
    mr_topology *topo = mr_topology_acquire(mr_meta_topology(g->meta));
    size_t failed = 0;
    json_t *facets_by_index = json_object_get(federation, "facetsByIndex");
    const char *fuid;
    json_t *fval;
    json_object_foreach(facets_by_index, fuid, fval) {
        if (!gw_find_index(topo, fuid, &err)) {
            err.status = 400;
            gw_reply_error(res, &err);
            goto done;
        }
    }
    if (multi_prepare(g, &m, req, topo, queries, federated, fed_offset + fed_limit, facets_by_index, &err)) {
        gw_reply_error(res, &err);
    } else {
        if (gw_scatter(g, m.calls, m.call_count, &err, &failed)) {
            for (size_t i = 0; i < m.count; i++)
                if (failed >= m.first_call[i] && failed < m.first_call[i] + m.queries[i].ix->shard_count)
                    in_query(&err, i);
            gw_reply_error(res, &err);
        } else if (federated) {
            json_t *answer = federated_answer(&m, fed_offset, fed_limit);
            if (json_object_size(facets_by_index))
                add_facets(&m, answer, facets_by_index, json_object_get(federation, "mergeFacets"));
            gw_reply(res, 200, answer);
        } else {
            json_t *results = json_array();
            for (size_t i = 0; i < m.count; i++) {
                json_t *one = json_pack("{s:s}", "indexUid", m.queries[i].ix->uid);
                int short_answer = 0;
                if (gw_query_widen(g, &m.queries[i], m.calls + m.first_call[i], m.queries[i].text, 0, &err)) {
                    in_query(&err, i);
                    gw_reply_error(res, &err);
                    json_decref(results);
                    json_decref(one);
                    goto done;
                }
                json_t *merged = gw_query_merge(&m.queries[i], m.calls + m.first_call[i], &short_answer);
                if (short_answer) { /* distinct needs more from the shards: this query alone, again */
                    json_decref(merged);
                    merged = gw_query_run(g, &m.queries[i], &err);
                    if (!merged) {
                        in_query(&err, i);
                        gw_reply_error(res, &err);
                        json_decref(results);
                        json_decref(one);
                        goto done;
                    }
                }
                json_object_update(one, merged);
                json_decref(merged);
                json_array_append_new(results, one);
            }
            gw_reply(res, 200, json_pack("{s:o}", "results", results));
        }
    }
done:
    multi_clear(&m);
    mr_topology_release(mr_meta_topology(g->meta), topo);
    json_decref(body);
}
