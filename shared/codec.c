/* codec.c: gzip and deflate through zlib, br through brotli. */
#include "codec.h"

#include <brotli/decode.h>
#include <brotli/encode.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <zlib.h>

#include "alloc.h"

/* windowBits for zlib: gzip adds 16; "deflate" on the web is the zlib format, though some
 * clients send it raw (negative bits), which is tried when the first fails. */
static int inflate_all(const char *body, size_t len, int bits, size_t max, char **out, size_t *out_len, int *too_big)
{
    z_stream z = {0};
    if (inflateInit2(&z, bits) != Z_OK)
        return -1;
    size_t cap = len * 4 + 1024 < max ? len * 4 + 1024 : max, n = 0;
    char *buf = mr_malloc(cap + 1);
    z.next_in = (Bytef *)body;
    z.avail_in = (uInt)len;
    int rc;
    do {
        if (n == cap) {
            if (cap >= max) {
                *too_big = 1;
                break;
            }
            cap = cap * 2 > max ? max : cap * 2;
            buf = mr_realloc(buf, cap + 1);
        }
        z.next_out = (Bytef *)buf + n;
        z.avail_out = (uInt)(cap - n);
        rc = inflate(&z, Z_NO_FLUSH);
        n = cap - z.avail_out;
    } while (rc == Z_OK);
    inflateEnd(&z);
    if (rc != Z_STREAM_END || z.avail_in) {
        free(buf);
        return -1;
    }
    buf[n] = '\0';
    *out = buf;
    *out_len = n;
    return 0;
}

static int brotli_all(const char *body, size_t len, size_t max, char **out, size_t *out_len, int *too_big)
{
    BrotliDecoderState *st = BrotliDecoderCreateInstance(NULL, NULL, NULL);
    size_t cap = len * 4 + 1024 < max ? len * 4 + 1024 : max, n = 0, in_left = len;
    char *buf = mr_malloc(cap + 1);
    const uint8_t *in = (const uint8_t *)body;
    BrotliDecoderResult rc;
    for (;;) {
        size_t out_left = cap - n;
        uint8_t *next = (uint8_t *)buf + n;
        rc = BrotliDecoderDecompressStream(st, &in_left, &in, &out_left, &next, NULL);
        n = cap - out_left;
        if (rc != BROTLI_DECODER_RESULT_NEEDS_MORE_OUTPUT)
            break;
        if (cap >= max) {
            *too_big = 1;
            break;
        }
        cap = cap * 2 > max ? max : cap * 2;
        buf = mr_realloc(buf, cap + 1);
    }
    BrotliDecoderDestroyInstance(st);
    if (rc != BROTLI_DECODER_RESULT_SUCCESS || in_left) {
        free(buf);
        return -1;
    }
    buf[n] = '\0';
    *out = buf;
    *out_len = n;
    return 0;
}

int mr_decode_body(const char *coding, const char *body, size_t len, size_t max, char **out, size_t *out_len,
                   mr_error *err)
{
    int too_big = 0, rc;
    if (!coding || !*coding || strcasecmp(coding, "identity") == 0) {
        *out = mr_malloc(len + 1);
        memcpy(*out, body, len);
        (*out)[len] = '\0';
        *out_len = len;
        return 0;
    }
    if (strcasecmp(coding, "gzip") == 0 || strcasecmp(coding, "x-gzip") == 0) {
        rc = inflate_all(body, len, 16 + MAX_WBITS, max, out, out_len, &too_big);
    } else if (strcasecmp(coding, "deflate") == 0) {
        rc = inflate_all(body, len, MAX_WBITS, max, out, out_len, &too_big);
        if (rc && !too_big)
            rc = inflate_all(body, len, -MAX_WBITS, max, out, out_len, &too_big);
    } else if (strcasecmp(coding, "br") == 0) {
        rc = brotli_all(body, len, max, out, out_len, &too_big);
    } else {
        mr_error_set(err, "invalid_content_type", "The Content-Encoding `%.60s` is not supported: use gzip, deflate or br.",
                     coding);
        return -1;
    }
    if (too_big)
        mr_error_set(err, "payload_too_large",
                     "The provided payload reached the size limit. The maximum accepted payload size is %zu bytes.", max);
    else if (rc)
        mr_error_set(err, "malformed_payload", "The payload is not valid %s data.", coding);
    return rc;
}

/* The weight of one Accept-Encoding element's parameters (";q=0.5"): 1 when absent. */
static double weight_of(const char *params, size_t len)
{
    for (const char *q = params; q < params + len; q++)
        if ((*q == 'q' || *q == 'Q') && q[1] == '=')
            return strtod(q + 2, NULL);
    return 1.0;
}

const char *mr_pick_coding(const char *accept)
{
    static const char *const known[] = {"br", "gzip", "deflate"};
    int named[3] = {0}, accepted[3] = {0}, any = 0;
    for (const char *p = accept; p && *p;) {
        p += strspn(p, " \t,");
        size_t elem = strcspn(p, ","), name = strcspn(p, ";, \t");
        int ok = weight_of(p + name, elem - name) > 0;
        for (size_t k = 0; k < 3; k++)
            if (name == strlen(known[k]) && strncasecmp(p, known[k], name) == 0)
                named[k] = 1, accepted[k] = ok;
        if (name == 1 && *p == '*')
            any = ok;
        p += elem;
    }
    for (size_t k = 0; k < 3; k++)
        if (accepted[k] || (any && !named[k]))
            return known[k];
    return NULL;
}

int mr_encode_body(const char *coding, const char *body, size_t len, char **out, size_t *out_len)
{
    if (strcmp(coding, "br") == 0) {
        size_t cap = BrotliEncoderMaxCompressedSize(len);
        *out = mr_malloc(cap ? cap : len + 1024);
        *out_len = cap ? cap : len + 1024;
        /* quality 4: most of brotli's gain at a small part of its cost */
        if (BrotliEncoderCompress(4, BROTLI_DEFAULT_WINDOW, BROTLI_MODE_TEXT, len, (const uint8_t *)body, out_len,
                                  (uint8_t *)*out) != BROTLI_TRUE) {
            free(*out);
            return -1;
        }
        return 0;
    }
    z_stream z = {0};
    if (deflateInit2(&z, 6, Z_DEFLATED, strcmp(coding, "gzip") == 0 ? 16 + MAX_WBITS : MAX_WBITS, 8,
                     Z_DEFAULT_STRATEGY) != Z_OK)
        return -1;
    size_t cap = deflateBound(&z, (uLong)len) + 32;
    *out = mr_malloc(cap);
    z.next_in = (Bytef *)body;
    z.avail_in = (uInt)len;
    z.next_out = (Bytef *)*out;
    z.avail_out = (uInt)cap;
    int rc = deflate(&z, Z_FINISH);
    *out_len = cap - z.avail_out;
    deflateEnd(&z);
    if (rc != Z_STREAM_END) {
        free(*out);
        return -1;
    }
    return 0;
}
