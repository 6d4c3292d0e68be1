/* gw_admin.c: the cluster's own API under /_miroir/: topology, membership and replica checks.
 *
 * The gateway only records intent here (node/<id>, rebuild/… in miroir.meta); the rebalancer
 * turns it into replica moves, so a gateway restart never interrupts one. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "checksum.h"
#include "gw.h"
#include "kafka.h"
#include "plan.h"
#include "record.h"
#include "util.h"

#define VERIFY_PAGE 5000
#define VERIFY_ATTEMPTS 5

static int64_t shard_end(gw *g, const mr_index *ix, uint32_t shard)
{
    return mr_kafka_shard_end(g->producer, ix->storage, shard, 1000);
}

static json_t *member_json(gw *g, const mr_topology *t, const mr_member *m, int with_url)
{
    json_t *j = json_pack("{s:s, s:s, s:s?, s:b, s:I}", "id", m->node.id, "state", mr_member_state_name(m->state), "zone",
                          m->node.zone[0] ? m->node.zone : NULL, "up", gw_node_is_up(g, m->node.id), "replicas",
                          (json_int_t)mr_topology_replicas_on(t, m->node.id));
    if (with_url)
        json_object_set_new(j, "url", json_string(m->node.url));
    long long bytes = gw_node_bytes(g, m->node.id);
    json_object_set_new(j, "bytes", bytes >= 0 ? json_integer(bytes) : json_null());
    return j;
}

/* The fullest active member against the mean, by replicas and by bytes: what capacity the
 * placement leaves unused. */
static json_t *capacity_json(gw *g, const mr_topology *t)
{
    double replicas = 0, bytes = 0, max_replicas = 0, max_bytes = 0;
    size_t n = 0, measured = 0;
    for (size_t i = 0; i < t->member_count; i++) {
        const mr_member *m = &t->members[i];
        if (m->state != MR_MEMBER_ACTIVE)
            continue;
        double r = (double)mr_topology_replicas_on(t, m->node.id);
        long long b = gw_node_bytes(g, m->node.id);
        replicas += r;
        max_replicas = r > max_replicas ? r : max_replicas;
        n++;
        if (b >= 0) {
            bytes += (double)b;
            max_bytes = (double)b > max_bytes ? (double)b : max_bytes;
            measured++;
        }
    }
    json_t *out = json_object();
    if (n && replicas > 0)
        json_object_set_new(out, "replicas", json_pack("{s:f, s:f, s:f}", "max", max_replicas, "mean", replicas / n,
                                                        "maxOverMean", max_replicas / (replicas / n)));
    if (measured && bytes > 0)
        json_object_set_new(out, "bytes", json_pack("{s:f, s:f, s:f}", "max", max_bytes, "mean", bytes / measured,
                                                     "maxOverMean", max_bytes / (bytes / measured)));
    return out;
}

static json_t *members_json(gw *g, const gw_request *req, const mr_topology *t)
{
    json_t *nodes = json_array();
    int with_url = gw_may_see_nodes(req);
    for (size_t i = 0; i < t->member_count; i++)
        json_array_append_new(nodes, member_json(g, t, &t->members[i], with_url));
    return nodes;
}

void gw_route_topology(gw *g, const gw_request *req, gw_response *res)
{
    mr_topology *topo = mr_topology_acquire(mr_meta_topology(g->meta));
    json_t *nodes = members_json(g, req, topo);
    json_t *indexes = json_array();
    json_t *rebuilds = mr_meta_rebuilds(g->meta);
    uint64_t signature = mr_topology_signature(topo);
    for (size_t i = 0; i < topo->count; i++) {
        const mr_index *ix = &topo->indexes[i];
        if (!gw_may_see(req, ix->uid))
            continue;
        json_t *shards = json_array();
        int64_t *ends = calloc(ix->shard_count, sizeof *ends);
        if (!ix->deleted)
            mr_kafka_index_ends(g->producer, ix->storage, ix->shard_count, ends, 1000);
        for (uint32_t s = 0; s < ix->shard_count; s++) {
            int64_t end = ix->deleted ? -1 : ends[s];
            json_t *reps = json_array();
            for (size_t r = 0; r < ix->shards[s].count; r++) {
                const mr_replica *rep = &ix->shards[s].replicas[r];
                int64_t applied = mr_meta_applied(g->meta, ix->storage, s, rep, NULL, 0);
                json_t *j = json_pack("{s:s, s:s, s:I, s:I}", "node", rep->node, "state", mr_replica_state_name(rep->state),
                                      "incarnation", (json_int_t)rep->incarnation, "appliedOffset", (json_int_t)applied);
                if (end >= 0)
                    json_object_set_new(j, "lag", json_integer(end > applied ? end - applied : 0));
                char key[600];
                snprintf(key, sizeof key, "%s/%u/%s", ix->storage, s, rep->node);
                if (json_object_get(rebuilds, key)) /* a repair not begun yet: not settled */
                    json_object_set_new(j, "rebuildRequested", json_true());
                json_array_append_new(reps, j);
            }
            json_t *shard = json_pack("{s:i, s:o}", "shard", (int)s, "replicas", reps);
            if (end >= 0)
                json_object_set_new(shard, "endOffset", json_integer(end));
            if (!ix->deleted) {
                const char *target[MR_MAX_REPLICAS];
                size_t k = mr_plan_target(topo, ix, s, target);
                json_t *tj = json_array();
                for (size_t r = 0; r < k; r++)
                    json_array_append_new(tj, json_string(target[r]));
                json_object_set_new(shard, "target", tj);
                json_object_set_new(shard, "zonesShared", json_boolean(mr_plan_zone_shared(topo, ix, s)));
            }
            json_array_append_new(shards, shard);
        }
        free(ends);
        /* Targets planned for another membership (a node just added, removed or rezoned): the
         * rebalancer has yet to plan them again, so "target" above is not where things will go. */
        int plan_pending = !ix->deleted && ix->planned_for != signature;
        json_array_append_new(indexes, json_pack("{s:s, s:s, s:s, s:i, s:i, s:b, s:b, s:o}", "uid", ix->uid, "storage",
                                                 ix->storage, "primaryKey", ix->primary_key, "shards",
                                                 (int)ix->shard_count, "replicationFactor", (int)ix->rf, "deleted",
                                                 ix->deleted, "planPending", plan_pending, "placement", shards));
    }
    json_decref(rebuilds);
    json_t *capacity = capacity_json(g, topo);
    mr_topology_release(mr_meta_topology(g->meta), topo);
    json_t *collecting = json_array(), *all = gw_collecting(g);
    size_t k;
    json_t *c;
    json_array_foreach(all, k, c)
        if (gw_may_see(req, json_string_value(json_object_get(c, "uid"))))
            json_array_append(collecting, c);
    json_decref(all);
    gw_reply(res, 200, json_pack("{s:o, s:o, s:o, s:o, s:s}", "nodes", nodes, "indexes", indexes, "collecting",
                                 collecting, "capacity", capacity, "health", gw_cluster_health(g, NULL, NULL)));
}

/* ---- membership ---- */

void gw_route_nodes_list(gw *g, const gw_request *req, gw_response *res)
{
    mr_topology *topo = mr_topology_acquire(mr_meta_topology(g->meta));
    json_t *nodes = members_json(g, req, topo);
    mr_topology_release(mr_meta_topology(g->meta), topo);
    gw_reply(res, 200, json_pack("{s:o}", "results", nodes));
}

static int node_id_valid(const char *id)
{
    size_t n = strlen(id);
    if (n == 0 || n >= MR_NODE_ID_MAX)
        return 0;
    for (const char *p = id; *p; p++)
        if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') || *p == '-' || *p == '_'))
            return 0;
    return 1;
}

static void put_member(gw *g, const mr_node *node, enum mr_member_state state, gw_response *res)
{
    mr_error err = {0};
    char key[64];
    snprintf(key, sizeof key, "node/%s", node->id);
    json_t *v = json_pack("{s:s, s:s, s:s}", "url", node->url, "state", mr_member_state_name(state), "zone", node->zone);
    int rc = mr_meta_put(g->meta, g->producer, key, v, 1, &err);
    json_decref(v);
    if (rc) {
        gw_reply_error(res, &err);
        return;
    }
    mr_log_request("info", "gateway", gw_request_id(g), "node %s is now %s", node->id, mr_member_state_name(state));
    gw_reply(res, 202, json_pack("{s:s, s:s, s:s, s:s?}", "id", node->id, "url", node->url, "state",
                                 mr_member_state_name(state), "zone", node->zone[0] ? node->zone : NULL));
}

/* POST /_miroir/nodes {"id", "url", "zone"}: adds a node, or makes a draining one active again,
 * or changes its URL or zone. Without "zone", a member keeps the one it has. */
void gw_route_node_add(gw *g, const gw_request *req, gw_response *res)
{
    mr_error err = {0};
    json_t *body = gw_body_object(req, &err);
    if (!body) {
        gw_reply_error(res, &err);
        return;
    }
    const char *id = json_string_value(json_object_get(body, "id"));
    const char *url = json_string_value(json_object_get(body, "url"));
    json_t *zone = json_object_get(body, "zone");
    mr_node node = {0};
    if (!id || !node_id_valid(id)) {
        mr_error_set(&err, "miroir_invalid_node",
                     "`id` must be a string of 1 to %d letters, digits, hyphens or underscores.", MR_NODE_ID_MAX - 1);
    } else if (!url || (strncmp(url, "http://", 7) != 0 && strncmp(url, "https://", 8) != 0) ||
               strlen(url) >= sizeof node.url) {
        mr_error_set(&err, "miroir_invalid_node", "`url` must be an http:// or https:// URL of at most %zu bytes.",
                     sizeof node.url - 1);
    } else if (zone && !json_is_null(zone) &&
               (!json_is_string(zone) || json_string_length(zone) >= sizeof node.zone ||
                strlen(json_string_value(zone)) != json_string_length(zone))) {
        mr_error_set(&err, "miroir_invalid_node", "`zone` must be a string of at most %zu bytes, or null for none.",
                     sizeof node.zone - 1);
    }
    if (err.status) {
        json_decref(body);
        gw_reply_error(res, &err);
        return;
    }
    snprintf(node.id, sizeof node.id, "%s", id);
    snprintf(node.url, sizeof node.url, "%s", url);
    if (zone) {
        snprintf(node.zone, sizeof node.zone, "%s", json_is_string(zone) ? json_string_value(zone) : "");
    } else {
        mr_topology *topo = mr_topology_acquire(mr_meta_topology(g->meta));
        const mr_member *m = mr_topology_member(topo, id);
        snprintf(node.zone, sizeof node.zone, "%s", m ? m->node.zone : "");
        mr_topology_release(mr_meta_topology(g->meta), topo);
    }
    json_decref(body);
    put_member(g, &node, MR_MEMBER_ACTIVE, res);
}

static int find_member(gw *g, const char *id, mr_node *out, gw_response *res)
{
    mr_topology *topo = mr_topology_acquire(mr_meta_topology(g->meta));
    const mr_member *m = mr_topology_member(topo, id);
    if (m)
        *out = m->node;
    mr_topology_release(mr_meta_topology(g->meta), topo);
    if (!m) {
        mr_error err;
        mr_error_set(&err, "miroir_node_not_found", "Node `%.64s` is not a member of the cluster.", id);
        gw_reply_error(res, &err);
        return -1;
    }
    return 0;
}

void gw_route_node_drain(gw *g, const gw_request *req, gw_response *res)
{
    mr_node node;
    if (find_member(g, req->captures[0], &node, res) == 0)
        put_member(g, &node, MR_MEMBER_DRAINING, res);
}

/* DELETE /_miroir/nodes/<id>: its replicas move away first, then it leaves. With ?force=true
 * it leaves at once (a dead node): its replicas are rebuilt elsewhere from the log. */
void gw_route_node_remove(gw *g, const gw_request *req, gw_response *res)
{
    mr_node node;
    if (find_member(g, req->captures[0], &node, res))
        return;
    const char *force = gw_arg(req, "force");
    if (!force || strcmp(force, "true") != 0) {
        put_member(g, &node, MR_MEMBER_REMOVING, res);
        return;
    }
    mr_error err = {0};
    char key[64];
    snprintf(key, sizeof key, "node/%s", node.id);
    if (mr_meta_put(g->meta, g->producer, key, NULL, 1, &err)) {
        gw_reply_error(res, &err);
        return;
    }
    mr_log_request("warn", "gateway", gw_request_id(g), "node %s removed at once (forced)", node.id);
    gw_reply(res, 202, json_pack("{s:s, s:s, s:s}", "id", node.id, "url", node.url, "state", "removed"));
}

/* POST /_miroir/rebalance: asks the rebalancer to plan every index anew, with the shard sizes it
 * reads now, and to level the nodes' loads (after indexes grew unevenly, say). */
void gw_route_rebalance(gw *g, const gw_request *req, gw_response *res)
{
    (void)req;
    mr_error err = {0};
    char at[48];
    mr_now_rfc3339(at, sizeof at);
    json_t *v = json_pack("{s:s}", "at", at);
    int rc = mr_meta_put(g->meta, g->producer, "rebalance-request", v, 1, &err);
    json_decref(v);
    if (rc) {
        gw_reply_error(res, &err);
        return;
    }
    mr_log_request("info", "gateway", gw_request_id(g), "rebalance requested");
    gw_reply(res, 202, json_pack("{s:s}", "requestedAt", at));
}

/* ---- verify: compare replicas by checksum ---- */

/* Digests one replica's documents by browsing them all. Returns 0, or -1 if the node failed. */
static int replica_checksum(gw *g, const char *url, const mr_index *ix, uint32_t shard, mr_checksum *sum)
{
    char name[300];
    mr_shard_index_name(name, sizeof name, ix->storage, shard);
    *sum = (mr_checksum){0};
    for (long offset = 0;; offset += VERIFY_PAGE) {
        char u[1024];
        snprintf(u, sizeof u, "%s/indexes/%s/documents?offset=%ld&limit=%d", url, name, offset, VERIFY_PAGE);
        mr_http_req r = {0};
        mr_http_one(g->http, &r, "GET", u, NULL, 0);
        json_t *page = mr_http_json(&r);
        json_t *results = json_object_get(page, "results");
        int ok = r.status == 200 && json_is_array(results);
        size_t i;
        json_t *doc;
        json_array_foreach(results, i, doc) mr_checksum_add(sum, doc);
        size_t got = json_array_size(results);
        json_decref(page);
        mr_http_req_reset(&r);
        if (!ok)
            return -1;
        if (got < VERIFY_PAGE)
            return 0;
    }
}

/* 1 if every ready replica has applied the whole partition (nothing can change under a scan). */
static int shard_settled(gw *g, const mr_index *ix, uint32_t shard)
{
    int64_t end = shard_end(g, ix, shard);
    if (end < 0)
        return 0;
    for (size_t r = 0; r < ix->shards[shard].count; r++) {
        const mr_replica *rep = &ix->shards[shard].replicas[r];
        if (rep->state == MR_REPLICA_READY && mr_meta_applied(g->meta, ix->storage, shard, rep, NULL, 0) != end)
            return 0;
    }
    return 1;
}

/* Picks the replicas to rebuild in a divergent shard. With a strict majority of equal
 * checksums, the others; without one (two replicas that differ), all of them: checksums can't
 * tell which is right, the log can. The rebalancer rebuilds them one at a time, so the shard
 * keeps a ready replica throughout. */
static void choose_suspects(const char sums[][48], size_t n, int *suspect)
{
    size_t best = 0, best_size = 0;
    for (size_t i = 0; i < n; i++) {
        size_t size = 0;
        for (size_t j = 0; j < n; j++)
            size += strcmp(sums[i], sums[j]) == 0;
        if (size > best_size) {
            best = i;
            best_size = size;
        }
    }
    for (size_t i = 0; i < n; i++)
        suspect[i] = 2 * best_size <= n || strcmp(sums[i], sums[best]) != 0;
}

static json_t *verify_shard(gw *g, const mr_index *ix, uint32_t shard, int repair, mr_error *err)
{
    mr_replica reps[MR_MAX_REPLICAS];
    char sums[MR_MAX_REPLICAS][48];
    size_t n = 0;
    const char *status = "consistent";
    for (int attempt = 0; attempt < VERIFY_ATTEMPTS; attempt++) {
        status = "unsettled";
        if (!shard_settled(g, ix, shard)) {
            mr_sleep_ms(200 << attempt);
            continue;
        }
        n = 0;
        int failed = 0;
        for (size_t r = 0; r < ix->shards[shard].count; r++) {
            const mr_replica *rep = &ix->shards[shard].replicas[r];
            char url[256];
            mr_checksum sum;
            if (rep->state != MR_REPLICA_READY)
                continue;
            if (gw_node_url(g, rep->node, url, sizeof url) || replica_checksum(g, url, ix, shard, &sum)) {
                failed = 1;
                continue;
            }
            reps[n] = *rep;
            mr_checksum_format(&sum, sums[n], sizeof sums[n]);
            n++;
        }
        if (!shard_settled(g, ix, shard))
            continue; /* something was applied during the scan: the digests may be of different states */
        status = failed ? "unavailable" : "consistent";
        for (size_t i = 1; i < n; i++)
            if (strcmp(sums[i], sums[0]) != 0)
                status = "divergent";
        break;
    }
    json_t *out = json_pack("{s:s, s:i, s:s, s:[]}", "index", ix->uid, "shard", (int)shard, "status", status, "replicas");
    int suspect[MR_MAX_REPLICAS] = {0};
    int divergent = strcmp(status, "divergent") == 0;
    if (divergent)
        choose_suspects((const char(*)[48])sums, n, suspect);
    for (size_t i = 0; i < n; i++) {
        json_t *rj = json_pack("{s:s, s:s, s:b}", "node", reps[i].node, "checksum", sums[i], "divergent", suspect[i]);
        if (divergent && suspect[i] && repair) {
            char key[600], at[48];
            snprintf(key, sizeof key, "rebuild/%s/%u/%s", ix->storage, shard, reps[i].node);
            mr_now_rfc3339(at, sizeof at);
            json_t *v = json_pack("{s:s}", "at", at);
            int rc = mr_meta_put(g->meta, g->producer, key, v, 1, err); /* shown as requested at once */
            json_decref(v);
            if (rc) {
                json_decref(rj);
                json_decref(out);
                return NULL;
            }
            json_object_set_new(rj, "rebuildRequested", json_true());
        }
        json_array_append_new(json_object_get(out, "replicas"), rj);
    }
    return out;
}

/* POST /_miroir/verify {"indexes": [uid, …], "repair": bool} */
void gw_route_verify(gw *g, const gw_request *req, gw_response *res)
{
    mr_error err = {0};
    json_t *body = req->body_len ? gw_body_object(req, &err) : json_object();
    if (!body) {
        gw_reply_error(res, &err);
        return;
    }
    json_t *only = json_object_get(body, "indexes");
    json_t *repair = json_object_get(body, "repair");
    if ((only && !json_is_array(only)) || (repair && !json_is_boolean(repair))) {
        mr_error_set(&err, "bad_request", "`indexes` must be an array of index uids and `repair` a boolean.");
        json_decref(body);
        gw_reply_error(res, &err);
        return;
    }
    mr_topology *topo = mr_topology_acquire(mr_meta_topology(g->meta));
    json_t *shards = json_array();
    size_t counts[4] = {0, 0, 0, 0};
    static const char *const names[] = {"consistent", "divergent", "unsettled", "unavailable"};
    for (size_t i = 0; i < topo->count && !err.status; i++) {
        const mr_index *ix = &topo->indexes[i];
        int wanted = !only;
        size_t k;
        json_t *u;
        json_array_foreach(only, k, u) wanted |= json_is_string(u) && strcmp(json_string_value(u), ix->uid) == 0;
        for (uint32_t s = 0; s < ix->shard_count && wanted && !ix->deleted; s++) {
            json_t *one = verify_shard(g, ix, s, json_is_true(repair), &err);
            if (!one)
                break;
            const char *st = json_string_value(json_object_get(one, "status"));
            for (int c = 0; c < 4; c++)
                counts[c] += strcmp(st, names[c]) == 0;
            json_array_append_new(shards, one);
        }
    }
    mr_topology_release(mr_meta_topology(g->meta), topo);
    json_decref(body);
    if (err.status) {
        json_decref(shards);
        gw_reply_error(res, &err);
        return;
    }
    gw_reply(res, 200, json_pack("{s:{s:I, s:I, s:I, s:I}, s:o}", "summary", names[0], (json_int_t)counts[0], names[1],
                                 (json_int_t)counts[1], names[2], (json_int_t)counts[2], names[3], (json_int_t)counts[3],
                                 "shards", shards));
}
