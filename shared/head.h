/* head.h: judging an HTTP/1.x request head from its first bytes, before any parser sees it.
 *
 * The gateway's front door peeks at what a new connection has sent and hands the socket on only
 * once a whole, plausible head is there; these are its rules, kept pure so they can be tested
 * alone. */
#ifndef MIROIR_HEAD_H
#define MIROIR_HEAD_H

#include <stddef.h>

enum mr_head_verdict {
    MR_HEAD_PARTIAL,   /* HTTP so far; the head has not ended yet */
    MR_HEAD_COMPLETE,  /* a request line and headers, ended by an empty line */
    MR_HEAD_NOT_HTTP,  /* not an HTTP/1.x request line: a TLS handshake, HTTP/2, noise */
    MR_HEAD_TOO_LARGE, /* max bytes and still no end to the head */
};

/* Judges the n bytes a client has sent so far, a head being allowed at most max bytes. */
enum mr_head_verdict mr_head_judge(const char *bytes, size_t n, size_t max);

/* Whether a request target's path (up to any '?') is free of control characters, raw or
 * percent-encoded: a decoded NUL would cut the path short, so that what is routed differs
 * from what was sent. The query string may encode any byte. */
int mr_head_path_clean(const char *target);

#endif
