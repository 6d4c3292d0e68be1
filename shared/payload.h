/* payload.h: parsing and validating the document bodies of HTTP writes. */
#ifndef MIROIR_PAYLOAD_H
#define MIROIR_PAYLOAD_H

#include <jansson.h>
#include <stddef.h>

#include "apierr.h"

enum mr_payload_format { MR_FORMAT_JSON, MR_FORMAT_NDJSON, MR_FORMAT_CSV };

#define MR_RESERVED_PREFIX "_miroir"

/* Maps a Content-Type header (may be NULL) to a format. Returns 0, or -1 with err set. */
int mr_payload_format_of(const char *content_type, enum mr_payload_format *fmt, mr_error *err);

/* Parses body into a new JSON array of objects (the caller owns it), or returns NULL with err set:
 * missing_payload for an empty body, malformed_payload for bad JSON, CSV or a non-object document.
 * CSV follows Meilisearch: a header of "name" or "name:string|number|boolean", quoted fields
 * with "" escapes, empty fields as null, csv_delimiter between fields (',' by default). */
json_t *mr_payload_parse(const char *body, size_t len, enum mr_payload_format fmt, char csv_delimiter, mr_error *err);

/* Checks every document of docs: the primary key is present and a valid id, and no top-level
 * field starts with "_miroir". Returns 0, or -1 with err naming the first bad document. */
int mr_documents_validate(const json_t *docs, const char *primary_key, mr_error *err);

/* Infers the primary key from the first document as Meilisearch does: the one attribute whose
 * name ends with "id" (any case). Returns 0 with the name in out, or -1 with err. */
int mr_primary_key_infer(const json_t *docs, char *out, size_t outlen, mr_error *err);

#endif
