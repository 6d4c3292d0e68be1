/* gw_scatter.c: fan-out to shards: each call goes to one replica of its shard, chosen by
 * rendezvous on a key, and fails over to the next replica when a node doesn't answer. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gw.h"
#include "util.h"

int gw_scatter(gw *g, gw_shard_call *calls, size_t n, mr_error *err, size_t *failed)
{
    const char *(*order)[MR_MAX_REPLICAS] = calloc(n ? n : 1, sizeof *order);
    size_t *replicas = calloc(n ? n : 1, sizeof *replicas);
    size_t *tried = calloc(n ? n : 1, sizeof *tried);
    mr_http_req *batch = calloc(n ? n : 1, sizeof *batch);
    size_t *owner = calloc(n ? n : 1, sizeof *owner);
    for (size_t i = 0; i < n; i++) {
        calls[i].answer = NULL;
        calls[i].error.status = 0;
        replicas[i] = gw_replica_order(g, calls[i].ix, calls[i].shard, calls[i].key, order[i]);
    }
    int64_t deadline = gw_request_deadline(g);
    int timed_out = 0;
    for (;;) {
        size_t m = 0;
        int64_t left = deadline ? deadline - mr_now_ms() : g->cfg->upstream_timeout_ms;
        if (left <= 0) {
            timed_out = 1;
            break;
        }
        for (size_t i = 0; i < n; i++) {
            gw_shard_call *c = &calls[i];
            if (c->answer || c->error.status || tried[i] == replicas[i])
                continue;
            const char *node = order[i][tried[i]++];
            char base[256];
            if (gw_node_url(g, node, base, sizeof base))
                continue; /* left the cluster since the order was made */
            mr_http_req *r = &batch[m];
            memset(r, 0, sizeof *r);
            r->method = c->method;
            r->request_id = gw_request_id(g);
            r->timeout_ms = left < g->cfg->upstream_timeout_ms ? left : g->cfg->upstream_timeout_ms;
            snprintf(r->url, sizeof r->url, "%s%s", base, c->path);
            r->body = c->body;
            r->body_len = c->body ? strlen(c->body) : 0;
            owner[m++] = i;
        }
        if (m == 0)
            break;
        mr_http_run(g->http, batch, m);
        for (size_t k = 0; k < m; k++) {
            gw_shard_call *c = &calls[owner[k]];
            mr_http_req *r = &batch[k];
            const char *node = order[owner[k]][tried[owner[k]] - 1];
            if (r->status)
                gw_node_observe(g, node, r->elapsed_ms);
            if (c->raw && r->status >= 200 && r->status < 300 && r->resp) {
                c->raw_answer = r->resp; /* taken as is: nothing to merge */
                r->resp = NULL;
                c->answer = json_true();
                gw_node_report(g, node, 1);
                mr_http_req_reset(r);
                continue;
            }
            json_t *body = mr_http_json(r);
            if (r->status >= 200 && r->status < 300 && body) {
                c->answer = body;
                gw_node_report(g, node, 1);
            } else if (r->status >= 400 && r->status < 500 && body &&
                       mr_error_from_json(&c->error, (int)r->status, body) == 0) {
                gw_node_report(g, node, 1); /* the node judged the request: every replica would */
                gw_error_for_client(&c->error, c->ix);
                json_decref(body);
                /* ...unless the node lacks the shard's index: a replica just retired by the
                 * rebalancer, or not rebuilt yet. Another replica may have it. */
                if (strcmp(c->error.code, "index_not_found") == 0 && tried[owner[k]] < replicas[owner[k]])
                    c->error.status = 0;
            } else {
                mr_log_request("warn", "gateway", gw_request_id(g), "%s %s on node %s failed: %ld %s", c->method,
                       c->path, node, r->status, r->status ? "" : r->curl_error);
                gw_node_report(g, node, 0);
                json_decref(body);
            }
            mr_http_req_reset(r);
        }
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
        missing += !calls[i].answer && !calls[i].error.status;
    }
    if (!rc && missing && timed_out) {
        mr_error_set(err, "miroir_request_timeout",
                     "%u shard request(s) were not answered within request_timeout_ms (%ld ms).", missing,
                     g->cfg->request_timeout_ms);
        rc = -1;
    } else if (!rc && missing) {
        /* Documented choice: no partial answers, which would look complete to the client. */
        mr_error_set(err, "miroir_shard_unavailable",
                     "%u shard request(s) found no reachable ready replica; the request was not answered.", missing);
        rc = -1;
    }
    free(order);
    free(replicas);
    free(tried);
    free(batch);
    free(owner);
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
