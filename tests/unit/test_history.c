/* test_history.c: what a shard's partition must keep, and when a checkpoint is due. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "history.h"

/* Without a checkpoint nothing goes: a restore would have nothing else to start from. */
static void nothing_goes_without_a_checkpoint(void **state)
{
    (void)state;
    int64_t applied[] = {900, 950};
    assert_int_equal(mr_history_keep_from(-1, applied, 2, -1), 0);
}

/* Everything below the checkpoint goes when every replica is past it. */
static void below_the_checkpoint_goes(void **state)
{
    (void)state;
    int64_t applied[] = {900, 950, 1000};
    assert_int_equal(mr_history_keep_from(800, applied, 3, -1), 800);
}

/* A replica behind the checkpoint (a node that was down, a rebuild that replays) keeps what it
 * has yet to read; so does a record held for a cancelation not decided yet. */
static void a_replica_behind_or_a_hold_keeps_its_records(void **state)
{
    (void)state;
    int64_t applied[] = {900, 120, 1000};
    assert_int_equal(mr_history_keep_from(800, applied, 3, -1), 120);
    int64_t ahead[] = {900, 950};
    assert_int_equal(mr_history_keep_from(800, ahead, 2, 300), 300);
    assert_int_equal(mr_history_keep_from(800, ahead, 2, 850), 800);
    int64_t fresh[] = {0, 950};
    assert_int_equal(mr_history_keep_from(800, fresh, 2, -1), 0);
    assert_int_equal(mr_history_keep_from(800, NULL, 0, -1), 800);
}

static void a_checkpoint_is_due_once_the_history_outgrows_the_documents(void **state)
{
    (void)state;
    /* 10,000 live documents, ratio 1: due after 10,000 records since the last checkpoint */
    assert_false(mr_history_checkpoint_due(9999, -1, 10000, 1.0, 1000));
    assert_true(mr_history_checkpoint_due(10000, -1, 10000, 1.0, 1000));
    assert_false(mr_history_checkpoint_due(15000, 10000, 10000, 1.0, 1000));
    assert_true(mr_history_checkpoint_due(20000, 10000, 10000, 1.0, 1000));
    /* an empty or tiny shard waits for min_records */
    assert_false(mr_history_checkpoint_due(999, -1, 0, 1.0, 1000));
    assert_true(mr_history_checkpoint_due(1000, -1, 0, 1.0, 1000));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(nothing_goes_without_a_checkpoint),
        cmocka_unit_test(below_the_checkpoint_goes),
        cmocka_unit_test(a_replica_behind_or_a_hold_keeps_its_records),
        cmocka_unit_test(a_checkpoint_is_due_once_the_history_outgrows_the_documents),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
