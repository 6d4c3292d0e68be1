/* payload.c: JSON, NDJSON and CSV document bodies, validation and primary-key inference. */
#include "payload.h"

#include <ctype.h>
#include <stdio.h>
#include <string.h>
#include <stdlib.h>
#include <strings.h>

#include "alloc.h"
#include "record.h"
#include "util.h"

int mr_payload_format_of(const char *content_type, enum mr_payload_format *fmt, mr_error *err)
{
    static const char accepted[] = "Accepted values for the Content-Type header are: `application/json`, "
                                   "`application/x-ndjson`, `text/csv`";
    if (!content_type || !*content_type) {
        mr_error_set(err, "missing_content_type", "A Content-Type header is missing. %s", accepted);
        return -1;
    }
    size_t len = strcspn(content_type, ";");
    while (len > 0 && isspace((unsigned char)content_type[len - 1]))
        len--;
    if (len == 16 && strncasecmp(content_type, "application/json", len) == 0)
        *fmt = MR_FORMAT_JSON;
    else if (len == 20 && strncasecmp(content_type, "application/x-ndjson", len) == 0)
        *fmt = MR_FORMAT_NDJSON;
    else if (len == 8 && strncasecmp(content_type, "text/csv", len) == 0)
        *fmt = MR_FORMAT_CSV;
    else {
        mr_error_set(err, "invalid_content_type", "The Content-Type `%.*s` is invalid. %s",
                     (int)(len > 100 ? 100 : len), content_type, accepted);
        return -1;
    }
    return 0;
}

static json_t *parse_json_array(const char *body, size_t len, mr_error *err)
{
    json_error_t jerr;
    json_t *v = json_loadb(body, len, JSON_DECODE_ANY, &jerr);
    if (!v) {
        mr_error_set(err, "malformed_payload", "The `json` payload provided is malformed. `%s at line %d column %d`.",
                     jerr.text, jerr.line, jerr.column);
        return NULL;
    }
    if (json_is_object(v)) { /* Meilisearch takes a single object as a one-document batch */
        json_t *arr = json_array();
        json_array_append_new(arr, v);
        return arr;
    }
    if (!json_is_array(v)) {
        json_decref(v);
        mr_error_set(err, "malformed_payload",
                     "The `json` payload provided is malformed. `Couldn't serialize document value: "
                     "expected an array of objects or a single object`.");
        return NULL;
    }
    return v;
}

static json_t *parse_ndjson(const char *body, size_t len, mr_error *err)
{
    json_t *arr = json_array();
    size_t line = 0;
    for (size_t pos = 0; pos < len;) {
        const char *start = body + pos;
        const char *nl = memchr(start, '\n', len - pos);
        size_t n = nl ? (size_t)(nl - start) : len - pos;
        pos += n + (nl ? 1 : 0);
        line++;
        size_t k = 0;
        while (k < n && isspace((unsigned char)start[k]))
            k++;
        if (k == n)
            continue;
        json_error_t jerr;
        json_t *doc = json_loadb(start, n, 0, &jerr);
        if (!doc) {
            mr_error_set(err, "malformed_payload", "The `ndjson` payload provided is malformed. `%s at line %zu column %d`.",
                         jerr.text, line, jerr.column);
            json_decref(arr);
            return NULL;
        }
        json_array_append_new(arr, doc);
    }
    return arr;
}

/* One CSV record: fields as NUL-terminated strings in *fields (malloc'd, freed by the caller).
 * Returns the field count, 0 at the end of input, -1 on an unterminated quote. */
static int csv_record(const char **p, const char *end, char delim, char ***fields, size_t *cap)
{
    if (*p >= end)
        return 0;
    int n = 0;
    for (;;) {
        char *field = malloc((size_t)(end - *p) + 1);
        size_t flen = 0;
        if (*p < end && **p == '"') {
            (*p)++;
            for (;;) {
                if (*p >= end) { /* unterminated quote: nothing of this record survives */
                    free(field);
                    for (int i = 0; i < n; i++)
                        free((*fields)[i]);
                    return -1;
                }
                if (**p == '"') {
                    if (*p + 1 < end && (*p)[1] == '"') {
                        field[flen++] = '"';
                        *p += 2;
                        continue;
                    }
                    (*p)++;
                    break;
                }
                field[flen++] = *(*p)++;
            }
        }
        while (*p < end && **p != delim && **p != '\n' && **p != '\r')
            field[flen++] = *(*p)++;
        field[flen] = '\0';
        if ((size_t)n == *cap) {
            *cap = *cap ? *cap * 2 : 16;
            *fields = realloc(*fields, *cap * sizeof **fields);
        }
        (*fields)[n++] = field;
        if (*p < end && **p == delim) {
            (*p)++;
            continue;
        }
        if (*p < end && **p == '\r')
            (*p)++;
        if (*p < end && **p == '\n')
            (*p)++;
        return n;
    }
}

enum csv_type { CSV_STRING, CSV_NUMBER, CSV_BOOLEAN };

static json_t *csv_value(const char *text, enum csv_type type, size_t line, mr_error *err)
{
    if (!*text)
        return json_null();
    if (type == CSV_BOOLEAN) {
        if (strcmp(text, "true") == 0 || strcmp(text, "false") == 0)
            return json_boolean(text[0] == 't');
        mr_error_set(err, "malformed_payload", "The `csv` payload provided is malformed: `Error parsing boolean \"%.100s\" at line %zu`.", text, line);
        return NULL;
    }
    if (type == CSV_NUMBER) {
        char *e;
        long long i = strtoll(text, &e, 10);
        if (!*e)
            return json_integer(i);
        double d = strtod(text, &e);
        if (!*e)
            return json_real(d);
        mr_error_set(err, "malformed_payload", "The `csv` payload provided is malformed: `Error parsing number \"%.100s\" at line %zu`.", text, line);
        return NULL;
    }
    return json_string(text);
}

static void free_fields(char **fields, int n)
{
    for (int i = 0; i < n; i++)
        free(fields[i]);
}

static json_t *parse_csv(const char *body, size_t len, char delim, mr_error *err)
{
    const char *p = body, *end = body + len;
    char **fields = NULL;
    size_t cap = 0;
    int width = csv_record(&p, end, delim, &fields, &cap);
    if (width <= 0) {
        free_fields(fields, width);
        free(fields);
        mr_error_set(err, "malformed_payload", "The `csv` payload provided is malformed: `missing or bad header`.");
        return NULL;
    }
    char **names = calloc((size_t)width, sizeof *names);
    enum csv_type *types = calloc((size_t)width, sizeof *types);
    static const char *const type_names[] = {"string", "number", "boolean"};
    for (int i = 0; i < width; i++) {
        char *colon = strrchr(fields[i], ':');
        for (int t = 0; colon && t < 3; t++) {
            if (strcmp(colon + 1, type_names[t]) == 0) {
                *colon = '\0';
                types[i] = (enum csv_type)t;
            }
        }
        names[i] = fields[i];
    }
    json_t *docs = json_array();
    size_t line = 1;
    for (;;) {
        int n = csv_record(&p, end, delim, &fields, &cap);
        if (n == 0)
            break;
        line++;
        if (n == 1 && !fields[0][0]) { /* a blank line */
            free_fields(fields, n);
            continue;
        }
        if (n != width) {
            mr_error_set(err, "malformed_payload",
                         n < 0 ? "The `csv` payload provided is malformed: `unterminated quoted field at line %zu`."
                               : "The `csv` payload provided is malformed: `CSV error: record %zu has %d fields, but the "
                                 "header has %d`.",
                         line, n, width);
            free_fields(fields, n < 0 ? 0 : n);
            json_decref(docs);
            docs = NULL;
            break;
        }
        json_t *doc = json_object();
        for (int i = 0; i < n; i++) {
            json_t *v = csv_value(fields[i], types[i], line, err);
            if (!v) {
                json_decref(doc);
                doc = NULL;
                break;
            }
            json_object_set_new(doc, names[i], v);
        }
        free_fields(fields, n);
        if (!doc) {
            json_decref(docs);
            docs = NULL;
            break;
        }
        json_array_append_new(docs, doc);
    }
    free_fields(names, width);
    free(names);
    free(types);
    free(fields);
    return docs;
}

json_t *mr_payload_parse(const char *body, size_t len, enum mr_payload_format fmt, char csv_delimiter, mr_error *err)
{
    if (len == 0) {
        mr_error_set(err, "missing_payload", "A %s payload is missing.",
                     fmt == MR_FORMAT_JSON ? "json" : fmt == MR_FORMAT_NDJSON ? "ndjson" : "csv");
        return NULL;
    }
    json_t *docs;
    switch (fmt) {
    case MR_FORMAT_JSON:
        docs = parse_json_array(body, len, err);
        break;
    case MR_FORMAT_NDJSON:
        docs = parse_ndjson(body, len, err);
        break;
    default:
        docs = parse_csv(body, len, csv_delimiter ? csv_delimiter : ',', err);
        break;
    }
    if (!docs)
        return NULL;
    size_t i;
    json_t *doc;
    json_array_foreach(docs, i, doc) {
        if (!json_is_object(doc)) {
            mr_error_set(err, "malformed_payload",
                         "The `%s` payload provided is malformed. `Couldn't serialize document value: document %zu "
                         "is not an object`.",
                         fmt == MR_FORMAT_JSON ? "json" : "ndjson", i);
            json_decref(docs);
            return NULL;
        }
    }
    return docs;
}

int mr_documents_validate(const json_t *docs, const char *primary_key, mr_error *err)
{
    size_t i;
    json_t *doc;
    char id[MR_DOCID_MAX + 1];
    json_array_foreach(docs, i, doc) {
        json_t *pk = json_object_get(doc, primary_key);
        if (!pk) {
            char *text = json_dumps(doc, JSON_COMPACT);
            mr_error_set(err, "missing_document_id", "Document doesn't have a `%s` attribute: `%.300s`.", primary_key,
                         text ? text : "");
            free(text);
            return -1;
        }
        if (mr_docid_from_json(pk, id, sizeof id, err) < 0)
            return -1;
        const char *field;
        json_t *value;
        json_object_foreach((json_t *)doc, field, value) {
            if (strncmp(field, MR_RESERVED_PREFIX, strlen(MR_RESERVED_PREFIX)) == 0) {
                mr_error_set(err, "miroir_reserved_field",
                             "Document `%s` has the field `%.100s`: fields starting with `_miroir` are reserved.", id,
                             field);
                return -1;
            }
        }
    }
    return 0;
}

int mr_primary_key_infer(const json_t *docs, char *out, size_t outlen, mr_error *err)
{
    const json_t *first = json_array_get(docs, 0);
    size_t count = 0;
    const char **found = mr_calloc(json_object_size(first) + 1, sizeof *found), *field;
    json_t *value;
    json_object_foreach((json_t *)first, field, value) {
        size_t n = strlen(field);
        if (n >= 2 && strcasecmp(field + n - 2, "id") == 0)
            found[count++] = field;
    }
    /* a node sorts the candidates so that its answer does not depend on the fields' order */
    qsort(found, count, sizeof *found, mr_compare_strings);
    int rc = -1;
    if (count == 0)
        mr_error_set(err, "index_primary_key_no_candidate_found",
                     "The primary key inference failed as the engine did not find any field ending with `id` in its "
                     "name. Please specify the primary key manually using the `primaryKey` query parameter.");
    else if (count > 1)
        mr_error_set(err, "index_primary_key_multiple_candidates_found",
                     "The primary key inference failed as the engine found %zu fields ending with `id` in their names: "
                     "'%.100s' and '%.100s'. Please specify the primary key manually using the `primaryKey` query "
                     "parameter.", count, found[0], found[1]);
    else if (strlen(found[0]) < outlen)
        rc = snprintf(out, outlen, "%s", found[0]) < 0 ? -1 : 0;
    free(found);
    return rc;
}
