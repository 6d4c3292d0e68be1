/* h1.c: HTTP/1.1 request heads and response framing, as meili.c's own node client needs them. */
#include "h1.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

enum { CHUNK_SIZE, CHUNK_DATA, CHUNK_DATA_END, CHUNK_TRAILER };

/* The end of the line that starts at p, before end: the CR of its CRLF, or NULL if it has not all
 * come yet. */
static const char *line_end(const char *p, const char *end)
{
    for (; p + 1 < end; p++)
        if (p[0] == '\r' && p[1] == '\n')
            return p;
    return NULL;
}

/* Does the header value v (up to end) name token, in a comma-separated list? */
static int value_has(const char *v, const char *end, const char *token)
{
    size_t n = strlen(token);
    while (v < end) {
        while (v < end && (*v == ' ' || *v == '\t' || *v == ','))
            v++;
        const char *w = v;
        while (w < end && *w != ',')
            w++;
        const char *t = w;
        while (t > v && (t[-1] == ' ' || t[-1] == '\t'))
            t--;
        if ((size_t)(t - v) == n && !strncasecmp(v, token, n))
            return 1;
        v = w;
    }
    return 0;
}

/* Reads the head at buf[rd->head_start .. head_end): the status line, then the headers that
 * frame the body. Returns 0, or -1 if it is not an HTTP/1.x head. */
static int read_head(mr_h1_reader *rd, const char *buf, const char *head_end, int no_body)
{
    const char *p = buf + rd->head_start, *eol = line_end(p, head_end + 2);
    if (!eol || eol - p < 12 || strncmp(p, "HTTP/1.", 7) || (p[7] != '0' && p[7] != '1') || p[8] != ' ' ||
        !isdigit((unsigned char)p[9]) || !isdigit((unsigned char)p[10]) || !isdigit((unsigned char)p[11]))
        return -1;
    rd->status = (p[9] - '0') * 100 + (p[10] - '0') * 10 + (p[11] - '0');
    int http11 = p[7] == '1', close = 0, keep = 0, have_length = 0;
    unsigned long long length = 0;
    rd->chunked = 0;
    for (p = eol + 2; p < head_end; p = eol + 2) {
        eol = line_end(p, head_end + 2);
        const char *colon = memchr(p, ':', (size_t)(eol - p));
        if (!colon)
            return -1;
        const char *v = colon + 1;
        while (v < eol && (*v == ' ' || *v == '\t'))
            v++;
        size_t name_len = (size_t)(colon - p);
        if (name_len == 14 && !strncasecmp(p, "content-length", 14)) {
            char *stop;
            char digits[24];
            size_t n = (size_t)(eol - v);
            if (n == 0 || n >= sizeof digits || !isdigit((unsigned char)*v))
                return -1;
            memcpy(digits, v, n);
            digits[n] = '\0';
            unsigned long long value = strtoull(digits, &stop, 10);
            while (*stop == ' ' || *stop == '\t')
                stop++;
            if (*stop || (have_length && value != length))
                return -1;
            length = value;
            have_length = 1;
        } else if (name_len == 17 && !strncasecmp(p, "transfer-encoding", 17)) {
            rd->chunked = value_has(v, eol, "chunked");
        } else if (name_len == 10 && !strncasecmp(p, "connection", 10)) {
            close |= value_has(v, eol, "close");
            keep |= value_has(v, eol, "keep-alive");
        }
    }
    rd->keep_alive = http11 ? !close : keep && !close;
    rd->head_len = (size_t)(head_end - buf) + 4;
    rd->scan = rd->head_len;
    if (no_body || rd->status == 204 || rd->status == 304) {
        rd->chunked = 0;
        rd->left = 0;
    } else if (rd->chunked) {
        rd->chunk_phase = CHUNK_SIZE;
    } else if (have_length) {
        rd->left = length;
    } else {
        rd->to_close = 1;
        rd->keep_alive = 0;
    }
    return 0;
}

/* Moves the chunked body on as far as buf[0..len) allows, decoding it in place. */
static int read_chunks(mr_h1_reader *rd, char *buf, size_t len)
{
    for (;;) {
        const char *end = buf + len, *p = buf + rd->scan, *eol;
        switch (rd->chunk_phase) {
        case CHUNK_SIZE: {
            if (!(eol = line_end(p, end)))
                return len - rd->scan > 1024 ? MR_H1_BAD : MR_H1_MORE;
            unsigned long long size = 0;
            const char *q = p;
            for (; q < eol && isxdigit((unsigned char)*q); q++) {
                if (q - p >= 15)
                    return MR_H1_BAD;
                size = size * 16 + (unsigned long long)(isdigit((unsigned char)*q) ? *q - '0' : (tolower((unsigned char)*q) - 'a' + 10));
            }
            if (q == p || (q < eol && *q != ';' && *q != ' ' && *q != '\t'))
                return MR_H1_BAD;
            rd->scan = (size_t)(eol + 2 - buf);
            rd->left = size;
            rd->chunk_phase = size ? CHUNK_DATA : CHUNK_TRAILER;
            break;
        }
        case CHUNK_DATA: {
            size_t have = len - rd->scan, take = have < rd->left ? have : (size_t)rd->left;
            if (!take)
                return MR_H1_MORE;
            memmove(buf + rd->head_len + rd->body_len, buf + rd->scan, take);
            rd->body_len += take;
            rd->scan += take;
            rd->left -= take;
            if (!rd->left)
                rd->chunk_phase = CHUNK_DATA_END;
            break;
        }
        case CHUNK_DATA_END:
            if (len - rd->scan < 2)
                return MR_H1_MORE;
            if (p[0] != '\r' || p[1] != '\n')
                return MR_H1_BAD;
            rd->scan += 2;
            rd->chunk_phase = CHUNK_SIZE;
            break;
        case CHUNK_TRAILER:
            if (!(eol = line_end(p, end)))
                return len - rd->scan > 8192 ? MR_H1_BAD : MR_H1_MORE;
            rd->scan = (size_t)(eol + 2 - buf);
            if (eol == p) {
                rd->done = 1;
                return MR_H1_DONE;
            }
            break;
        }
    }
}

int mr_h1_read(mr_h1_reader *rd, char *buf, size_t len, int no_body)
{
    if (rd->done)
        return MR_H1_DONE;
    while (!rd->head_len) {
        /* the head ends at the first empty line; look again only at what is new */
        size_t from = rd->scan > rd->head_start + 3 ? rd->scan - 3 : rd->head_start;
        const char *end = NULL;
        for (size_t i = from; i + 3 < len; i++)
            if (buf[i] == '\r' && buf[i + 1] == '\n' && buf[i + 2] == '\r' && buf[i + 3] == '\n') {
                end = buf + i;
                break;
            }
        if (!end) {
            rd->scan = len;
            return len - rd->head_start > 65536 ? MR_H1_BAD : MR_H1_MORE;
        }
        if (read_head(rd, buf, end, no_body))
            return MR_H1_BAD;
        if (rd->status >= 100 && rd->status < 200) { /* an interim answer: the real one follows */
            rd->head_start = rd->head_len;
            rd->head_len = 0;
            rd->to_close = 0;
        }
    }
    if (rd->chunked)
        return read_chunks(rd, buf, len);
    if (rd->to_close) {
        rd->body_len = len - rd->head_len;
        rd->scan = len;
        return MR_H1_MORE;
    }
    size_t have = len - rd->scan, take = have < rd->left ? have : (size_t)rd->left;
    rd->body_len += take;
    rd->scan += take;
    rd->left -= take;
    if (rd->left)
        return MR_H1_MORE;
    rd->done = 1;
    return MR_H1_DONE;
}

int mr_h1_closed(mr_h1_reader *rd, char *buf, size_t len, int no_body)
{
    int state = mr_h1_read(rd, buf, len, no_body);
    if (state != MR_H1_MORE)
        return state;
    if (rd->head_len && rd->to_close) {
        rd->done = 1;
        return MR_H1_DONE;
    }
    return MR_H1_BAD;
}

size_t mr_h1_head(char *out, size_t cap, const char *method, const char *host, const char *target,
                  const char *auth, int has_body, const char *content_type, size_t body_len,
                  const char *request_id)
{
    int n = snprintf(out, cap, "%s %s HTTP/1.1\r\nHost: %s\r\n", method, target, host);
    size_t len = n > 0 ? (size_t)n : cap;
#define ADD(...)                                                              \
    do {                                                                      \
        if (len < cap) {                                                      \
            int k = snprintf(out + len, cap - len, __VA_ARGS__);              \
            len = k >= 0 ? len + (size_t)k : cap;                             \
        }                                                                     \
    } while (0)
    if (auth && *auth)
        ADD("%s\r\n", auth);
    if (has_body)
        ADD("Content-Type: %s\r\nContent-Length: %zu\r\n", content_type ? content_type : "application/json", body_len);
    if (request_id)
        ADD("X-Request-Id: %s\r\n", request_id);
    ADD("\r\n");
#undef ADD
    return len < cap ? len : 0;
}

int mr_h1_url(const char *url, char *host, size_t host_cap, int *port, const char **target)
{
    if (strncmp(url, "http://", 7))
        return -1;
    const char *p = url + 7, *host_end, *rest;
    if (*p == '[') {
        p++;
        if (!(host_end = strchr(p, ']')))
            return -1;
        rest = host_end + 1;
    } else {
        host_end = p + strcspn(p, ":/?#");
        rest = host_end;
        for (const char *q = p; q < host_end; q++)
            if (!isdigit((unsigned char)*q) && *q != '.')
                return -1; /* a name: resolving it is libcurl's job */
    }
    size_t n = (size_t)(host_end - p);
    if (!n || n >= host_cap || memchr(p, '@', n))
        return -1;
    memcpy(host, p, n);
    host[n] = '\0';
    *port = 80;
    if (*rest == ':') {
        char *stop;
        long value = strtol(rest + 1, &stop, 10);
        if (stop == rest + 1 || value < 1 || value > 65535)
            return -1;
        *port = (int)value;
        rest = stop;
    }
    if (*rest == '/')
        *target = rest;
    else if (!*rest)
        *target = "/";
    else
        return -1;
    return 0;
}
