/* test_record.c: record decoding, ops and document ids. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>
#include <jansson.h>

#include "record.h"

static void ops_round_trip(void **state)
{
    (void)state;
    for (int op = MR_OP_REPLACE; op <= MR_OP_UPDATE_INDEX; op++) {
        const char *name = mr_op_name((enum mr_op)op);
        assert_int_equal(mr_op_parse(name, strlen(name)), op);
    }
    assert_int_equal(mr_op_parse(NULL, 0), MR_OP_REPLACE);
    assert_int_equal(mr_op_parse("upsertx", 7), MR_OP_INVALID);
    assert_int_equal(mr_op_parse("repl", 4), MR_OP_INVALID);
    assert_false(mr_op_is_control(MR_OP_DELETE));
    assert_true(mr_op_is_control(MR_OP_SETTINGS));
}

static void docid_rules(void **state)
{
    (void)state;
    assert_true(mr_docid_valid("abc-DEF_123", 11));
    assert_false(mr_docid_valid("", 0));
    assert_false(mr_docid_valid("a b", 3));
    assert_false(mr_docid_valid("é", strlen("é")));
    char big[600];
    memset(big, 'a', sizeof big);
    assert_true(mr_docid_valid(big, 511));
    assert_false(mr_docid_valid(big, 512));

    char out[600];
    mr_error err = {0};
    json_t *v = json_integer(42);
    assert_int_equal(mr_docid_from_json(v, out, sizeof out, &err), 2);
    assert_string_equal(out, "42");
    json_decref(v);
    v = json_integer(-1);
    assert_int_equal(mr_docid_from_json(v, out, sizeof out, &err), -1);
    assert_string_equal(err.code, "invalid_document_id");
    json_decref(v);
    v = json_real(1.5);
    assert_int_equal(mr_docid_from_json(v, out, sizeof out, &err), -1);
    json_decref(v);
    v = json_string("ok_id");
    assert_int_equal(mr_docid_from_json(v, out, sizeof out, &err), 5);
    json_decref(v);
}

static void decode_documents_and_controls(void **state)
{
    (void)state;
    mr_record rec;
    mr_error err = {0};
    assert_int_equal(mr_record_decode("id1", 3, "{}", 2, NULL, 0, &rec, &err), 0);
    assert_int_equal(rec.op, MR_OP_REPLACE);
    assert_int_equal(mr_record_decode("id1", 3, NULL, 0, "delete", 6, &rec, &err), 0);
    assert_int_equal(rec.op, MR_OP_DELETE);
    assert_int_equal(mr_record_decode(NULL, 0, "{}", 2, "settings", 8, &rec, &err), 0);
    assert_int_equal(rec.op, MR_OP_SETTINGS);

    /* poison */
    memset(&err, 0, sizeof err);
    assert_int_equal(mr_record_decode("id1", 3, "{}", 2, "explode", 7, &rec, &err), -1);
    assert_int_equal(err.status, 400);
    assert_int_equal(mr_record_decode(NULL, 0, "{}", 2, NULL, 0, &rec, &err), -1); /* no key */
    assert_string_equal(err.code, "invalid_document_id");
    assert_int_equal(mr_record_decode("bad id", 6, "{}", 2, NULL, 0, &rec, &err), -1);
    assert_int_equal(mr_record_decode("id", 2, NULL, 0, "update", 6, &rec, &err), -1); /* no value */
    assert_string_equal(err.code, "missing_payload");
    assert_int_equal(mr_record_decode("k", 1, "{}", 2, "clear", 5, &rec, &err), -1); /* control with key */
}

static void index_uids(void **state)
{
    (void)state;
    assert_true(mr_index_uid_valid("packages"));
    assert_true(mr_index_uid_valid("a-b_c1"));
    assert_false(mr_index_uid_valid(""));
    assert_false(mr_index_uid_valid("has.dot"));
    assert_false(mr_index_uid_valid("has space"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(ops_round_trip),
        cmocka_unit_test(docid_rules),
        cmocka_unit_test(decode_documents_and_controls),
        cmocka_unit_test(index_uids),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
