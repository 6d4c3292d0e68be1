/* gw_scatter.c: fan-out to shards: each call goes to one replica of its shard, chosen by
 * rendezvous on a key (slow replicas last), fails over to the next replica when a node doesn't
 * answer, and is hedged on another replica when its answer is late.
 *
 * Hedging: a call not answered by the time its node usually answers nearly all of its requests
 * (the node's mean plus four mean deviations, hedge_min_ms at least) is sent to the next ready
 * replica too, if the budget allows (hedge_percent of all shard requests); the first answer wins
 * and the other request is dropped. */
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "alloc.h"
#include "gw.h"
#include "util.h"

#define HEDGE_COST_MILLI 1000
#define HEDGE_BURST_MILLI 20000 /* at most 20 hedges in a burst */

struct attempt {
    mr_http_req req;
    size_t call;
    const char *node;
    int hedge;
};

struct call_state {
    const char *order[MR_MAX_REPLICAS];
    size_t replicas, tried, running;
    int64_t hedge_at; /* 0: no hedge (sent, or not worth it) */
    mr_error not_found; /* a replica lacked the shard's index: the answer if none has it */
};

/* Earns each shard request its share of a hedge. */
static void earn(gw *g)
{
    atomic_fetch_add(&g->shard_requests, 1);
    long long milli = atomic_fetch_add(&g->hedge_budget_milli, g->cfg->hedge_percent * 10) + g->cfg->hedge_percent * 10;
    if (milli > HEDGE_BURST_MILLI)
        atomic_store(&g->hedge_budget_milli, HEDGE_BURST_MILLI);
}

static int spend(gw *g)
{
    if (atomic_fetch_sub(&g->hedge_budget_milli, HEDGE_COST_MILLI) >= HEDGE_COST_MILLI)
        return 1;
    atomic_fetch_add(&g->hedge_budget_milli, HEDGE_COST_MILLI);
    return 0;
}

/* Sends call i to its next replica; returns 0, or -1 if it has none left. */
static int start(gw *g, mr_http_flight *f, gw_shard_call *calls, struct call_state *st, struct attempt *attempts,
                 size_t *count, size_t i, int hedge, int64_t left)
{
    while (st[i].tried < st[i].replicas) {
        const char *node = st[i].order[st[i].tried++];
        char base[256];
        if (gw_node_url(g, node, base, sizeof base))
            continue; /* left the cluster since the order was made */
        struct attempt *a = &attempts[(*count)++];
        memset(a, 0, sizeof *a);
        a->call = i;
        a->node = node;
        a->hedge = hedge;
        mr_http_req *r = &a->req;
        r->method = calls[i].method;
        r->request_id = gw_request_id(g);
        r->timeout_ms = left < g->cfg->upstream_timeout_ms ? left : g->cfg->upstream_timeout_ms;
        snprintf(r->url, sizeof r->url, "%s%s", base, calls[i].path);
        r->body = calls[i].body;
        r->body_len = calls[i].body ? strlen(calls[i].body) : 0;
        mr_http_flight_add(f, r);
        st[i].running++;
        earn(g);
        st[i].hedge_at = 0;
        if (!hedge && g->cfg->hedge_percent > 0 && st[i].tried < st[i].replicas) {
            double mean, high;
            gw_node_latency(g, node, &mean, &high);
            int64_t wait = high > (double)g->cfg->hedge_min_ms ? (int64_t)high : g->cfg->hedge_min_ms;
            st[i].hedge_at = mr_now_ms() + wait;
        }
        return 0;
    }
    return -1;
}

/* Takes an attempt's answer into its call. Returns 1 if the call has its answer (or its error),
 * 0 if another replica should be asked. */
static int take(gw *g, gw_shard_call *c, struct attempt *a, mr_error *not_found)
{
    mr_http_req *r = &a->req;
    if (r->status)
        gw_node_observe(g, a->node, r->elapsed_ms);
    if (c->raw && r->status >= 200 && r->status < 300 && r->resp) {
        c->raw_answer = r->resp; /* taken as is: nothing to merge */
        r->resp = NULL;
        c->answer = json_true();
        gw_node_report(g, a->node, 1);
        return 1;
    }
    json_t *body = mr_http_json(r);
    if (r->status >= 200 && r->status < 300 && body) {
        c->answer = body;
        gw_node_report(g, a->node, 1);
        return 1;
    }
    if (r->status >= 400 && r->status < 500 && body && mr_error_from_json(&c->error, (int)r->status, body) == 0) {
        gw_node_report(g, a->node, 1); /* the node judged the request: every replica would */
        gw_error_for_client(&c->error, c->ix);
        json_decref(body);
        /* ...unless the node lacks the shard's index: a replica just retired by the rebalancer,
         * or not rebuilt yet. Another replica may have it. */
        if (strcmp(c->error.code, "index_not_found") == 0) {
            *not_found = c->error;
            c->error.status = 0;
            return 0;
        }
        return 1;
    }
    mr_log_request("warn", "gateway", gw_request_id(g), "%s %s on node %s failed: %ld %s", c->method, c->path, a->node,
                   r->status, r->status ? "" : r->curl_error);
    gw_node_report(g, a->node, 0);
    json_decref(body);
    return 0;
}

int gw_scatter(gw *g, gw_shard_call *calls, size_t n, mr_error *err, size_t *failed)
{
    struct call_state *st = mr_calloc(n + 1, sizeof *st);
    struct attempt *attempts = mr_calloc(n * (MR_MAX_REPLICAS + 1) + 1, sizeof *attempts);
    size_t count = 0, open = n;
    mr_http_flight *f = mr_http_flight_new(g->http);
    int64_t deadline = gw_request_deadline(g), begun = mr_now_ms();
    int64_t left = deadline ? deadline - begun : g->cfg->upstream_timeout_ms;
    int timed_out = left <= 0;
    for (size_t i = 0; i < n; i++) {
        calls[i].answer = NULL;
        calls[i].error.status = 0;
        st[i].replicas = gw_replica_order(g, calls[i].ix, calls[i].shard, calls[i].key, st[i].order);
        if (timed_out || start(g, f, calls, st, attempts, &count, i, 0, left))
            open--;
    }
    while (open && !timed_out) {
        int64_t now = mr_now_ms(), wake = deadline ? deadline : now + g->cfg->upstream_timeout_ms;
        for (size_t i = 0; i < n; i++)
            if (st[i].hedge_at && st[i].hedge_at < wake)
                wake = st[i].hedge_at;
        mr_http_req *done = mr_http_flight_running(f) ? mr_http_flight_next(f, (int)(wake > now ? wake - now : 0)) : NULL;
        now = mr_now_ms();
        if (deadline && now >= deadline && !done) {
            timed_out = 1;
            break;
        }
        if (done) {
            struct attempt *a = (struct attempt *)((char *)done - offsetof(struct attempt, req));
            size_t i = a->call;
            gw_shard_call *c = &calls[i];
            st[i].running--;
            if (c->answer || c->error.status) {
                mr_http_req_reset(done);
                continue; /* the other request of a hedged call, canceled or late */
            }
            if (take(g, c, a, &st[i].not_found)) {
                if (a->hedge && c->answer)
                    atomic_fetch_add(&g->hedges_won, 1);
                for (size_t k = 0; k < count; k++) /* the slower request of a hedged call goes */
                    if (attempts[k].call == i && &attempts[k] != a)
                        mr_http_flight_cancel(f, &attempts[k].req);
                st[i].running = 0;
                st[i].hedge_at = 0;
                open--;
            } else if (!st[i].running) {
                left = deadline ? deadline - now : g->cfg->upstream_timeout_ms;
                if (start(g, f, calls, st, attempts, &count, i, 0, left)) {
                    open--; /* no replica left: if one said it lacks the index, that is the answer */
                    if (st[i].not_found.status)
                        c->error = st[i].not_found;
                }
            }
            mr_http_req_reset(done);
            continue;
        }
        if (!mr_http_flight_running(f))
            break;
        for (size_t i = 0; i < n; i++) {
            if (!st[i].hedge_at || st[i].hedge_at > now)
                continue;
            st[i].hedge_at = 0;
            if (!spend(g))
                continue;
            left = deadline ? deadline - now : g->cfg->upstream_timeout_ms;
            if (start(g, f, calls, st, attempts, &count, i, 1, left) == 0)
                atomic_fetch_add(&g->hedges, 1);
        }
    }
    mr_http_flight_free(f);
    for (size_t k = 0; k < count; k++)
        mr_http_req_reset(&attempts[k].req);
    int rc = 0;
    uint32_t missing = 0;
    for (size_t i = 0; i < n; i++) {
        if (calls[i].error.status && !rc) {
            *err = calls[i].error;
            if (failed)
                *failed = i;
            rc = -1;
        }
        missing += !calls[i].answer && !calls[i].error.status && !calls[i].allow_missing;
    }
    if (!rc && missing && timed_out) {
        mr_error_set(err, "miroir_request_timeout",
                     "%u shard request(s) were not answered within request_timeout_ms (%ld ms).", missing,
                     g->cfg->request_timeout_ms);
        rc = -1;
    } else if (!rc && missing) {
        /* No partial answer that would look complete to the client, unless it asked for one
         * (allowPartialResults: then the answer names the shards it lacks). */
        mr_error_set(err, "miroir_shard_unavailable",
                     "%u shard request(s) found no reachable ready replica; the request was not answered.", missing);
        rc = -1;
    }
    free(st);
    free(attempts);
    return rc;
}

void gw_scatter_clear(gw_shard_call *calls, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        json_decref(calls[i].answer);
        calls[i].answer = NULL;
        free(calls[i].raw_answer);
        calls[i].raw_answer = NULL;
    }
}

void gw_shard_path(char *out, size_t outlen, const mr_index *ix, uint32_t shard, const char *suffix)
{
    char name[300];
    mr_shard_index_name(name, sizeof name, ix->storage, shard);
    snprintf(out, outlen, "/indexes/%s%s", name, suffix);
}

void gw_error_for_client(mr_error *err, const mr_index *ix)
{
    mr_error_rename_index(err->message, sizeof err->message, ix->storage, ix->uid);
}
