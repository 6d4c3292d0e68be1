/* test_auth.c: key values, rights, key records, tenant tokens and their filters. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <jwt.h>

#include "auth.h"

#define NOW 1800000000 /* 2027-01-15 */

static json_t *j(const char *text)
{
    json_t *v = json_loads(text, JSON_DECODE_ANY, NULL);
    assert_non_null(v);
    return v;
}

/* Meilisearch's value for a key: HMAC-SHA256(master, uid) in hex (checked against a node in
 * test_security.py; this pins the vector). */
static void test_key_value(void **state)
{
    (void)state;
    char v[MR_KEY_VALUE_LEN];
    mr_key_value("masterKey-0123456789abcdef", "ae95db00-728a-40aa-bb10-ee10831f912b", v);
    assert_string_equal(v, "65ad56cdd9f8281ed6f0ad34e99198f787721cc97d41f67e1995837beecb44a1");
    char a[MR_KEY_UID_LEN], b[MR_KEY_UID_LEN], c[MR_KEY_UID_LEN];
    mr_key_derived_uid("m", "Default Search API Key", a);
    mr_key_derived_uid("m", "Default Search API Key", b);
    mr_key_derived_uid("m", "Default Admin API Key", c);
    assert_string_equal(a, b);
    assert_string_not_equal(a, c);
    assert_int_equal(strlen(a), 36);
    assert_int_equal(a[14], '4'); /* a version-4 UUID, as SDKs expect */
}

static void test_actions(void **state)
{
    (void)state;
    json_t *all = j("[\"*\"]"), *docs = j("[\"documents.*\", \"search\"]"), *gets = j("[\"*.get\"]");
    assert_true(mr_key_allows_action(all, "documents.add"));
    assert_true(mr_key_allows_action(all, MR_ACTION_CLUSTER_ADMIN));
    assert_true(mr_key_allows_action(docs, "documents.delete"));
    assert_true(mr_key_allows_action(docs, "search"));
    assert_false(mr_key_allows_action(docs, "settings.update"));
    assert_false(mr_key_allows_action(docs, MR_ACTION_CLUSTER_ADMIN));
    assert_true(mr_key_allows_action(gets, "settings.get"));
    assert_false(mr_key_allows_action(gets, "settings.update"));
    assert_false(mr_key_allows_action(gets, "search"));
    json_decref(all);
    json_decref(docs);
    json_decref(gets);
}

static void test_indexes(void **state)
{
    (void)state;
    json_t *p = j("[\"movies\", \"shop_*\"]"), *all = j("[\"*\"]");
    assert_true(mr_key_allows_index(p, "movies"));
    assert_false(mr_key_allows_index(p, "movies2"));
    assert_true(mr_key_allows_index(p, "shop_eu"));
    assert_false(mr_key_allows_index(p, "shopping"));
    assert_true(mr_key_allows_index(all, "anything"));
    json_decref(p);
    json_decref(all);
}

static void test_create_and_update(void **state)
{
    (void)state;
    mr_error err = {0};
    json_t *body = j("{\"actions\":[\"search\"],\"indexes\":[\"m*\"],\"expiresAt\":\"2030-01-01\",\"name\":\"n\"}");
    json_t *key = mr_key_create(body, "11111111-2222-4333-8444-555555555555", (struct timespec){NOW, 123456789}, &err);
    assert_non_null(key);
    assert_string_equal(json_string_value(json_object_get(key, "expiresAt")), "2030-01-01T00:00:00Z");
    /* Meilisearch's form, which some clients need: nanoseconds */
    const char *created = json_string_value(json_object_get(key, "createdAt"));
    assert_non_null(strstr(created, ".123456789Z"));
    assert_string_equal(created, json_string_value(json_object_get(key, "updatedAt")));
    assert_string_equal(json_string_value(json_object_get(key, "uid")), "11111111-2222-4333-8444-555555555555");
    assert_false(mr_key_expired(key, NOW));
    assert_true(mr_key_expired(key, 1893456000)); /* 2030-01-01 */

    static const struct {
        const char *body, *code;
    } bad[] = {
        {"{\"indexes\":[\"m\"],\"expiresAt\":null}", "missing_api_key_actions"},
        {"{\"actions\":[\"nope\"],\"indexes\":[\"m\"],\"expiresAt\":null}", "invalid_api_key_actions"},
        {"{\"actions\":[\"search\"],\"expiresAt\":null}", "missing_api_key_indexes"},
        {"{\"actions\":[\"search\"],\"indexes\":[\"a*b\"],\"expiresAt\":null}", "invalid_api_key_indexes"},
        {"{\"actions\":[\"search\"],\"indexes\":[\"m\"]}", "missing_api_key_expires_at"},
        {"{\"actions\":[\"search\"],\"indexes\":[\"m\"],\"expiresAt\":\"2020-01-01T00:00:00Z\"}", "invalid_api_key_expires_at"},
        {"{\"actions\":[\"search\"],\"indexes\":[\"m\"],\"expiresAt\":\"2030-13-01\"}", "invalid_api_key_expires_at"},
        {"{\"actions\":[\"search\"],\"indexes\":[\"m\"],\"expiresAt\":\"soon\"}", "invalid_api_key_expires_at"},
        {"{\"uid\":\"x\",\"actions\":[\"search\"],\"indexes\":[\"m\"],\"expiresAt\":null}", "invalid_api_key_uid"},
        {"{\"name\":3,\"actions\":[\"search\"],\"indexes\":[\"m\"],\"expiresAt\":null}", "invalid_api_key_name"},
        {"{\"actions\":[\"search\"],\"indexes\":[\"m\"],\"expiresAt\":null,\"x\":1}", "bad_request"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        json_t *b = j(bad[i].body);
        json_t *k = mr_key_create(b, "11111111-2222-4333-8444-555555555555", (struct timespec){NOW, 0}, &err);
        assert_null(k);
        assert_string_equal(err.code, bad[i].code);
        assert_int_equal(err.status, 400);
        json_decref(b);
    }

    json_t *patch = j("{\"description\":\"d\"}");
    json_t *updated = mr_key_update(key, patch, (struct timespec){NOW + 5, 5}, &err);
    assert_non_null(updated);
    assert_string_equal(json_string_value(json_object_get(updated, "description")), "d");
    assert_string_equal(json_string_value(json_object_get(updated, "name")), "n");
    assert_non_null(strstr(json_string_value(json_object_get(updated, "updatedAt")), ".000000005Z"));
    json_t *precise = j("{\"actions\":[\"search\"],\"indexes\":[\"m\"],\"expiresAt\":\"2031-02-03T04:05:06.25+01:00\"}");
    json_t *k2 = mr_key_create(precise, "11111111-2222-4333-8444-555555555556", (struct timespec){NOW, 0}, &err);
    assert_string_equal(json_string_value(json_object_get(k2, "expiresAt")), "2031-02-03T03:05:06.250000000Z");
    json_decref(k2);
    json_decref(precise);
    json_t *immutable = j("{\"indexes\":[\"*\"]}");
    assert_null(mr_key_update(key, immutable, (struct timespec){NOW, 0}, &err));
    assert_string_equal(err.code, "immutable_api_key_indexes");

    json_t *view = mr_key_view(key, "master");
    char v[MR_KEY_VALUE_LEN];
    mr_key_value("master", "11111111-2222-4333-8444-555555555555", v);
    assert_string_equal(json_string_value(json_object_get(view, "key")), v);
    json_decref(view);
    json_decref(immutable);
    json_decref(updated);
    json_decref(patch);
    json_decref(key);
    json_decref(body);
}

static char *sign(const char *claims, const char *key, jwt_alg_t alg)
{
    jwt_t *jwt = NULL;
    assert_int_equal(jwt_new(&jwt), 0);
    assert_int_equal(jwt_add_grants_json(jwt, claims), 0);
    assert_int_equal(jwt_set_alg(jwt, alg, (const unsigned char *)key, (int)strlen(key)), 0);
    char *token = jwt_encode_str(jwt);
    jwt_free(jwt);
    return token;
}

static void test_tenant_token(void **state)
{
    (void)state;
    const char *key = "65ad56cdd9f8281ed6f0ad34e99198f787721cc97d41f67e1995837beecb44a1";
    char *token = sign("{\"apiKeyUid\":\"ae95db00-728a-40aa-bb10-ee10831f912b\",\"exp\":1900000000,"
                       "\"searchRules\":{\"shop_*\":null,\"shop_eu\":{\"filter\":\"tenant = 1\"}}}",
                       key, JWT_ALG_HS256);
    mr_error err = {0};
    char uid[MR_KEY_UID_LEN];
    assert_true(mr_is_jwt(token));
    assert_false(mr_is_jwt(key));
    assert_int_equal(mr_tenant_token_key_uid(token, uid, &err), 0);
    assert_string_equal(uid, "ae95db00-728a-40aa-bb10-ee10831f912b");
    json_t *rules = mr_tenant_token_verify(token, key, NOW, &err);
    assert_non_null(rules);
    assert_null(mr_tenant_token_verify(token, "another key", NOW, &err));
    assert_string_equal(err.code, "invalid_api_key");
    assert_null(mr_tenant_token_verify(token, key, 1900000000, &err)); /* expired */
    assert_non_null(strstr(err.message, "expired"));

    json_t *filter = NULL;
    assert_true(mr_search_rules_allow(rules, "shop_eu", &filter)); /* the exact rule wins */
    assert_string_equal(json_string_value(filter), "tenant = 1");
    json_decref(filter);
    assert_true(mr_search_rules_allow(rules, "shop_us", &filter));
    assert_null(filter);
    assert_false(mr_search_rules_allow(rules, "movies", &filter));
    json_decref(rules);
    free(token);

    char *hs512 = sign("{\"apiKeyUid\":\"ae95db00-728a-40aa-bb10-ee10831f912b\",\"searchRules\":[\"*\"]}", key,
                       JWT_ALG_HS512);
    rules = mr_tenant_token_verify(hs512, key, NOW, &err);
    assert_non_null(rules);
    json_decref(rules);
    free(hs512);

    /* a rule that is a bare string (a common slip for {"filter": …}) must not grant the index
     * unfiltered: the token is refused */
    char *slip = sign("{\"apiKeyUid\":\"ae95db00-728a-40aa-bb10-ee10831f912b\","
                      "\"searchRules\":{\"shop\":\"tenant = 1\"}}", key, JWT_ALG_HS256);
    assert_null(mr_tenant_token_verify(slip, key, NOW, &err));
    free(slip);
    json_t *bad_rules = j("{\"shop\":\"tenant = 1\"}");
    assert_false(mr_search_rules_allow(bad_rules, "shop", &filter));
    json_decref(bad_rules);

    char *no_rules = sign("{\"apiKeyUid\":\"ae95db00-728a-40aa-bb10-ee10831f912b\"}", key, JWT_ALG_HS256);
    assert_null(mr_tenant_token_verify(no_rules, key, NOW, &err));
    free(no_rules);
    /* alg none: unsigned, never accepted with a key */
    const char *none = "eyJhbGciOiJub25lIn0.eyJzZWFyY2hSdWxlcyI6WyIqIl0sImFwaUtleVVpZCI6ImFlOTVkYjAwLTcyOGEtNDBhYS1iYjEwLWVlMTA4MzFmOTEyYiJ9.";
    assert_null(mr_tenant_token_verify(none, key, NOW, &err));
    assert_int_equal(mr_tenant_token_key_uid("a.b.c", uid, &err), -1);
}

static void test_filters_stay_separate(void **state)
{
    (void)state;
    json_t *search = j("{\"q\":\"\",\"filter\":\"a = 1) OR (b = 2\"}");
    json_t *rule = j("\"tenant = 7\"");
    assert_int_equal(mr_search_add_filter(search, rule), 0);
    char *s = json_dumps(json_object_get(search, "filter"), JSON_COMPACT);
    assert_string_equal(s, "[\"tenant = 7\",\"a = 1) OR (b = 2\"]");
    free(s);
    json_decref(search);

    search = j("{\"filter\":[[\"x = 1\",\"y = 2\"],\"z = 3\"]}");
    json_t *rules = j("[\"t = 1\",[\"u = 1\",\"u = 2\"]]");
    assert_int_equal(mr_search_add_filter(search, rules), 0);
    s = json_dumps(json_object_get(search, "filter"), JSON_COMPACT);
    assert_string_equal(s, "[\"t = 1\",[\"u = 1\",\"u = 2\"],[\"x = 1\",\"y = 2\"],\"z = 3\"]");
    free(s);
    json_decref(search);

    search = j("{\"filter\":3}");
    assert_int_equal(mr_search_add_filter(search, rule), -1);
    json_decref(search);
    search = j("{}");
    assert_int_equal(mr_search_add_filter(search, rule), 0);
    assert_string_equal(json_string_value(json_array_get(json_object_get(search, "filter"), 0)), "tenant = 7");
    json_decref(search);
    json_decref(rules);
    json_decref(rule);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_key_value),  cmocka_unit_test(test_actions),       cmocka_unit_test(test_indexes),
        cmocka_unit_test(test_create_and_update), cmocka_unit_test(test_tenant_token),
        cmocka_unit_test(test_filters_stay_separate),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
