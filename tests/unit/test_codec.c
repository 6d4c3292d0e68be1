/* test_codec.c: request bodies decode from each coding a client may send, within the size limit,
 * and answers are encoded in the coding the client prefers. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "codec.h"

static const char doc[] = "[{\"id\":1,\"title\":\"the same words again and again and again\"}]";

static void each_coding_round_trips(void **state)
{
    (void)state;
    const char *codings[] = {"gzip", "deflate", "br"};
    for (size_t i = 0; i < 3; i++) {
        char *packed, *plain;
        size_t packed_len, plain_len;
        mr_error err = {0};
        assert_int_equal(mr_encode_body(codings[i], doc, strlen(doc), &packed, &packed_len), 0);
        assert_int_equal(mr_decode_body(codings[i], packed, packed_len, 1 << 20, &plain, &plain_len, &err), 0);
        assert_int_equal(plain_len, strlen(doc));
        assert_string_equal(plain, doc);
        free(plain);
        /* past the limit once decoded: 413, whatever the compressed size was */
        assert_int_equal(mr_decode_body(codings[i], packed, packed_len, 16, &plain, &plain_len, &err), -1);
        assert_string_equal(err.code, "payload_too_large");
        assert_int_equal(err.status, 413);
        /* cut short: not what it says it is */
        assert_int_equal(mr_decode_body(codings[i], packed, packed_len / 2, 1 << 20, &plain, &plain_len, &err), -1);
        assert_string_equal(err.code, "malformed_payload");
        free(packed);
    }
}

static void a_bomb_stops_at_the_limit(void **state)
{
    (void)state;
    size_t big = 64 << 20;
    char *zeros = calloc(1, big), *packed, *plain;
    size_t packed_len, plain_len;
    mr_error err = {0};
    assert_int_equal(mr_encode_body("gzip", zeros, big, &packed, &packed_len), 0);
    assert_true(packed_len < big / 500);
    assert_int_equal(mr_decode_body("gzip", packed, packed_len, 1 << 20, &plain, &plain_len, &err), -1);
    assert_string_equal(err.code, "payload_too_large");
    free(packed);
    free(zeros);
}

static void identity_and_unknown_codings(void **state)
{
    (void)state;
    char *plain;
    size_t plain_len;
    mr_error err = {0};
    assert_int_equal(mr_decode_body("identity", doc, strlen(doc), 1 << 20, &plain, &plain_len, &err), 0);
    assert_string_equal(plain, doc);
    free(plain);
    assert_int_equal(mr_decode_body("zstd", doc, strlen(doc), 1 << 20, &plain, &plain_len, &err), -1);
    assert_int_equal(err.status, 415);
    /* a raw deflate stream, as some clients send for "deflate" */
    assert_int_equal(mr_decode_body("deflate", "\x03\x00", 2, 1 << 20, &plain, &plain_len, &err), 0);
    assert_int_equal(plain_len, 0);
    free(plain);
}

static void the_preferred_accepted_coding(void **state)
{
    (void)state;
    assert_null(mr_pick_coding(NULL));
    assert_null(mr_pick_coding(""));
    assert_null(mr_pick_coding("identity"));
    assert_string_equal(mr_pick_coding("gzip"), "gzip");
    assert_string_equal(mr_pick_coding("gzip, deflate, br"), "br");
    assert_string_equal(mr_pick_coding("deflate;q=0.5, GZIP"), "gzip");
    assert_string_equal(mr_pick_coding("br;q=0, gzip;q=0.1"), "gzip");
    assert_null(mr_pick_coding("br;q=0, gzip;q=0.0, deflate; q=0"));
    assert_string_equal(mr_pick_coding("*"), "br");
    assert_string_equal(mr_pick_coding("br;q=0, *"), "gzip");
    assert_null(mr_pick_coding("*;q=0"));
    assert_null(mr_pick_coding("gzipx, xbr"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(each_coding_round_trips),
        cmocka_unit_test(a_bomb_stops_at_the_limit),
        cmocka_unit_test(identity_and_unknown_codings),
        cmocka_unit_test(the_preferred_accepted_coding),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
