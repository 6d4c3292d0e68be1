/* meili.c: parallel HTTP to Meilisearch nodes over kept-alive connections, per thread. */
#include "meili.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct mr_http {
    /* Each thread keeps its own multi handle, and with it its own cache of open connections to
     * the nodes: a gateway thread serves one client connection for its whole life, so its node
     * connections stay warm across that client's requests, with no lock and no new multi (and
     * its wake-up socket pair) per request. Freed when the thread exits. */
    pthread_key_t multi_key;
    char auth[300];
    long timeout_ms;
    long connect_timeout_ms;
};

static void free_multi(void *multi)
{
    curl_multi_cleanup(multi);
}

static CURLM *thread_multi(mr_http *h)
{
    CURLM *m = pthread_getspecific(h->multi_key);
    if (!m) {
        m = curl_multi_init();
        curl_multi_setopt(m, CURLMOPT_MAXCONNECTS, 256L);
        pthread_setspecific(h->multi_key, m);
    }
    return m;
}

mr_http *mr_http_new(const char *bearer, long timeout_ms, long connect_timeout_ms)
{
    mr_http *h = calloc(1, sizeof *h);
    if (!h)
        return NULL;
    if (pthread_key_create(&h->multi_key, free_multi)) {
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
    /* other threads' handles went with them; the caller's own is freed here */
    CURLM *m = pthread_getspecific(h->multi_key);
    if (m) {
        pthread_setspecific(h->multi_key, NULL);
        curl_multi_cleanup(m);
    }
    pthread_key_delete(h->multi_key);
    free(h);
}

static size_t on_body(char *data, size_t size, size_t nmemb, void *userp)
{
    mr_http_req *r = userp;
    size_t n = size * nmemb;
    char *grown = realloc(r->resp, r->resp_len + n + 1);
    if (!grown)
        return 0;
    r->resp = grown;
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
    r->status = 0;
    r->curl_error[0] = '\0';
    r->never_sent = 0;
}

int mr_http_run(mr_http *h, mr_http_req *reqs, size_t n)
{
    CURLM *multi = thread_multi(h);
    CURL **easies = calloc(n, sizeof *easies);
    struct curl_slist **lists = calloc(n, sizeof *lists);
    for (size_t i = 0; i < n; i++) {
        mr_http_req *r = &reqs[i];
        mr_http_req_reset(r);
        CURL *e = curl_easy_init();
        easies[i] = e;
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
        lists[i] = l;
        curl_easy_setopt(e, CURLOPT_HTTPHEADER, l);
        curl_multi_add_handle(multi, e);
    }
    int running = 1;
    while (running) {
        if (curl_multi_perform(multi, &running) != CURLM_OK)
            break;
        if (running)
            curl_multi_poll(multi, NULL, 0, 100, NULL);
    }
    CURLMsg *msg;
    int left;
    while ((msg = curl_multi_info_read(multi, &left))) {
        if (msg->msg != CURLMSG_DONE)
            continue;
        mr_http_req *r;
        curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, (char **)&r);
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
    }
    for (size_t i = 0; i < n; i++) {
        curl_multi_remove_handle(multi, easies[i]);
        curl_easy_cleanup(easies[i]);
        curl_slist_free_all(lists[i]);
    }
    free(easies);
    free(lists);
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
