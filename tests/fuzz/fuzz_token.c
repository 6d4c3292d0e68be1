/* fuzz_token.c: tenant tokens as the gateway reads them from an Authorization header: the
 * unchecked claims (to find the signing key), the signature and expiry check, then the search
 * rules and the filter they add to a search.
 * Input: a token; or, when it is not shaped like a JWT, a JSON array [searchRules, filter]. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "auth.h"

#define KEY "65ad56cdd9f8281ed6f0ad34e99198f787721cc97d41f67e1995837beecb44a1"

static void apply_rules(const json_t *rules, const json_t *filter)
{
    static const char *const indexes[] = {"movies", "shop_eu", "", "a"};
    for (size_t i = 0; i < sizeof indexes / sizeof indexes[0]; i++) {
        json_t *rule_filter = NULL;
        if (mr_search_rules_allow(rules, indexes[i], &rule_filter) && rule_filter) {
            json_t *search = filter ? json_pack("{s:O}", "filter", filter) : json_object();
            mr_search_add_filter(search, rule_filter);
            json_decref(search);
        }
        json_decref(rule_filter);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *text = malloc(size + 1);
    memcpy(text, data, size);
    text[size] = '\0';
    mr_error err;
    if (mr_is_jwt(text)) {
        char uid[MR_KEY_UID_LEN];
        if (mr_tenant_token_key_uid(text, uid, &err) == 0) {
            json_t *rules = mr_tenant_token_verify(text, KEY, 1800000000, &err);
            if (rules)
                apply_rules(rules, NULL);
            json_decref(rules);
        }
    } else {
        json_t *v = json_loads(text, 0, NULL);
        json_t *rules = json_array_get(v, 0);
        if (json_is_object(rules) || json_is_array(rules))
            apply_rules(rules, json_array_get(v, 1));
        json_decref(v);
    }
    free(text);
    return 0;
}
