/* apierr.h: errors in Meilisearch's shape (message, code, type, link) with their HTTP status. */
#ifndef MIROIR_APIERR_H
#define MIROIR_APIERR_H

#include <jansson.h>

/* One error value, a plain copyable struct owned by the caller (usually on its stack).
 * status == 0 means "no error". */
typedef struct mr_error {
    int status;
    char code[64];
    char type[32];
    char message[512];
} mr_error;

/* Sets e from a known code (see the table in apierr.c, which fixes status and type).
 * An unknown code becomes a 500 "internal" error, so a typo can't hide a failure. */
void mr_error_set(mr_error *e, const char *code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Sets e to a 400 invalid_request error with any code, for Meilisearch's many
 * invalid_<route>_<parameter> codes that the table doesn't list. */
void mr_error_invalid(mr_error *e, const char *code, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

/* Copies a Meilisearch error body (a node's answer) into e, keeping its code, type and message.
 * Returns 0, or -1 if body is not an error object (e is then untouched). */
int mr_error_from_json(mr_error *e, int status, const json_t *body);

/* New reference: {"message","code","type","link"}. */
json_t *mr_error_json(const mr_error *e);

/* Rewrites every "<storage>__s<digits>" (a shard index's name) in message as uid, in place. */
void mr_error_rename_index(char *message, size_t len, const char *storage, const char *uid);
/* Rewrites every `name` (an index of the gateway's own on a node) in message as uid, in place. */
void mr_error_rename(char *message, size_t len, const char *name, const char *uid);

static inline int mr_failed(const mr_error *e) { return e->status != 0; }

#endif
