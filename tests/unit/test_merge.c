/* test_merge.c: the shard request and the merge of shard answers. */
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "merge.h"
#include "seq.h"

static json_t *answer(const char *hits_json, int estimated)
{
    json_t *a = json_pack("{s:o, s:i}", "hits", json_loads(hits_json, 0, NULL), "estimatedTotalHits", estimated);
    return a;
}

static void shard_body_asks_for_the_window(void **state)
{
    (void)state;
    mr_search_req req;
    mr_error err;
    json_t *body = json_pack("{s:s, s:i, s:i}", "q", "x", "offset", 10, "limit", 5);
    assert_int_equal(mr_search_req_init(&req, body, NULL, &err), 0);
    json_t *shard = mr_search_shard_body(&req, 1000);
    assert_int_equal(json_integer_value(json_object_get(shard, "offset")), 0);
    assert_int_equal(json_integer_value(json_object_get(shard, "limit")), 15);
    assert_true(json_is_true(json_object_get(shard, "showRankingScore")));
    json_decref(shard);
    shard = mr_search_shard_body(&req, 12); /* capped at maxTotalHits */
    assert_int_equal(json_integer_value(json_object_get(shard, "limit")), 12);
    /* paging doesn't change which replicas a query meets */
    json_t *other = json_pack("{s:s, s:i}", "q", "x", "offset", 500);
    mr_search_req req2;
    assert_int_equal(mr_search_req_init(&req2, other, NULL, &err), 0);
    json_t *shard2 = mr_search_shard_body(&req2, 1000);
    assert_true(mr_search_affinity(shard) == mr_search_affinity(shard2));
    json_object_set_new(shard2, "q", json_string("y"));
    assert_false(mr_search_affinity(shard) == mr_search_affinity(shard2));
    json_decref(shard);
    json_decref(shard2);
    mr_search_req_clear(&req);
    mr_search_req_clear(&req2);
    json_decref(body);
    json_decref(other);
}

static void bad_paging_is_rejected(void **state)
{
    (void)state;
    mr_search_req req;
    mr_error err;
    json_t *body = json_pack("{s:s}", "limit", "x");
    assert_int_equal(mr_search_req_init(&req, body, NULL, &err), -1);
    assert_string_equal(err.code, "invalid_search_limit");
    json_decref(body);
    body = json_pack("{s:i}", "page", -1); /* 0 is allowed: a page of nothing, as on one node */
    assert_int_equal(mr_search_req_init(&req, body, NULL, &err), -1);
    assert_string_equal(err.code, "invalid_search_page");
    json_decref(body);
    body = json_pack("{s:i}", "offset", -1);
    assert_int_equal(mr_search_req_init(&req, body, NULL, &err), -1);
    assert_string_equal(err.code, "invalid_search_offset");
    json_decref(body);
}

static void hits_merge_by_score_then_shard_then_position(void **state)
{
    (void)state;
    mr_search_req req;
    mr_error err;
    json_t *body = json_pack("{s:i, s:i}", "offset", 1, "limit", 4);
    mr_search_req_init(&req, body, NULL, &err);
    json_t *a[3] = {
        answer("[{\"id\":\"a1\",\"_rankingScore\":0.9},{\"id\":\"a2\",\"_rankingScore\":0.5}]", 700),
        answer("[{\"id\":\"b1\",\"_rankingScore\":0.95},{\"id\":\"b2\",\"_rankingScore\":0.5},{\"id\":\"b3\",\"_rankingScore\":0.1}]", 600),
        answer("[]", 0),
    };
    json_object_set_new(a[0], "processingTimeMs", json_integer(3));
    json_object_set_new(a[1], "processingTimeMs", json_integer(7));
    mr_merge_limits limits = {1000, 100};
    json_t *out = mr_search_merge(&req, a, 3, &limits, NULL);
    json_t *hits = json_object_get(out, "hits");
    /* the shards search at once: the slowest one's time is the engine's */
    assert_int_equal(json_integer_value(json_object_get(out, "processingTimeMs")), 7);
    /* order: b1 .95, a1 .9, a2 .5 (shard 0 before 1), b2 .5, b3 .1; offset 1 limit 4 */
    const char *want[] = {"a1", "a2", "b2", "b3"};
    assert_int_equal(json_array_size(hits), 4);
    for (size_t i = 0; i < 4; i++) {
        json_t *h = json_array_get(hits, i);
        assert_string_equal(json_string_value(json_object_get(h, "id")), want[i]);
        assert_null(json_object_get(h, "_rankingScore")); /* not asked for */
    }
    assert_int_equal(json_integer_value(json_object_get(out, "estimatedTotalHits")), 1000); /* 1300 capped */
    assert_int_equal(json_integer_value(json_object_get(out, "offset")), 1);
    assert_int_equal(json_integer_value(json_object_get(out, "limit")), 4);
    json_decref(out);
    for (int i = 0; i < 3; i++)
        json_decref(a[i]);
    mr_search_req_clear(&req);
    json_decref(body);
}

/* Tied hits come in write order across shards, as one node gives them; the field doesn't show. */
static void ties_merge_in_write_order(void **state)
{
    (void)state;
    mr_search_req req;
    mr_error err;
    json_t *body = json_pack("{s:[s]}", "attributesToRetrieve", "id");
    mr_search_req_init(&req, body, NULL, &err);
    json_t *shard = mr_search_shard_body(&req, 1000);
    json_t *asked = json_object_get(shard, "attributesToRetrieve");
    assert_int_equal(json_array_size(asked), 2);
    assert_string_equal(json_string_value(json_array_get(asked, 1)), MR_SEQ_FIELD);
    json_decref(shard);
    char s1[MR_SEQ_LEN + 1], s2[MR_SEQ_LEN + 1], s3[MR_SEQ_LEN + 1], s4[MR_SEQ_LEN + 1];
    mr_seq_encode(100, s1);
    mr_seq_encode(101, s2);
    mr_seq_encode(102, s3);
    mr_seq_encode(103, s4);
    json_t *a[2] = {json_pack("{s:[{s:s, s:f, s:s, s:{s:s}}, {s:s, s:f, s:s}], s:i}", "hits", "id", "x2",
                              "_rankingScore", 1.0, MR_SEQ_FIELD, s2, "_formatted", MR_SEQ_FIELD, s2, "id", "x4",
                              "_rankingScore", 1.0, MR_SEQ_FIELD, s4, "estimatedTotalHits", 2),
                    json_pack("{s:[{s:s, s:f, s:s}, {s:s, s:f, s:s}], s:i}", "hits", "id", "x1", "_rankingScore", 1.0,
                              MR_SEQ_FIELD, s1, "id", "x3", "_rankingScore", 1.0, MR_SEQ_FIELD, s3,
                              "estimatedTotalHits", 2)};
    mr_merge_limits limits = {1000, 100};
    json_t *out = mr_search_merge(&req, a, 2, &limits, NULL);
    json_t *hits = json_object_get(out, "hits");
    const char *want[] = {"x1", "x2", "x3", "x4"};
    assert_int_equal(json_array_size(hits), 4);
    for (size_t i = 0; i < 4; i++) {
        json_t *h = json_array_get(hits, i);
        assert_string_equal(json_string_value(json_object_get(h, "id")), want[i]);
        assert_null(json_object_get(h, MR_SEQ_FIELD));
        assert_null(json_object_get(json_object_get(h, "_formatted"), MR_SEQ_FIELD));
    }
    json_decref(out);
    for (int i = 0; i < 2; i++)
        json_decref(a[i]);
    mr_search_req_clear(&req);
    json_decref(body);
}

static void facets_add_up(void **state)
{
    (void)state;
    mr_search_req req;
    mr_error err;
    json_t *body = json_pack("{s:i, s:b}", "limit", 1, "showRankingScore", 1);
    mr_search_req_init(&req, body, NULL, &err);
    json_t *a = json_loads("{\"hits\":[{\"id\":1,\"_rankingScore\":1.0}],\"estimatedTotalHits\":3,"
                           "\"facetDistribution\":{\"registry\":{\"pypi\":2,\"npm\":1}},"
                           "\"facetStats\":{\"n\":{\"min\":2.0,\"max\":5.0}}}",
                           0, NULL);
    json_t *b = json_loads("{\"hits\":[],\"estimatedTotalHits\":4,"
                           "\"facetDistribution\":{\"registry\":{\"npm\":4},\"other\":{\"x\":1}},"
                           "\"facetStats\":{\"n\":{\"min\":1.0,\"max\":3.0}}}",
                           0, NULL);
    json_t *answers[2] = {a, b};
    mr_merge_limits limits = {1000, 100};
    json_t *out = mr_search_merge(&req, answers, 2, &limits, NULL);
    json_t *reg = json_object_get(json_object_get(out, "facetDistribution"), "registry");
    assert_int_equal(json_integer_value(json_object_get(reg, "npm")), 5);
    assert_int_equal(json_integer_value(json_object_get(reg, "pypi")), 2);
    assert_string_equal(json_object_iter_key(json_object_iter(reg)), "npm"); /* alphabetical */
    json_t *n = json_object_get(json_object_get(out, "facetStats"), "n");
    assert_true(json_real_value(json_object_get(n, "min")) == 1.0);
    assert_true(json_real_value(json_object_get(n, "max")) == 5.0);
    assert_int_equal(json_integer_value(json_object_get(out, "estimatedTotalHits")), 7);
    assert_non_null(json_object_get(json_array_get(json_object_get(out, "hits"), 0), "_rankingScore"));
    json_decref(out);
    /* maxValuesPerFacet cuts the merged values, first ones by name */
    limits.max_values_per_facet = 1;
    out = mr_search_merge(&req, answers, 2, &limits, NULL);
    reg = json_object_get(json_object_get(out, "facetDistribution"), "registry");
    assert_int_equal(json_object_size(reg), 1);
    assert_int_equal(json_integer_value(json_object_get(reg, "npm")), 5);
    json_decref(out);
    json_decref(a);
    json_decref(b);
    mr_search_req_clear(&req);
    json_decref(body);
}

static void page_mode_totals(void **state)
{
    (void)state;
    mr_search_req req;
    mr_error err;
    json_t *body = json_pack("{s:i, s:i}", "page", 2, "hitsPerPage", 2);
    mr_search_req_init(&req, body, NULL, &err);
    json_t *shard = mr_search_shard_body(&req, 1000);
    assert_int_equal(json_integer_value(json_object_get(shard, "hitsPerPage")), 4);
    assert_int_equal(json_integer_value(json_object_get(shard, "page")), 1);
    json_decref(shard);
    json_t *a = json_loads("{\"hits\":[{\"id\":1,\"_rankingScore\":0.9},{\"id\":2,\"_rankingScore\":0.8},"
                           "{\"id\":3,\"_rankingScore\":0.7}],\"totalHits\":3}", 0, NULL);
    json_t *b = json_loads("{\"hits\":[{\"id\":4,\"_rankingScore\":0.85}],\"totalHits\":1}", 0, NULL);
    json_t *answers[2] = {a, b};
    mr_merge_limits limits = {1000, 100};
    json_t *out = mr_search_merge(&req, answers, 2, &limits, NULL);
    json_t *hits = json_object_get(out, "hits");
    assert_int_equal(json_array_size(hits), 2);
    assert_int_equal(json_integer_value(json_object_get(json_array_get(hits, 0), "id")), 2);
    assert_int_equal(json_integer_value(json_object_get(json_array_get(hits, 1), "id")), 3);
    assert_int_equal(json_integer_value(json_object_get(out, "totalHits")), 4);
    assert_int_equal(json_integer_value(json_object_get(out, "totalPages")), 2);
    json_decref(out);
    json_decref(a);
    json_decref(b);
    mr_search_req_clear(&req);
    json_decref(body);
}

static void sort_merges_rule_by_rule(void **state)
{
    (void)state;
    mr_search_req req;
    mr_error err;
    json_t *body = json_loads("{\"q\":\"\",\"sort\":[\"v:asc\"],\"limit\":10}", 0, NULL);
    assert_int_equal(mr_search_req_init(&req, body, NULL, &err), 0);
    json_t *shard = mr_search_shard_body(&req, 1000);
    assert_true(json_is_true(json_object_get(shard, "showRankingScoreDetails")));
    json_decref(shard);
#define HIT(id, v) "{\"id\":" #id ",\"_rankingScore\":1.0,\"_rankingScoreDetails\":{\"v:asc\":{\"order\":0,\"value\":" v "}}}"
    json_t *a = answer("[" HIT(1, "1.0") "," HIT(2, "\"a\"") "," HIT(3, "null") "]", 3);
    json_t *b = answer("[" HIT(4, "0.5") "," HIT(5, "7") "," HIT(6, "\"B\"") "," HIT(7, "null") "]", 4);
#undef HIT
    json_t *answers[2] = {a, b};
    mr_merge_limits limits = {1000, 100};
    json_t *out = mr_search_merge(&req, answers, 2, &limits, NULL);
    json_t *hits = json_object_get(out, "hits");
    /* numbers ascending, then strings regardless of case ("a" < "B"), then missing values; ties
     * by shard */
    const int want[] = {4, 1, 5, 2, 6, 3, 7};
    assert_int_equal(json_array_size(hits), 7);
    for (size_t i = 0; i < 7; i++) {
        json_t *h = json_array_get(hits, i);
        assert_int_equal(json_integer_value(json_object_get(h, "id")), want[i]);
        assert_null(json_object_get(h, "_rankingScoreDetails"));
    }
    json_decref(out);
    json_decref(a);
    json_decref(b);
    mr_search_req_clear(&req);
    json_decref(body);
}

static void distinct_across_shards(void **state)
{
    (void)state;
    mr_search_req req;
    mr_error err;
    json_t *body = json_loads("{\"limit\":3,\"attributesToRetrieve\":[\"id\"]}", 0, NULL);
    assert_int_equal(mr_search_req_init(&req, body, "family", &err), 0);
    json_t *shard = mr_search_shard_body(&req, 1000);
    /* the distinct attribute and the write order come back for the merge */
    assert_int_equal(json_array_size(json_object_get(shard, "attributesToRetrieve")), 3);
    json_decref(shard);
    json_t *a = answer("[{\"id\":1,\"family\":\"x\",\"_rankingScore\":0.9},{\"id\":2,\"family\":\"y\",\"_rankingScore\":0.5},"
                       "{\"id\":3,\"_rankingScore\":0.4}]", 3);
    json_t *b = answer("[{\"id\":4,\"family\":\"x\",\"_rankingScore\":0.8},{\"id\":5,\"family\":\"z\",\"_rankingScore\":0.7},"
                       "{\"id\":6,\"family\":\"y\",\"_rankingScore\":0.6}]", 3);
    json_t *answers[2] = {a, b};
    mr_merge_limits limits = {1000, 100};
    int short_answer = -1;
    json_t *out = mr_search_merge(&req, answers, 2, &limits, &short_answer);
    json_t *hits = json_object_get(out, "hits");
    /* 1 (x), 4 is x again, 5 (z), 6 (y) */
    const int want[] = {1, 5, 6};
    assert_int_equal(json_array_size(hits), 3);
    for (size_t i = 0; i < 3; i++) {
        assert_int_equal(json_integer_value(json_object_get(json_array_get(hits, i), "id")), want[i]);
        assert_null(json_object_get(json_array_get(hits, i), "family")); /* added for the merge, removed */
    }
    assert_int_equal(short_answer, 0);
    json_decref(out);
    json_decref(a);
    json_decref(b);
    mr_search_req_clear(&req);
    json_decref(body);
}

static void narrowed_windows(void **state)
{
    (void)state;
    mr_search_req req;
    mr_error err;
    json_t *body = json_pack("{s:i}", "limit", 20);
    mr_search_req_init(&req, body, NULL, &err);
    /* the smallest k with S × P(Binomial(20, 1/S) >= k) <= 2% */
    assert_int_equal(mr_search_narrow_window(&req, 1000, 4), 11);
    assert_int_equal(mr_search_narrow_window(&req, 1000, 16), 6);
    assert_int_equal(mr_search_narrow_window(&req, 1000, 64), 4);
    assert_int_equal(mr_search_narrow_window(&req, 1000, 1), 0); /* one shard: nothing to narrow */
    assert_int_equal(mr_search_narrow_window(&req, 2, 64), 0);   /* a window of 2 (maxTotalHits) */
    json_t *shard = mr_search_shard_body(&req, 1000);
    mr_search_body_window(shard, &req, 4);
    assert_int_equal(json_integer_value(json_object_get(shard, "limit")), 4);
    assert_int_equal(json_integer_value(json_object_get(shard, "offset")), 0);
    json_decref(shard);
    mr_search_req_clear(&req);
    json_decref(body);
    body = json_pack("{s:i, s:s}", "limit", 20, "distinct", "name");
    mr_search_req_init(&req, body, NULL, &err);
    assert_int_equal(mr_search_narrow_window(&req, 1000, 4), 0); /* a shard's window bounds the distinct count */
    mr_search_req_clear(&req);
    json_decref(body);
}

/* A hybrid search's sides are weighed as a node weighs them: score × semanticRatio for a
 * semantic hit (its details hold "vectorSort"), × (1 - semanticRatio) for a keyword one. */
static void hybrid_hits_merge_by_weighted_score(void **state)
{
    (void)state;
    mr_search_req req;
    mr_error err;
    json_t *body = json_pack("{s:s, s:{s:f, s:s}, s:i}", "q", "word", "hybrid", "semanticRatio", 0.8, "embedder",
                             "default", "limit", 3);
    mr_search_req_init(&req, body, NULL, &err);
    assert_true(req.semantic && req.weighted);
    assert_int_equal(mr_search_narrow_window(&req, 1000, 4), 0); /* nearest neighbours: never narrowed */
    json_t *shard = mr_search_shard_body(&req, 1000);
    assert_true(json_is_true(json_object_get(shard, "showRankingScoreDetails"))); /* to tell the sides */
    json_decref(shard);
#define KW(id, s) "{\"id\":\"" id "\",\"_rankingScore\":" s ",\"_rankingScoreDetails\":{\"words\":{\"score\":" s "}}}"
#define SEM(id, s) "{\"id\":\"" id "\",\"_rankingScore\":" s ",\"_rankingScoreDetails\":{\"vectorSort\":{\"similarity\":" s "}}}"
    /* each shard's own order is the node's, weighted: s2 .4, k1 .19 | k2 .18, s1 .16; by bare
     * score, k2 (.9) would come first */
    json_t *a[2] = {answer("[" SEM("s2", "0.5") "," KW("k1", "0.95") "]", 2),
                    answer("[" KW("k2", "0.9") "," SEM("s1", "0.2") "]", 2)};
    json_object_set_new(a[0], "semanticHitCount", json_integer(1));
    json_object_set_new(a[1], "semanticHitCount", json_integer(1));
    json_object_set_new(a[1], "queryVector", json_pack("[f, f]", 0.5, 0.25));
    mr_merge_limits limits = {1000, 100};
    json_t *out = mr_search_merge(&req, a, 2, &limits, NULL);
    json_t *hits = json_object_get(out, "hits");
    const char *want[] = {"s2", "k1", "k2"};
    assert_int_equal(json_array_size(hits), 3);
    for (size_t i = 0; i < 3; i++) {
        assert_string_equal(json_string_value(json_object_get(json_array_get(hits, i), "id")), want[i]);
        assert_null(json_object_get(json_array_get(hits, i), "_rankingScoreDetails")); /* not asked for */
    }
    assert_int_equal(json_integer_value(json_object_get(out, "semanticHitCount")), 1);
    assert_true(json_equal(json_object_get(out, "queryVector"), json_object_get(a[1], "queryVector")));
    json_decref(out);
    mr_search_req_clear(&req);
    json_decref(body);
    /* a semantic search (no query): all its page's hits are semantic */
    body = json_pack("{s:{s:s}, s:[f], s:i}", "hybrid", "embedder", "default", "vector", 0.5, "limit", 2);
    mr_search_req_init(&req, body, NULL, &err);
    assert_true(req.semantic && !req.weighted);
    out = mr_search_merge(&req, a, 2, &limits, NULL);
    assert_int_equal(json_array_size(json_object_get(out, "hits")), 2);
    assert_int_equal(json_integer_value(json_object_get(out, "semanticHitCount")), 2);
    json_decref(out);
    mr_search_req_clear(&req);
    json_decref(body);
    /* nothing to compare (no query, vector or media): a placeholder search, keyword */
    body = json_pack("{s:{s:s}, s:i}", "hybrid", "embedder", "default", "limit", 20);
    mr_search_req_init(&req, body, NULL, &err);
    assert_true(!req.semantic && !req.weighted);
    mr_search_req_clear(&req);
    json_decref(body);
    /* a semanticRatio of 0 is a keyword search, whatever vector it carries: narrowed as one */
    body = json_pack("{s:s, s:{s:f, s:s}, s:[f], s:i}", "q", "word", "hybrid", "semanticRatio", 0.0, "embedder",
                     "default", "vector", 0.5, "limit", 20);
    mr_search_req_init(&req, body, NULL, &err);
    assert_true(!req.semantic && !req.weighted);
    assert_int_equal(mr_search_narrow_window(&req, 1000, 4), 11);
    mr_search_req_clear(&req);
    json_decref(body);
    for (int i = 0; i < 2; i++)
        json_decref(a[i]);
#undef KW
#undef SEM
}

static void a_narrowed_shard_that_ran_out_inside_the_page_is_in_doubt(void **state)
{
    (void)state;
    mr_search_req req;
    mr_error err;
    json_t *body = json_pack("{s:i}", "limit", 4);
    mr_search_req_init(&req, body, NULL, &err);
    json_t *a[3] = {
        /* every hit above shard 1's: all of it on the page, and it may hold more */
        answer("[{\"id\":\"a1\",\"_rankingScore\":0.9},{\"id\":\"a2\",\"_rankingScore\":0.8}]", 50),
        answer("[{\"id\":\"b1\",\"_rankingScore\":0.5},{\"id\":\"b2\",\"_rankingScore\":0.4}]", 50),
        /* fewer than asked: it has no more */
        answer("[{\"id\":\"c1\",\"_rankingScore\":0.95}]", 1),
    };
    unsigned char doubt[3];
    assert_int_equal(mr_search_doubt(&req, a, 3, 1000, 2, doubt), 1);
    assert_true(doubt[0]);
    assert_false(doubt[1]); /* its last hit would have been the page's fifth */
    assert_false(doubt[2]);
    mr_search_req_clear(&req);
    json_decref(body);
    /* a page that ends on a shard's last hit leaves nothing of it to miss */
    body = json_pack("{s:i}", "limit", 3);
    mr_search_req_init(&req, body, NULL, &err);
    assert_int_equal(mr_search_doubt(&req, a, 3, 1000, 2, doubt), 0);
    mr_search_req_clear(&req);
    json_decref(body);
    for (int i = 0; i < 3; i++)
        json_decref(a[i]);
}

/* Shard s's first `count` hits of a made-up ranking with many ties: the same for every count. */
static json_t *ranked(unsigned s, size_t count, size_t all)
{
    json_t *hits = json_array();
    srand(s * 7919u + 1);
    int score = 100;
    for (size_t i = 0; i < all; i++) {
        score -= rand() % 3; /* runs of equal scores, across shards too */
        if (i < count)
            json_array_append_new(hits, json_pack("{s:s, s:f, s:i}", "id", "x", "_rankingScore", score / 100.0,
                                                  MR_SEQ_FIELD, (int)(s * 1000 + (unsigned)rand() % 1000)));
    }
    char id[32];
    for (size_t i = 0; i < json_array_size(hits); i++) {
        snprintf(id, sizeof id, "s%u-%zu", s, i);
        json_object_set_new(json_array_get(hits, i), "id", json_string(id));
    }
    return json_pack("{s:o, s:i}", "hits", hits, "estimatedTotalHits", (int)all);
}

static void narrowed_then_widened_equals_the_whole_window(void **state)
{
    (void)state;
    mr_merge_limits limits = {1000, 100};
    size_t retried = 0, searches = 0;
    for (unsigned shards = 2; shards <= 64; shards *= 2) {
        for (int offset = 0; offset <= 30; offset += 15) {
            mr_search_req req;
            mr_error err;
            json_t *body = json_pack("{s:i, s:i}", "offset", offset, "limit", 20);
            mr_search_req_init(&req, body, NULL, &err);
            size_t full = (size_t)offset + 20, narrow = mr_search_narrow_window(&req, 1000, shards);
            for (unsigned round = 0; round < 20; round++) {
                json_t *whole[64], *first[64];
                unsigned char doubt[64];
                for (unsigned s = 0; s < shards; s++) {
                    unsigned seed = round * 64 + s;
                    whole[s] = ranked(seed, full, full);
                    first[s] = ranked(seed, narrow ? narrow : full, full);
                }
                size_t again = narrow ? mr_search_doubt(&req, first, shards, 1000, narrow, doubt) : 0;
                retried += again;
                searches++;
                for (unsigned s = 0; s < shards && again; s++) {
                    if (!doubt[s])
                        continue;
                    json_decref(first[s]);
                    first[s] = ranked(round * 64 + s, full, full);
                }
                json_t *want = mr_search_merge(&req, whole, shards, &limits, NULL);
                json_t *got = mr_search_merge(&req, first, shards, &limits, NULL);
                assert_true(json_equal(json_object_get(want, "hits"), json_object_get(got, "hits")));
                json_decref(want);
                json_decref(got);
                for (unsigned s = 0; s < shards; s++) {
                    json_decref(whole[s]);
                    json_decref(first[s]);
                }
            }
            mr_search_req_clear(&req);
            json_decref(body);
        }
    }
    assert_true(retried > 0); /* the widening was needed somewhere, or this proves nothing */
    assert_true(retried * 10 < searches);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(shard_body_asks_for_the_window),
        cmocka_unit_test(bad_paging_is_rejected),
        cmocka_unit_test(hits_merge_by_score_then_shard_then_position),
        cmocka_unit_test(ties_merge_in_write_order),
        cmocka_unit_test(facets_add_up),
        cmocka_unit_test(page_mode_totals),
        cmocka_unit_test(sort_merges_rule_by_rule),
        cmocka_unit_test(distinct_across_shards),
        cmocka_unit_test(narrowed_windows),
        cmocka_unit_test(hybrid_hits_merge_by_weighted_score),
        cmocka_unit_test(a_narrowed_shard_that_ran_out_inside_the_page_is_in_doubt),
        cmocka_unit_test(narrowed_then_widened_equals_the_whole_window),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
