/* test_insync.c: the in-sync set and commit point rule (insync.h). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "insync.h"

#define LAG 5000
#define NOW 100000

static int has(const mr_replica *set, size_t count, const char *node)
{
    for (size_t i = 0; i < count; i++)
        if (strcmp(set[i].node, node) == 0)
            return 1;
    return 0;
}

static void test_members_that_keep_up_stay_and_the_point_is_their_least(void **state)
{
    (void)state;
    mr_isr_replica r[] = {{"a", 1, 120, NOW, 0, 0, 1}, {"b", 1, 100, NOW - 10, 0, 0, 1}};
    mr_replica set[MR_MAX_REPLICAS];
    size_t n;
    assert_int_equal(mr_isr_next(r, 2, 90, NOW, LAG, set, &n), 100);
    assert_int_equal(n, 2);
}

static void test_the_point_never_goes_back(void **state)
{
    (void)state;
    /* a replica that rejoined at the point cannot pull it down */
    mr_isr_replica r[] = {{"a", 1, 150, NOW, 0, 0, 1}, {"b", 1, 120, NOW, 0, 0, 0}};
    mr_replica set[MR_MAX_REPLICAS];
    size_t n;
    assert_int_equal(mr_isr_next(r, 2, 120, NOW, LAG, set, &n), 120);
    assert_int_equal(n, 2);
    r[1].applied = 119; /* below the point: stays out */
    assert_int_equal(mr_isr_next(r, 2, 120, NOW, LAG, set, &n), 150);
    assert_int_equal(n, 1);
    assert_true(has(set, n, "a"));
}

static void test_a_failing_or_stalled_member_leaves(void **state)
{
    (void)state;
    mr_isr_replica r[] = {{"a", 1, 150, NOW, 0, 0, 1}, {"b", 1, 130, NOW, 0, 1, 1},
                          {"c", 1, 110, NOW - LAG - 1, NOW - LAG - 1, 0, 1}};
    mr_replica set[MR_MAX_REPLICAS];
    size_t n;
    assert_int_equal(mr_isr_next(r, 3, 110, NOW, LAG, set, &n), 150);
    assert_int_equal(n, 1);
    assert_true(has(set, n, "a"));
    /* standing still is no stall when it has applied all there is */
    r[2].applied = 150;
    mr_isr_next(r, 3, 110, NOW, LAG, set, &n);
    assert_true(has(set, n, "c"));
}

static void test_the_answering_member_stays_when_all_would_leave(void **state)
{
    (void)state;
    /* a is ahead but its node is cut off; b lags behind it and stands still. Keeping a would raise
     * the point to 200, past b, and no reachable replica could serve a read until a came back. */
    mr_isr_replica r[] = {{"a", 1, 200, NOW, 0, 1, 1}, {"b", 1, 180, NOW - LAG - 1, NOW - LAG - 1, 0, 1}};
    mr_replica set[MR_MAX_REPLICAS];
    size_t n;
    assert_int_equal(mr_isr_next(r, 2, 180, NOW, LAG, set, &n), 180);
    assert_int_equal(n, 1);
    assert_true(has(set, n, "b"));
    /* when every member fails, the most advanced stays */
    r[1].failing = 1;
    assert_int_equal(mr_isr_next(r, 2, 180, NOW, LAG, set, &n), 200);
    assert_true(has(set, n, "a"));
}

static void test_an_incarnation_is_a_replica_of_its_own(void **state)
{
    (void)state;
    /* the same node in a new life, behind the point: not the member, and its offset is not the old one's */
    mr_isr_replica r[] = {{"a", 1, 150, NOW, 0, 0, 1}, {"a", 2, 0, NOW, 0, 0, 0}};
    mr_replica set[MR_MAX_REPLICAS];
    size_t n;
    assert_int_equal(mr_isr_next(r, 2, 150, NOW, LAG, set, &n), 150);
    assert_int_equal(n, 1);
    assert_int_equal(set[0].incarnation, 1);
}

static void test_an_idle_replica_is_not_stalled_the_moment_a_peer_moves_on(void **state)
{
    (void)state;
    /* both idle for an hour; a applies a new record first: b is behind, not stalled */
    mr_isr_replica r[] = {{"a", 1, 101, NOW, 0, 0, 1}, {"b", 1, 100, NOW - 3600000, 0, 0, 1}};
    mr_replica set[MR_MAX_REPLICAS];
    size_t n;
    assert_int_equal(mr_isr_next(r, 2, 100, NOW, LAG, set, &n), 100);
    assert_int_equal(n, 2);
    assert_int_equal(r[1].behind_since_ms, NOW);
    assert_int_equal(r[0].behind_since_ms, 0);
    /* still behind and standing still lag_ms later: now it is stalled, and leaves */
    assert_int_equal(mr_isr_next(r, 2, 100, NOW + LAG + 1, LAG, set, &n), 101);
    assert_int_equal(n, 1);
    assert_true(has(set, n, "a"));
    /* caught up: no longer behind */
    r[1].applied = 101;
    mr_isr_next(r, 2, 101, NOW + LAG + 2, LAG, set, &n);
    assert_int_equal(r[1].behind_since_ms, 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_members_that_keep_up_stay_and_the_point_is_their_least),
        cmocka_unit_test(test_the_point_never_goes_back),
        cmocka_unit_test(test_a_failing_or_stalled_member_leaves),
        cmocka_unit_test(test_the_answering_member_stays_when_all_would_leave),
        cmocka_unit_test(test_an_incarnation_is_a_replica_of_its_own),
        cmocka_unit_test(test_an_idle_replica_is_not_stalled_the_moment_a_peer_moves_on),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
