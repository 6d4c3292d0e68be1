/* record.c: encode and decode of index-topic records and document ids. */
#include "record.h"

#include <inttypes.h>
#include <jansson.h>
#include <stdio.h>
#include <string.h>

static const char *const op_names[] = {
    [MR_OP_INVALID] = "invalid",          [MR_OP_REPLACE] = "replace",
    [MR_OP_UPDATE] = "update",            [MR_OP_DELETE] = "delete",
    [MR_OP_CREATE_INDEX] = "create-index", [MR_OP_CLEAR] = "clear",
    [MR_OP_DELETE_BY_FILTER] = "delete-by-filter", [MR_OP_SETTINGS] = "settings",
    [MR_OP_DELETE_INDEX] = "delete-index", [MR_OP_UPDATE_INDEX] = "update-index",
    [MR_OP_CHECKPOINT] = "checkpoint",
};

const char *mr_op_name(enum mr_op op)
{
    if ((size_t)op >= sizeof op_names / sizeof op_names[0])
        return "invalid";
    return op_names[op];
}

enum mr_op mr_op_parse(const char *name, size_t len)
{
    if (!name)
        return MR_OP_REPLACE;
    for (size_t i = 1; i < sizeof op_names / sizeof op_names[0]; i++)
        if (strlen(op_names[i]) == len && memcmp(op_names[i], name, len) == 0)
            return (enum mr_op)i;
    return MR_OP_INVALID;
}

bool mr_op_is_control(enum mr_op op)
{
    return op >= MR_OP_CREATE_INDEX;
}

bool mr_docid_valid(const char *s, size_t len)
{
    if (len == 0 || len > MR_DOCID_MAX)
        return false;
    for (size_t i = 0; i < len; i++) {
        char c = s[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' || c == '_'))
            return false;
    }
    return true;
}

bool mr_index_uid_valid(const char *uid)
{
    size_t len = strlen(uid);
    return len <= MR_INDEX_UID_MAX && mr_docid_valid(uid, len);
}

int mr_docid_from_json(const void *json_value, char *out, size_t outlen, mr_error *err)
{
    const json_t *v = json_value;
    if (json_is_string(v)) {
        const char *s = json_string_value(v);
        size_t len = json_string_length(v);
        if (!mr_docid_valid(s, len) || len + 1 > outlen) {
            mr_error_set(err, "invalid_document_id",
                         "Document identifier `\"%.*s\"` is invalid. A document identifier can be of type "
                         "integer or string, only composed of alphanumeric characters (a-z A-Z 0-9), hyphens "
                         "(-) and underscores (_), and can not be more than 511 bytes.",
                         (int)(len > 200 ? 200 : len), s);
            return -1;
        }
        memcpy(out, s, len + 1);
        return (int)len;
    }
    if (json_is_integer(v) && json_integer_value(v) >= 0) {
        int n = snprintf(out, outlen, "%" JSON_INTEGER_FORMAT, json_integer_value(v));
        return n < 0 || (size_t)n >= outlen ? -1 : n;
    }
    char *text = json_dumps(v, JSON_ENCODE_ANY | JSON_COMPACT);
    mr_error_set(err, "invalid_document_id",
                 "Document identifier `%.200s` is invalid. A document identifier can be of type integer or "
                 "string, only composed of alphanumeric characters (a-z A-Z 0-9), hyphens (-) and "
                 "underscores (_), and can not be more than 511 bytes.",
                 text ? text : "?");
    free(text);
    return -1;
}

int mr_record_decode(const char *key, size_t key_len, const char *value, size_t value_len,
                     const char *op_header, size_t op_len, mr_record *out, mr_error *err)
{
    memset(out, 0, sizeof *out);
    out->op = mr_op_parse(op_header, op_len);
    out->key = key;
    out->key_len = key ? key_len : 0;
    out->value = value;
    out->value_len = value ? value_len : 0;
    if (out->op == MR_OP_INVALID) {
        mr_error_set(err, "bad_request", "unknown operation `%.*s` in header " MR_HEADER_OP,
                     (int)(op_len > 64 ? 64 : op_len), op_header);
        return -1;
    }
    if (mr_op_is_control(out->op)) {
        if (out->key_len != 0) {
            mr_error_set(err, "bad_request", "a control record (%s) must have an empty key", mr_op_name(out->op));
            return -1;
        }
        return 0;
    }
    if (!mr_docid_valid(out->key, out->key_len)) {
        mr_error_set(err, "invalid_document_id",
                     out->key_len ? "record key `%.*s` is not a valid document id"
                                  : "record has no key: the key must be the document id%.*s",
                     (int)(out->key_len > 200 ? 200 : out->key_len), out->key ? out->key : "");
        return -1;
    }
    if (out->op != MR_OP_DELETE && out->value_len == 0) {
        mr_error_set(err, "missing_payload", "a %s record needs a document as its value", mr_op_name(out->op));
        return -1;
    }
    return 0;
}
