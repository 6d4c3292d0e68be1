/* meili.c: parallel HTTP to Meilisearch nodes over a shared connection cache. */
#include "meili.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct mr_http {
    CURLSH *share;
    pthread_mutex_t locks[CURL_LOCK_DATA_LAST];
    char auth[300];
    long timeout_ms;
    long connect_timeout_ms;
};

static void share_lock(CURL *c, curl_lock_data data, curl_lock_access access, void *userp)
{
    (void)c;
    (void)access;
    mr_http *h = userp;
    pthread_mutex_lock(&h->locks[data]);
}

static void share_unlock(CURL *c, curl_lock_data data, void *userp)
{
    (void)c;
    mr_http *h = userp;
    pthread_mutex_unlock(&h->locks[data]);
}

mr_http *mr_http_new(const char *bearer, long timeout_ms, long connect_timeout_ms)
{
    mr_http *h = calloc(1, sizeof *h);
    if (!h)
        return NULL;
    for (int i = 0; i < CURL_LOCK_DATA_LAST; i++)
        pthread_mutex_init(&h->locks[i], NULL);
    h->share = curl_share_init();
    curl_share_setopt(h->share, CURLSHOPT_LOCKFUNC, share_lock);
    curl_share_setopt(h->share, CURLSHOPT_UNLOCKFUNC, share_unlock);
    curl_share_setopt(h->share, CURLSHOPT_USERDATA, h);
    curl_share_setopt(h->share, CURLSHOPT_SHARE, CURL_LOCK_DATA_CONNECT);
    curl_share_setopt(h->share, CURLSHOPT_SHARE, CURL_LOCK_DATA_DNS);
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
    curl_share_cleanup(h->share);
    for (int i = 0; i < CURL_LOCK_DATA_LAST; i++)
        pthread_mutex_destroy(&h->locks[i]);
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
}

int mr_http_run(mr_http *h, mr_http_req *reqs, size_t n)
{
    CURLM *multi = curl_multi_init();
    CURL **easies = calloc(n, sizeof *easies);
    struct curl_slist **lists = calloc(n, sizeof *lists);
    for (size_t i = 0; i < n; i++) {
        mr_http_req *r = &reqs[i];
        mr_http_req_reset(r);
        CURL *e = curl_easy_init();
        easies[i] = e;
        curl_easy_setopt(e, CURLOPT_SHARE, h->share);
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
    curl_multi_cleanup(multi);
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
