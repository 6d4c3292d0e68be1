/* gw_nodes.c: node health (a circuit per node) and the choice of replica for each shard. */
#include <stdio.h>
#include <string.h>

#include "gw.h"
#include "hrw.h"
#include "util.h"

static int find_slot(gw *g, const char *id)
{
    int n = atomic_load(&g->health_count);
    for (int i = 0; i < n; i++)
        if (strcmp(g->health[i].id, id) == 0)
            return i;
    return -1;
}

static int node_slot(gw *g, const char *id)
{
    int i = find_slot(g, id);
    if (i >= 0)
        return i;
    pthread_mutex_lock(&g->health_lock);
    i = find_slot(g, id);
    int n = atomic_load(&g->health_count);
    if (i < 0 && n < MR_MAX_NODES) {
        snprintf(g->health[n].id, sizeof g->health[n].id, "%s", id);
        atomic_store(&g->health[n].down_until_ms, 0);
        atomic_store(&g->health[n].consecutive_failures, 0);
        atomic_store(&g->health[n].failed_check, 0);
        atomic_store(&g->health[n].bytes, -1);
        atomic_store(&g->health_count, n + 1);
        i = n;
    }
    pthread_mutex_unlock(&g->health_lock);
    return i;
}

void gw_node_observe(gw *g, const char *id, double ms)
{
    int i = node_slot(g, id);
    if (i < 0)
        return;
    mr_histogram_observe(&g->health[i].upstream, ms);
    mr_latency_observe(&g->health[i].latency, ms);
}

void gw_node_latency(gw *g, const char *id, double *mean_ms, double *high_ms)
{
    int i = find_slot(g, id);
    mr_latency_get(i >= 0 ? &g->health[i].latency : NULL, mean_ms, high_ms);
}

int gw_node_url(gw *g, const char *id, char *url, size_t len)
{
    mr_topology *t = mr_topology_acquire(mr_meta_topology(g->meta));
    const mr_member *m = mr_topology_member(t, id);
    if (m)
        snprintf(url, len, "%s", m->node.url);
    mr_topology_release(mr_meta_topology(g->meta), t);
    return m ? 0 : -1;
}

size_t gw_default_rf(gw *g, long *rf)
{
    mr_topology *t = mr_topology_acquire(mr_meta_topology(g->meta));
    const char *ids[MR_MAX_NODES];
    size_t active = mr_topology_active_ids(t, ids);
    mr_topology_release(mr_meta_topology(g->meta), t);
    if (rf)
        *rf = active >= 2 ? 2 : 1;
    return active;
}

size_t gw_members(gw *g, mr_member *out)
{
    mr_topology *t = mr_topology_acquire(mr_meta_topology(g->meta));
    size_t n = t->member_count;
    memcpy(out, t->members, n * sizeof *out);
    mr_topology_release(mr_meta_topology(g->meta), t);
    return n;
}

int gw_node_is_up(gw *g, const char *id)
{
    int i = node_slot(g, id);
    return i >= 0 && !atomic_load(&g->health[i].failed_check) &&
           atomic_load(&g->health[i].down_until_ms) <= mr_now_ms();
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
        atomic_store(&h->failed_check, 0);
        return;
    }
    /* Skip the node for a while, longer after repeated failures (capped), so requests stop
     * paying its timeout; the health checker clears it as soon as it answers again. */
    int fails = atomic_fetch_add(&h->consecutive_failures, 1) + 1;
    long backoff = 500L << (fails < 5 ? fails : 5);
    atomic_store(&h->down_until_ms, mr_now_ms() + backoff);
}

/* Slow replicas after the others, the rendezvous order kept otherwise: a query's pages keep
 * meeting the same replicas unless one of them becomes slow (latency.h). */
static void prefer_fast(gw *g, const char **nodes, size_t n)
{
    mr_latency *lat[MR_MAX_REPLICAS];
    for (size_t i = 0; i < n; i++) {
        int slot = find_slot(g, nodes[i]);
        lat[i] = slot >= 0 ? &g->health[slot].latency : NULL;
    }
    mr_latency_prefer(lat, nodes, n, mr_now_ms());
}

size_t gw_replica_order(gw *g, const mr_index *ix, uint32_t shard, uint64_t key, const char **out)
{
    /* Only replicas that have applied every task reported succeeded serve reads (mr_meta_readable).
     * Two groups, each ranked by rendezvous on key: up, then down (a fallback, in case the
     * health check is behind). */
    const char *group[2][MR_MAX_REPLICAS];
    size_t count[2] = {0, 0};
    const mr_shard *s = &ix->shards[shard];
    mr_commit commit;
    mr_meta_commit(g->meta, ix->storage, shard, &commit);
    char url[256];
    for (size_t r = 0; r < s->count; r++) {
        const mr_replica *rep = &s->replicas[r];
        if (!mr_meta_readable(g->meta, ix->storage, shard, &commit, rep) || gw_node_url(g, rep->node, url, sizeof url))
            continue;
        int which = gw_node_is_up(g, rep->node) ? 0 : 1;
        group[which][count[which]++] = rep->node;
    }
    size_t n = 0;
    for (int k = 0; k < 2; k++) {
        mr_hrw_rank(key, group[k], count[k]);
        if (k == 0)
            prefer_fast(g, group[k], count[k]);
        memcpy(out + n, group[k], count[k] * sizeof *out);
        n += count[k];
    }
    return n;
}

/* Every node holds this index of its own, never a shard: requests are checked against it. */
#define SCRATCH_INDEX "miroir-settings-check"

int gw_node_check(gw *g, const char *uid, const char *method, const char *path, const char *body, mr_error *err)
{
    mr_member members[MR_MAX_NODES];
    size_t count = gw_members(g, members);
    for (size_t i = 0; i < count; i++) {
        const mr_node *n = &members[i].node;
        if (!gw_node_is_up(g, n->id))
            continue;
        mr_http_req r = {0};
        char url[600];
        snprintf(url, sizeof url, "%s/indexes/%s%s", n->url, SCRATCH_INDEX, path);
        mr_http_one(g->http, &r, method, url, body, body ? strlen(body) : 0);
        json_t *answer = mr_http_json(&r);
        int rc = -1;
        if (r.status >= 200 && r.status < 300)
            rc = 0;
        else if (r.status >= 400 && r.status < 500 && answer && mr_error_from_json(err, (int)r.status, answer) == 0) {
            mr_error_rename(err->message, sizeof err->message, SCRATCH_INDEX, uid);
            rc = 1;
        }
        json_decref(answer);
        mr_http_req_reset(&r);
        if (rc >= 0)
            return rc ? -1 : 0;
        gw_node_report(g, n->id, 0);
    }
    mr_error_set(err, "miroir_shard_unavailable", "No node is reachable to check the request.");
    return -1;
}

long long gw_node_bytes(gw *g, const char *id)
{
    int i = find_slot(g, id);
    return i >= 0 ? atomic_load(&g->health[i].bytes) : -1;
}

/* GET path of every member at once. */
static void ask_members(gw *g, const mr_member *members, size_t n, const char *path, long timeout_ms,
                        mr_http_req *reqs)
{
    memset(reqs, 0, n * sizeof *reqs);
    for (size_t i = 0; i < n; i++) {
        reqs[i].method = "GET";
        snprintf(reqs[i].url, sizeof reqs[i].url, "%s%s", members[i].node.url, path);
        reqs[i].timeout_ms = timeout_ms;
    }
    mr_http_run(g->http, reqs, n);
}

/* Reads databaseSize from every live member's /stats, in parallel. */
static void measure(gw *g, const mr_member *members, size_t n)
{
    mr_http_req reqs[MR_MAX_NODES];
    ask_members(g, members, n, "/stats", 2000, reqs);
    for (size_t i = 0; i < n; i++) {
        json_t *stats = reqs[i].status == 200 ? mr_http_json(&reqs[i]) : NULL;
        json_t *size = json_object_get(stats, "databaseSize");
        int slot = node_slot(g, members[i].node.id);
        if (slot >= 0 && json_is_integer(size))
            atomic_store(&g->health[slot].bytes, (long long)json_integer_value(size));
        json_decref(stats);
        mr_http_req_reset(&reqs[i]);
    }
}

void gw_nodes_check(gw *g, int measure_sizes)
{
    mr_member members[MR_MAX_NODES];
    size_t n = gw_members(g, members);
    mr_http_req reqs[MR_MAX_NODES];
    ask_members(g, members, n, "/health", 1000, reqs);
    for (size_t i = 0; i < n; i++) {
        const char *id = members[i].node.id;
        int ok = reqs[i].status == 200;
        int was_up = gw_node_is_up(g, id);
        gw_node_report(g, id, ok);
        /* A failed request's backoff lets the node be tried again when it ends; a failed check
         * keeps it down until a check passes, or else a hung node (whose check takes the whole
         * timeout) would look up between two checks. */
        int slot = node_slot(g, id);
        if (!ok && slot >= 0)
            atomic_store(&g->health[slot].failed_check, 1);
        if (was_up != ok)
            mr_log(ok ? "info" : "warn", "gateway", "node %s is %s", id, ok ? "up" : "down");
        mr_http_req_reset(&reqs[i]);
    }
    if (measure_sizes) {
        size_t live = 0;
        for (size_t i = 0; i < n; i++)
            if (gw_node_is_up(g, members[i].node.id))
                members[live++] = members[i];
        measure(g, members, live);
    }
}
