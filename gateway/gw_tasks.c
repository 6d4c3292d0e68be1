/* gw_tasks.c: tasks (get, list, cancel, delete), health and version. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "gw.h"
#include "plan.h"
#include "task.h"
#include "util.h"

/* A count in a parameter (a query argument or a uid in the path), as Meilisearch reads one.
 * Returns 0, or -1 with err (code). */
static int parse_count(const char *v, const char *param, long long *out, const char *code, mr_error *err)
{
    char *end;
    *out = strtoll(v, &end, 10);
    if (!*v || *end || *out < 0) {
        mr_error_invalid(err, code, "Invalid value in parameter `%s`: could not parse `%.50s` as a positive integer",
                         param, v);
        return -1;
    }
    return 0;
}

json_t *gw_task_view(gw *g, const json_t *task)
{
    json_t *view = mr_task_view(g->meta, task);
    const char *storage = json_string_value(json_object_get(task, "storage"));
    const char *uid = json_string_value(json_object_get(task, "indexUid"));
    json_t *error = json_object_get(view, "error");
    const char *message = json_string_value(json_object_get(error, "message"));
    if (storage && uid && message) { /* a node's error names the shard index, never shown */
        char text[sizeof ((mr_error *)0)->message];
        snprintf(text, sizeof text, "%s", message);
        mr_error_rename_index(text, sizeof text, storage, uid);
        json_object_set_new(error, "message", json_string(text));
    }
    return view;
}

/* A key restricted to some indexes sees only their tasks, and tasks of no index only with "*". */
static int task_visible(const gw_request *req, const json_t *view)
{
    const char *index = json_string_value(json_object_get(view, "indexUid"));
    return index ? gw_may_see(req, index) : gw_may_use_all(req);
}

void gw_route_task_get(gw *g, const gw_request *req, gw_response *res)
{
    mr_error err;
    long long uid;
    if (parse_count(req->captures[0], "taskUid", &uid, "invalid_task_uids", &err)) {
        gw_reply_error(res, &err);
        return;
    }
    json_t *task = mr_meta_task(g->meta, uid);
    if (task && !task_visible(req, task)) {
        json_decref(task);
        task = NULL;
    }
    if (!task) {
        mr_error_set(&err, "task_not_found", "Task `%lld` not found.", uid);
        gw_reply_error(res, &err);
        return;
    }
    gw_reply(res, 200, gw_task_view(g, task));
    json_decref(task);
}

/* Cluster colour: green when every shard has RF in-sync replicas on live nodes, yellow when some
 * shard has fewer but one at least, red when some shard has none that may serve reads. */
const char *gw_cluster_health(gw *g, json_t *shards_out, size_t *zones_shared)
{
    static const char *const colours[] = {"green", "yellow", "red"};
    mr_topology *topo = mr_topology_acquire(mr_meta_topology(g->meta));
    int worst = 0;
    if (zones_shared)
        *zones_shared = 0;
    for (size_t i = 0; i < topo->count; i++) {
        const mr_index *ix = &topo->indexes[i];
        for (uint32_t s = 0; s < ix->shard_count && !ix->deleted; s++) {
            size_t live = 0, placed = ix->shards[s].count;
            mr_commit commit;
            mr_meta_commit(g->meta, ix->storage, s, &commit);
            for (size_t r = 0; r < placed; r++) {
                const mr_replica *rep = &ix->shards[s].replicas[r];
                live += mr_meta_readable(g->meta, ix->storage, s, &commit, rep) && gw_node_is_up(g, rep->node);
            }
            int level = live == 0 ? 2 : live < ix->rf ? 1 : 0;
            worst = level > worst ? level : worst;
            int shared = zones_shared && mr_plan_zone_shared(topo, ix, s);
            if (zones_shared)
                *zones_shared += shared;
            if (shards_out)
                json_array_append_new(shards_out, json_pack("{s:s, s:i, s:s, s:I, s:I, s:b}", "index", ix->uid, "shard",
                                                            (int)s, "status", colours[level], "liveReadyReplicas",
                                                            (json_int_t)live, "replicationFactor", (json_int_t)ix->rf,
                                                            "zonesShared", shared));
        }
    }
    mr_topology_release(mr_meta_topology(g->meta), topo);
    return colours[worst];
}

/* The members holding more shard indexes than a Meilisearch node keeps open (node_open_indexes):
 * Meilisearch 1.21 keeps at most about 18 indexes open and closes the least recently used to
 * open another, so a node searched across more of them reopens indexes all the time, and under
 * concurrent searches its HTTP workers can wait for each other's indexes to close, for good
 * (operations.md). Appends {"node", "shardIndexes"} to out. */
static void crowded_nodes(gw *g, json_t *out)
{
    mr_topology *topo = mr_topology_acquire(mr_meta_topology(g->meta));
    for (size_t i = 0; i < topo->member_count; i++) {
        size_t held = mr_topology_replicas_on(topo, topo->members[i].node.id);
        if ((long)held > g->cfg->node_open_indexes)
            json_array_append_new(out, json_pack("{s:s, s:I}", "node", topo->members[i].node.id, "shardIndexes",
                                                 (json_int_t)held));
    }
    mr_topology_release(mr_meta_topology(g->meta), topo);
}

/* Public, as on Meilisearch (load balancers probe it). The per-shard detail names indexes, so
 * with a master key it needs a key that may read stats. */
void gw_route_health(gw *g, const gw_request *req, gw_response *res)
{
    const char *detail = gw_arg(req, "detail");
    if (!detail || strcmp(detail, "true") != 0) {
        size_t shared;
        const char *colour = gw_cluster_health(g, NULL, &shared);
        json_t *body = json_pack("{s:s, s:s}", "status", "available", "cluster", colour);
        if (shared) /* replicas of a shard in one failure domain though there are enough domains */
            json_object_set_new(body, "zonesShared", json_integer((json_int_t)shared));
        gw_reply(res, 200, body);
        return;
    }
    gw_request probe = *req;
    memset(&probe.caller, 0, sizeof probe.caller);
    mr_error err;
    if (gw_authorize(g, &probe, "stats.get", &err)) {
        gw_reply_error(res, &err);
        return;
    }
    json_t *all = json_array(), *shards = json_array(), *degraded = json_array(), *shared = json_array();
    size_t shared_count;
    const char *colour = gw_cluster_health(g, all, &shared_count);
    size_t i;
    json_t *s;
    json_array_foreach(all, i, s) {
        if (!gw_may_see(&probe, json_string_value(json_object_get(s, "index"))))
            continue;
        json_array_append(shards, s);
        if (strcmp(json_string_value(json_object_get(s, "status")), "green") != 0)
            json_array_append(degraded, s);
        if (json_is_true(json_object_get(s, "zonesShared")))
            json_array_append(shared, s);
    }
    json_decref(all);
    gw_caller_clear(&probe.caller);
    /* Meilisearch SDKs read only "status"; red still answers "available" for the shards that
     * are fine, and the detail says which are not. */
    json_t *crowded = json_array();
    crowded_nodes(g, crowded);
    gw_reply(res, 200, json_pack("{s:s, s:s, s:o, s:o, s:o, s:o}", "status", "available", "cluster", colour,
                                 "degradedShards", degraded, "zonesSharedShards", shared, "crowdedNodes", crowded,
                                 "shards", shards));
}

void gw_route_version(gw *g, const gw_request *req, gw_response *res)
{
    (void)g;
    (void)req;
    gw_reply(res, 200, json_pack("{s:s, s:s, s:s, s:s}", "commitSha", "miroir", "commitDate", "unknown", "pkgVersion",
                                 "1.21.0", "miroirVersion", "0.1.0"));
}

/* ---- GET /tasks ---- */

struct task_filter {
    /* arrays of strings, or NULL for no filter ("*" is none) */
    json_t *uids, *statuses, *types, *index_uids, *canceled_by, *batch_uids;
    int64_t after[3], before[3];                  /* enqueued, started, finished; -1: no bound */
};

static const char *const time_fields[3] = {"enqueuedAt", "startedAt", "finishedAt"};

static int in_list(const json_t *list, const char *value)
{
    if (!list)
        return 1;
    size_t i;
    json_t *v;
    json_array_foreach(list, i, v) {
        const char *s = json_string_value(v);
        if (strcmp(s, "*") == 0 || (value && strcmp(s, value) == 0))
            return 1;
    }
    return 0;
}

static int task_matches(const struct task_filter *f, const json_t *view)
{
    char uid[32], by[32] = "", batch[32] = "";
    snprintf(uid, sizeof uid, "%" JSON_INTEGER_FORMAT, json_integer_value(json_object_get(view, "uid")));
    json_t *batch_uid = json_object_get(view, "batchUid");
    if (json_is_integer(batch_uid))
        snprintf(batch, sizeof batch, "%" JSON_INTEGER_FORMAT, json_integer_value(batch_uid));
    json_t *canceled_by = json_object_get(view, "canceledBy");
    if (json_is_integer(canceled_by))
        snprintf(by, sizeof by, "%" JSON_INTEGER_FORMAT, json_integer_value(canceled_by));
    if ((f->batch_uids && (!batch[0] || !in_list(f->batch_uids, batch))) || (f->canceled_by && (!by[0] || !in_list(f->canceled_by, by))) || !in_list(f->uids, uid) ||
        !in_list(f->statuses, json_string_value(json_object_get(view, "status"))) ||
        !in_list(f->types, json_string_value(json_object_get(view, "type"))) ||
        !in_list(f->index_uids, json_string_value(json_object_get(view, "indexUid"))))
        return 0;
    for (int i = 0; i < 3; i++) {
        if (f->after[i] < 0 && f->before[i] < 0)
            continue;
        const char *t = json_string_value(json_object_get(view, time_fields[i]));
        int64_t ns;
        if (!t || mr_parse_time(t, &ns))
            return 0;
        if ((f->after[i] >= 0 && ns <= f->after[i]) || (f->before[i] >= 0 && ns >= f->before[i]))
            return 0;
    }
    return 1;
}

/* A list parameter, or NULL when it is absent or "*" (everything, as no filter). */
static json_t *list_arg(const gw_request *req, const char *name)
{
    const char *v = gw_arg(req, name);
    return v && strcmp(v, "*") != 0 ? gw_csv_list(v) : NULL;
}

/* Checks every value of a list against the allowed ones (NULL: any integer). */
static int check_list(const json_t *list, const char *const *allowed, const char *param, const char *code, mr_error *err)
{
    size_t i;
    json_t *v;
    json_array_foreach(list, i, v) {
        const char *s = json_string_value(v);
        int ok = strcmp(s, "*") == 0;
        if (allowed) {
            for (const char *const *a = allowed; *a && !ok; a++)
                ok = strcmp(*a, s) == 0;
        } else {
            char *end;
            long long n = strtoll(s, &end, 10);
            ok |= *s && !*end && n >= 0;
        }
        if (!ok) {
            mr_error_invalid(err, code, "Invalid value in parameter `%s`: `%.100s` is not a valid value.", param, s);
            return -1;
        }
    }
    return 0;
}

static int task_filter_parse(const gw_request *req, struct task_filter *f, mr_error *err)
{
    static const char *const statuses[] = {"enqueued", "processing", "succeeded", "failed", "canceled", NULL};
    static const char *const types[] = {"documentAdditionOrUpdate", "documentEdition", "documentDeletion",
                                        "settingsUpdate", "indexCreation", "indexDeletion", "indexUpdate",
                                        "indexSwap", "taskCancelation", "taskDeletion", "dumpCreation",
                                        "snapshotCreation", "upgradeDatabase", NULL};
    memset(f, 0, sizeof *f);
    f->uids = list_arg(req, "uids");
    f->statuses = list_arg(req, "statuses");
    f->types = list_arg(req, "types");
    f->index_uids = list_arg(req, "indexUids");
    f->canceled_by = list_arg(req, "canceledBy");
    f->batch_uids = list_arg(req, "batchUids");
    if (check_list(f->uids, NULL, "uids", "invalid_task_uids", err) ||
        check_list(f->batch_uids, NULL, "batchUids", "invalid_batch_uids", err) ||
        check_list(f->canceled_by, NULL, "canceledBy", "invalid_task_canceled_by", err) ||
        check_list(f->statuses, statuses, "statuses", "invalid_task_statuses", err) ||
        check_list(f->types, types, "types", "invalid_task_types", err))
        return -1;
    static const char *const names[3] = {"EnqueuedAt", "StartedAt", "FinishedAt"};
    static const char *const codes[2][3] = {
        {"invalid_task_after_enqueued_at", "invalid_task_after_started_at", "invalid_task_after_finished_at"},
        {"invalid_task_before_enqueued_at", "invalid_task_before_started_at", "invalid_task_before_finished_at"}};
    for (int i = 0; i < 3; i++) {
        for (int b = 0; b < 2; b++) {
            char param[32];
            snprintf(param, sizeof param, "%s%s", b ? "before" : "after", names[i]);
            const char *v = gw_arg(req, param);
            int64_t *slot = b ? &f->before[i] : &f->after[i];
            *slot = -1;
            if (v && strcmp(v, "*") != 0 && mr_parse_time(v, slot)) {
                mr_error_invalid(err, codes[b][i], "`%.100s` is an invalid date-time. It should follow the RFC 3339 format "
                                                   "to represents a date or datetime.", v);
                return -1;
            }
        }
    }
    return 0;
}

static void task_filter_clear(struct task_filter *f)
{
    json_decref(f->uids);
    json_decref(f->statuses);
    json_decref(f->types);
    json_decref(f->index_uids);
    json_decref(f->canceled_by);
    json_decref(f->batch_uids);
}

static int count_arg(const gw_request *req, const char *name, long long def, long long *out, const char *code,
                     mr_error *err)
{
    const char *v = gw_arg(req, name);
    *out = def;
    return v ? parse_count(v, name, out, code, err) : 0;
}

/* Lists the task views that match the request's filters, each as shape makes it (new reference;
 * NULL: not listed), newest first unless reversed. Tasks and batches share their uids. */
static void list_views(gw *g, const gw_request *req, gw_response *res, json_t *(*shape)(const json_t *view))
{
    mr_error err;
    struct task_filter f;
    long long limit, from;
    int64_t count = mr_meta_task_count(g->meta);
    if (task_filter_parse(req, &f, &err) || count_arg(req, "limit", 20, &limit, "invalid_task_limit", &err) ||
        count_arg(req, "from", count - 1, &from, "invalid_task_from", &err)) {
        gw_reply_error(res, &err);
        task_filter_clear(&f);
        return;
    }
    int reverse = gw_arg(req, "reverse") && strcmp(gw_arg(req, "reverse"), "true") == 0;
    json_t *results = json_array();
    json_int_t total = 0, next = -1;
    /* Uids are dense (task offsets), newest first unless reversed; "total" counts every match. */
    for (int64_t k = 0; k < count; k++) {
        int64_t uid = reverse ? k : count - 1 - k;
        json_t *task = mr_meta_task(g->meta, uid);
        json_t *view = task ? gw_task_view(g, task) : NULL;
        json_decref(task);
        json_t *shown = view && task_matches(&f, view) && task_visible(req, view) ? shape(view) : NULL;
        if (shown) {
            total++;
            int in_range = reverse ? !gw_arg(req, "from") || uid >= from : uid <= from;
            if (in_range && json_array_size(results) < (size_t)limit)
                json_array_append(results, shown);
            else if (in_range && next < 0)
                next = uid;
        }
        json_decref(shown);
        json_decref(view);
    }
    json_t *first = json_array_get(results, 0);
    gw_reply(res, 200, json_pack("{s:o, s:I, s:I, s:O, s:o}", "results", results, "total", total, "limit",
                                 (json_int_t)limit, "from", first ? json_object_get(first, "uid") : json_null(), "next",
                                 next >= 0 ? json_integer(next) : json_null()));
    task_filter_clear(&f);
}

static json_t *as_task(const json_t *view)
{
    return json_incref((json_t *)view);
}

void gw_route_tasks_list(gw *g, const gw_request *req, gw_response *res)
{
    list_views(g, req, res, as_task);
}

void gw_route_batches_list(gw *g, const gw_request *req, gw_response *res)
{
    list_views(g, req, res, mr_task_batch_view);
}

void gw_route_batch_get(gw *g, const gw_request *req, gw_response *res)
{
    mr_error err;
    long long uid;
    if (parse_count(req->captures[0], "batchUid", &uid, "invalid_batch_uids", &err)) {
        gw_reply_error(res, &err);
        return;
    }
    json_t *task = mr_meta_task(g->meta, uid);
    json_t *view = task && task_visible(req, task) ? gw_task_view(g, task) : NULL;
    json_t *batch = view ? mr_task_batch_view(view) : NULL;
    if (batch) {
        gw_reply(res, 200, batch);
    } else {
        mr_error_set(&err, "batch_not_found", "Batch `%lld` not found.", uid);
        gw_reply_error(res, &err);
    }
    json_decref(view);
    json_decref(task);
}

/* ---- POST /tasks/cancel and DELETE /tasks: both take the task filters and need one ---- */

static const char *const selection_params[] = {"uids", "batchUids", "statuses", "types", "indexUids", "canceledBy",
                                               "beforeEnqueuedAt", "afterEnqueuedAt", "beforeStartedAt",
                                               "afterStartedAt", "beforeFinishedAt", "afterFinishedAt"};

/* The filter of a cancel or a deletion (what: "cancel" or "delete"), with Meilisearch's answer
 * when none is given. Returns 0 or -1 with err; text gets the filter as a query string. */
static int selection_parse(const gw_request *req, const char *what, struct task_filter *f, char *text, size_t len,
                           mr_error *err)
{
    int given = 0;
    for (size_t i = 0; i < sizeof selection_params / sizeof selection_params[0]; i++)
        given |= gw_arg(req, selection_params[i]) != NULL;
    /* as a node says it: the query string as the client sent it */
    snprintf(text, len, "?%s", req->query ? req->query : "");
    memset(f, 0, sizeof *f);
    if (!given) {
        mr_error_invalid(err, "missing_task_filters",
                         "Query parameters to filter the tasks to %s are missing. Available query parameters are: "
                         "`uids`, `indexUids`, `statuses`, `types`, `canceledBy`, `beforeEnqueuedAt`, "
                         "`afterEnqueuedAt`, `beforeStartedAt`, `afterStartedAt`, `beforeFinishedAt`, "
                         "`afterFinishedAt`.", what);
        return -1;
    }
    return task_filter_parse(req, f, err);
}

/* Calls each(view, ctx) for every visible task the filter matches, oldest first. */
static void each_selected(gw *g, const gw_request *req, const struct task_filter *f,
                          void (*each)(const json_t *view, void *ctx), void *ctx)
{
    int64_t count = mr_meta_task_count(g->meta);
    for (int64_t uid = 0; uid < count; uid++) {
        json_t *task = mr_meta_task(g->meta, uid);
        json_t *view = task ? gw_task_view(g, task) : NULL;
        json_decref(task);
        if (view && task_matches(f, view) && task_visible(req, view))
            each(view, ctx);
        json_decref(view);
    }
}

static void add_cancelable(const json_t *view, void *ctx)
{
    const char *status = json_string_value(json_object_get(view, "status"));
    if (strcmp(status, "enqueued") == 0 || strcmp(status, "processing") == 0)
        json_array_append(ctx, json_object_get(view, "uid"));
}

/* Canceling: the tasks that match and have not ended. Whether each is canceled is decided by
 * the ingest workers holding its shards' leases (meta.h, vote/): only if no replica has begun to
 * apply any part of it; then none ever will, a replica rebuilt later included. */
void gw_route_tasks_cancel(gw *g, const gw_request *req, gw_response *res)
{
    mr_error err;
    struct task_filter f;
    char filter_text[1024];
    if (selection_parse(req, "cancel", &f, filter_text, sizeof filter_text, &err)) {
        gw_reply_error(res, &err);
        task_filter_clear(&f);
        return;
    }
    json_t *cancels = json_array();
    each_selected(g, req, &f, add_cancelable, cancels);
    task_filter_clear(&f);
    json_t *task = mr_task_new(NULL, "taskCancelation",
                               json_pack("{s:I, s:n, s:s}", "matchedTasks", (json_int_t)json_array_size(cancels),
                                         "canceledTasks", "originalFilter", filter_text));
    json_object_set_new(task, "cancels", cancels);
    if (gw_produce_task(g, NULL, 0, task, res) == 0)
        res->status = 200; /* Meilisearch answers 200, not 202, to the routes that act on tasks */
    json_decref(task);
}

struct deletion {
    json_t *ranges;
    json_int_t matched, deleted, run_first, run_last;
};

static void add_deletable(const json_t *view, void *ctx)
{
    struct deletion *d = ctx;
    json_int_t uid = json_integer_value(json_object_get(view, "uid"));
    d->matched++;
    if (!mr_task_finished(view))
        return;
    d->deleted++;
    if (d->run_first >= 0 && d->run_last == uid - 1) {
        d->run_last = uid;
        return;
    }
    if (d->run_first >= 0)
        json_array_append_new(d->ranges, json_pack("[I, I]", d->run_first, d->run_last));
    d->run_first = d->run_last = uid;
}

static void add_unfinished(const json_t *view, void *ctx)
{
    if (!mr_task_finished(view))
        json_array_append(ctx, json_object_get(view, "uid"));
}

/* A node processes a deletion after the tasks enqueued before it, so a client that deletes the
 * task it has just enqueued sees that one go too. Tasks end later here than on a node: the
 * deletion first waits, up to task_deletion_wait_ms, for the matched tasks under way to end. */
static void await_matched(gw *g, const gw_request *req, const struct task_filter *f)
{
    json_t *pending = json_array();
    each_selected(g, req, f, add_unfinished, pending);
    int64_t deadline = mr_now_ms() + g->cfg->task_deletion_wait_ms;
    while (json_array_size(pending) && mr_now_ms() < deadline) {
        struct timespec pause = {0, 20 * 1000 * 1000};
        nanosleep(&pause, NULL);
        for (size_t i = json_array_size(pending); i-- > 0;) {
            json_t *task = mr_meta_task(g->meta, json_integer_value(json_array_get(pending, i)));
            json_t *view = task ? gw_task_view(g, task) : NULL;
            if (!view || mr_task_finished(view))
                json_array_remove(pending, i);
            json_decref(view);
            json_decref(task);
        }
    }
    json_decref(pending);
}

/* Deleting tasks: the finished ones among the matches leave the history. The tasks topic is
 * append-only, so the deletion is a metadata record of uid ranges that every gateway forgets. */
void gw_route_tasks_delete(gw *g, const gw_request *req, gw_response *res)
{
    mr_error err;
    struct task_filter f;
    char filter_text[1024];
    if (selection_parse(req, "delete", &f, filter_text, sizeof filter_text, &err)) {
        gw_reply_error(res, &err);
        task_filter_clear(&f);
        return;
    }
    await_matched(g, req, &f);
    struct deletion d = {.ranges = json_array(), .run_first = -1, .run_last = -1};
    each_selected(g, req, &f, add_deletable, &d);
    task_filter_clear(&f);
    if (d.run_first >= 0)
        json_array_append_new(d.ranges, json_pack("[I, I]", d.run_first, d.run_last));
    json_t *task = mr_task_new(NULL, "taskDeletion",
                               json_pack("{s:I, s:I, s:s}", "matchedTasks", d.matched, "deletedTasks", d.deleted,
                                         "originalFilter", filter_text));
    char key[64];
    snprintf(key, sizeof key, "deleted-tasks/%" PRId64, mr_now_ms());
    json_t *record = json_pack("{s:o}", "ranges", d.ranges);
    if (json_array_size(json_object_get(record, "ranges")) && mr_meta_put(g->meta, g->producer, key, record, 1, &err))
        gw_reply_error(res, &err);
    else if (gw_produce_task(g, NULL, 0, task, res) == 0)
        res->status = 200;
    json_decref(record);
    json_decref(task);
}
