/* meili.c: parallel HTTP to Meilisearch nodes over kept-alive connections, per thread. */
#include "meili.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "alloc.h"
#include "util.h"

/* What a thread keeps between its requests: its multi handle, with its cache of open connections
 * to the nodes, and the easy handles its finished requests leave (making one costs a few
 * kilobytes of allocation, and freeing its buffers again, on every shard request). */
#define IDLE_HANDLES 16
struct thread_http {
    CURLM *multi;
    CURL *idle[IDLE_HANDLES];
    size_t idle_count;
};

struct mr_http {
    /* Each thread keeps its own multi handle, and with it its own cache of open connections to
     * the nodes: a gateway thread serves one client connection for its whole life, so its node
     * connections stay warm across that client's requests, with no lock and no new multi (and
     * its wake-up socket pair) per request. Freed when the thread exits. */
    pthread_key_t thread_key;
    char auth[300];
    long timeout_ms;
    long connect_timeout_ms;
};

static void free_thread_http(void *p)
{
    struct thread_http *t = p;
    for (size_t i = 0; i < t->idle_count; i++)
        curl_easy_cleanup(t->idle[i]);
    curl_multi_cleanup(t->multi);
    free(t);
}

static struct thread_http *thread_http(mr_http *h)
{
    struct thread_http *t = pthread_getspecific(h->thread_key);
    if (!t) {
        t = mr_calloc(1, sizeof *t);
        t->multi = curl_multi_init();
        curl_multi_setopt(t->multi, CURLMOPT_MAXCONNECTS, 256L);
        pthread_setspecific(h->thread_key, t);
    }
    return t;
}

mr_http *mr_http_new(const char *bearer, long timeout_ms, long connect_timeout_ms)
{
    mr_http *h = calloc(1, sizeof *h);
    if (!h)
        return NULL;
    if (pthread_key_create(&h->thread_key, free_thread_http)) {
        free(h);
        return NULL;
    }
    if (bearer && *bearer)
        snprintf(h->auth, sizeof h->auth, "Authorization: Bearer %s", bearer);
    h->timeout_ms = timeout_ms;
    h->connect_timeout_ms = connect_timeout_ms;
    return h;
}

void mr_http_free(mr_http *h)
{
    if (!h)
        return;
    /* other threads' state went with them; the caller's own is freed here */
    struct thread_http *t = pthread_getspecific(h->thread_key);
    if (t) {
        pthread_setspecific(h->thread_key, NULL);
        free_thread_http(t);
    }
    pthread_key_delete(h->thread_key);
    free(h);
}

static size_t on_body(char *data, size_t size, size_t nmemb, void *userp)
{
    mr_http_req *r = userp;
    size_t n = size * nmemb;
    if (r->resp_len + n + 1 > r->resp_cap) {
        /* doubling: an answer of many shards' hits comes in many pieces, and each copy of the
         * whole so far would cost as much as reading it */
        size_t cap = r->resp_cap ? r->resp_cap : 16384;
        while (cap < r->resp_len + n + 1)
            cap *= 2;
        char *grown = realloc(r->resp, cap);
        if (!grown)
            return 0;
        r->resp = grown;
        r->resp_cap = cap;
    }
    memcpy(r->resp + r->resp_len, data, n);
    r->resp_len += n;
    r->resp[r->resp_len] = '\0';
    return n;
}

void mr_http_req_reset(mr_http_req *r)
{
    free(r->resp);
    r->resp = NULL;
    r->resp_len = 0;
    r->resp_cap = 0;
    r->status = 0;
    r->curl_error[0] = '\0';
    r->never_sent = 0;
}

/* ---- a flight: requests started one by one, collected as they finish ---- */

struct flight_slot {
    mr_http_req *req;
    CURL *easy;
    struct curl_slist *headers;
    int done;
};

struct mr_http_flight {
    mr_http *h;
    struct thread_http *t;
    CURLM *multi;
    struct flight_slot *slots;
    size_t count, cap;
    size_t running;
};

mr_http_flight *mr_http_flight_new(mr_http *h)
{
    mr_http_flight *f = mr_calloc(1, sizeof *f);
    f->h = h;
    f->t = thread_http(h);
    f->multi = f->t->multi;
    return f;
}

void mr_http_flight_add(mr_http_flight *f, mr_http_req *r)
{
    mr_http *h = f->h;
    mr_http_req_reset(r);
    CURL *e;
    if (f->t->idle_count) {
        e = f->t->idle[--f->t->idle_count];
        curl_easy_reset(e);
    } else {
        e = curl_easy_init();
    }
    curl_easy_setopt(e, CURLOPT_URL, r->url);
    curl_easy_setopt(e, CURLOPT_CUSTOMREQUEST, r->method);
    curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, r->timeout_ms ? r->timeout_ms : h->timeout_ms);
    curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS, h->connect_timeout_ms);
    curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(e, CURLOPT_WRITEDATA, r);
    curl_easy_setopt(e, CURLOPT_ERRORBUFFER, r->curl_error);
    curl_easy_setopt(e, CURLOPT_PRIVATE, r);
    curl_easy_setopt(e, CURLOPT_TCP_NODELAY, 1L);
    curl_easy_setopt(e, CURLOPT_PROXY, ""); /* nodes are reached directly: no proxy variables read per request */
    struct curl_slist *l = NULL;
    if (h->auth[0])
        l = curl_slist_append(l, h->auth);
    if (r->body) {
        char ct[128];
        snprintf(ct, sizeof ct, "Content-Type: %s", r->content_type ? r->content_type : "application/json");
        l = curl_slist_append(l, ct);
        curl_easy_setopt(e, CURLOPT_POSTFIELDS, r->body);
        curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)r->body_len);
    }
    if (r->request_id) {
        char rid[96];
        snprintf(rid, sizeof rid, "X-Request-Id: %s", r->request_id);
        l = curl_slist_append(l, rid);
    }
    l = curl_slist_append(l, "Expect:"); /* no 100-continue round trip on large bodies */
    curl_easy_setopt(e, CURLOPT_HTTPHEADER, l);
    if (f->count == f->cap) {
        f->cap = f->cap ? f->cap * 2 : 8;
        f->slots = mr_realloc(f->slots, f->cap * sizeof *f->slots);
    }
    f->slots[f->count++] = (struct flight_slot){.req = r, .easy = e, .headers = l};
    curl_multi_add_handle(f->multi, e);
    f->running++;
}

static struct flight_slot *slot_of(mr_http_flight *f, const mr_http_req *r)
{
    for (size_t i = 0; i < f->count; i++)
        if (f->slots[i].req == r)
            return &f->slots[i];
    return NULL;
}

/* The slot's request is over: its handle leaves the multi (its connection stays cached), kept
 * for the thread's next request. */
static void slot_end(mr_http_flight *f, struct flight_slot *s)
{
    curl_multi_remove_handle(f->multi, s->easy);
    if (f->t->idle_count < IDLE_HANDLES)
        f->t->idle[f->t->idle_count++] = s->easy;
    else
        curl_easy_cleanup(s->easy);
    curl_slist_free_all(s->headers);
    s->easy = NULL;
    s->headers = NULL;
    s->done = 1;
    f->running--;
}

mr_http_req *mr_http_flight_next(mr_http_flight *f, int timeout_ms)
{
    int64_t until = mr_now_ms() + (timeout_ms > 0 ? timeout_ms : 0);
    while (f->running) {
        int still;
        if (curl_multi_perform(f->multi, &still) != CURLM_OK)
            return NULL;
        CURLMsg *msg;
        int left;
        while ((msg = curl_multi_info_read(f->multi, &left))) {
            if (msg->msg != CURLMSG_DONE)
                continue;
            mr_http_req *r;
            curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, (char **)&r);
            struct flight_slot *s = slot_of(f, r);
            if (!s || s->done)
                continue;
            r->never_sent = msg->data.result == CURLE_COULDNT_CONNECT || msg->data.result == CURLE_COULDNT_RESOLVE_HOST;
            if (msg->data.result == CURLE_OK) {
                curl_easy_getinfo(msg->easy_handle, CURLINFO_RESPONSE_CODE, &r->status);
            } else {
                r->status = 0;
                if (!r->curl_error[0])
                    snprintf(r->curl_error, sizeof r->curl_error, "%s", curl_easy_strerror(msg->data.result));
            }
            double secs = 0;
            curl_easy_getinfo(msg->easy_handle, CURLINFO_TOTAL_TIME, &secs);
            r->elapsed_ms = secs * 1000.0;
            slot_end(f, s);
            return r;
        }
        int64_t now = mr_now_ms();
        if (timeout_ms >= 0 && now >= until)
            return NULL;
        int wait = timeout_ms < 0 ? 100 : (int)(until - now < 100 ? until - now : 100);
        curl_multi_poll(f->multi, NULL, 0, wait, NULL);
    }
    return NULL;
}

int mr_http_flight_cancel(mr_http_flight *f, mr_http_req *r)
{
    struct flight_slot *s = slot_of(f, r);
    if (!s || s->done)
        return 0;
    slot_end(f, s);
    r->status = 0;
    snprintf(r->curl_error, sizeof r->curl_error, "canceled");
    return 1;
}

size_t mr_http_flight_running(const mr_http_flight *f)
{
    return f->running;
}

void mr_http_flight_free(mr_http_flight *f)
{
    if (!f)
        return;
    for (size_t i = 0; i < f->count; i++)
        if (!f->slots[i].done)
            mr_http_flight_cancel(f, f->slots[i].req);
    free(f->slots);
    free(f);
}

int mr_http_run(mr_http *h, mr_http_req *reqs, size_t n)
{
    mr_http_flight *f = mr_http_flight_new(h);
    for (size_t i = 0; i < n; i++)
        mr_http_flight_add(f, &reqs[i]);
    while (mr_http_flight_running(f))
        mr_http_flight_next(f, -1);
    mr_http_flight_free(f);
    return 0;
}

int mr_http_one(mr_http *h, mr_http_req *req, const char *method, const char *url, const char *body, size_t body_len)
{
    req->method = method;
    snprintf(req->url, sizeof req->url, "%s", url);
    req->body = body;
    req->body_len = body_len;
    return mr_http_run(h, req, 1);
}

json_t *mr_http_json(const mr_http_req *r)
{
    if (!r->resp)
        return NULL;
    return json_loadb(r->resp, r->resp_len, JSON_DECODE_ANY, NULL);
}
