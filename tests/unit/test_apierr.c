/* test_apierr.c: node errors rewritten to name the client's index (apierr.h). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "apierr.h"

static void test_shard_names_become_the_uid(void **state)
{
    (void)state;
    char m[256] = "Index `movies-1a2b__s0` not found; `movies-1a2b__s12` neither.";
    mr_error_rename_index(m, sizeof m, "movies-1a2b", "movies");
    assert_string_equal(m, "Index `movies` not found; `movies` neither.");
}

static void test_only_shard_names_are_rewritten(void **state)
{
    (void)state;
    /* the storage alone, or followed by something that is no shard suffix, is left as it is */
    char m[256] = "movies-1a2b and movies-1a2b__sx and movies-1a2b__s";
    mr_error_rename_index(m, sizeof m, "movies-1a2b", "movies");
    assert_string_equal(m, "movies-1a2b and movies-1a2b__sx and movies-1a2b__s");
}

static void test_a_scratch_index_becomes_the_uid(void **state)
{
    (void)state;
    char m[256] = "Index `miroir-settings-check`: Attribute `x` is not filterable.";
    mr_error_rename(m, sizeof m, "miroir-settings-check", "books");
    assert_string_equal(m, "Index `books`: Attribute `x` is not filterable.");
}

static void test_a_long_uid_is_cut_not_overflowed(void **state)
{
    (void)state;
    char uid[400];
    memset(uid, 'u', sizeof uid - 1);
    uid[sizeof uid - 1] = '\0';
    char m[64] = "a s__s1 b s__s2 c s__s3";
    mr_error_rename_index(m, sizeof m, "s", uid);
    assert_int_equal(strlen(m), sizeof m - 1);
    assert_memory_equal(m, "a uuuu", 6);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_shard_names_become_the_uid),
        cmocka_unit_test(test_only_shard_names_are_rewritten),
        cmocka_unit_test(test_a_scratch_index_becomes_the_uid),
        cmocka_unit_test(test_a_long_uid_is_cut_not_overflowed),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
