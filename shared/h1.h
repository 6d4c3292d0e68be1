/* h1.h: HTTP/1.1 framing for the node client, with no socket in it: a request's head written, and
 * a response read as its bytes arrive (Content-Length, chunked, or up to the connection's close).
 *
 * libcurl cost the gateway more CPU per query than the merge did: a dozen polls, its state machine
 * and its allocations for every shard request. The nodes speak plain HTTP/1.1 and need nothing of
 * libcurl but this framing, so meili.c speaks it itself over kept-alive sockets, and keeps libcurl
 * for https. */
#ifndef MIROIR_H1_H
#define MIROIR_H1_H

#include <stddef.h>

enum { MR_H1_BAD = -1, MR_H1_MORE = 0, MR_H1_DONE = 1 };

/* A response being read. A zeroed struct is ready for a new response. */
typedef struct mr_h1_reader {
    long status;
    int keep_alive;      /* the connection may carry another request after this response */
    int chunked;
    int to_close;        /* no length given: the body runs to the connection's close */
    size_t head_start;   /* where the final head begins (after any 1xx interim heads) */
    size_t head_len;     /* where the body begins; 0 until the head is whole */
    size_t body_len;     /* body bytes so far, decoded, at buf[head_len ..] */
    size_t scan;         /* raw bytes looked at so far */
    unsigned long long left; /* bytes still to come: of the Content-Length, or of the chunk */
    int chunk_phase;
    int done;
} mr_h1_reader;

/* Reads buf[0..len), every byte of the response received so far; len only grows between calls,
 * and the bytes already given are not changed by the caller. A chunked body is decoded in place.
 * no_body: the request was HEAD. Returns MR_H1_DONE once the response is whole (its body is then
 * buf[head_len .. head_len + body_len), and rd->scan bytes of buf were the response), MR_H1_MORE,
 * or MR_H1_BAD for bytes that are not an HTTP/1.x response. */
int mr_h1_read(mr_h1_reader *rd, char *buf, size_t len, int no_body);

/* The peer closed the connection after len bytes: MR_H1_DONE if the response ran up to the close,
 * MR_H1_BAD if it was cut short. */
int mr_h1_closed(mr_h1_reader *rd, char *buf, size_t len, int no_body);

/* Writes a request's head into out, NUL-terminated. host is "host:port", target the path and query,
 * auth a whole header line without its CRLF ("" for none), content_type NULL for the default when
 * has_body, request_id NULL for none. Returns the head's length, or 0 if it does not fit in cap. */
size_t mr_h1_head(char *out, size_t cap, const char *method, const char *host, const char *target,
                  const char *auth, int has_body, const char *content_type, size_t body_len,
                  const char *request_id);

/* Splits "http://host:port/target" into host (an IPv4 or bracketed IPv6 literal, brackets kept
 * off), port (80 if none) and target ("/" if none: then it points at a static string). Returns 0, or -1 for
 * anything else (https, a name to resolve, user info): libcurl's to handle. */
int mr_h1_url(const char *url, char *host, size_t host_cap, int *port, const char **target);

#endif
