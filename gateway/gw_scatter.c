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
#include "answer.h"
#include "gw.h"
#include "seq.h"
#include "util.h"

#define HEDGE_COST_MILLI 1000
#define HEDGE_BURST_MILLI 20000 /* at most 20 hedges in a burst */
#define BATCH ((size_t)-1)

/* One request to a node: a single call's, or a /multi-search carrying several calls' searches. */
struct attempt {
    mr_http_req req;
    size_t call;   /* BATCH for a batch */
    const char *node;
    int hedge;
    size_t *batch; /* a batch's calls (owned), batch_count of them */
    size_t batch_count;
    mr_text body;  /* a batch's /multi-search body */
    int64_t sent_ms;
};

struct call_state {
    const char *order[MR_MAX_REPLICAS];
    size_t replicas, tried, running;
    int64_t hedge_at; /* 0: no hedge (sent, or not worth it) */
    mr_error not_found; /* a replica lacked the shard's index: the answer if none has it */
};

struct scatter {
    gw *g;
    gw_shard_call *calls;
    struct call_state *st;
    struct attempt **attempts; /* each made when sent: most calls need one */
    size_t count;
    mr_http_flight *f;
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

/* The next replica of call i that is still a member (its URL in base); NULL if none is left. */
static const char *next_replica(struct scatter *sc, size_t i, char *base, size_t cap)
{
    struct call_state *st = &sc->st[i];
    while (st->tried < st->replicas) {
        const char *node = st->order[st->tried++];
        if (gw_node_url(sc->g, node, base, cap) == 0)
            return node;
    }
    return NULL;
}

static struct attempt *new_attempt(struct scatter *sc, size_t call, const char *node, int hedge, int64_t left)
{
    struct attempt *a = sc->attempts[sc->count++] = mr_calloc(1, sizeof *a);
    a->call = call;
    a->node = node;
    a->hedge = hedge;
    a->req.method = "POST";
    a->req.request_id = gw_request_id(sc->g);
    a->req.timeout_ms = left < sc->g->cfg->upstream_timeout_ms ? left : sc->g->cfg->upstream_timeout_ms;
    a->sent_ms = mr_now_ms();
    return a;
}

/* Call i now runs on node too, in a request carrying `carried` calls: when it is late by the
 * node's usual time for that many searches, it may be hedged. */
static void running_on(struct scatter *sc, size_t i, const char *node, int hedge, size_t carried)
{
    struct call_state *st = &sc->st[i];
    st->running++;
    earn(sc->g);
    st->hedge_at = 0;
    if (!hedge && sc->g->cfg->hedge_percent > 0 && st->tried < st->replicas) {
        double mean, high;
        gw_node_latency(sc->g, node, &mean, &high);
        high *= (double)carried;
        int64_t wait = high > (double)sc->g->cfg->hedge_min_ms ? (int64_t)high : sc->g->cfg->hedge_min_ms;
        st->hedge_at = mr_now_ms() + wait;
    }
}

static void send_one(struct scatter *sc, size_t i, const char *node, const char *base, int hedge, int64_t left)
{
    gw_shard_call *c = &sc->calls[i];
    struct attempt *a = new_attempt(sc, i, node, hedge, left);
    a->req.method = c->method;
    snprintf(a->req.url, sizeof a->req.url, "%s%s", base, c->path);
    a->req.body = c->body;
    a->req.body_len = c->body ? strlen(c->body) : 0;
    mr_http_flight_add(sc->f, &a->req);
    running_on(sc, i, node, hedge, 1);
}

/* Sends call i to its next replica; returns 0, or -1 if it has none left. */
static int start(struct scatter *sc, size_t i, int hedge, int64_t left)
{
    char base[256];
    const char *node = next_replica(sc, i, base, sizeof base);
    if (!node)
        return -1;
    send_one(sc, i, node, base, hedge, left);
    return 0;
}

/* The shard index a search call names: its path is /indexes/<name>/search. */
static int search_index(const gw_shard_call *c, const char **name, int *len)
{
    static const char head[] = "/indexes/", tail[] = "/search";
    size_t n = strlen(c->path);
    /* a body naming what only a /multi-search query may hold must meet the node's refusal of it */
    if (!c->search || !c->body || c->body[0] != '{' || strstr(c->body, "\"indexUid\"") ||
        strstr(c->body, "\"federationOptions\"") || n <= sizeof head + sizeof tail - 2 ||
        strncmp(c->path, head, sizeof head - 1) || strcmp(c->path + n - (sizeof tail - 1), tail))
        return -1;
    *name = c->path + sizeof head - 1;
    *len = (int)(n - (sizeof head - 1) - (sizeof tail - 1));
    return 0;
}

/* The searches of calls[members] go to node in one /multi-search: one request and one answer
 * to parse instead of one per shard, which is most of what a search over many shards costs
 * the gateway. Each query is the call's own body with its index named. */
static void send_batch(struct scatter *sc, const size_t *members, size_t k, const char *node, const char *base,
                       int64_t left)
{
    struct attempt *a = new_attempt(sc, BATCH, node, 0, left);
    a->batch = mr_malloc(k * sizeof *a->batch);
    memcpy(a->batch, members, k * sizeof *a->batch);
    a->batch_count = k;
    mr_text_printf(&a->body, "{\"queries\":[");
    for (size_t j = 0; j < k; j++) {
        const gw_shard_call *c = &sc->calls[members[j]];
        const char *name;
        int len;
        search_index(c, &name, &len);
        const char *rest = c->body + 1 + strspn(c->body + 1, " \t\r\n");
        mr_text_printf(&a->body, "%s{\"indexUid\":\"%.*s\"%s%s", j ? "," : "", len, name, *rest == '}' ? "" : ",",
                       rest);
    }
    mr_text_printf(&a->body, "]}");
    snprintf(a->req.url, sizeof a->req.url, "%s/multi-search", base);
    a->req.body = a->body.data;
    a->req.body_len = a->body.len;
    mr_http_flight_add(sc->f, &a->req);
    atomic_fetch_add(&sc->g->search_batches, 1);
    for (size_t j = 0; j < k; j++)
        running_on(sc, members[j], node, 0, k);
}

/* Sends every call to its first replica; the searches bound for the same node go together. */
static size_t start_all(struct scatter *sc, size_t n, int64_t left)
{
    size_t open = n;
    const char **node_of = mr_calloc(n, sizeof *node_of);
    char (*base_of)[256] = mr_malloc(n * sizeof *base_of);
    const char *name;
    int len;
    for (size_t i = 0; i < n; i++) {
        node_of[i] = next_replica(sc, i, base_of[i], sizeof base_of[i]);
        if (!node_of[i])
            open--;
        else if (!sc->g->cfg->batch_shard_searches || search_index(&sc->calls[i], &name, &len))
            send_one(sc, i, node_of[i], base_of[i], 0, left);
        else
            continue;
        node_of[i] = NULL;
    }
    size_t *members = mr_malloc(n * sizeof *members);
    for (size_t i = 0; i < n; i++) {
        if (!node_of[i])
            continue;
        size_t k = 0;
        for (size_t j = i; j < n; j++)
            if (node_of[j] && strcmp(node_of[j], node_of[i]) == 0)
                members[k++] = j;
        if (k == 1)
            send_one(sc, i, node_of[i], base_of[i], 0, left);
        else
            send_batch(sc, members, k, node_of[i], base_of[i], left);
        for (size_t j = 0; j < k; j++)
            if (members[j] != i)
                node_of[members[j]] = NULL;
        node_of[i] = NULL;
    }
    free(members);
    free(base_of);
    free(node_of);
    return open;
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
        r->resp_cap = 0;
        c->answer = json_true();
        gw_node_report(g, a->node, 1);
        return 1;
    }
    int ok = r->status >= 200 && r->status < 300;
    json_t *body = NULL;
    if (ok && c->search)
        body = mr_answer_load(r->resp, r->resp_len);
    if (!body)
        body = mr_http_json(r);
    if (ok && body) {
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

/* A node runs a batch's k queries one after another: what one of them alone would have taken is
 * the batch's time less the others' at the node's usual pace, so a stall counts whole, as it
 * does for a single request, and a batch of ordinary queries counts as one ordinary query. */
static double single_equivalent_ms(gw *g, const char *node, double elapsed_ms, size_t k)
{
    double mean, high;
    gw_node_latency(g, node, &mean, &high);
    double rest = elapsed_ms - (double)(k - 1) * mean, even = elapsed_ms / (double)k;
    return mean > 0 && rest > even ? rest : even;
}

/* Drops a request still running. One dropped after longer than its node usually takes says the
 * node is at least that slow, and counts so: otherwise a slow replica, asked only in hedges,
 * would be seen only when it won one, and look fast again. */
static void drop(struct scatter *sc, struct attempt *a, int64_t now)
{
    if (!mr_http_flight_cancel(sc->f, &a->req))
        return;
    double mean, high, waited = (double)(now - a->sent_ms);
    gw_node_latency(sc->g, a->node, &mean, &high);
    if (a->call == BATCH)
        waited = single_equivalent_ms(sc->g, a->node, waited, a->batch_count);
    if (waited > mean)
        gw_node_observe(sc->g, a->node, waited);
}

/* Call i has its answer or its error: a hedge still running for it goes. */
static void settle(struct scatter *sc, size_t i, const struct attempt *winner)
{
    int64_t now = mr_now_ms();
    for (size_t k = 0; k < sc->count; k++)
        if (sc->attempts[k]->call == i && sc->attempts[k] != winner)
            drop(sc, sc->attempts[k], now);
    sc->st[i].running = 0;
    sc->st[i].hedge_at = 0;
}

/* A call whose request failed: its next replica, if it has no other request running. Returns 1
 * if it is over (no replica left). */
static int fail_over(struct scatter *sc, size_t i, int64_t left)
{
    if (sc->st[i].running)
        return 0;
    if (start(sc, i, 0, left) == 0)
        return 0;
    if (sc->st[i].not_found.status) /* if one replica said it lacks the index, that is the answer */
        sc->calls[i].error = sc->st[i].not_found;
    return 1;
}

/* A batch's answer: each of its calls takes its result. If the node refused the batch (a 4xx:
 * one query's error), each call is sent alone to the same node, so that every call gets the
 * node's own words for itself; if the node failed, each call goes to its next replica. Returns
 * how many calls are over. */
static size_t take_batch(struct scatter *sc, struct attempt *a, int64_t left)
{
    gw *g = sc->g;
    mr_http_req *r = &a->req;
    size_t over = 0;
    json_t *body = NULL;
    if (r->status >= 200 && r->status < 300)
        body = mr_answers_load(r->resp, r->resp_len);
    if (!body)
        body = mr_http_json(r);
    json_t *results = json_object_get(body, "results");
    int ok = r->status >= 200 && r->status < 300 && json_array_size(results) == a->batch_count;
    int judged = !ok && r->status >= 400 && r->status < 500 && json_is_object(body);
    if (r->status)
        gw_node_observe(g, a->node, single_equivalent_ms(g, a->node, r->elapsed_ms, a->batch_count));
    gw_node_report(g, a->node, ok || judged);
    if (!ok && !judged)
        mr_log_request("warn", "gateway", gw_request_id(g), "POST /multi-search (%zu shards) on node %s failed: %ld %s",
                       a->batch_count, a->node, r->status, r->status ? "" : r->curl_error);
    char base[256];
    if (judged && gw_node_url(g, a->node, base, sizeof base))
        judged = 0;
    for (size_t j = 0; j < a->batch_count; j++) {
        size_t i = a->batch[j];
        gw_shard_call *c = &sc->calls[i];
        if (sc->st[i].running)
            sc->st[i].running--;
        if (c->answer || c->error.status)
            continue; /* a hedge answered it first */
        if (ok) {
            c->answer = json_incref(json_array_get(results, j));
            json_object_del(c->answer, "indexUid");
            settle(sc, i, a);
            over++;
        } else if (judged) {
            send_one(sc, i, a->node, base, 0, left);
        } else {
            over += (size_t)fail_over(sc, i, left);
        }
    }
    json_decref(body);
    return over;
}

int gw_scatter(gw *g, gw_shard_call *calls, size_t n, mr_error *err, size_t *failed)
{
    /* per call: a batch, the batch's calls alone, every replica, a hedge */
    struct scatter sc = {.g = g, .calls = calls, .st = mr_calloc(n + 1, sizeof *sc.st),
                         .attempts = mr_calloc(n * (MR_MAX_REPLICAS + 3) + 1, sizeof *sc.attempts),
                         .f = mr_http_flight_new(g->http)};
    struct call_state *st = sc.st;
    int64_t deadline = gw_request_deadline(g), begun = mr_now_ms();
    int64_t left = deadline ? deadline - begun : g->cfg->upstream_timeout_ms;
    int timed_out = left <= 0;
    for (size_t i = 0; i < n; i++) {
        calls[i].answer = NULL;
        calls[i].error.status = 0;
        st[i].replicas = timed_out ? 0 : gw_replica_order(g, calls[i].ix, calls[i].shard, calls[i].key, st[i].order);
    }
    size_t open = start_all(&sc, n, left);
    while (open && !timed_out) {
        int64_t now = mr_now_ms(), wake = deadline ? deadline : now + g->cfg->upstream_timeout_ms;
        for (size_t i = 0; i < n; i++)
            if (st[i].hedge_at && st[i].hedge_at < wake)
                wake = st[i].hedge_at;
        mr_http_req *done =
            mr_http_flight_running(sc.f) ? mr_http_flight_next(sc.f, (int)(wake > now ? wake - now : 0)) : NULL;
        now = mr_now_ms();
        if (deadline && now >= deadline && !done) {
            timed_out = 1;
            break;
        }
        left = deadline ? deadline - now : g->cfg->upstream_timeout_ms;
        if (done) {
            struct attempt *a = (struct attempt *)((char *)done - offsetof(struct attempt, req));
            if (a->call == BATCH) {
                open -= take_batch(&sc, a, left);
                mr_http_req_reset(done);
                continue;
            }
            size_t i = a->call;
            gw_shard_call *c = &calls[i];
            if (st[i].running)
                st[i].running--;
            if (c->answer || c->error.status) {
                mr_http_req_reset(done);
                continue; /* the other request of a hedged call, canceled or late */
            }
            if (take(g, c, a, &st[i].not_found)) {
                if (a->hedge && c->answer)
                    atomic_fetch_add(&g->hedges_won, 1);
                settle(&sc, i, a);
                open--;
            } else {
                open -= (size_t)fail_over(&sc, i, left);
            }
            mr_http_req_reset(done);
            continue;
        }
        if (!mr_http_flight_running(sc.f))
            break;
        for (size_t i = 0; i < n; i++) {
            if (!st[i].hedge_at || st[i].hedge_at > now)
                continue;
            st[i].hedge_at = 0;
            if (spend(g) && start(&sc, i, 1, left) == 0)
                atomic_fetch_add(&g->hedges, 1);
        }
    }
    int64_t end = mr_now_ms();
    for (size_t k = 0; k < sc.count; k++)
        drop(&sc, sc.attempts[k], end); /* a batch its calls' hedges answered, a timed-out call */
    mr_http_flight_free(sc.f);
    for (size_t k = 0; k < sc.count; k++) {
        mr_http_req_reset(&sc.attempts[k]->req);
        free(sc.attempts[k]->batch);
        free(sc.attempts[k]->body.data);
        free(sc.attempts[k]);
    }
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
    free(sc.st);
    free(sc.attempts);
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

int gw_pass_through(gw *g, const mr_index *ix, uint32_t shard, uint64_t key, const char *suffix, const json_t *body,
                    gw_response *res, mr_error *err)
{
    char *text = json_dumps(body, JSON_COMPACT);
    gw_shard_call call = {.ix = ix, .shard = shard, .key = key, .method = "POST", .body = text, .raw = 1};
    gw_shard_path(call.path, sizeof call.path, ix, shard, suffix);
    int rc = gw_scatter(g, &call, 1, err, NULL);
    if (rc == 0) {
        res->status = 200;
        res->text = call.raw_answer;
        res->text_type = "application/json";
        call.raw_answer = NULL;
    }
    gw_scatter_clear(&call, 1);
    free(text);
    return rc;
}

void gw_search_call(gw_shard_call *call, const mr_index *ix, uint32_t shard, uint64_t key, const char *body,
                    const char *distinct)
{
    *call = (gw_shard_call){
        .ix = ix, .shard = shard, .key = key, .method = "POST", .body = body, .search = 1, .distinct = distinct};
    gw_shard_path(call->path, sizeof call->path, ix, shard, "/search");
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
