/* gw_nodes.c: node health (a circuit per node) and the choice of replica for each shard. */
#include <stdio.h>
#include <string.h>

#include "gw.h"
#include "hrw.h"
#include "util.h"

static int node_slot(const gw *g, const char *id)
{
    for (size_t i = 0; i < g->cfg->node_count; i++)
        if (strcmp(g->cfg->nodes[i].id, id) == 0)
            return (int)i;
    return -1;
}

const mr_node *gw_node(const gw *g, const char *id)
{
    return mr_config_node(g->cfg, id);
}

int gw_node_is_up(gw *g, const char *id)
{
    int i = node_slot(g, id);
    return i >= 0 && atomic_load(&g->health[i].down_until_ms) <= mr_now_ms();
}

void gw_node_report(gw *g, const char *id, int ok)
{
    int i = node_slot(g, id);
    if (i < 0)
        return;
    gw_node_health *h = &g->health[i];
    if (ok) {
        atomic_store(&h->consecutive_failures, 0);
        atomic_store(&h->down_until_ms, 0);
        return;
    }
    /* Skip the node for a while, longer after repeated failures (capped), so requests stop
     * paying its timeout; the health checker clears it as soon as it answers again. */
    int fails = atomic_fetch_add(&h->consecutive_failures, 1) + 1;
    long backoff = 500L << (fails < 5 ? fails : 5);
    atomic_store(&h->down_until_ms, mr_now_ms() + backoff);
}

size_t gw_replica_order(gw *g, const mr_index *ix, uint32_t shard, uint64_t key, const char **out)
{
    const char *up[MR_MAX_REPLICAS], *down[MR_MAX_REPLICAS];
    size_t nup = 0, ndown = 0;
    const mr_shard *s = &ix->shards[shard];
    for (size_t r = 0; r < s->count; r++) {
        if (s->replicas[r].state != MR_REPLICA_READY || !gw_node(g, s->replicas[r].node))
            continue;
        if (gw_node_is_up(g, s->replicas[r].node))
            up[nup++] = s->replicas[r].node;
        else
            down[ndown++] = s->replicas[r].node;
    }
    mr_hrw_rank(key, up, nup);
    mr_hrw_rank(key, down, ndown);
    memcpy(out, up, nup * sizeof *out);
    memcpy(out + nup, down, ndown * sizeof *out);
    return nup + ndown;
}

void gw_nodes_check(gw *g)
{
    size_t n = g->cfg->node_count;
    mr_http_req reqs[MR_MAX_NODES];
    memset(reqs, 0, sizeof reqs);
    for (size_t i = 0; i < n; i++) {
        reqs[i].method = "GET";
        snprintf(reqs[i].url, sizeof reqs[i].url, "%s/health", g->cfg->nodes[i].url);
        reqs[i].timeout_ms = 1000;
    }
    mr_http_run(g->http, reqs, n);
    for (size_t i = 0; i < n; i++) {
        int ok = reqs[i].status == 200;
        int was_up = gw_node_is_up(g, g->cfg->nodes[i].id);
        gw_node_report(g, g->cfg->nodes[i].id, ok);
        if (was_up != ok)
            mr_log(ok ? "info" : "warn", "gateway", "node %s is %s", g->cfg->nodes[i].id, ok ? "up" : "down");
        mr_http_req_reset(&reqs[i]);
    }
}
