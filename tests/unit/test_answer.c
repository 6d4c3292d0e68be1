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

static const char ANSWER[] =
    "{\"hits\":[{\"id\":7,\"title\":\"Caf\xc3\xa9 \\\"du\\\" {[coin]}\",\"tags\":[\"a\",{\"_rankingScore\":9}],"
    "\"brand\":null,\"_miroir_seq\":\"  ;`x\",\"_rankingScore\":0.75,"
    "\"_rankingScoreDetails\":{\"words\":{\"order\":0,\"score\":1.0}},"
    "\"_formatted\":{\"title\":\"<em>Caf\xc3\xa9</em>\",\"_miroir_seq\":\"  ;`x\"}},\n"
    "  { \"id\" : \"b\\u00e9\" , \"t\" : \"\\\\\\\"\\\\\" , \"n\" : -1.5e3 , \"ok\" : true , \"_rankingScore\" : 1 ,"
    "\"brand\":\"b\\\"r\",\"t\\\"q\":\"escaped name\"} ],"
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

/* A stub holds the hit's text only; a field asked for is read from it, from its top level only,
 * and kept. Expanded, a stub is the hit a whole parse gives, in its order. The rest of the
 * answer is whole. */
static void stubs_expand_to_the_whole_hits(void **state)
{
    (void)state;
    json_error_t e;
    json_t *whole = json_loads(ANSWER, 0, &e);
    assert_non_null(whole);
    json_t *lazy = mr_answer_load(ANSWER, strlen(ANSWER));
    assert_non_null(lazy);
    json_t *stub = mr_hits_at(json_object_get(lazy, "hits"), 0);
    assert_int_equal(json_object_size(stub), 1);
    assert_non_null(json_object_get(stub, MR_HIT_TEXT));
    assert_true(json_real_value(mr_hit_get(stub, "_rankingScore")) == 0.75);
    assert_true(json_real_value(json_object_get(stub, "_rankingScore")) == 0.75); /* kept */
    assert_true(json_is_null(mr_hit_get(stub, "brand")));
    assert_null(mr_hit_get(stub, "nope"));
    assert_int_equal(json_object_size(stub), 3);
    json_t *details = mr_hit_get(stub, "_rankingScoreDetails");
    assert_int_equal(json_integer_value(json_object_get(json_object_get(details, "words"), "order")), 0);
    json_t *second = mr_hits_at(json_object_get(lazy, "hits"), 1);
    assert_string_equal(json_string_value(mr_hit_get(second, "id")), "b\xc3\xa9");
    assert_int_equal(json_integer_value(mr_hit_get(second, "_rankingScore")), 1);
    assert_string_equal(json_string_value(mr_hit_get(second, "brand")), "b\"r");
    assert_string_equal(json_string_value(mr_hit_get(second, "t\"q")), "escaped name");
    static const char *const several[] = {"n", "absent", "ok"};
    mr_hit_read(second, several, 3); /* in one walk: each that the hit has is kept */
    assert_true(json_real_value(json_object_get(second, "n")) == -1500.0);
    assert_true(json_is_true(json_object_get(second, "ok")));
    assert_null(json_object_get(second, "absent"));
    json_t *whole_hit = json_array_get(json_object_get(whole, "hits"), 0); /* not a stub: its own field */
    assert_int_equal(json_integer_value(mr_hit_get(whole_hit, "id")), 7);
    json_t *hits = json_object_get(lazy, "hits");
    for (size_t i = 0; i < json_array_size(hits); i++)
        assert_int_equal(mr_hit_expand(mr_hits_at(hits, i)), 0);
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
    json_t *lazy = mr_answer_load(ANSWER, strlen(ANSWER));
    json_t *stub = mr_hits_at(json_object_get(lazy, "hits"), 1);
    json_object_set_new(stub, "_federation", json_pack("{s:s}", "indexUid", "x"));
    json_object_set_new(stub, "_rankingScore", json_real(0.5));
    assert_int_equal(mr_hit_expand(stub), 0);
    char *text = dump(stub);
    assert_string_equal(text, "{\"id\":\"b\xc3\xa9\",\"t\":\"\\\\\\\"\\\\\",\"n\":-1500.0,\"ok\":true,"
                              "\"_rankingScore\":0.5,\"brand\":\"b\\\"r\",\"t\\\"q\":\"escaped name\","
                              "\"_federation\":{\"indexUid\":\"x\"}}");
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
    json_t *lazy = mr_answers_load(multi, strlen(multi));
    assert_non_null(lazy);
    json_t *results = json_object_get(lazy, "results");
    assert_int_equal(json_array_size(results), 2);
    assert_int_equal(json_array_size(json_object_get(json_array_get(results, 0), "hits")), 2);
    assert_string_equal(json_string_value(json_object_get(json_array_get(results, 1), "indexUid")), "s1");
    json_decref(lazy);
    assert_null(mr_answers_load(ANSWER, n)); /* not a multi-search answer */
    free(multi);
}

/* Whatever the scanner cannot walk is refused, for a whole parse to judge: truncated text,
 * trailing bytes, hits that are not objects, an answer without hits, a value that is not JSON. */
static void what_it_cannot_walk_is_refused(void **state)
{
    (void)state;
    size_t n = strlen(ANSWER);
    for (size_t cut = 0; cut < n; cut += 7)
        assert_null(mr_answer_load(ANSWER, cut));
    static const char *const bad[] = {
        "{\"hits\":[]} x", "{\"hits\":[1,2]}", "{\"estimatedTotalHits\":1}", "[]", "",
"{\"hits\":[],\"limit\":01x}",
        "{\"hits\":[{\"a\":\"unterminated}]}", "{\"h\\u0069ts\":[]}",
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++)
        assert_null(mr_answer_load(bad[i], strlen(bad[i])));
    json_t *ok = mr_answer_load("{\"hits\":[]}", 11);
    assert_non_null(ok);
    json_decref(ok);
}

/* text is JSON with the same members in the same order as j, written as it is or otherwise. */
static void assert_same_text(const char *text, const json_t *j)
{
    json_error_t e;
    json_t *read = json_loads(text, JSON_DECODE_ANY, &e);
    assert_non_null(read);
    assert_same_json(read, j);
    json_decref(read);
}

/* Written back, a stub is what expanding it and json_dumps give: its text with the stub's own
 * values in place, then what was added to it. */
static void a_stub_is_written_as_its_expansion(void **state)
{
    (void)state;
    json_t *lazy = mr_answer_load(ANSWER, strlen(ANSWER));
    json_t *first = mr_hits_at(json_object_get(lazy, "hits"), 0);
    json_t *second = mr_hits_at(json_object_get(lazy, "hits"), 1);
    mr_hit_get(first, "_rankingScore"); /* read, so kept in the stub */
    json_object_set_new(second, "_rankingScore", json_real(0.5));
    json_object_set_new(second, "_federation", json_pack("{s:s}", "indexUid", "x"));
    char *written = mr_json_dumps(lazy);
    json_t *hit;
    size_t i;
    json_array_foreach(json_object_get(lazy, "hits"), i, hit) assert_int_equal(mr_hit_expand(hit), 0);
    assert_same_text(written, lazy);
    assert_non_null(strstr(written, "-1.5e3")); /* the node's own writing, not parsed again */
    free(written);
    json_decref(lazy);
    json_t *quoted = json_string("a\"b");
    char *scalar = mr_json_dumps(quoted);
    assert_string_equal(scalar, "\"a\\\"b\"");
    free(scalar);
    json_decref(quoted);
    json_t *doc = json_pack("{s:{s:s}}", "meta", MR_HIT_TEXT, "{\"a\":1}"); /* a document's own field */
    char *as_is = mr_json_dumps(doc);
    assert_string_equal(as_is, "{\"meta\":{\"" MR_HIT_TEXT "\":\"{\\\"a\\\":1}\"}}");
    free(as_is);
    json_decref(doc);
    json_t *odd = json_pack("{s:i, s:[f, n, b], s:{}}", "k\"\n", 1, "l", 0.25, 1, "e");
    char *mine = mr_json_dumps(odd), *theirs = json_dumps(odd, JSON_COMPACT);
    assert_string_equal(mine, theirs);
    free(mine);
    free(theirs);
    json_decref(odd);
}

/* Fields dropped from a stub are gone from its text, the write order from its "_formatted" too;
 * a whole hit loses the same, and both are then written alike. */
static void dropping_fields_from_a_stub_or_a_whole_hit(void **state)
{
    (void)state;
    json_error_t e;
    json_t *whole = json_loads(ANSWER, 0, &e);
    json_t *lazy = mr_answer_load(ANSWER, strlen(ANSWER));
    static const char *const names[] = {"_rankingScore", "_miroir_seq", "t\"q", "nope"};
    for (size_t h = 0; h < 2; h++) {
        json_t *stub = mr_hits_at(json_object_get(lazy, "hits"), h);
        mr_hit_get(stub, "_rankingScore");
        assert_int_equal(mr_hit_drop(stub, names, 4, "_miroir_seq"), 0);
        assert_null(json_object_get(stub, "_rankingScore"));
        assert_null(mr_hit_get(stub, "_rankingScore"));
        assert_int_equal(mr_hit_drop(json_array_get(json_object_get(whole, "hits"), h), names, 4, "_miroir_seq"), 0);
    }
    json_t *formatted = mr_hit_get(mr_hits_at(json_object_get(lazy, "hits"), 0), "_formatted");
    assert_int_equal(json_object_size(formatted), 1);
    char *a = mr_json_dumps(lazy);
    assert_same_text(a, whole);
    assert_null(strstr(a, "_miroir_seq"));
    free(a);
    json_decref(lazy);
    json_decref(whole);
}

/* A hit's value that is not JSON, or a hit that is no object inside, is met when it is read:
 * no field, and no whole hit. */
static void a_bad_value_in_a_hit_is_met_when_read(void **state)
{
    (void)state;
    static const char bad[] = "{\"hits\":[{\"_rankingScore\":nope,\"id\":1}]}";
    json_t *lazy = mr_answer_load(bad, strlen(bad));
    assert_non_null(lazy);
    json_t *stub = mr_hits_at(json_object_get(lazy, "hits"), 0);
    assert_null(mr_hit_get(stub, "_rankingScore"));
    assert_int_equal(json_integer_value(mr_hit_get(stub, "id")), 1);
    assert_int_equal(mr_hit_expand(stub), -1);
    json_decref(lazy);
    static const char shapeless[] = "{\"hits\":[{\"a\" 1}]}";
    lazy = mr_answer_load(shapeless, strlen(shapeless));
    stub = mr_hits_at(json_object_get(lazy, "hits"), 0);
    assert_null(mr_hit_get(stub, "a"));
    assert_int_equal(mr_hit_expand(stub), -1);
    json_decref(lazy);
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

static void a_hit_becomes_a_stub_only_when_asked_for(void **state)
{
    (void)state;
    json_t *lazy = mr_answer_load(ANSWER, strlen(ANSWER));
    json_t *hits = json_object_get(lazy, "hits");
    json_t *bare = json_array_get(hits, 1);
    assert_true(json_is_string(bare)); /* loaded as its text alone */
    json_t *stub = mr_hits_at(hits, 1);
    assert_true(json_is_object(stub));
    assert_ptr_equal(json_object_get(stub, MR_HIT_TEXT), bare); /* the text is not copied */
    assert_ptr_equal(mr_hits_at(hits, 1), stub);                /* asked again: the same stub */
    assert_true(json_is_string(json_array_get(hits, 0)));       /* the other is still bare */
    assert_null(mr_hits_at(hits, 2));
    json_decref(lazy);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(stubs_expand_to_the_whole_hits),
        cmocka_unit_test(fields_added_to_a_stub_stay),
        cmocka_unit_test(a_multi_search_answer_reads_each_result),
        cmocka_unit_test(what_it_cannot_walk_is_refused),
        cmocka_unit_test(a_stub_is_written_as_its_expansion),
        cmocka_unit_test(dropping_fields_from_a_stub_or_a_whole_hit),
        cmocka_unit_test(a_bad_value_in_a_hit_is_met_when_read),
        cmocka_unit_test(a_damaged_stub_is_left_alone),
        cmocka_unit_test(a_hit_becomes_a_stub_only_when_asked_for),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
