/* test_task.c: a task's view from its record and the facts of its parts (task.h), pure. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "task.h"

/* A document task over two shards: [0, 10, 12] and [2, 5, 5]. */
static json_t *record(void)
{
    json_t *t = json_pack("{s:i, s:s, s:s, s:s, s:s, s:{s:i, s:n}, s:[[i,i,i],[i,i,i]]}", "uid", 7, "indexUid", "movies",
                          "storage", "movies-1", "type", "documentAdditionOrUpdate", "enqueuedAt",
                          "2026-01-01T00:00:00.000000000Z", "details", "receivedDocuments", 4, "indexedDocuments",
                          "parts", 0, 10, 12, 2, 5, 5);
    return t;
}

static mr_task_facts facts(int64_t c0, int64_t c1)
{
    mr_task_facts f = {.part_count = 2, .canceled_by = -1};
    f.parts = test_calloc(2, sizeof *f.parts);
    f.parts[0].committed = c0;
    f.parts[1].committed = c1;
    snprintf(f.parts[0].committed_at, sizeof f.parts[0].committed_at, "2026-01-01T00:00:01.500000000Z");
    snprintf(f.parts[1].committed_at, sizeof f.parts[1].committed_at, "2026-01-01T00:00:00.250000000Z");
    return f;
}

static const char *status_of(const json_t *view)
{
    return json_string_value(json_object_get(view, "status"));
}

static void enqueued_then_processing_then_succeeded(void **state)
{
    (void)state;
    json_t *t = record();
    mr_task_facts f = facts(10, 5); /* nothing applied yet: commit points at the parts' first records */
    json_t *v = mr_task_view_of(t, &f);
    assert_string_equal(status_of(v), "enqueued");
    assert_true(json_is_null(json_object_get(v, "startedAt")));
    assert_true(json_is_null(json_object_get(json_object_get(v, "details"), "indexedDocuments")));
    json_decref(v);
    f.parts[0].started = 1;
    v = mr_task_view_of(t, &f);
    assert_string_equal(status_of(v), "processing");
    json_decref(v);
    f.parts[0].started = 0;
    f.parts[1].committed = 6; /* one part done is processing too */
    v = mr_task_view_of(t, &f);
    assert_string_equal(status_of(v), "processing");
    json_decref(v);
    f.parts[0].committed = 13;
    v = mr_task_view_of(t, &f);
    assert_string_equal(status_of(v), "succeeded");
    /* finished when the last part was: its commit's time; duration from the enqueue */
    assert_string_equal(json_string_value(json_object_get(v, "finishedAt")), "2026-01-01T00:00:01.500000000Z");
    assert_string_equal(json_string_value(json_object_get(v, "duration")), "PT1.500S");
    assert_int_equal(json_integer_value(json_object_get(json_object_get(v, "details"), "indexedDocuments")), 4);
    json_decref(v);
    test_free(f.parts);
    json_decref(t);
}

/* Every task is a batch of its own from when it starts: its batch says what a node's would. */
static void a_started_task_is_a_batch_of_its_own(void **state)
{
    (void)state;
    json_t *t = record();
    mr_task_facts f = facts(10, 5);
    json_t *v = mr_task_view_of(t, &f);
    assert_true(json_is_null(json_object_get(v, "batchUid"))); /* enqueued: in no batch yet */
    assert_null(mr_task_batch_view(v));
    json_decref(v);
    f.parts[0].started = 1;
    v = mr_task_view_of(t, &f);
    assert_int_equal(json_integer_value(json_object_get(v, "batchUid")), 7);
    json_t *b = mr_task_batch_view(v);
    assert_non_null(json_object_get(b, "progress")); /* running: its progress */
    assert_true(json_is_null(json_object_get(b, "finishedAt")) && json_is_null(json_object_get(b, "duration")));
    json_decref(b);
    json_decref(v);
    f.parts[0].started = 0;
    f.parts[0].committed = 13;
    f.parts[1].committed = 6;
    v = mr_task_view_of(t, &f);
    b = mr_task_batch_view(v);
    assert_int_equal(json_integer_value(json_object_get(b, "uid")), 7);
    assert_true(json_is_null(json_object_get(b, "progress")));
    json_t *stats = json_object_get(b, "stats");
    assert_int_equal(json_integer_value(json_object_get(stats, "totalNbTasks")), 1);
    assert_int_equal(json_integer_value(json_object_get(json_object_get(stats, "status"), "succeeded")), 1);
    assert_int_equal(json_integer_value(json_object_get(json_object_get(stats, "types"), "documentAdditionOrUpdate")), 1);
    assert_int_equal(json_integer_value(json_object_get(json_object_get(stats, "indexUids"), "movies")), 1);
    assert_true(json_equal(json_object_get(b, "details"), json_object_get(v, "details")));
    assert_string_equal(json_string_value(json_object_get(b, "duration")), "PT1.500S");
    assert_string_equal(json_string_value(json_object_get(b, "startedAt")), json_string_value(json_object_get(v, "startedAt")));
    assert_string_equal(json_string_value(json_object_get(b, "finishedAt")), "2026-01-01T00:00:01.500000000Z");
    assert_int_equal(json_object_size(b), 8);
    json_decref(b);
    json_decref(v);
    test_free(f.parts);
    json_decref(t);
}

static void dead_letters_fail_the_task(void **state)
{
    (void)state;
    json_t *t = record();
    mr_task_facts f = facts(13, 6);
    f.parts[1].dead = 1;
    f.parts[1].error = json_pack("{s:s, s:s, s:s, s:s}", "message", "bad", "code", "invalid_document_id", "type",
                                 "invalid_request", "link", "x");
    json_t *v = mr_task_view_of(t, &f);
    assert_string_equal(status_of(v), "failed");
    assert_string_equal(json_string_value(json_object_get(json_object_get(v, "error"), "code")), "invalid_document_id");
    /* the other records were applied, and said so */
    assert_int_equal(json_integer_value(json_object_get(json_object_get(v, "details"), "indexedDocuments")), 3);
    json_decref(v);
    json_decref(f.parts[1].error);
    test_free(f.parts);
    json_decref(t);
}

static void writes_after_a_deletion_fail_never_succeed(void **state)
{
    (void)state;
    json_t *t = record();
    mr_task_facts f = facts(13, 0);
    f.parts[1].after_deletion = 1;
    json_t *v = mr_task_view_of(t, &f);
    assert_string_equal(status_of(v), "failed");
    assert_string_equal(json_string_value(json_object_get(json_object_get(v, "error"), "code")), "index_not_found");
    json_decref(v);
    /* a collected incarnation: everything it had is done with */
    f.parts[0].ended = f.parts[1].ended = 1;
    f.parts[1].after_deletion = 0;
    f.parts[0].committed = f.parts[1].committed = 0;
    v = mr_task_view_of(t, &f);
    assert_string_equal(status_of(v), "succeeded");
    json_decref(v);
    test_free(f.parts);
    json_decref(t);
}

static void canceled_and_cancelation_tasks(void **state)
{
    (void)state;
    json_t *t = record();
    mr_task_facts f = facts(10, 5);
    f.canceled_by = 9;
    snprintf(f.canceled_at, sizeof f.canceled_at, "2026-01-01T00:00:02Z");
    json_t *v = mr_task_view_of(t, &f);
    assert_string_equal(status_of(v), "canceled");
    assert_int_equal(json_integer_value(json_object_get(v, "canceledBy")), 9);
    assert_string_equal(json_string_value(json_object_get(v, "finishedAt")), "2026-01-01T00:00:02Z");
    assert_int_equal(json_integer_value(json_object_get(json_object_get(v, "details"), "indexedDocuments")), 0);
    json_decref(v);
    test_free(f.parts);
    json_decref(t);

    json_t *c = json_pack("{s:i, s:s, s:s, s:{s:i, s:n, s:s}, s:[], s:[i,i]}", "uid", 9, "type", "taskCancelation",
                          "enqueuedAt", "2026-01-01T00:00:02Z", "details", "matchedTasks", 2, "canceledTasks",
                          "originalFilter", "?uids=7,8", "parts", "cancels", 7, 8);
    mr_task_facts cf = {.canceled_by = -1, .deciding = 1};
    v = mr_task_view_of(c, &cf);
    assert_string_equal(status_of(v), "processing");
    assert_true(json_is_null(json_object_get(json_object_get(v, "details"), "canceledTasks")));
    json_decref(v);
    cf.deciding = 0;
    cf.canceled_tasks = 1;
    v = mr_task_view_of(c, &cf);
    assert_string_equal(status_of(v), "succeeded");
    assert_int_equal(json_integer_value(json_object_get(json_object_get(v, "details"), "canceledTasks")), 1);
    json_decref(v);
    json_decref(c);
}

static void failed_before_writing(void **state)
{
    (void)state;
    json_t *t = json_pack("{s:i, s:s, s:s, s:s, s:{}, s:[], s:{s:s, s:s, s:s, s:s}}", "uid", 3, "indexUid", "x", "type",
                          "indexCreation", "enqueuedAt", "2026-01-01T00:00:00Z", "details", "parts", "error", "message",
                          "Index `x` already exists.", "code", "index_already_exists", "type", "invalid_request", "link",
                          "y");
    mr_task_facts f = {.canceled_by = -1};
    json_t *v = mr_task_view_of(t, &f);
    assert_string_equal(status_of(v), "failed");
    assert_string_equal(json_string_value(json_object_get(v, "finishedAt")), "2026-01-01T00:00:00Z");
    assert_string_equal(json_string_value(json_object_get(v, "duration")), "PT0S");
    json_decref(v);
    json_decref(t);
}

static void iso_durations_like_meilisearch(void **state)
{
    (void)state;
    char d[64];
    mr_iso_duration(d, sizeof d, 0);
    assert_string_equal(d, "PT0S");
    mr_iso_duration(d, sizeof d, 12000000);
    assert_string_equal(d, "PT0.012S");
    mr_iso_duration(d, sizeof d, 1500);
    assert_string_equal(d, "PT0.000001500S");
    mr_iso_duration(d, sizeof d, 3000);
    assert_string_equal(d, "PT0.000003S");
    mr_iso_duration(d, sizeof d, (86400LL + 2) * 1000000000LL);
    assert_string_equal(d, "P1DT2S");
    mr_iso_duration(d, sizeof d, 86400LL * 1000000000LL);
    assert_string_equal(d, "P1D");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(enqueued_then_processing_then_succeeded),
        cmocka_unit_test(a_started_task_is_a_batch_of_its_own),
        cmocka_unit_test(dead_letters_fail_the_task),
        cmocka_unit_test(writes_after_a_deletion_fail_never_succeed),
        cmocka_unit_test(canceled_and_cancelation_tasks),
        cmocka_unit_test(failed_before_writing),
        cmocka_unit_test(iso_durations_like_meilisearch),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
