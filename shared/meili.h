/* meili.h: an HTTP client for Meilisearch nodes: many requests run in parallel, over kept-alive
 * connections that each thread keeps for its life; through libcurl, or (mr_http_set_own_client)
 * over sockets of its own for plain http. */
#ifndef MIROIR_MEILI_H
#define MIROIR_MEILI_H

#include <curl/curl.h>
#include <jansson.h>
#include <stddef.h>

typedef struct mr_http mr_http;

/* One request. The caller owns the struct and everything it points to; mr_http_run fills the
 * response fields, and mr_http_req_reset frees resp. */
typedef struct mr_http_req {
    const char *method;       /* "GET", "POST", … */
    char url[2048];
    const char *body;         /* may be NULL */
    size_t body_len;
    const char *content_type; /* default application/json when body is set */
    long timeout_ms;          /* 0: the client's default */
    const char *request_id;   /* sent as X-Request-Id when not NULL */
    /* results */
    long status;              /* HTTP status, 0 if no answer (then curl_error says why) */
    char *resp;               /* NUL-terminated body, malloc'd */
    size_t resp_len;
    size_t resp_cap;          /* room allocated for resp */
    char curl_error[CURL_ERROR_SIZE];
    int never_sent;           /* no connection was made: the node cannot have seen the request */
    double elapsed_ms;
} mr_http_req;

/* bearer may be "" for no Authorization header. Returns NULL on allocation failure. */
mr_http *mr_http_new(const char *bearer, long timeout_ms, long connect_timeout_ms);

/* on: requests to http:// URLs with a literal address go over sockets of the client's own, with
 * its own HTTP/1.1 framing (h1.h), not through libcurl; https and names still go to libcurl. The
 * results are the same, and so is a reused connection found closed: sent again once on a new
 * one. Set before the first request. */
void mr_http_set_own_client(mr_http *h, int on);
void mr_http_free(mr_http *h);

/* Runs reqs[0..n) in parallel and returns when all have finished or timed out. Returns 0. */
int mr_http_run(mr_http *h, mr_http_req *reqs, size_t n);

/* A flight: requests started one at a time and collected as each finishes, on the calling
 * thread's connections; what a hedged fan-out needs (a second request while the first runs,
 * and the slower one dropped). The caller owns the requests; the flight only runs them. */
typedef struct mr_http_flight mr_http_flight;
mr_http_flight *mr_http_flight_new(mr_http *h);
/* Starts r (its results reset). */
void mr_http_flight_add(mr_http_flight *f, mr_http_req *r);
/* The next request to finish, waiting at most timeout_ms (-1: until one does); NULL if none did
 * in time, or none is running. */
mr_http_req *mr_http_flight_next(mr_http_flight *f, int timeout_ms);
/* Stops r if it runs: it then has status 0 and curl_error "canceled". Returns 1 if it ran. */
int mr_http_flight_cancel(mr_http_flight *f, mr_http_req *r);
size_t mr_http_flight_running(const mr_http_flight *f);
/* Cancels whatever still runs and frees the flight. */
void mr_http_flight_free(mr_http_flight *f);

/* Convenience: one request, run alone. */
int mr_http_one(mr_http *h, mr_http_req *req, const char *method, const char *url, const char *body, size_t body_len);

void mr_http_req_reset(mr_http_req *r);

/* Parses r->resp as JSON; returns a new reference or NULL. */
json_t *mr_http_json(const mr_http_req *r);

/* True for a 2xx answer. */
static inline int mr_http_ok(const mr_http_req *r) { return r->status >= 200 && r->status < 300; }

#endif
