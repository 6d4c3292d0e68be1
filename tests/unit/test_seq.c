/* test_seq.c: write order survives its spelling, numbers are reserved without overlap, and the
 * field stays out of what clients see. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "seq.h"

static void spelling_keeps_the_order(void **state)
{
    (void)state;
    const uint64_t values[] = {0, 1, 15, 16, 255, 256, (uint64_t)1 << 40, ((uint64_t)1798000000000 << 20) + 7,
                               UINT64_MAX - 1, UINT64_MAX};
    char prev[MR_SEQ_LEN + 1] = "", cur[MR_SEQ_LEN + 1];
    for (size_t i = 0; i < sizeof values / sizeof values[0]; i++) {
        mr_seq_encode(values[i], cur);
        assert_int_equal(strlen(cur), MR_SEQ_LEN);
        /* no word characters at all: the tokenizer makes no word of it */
        for (size_t k = 0; k < MR_SEQ_LEN; k++)
            assert_null(strchr("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789\"\\#@+-_.&'", cur[k]));
        if (i)
            assert_true(strcmp(prev, cur) < 0);
        memcpy(prev, cur, sizeof cur);
    }
}

/* A checkpoint carries each document's number back into the header it was written with. */
static void spelling_reads_back(void **state)
{
    (void)state;
    uint64_t samples[] = {0, 1, 15, 16, 0x123456789abcdef0ULL, UINT64_MAX, (uint64_t)1796615720702 << 20};
    for (size_t i = 0; i < sizeof samples / sizeof samples[0]; i++) {
        char text[MR_SEQ_LEN + 1];
        uint64_t back = 7;
        mr_seq_encode(samples[i], text);
        assert_int_equal(mr_seq_decode(text, &back), 0);
        assert_true(back == samples[i]);
    }
    uint64_t v;
    assert_int_equal(mr_seq_decode("short", &v), -1);
    assert_int_equal(mr_seq_decode("abcdefghijklmnop", &v), -1);
    assert_int_equal(mr_seq_decode(NULL, &v), -1);
}

static void reservations_never_overlap(void **state)
{
    (void)state;
    _Atomic uint64_t last = 0;
    uint64_t a = mr_seq_reserve(&last, 1000, 5);
    assert_true(a == (uint64_t)1000 << MR_SEQ_COUNTER_BITS);
    uint64_t b = mr_seq_reserve(&last, 1000, 3); /* same millisecond: right after */
    assert_true(b == a + 5);
    uint64_t c = mr_seq_reserve(&last, 999, 1); /* a clock going back doesn't go back */
    assert_true(c == b + 3);
    uint64_t d = mr_seq_reserve(&last, 2000, 0);
    assert_true(d == (uint64_t)2000 << MR_SEQ_COUNTER_BITS);
    assert_true(mr_seq_of_record(1000, 3) < mr_seq_of_record(1000, 4));
    assert_true(mr_seq_of_record(1000, 5) < mr_seq_of_record(1001, 4));
}

static void documents_compare_by_the_field(void **state)
{
    (void)state;
    char x[MR_SEQ_LEN + 1], y[MR_SEQ_LEN + 1];
    mr_seq_encode(10, x);
    mr_seq_encode(11, y);
    json_t *a = json_pack("{s:s, s:s, s:{s:s}}", "id", "a", MR_SEQ_FIELD, x, "_formatted", MR_SEQ_FIELD, x);
    json_t *b = json_pack("{s:s, s:s}", "id", "b", MR_SEQ_FIELD, y);
    json_t *none = json_pack("{s:s}", "id", "c");
    assert_true(mr_seq_compare(a, b) < 0);
    assert_true(mr_seq_compare(b, a) > 0);
    assert_int_equal(mr_seq_compare(a, none), 0);
    mr_seq_strip(a);
    assert_null(json_object_get(a, MR_SEQ_FIELD));
    assert_int_equal(json_object_size(json_object_get(a, "_formatted")), 0);
    json_decref(a);
    json_decref(b);
    json_decref(none);
}

static void displayed_attributes_show_the_field_to_the_merge_only(void **state)
{
    (void)state;
    json_t *s = json_loads("{\"displayedAttributes\":[\"title\"],\"searchableAttributes\":[\"title\"]}", 0, NULL);
    mr_seq_settings_for_node(s);
    assert_int_equal(json_array_size(json_object_get(s, "displayedAttributes")), 2);
    assert_int_equal(json_array_size(json_object_get(s, "searchableAttributes")), 1);
    mr_seq_settings_for_node(s); /* once */
    assert_int_equal(json_array_size(json_object_get(s, "displayedAttributes")), 2);
    mr_seq_settings_for_client(s);
    json_t *want = json_loads("{\"displayedAttributes\":[\"title\"],\"searchableAttributes\":[\"title\"]}", 0, NULL);
    assert_true(json_equal(s, want));
    json_decref(want);
    json_decref(s);
    /* everything shown, or reset: nothing to add */
    s = json_loads("{\"displayedAttributes\":[\"*\"]}", 0, NULL);
    mr_seq_settings_for_node(s);
    assert_int_equal(json_array_size(json_object_get(s, "displayedAttributes")), 1);
    json_decref(s);
    s = json_loads("{\"displayedAttributes\":null}", 0, NULL);
    mr_seq_settings_for_node(s);
    assert_true(json_is_null(json_object_get(s, "displayedAttributes")));
    json_decref(s);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(spelling_keeps_the_order),
        cmocka_unit_test(spelling_reads_back),
        cmocka_unit_test(reservations_never_overlap),
        cmocka_unit_test(documents_compare_by_the_field),
        cmocka_unit_test(displayed_attributes_show_the_field_to_the_merge_only),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
