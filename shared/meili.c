/* meili.c: parallel HTTP to Meilisearch nodes over kept-alive connections, per thread. */
#include "meili.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#include "alloc.h"
#include "h1.h"
#include "util.h"

/* What a thread keeps between its requests: its multi handle, with its cache of open connections
 * to the nodes, and the easy handles its finished requests leave (making one costs a few
 * kilobytes of allocation, and freeing its buffers again, on every shard request). */
#define IDLE_HANDLES 16

/* A kept-alive socket of the client's own (h1.h) to a node, idle between two requests. */
struct idle_conn {
    int fd;
    int port;
    char host[64];
    int64_t since_ms;
};
#define IDLE_CONNS 256
/* actix, Meilisearch's server, closes a connection idle for 5 s: one idle longer than this is
 * closed rather than tried, so that a request seldom meets a socket closed under it. */
#define IDLE_CONN_MAX_MS 4000

struct thread_http {
    CURLM *multi;
    CURL *idle[IDLE_HANDLES];
    size_t idle_count;
    struct idle_conn conns[IDLE_CONNS];
    size_t conn_count;
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
    int own_client; /* 1: http:// URLs with a literal address go over the client's own sockets */
};

static void free_thread_http(void *p)
{
    struct thread_http *t = p;
    for (size_t i = 0; i < t->idle_count; i++)
        curl_easy_cleanup(t->idle[i]);
    for (size_t i = 0; i < t->conn_count; i++)
        close(t->conns[i].fd);
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

void mr_http_set_own_client(mr_http *h, int on)
{
    h->own_client = on;
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

/* Room in r->resp for more bytes and the NUL after them. Doubling: an answer of many shards'
 * hits comes in many pieces, and each copy of the whole so far would cost as much as reading it. */
static void reserve_resp(mr_http_req *r, size_t more)
{
    if (r->resp_len + more + 1 <= r->resp_cap)
        return;
    size_t cap = r->resp_cap ? r->resp_cap : 16384;
    while (cap < r->resp_len + more + 1)
        cap *= 2;
    r->resp = mr_realloc(r->resp, cap);
    r->resp_cap = cap;
}

static size_t on_body(char *data, size_t size, size_t nmemb, void *userp)
{
    mr_http_req *r = userp;
    size_t n = size * nmemb;
    reserve_resp(r, n);
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

/* ---- the client's own sockets: a pool of kept-alive connections per thread ---- */

/* An idle connection to host:port, or -1; those idle too long to trust are closed on the way. */
static int take_conn(struct thread_http *t, const char *host, int port)
{
    int64_t now = mr_now_ms();
    for (size_t i = t->conn_count; i-- > 0;) {
        struct idle_conn *c = &t->conns[i];
        if (c->port != port || strcmp(c->host, host))
            continue;
        int fd = c->fd;
        int fresh = now - c->since_ms < IDLE_CONN_MAX_MS;
        *c = t->conns[--t->conn_count];
        if (fresh)
            return fd;
        close(fd);
    }
    return -1;
}

static void keep_conn(struct thread_http *t, const char *host, int port, int fd)
{
    if (t->conn_count == IDLE_CONNS) {
        close(fd);
        return;
    }
    struct idle_conn *c = &t->conns[t->conn_count++];
    c->fd = fd;
    c->port = port;
    snprintf(c->host, sizeof c->host, "%s", host);
    c->since_ms = mr_now_ms();
}

static int64_t now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

/* ---- a flight: requests started one by one, collected as they finish ---- */

enum { OWN_CONNECTING = 1, OWN_SENDING, OWN_RECEIVING };

struct flight_slot {
    mr_http_req *req;
    /* a request that libcurl runs */
    CURL *easy;
    struct curl_slist *headers;
    /* or one on the client's own socket */
    int own;
    int fd;
    int phase;
    int reused;  /* the socket carried an earlier request: the node may have closed it since */
    int retried; /* sent again once on a new socket, after a reused one turned out closed */
    int no_body; /* a HEAD request */
    int port;
    char host[64];
    char *head;
    size_t head_len, sent;
    mr_h1_reader rd;
    int64_t started_us, deadline_ms, connect_deadline_ms;
    int finished; /* has its result, not yet handed out by mr_http_flight_next */
    int done;
};

struct mr_http_flight {
    mr_http *h;
    struct thread_http *t;
    CURLM *multi;
    struct flight_slot *slots;
    size_t count, cap;
    size_t running;      /* requests not yet handed out */
    size_t curl_running; /* of them, libcurl's */
    struct pollfd *pfds; /* room for pfd_cap of the own sockets, each with its slot's index */
    size_t *pfd_slot;
    size_t pfd_cap;
};

mr_http_flight *mr_http_flight_new(mr_http *h)
{
    mr_http_flight *f = mr_calloc(1, sizeof *f);
    f->h = h;
    f->t = thread_http(h);
    f->multi = f->t->multi;
    return f;
}

/* The slot's own request is over, with an answer or an error; its socket is kept for the next
 * request if the answer left it fit for one, and closed otherwise. */
static void own_finish(mr_http_flight *f, struct flight_slot *s, int keep)
{
    if (s->fd >= 0) {
        if (keep)
            keep_conn(f->t, s->host, s->port, s->fd);
        else
            close(s->fd);
        s->fd = -1;
    }
    s->req->elapsed_ms = (double)(now_us() - s->started_us) / 1000.0;
    s->finished = 1;
}

static void own_fail(mr_http_flight *f, struct flight_slot *s, int never_sent, const char *fmt, const char *detail)
{
    mr_http_req *r = s->req;
    r->status = 0;
    r->never_sent = never_sent;
    snprintf(r->curl_error, sizeof r->curl_error, fmt, s->host, s->port, detail);
    own_finish(f, s, 0);
}

static int own_connect(struct flight_slot *s)
{
    struct sockaddr_storage addr = {0};
    socklen_t addr_len;
    struct sockaddr_in *v4 = (struct sockaddr_in *)&addr;
    struct sockaddr_in6 *v6 = (struct sockaddr_in6 *)&addr;
    if (inet_pton(AF_INET, s->host, &v4->sin_addr) == 1) {
        v4->sin_family = AF_INET;
        v4->sin_port = htons((uint16_t)s->port);
        addr_len = sizeof *v4;
    } else if (inet_pton(AF_INET6, s->host, &v6->sin6_addr) == 1) {
        v6->sin6_family = AF_INET6;
        v6->sin6_port = htons((uint16_t)s->port);
        addr_len = sizeof *v6;
    } else {
        errno = EINVAL;
        return -1;
    }
    s->fd = socket(addr.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (s->fd < 0)
        return -1;
    int one = 1;
    setsockopt(s->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    s->reused = 0;
    if (connect(s->fd, (struct sockaddr *)&addr, addr_len) == 0) {
        s->phase = OWN_SENDING;
        return 0;
    }
    if (errno == EINPROGRESS) {
        s->phase = OWN_CONNECTING;
        return 0;
    }
    int err = errno;
    close(s->fd);
    s->fd = -1;
    errno = err;
    return -1;
}

/* Writes what is left of the head and the body. Returns 0 (all sent, or the socket is full), or
 * -1 with errno. */
static int own_send(struct flight_slot *s)
{
    const mr_http_req *r = s->req;
    size_t body_len = r->body ? r->body_len : 0, total = s->head_len + body_len;
    while (s->sent < total) {
        struct iovec iov[2];
        int n = 0;
        if (s->sent < s->head_len)
            iov[n++] = (struct iovec){s->head + s->sent, s->head_len - s->sent};
        size_t body_from = s->sent > s->head_len ? s->sent - s->head_len : 0;
        if (body_len > body_from)
            iov[n++] = (struct iovec){(char *)r->body + body_from, body_len - body_from};
        struct msghdr m = {.msg_iov = iov, .msg_iovlen = (size_t)n};
        ssize_t w = sendmsg(s->fd, &m, MSG_NOSIGNAL);
        if (w < 0) {
            if (errno == EINTR)
                continue;
            return errno == EAGAIN || errno == EWOULDBLOCK ? 0 : -1;
        }
        s->sent += (size_t)w;
    }
    s->phase = OWN_RECEIVING;
    return 0;
}

/* A reused socket was found closed before any of the answer came: the node closed it while it
 * lay idle, so it never read the request. Sends it again, once, on a new connection, as libcurl
 * does. Returns 0, or -1 if that is not the case or the new connection failed (s then failed). */
static int own_retry(mr_http_flight *f, struct flight_slot *s)
{
    if (!s->reused || s->retried || s->req->resp_len)
        return -1;
    close(s->fd);
    s->fd = -1;
    s->retried = 1;
    s->sent = 0;
    memset(&s->rd, 0, sizeof s->rd);
    if (own_connect(s)) {
        own_fail(f, s, 1, "Failed to connect to %s port %d: %s", strerror(errno));
        return 0;
    }
    if (s->phase == OWN_SENDING && own_send(s))
        own_fail(f, s, 0, "Send failure to %s port %d: %s", strerror(errno));
    return 0;
}

static void own_answer(mr_http_flight *f, struct flight_slot *s)
{
    mr_http_req *r = s->req;
    int keep = s->rd.keep_alive && s->rd.scan == r->resp_len;
    memmove(r->resp, r->resp + s->rd.head_len, s->rd.body_len);
    r->resp_len = s->rd.body_len;
    r->resp[r->resp_len] = '\0';
    r->status = s->rd.status;
    own_finish(f, s, keep);
}

/* Reads what the socket has of the answer. */
static void own_receive(mr_http_flight *f, struct flight_slot *s)
{
    mr_http_req *r = s->req;
    for (;;) {
        reserve_resp(r, 16384);
        size_t room = r->resp_cap - r->resp_len - 1;
        ssize_t n = recv(s->fd, r->resp + r->resp_len, room, 0);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            if (errno == EAGAIN || errno == EWOULDBLOCK)
                return;
            if (own_retry(f, s))
                own_fail(f, s, 0, "Recv failure from %s port %d: %s", strerror(errno));
            return;
        }
        if (n == 0) {
            if (!own_retry(f, s))
                return;
            if (mr_h1_closed(&s->rd, r->resp, r->resp_len, s->no_body) == MR_H1_DONE)
                own_answer(f, s);
            else
                own_fail(f, s, 0, "%s port %d: %s", "the node closed the connection before its answer was whole");
            return;
        }
        r->resp_len += (size_t)n;
        r->resp[r->resp_len] = '\0';
        int state = mr_h1_read(&s->rd, r->resp, r->resp_len, s->no_body);
        if (state == MR_H1_DONE) {
            own_answer(f, s);
            return;
        }
        if (state == MR_H1_BAD) {
            own_fail(f, s, 0, "%s port %d: %s", "the node's answer is not HTTP/1.1");
            return;
        }
        if ((size_t)n < room) /* the socket is drained: asking again would only say so */
            return;
    }
}

/* Moves the slot's request on by what poll said of its socket. */
static void own_step(mr_http_flight *f, struct flight_slot *s, short revents)
{
    if (s->phase == OWN_CONNECTING) {
        int err = 0;
        socklen_t len = sizeof err;
        if (getsockopt(s->fd, SOL_SOCKET, SO_ERROR, &err, &len) < 0)
            err = errno;
        if (err) {
            own_fail(f, s, 1, "Failed to connect to %s port %d: %s", strerror(err));
            return;
        }
        if (!(revents & POLLOUT))
            return;
        s->phase = OWN_SENDING;
    }
    if (s->phase == OWN_SENDING) {
        if (own_send(s) && own_retry(f, s))
            own_fail(f, s, 0, "Send failure to %s port %d: %s", strerror(errno));
        return;
    }
    if (revents & (POLLIN | POLLHUP | POLLERR))
        own_receive(f, s);
}

static void own_start(mr_http_flight *f, struct flight_slot *s, const char *target)
{
    mr_http *h = f->h;
    mr_http_req *r = s->req;
    s->own = 1;
    s->fd = -1;
    s->no_body = !strcmp(r->method, "HEAD");
    s->started_us = now_us();
    int64_t now = s->started_us / 1000;
    s->deadline_ms = now + (r->timeout_ms ? r->timeout_ms : h->timeout_ms);
    s->connect_deadline_ms = h->connect_timeout_ms > 0 ? now + h->connect_timeout_ms : s->deadline_ms;
    size_t cap = strlen(r->method) + strlen(target) + strlen(s->host) + strlen(h->auth) +
                 (r->content_type ? strlen(r->content_type) : 0) + (r->request_id ? strlen(r->request_id) : 0) + 160;
    s->head = mr_malloc(cap);
    char host_header[80];
    snprintf(host_header, sizeof host_header, strchr(s->host, ':') ? "[%s]:%d" : "%s:%d", s->host, s->port);
    s->head_len = mr_h1_head(s->head, cap, r->method, host_header, target, h->auth, r->body != NULL,
                             r->content_type, r->body_len, r->request_id);
    s->fd = take_conn(f->t, s->host, s->port);
    if (s->fd >= 0) {
        s->reused = 1;
        s->phase = OWN_SENDING;
    } else if (own_connect(s)) {
        own_fail(f, s, 1, "Failed to connect to %s port %d: %s", strerror(errno));
        return;
    }
    /* sent at once, without waiting for poll to say what a kept-alive socket nearly always is */
    if (s->phase == OWN_SENDING && own_send(s) && own_retry(f, s))
        own_fail(f, s, 0, "Send failure to %s port %d: %s", strerror(errno));
}

static void curl_start(mr_http_flight *f, struct flight_slot *s)
{
    mr_http *h = f->h;
    mr_http_req *r = s->req;
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
    s->easy = e;
    s->headers = l;
    curl_multi_add_handle(f->multi, e);
    f->curl_running++;
}

void mr_http_flight_add(mr_http_flight *f, mr_http_req *r)
{
    mr_http_req_reset(r);
    if (f->count == f->cap) {
        f->cap = f->cap ? f->cap * 2 : 8;
        f->slots = mr_realloc(f->slots, f->cap * sizeof *f->slots);
    }
    struct flight_slot *s = &f->slots[f->count++];
    *s = (struct flight_slot){.req = r, .fd = -1};
    f->running++;
    const char *target;
    if (f->h->own_client && !mr_h1_url(r->url, s->host, sizeof s->host, &s->port, &target))
        own_start(f, s, target);
    else
        curl_start(f, s);
}

static struct flight_slot *slot_of(mr_http_flight *f, const mr_http_req *r)
{
    for (size_t i = 0; i < f->count; i++)
        if (f->slots[i].req == r)
            return &f->slots[i];
    return NULL;
}

/* The slot's request is handed out, or dropped. libcurl's handle leaves the multi (its
 * connection stays cached) and is kept for the thread's next request; an own socket still open
 * (a request dropped while it ran) is closed, since an answer may yet come on it. */
static void slot_end(mr_http_flight *f, struct flight_slot *s)
{
    if (s->own) {
        if (s->fd >= 0)
            close(s->fd);
        s->fd = -1;
        free(s->head);
        s->head = NULL;
    } else {
        curl_multi_remove_handle(f->multi, s->easy);
        if (f->t->idle_count < IDLE_HANDLES)
            f->t->idle[f->t->idle_count++] = s->easy;
        else
            curl_easy_cleanup(s->easy);
        curl_slist_free_all(s->headers);
        s->easy = NULL;
        s->headers = NULL;
        f->curl_running--;
    }
    s->done = 1;
    f->running--;
}

static mr_http_req *curl_collect(mr_http_flight *f)
{
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
    return NULL;
}

/* Waits at most wait_ms for the flight's sockets, its own and libcurl's, and moves its own
 * requests on by what they say. */
static void flight_wait(mr_http_flight *f, int wait_ms)
{
    if (f->pfd_cap < f->count) {
        free(f->pfds);
        free(f->pfd_slot);
        f->pfd_cap = f->cap;
        f->pfds = mr_calloc(f->pfd_cap, sizeof *f->pfds);
        f->pfd_slot = mr_calloc(f->pfd_cap, sizeof *f->pfd_slot);
    }
    size_t n = 0;
    for (size_t i = 0; i < f->count; i++) {
        struct flight_slot *s = &f->slots[i];
        if (!s->own || s->done || s->finished)
            continue;
        f->pfds[n] = (struct pollfd){.fd = s->fd, .events = s->phase == OWN_RECEIVING ? POLLIN : POLLOUT};
        f->pfd_slot[n++] = i;
    }
    if (f->curl_running) {
        struct curl_waitfd *extra = n ? mr_calloc(n, sizeof *extra) : NULL;
        for (size_t k = 0; k < n; k++)
            extra[k] = (struct curl_waitfd){.fd = f->pfds[k].fd, .events = f->pfds[k].events};
        curl_multi_poll(f->multi, extra, (unsigned)n, wait_ms, NULL);
        for (size_t k = 0; k < n; k++)
            f->pfds[k].revents = extra[k].revents;
        free(extra);
    } else if (poll(f->pfds, n, wait_ms) <= 0) {
        return;
    }
    for (size_t k = 0; k < n; k++)
        if (f->pfds[k].revents)
            own_step(f, &f->slots[f->pfd_slot[k]], f->pfds[k].revents);
}

mr_http_req *mr_http_flight_next(mr_http_flight *f, int timeout_ms)
{
    int64_t until = mr_now_ms() + (timeout_ms > 0 ? timeout_ms : 0);
    int looked = 0;
    while (f->running) {
        int64_t now = mr_now_ms(), wake = timeout_ms < 0 ? now + 100 : (until < now + 100 ? until : now + 100);
        for (size_t i = 0; i < f->count; i++) {
            struct flight_slot *s = &f->slots[i];
            if (!s->own || s->done)
                continue;
            if (!s->finished) {
                int64_t deadline = s->phase == OWN_CONNECTING && s->connect_deadline_ms < s->deadline_ms
                                       ? s->connect_deadline_ms : s->deadline_ms;
                if (now >= deadline)
                    own_fail(f, s, s->phase == OWN_CONNECTING, "%s port %d: %s",
                             s->phase == OWN_CONNECTING ? "connection timed out" : "operation timed out");
                else if (deadline < wake)
                    wake = deadline;
            }
            if (s->finished) {
                slot_end(f, s);
                return s->req;
            }
        }
        if (f->curl_running) {
            mr_http_req *r = curl_collect(f);
            if (r)
                return r;
        }
        /* even a zero timeout looks at the sockets once: the caller learns what has come */
        if (timeout_ms >= 0 && now >= until && looked)
            return NULL;
        flight_wait(f, wake > now ? (int)(wake - now) : 0);
        looked = 1;
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
    free(f->pfds);
    free(f->pfd_slot);
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
