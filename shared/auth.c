/* auth.c: key values, key records, tenant tokens and search rules. */
#include "auth.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <jwt.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* Meilisearch 1.21's actions, in the order its error messages list them. */
static const char *const known_actions[] = {
    "*", "search", "documents.*", "documents.add", "documents.get", "documents.delete", "indexes.*",
    "indexes.create", "indexes.get", "indexes.update", "indexes.delete", "indexes.swap", "tasks.*",
    "tasks.cancel", "tasks.delete", "tasks.get", "settings.*", "settings.get", "settings.update", "stats.*",
    "stats.get", "metrics.*", "metrics.get", "dumps.*", "dumps.create", "snapshots.*", "snapshots.create",
    "version", "keys.create", "keys.get", "keys.update", "keys.delete", "experimental.get",
    "experimental.update", "export", "network.get", "network.update", "chatCompletions", "chats.*",
    "chats.get", "chats.delete", "chatsSettings.*", "chatsSettings.get", "chatsSettings.update", "*.get",
    "webhooks.get", "webhooks.update", "webhooks.delete", "webhooks.create", "webhooks.*",
};

static void hmac_hex(const char *key, const char *msg, char out[MR_KEY_VALUE_LEN])
{
    unsigned char mac[EVP_MAX_MD_SIZE];
    unsigned int len = 0;
    HMAC(EVP_sha256(), key, (int)strlen(key), (const unsigned char *)msg, strlen(msg), mac, &len);
    for (unsigned int i = 0; i < len && i < 32; i++)
        snprintf(out + 2 * i, 3, "%02x", mac[i]);
    out[64] = '\0';
}

void mr_key_value(const char *master, const char *uid, char out[MR_KEY_VALUE_LEN])
{
    hmac_hex(master, uid, out);
}

static void format_uuid4(const unsigned char b[16], char out[MR_KEY_UID_LEN])
{
    unsigned char v[16];
    memcpy(v, b, 16);
    v[6] = (unsigned char)((v[6] & 0x0f) | 0x40);
    v[8] = (unsigned char)((v[8] & 0x3f) | 0x80);
    snprintf(out, MR_KEY_UID_LEN, "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x", v[0], v[1],
             v[2], v[3], v[4], v[5], v[6], v[7], v[8], v[9], v[10], v[11], v[12], v[13], v[14], v[15]);
}

void mr_key_derived_uid(const char *master, const char *label, char out[MR_KEY_UID_LEN])
{
    char hex[MR_KEY_VALUE_LEN];
    char msg[256];
    snprintf(msg, sizeof msg, "miroir default key: %s", label);
    hmac_hex(master, msg, hex);
    unsigned char b[16];
    for (int i = 0; i < 16; i++)
        sscanf(hex + 2 * i, "%2hhx", &b[i]);
    format_uuid4(b, out);
}

int mr_key_random_uid(char out[MR_KEY_UID_LEN])
{
    unsigned char b[16];
    int fd = open("/dev/urandom", O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -1;
    ssize_t n = read(fd, b, sizeof b);
    close(fd);
    if (n != (ssize_t)sizeof b)
        return -1;
    format_uuid4(b, out);
    return 0;
}

static int action_grants(const char *granted, const char *action)
{
    if (strcmp(granted, "*") == 0 || strcmp(granted, action) == 0)
        return strcmp(action, MR_ACTION_CLUSTER_ADMIN) != 0 || strcmp(granted, "*") == 0;
    size_t n = strlen(granted);
    if (n > 2 && strcmp(granted + n - 2, ".*") == 0) /* "documents.*" grants "documents.add" */
        return strncmp(granted, action, n - 1) == 0;
    if (strcmp(granted, "*.get") == 0) {
        size_t a = strlen(action);
        return a > 4 && strcmp(action + a - 4, ".get") == 0;
    }
    return 0;
}

static int pattern_matches(const char *pattern, const char *index)
{
    size_t n = strlen(pattern);
    if (n > 0 && pattern[n - 1] == '*')
        return strncmp(pattern, index, n - 1) == 0;
    return strcmp(pattern, index) == 0;
}

/* Whether some string of list grants what. */
static int any_grants(const json_t *list, int (*grants)(const char *granted, const char *what), const char *what)
{
    size_t i;
    json_t *v;
    json_array_foreach(list, i, v) {
        const char *s = json_string_value(v);
        if (s && grants(s, what))
            return 1;
    }
    return 0;
}

int mr_key_allows_action(const json_t *actions, const char *action)
{
    return any_grants(actions, action_grants, action);
}

int mr_key_allows_index(const json_t *indexes, const char *index)
{
    return any_grants(indexes, pattern_matches, index);
}

/* Parses Meilisearch's accepted date forms (RFC 3339, "YYYY-MM-DD", "YYYY-MM-DD HH:MM:SS") into
 * seconds since the epoch. Returns 0 or -1. */
static int parse_date(const char *s, time_t *out, long *nsec)
{
    struct tm tm = {0};
    *nsec = 0;
    int consumed = 0;
    if (sscanf(s, "%4d-%2d-%2d%n", &tm.tm_year, &tm.tm_mon, &tm.tm_mday, &consumed) != 3 || consumed != 10)
        return -1;
    const char *p = s + consumed;
    long offset = 0;
    if (*p == 'T' || *p == 't' || *p == ' ') {
        int n = 0;
        if (sscanf(p + 1, "%2d:%2d:%2d%n", &tm.tm_hour, &tm.tm_min, &tm.tm_sec, &n) != 3 || n != 8)
            return -1;
        p += 1 + n;
        if (*p == '.')
            for (long scale = 100000000; isdigit((unsigned char)*++p); scale /= 10)
                *nsec += (*p - '0') * scale;
        if (*p == 'Z' || *p == 'z') {
            p++;
        } else if (*p == '+' || *p == '-') {
            int hh, mm;
            if (sscanf(p + 1, "%2d:%2d%n", &hh, &mm, &n) != 2 || n != 5)
                return -1;
            offset = (*p == '+' ? 1 : -1) * (hh * 3600L + mm * 60L);
            p += 1 + n;
        } else if (s[10] != ' ') {
            return -1; /* RFC 3339 needs a zone */
        }
    }
    if (*p != '\0' || tm.tm_mon < 1 || tm.tm_mon > 12 || tm.tm_mday < 1 || tm.tm_mday > 31 || tm.tm_hour > 23 ||
        tm.tm_min > 59 || tm.tm_sec > 60)
        return -1;
    tm.tm_year -= 1900;
    tm.tm_mon -= 1;
    *out = timegm(&tm) - offset;
    return 0;
}

/* RFC 3339 in UTC as Meilisearch writes it: nanoseconds when there are any. */
static void format_time(time_t t, long nsec, char *out, size_t len)
{
    struct tm tm;
    gmtime_r(&t, &tm);
    char base[32];
    strftime(base, sizeof base, "%Y-%m-%dT%H:%M:%S", &tm);
    if (nsec)
        snprintf(out, len, "%s.%09ldZ", base, nsec);
    else
        snprintf(out, len, "%sZ", base);
}

int mr_key_expired(const json_t *key, time_t now)
{
    const char *at = json_string_value(json_object_get(key, "expiresAt"));
    time_t t;
    long nsec;
    return at && parse_date(at, &t, &nsec) == 0 && t <= now;
}

static int valid_index_pattern(const char *s)
{
    size_t n = strlen(s);
    if (n == 0 || n > 400)
        return 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (!(isalnum(c) || c == '-' || c == '_' || (c == '*' && i == n - 1)))
            return 0;
    }
    return 1;
}

/* Accepts a hyphenated or a 32-digit simple UUID; writes the hyphenated lower-case form. */
static int normalise_uuid(const char *s, char out[MR_KEY_UID_LEN])
{
    unsigned char b[16];
    size_t k = 0;
    for (const char *p = s; *p; p++) {
        if (*p == '-' && (p - s == 8 || p - s == 13 || p - s == 18 || p - s == 23) && strlen(s) == 36)
            continue;
        if (!isxdigit((unsigned char)p[0]) || !isxdigit((unsigned char)p[1]) || k == 16)
            return -1;
        sscanf(p, "%2hhx", &b[k++]);
        p++;
    }
    if (k != 16)
        return -1;
    snprintf(out, MR_KEY_UID_LEN, "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x", b[0], b[1],
             b[2], b[3], b[4], b[5], b[6], b[7], b[8], b[9], b[10], b[11], b[12], b[13], b[14], b[15]);
    return 0;
}

static void stamp(json_t *key, const char *field, time_t sec, long nsec)
{
    char ts[48];
    format_time(sec, nsec, ts, sizeof ts);
    json_object_set_new(key, field, json_string(ts));
}

static int take_text(json_t *key, const json_t *body, const char *field, const char *code, mr_error *err)
{
    json_t *v = json_object_get(body, field);
    if (!v)
        return 0;
    if (!json_is_string(v) && !json_is_null(v)) {
        mr_error_invalid(err, code, "Invalid value type at `.%s`: expected a string, but found %s.", field,
                         json_is_number(v) ? "a number" : json_is_boolean(v) ? "a boolean" : "another type");
        return -1;
    }
    json_object_set(key, field, v);
    return 0;
}

/* body's field, which must be present (else missing_api_key_<code>) and an array (else
 * invalid_api_key_<code>); NULL with err otherwise. */
static json_t *required_array(const json_t *body, const char *field, const char *code, mr_error *err)
{
    json_t *v = json_object_get(body, field);
    if (!json_is_array(v)) {
        if (v)
            mr_error_invalid(err, "", "Invalid value type at `.%s`: expected an array.", field);
        else
            mr_error_invalid(err, "", "Missing field `%s`", field);
        snprintf(err->code, sizeof err->code, "%s_api_key_%s", v ? "invalid" : "missing", code);
        return NULL;
    }
    return v;
}

static int take_actions(json_t *key, const json_t *body, mr_error *err)
{
    json_t *actions = required_array(body, "actions", "actions", err);
    if (!actions)
        return -1;
    size_t i;
    json_t *v;
    json_array_foreach(actions, i, v) {
        const char *s = json_string_value(v);
        size_t k = 0, n = sizeof known_actions / sizeof known_actions[0];
        while (s && k < n && strcmp(known_actions[k], s) != 0)
            k++;
        if (!s || k == n) {
            mr_error_invalid(err, "invalid_api_key_actions", "Unknown value `%.100s` at `.actions[%zu]`: expected one of `*`, `search`, `documents.*`, … (Meilisearch's actions).",
                             s ? s : "(not a string)", i);
            return -1;
        }
    }
    json_object_set(key, "actions", actions);
    return 0;
}

static int take_indexes(json_t *key, const json_t *body, mr_error *err)
{
    json_t *indexes = required_array(body, "indexes", "indexes", err);
    if (!indexes)
        return -1;
    size_t i;
    json_t *v;
    json_array_foreach(indexes, i, v) {
        const char *s = json_string_value(v);
        if (!s || !valid_index_pattern(s)) {
            mr_error_invalid(err, "invalid_api_key_indexes", "Invalid value at `.indexes[%zu]`: `%.100s` is not a valid index uid pattern. Index uid patterns can be an integer or a string containing only alphanumeric characters, hyphens (-), underscores (_), and optionally end with a star (*).",
                             i, s ? s : "(not a string)");
            return -1;
        }
    }
    json_object_set(key, "indexes", indexes);
    return 0;
}

static int take_expiry(json_t *key, const json_t *body, time_t now, mr_error *err)
{
    json_t *v = json_object_get(body, "expiresAt");
    if (!v) {
        mr_error_invalid(err, "missing_api_key_expires_at", "Missing field `expiresAt`");
        return -1;
    }
    if (json_is_null(v)) {
        json_object_set_new(key, "expiresAt", json_null());
        return 0;
    }
    time_t t;
    long nsec;
    if (!json_is_string(v) || parse_date(json_string_value(v), &t, &nsec) != 0 || t <= now) {
        mr_error_invalid(err, "invalid_api_key_expires_at", "Invalid value at `.expiresAt`: `%.100s` is not a valid date. It should follow the RFC 3339 format to represent a date or datetime in the future or specified as a null value. e.g. 'YYYY-MM-DD' or 'YYYY-MM-DD HH:MM:SS'.",
                         json_is_string(v) ? json_string_value(v) : "(not a string)");
        return -1;
    }
    stamp(key, "expiresAt", t, nsec);
    return 0;
}

static int unknown_field(const json_t *body, const char *const *allowed, const char *expected, mr_error *err)
{
    const char *field;
    json_t *v;
    json_object_foreach((json_t *)body, field, v) {
        int ok = 0;
        for (const char *const *a = allowed; *a && !ok; a++)
            ok = strcmp(*a, field) == 0;
        if (!ok) {
            mr_error_set(err, "bad_request", "Unknown field `%.100s`: expected one of %s", field, expected);
            return -1;
        }
    }
    return 0;
}

json_t *mr_key_create(const json_t *body, const char *uid_if_absent, struct timespec now, mr_error *err)
{
    static const char *const fields[] = {"description", "name", "uid", "actions", "indexes", "expiresAt", NULL};
    if (unknown_field(body, fields, "`description`, `name`, `uid`, `actions`, `indexes`, `expiresAt`", err))
        return NULL;
    char uid[MR_KEY_UID_LEN];
    json_t *given = json_object_get(body, "uid");
    if (given && (!json_is_string(given) || normalise_uuid(json_string_value(given), uid) != 0)) {
        mr_error_invalid(err, "invalid_api_key_uid", "Invalid value at `.uid`: `%.100s` is not a UUID.",
                         json_is_string(given) ? json_string_value(given) : "(not a string)");
        return NULL;
    }
    if (!given)
        snprintf(uid, sizeof uid, "%s", uid_if_absent);
    json_t *key = json_pack("{s:n, s:n, s:s}", "name", "description", "uid", uid);
    if (take_text(key, body, "name", "invalid_api_key_name", err) ||
        take_text(key, body, "description", "invalid_api_key_description", err) || take_actions(key, body, err) ||
        take_indexes(key, body, err) || take_expiry(key, body, now.tv_sec, err)) {
        json_decref(key);
        return NULL;
    }
    stamp(key, "createdAt", now.tv_sec, now.tv_nsec);
    stamp(key, "updatedAt", now.tv_sec, now.tv_nsec);
    return key;
}

json_t *mr_key_update(const json_t *key, const json_t *body, struct timespec now, mr_error *err)
{
    static const struct {
        const char *field, *code;
    } immutable[] = {
        {"uid", "immutable_api_key_uid"},         {"actions", "immutable_api_key_actions"},
        {"indexes", "immutable_api_key_indexes"}, {"expiresAt", "immutable_api_key_expires_at"},
        {"key", "immutable_api_key_key"},         {"createdAt", "immutable_api_key_created_at"},
        {"updatedAt", "immutable_api_key_updated_at"},
    };
    for (size_t i = 0; i < sizeof immutable / sizeof immutable[0]; i++) {
        if (json_object_get(body, immutable[i].field)) {
            mr_error_invalid(err, immutable[i].code, "Immutable field `%s`: expected one of `description`, `name`",
                             immutable[i].field);
            return NULL;
        }
    }
    static const char *const fields[] = {"description", "name", NULL};
    if (unknown_field(body, fields, "`description`, `name`", err))
        return NULL;
    json_t *updated = json_deep_copy(key);
    if (take_text(updated, body, "name", "invalid_api_key_name", err) ||
        take_text(updated, body, "description", "invalid_api_key_description", err)) {
        json_decref(updated);
        return NULL;
    }
    stamp(updated, "updatedAt", now.tv_sec, now.tv_nsec);
    return updated;
}

json_t *mr_key_view(const json_t *key, const char *master)
{
    char value[MR_KEY_VALUE_LEN];
    mr_key_value(master, json_string_value(json_object_get(key, "uid")), value);
    json_t *v = json_pack("{s:O?, s:O?, s:s, s:O, s:O, s:O, s:O?, s:O, s:O}", "name", json_object_get(key, "name"),
                          "description", json_object_get(key, "description"), "key", value, "uid",
                          json_object_get(key, "uid"), "actions", json_object_get(key, "actions"), "indexes",
                          json_object_get(key, "indexes"), "expiresAt", json_object_get(key, "expiresAt"),
                          "createdAt", json_object_get(key, "createdAt"), "updatedAt",
                          json_object_get(key, "updatedAt"));
    return v;
}

int mr_is_jwt(const char *token)
{
    const char *a = strchr(token, '.');
    const char *b = a ? strchr(a + 1, '.') : NULL;
    return b && !strchr(b + 1, '.');
}

static void token_error(mr_error *err, const char *why)
{
    mr_error_set(err, "invalid_api_key", "Could not decode tenant token, %s.", why);
}

/* The token's claims as JSON, checked against key_value when it is not NULL. */
static json_t *token_claims(const char *token, const char *key_value, mr_error *err)
{
    jwt_t *jwt = NULL;
    int rc = key_value ? jwt_decode(&jwt, token, (const unsigned char *)key_value, (int)strlen(key_value))
                       : jwt_decode(&jwt, token, NULL, 0);
    if (rc != 0 || !jwt) {
        token_error(err, key_value ? "InvalidSignature" : "InvalidToken");
        return NULL;
    }
    jwt_alg_t alg = jwt_get_alg(jwt);
    if (key_value && alg != JWT_ALG_HS256 && alg != JWT_ALG_HS384 && alg != JWT_ALG_HS512) {
        jwt_free(jwt);
        token_error(err, "InvalidAlgorithm");
        return NULL;
    }
    char *text = jwt_get_grants_json(jwt, NULL);
    jwt_free(jwt);
    json_t *claims = text ? json_loads(text, 0, NULL) : NULL;
    free(text);
    if (!json_is_object(claims)) {
        json_decref(claims);
        token_error(err, "InvalidClaims");
        return NULL;
    }
    return claims;
}

int mr_tenant_token_key_uid(const char *token, char uid[MR_KEY_UID_LEN], mr_error *err)
{
    json_t *claims = token_claims(token, NULL, err);
    if (!claims)
        return -1;
    const char *s = json_string_value(json_object_get(claims, "apiKeyUid"));
    int rc = s && normalise_uuid(s, uid) == 0 ? 0 : -1;
    if (rc)
        token_error(err, "JSON error: missing or invalid field `apiKeyUid`");
    json_decref(claims);
    return rc;
}

/* searchRules as Meilisearch accepts them: an array of index patterns, or an object whose values
 * are null or {"filter": null | string | array}. Anything else makes the token invalid rather
 * than grant an index without the filter its author meant. */
static int rules_valid(const json_t *rules)
{
    size_t i;
    json_t *v;
    if (json_is_array(rules)) {
        json_array_foreach(rules, i, v) {
            if (!json_is_string(v))
                return 0;
        }
        return 1;
    }
    if (!json_is_object(rules))
        return 0;
    const char *pattern;
    json_object_foreach((json_t *)rules, pattern, v) {
        json_t *f = json_object_get(v, "filter");
        if (!json_is_null(v) && !(json_is_object(v) && (!f || json_is_null(f) || json_is_string(f) || json_is_array(f))))
            return 0;
    }
    return 1;
}

json_t *mr_tenant_token_verify(const char *token, const char *key_value, time_t now, mr_error *err)
{
    json_t *claims = token_claims(token, key_value, err);
    if (!claims)
        return NULL;
    json_t *rules = json_object_get(claims, "searchRules");
    json_t *exp = json_object_get(claims, "exp");
    json_t *out = NULL;
    if (!rules_valid(rules))
        token_error(err, "JSON error: missing or invalid field `searchRules`");
    else if (exp && !json_is_integer(exp) && !json_is_null(exp))
        token_error(err, "JSON error: invalid field `exp`");
    else if (json_is_integer(exp) && json_integer_value(exp) <= (json_int_t)now)
        mr_error_set(err, "invalid_api_key", "Tenant token expired. Was valid up to `%lld` and we're now `%lld`.",
                     (long long)json_integer_value(exp), (long long)now);
    else
        out = json_incref(rules);
    json_decref(claims);
    return out;
}

int mr_search_rules_allow(const json_t *rules, const char *index, json_t **filter)
{
    *filter = NULL;
    if (json_is_array(rules))
        return mr_key_allows_index(rules, index);
    const char *best = NULL;
    const char *pattern;
    json_t *rule;
    json_object_foreach((json_t *)rules, pattern, rule) {
        if (!pattern_matches(pattern, index))
            continue;
        if (strcmp(pattern, index) == 0) {
            best = pattern;
            break;
        }
        if (!best || strlen(pattern) > strlen(best))
            best = pattern;
    }
    json_t *rule_of_best = best ? json_object_get(rules, best) : NULL;
    if (!best || !(json_is_null(rule_of_best) || json_is_object(rule_of_best)))
        return 0; /* a malformed rule grants nothing */
    json_t *f = json_object_get(rule_of_best, "filter");
    if (f && !json_is_null(f))
        *filter = json_incref(f);
    return 1;
}

/* Appends filter's top-level conjuncts to all: a string is one, an array's elements (strings,
 * or arrays of strings that are ORed) are each one. Every conjunct stays a separate element that
 * Meilisearch parses on its own, so no text in one can change how another reads. */
static int append_conjuncts(json_t *all, const json_t *filter)
{
    if (json_is_string(filter))
        return json_array_append(all, (json_t *)filter);
    if (!json_is_array(filter))
        return -1;
    size_t i, j;
    json_t *v, *w;
    json_array_foreach(filter, i, v) {
        if (json_is_array(v)) {
            json_array_foreach(v, j, w) {
                if (!json_is_string(w))
                    return -1;
            }
        } else if (!json_is_string(v)) {
            return -1;
        }
        json_array_append(all, v);
    }
    return 0;
}

int mr_search_add_filter(json_t *search, const json_t *rule_filter)
{
    json_t *given = json_object_get(search, "filter");
    json_t *all = json_array();
    int rc = append_conjuncts(all, rule_filter);
    if (rc == 0 && given && !json_is_null(given))
        rc = append_conjuncts(all, given);
    if (rc == 0)
        json_object_set(search, "filter", all);
    json_decref(all);
    return rc;
}
