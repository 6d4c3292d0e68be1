/* auth.h: Meilisearch's key model, kept by the gateway for the whole cluster.
 *
 * A key is a JSON record {uid, name, description, actions, indexes, expiresAt, createdAt,
 * updatedAt} stored in miroir.meta under key/<uid>. Its value (what clients send as a Bearer
 * token) is never stored: it is derived from the master key and the uid exactly as Meilisearch
 * derives it, so the metadata topic holds no secret and a key means the same on every gateway.
 *
 * A tenant token is a JWT (HS256/384/512) signed with a key's value, carrying apiKeyUid,
 * searchRules and an optional exp. The gateway checks it with libjwt and folds the rule's filter
 * into every shard's query.
 *
 * Everything here is a pure function over jansson values; callers own what they pass in and
 * every returned json_t is a new reference. */
#ifndef MIROIR_AUTH_H
#define MIROIR_AUTH_H

#include <jansson.h>
#include <time.h>

#include "apierr.h"

#define MR_KEY_VALUE_LEN 65 /* 64 hex digits */
#define MR_KEY_UID_LEN 37   /* a hyphenated UUID */

/* An action only the master key and keys holding "*" grant: cluster membership changes. */
#define MR_ACTION_CLUSTER_ADMIN "miroir.admin"

/* hex(HMAC-SHA256(master, uid)): the value Meilisearch gives the key with this uid. */
void mr_key_value(const char *master, const char *uid, char out[MR_KEY_VALUE_LEN]);

/* A UUID derived from the master key and a label, so that every gateway seeding the default keys
 * writes the same records. */
void mr_key_derived_uid(const char *master, const char *label, char out[MR_KEY_UID_LEN]);

/* A random version-4 UUID (from the kernel's random source). Returns 0 or -1. */
int mr_key_random_uid(char out[MR_KEY_UID_LEN]);

/* Whether a key's actions list grants action ("*", "<group>.*", "*.get" and exact names). */
int mr_key_allows_action(const json_t *actions, const char *action);

/* Whether an index list ("*", exact uids, "prefix*" patterns) covers index. */
int mr_key_allows_index(const json_t *indexes, const char *index);

/* Whether the key record has an expiresAt at or before now. */
int mr_key_expired(const json_t *key, time_t now);

/* Validates a POST /keys body into a new key record (uid from the body, or uid_if_absent),
 * stamped now. NULL with err (Meilisearch's invalid_api_key_* / missing_api_key_* codes). */
json_t *mr_key_create(const json_t *body, const char *uid_if_absent, struct timespec now, mr_error *err);

/* Validates a PATCH /keys/{key} body (only name and description change) against key; returns
 * the updated record, or NULL with err (immutable_api_key_* and friends). */
json_t *mr_key_update(const json_t *key, const json_t *body, struct timespec now, mr_error *err);

/* The key record as the API shows it: the record plus its derived "key" value. */
json_t *mr_key_view(const json_t *key, const char *master);

/* Whether token has a JWT's shape (three dot-separated parts); API keys never do. */
int mr_is_jwt(const char *token);

/* Reads the apiKeyUid claim of a tenant token without checking its signature: it only says
 * which key to check the signature with. Returns 0, or -1 with err. */
int mr_tenant_token_key_uid(const char *token, char uid[MR_KEY_UID_LEN], mr_error *err);

/* Checks token's signature with key_value and its expiry; returns its searchRules (an object
 * or array), or NULL with err (invalid_api_key). */
json_t *mr_tenant_token_verify(const char *token, const char *key_value, time_t now, mr_error *err);

/* Whether searchRules grant index; *filter gets the rule's filter (new reference), or NULL when
 * the rule has none. An exact rule wins over patterns, a longer pattern over a shorter one. */
int mr_search_rules_allow(const json_t *rules, const char *index, json_t **filter);

/* ANDs rule_filter (a filter string or array, as in a search body) with the search body's own
 * filter, in place. Returns 0, or -1 if either filter has a shape Meilisearch would refuse. */
int mr_search_add_filter(json_t *search, const json_t *rule_filter);

#endif
