/* test_fold.c: a window of records folded per document (fold.h) leaves what the records left. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "fold.h"

static void add(json_t *fold, enum mr_op op, const char *id, const char *doc)
{
    mr_fold_add(fold, op, id, strlen(id), doc ? json_loads(doc, 0, NULL) : NULL);
}

static void expect(json_t *fold, const char *id, char kind, const char *doc)
{
    json_t *e = json_object_get(fold, id);
    assert_non_null(e);
    assert_int_equal(mr_fold_kind(e), kind);
    if (doc) {
        json_t *want = json_loads(doc, 0, NULL);
        assert_true(json_equal(json_array_get(e, 1), want));
        json_decref(want);
    } else {
        assert_true(json_is_null(json_array_get(e, 1)));
    }
}

static void each_rule(void **state)
{
    (void)state;
    json_t *f = json_object();
    add(f, MR_OP_REPLACE, "a", "{\"id\":\"a\",\"x\":1}");
    add(f, MR_OP_UPDATE, "a", "{\"id\":\"a\",\"y\":2}"); /* replace then update: replace of both */
    expect(f, "a", 'r', "{\"id\":\"a\",\"x\":1,\"y\":2}");
    add(f, MR_OP_UPDATE, "b", "{\"id\":\"b\",\"y\":1}"); /* update of what the window hasn't seen */
    add(f, MR_OP_UPDATE, "b", "{\"id\":\"b\",\"y\":2,\"z\":3}");
    expect(f, "b", 'u', "{\"id\":\"b\",\"y\":2,\"z\":3}");
    add(f, MR_OP_REPLACE, "c", "{\"id\":\"c\",\"x\":1}");
    add(f, MR_OP_DELETE, "c", NULL);
    expect(f, "c", 'd', NULL);
    add(f, MR_OP_UPDATE, "c", "{\"id\":\"c\",\"y\":9}"); /* an update after a delete creates */
    expect(f, "c", 'r', "{\"id\":\"c\",\"y\":9}");
    add(f, MR_OP_UPDATE, "d", "{\"id\":\"d\",\"y\":1}");
    add(f, MR_OP_REPLACE, "d", "{\"id\":\"d\",\"x\":5}"); /* a replace drops what came before */
    expect(f, "d", 'r', "{\"id\":\"d\",\"x\":5}");
    add(f, MR_OP_DELETE, "e", NULL);
    add(f, MR_OP_REPLACE, "e", "{\"id\":\"e\"}");
    expect(f, "e", 'r', "{\"id\":\"e\"}");
    /* nested objects are replaced whole, as a partial update does */
    add(f, MR_OP_REPLACE, "g", "{\"id\":\"g\",\"o\":{\"p\":1,\"q\":2}}");
    add(f, MR_OP_UPDATE, "g", "{\"id\":\"g\",\"o\":{\"p\":3}}");
    expect(f, "g", 'r', "{\"id\":\"g\",\"o\":{\"p\":3}}");
    assert_int_equal(json_object_size(f), 6);
    json_decref(f);
}

int main(void)
{
    const struct CMUnitTest tests[] = {cmocka_unit_test(each_rule)};
    return cmocka_run_group_tests(tests, NULL, NULL);
}
