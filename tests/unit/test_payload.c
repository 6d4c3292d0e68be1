/* test_payload.c: document bodies, validation and primary-key inference. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "payload.h"

static json_t *parse(const char *body, enum mr_payload_format fmt, mr_error *err)
{
    memset(err, 0, sizeof *err);
    return mr_payload_parse(body, strlen(body), fmt, ',', err);
}

static void content_types(void **state)
{
    (void)state;
    enum mr_payload_format f;
    mr_error err = {0};
    assert_int_equal(mr_payload_format_of("application/json", &f, &err), 0);
    assert_int_equal(f, MR_FORMAT_JSON);
    assert_int_equal(mr_payload_format_of("application/x-ndjson; charset=utf-8", &f, &err), 0);
    assert_int_equal(f, MR_FORMAT_NDJSON);
    assert_int_equal(mr_payload_format_of("TEXT/CSV", &f, &err), 0);
    assert_int_equal(f, MR_FORMAT_CSV);
    assert_int_equal(mr_payload_format_of("text/plain", &f, &err), -1);
    assert_int_equal(err.status, 415);
    assert_string_equal(err.code, "invalid_content_type");
    assert_int_equal(mr_payload_format_of(NULL, &f, &err), -1);
    assert_string_equal(err.code, "missing_content_type");
}

static void json_and_ndjson(void **state)
{
    (void)state;
    mr_error err;
    json_t *docs = parse("[{\"id\":1},{\"id\":2}]", MR_FORMAT_JSON, &err);
    assert_int_equal(json_array_size(docs), 2);
    json_decref(docs);
    docs = parse("{\"id\":1}", MR_FORMAT_JSON, &err); /* a single object is one document */
    assert_int_equal(json_array_size(docs), 1);
    json_decref(docs);
    docs = parse("{\"id\":1}\n\n  \n{\"id\":2}", MR_FORMAT_NDJSON, &err);
    assert_int_equal(json_array_size(docs), 2);
    json_decref(docs);

    assert_null(parse("[{\"id\":1},", MR_FORMAT_JSON, &err));
    assert_string_equal(err.code, "malformed_payload");
    assert_null(parse("[1,2]", MR_FORMAT_JSON, &err));
    assert_string_equal(err.code, "malformed_payload");
    assert_null(parse("\"x\"", MR_FORMAT_JSON, &err));
    assert_null(parse("{\"id\":1}\n{oops}", MR_FORMAT_NDJSON, &err));
    assert_string_equal(err.code, "malformed_payload");
    assert_non_null(strstr(err.message, "line 2"));
    assert_null(parse("", MR_FORMAT_JSON, &err));
    assert_string_equal(err.code, "missing_payload");
}

static void validation(void **state)
{
    (void)state;
    mr_error err;
    json_t *docs = parse("[{\"id\":1,\"t\":\"a\"},{\"id\":\"x-2\"}]", MR_FORMAT_JSON, &err);
    assert_int_equal(mr_documents_validate(docs, "id", &err), 0);
    json_decref(docs);

    docs = parse("[{\"id\":1},{\"name\":\"no id\"}]", MR_FORMAT_JSON, &err);
    assert_int_equal(mr_documents_validate(docs, "id", &err), -1);
    assert_string_equal(err.code, "missing_document_id");
    json_decref(docs);

    docs = parse("[{\"id\":\"a b\"}]", MR_FORMAT_JSON, &err);
    assert_int_equal(mr_documents_validate(docs, "id", &err), -1);
    assert_string_equal(err.code, "invalid_document_id");
    json_decref(docs);

    docs = parse("[{\"id\":\"ok\",\"_miroirShard\":1}]", MR_FORMAT_JSON, &err);
    assert_int_equal(mr_documents_validate(docs, "id", &err), -1);
    assert_string_equal(err.code, "miroir_reserved_field");
    json_decref(docs);
}

static void inference(void **state)
{
    (void)state;
    mr_error err;
    char pk[64];
    json_t *docs = parse("[{\"title\":\"t\",\"movieId\":1}]", MR_FORMAT_JSON, &err);
    assert_int_equal(mr_primary_key_infer(docs, pk, sizeof pk, &err), 0);
    assert_string_equal(pk, "movieId");
    json_decref(docs);
    docs = parse("[{\"title\":\"t\"}]", MR_FORMAT_JSON, &err);
    assert_int_equal(mr_primary_key_infer(docs, pk, sizeof pk, &err), -1);
    assert_string_equal(err.code, "index_primary_key_no_candidate_found");
    json_decref(docs);
    docs = parse("[{\"uid\":2,\"zid\":3,\"id\":1}]", MR_FORMAT_JSON, &err);
    assert_int_equal(mr_primary_key_infer(docs, pk, sizeof pk, &err), -1);
    assert_string_equal(err.code, "index_primary_key_multiple_candidates_found");
    /* as a node names them: sorted, the first two */
    assert_string_equal(err.message, "The primary key inference failed as the engine found 3 fields ending with `id` "
                                     "in their names: 'id' and 'uid'. Please specify the primary key manually using "
                                     "the `primaryKey` query parameter.");
    json_decref(docs);
}

static void csv(void **state)
{
    (void)state;
    mr_error err;
    json_t *docs = parse("id,title:string,price:number,ok:boolean,empty,odd:wat\r\n"
                         "1,\"Hello, \"\"world\"\"\",3.5,true,,x\n"
                         "\n"
                         "2,\"two\nlines\",7,false,y,z",
                         MR_FORMAT_CSV, &err);
    assert_non_null(docs);
    assert_int_equal(json_array_size(docs), 2);
    json_t *a = json_array_get(docs, 0), *b = json_array_get(docs, 1);
    assert_string_equal(json_string_value(json_object_get(a, "id")), "1");
    assert_string_equal(json_string_value(json_object_get(a, "title")), "Hello, \"world\"");
    assert_true(json_real_value(json_object_get(a, "price")) == 3.5);
    assert_true(json_is_true(json_object_get(a, "ok")));
    assert_true(json_is_null(json_object_get(a, "empty")));
    assert_string_equal(json_string_value(json_object_get(a, "odd:wat")), "x"); /* unknown type: part of the name */
    assert_string_equal(json_string_value(json_object_get(b, "title")), "two\nlines");
    assert_int_equal(json_integer_value(json_object_get(b, "price")), 7);
    json_decref(docs);

    assert_null(parse("id,n:number\n1,abc\n", MR_FORMAT_CSV, &err));
    assert_string_equal(err.code, "malformed_payload");
    assert_null(parse("id,t\n1,a,b\n", MR_FORMAT_CSV, &err));
    assert_string_equal(err.code, "malformed_payload");
    assert_null(parse("id,t\n1,\"open\n", MR_FORMAT_CSV, &err));
    assert_string_equal(err.code, "malformed_payload");
    memset(&err, 0, sizeof err);
    docs = mr_payload_parse("id;t\n1;a\n", 10, MR_FORMAT_CSV, ';', &err);
    assert_string_equal(json_string_value(json_object_get(json_array_get(docs, 0), "t")), "a");
    json_decref(docs);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(content_types),
        cmocka_unit_test(json_and_ndjson),
        cmocka_unit_test(validation),
        cmocka_unit_test(inference),
        cmocka_unit_test(csv),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
