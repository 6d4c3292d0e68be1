/* Unit tests for shared/buf.c. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "buf.h"

static void appends_stay_terminated(void **state)
{
    (void)state;
    mr_buf b = {0};
    mr_buf_add(&b, "ab", 2, 0);
    assert_string_equal(b.data, "ab");
    mr_buf_add(&b, "", 0, 0);
    mr_buf_add(&b, "cde", 3, 0);
    assert_int_equal(b.len, 5);
    assert_string_equal(b.data, "abcde");
    assert_true(b.cap > b.len);
    mr_buf_free(&b);
    assert_null(b.data);
    assert_int_equal(b.len, 0);
    assert_int_equal(b.cap, 0);
}

static void the_first_allocation_takes_what_is_asked(void **state)
{
    (void)state;
    mr_buf b = {0};
    mr_buf_add(&b, "x", 1, 1000);
    assert_int_equal(b.cap, 1000);
    char big[3000];
    memset(big, 'y', sizeof big);
    mr_buf_add(&b, big, sizeof big, 1000);
    assert_true(b.cap >= 3002);
    assert_int_equal(b.len, 3001);
    assert_int_equal(b.data[3001], '\0');
    assert_int_equal(b.data[0], 'x');
    assert_int_equal(b.data[3000], 'y');
    mr_buf_free(&b);
}

static void an_empty_add_makes_an_empty_string(void **state)
{
    (void)state;
    mr_buf b = {0};
    mr_buf_add(&b, NULL, 0, 0);
    assert_non_null(b.data);
    assert_string_equal(b.data, "");
    mr_buf_free(&b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(appends_stay_terminated),
        cmocka_unit_test(the_first_allocation_takes_what_is_asked),
        cmocka_unit_test(an_empty_add_makes_an_empty_string),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
