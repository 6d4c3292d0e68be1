/* gw_tasks.c: tasks, health, version and the topology view. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gw.h"
#include "task.h"

void gw_route_task_get(gw *g, const gw_request *req, gw_response *res)
{
    mr_error err;
    const char *s = req->captures[0];
    char *end;
    long long uid = strtoll(s, &end, 10);
    if (!*s || *end || uid < 0) {
        mr_error_set(&err, "invalid_task_uids", "Invalid value in parameter `taskUid`: could not parse `%.50s` as a positive integer", s);
        gw_reply_error(res, &err);
        return;
    }
    json_t *task = mr_meta_task(g->meta, uid);
    if (!task) {
        mr_error_set(&err, "task_not_found", "Task `%lld` not found.", uid);
        gw_reply_error(res, &err);
        return;
    }
    gw_reply(res, 200, mr_task_view(g->meta, task));
    json_decref(task);
}

/* Cluster colour: green when every replica of every shard is on a live node, yellow when some
 * shard lost a replica but keeps one, red when some shard has no live ready replica. */
static const char *cluster_health(gw *g, json_t *shards_out)
{
    mr_topology *topo = mr_topology_acquire(mr_meta_topology(g->meta));
    int worst = 0;
    for (size_t i = 0; i < topo->count; i++) {
        const mr_index *ix = &topo->indexes[i];
        for (uint32_t s = 0; s < ix->shard_count; s++) {
            size_t live = 0, placed = ix->shards[s].count;
            for (size_t r = 0; r < placed; r++)
                live += ix->shards[s].replicas[r].state == MR_REPLICA_READY &&
                        gw_node_is_up(g, ix->shards[s].replicas[r].node);
            int level = live == 0 ? 2 : live < ix->rf ? 1 : 0;
            worst = level > worst ? level : worst;
            if (shards_out && level)
                json_array_append_new(shards_out, json_pack("{s:s, s:i, s:s}", "index", ix->uid, "shard", (int)s,
                                                            "status", level == 2 ? "red" : "yellow"));
        }
    }
    mr_topology_release(mr_meta_topology(g->meta), topo);
    return worst == 2 ? "red" : worst == 1 ? "yellow" : "green";
}

void gw_route_health(gw *g, const gw_request *req, gw_response *res)
{
    (void)req;
    json_t *degraded = json_array();
    const char *colour = cluster_health(g, degraded);
    /* Meilisearch SDKs read only "status"; red still answers "available" for the shards that
     * are fine, and the detail says which are not. */
    gw_reply(res, 200, json_pack("{s:s, s:s, s:o}", "status", "available", "cluster", colour, "degradedShards", degraded));
}

void gw_route_version(gw *g, const gw_request *req, gw_response *res)
{
    (void)g;
    (void)req;
    gw_reply(res, 200, json_pack("{s:s, s:s, s:s, s:s}", "commitSha", "miroir", "commitDate", "unknown", "pkgVersion",
                                 "1.21.0", "miroirVersion", "0.1.0"));
}

void gw_route_topology(gw *g, const gw_request *req, gw_response *res)
{
    (void)req;
    json_t *nodes = json_array();
    for (size_t i = 0; i < g->cfg->node_count; i++)
        json_array_append_new(nodes, json_pack("{s:s, s:s, s:b}", "id", g->cfg->nodes[i].id, "url", g->cfg->nodes[i].url,
                                               "up", gw_node_is_up(g, g->cfg->nodes[i].id)));
    json_t *indexes = json_array();
    mr_topology *topo = mr_topology_acquire(mr_meta_topology(g->meta));
    for (size_t i = 0; i < topo->count; i++) {
        const mr_index *ix = &topo->indexes[i];
        json_t *shards = json_array();
        for (uint32_t s = 0; s < ix->shard_count; s++) {
            json_t *reps = json_array();
            for (size_t r = 0; r < ix->shards[s].count; r++) {
                const mr_replica *rep = &ix->shards[s].replicas[r];
                json_array_append_new(reps, json_pack("{s:s, s:s, s:I}", "node", rep->node, "state",
                                                      mr_replica_state_name(rep->state), "appliedOffset",
                                                      (json_int_t)mr_meta_applied(g->meta, ix->uid, s, rep->node, NULL, 0)));
            }
            json_array_append_new(shards, json_pack("{s:i, s:o}", "shard", (int)s, "replicas", reps));
        }
        json_array_append_new(indexes, json_pack("{s:s, s:s, s:i, s:i, s:o}", "uid", ix->uid, "primaryKey",
                                                 ix->primary_key, "shards", (int)ix->shard_count, "replicationFactor",
                                                 (int)ix->rf, "placement", shards));
    }
    mr_topology_release(mr_meta_topology(g->meta), topo);
    gw_reply(res, 200, json_pack("{s:o, s:o, s:s}", "nodes", nodes, "indexes", indexes, "health", cluster_health(g, NULL)));
}
