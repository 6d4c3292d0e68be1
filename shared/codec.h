/* codec.h: HTTP content codings (gzip, deflate, br), for request bodies a client compressed and
 * answers a client asked to have compressed, as a Meilisearch node takes and gives them. */
#ifndef MIROIR_CODEC_H
#define MIROIR_CODEC_H

#include <stddef.h>

#include "apierr.h"

/* Decodes body (len bytes) sent with Content-Encoding coding ("identity" or NULL: a copy) into a
 * new buffer *out (NUL-terminated, malloc'd; the caller frees it) of *out_len bytes, at most max.
 * Returns 0, or -1 with err: 413 payload_too_large past max, 400 malformed_payload for a body
 * that isn't what it says, 415 invalid_content_type for a coding not spoken here. */
int mr_decode_body(const char *coding, const char *body, size_t len, size_t max, char **out, size_t *out_len,
                   mr_error *err);

/* The coding to answer with for an Accept-Encoding header: "br", then "gzip", then "deflate",
 * the first the header accepts (named or through "*", with a non-zero weight); NULL for none. */
const char *mr_pick_coding(const char *accept_encoding);

/* Encodes body with coding ("br", "gzip" or "deflate") into a new buffer *out (malloc'd) of
 * *out_len bytes. Returns 0 or -1 (then nothing is allocated). */
int mr_encode_body(const char *coding, const char *body, size_t len, char **out, size_t *out_len);

#endif
