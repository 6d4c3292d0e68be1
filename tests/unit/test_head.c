/* test_head.c: the front door's judgement of a request head (head.h). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "head.h"

static enum mr_head_verdict judge(const char *s) { return mr_head_judge(s, strlen(s), 64); }

static void test_complete_heads(void **state)
{
    (void)state;
    assert_int_equal(judge("GET /health HTTP/1.1\r\nHost: x\r\n\r\n"), MR_HEAD_COMPLETE);
    assert_int_equal(judge("POST /indexes HTTP/1.0\r\n\r\n{\"uid\""), MR_HEAD_COMPLETE);
    assert_int_equal(judge("GET / HTTP/1.1\n\n"), MR_HEAD_COMPLETE);
}

static void test_partial_heads_wait(void **state)
{
    (void)state;
    assert_int_equal(judge(""), MR_HEAD_PARTIAL);
    assert_int_equal(judge("G"), MR_HEAD_PARTIAL);
    assert_int_equal(judge("GET"), MR_HEAD_PARTIAL);
    assert_int_equal(judge("GET /indexes/a/sea"), MR_HEAD_PARTIAL);
    assert_int_equal(judge("GET / HTTP/1.1\r\nHost: x\r\n"), MR_HEAD_PARTIAL);
    assert_int_equal(judge("GET / HTTP/1.1\r\nHost: x\r\n\r"), MR_HEAD_PARTIAL);
}

static void test_not_http_is_refused_at_once(void **state)
{
    (void)state;
    const char tls[] = {0x16, 0x03, 0x01, 0x02, 0x00, 0x01, 0x00};
    assert_int_equal(mr_head_judge(tls, sizeof tls, 64), MR_HEAD_NOT_HTTP);
    assert_int_equal(judge("get / HTTP/1.1\r\n\r\n"), MR_HEAD_NOT_HTTP);
    assert_int_equal(judge("GET\t/ HTTP/1.1\r\n"), MR_HEAD_NOT_HTTP);
    assert_int_equal(judge("GET / HTTP/2.0\r\n\r\n"), MR_HEAD_NOT_HTTP);
    assert_int_equal(judge("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"), MR_HEAD_NOT_HTTP);
    assert_int_equal(judge("GET /\r\n"), MR_HEAD_NOT_HTTP);
    assert_int_equal(judge("GET /a b HTTP/1.1\r\n\r\n"), MR_HEAD_NOT_HTTP);
    assert_int_equal(judge("GET  HTTP/1.1\r\n\r\n"), MR_HEAD_NOT_HTTP);
    assert_int_equal(judge("ABCDEFGHIJKLMNOPQRSTUVWXYZ / HTTP/1.1\r\n\r\n"), MR_HEAD_NOT_HTTP);
}

static void test_a_head_without_end_is_too_large(void **state)
{
    (void)state;
    char big[64];
    memset(big, 'a', sizeof big);
    memcpy(big, "GET / HTTP/1.1\r\nX: ", 19);
    assert_int_equal(mr_head_judge(big, sizeof big, sizeof big), MR_HEAD_TOO_LARGE);
    assert_int_equal(mr_head_judge(big, sizeof big - 1, sizeof big), MR_HEAD_PARTIAL);
}

static void test_control_characters_in_paths(void **state)
{
    (void)state;
    assert_true(mr_head_path_clean("/indexes/a/search"));
    assert_true(mr_head_path_clean("/indexes/caf%C3%A9/search?q=%00%0A"));
    assert_true(mr_head_path_clean("/indexes/a%2"));
    assert_false(mr_head_path_clean("/indexes/a%00__s0/search"));
    assert_false(mr_head_path_clean("/indexes/a%0d%0aX/search"));
    assert_false(mr_head_path_clean("/indexes/a%7F"));
    assert_false(mr_head_path_clean("/indexes/a\x01"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_complete_heads),
        cmocka_unit_test(test_partial_heads_wait),
        cmocka_unit_test(test_not_http_is_refused_at_once),
        cmocka_unit_test(test_a_head_without_end_is_too_large),
        cmocka_unit_test(test_control_characters_in_paths),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
