/* test_answer.c: a search answer read lazily gives what a whole parse gives, hit by hit once
 * expanded, and refuses what it cannot walk. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "answer.h"

static const char *const KEEP[] = {"_rankingScore", "_rankingScoreDetails", "_miroir_seq", "id", "brand"};
#define NKEEP (sizeof KEEP / sizeof *KEEP)

static const char ANSWER[] =
    "{\"hits\":[{\"id\":7,\"title\":\"Caf\xc3\xa9 \\\"du\\\" {[coin]}\",\"tags\":[\"a\",{\"_rankingScore\":9}],"
    "\"brand\":null,\"_miroir_seq\":\"  ;`x\",\"_rankingScore\":0.75,"
    "\"_rankingScoreDetails\":{\"words\":{\"order\":0,\"score\":1.0}}},\n"
    "  { \"id\" : \"b\\u00e9\" , \"t\" : \"\\\\\\\"\\\\\" , \"n\" : -1.5e3 , \"ok\" : true , \"_rankingScore\" : 1 ,"
    "\"brand\":\"b\\\"r\"} ],"
    "\"query\":\"caf\\u00e9\",\"processingTimeMs\":3,\"limit\":20,\"offset\":0,\"estimatedTotalHits\":2,"
    "\"facetDistribution\":{\"brand\":{\"x\":1}},\"facetStats\":{}}";

static char *dump(const json_t *j)
{
    return json_dumps(j, JSON_COMPACT | JSON_ENCODE_ANY);
}

static void assert_same_json(const json_t *a, const json_t *b)
{
    char *ta = dump(a), *tb = dump(b);
    assert_string_equal(ta, tb); /* the same members in the same order */
    free(ta);
    free(tb);
}

/* A stub holds the kept fields that the hit has, from its top level only, and the hit's text;
 * expanded, it is the hit a whole parse gives, in its order. The rest of the answer is whole. */
static void stubs_expand_to_the_whole_hits(void **state)
{
    (void)state;
    json_error_t e;
    json_t *whole = json_loads(ANSWER, 0, &e);
    assert_non_null(whole);
    json_t *lazy = mr_answer_load(ANSWER, strlen(ANSWER), KEEP, NKEEP);
    assert_non_null(lazy);
    json_t *stub = json_array_get(json_object_get(lazy, "hits"), 0);
    assert_int_equal(json_object_size(stub), 6);
    assert_true(json_real_value(json_object_get(stub, "_rankingScore")) == 0.75);
    assert_true(json_is_null(json_object_get(stub, "brand")));
    assert_null(json_object_get(stub, "title"));
    assert_non_null(json_object_get(stub, MR_HIT_TEXT));
    json_t *second = json_array_get(json_object_get(lazy, "hits"), 1);
    assert_string_equal(json_string_value(json_object_get(second, "id")), "b\xc3\xa9");
    assert_int_equal(json_integer_value(json_object_get(second, "_rankingScore")), 1);
    assert_string_equal(json_string_value(json_object_get(second, "brand")), "b\"r");
    size_t i;
    json_t *hit;
    json_array_foreach(json_object_get(lazy, "hits"), i, hit) assert_int_equal(mr_hit_expand(hit), 0);
    assert_same_json(lazy, whole);
    assert_int_equal(mr_hit_expand(stub), 0); /* a whole hit stays as it is */
    assert_same_json(lazy, whole);
    json_decref(lazy);
    json_decref(whole);
}

/* What was added to a stub after it was read stays, after the hit's own fields; a kept field
 * changed since wins over the text. */
static void fields_added_to_a_stub_stay(void **state)
{
    (void)state;
    json_t *lazy = mr_answer_load(ANSWER, strlen(ANSWER), KEEP, NKEEP);
    json_t *stub = json_array_get(json_object_get(lazy, "hits"), 1);
    json_object_set_new(stub, "_federation", json_pack("{s:s}", "indexUid", "x"));
    json_object_set_new(stub, "_rankingScore", json_real(0.5));
    assert_int_equal(mr_hit_expand(stub), 0);
    char *text = dump(stub);
    assert_string_equal(text, "{\"id\":\"b\xc3\xa9\",\"t\":\"\\\\\\\"\\\\\",\"n\":-1500.0,\"ok\":true,"
                              "\"_rankingScore\":0.5,\"brand\":\"b\\\"r\",\"_federation\":{\"indexUid\":\"x\"}}");
    free(text);
    json_decref(lazy);
}

/* A /multi-search answer: each result read as one answer. */
static void a_multi_search_answer_reads_each_result(void **state)
{
    (void)state;
    size_t n = strlen(ANSWER);
    char *multi = malloc(2 * n + 64);
    strcpy(multi, "{ \"results\" : [");
    strcat(multi, ANSWER);
    strcat(multi, " , {\"indexUid\":\"s1\",\"hits\":[],\"estimatedTotalHits\":0}] }\n");
    json_t *lazy = mr_answers_load(multi, strlen(multi), KEEP, NKEEP);
    assert_non_null(lazy);
    json_t *results = json_object_get(lazy, "results");
    assert_int_equal(json_array_size(results), 2);
    assert_int_equal(json_array_size(json_object_get(json_array_get(results, 0), "hits")), 2);
    assert_string_equal(json_string_value(json_object_get(json_array_get(results, 1), "indexUid")), "s1");
    json_decref(lazy);
    assert_null(mr_answers_load(ANSWER, n, KEEP, NKEEP)); /* not a multi-search answer */
    free(multi);
}

/* Whatever the scanner cannot walk is refused, for a whole parse to judge: truncated text,
 * trailing bytes, hits that are not objects, an answer without hits, a value that is not JSON,
 * a kept name that JSON would escape. */
static void what_it_cannot_walk_is_refused(void **state)
{
    (void)state;
    size_t n = strlen(ANSWER);
    for (size_t cut = 0; cut < n; cut += 7)
        assert_null(mr_answer_load(ANSWER, cut, KEEP, NKEEP));
    static const char *const bad[] = {
        "{\"hits\":[]} x", "{\"hits\":[1,2]}", "{\"estimatedTotalHits\":1}", "[]", "",
        "{\"hits\":[{\"_rankingScore\":nope}]}", "{\"hits\":[],\"limit\":01x}", "{\"hits\":[{\"a\" 1}]}",
        "{\"hits\":[{\"a\":\"unterminated}]}", "{\"h\\u0069ts\":[]}",
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++)
        assert_null(mr_answer_load(bad[i], strlen(bad[i]), KEEP, NKEEP));
    static const char *const quoted[] = {"a\"b"};
    assert_null(mr_answer_load(ANSWER, n, quoted, 1));
    json_t *ok = mr_answer_load("{\"hits\":[]}", 11, KEEP, NKEEP);
    assert_non_null(ok);
    json_decref(ok);
}

/* A hit whose text was damaged after it was read is left as a stub. */
static void a_damaged_stub_is_left_alone(void **state)
{
    (void)state;
    json_t *stub = json_pack("{s:f, s:s}", "_rankingScore", 0.5, MR_HIT_TEXT, "{\"id\":");
    assert_int_equal(mr_hit_expand(stub), -1);
    assert_int_equal(json_object_size(stub), 2);
    json_decref(stub);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(stubs_expand_to_the_whole_hits),
        cmocka_unit_test(fields_added_to_a_stub_stay),
        cmocka_unit_test(a_multi_search_answer_reads_each_result),
        cmocka_unit_test(what_it_cannot_walk_is_refused),
        cmocka_unit_test(a_damaged_stub_is_left_alone),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
