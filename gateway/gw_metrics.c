/* gw_metrics.c: GET /metrics, in Prometheus' text format: the gateway's own requests and
 * upstream latencies, and the cluster's replication state as the metadata shows it (lag and
 * rebuild progress per replica, dead-lettered records). Any gateway can be scraped: the cluster
 * series are the same on all of them. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gw.h"
#include "kafka.h"

/* One gauge's help, type and rows (which it frees). */
static void gauge(mr_text *t, const char *name, const char *help, mr_text *rows)
{
    mr_text_printf(t, "# HELP %s %s\n# TYPE %s gauge\n%s", name, help, name, rows->data ? rows->data : "");
    free(rows->data);
    rows->data = NULL;
}

static void requests(gw *g, mr_text *t)
{
    mr_text_printf(t, "# HELP miroir_http_requests_total Requests answered, by route and status class.\n"
                      "# TYPE miroir_http_requests_total counter\n");
    const char *method, *pattern;
    for (size_t i = 0; i < GW_ROUTE_SLOTS; i++) {
        if (!gw_route_at(i, &method, &pattern)) {
            if (i != GW_ROUTE_SLOTS - 1)
                continue;
            method = "any";
            pattern = "unmatched";
        }
        for (int c = 1; c < 6; c++) {
            unsigned long long n = atomic_load(&g->routes[i].by_class[c]);
            if (n)
                mr_text_printf(t, "miroir_http_requests_total{method=\"%s\",route=\"/%s\",code=\"%dxx\"} %llu\n",
                               method, pattern, c, n);
        }
    }
    mr_text_printf(t, "# HELP miroir_http_request_duration_seconds Time from a request's arrival to its answer.\n"
                      "# TYPE miroir_http_request_duration_seconds histogram\n");
    for (size_t i = 0; i < GW_ROUTE_SLOTS; i++) {
        if (!atomic_load(&g->routes[i].latency.count))
            continue;
        if (!gw_route_at(i, &method, &pattern)) {
            method = "any";
            pattern = "unmatched";
        }
        char labels[256];
        snprintf(labels, sizeof labels, "method=\"%s\",route=\"/%s\"", method, pattern);
        mr_histogram_write(t, "miroir_http_request_duration_seconds", labels, &g->routes[i].latency);
    }
}

static void nodes(gw *g, mr_text *t)
{
    mr_member members[MR_MAX_NODES];
    size_t n = gw_members(g, members);
    mr_text_printf(t, "# HELP miroir_node_up 1 if the node answers its health check.\n# TYPE miroir_node_up gauge\n");
    for (size_t i = 0; i < n; i++)
        mr_text_printf(t, "miroir_node_up{node=\"%s\",state=\"%s\"} %d\n", members[i].node.id,
                       mr_member_state_name(members[i].state), gw_node_is_up(g, members[i].node.id));
    mr_text_printf(t, "# HELP miroir_node_latency_seconds A node's recent latency as the gateway estimates it "
                      "(mean: smoothed; high: mean plus four mean deviations, when a late request is hedged).\n"
                      "# TYPE miroir_node_latency_seconds gauge\n");
    for (size_t i = 0; i < n; i++) {
        double mean, high;
        gw_node_latency(g, members[i].node.id, &mean, &high);
        if (mean > 0)
            mr_text_printf(t, "miroir_node_latency_seconds{node=\"%s\",stat=\"mean\"} %.6f\n"
                              "miroir_node_latency_seconds{node=\"%s\",stat=\"high\"} %.6f\n",
                           members[i].node.id, mean / 1000.0, members[i].node.id, high / 1000.0);
    }
    mr_text_printf(t, "# HELP miroir_shard_requests_total Requests the gateway sent to shards, hedges included.\n"
                      "# TYPE miroir_shard_requests_total counter\nmiroir_shard_requests_total %llu\n"
                      "# HELP miroir_hedged_requests_total Shard requests sent again to another replica because "
                      "the first was late.\n# TYPE miroir_hedged_requests_total counter\n"
                      "miroir_hedged_requests_total %llu\n"
                      "# HELP miroir_hedges_won_total Hedged requests answered before the request they hedged.\n"
                      "# TYPE miroir_hedges_won_total counter\nmiroir_hedges_won_total %llu\n"
                      "# HELP miroir_search_batches_total Requests that carried several shard searches to one node "
                      "(a /multi-search).\n# TYPE miroir_search_batches_total counter\nmiroir_search_batches_total %llu\n"
                      "# HELP miroir_search_window_retries_total Shards asked again for a search's whole window, "
                      "their narrowed answer having ended inside the page.\n"
                      "# TYPE miroir_search_window_retries_total counter\nmiroir_search_window_retries_total %llu\n",
                   (unsigned long long)atomic_load(&g->shard_requests), (unsigned long long)atomic_load(&g->hedges),
                   (unsigned long long)atomic_load(&g->hedges_won), (unsigned long long)atomic_load(&g->search_batches),
                   (unsigned long long)atomic_load(&g->window_retries));
    mr_text_printf(t, "# HELP miroir_upstream_duration_seconds Latency of node answers to the gateway.\n"
                      "# TYPE miroir_upstream_duration_seconds histogram\n");
    int slots = atomic_load(&g->health_count);
    for (int i = 0; i < slots; i++) {
        if (!atomic_load(&g->health[i].upstream.count))
            continue;
        char labels[64];
        snprintf(labels, sizeof labels, "node=\"%s\"", g->health[i].id);
        mr_histogram_write(t, "miroir_upstream_duration_seconds", labels, &g->health[i].upstream);
    }
}

static void replication(gw *g, mr_text *t)
{
    mr_topology *topo = mr_topology_acquire(mr_meta_topology(g->meta));
    mr_text *lag = &(mr_text){0}, *applied = &(mr_text){0}, *end = &(mr_text){0}, *dlq = &(mr_text){0};
    size_t by_state[4] = {0, 0, 0, 0};
    for (size_t i = 0; i < topo->count; i++) {
        const mr_index *ix = &topo->indexes[i];
        if (ix->deleted)
            continue;
        char uid[2 * MR_INDEX_UID_MAX + 1];
        mr_label_escape(uid, sizeof uid, ix->uid);
        mr_text_printf(dlq, "miroir_dlq_records{index=\"%s\"} %zu\n", uid, mr_meta_dlq_count(g->meta, ix->storage));
        int64_t *ends = calloc(ix->shard_count, sizeof *ends);
        mr_kafka_index_ends(g->producer, ix->storage, ix->shard_count, ends, 1000);
        for (uint32_t s = 0; s < ix->shard_count; s++) {
            int64_t hi = ends[s];
            if (hi >= 0)
                mr_text_printf(end, "miroir_shard_end_offset{index=\"%s\",shard=\"%u\"} %lld\n", uid, s, (long long)hi);
            for (size_t r = 0; r < ix->shards[s].count; r++) {
                const mr_replica *rep = &ix->shards[s].replicas[r];
                int64_t off = mr_meta_applied(g->meta, ix->storage, s, rep, NULL, 0);
                const char *st = mr_replica_state_name(rep->state);
                by_state[rep->state]++;
                mr_text_printf(applied, "miroir_replica_applied_offset{index=\"%s\",shard=\"%u\",node=\"%s\",state=\"%s\"} %lld\n",
                               uid, s, rep->node, st, (long long)off);
                if (hi >= 0)
                    mr_text_printf(lag, "miroir_replica_lag_records{index=\"%s\",shard=\"%u\",node=\"%s\",state=\"%s\"} %lld\n",
                                   uid, s, rep->node, st, (long long)(hi > off ? hi - off : 0));
            }
        }
        free(ends);
    }
    mr_topology_release(mr_meta_topology(g->meta), topo);
    gauge(t, "miroir_replica_lag_records",
          "Records of its partition a replica has yet to apply (for a building replica: what its rebuild has left).",
          lag);
    gauge(t, "miroir_replica_applied_offset",
          "Records a replica has applied (rebuild progress: this over the shard's end offset).", applied);
    gauge(t, "miroir_shard_end_offset", "Records in the shard's partition.", end);
    gauge(t, "miroir_dlq_records", "Records sent to the dead-letter topic.", dlq);
    mr_text_printf(t, "# HELP miroir_replicas Shard replicas by state.\n# TYPE miroir_replicas gauge\n");
    for (int st = 0; st < 4; st++)
        mr_text_printf(t, "miroir_replicas{state=\"%s\"} %zu\n", mr_replica_state_name((enum mr_replica_state)st),
                       by_state[st]);
}

/* Fills and checkpoints (ingest/history.c), as the progress topic records them. */
static void history(gw *g, mr_text *t)
{
    json_t *h = mr_meta_history(g->meta);
    mr_topology *topo = mr_topology_acquire(mr_meta_topology(g->meta));
    mr_text *pause = &(mr_text){0}, *copied = &(mr_text){0}, *ck = &(mr_text){0}, *kept = &(mr_text){0},
            *ck_pause = &(mr_text){0};
    for (size_t i = 0; i < topo->count; i++) {
        const mr_index *ix = &topo->indexes[i];
        if (ix->deleted)
            continue;
        char uid[2 * MR_INDEX_UID_MAX + 1], key[MR_STORAGE_MAX + 64];
        mr_label_escape(uid, sizeof uid, ix->uid);
        for (uint32_t s = 0; s < ix->shard_count; s++) {
            snprintf(key, sizeof key, "%s/%u", ix->storage, s);
            json_t *c = json_object_get(json_object_get(h, "checkpoints"), key);
            if (c) {
                mr_text_printf(ck, "miroir_checkpoint_documents{index=\"%s\",shard=\"%u\"} %lld\n", uid, s,
                               json_integer_value(json_object_get(c, "documents")));
                mr_text_printf(kept, "miroir_shard_history_kept_from{index=\"%s\",shard=\"%u\"} %lld\n", uid, s,
                               json_integer_value(json_object_get(c, "keptFrom")));
                mr_text_printf(ck_pause, "miroir_checkpoint_pause_seconds{index=\"%s\",shard=\"%u\"} %.3f\n", uid, s,
                               json_integer_value(json_object_get(c, "pauseMs")) / 1000.0);
            }
            for (size_t r = 0; r < ix->shards[s].count; r++) {
                snprintf(key, sizeof key, "%s/%u/%s", ix->storage, s, ix->shards[s].replicas[r].node);
                json_t *c2 = json_object_get(json_object_get(h, "copies"), key);
                if (!c2)
                    continue;
                const char *node = ix->shards[s].replicas[r].node;
                mr_text_printf(pause, "miroir_peer_copy_pause_seconds{index=\"%s\",shard=\"%u\",node=\"%s\"} %.3f\n",
                               uid, s, node, json_integer_value(json_object_get(c2, "pauseMs")) / 1000.0);
                mr_text_printf(copied, "miroir_peer_copy_documents{index=\"%s\",shard=\"%u\",node=\"%s\"} %lld\n", uid,
                               s, node, json_integer_value(json_object_get(c2, "documents")));
            }
        }
    }
    mr_topology_release(mr_meta_topology(g->meta), topo);
    json_decref(h);
    gauge(t, "miroir_peer_copy_pause_seconds",
          "How long the peer's writes waited while the replica was last filled by a copy of it.", pause);
    gauge(t, "miroir_peer_copy_documents", "Documents the replica's last copy from a peer held.", copied);
    gauge(t, "miroir_checkpoint_documents", "Documents in the shard's newest checkpoint.", ck);
    gauge(t, "miroir_checkpoint_pause_seconds", "How long the replica read for the newest checkpoint took no writes.",
          ck_pause);
    gauge(t, "miroir_shard_history_kept_from",
          "The first offset of the shard's partition kept after its newest checkpoint: below it the history was "
          "deleted.",
          kept);
}

void gw_route_metrics(gw *g, const gw_request *req, gw_response *res)
{
    (void)req;
    mr_text t = {0};
    requests(g, &t);
    nodes(g, &t);
    replication(g, &t);
    history(g, &t);
    res->status = 200;
    res->text = t.data;
    res->text_type = "text/plain; version=0.0.4";
}
