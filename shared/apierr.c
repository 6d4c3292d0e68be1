/* apierr.c: the table of error codes Miroir answers with, and their JSON form. */
#include "apierr.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

struct code_info {
    const char *code;
    int status;
    const char *type;
};

/* Codes from Meilisearch 1.21 keep its status and type, so SDKs recognise them.
 * miroir_* codes are ours: conditions a single node can't have (see docs/errors.md). */
static const struct code_info codes[] = {
    {"bad_request", 400, "invalid_request"},
    {"not_found", 404, "invalid_request"},
    {"method_not_allowed", 405, "invalid_request"},
    {"index_not_found", 404, "invalid_request"},
    {"index_already_exists", 409, "invalid_request"},
    {"invalid_index_uid", 400, "invalid_request"},
    {"invalid_index_primary_key", 400, "invalid_request"},
    {"invalid_index_offset", 400, "invalid_request"},
    {"invalid_index_limit", 400, "invalid_request"},
    {"index_primary_key_no_candidate_found", 400, "invalid_request"},
    {"index_primary_key_multiple_candidates_found", 400, "invalid_request"},
    {"missing_index_uid", 400, "invalid_request"},
    {"malformed_payload", 400, "invalid_request"},
    {"missing_payload", 400, "invalid_request"},
    {"payload_too_large", 413, "invalid_request"},
    {"invalid_content_type", 415, "invalid_request"},
    {"missing_content_type", 415, "invalid_request"},
    {"missing_document_id", 400, "invalid_request"},
    {"invalid_document_id", 400, "invalid_request"},
    {"invalid_document_fields", 400, "invalid_request"},
    {"document_not_found", 404, "invalid_request"},
    {"missing_document_filter", 400, "invalid_request"},
    {"task_not_found", 404, "invalid_request"},
    {"batch_not_found", 404, "invalid_request"},
    {"invalid_task_uids", 400, "invalid_request"},
    {"invalid_batch_uids", 400, "invalid_request"},
    {"invalid_search_offset", 400, "invalid_request"},
    {"invalid_search_limit", 400, "invalid_request"},
    {"invalid_search_page", 400, "invalid_request"},
    {"invalid_search_hits_per_page", 400, "invalid_request"},
    {"invalid_search_show_ranking_score", 400, "invalid_request"},
    {"miroir_invalid_shards", 400, "invalid_request"},
    {"miroir_invalid_replication_factor", 400, "invalid_request"},
    {"miroir_reserved_field", 400, "invalid_request"},
    {"miroir_invalid_node", 400, "invalid_request"},
    {"miroir_invalid_shard", 400, "invalid_request"},
    {"miroir_node_not_found", 404, "invalid_request"},
    {"index_primary_key_already_exists", 400, "invalid_request"},
    {"miroir_kafka_unavailable", 503, "system"},
    {"miroir_shard_unavailable", 503, "system"},
    {"miroir_node_error", 502, "system"},
    {"missing_authorization_header", 401, "auth"},
    {"missing_master_key", 401, "auth"},
    {"invalid_api_key", 403, "auth"},
    {"api_key_not_found", 404, "invalid_request"},
    {"api_key_already_exists", 409, "invalid_request"},
    {"miroir_too_many_connections", 503, "system"},
    {"miroir_too_many_uploads", 503, "system"},
    {"miroir_request_too_slow", 408, "invalid_request"},
    {"miroir_head_too_large", 431, "invalid_request"},
    {"miroir_feature_unavailable", 400, "invalid_request"},
    {"miroir_request_timeout", 504, "system"},
    {"internal", 500, "internal"},
};

static void set_code(mr_error *e, int status, const char *code, const char *type)
{
    e->status = status;
    snprintf(e->code, sizeof e->code, "%s", code);
    snprintf(e->type, sizeof e->type, "%s", type);
}

void mr_error_set(mr_error *e, const char *code, const char *fmt, ...)
{
    const struct code_info *info = &codes[sizeof codes / sizeof codes[0] - 1];
    for (size_t i = 0; i < sizeof codes / sizeof codes[0]; i++) {
        if (strcmp(codes[i].code, code) == 0) {
            info = &codes[i];
            break;
        }
    }
    set_code(e, info->status, info->code, info->type);
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(e->message, sizeof e->message, fmt, ap);
    va_end(ap);
}

void mr_error_invalid(mr_error *e, const char *code, const char *fmt, ...)
{
    set_code(e, 400, code, "invalid_request");
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(e->message, sizeof e->message, fmt, ap);
    va_end(ap);
}

int mr_error_from_json(mr_error *e, int status, const json_t *body)
{
    const char *code = json_string_value(json_object_get(body, "code"));
    const char *type = json_string_value(json_object_get(body, "type"));
    const char *message = json_string_value(json_object_get(body, "message"));
    if (!code || !type || !message)
        return -1;
    set_code(e, status, code, type);
    snprintf(e->message, sizeof e->message, "%s", message);
    return 0;
}

json_t *mr_error_json(const mr_error *e)
{
    char link[160];
    snprintf(link, sizeof link, "https://docs.meilisearch.com/errors#%s", e->code);
    return json_pack("{s:s, s:s, s:s, s:s}", "message", e->message, "code", e->code, "type", e->type,
                     "link", link);
}

/* The end of a name of ours that starts at p, or NULL: name itself, or with a shard suffix. */
static const char *our_name_end(const char *p, const char *name, size_t len, int shard_suffix)
{
    if (strncmp(p, name, len) != 0)
        return NULL;
    const char *d = p + len;
    if (!shard_suffix)
        return d;
    if (strncmp(d, "__s", 3) != 0 || d[3] < '0' || d[3] > '9')
        return NULL;
    for (d += 3; *d >= '0' && *d <= '9'; d++)
        ;
    return d;
}

static void rename_in(char *message, size_t len, const char *name, int shard_suffix, const char *uid)
{
    char out[1024];
    size_t n = 0, nlen = strlen(name);
    for (const char *p = message; *p && n + 1 < sizeof out;) {
        const char *d = nlen ? our_name_end(p, name, nlen, shard_suffix) : NULL;
        if (d) {
            n += (size_t)snprintf(out + n, sizeof out - n, "%s", uid);
            if (n >= sizeof out)
                n = sizeof out - 1;
            p = d;
        } else {
            out[n++] = *p++;
        }
    }
    out[n] = '\0';
    snprintf(message, len, "%s", out);
}

void mr_error_rename_index(char *message, size_t len, const char *storage, const char *uid)
{
    rename_in(message, len, storage, 1, uid);
}

void mr_error_rename(char *message, size_t len, const char *name, const char *uid)
{
    rename_in(message, len, name, 0, uid);
}
