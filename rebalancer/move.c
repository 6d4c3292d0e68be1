/* move.c: one rebalancer pass: plan, then advance each replica's move by one step. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kafka.h"
#include "plan.h"
#include "rebalancer.h"
#include "record.h"
#include "util.h"

#define TASK_WAIT_MS 30000
/* Levelling stops once the fullest node is within 5% of the mean; drift past 10% starts it again
 * (plan_due), so small changes in size never move anything. */
#define PLAN_SLACK 0.05
#define LOST_CHECK_MS 1000
#define PROGRESS_LOG_MS 5000

/* Deletes a shard index on a node and waits for Meilisearch to finish. Returns 0 when the index
 * is gone (or never was), -1 if the node could not be asked. */
static int drop_shard_index(rebalancer *rb, const char *url, const char *name)
{
    char u[1024];
    snprintf(u, sizeof u, "%s/indexes/%s", url, name);
    mr_http_req r = {0};
    mr_http_one(rb->http, &r, "DELETE", u, NULL, 0);
    json_t *answer = mr_http_json(&r);
    json_int_t task = json_integer_value(json_object_get(answer, "taskUid"));
    long status = r.status;
    json_decref(answer);
    mr_http_req_reset(&r);
    if (status == 404)
        return 0;
    if (status != 202)
        return -1;
    snprintf(u, sizeof u, "%s/tasks/%" JSON_INTEGER_FORMAT, url, task);
    for (int64_t deadline = mr_now_ms() + TASK_WAIT_MS; mr_now_ms() < deadline; mr_sleep_ms(20)) {
        mr_http_one(rb->http, &r, "GET", u, NULL, 0);
        answer = mr_http_json(&r);
        const char *st = json_string_value(json_object_get(answer, "status"));
        int done = st && (strcmp(st, "succeeded") == 0 || strcmp(st, "failed") == 0);
        json_decref(answer);
        mr_http_req_reset(&r);
        if (done)
            return 0;
    }
    return -1;
}

/* Writes to miroir.meta and reads it back: this process's follower is polled only here. */
static int put_meta(rebalancer *rb, const char *key, const json_t *value, mr_error *err)
{
    if (mr_meta_put(rb->meta, rb->producer, key, value, 0, err))
        return -1;
    if (mr_meta_sync(rb->meta, 15000)) {
        mr_error_set(err, "miroir_kafka_unavailable", "metadata written but not read back within 15 s");
        return -1;
    }
    return 0;
}

static void remove_replica(mr_shard *s, const char *node)
{
    int found = mr_shard_replica_index(s, node);
    if (found < 0)
        return;
    size_t i = (size_t)found;
    memmove(&s->replicas[i], &s->replicas[i + 1], (s->count - i - 1) * sizeof s->replicas[0]);
    s->count--;
}

/* A fresh incarnation: later than any earlier one of the same replica. From the wall clock, not
 * the monotonic one: that restarts at every boot, and a replica placed again after a reboot could
 * get the very number an earlier life of it left its applied offset under, and adopt it. */
static uint64_t next_incarnation(const mr_replica *old)
{
    struct timespec wall = mr_now_real();
    uint64_t now = (uint64_t)wall.tv_sec * 1000 + (uint64_t)wall.tv_nsec / 1000000;
    return old && old->incarnation >= now ? old->incarnation + 1 : now;
}

static size_t count_building(const mr_topology *t)
{
    size_t n = 0;
    for (size_t i = 0; i < t->count; i++)
        for (uint32_t s = 0; s < t->indexes[i].shard_count; s++)
            for (size_t r = 0; r < t->indexes[i].shards[s].count; r++) {
                enum mr_replica_state st = t->indexes[i].shards[s].replicas[r].state;
                n += st == MR_REPLICA_NEW || st == MR_REPLICA_BUILDING;
            }
    return n;
}

static void replica_key(char *out, size_t len, const mr_index *ix, uint32_t shard, const char *node)
{
    snprintf(out, len, "%s/%u/%s", ix->storage, shard, node);
}

/* Rebuild requests (from verify --repair): a ready replica starts a new life from the log,
 * as long as the shard keeps another ready replica meanwhile (or has only one copy at all). */
static int take_rebuilds(const mr_index *ix, uint32_t shard, mr_shard *s, json_t *requests,
                         size_t *budget)
{
    int changed = 0;
    for (size_t r = 0; r < s->count && *budget; r++) {
        mr_replica *rep = &s->replicas[r];
        char key[600];
        replica_key(key, sizeof key, ix, shard, rep->node);
        if (!json_object_get(requests, key) || rep->state != MR_REPLICA_READY)
            continue;
        size_t other_ready = 0;
        for (size_t o = 0; o < s->count; o++)
            other_ready += o != r && s->replicas[o].state == MR_REPLICA_READY;
        if (other_ready == 0 && ix->rf > 1)
            continue;
        mr_log("info", "rebalancer", "rebuilding %s shard %u on %s from the log", ix->uid, shard, rep->node);
        rep->state = MR_REPLICA_NEW;
        rep->incarnation = next_incarnation(rep);
        (*budget)--;
        changed = 1;
    }
    return changed;
}

/* A building replica whose applied offset stands still though it is behind is stuck somewhere
 * in ingest or on its node: say so, again every rebuild_stall_warn_ms, rather than wait in silence. */
static void warn_if_stalled(rebalancer *rb, const char *key, const mr_index *ix, uint32_t shard, const char *node,
                            int64_t applied, int64_t goal, int64_t now)
{
    json_t *seen = json_object_get(rb->building_seen, key);
    if (!seen || json_integer_value(json_array_get(seen, 0)) != applied) {
        json_object_set_new(rb->building_seen, key,
                            json_pack("[I, I, I]", (json_int_t)applied, (json_int_t)now, (json_int_t)rb->pass));
        return;
    }
    json_array_set_new(seen, 2, json_integer((json_int_t)rb->pass));
    int64_t since = json_integer_value(json_array_get(seen, 1));
    if (now - since < rb->cfg->rebuild_stall_warn_ms)
        return;
    mr_log("warn", "rebalancer", "building %s shard %u on %s has been at %" PRId64 "/%" PRId64 " records for %" PRId64 " s",
           ix->uid, shard, node, applied, goal, (now - since) / 1000);
    json_array_set_new(seen, 1, json_integer(now));
}

/* Advances the replicas that wait on I/O: new → building once the node is cleared; building →
 * ready once caught up; retiring → gone once its index is dropped. */
static int advance(rebalancer *rb, const mr_topology *t, const mr_index *ix, uint32_t shard, mr_shard *s,
                   int64_t now)
{
    int changed = 0;
    int64_t end = -2;
    char name[300];
    mr_shard_index_name(name, sizeof name, ix->storage, shard);
    for (size_t r = 0; r < s->count; r++) {
        mr_replica *rep = &s->replicas[r];
        const mr_member *m = mr_topology_member(t, rep->node);
        char key[600];
        replica_key(key, sizeof key, ix, shard, rep->node);
        if (!m)
            continue;
        if (rep->state == MR_REPLICA_NEW) {
            if (drop_shard_index(rb, m->node.url, name) == 0) {
                rep->state = MR_REPLICA_BUILDING;
                changed = 1;
                mr_log("info", "rebalancer", "building %s shard %u on %s", ix->uid, shard, rep->node);
            }
        } else if (rep->state == MR_REPLICA_BUILDING) {
            if (end == -2)
                end = mr_kafka_shard_end(rb->producer, ix->storage, shard, 2000);
            int64_t applied = mr_meta_applied(rb->meta, ix->storage, shard, rep, NULL, 0);
            /* Caught up: it has applied all that the most advanced ready peer has, or the
             * whole log when no peer is ready. Never promoted on a tolerance: a half-built
             * replica would answer with documents missing. */
            int64_t best_peer = -1;
            for (size_t p = 0; p < s->count; p++) {
                int64_t peer = mr_meta_applied(rb->meta, ix->storage, shard, &s->replicas[p], NULL, 0);
                if (s->replicas[p].state == MR_REPLICA_READY && peer > best_peer)
                    best_peer = peer;
            }
            int64_t goal = best_peer >= 0 && best_peer < end ? best_peer : end;
            if (end >= 0 && applied >= goal) {
                rep->state = MR_REPLICA_READY;
                changed = 1;
                mr_log("info", "rebalancer", "%s shard %u on %s is ready (%" PRId64 "/%" PRId64 " records)", ix->uid,
                       shard, rep->node, applied, end);
            } else {
                warn_if_stalled(rb, key, ix, shard, rep->node, applied, goal, now);
                if (now - rb->last_progress_log_ms >= PROGRESS_LOG_MS)
                    mr_log("info", "rebalancer", "building %s shard %u on %s: %" PRId64 "/%" PRId64 " records", ix->uid,
                           shard, rep->node, applied, end);
            }
        } else if (rep->state == MR_REPLICA_RETIRING) {
            json_t *since = json_object_get(rb->retiring_since, key);
            if (!since) {
                json_object_set_new(rb->retiring_since, key, json_integer(now));
                continue;
            }
            if (now - json_integer_value(since) < rb->cfg->retire_grace_ms)
                continue;
            /* A node that can't be asked keeps a stale copy; a later move back clears it first. */
            if (drop_shard_index(rb, m->node.url, name) != 0)
                mr_log("warn", "rebalancer", "could not drop %s on %s; leaving it", name, rep->node);
            json_object_del(rb->retiring_since, key);
            mr_log("info", "rebalancer", "retired %s shard %u from %s", ix->uid, shard, rep->node);
            remove_replica(s, rep->node);
            r--;
            changed = 1;
        }
    }
    return changed;
}

static int apply_steps(const mr_index *ix, uint32_t shard, mr_shard *s, const mr_step *steps, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        const mr_step *st = &steps[i];
        int at = mr_shard_replica_index(s, st->node);
        mr_replica *rep = at >= 0 ? &s->replicas[at] : NULL;
        switch (st->kind) {
        case MR_STEP_ADD:
            if (s->count < MR_MAX_REPLICAS) {
                mr_replica *nr = &s->replicas[s->count++];
                memset(nr, 0, sizeof *nr);
                snprintf(nr->node, sizeof nr->node, "%s", st->node);
                nr->state = MR_REPLICA_NEW;
                nr->incarnation = next_incarnation(NULL);
                mr_log("info", "rebalancer", "placing %s shard %u on %s", ix->uid, shard, st->node);
            }
            break;
        case MR_STEP_RETIRE:
            if (rep) {
                rep->state = MR_REPLICA_RETIRING;
                mr_log("info", "rebalancer", "retiring %s shard %u on %s", ix->uid, shard, st->node);
            }
            break;
        case MR_STEP_FORGET:
            mr_log("warn", "rebalancer", "forgetting %s shard %u on %s: the node left the cluster", ix->uid, shard,
                   st->node);
            remove_replica(s, st->node);
            break;
        }
    }
    return n > 0;
}

static int write_placement(rebalancer *rb, const mr_index *ix)
{
    char key[300];
    snprintf(key, sizeof key, "placement/%s", ix->storage);
    json_t *v = json_pack("{s:s, s:o}", "createdAt", ix->created_at, "placement", mr_placement_to_json(ix));
    mr_target_to_json(ix, v);
    mr_error err = {0};
    int rc = put_meta(rb, key, v, &err);
    json_decref(v);
    if (rc)
        mr_log("warn", "rebalancer", "could not write the placement of %s: %s", ix->uid, err.message);
    return rc;
}

/* Requests whose replica no longer needs them (its rebuild begun, moved, or gone) are cleared, each
 * read back before the next pass: a request left until its rebuilt replica was ready again would
 * be taken again, and again. */
static void clear_rebuilds(rebalancer *rb, const mr_topology *t, json_t *requests)
{
    const char *key;
    json_t *v;
    json_object_foreach(requests, key, v) {
        /* key = "<storage>/<shard>/<node>"; node ids and storages hold no '/' */
        char storage[MR_INDEX_UID_MAX + 1];
        const char *node_sep = strrchr(key, '/');
        const char *shard_sep = node_sep ? memrchr(key, '/', (size_t)(node_sep - key)) : NULL;
        if (!shard_sep || (size_t)(shard_sep - key) >= sizeof storage)
            continue;
        memcpy(storage, key, (size_t)(shard_sep - key));
        storage[shard_sep - key] = '\0';
        unsigned shard = (unsigned)strtoul(shard_sep + 1, NULL, 10);
        const char *node = node_sep + 1;
        const mr_index *ix = mr_topology_find_storage(t, storage);
        int at = ix && shard < ix->shard_count ? mr_shard_replica_index(&ix->shards[shard], node) : -1;
        if (at >= 0 && ix->shards[shard].replicas[at].state == MR_REPLICA_READY)
            continue; /* not started yet */
        char full[700];
        snprintf(full, sizeof full, "rebuild/%s", key);
        mr_error err = {0};
        put_meta(rb, full, NULL, &err);
    }
}

/* Members on their way out leave once they hold no replica. */
static void release_members(rebalancer *rb, const mr_topology *t)
{
    for (size_t i = 0; i < t->member_count; i++) {
        const mr_member *m = &t->members[i];
        if (m->state != MR_MEMBER_REMOVING)
            continue;
        if (mr_topology_replicas_on(t, m->node.id))
            continue;
        char key[64];
        snprintf(key, sizeof key, "node/%s", m->node.id);
        mr_error err = {0};
        if (put_meta(rb, key, NULL, &err) == 0)
            mr_log("info", "rebalancer", "node %s left the cluster", m->node.id);
    }
}

/* ---- nodes that lost their data ---- */

/* Every node holds this index of its own once the rebalancer has seen it: a member up without it
 * was wiped (or is new), and a wiped node's replicas must not serve, nor count as copies. */
#define NODE_MARKER "miroir-node"

/* The uids of the indexes on a node (a new object uid -> true), from a first page already asked
 * for (r), or NULL if the node did not answer. */
static json_t *node_indexes(rebalancer *rb, const char *url, mr_http_req *first)
{
    json_t *out = json_object();
    for (long offset = 0;; offset += 1000) {
        mr_http_req more = {0};
        mr_http_req *r = first;
        if (offset) {
            char u[512];
            snprintf(u, sizeof u, "%s/indexes?offset=%ld&limit=1000", url, offset);
            mr_http_one(rb->http, &more, "GET", u, NULL, 0);
            r = &more;
        }
        json_t *page = mr_http_json(r);
        json_t *results = json_object_get(page, "results");
        int ok = r->status == 200 && json_is_array(results);
        size_t i;
        json_t *ix;
        json_array_foreach(results, i, ix) {
            const char *uid = json_string_value(json_object_get(ix, "uid"));
            if (uid)
                json_object_set_new(out, uid, json_true());
        }
        size_t got = json_array_size(results);
        json_decref(page);
        mr_http_req_reset(&more);
        if (!ok) {
            json_decref(out);
            return NULL;
        }
        if (got < 1000)
            return out;
    }
}

/* Whether the node lost what it held: it has no marker, and some replica it holds (that has applied
 * something, so its index must exist) has no index there. A node without a marker whose shard
 * indexes are all there (one that held data before markers existed) only gets its marker. */
static int lost_its_data(rebalancer *rb, const mr_topology *t, const mr_member *m, json_t *has)
{
    if (json_object_get(has, NODE_MARKER))
        return 0;
    int lost = 0;
    for (size_t i = 0; i < t->count && !lost; i++) {
        const mr_index *ix = &t->indexes[i];
        for (uint32_t s = 0; s < ix->shard_count && !ix->deleted && !lost; s++) {
            int at = mr_shard_replica_index(&ix->shards[s], m->node.id);
            if (at < 0)
                continue;
            const mr_replica *rep = &ix->shards[s].replicas[at];
            char name[300];
            mr_shard_index_name(name, sizeof name, ix->storage, s);
            lost = (rep->state == MR_REPLICA_READY || rep->state == MR_REPLICA_BUILDING) &&
                   mr_meta_applied(rb->meta, ix->storage, s, rep, NULL, 0) > 0 && !json_object_get(has, name);
        }
    }
    char u[512];
    snprintf(u, sizeof u, "%s/indexes", m->node.url);
    mr_http_req r = {0};
    char body[64];
    int n = snprintf(body, sizeof body, "{\"uid\":\"%s\"}", NODE_MARKER);
    mr_http_one(rb->http, &r, "POST", u, body, (size_t)n);
    mr_http_req_reset(&r);
    return lost;
}

/* A node that lost its data (restarted empty, a disk replaced): each of its replicas starts a new
 * life at once, as a new replica, whatever else the shard has: it serves no read from what is
 * left, no task waits for it, and it is rebuilt from a peer, a checkpoint or the log. */
static int take_lost_replicas(rebalancer *rb, const mr_topology *t, mr_index *ix, uint32_t shard, mr_shard *s,
                              const json_t *lost_nodes)
{
    int changed = 0;
    for (size_t r = 0; r < s->count; r++) {
        mr_replica *rep = &s->replicas[r];
        if (!json_object_get(lost_nodes, rep->node) || rep->state == MR_REPLICA_RETIRING ||
            rep->state == MR_REPLICA_NEW || !mr_topology_member(t, rep->node))
            continue;
        mr_log("warn", "rebalancer", "%s lost its data: rebuilding %s shard %u there", rep->node, ix->uid, shard);
        rep->state = MR_REPLICA_NEW;
        rep->incarnation = next_incarnation(rep);
        changed = 1;
    }
    (void)rb;
    return changed;
}

/* The members that answer and lost their data since they were last looked at (a new object
 * id -> true). Every LOST_CHECK_MS, all members at once. */
static json_t *find_lost_nodes(rebalancer *rb, const mr_topology *t, int64_t now)
{
    json_t *lost = json_object();
    if (now - rb->last_lost_check_ms < LOST_CHECK_MS)
        return lost;
    rb->last_lost_check_ms = now;
    mr_http_req reqs[MR_MAX_NODES];
    memset(reqs, 0, sizeof reqs);
    for (size_t i = 0; i < t->member_count; i++) {
        reqs[i].method = "GET";
        snprintf(reqs[i].url, sizeof reqs[i].url, "%s/indexes?offset=0&limit=1000", t->members[i].node.url);
        reqs[i].timeout_ms = 2000;
    }
    mr_http_run(rb->http, reqs, t->member_count);
    for (size_t i = 0; i < t->member_count; i++) {
        const mr_member *m = &t->members[i];
        json_t *has = node_indexes(rb, m->node.url, &reqs[i]);
        if (has && lost_its_data(rb, t, m, has))
            json_object_set_new(lost, m->node.id, json_true());
        json_decref(has);
        mr_http_req_reset(&reqs[i]);
    }
    return lost;
}

/* ---- planning targets ---- */

/* What one shard of each live index weighs: its size on the nodes (rawDocumentDbSize, the largest
 * replica of each shard, averaged over the shards), in KiB, read from every active member's
 * /stats. Indexes no answer covered keep the weight of the last plan. A new object. */
static json_t *measure_weights(rebalancer *rb, const mr_topology *t, const json_t *last)
{
    mr_http_req reqs[MR_MAX_NODES];
    size_t n = 0;
    memset(reqs, 0, sizeof reqs);
    for (size_t i = 0; i < t->member_count; i++) {
        if (t->members[i].state != MR_MEMBER_ACTIVE)
            continue;
        reqs[n].method = "GET";
        snprintf(reqs[n].url, sizeof reqs[n].url, "%s/stats", t->members[i].node.url);
        reqs[n].timeout_ms = 5000;
        n++;
    }
    mr_http_run(rb->http, reqs, n);
    json_t *per_shard = json_object(); /* "<storage>__s<k>" -> largest size seen */
    for (size_t i = 0; i < n; i++) {
        json_t *stats = mr_http_ok(&reqs[i]) ? mr_http_json(&reqs[i]) : NULL;
        const char *name;
        json_t *one;
        json_object_foreach(json_object_get(stats, "indexes"), name, one) {
            json_int_t size = json_integer_value(json_object_get(one, "rawDocumentDbSize"));
            if (size > json_integer_value(json_object_get(per_shard, name)))
                json_object_set_new(per_shard, name, json_integer(size));
        }
        json_decref(stats);
        mr_http_req_reset(&reqs[i]);
    }
    json_t *weights = json_object();
    for (size_t i = 0; i < t->count; i++) {
        const mr_index *ix = &t->indexes[i];
        if (ix->deleted)
            continue;
        json_int_t total = 0;
        int seen = 0;
        for (uint32_t s = 0; s < ix->shard_count; s++) {
            char name[300];
            mr_shard_index_name(name, sizeof name, ix->storage, s);
            json_t *size = json_object_get(per_shard, name);
            seen |= size != NULL;
            total += json_integer_value(size);
        }
        json_t *before = json_object_get(last, ix->storage);
        if (seen)
            json_object_set_new(weights, ix->storage, json_integer(total / 1024 / ix->shard_count + 1));
        else if (before)
            json_object_set(weights, ix->storage, before);
    }
    json_decref(per_shard);
    return weights;
}

/* Why the targets should be planned anew now, or NULL: the members (or their zones) changed, an
 * index was never planned, an operator asked, or, every level_interval_ms, the loads drifted
 * past 1.10× their mean while the mean node holds 10 replicas or more. */
static const char *plan_due(rebalancer *rb, const mr_topology *t, const json_t *plan, const json_t *request,
                            int64_t now)
{
    if (mr_plan_due(t))
        return "the members changed";
    json_t *asked = json_object_get(request, "at");
    if (asked && !json_equal(asked, json_object_get(plan, "request")))
        return "an operator asked";
    if (rb->cfg->level_interval_ms == 0 || now - rb->last_level_check_ms < rb->cfg->level_interval_ms)
        return NULL;
    rb->last_level_check_ms = now;
    json_t *weights = measure_weights(rb, t, json_object_get(plan, "weights"));
    double replicas_per_node, peak = mr_plan_peak(t, weights, &replicas_per_node);
    json_decref(weights);
    return replicas_per_node >= 10 && peak > 1.10 ? "the loads drifted apart" : NULL;
}

/* Plans every live index's targets anew when due, and records the plan. Returns the placement
 * records written. */
static int replan(rebalancer *rb, int64_t now)
{
    mr_topology_holder *holder = mr_meta_topology(rb->meta);
    mr_topology *t = mr_topology_acquire(holder);
    json_t *plan = mr_meta_singleton(rb->meta, "plan"), *request = mr_meta_singleton(rb->meta, "rebalance-request");
    const char *why = plan_due(rb, t, plan, request, now);
    int writes = 0;
    if (why) {
        json_t *weights = measure_weights(rb, t, json_object_get(plan, "weights"));
        mr_index *changed = NULL;
        size_t count = 0;
        size_t moves = mr_plan_targets(t, weights, PLAN_SLACK, &changed, &count);
        int failed = 0;
        for (size_t i = 0; i < count; i++) {
            failed |= write_placement(rb, &changed[i]) != 0;
            writes += 1;
            mr_index_clear(&changed[i]);
        }
        free(changed);
        char sig[24], at[48];
        snprintf(sig, sizeof sig, "%016" PRIx64, mr_topology_signature(t));
        mr_now_rfc3339(at, sizeof at);
        json_t *record = json_pack("{s:s, s:s, s:O, s:O?, s:I, s:s}", "signature", sig, "at", at, "weights", weights,
                                   "request", json_object_get(request, "at"), "moves", (json_int_t)moves, "why", why);
        mr_error err = {0};
        if (!failed && put_meta(rb, "plan", record, &err) != 0)
            mr_log("warn", "rebalancer", "could not record the plan: %s", err.message);
        else if (!failed)
            mr_log("info", "rebalancer", "planned the targets of %zu index(es) anew (%s): %zu replica(s) to move", count,
                   why, moves);
        json_decref(record);
        json_decref(weights);
    }
    json_decref(plan);
    json_decref(request);
    mr_topology_release(holder, t);
    return writes;
}

int rb_tick(rebalancer *rb)
{
    mr_topology_holder *holder = mr_meta_topology(rb->meta);
    if (replan(rb, mr_now_ms()))
        return 1; /* the moves start from the new targets, at the next pass */
    mr_topology *t = mr_topology_acquire(holder);
    json_t *requests = mr_meta_rebuilds(rb->meta);
    int64_t now = mr_now_ms();
    rb->pass++;
    size_t building = count_building(t);
    size_t budget = building < (size_t)rb->cfg->rebalance_concurrency ? (size_t)rb->cfg->rebalance_concurrency - building : 0;
    int writes = 0;
    json_t *lost = find_lost_nodes(rb, t, now);
    for (size_t i = 0; i < t->count; i++) {
        mr_index ix;
        mr_index_copy(&ix, &t->indexes[i]);
        int changed = 0;
        for (uint32_t s = 0; s < ix.shard_count; s++) {
            if (!ix.deleted)
                changed |= take_lost_replicas(rb, t, &ix, s, &ix.shards[s], lost);
            mr_step steps[MR_MAX_REPLICAS * 2];
            /* plan against the snapshot, change the copy */
            size_t n = mr_plan_shard(t, &t->indexes[i], s, &budget, steps);
            changed |= apply_steps(&ix, s, &ix.shards[s], steps, n);
            if (!ix.deleted)
                changed |= take_rebuilds(&ix, s, &ix.shards[s], requests, &budget);
            changed |= advance(rb, t, &ix, s, &ix.shards[s], now);
        }
        if (changed && write_placement(rb, &ix) == 0)
            writes++;
        mr_index_clear(&ix);
    }
    if (now - rb->last_progress_log_ms >= PROGRESS_LOG_MS)
        rb->last_progress_log_ms = now;
    const char *key;
    void *tmp;
    json_t *seen;
    json_object_foreach_safe(rb->building_seen, tmp, key, seen) /* replicas no longer building */
        if ((uint64_t)json_integer_value(json_array_get(seen, 2)) != rb->pass)
            json_object_del(rb->building_seen, key);
    mr_topology_release(holder, t);
    /* Membership and requests are judged by the placement as it stands now, this pass's writes
     * included (each was read back), so a rebuild begun in this pass has its request cleared in it.
     * Waiting for a pass that writes nothing instead could wait as long as other indexes keep
     * changing: a removed node never left, and a rebuilt replica was taken again. */
    t = mr_topology_acquire(holder);
    release_members(rb, t);
    clear_rebuilds(rb, t, requests);
    mr_topology_release(holder, t);
    json_decref(requests);
    json_decref(lost);
    return writes;
}
