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

int gw_node_live(void *g, const char *id)
{
    return gw_node_is_up(g, id);
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
    /* Three groups, each ranked by rendezvous on key: in sync and up; up but lagging (a node
     * back from an outage, still catching up); down. Later groups are only fallbacks. */
    const char *group[3][MR_MAX_REPLICAS];
    size_t count[3] = {0, 0, 0};
    int64_t applied[MR_MAX_REPLICAS], best = 0;
    const mr_shard *s = &ix->shards[shard];
    for (size_t r = 0; r < s->count; r++) {
        applied[r] = mr_meta_applied(g->meta, ix->storage, shard, s->replicas[r].node, NULL, 0);
        if (s->replicas[r].state == MR_REPLICA_READY && applied[r] > best)
            best = applied[r];
    }
    for (size_t r = 0; r < s->count; r++) {
        const char *node = s->replicas[r].node;
        if (s->replicas[r].state != MR_REPLICA_READY || !gw_node(g, node))
            continue;
        int which = !gw_node_is_up(g, node) ? 2 : best - applied[r] > g->cfg->read_lag_tolerance ? 1 : 0;
        group[which][count[which]++] = node;
    }
    size_t n = 0;
    for (int k = 0; k < 3; k++) {
        mr_hrw_rank(key, group[k], count[k]);
        memcpy(out + n, group[k], count[k] * sizeof *out);
        n += count[k];
    }
    return n;
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
