/* task.c: task records, the facts the metadata knows of them, and their derived view. */
#include "task.h"

#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "alloc.h"
#include "util.h"

json_t *mr_task_new(const char *index_uid, const char *type, json_t *details)
{
    char now[48];
    mr_now_rfc3339(now, sizeof now);
    return json_pack("{s:s?, s:s, s:s, s:o, s:[]}", "indexUid", index_uid, "type", type, "enqueuedAt", now, "details",
                     details ? details : json_object(), "parts");
}

void mr_task_add_part(json_t *task, uint32_t shard, int64_t first, int64_t last)
{
    json_array_append_new(json_object_get(task, "parts"),
                          json_pack("[i, I, I]", (int)shard, (json_int_t)first, (json_int_t)last));
}

json_t *mr_task_summary(int64_t uid, const json_t *task)
{
    return json_pack("{s:I, s:O, s:s, s:O, s:O}", "taskUid", (json_int_t)uid, "indexUid",
                     json_object_get(task, "indexUid"), "status", "enqueued", "type", json_object_get(task, "type"),
                     "enqueuedAt", json_object_get(task, "enqueuedAt"));
}

void mr_iso_duration(char *out, size_t outlen, int64_t ns)
{
    if (ns < 0)
        ns = 0;
    int64_t secs = ns / 1000000000, nanos = ns % 1000000000, days = secs / 86400;
    secs -= days * 86400;
    size_t n = (size_t)snprintf(out, outlen, "P");
    if (days && n < outlen)
        n += (size_t)snprintf(out + n, outlen - n, "%" PRId64 "D", days);
    if ((secs || nanos || !days) && n < outlen) {
        if (nanos == 0)
            snprintf(out + n, outlen - n, "T%" PRId64 "S", secs);
        else if (nanos % 1000000 == 0)
            snprintf(out + n, outlen - n, "T%" PRId64 ".%03" PRId64 "S", secs, nanos / 1000000);
        else if (nanos % 1000 == 0)
            snprintf(out + n, outlen - n, "T%" PRId64 ".%06" PRId64 "S", secs, nanos / 1000);
        else
            snprintf(out + n, outlen - n, "T%" PRId64 ".%09" PRId64 "S", secs, nanos);
    }
}

/* ---------------------------------------------------------------- facts */

/* Where a dropped incarnation's shard was deleted (-1: not dropped, or no deletion recorded). */
static int64_t deleted_at(const mr_index *ix, const json_t *collected, uint32_t shard)
{
    if (ix)
        return ix->deleted && shard < ix->shard_count ? ix->shards[shard].deleted_at : -1;
    json_t *at = json_array_get(json_object_get(collected, "deletedAt"), shard);
    return json_is_integer(at) ? (int64_t)json_integer_value(at) : -1;
}

static void gather_part(mr_meta *m, const char *storage, const mr_index *ix, const json_t *collected,
                        const json_t *part, mr_part_facts *pf)
{
    uint32_t shard = (uint32_t)json_integer_value(json_array_get(part, 0));
    int64_t first = json_integer_value(json_array_get(part, 1));
    int64_t last = json_integer_value(json_array_get(part, 2));
    int64_t deletion = deleted_at(ix, collected, shard);
    pf->after_deletion = deletion >= 0 && first > deletion;
    pf->ended = !ix || shard >= ix->shard_count;
    if (pf->ended)
        return;
    mr_commit c;
    mr_meta_commit(m, storage, shard, &c);
    pf->committed = c.offset;
    snprintf(pf->committed_at, sizeof pf->committed_at, "%s", c.at);
    pf->started = c.offset > first;
    for (size_t r = 0; r < ix->shards[shard].count && !pf->started; r++)
        pf->started = mr_meta_applied(m, storage, shard, &ix->shards[shard].replicas[r], NULL, 0) > first;
    pf->error = mr_meta_dlq_error(m, storage, shard, first, last, &pf->dead);
    pf->removed = first == last ? mr_meta_removed(m, storage, shard, first) : -1;
    pf->removed_known = pf->removed >= 0;
}

void mr_task_gather(mr_meta *m, const json_t *task, mr_task_facts *f)
{
    memset(f, 0, sizeof *f);
    int64_t uid = json_integer_value(json_object_get(task, "uid"));
    f->canceled_by = mr_meta_canceled_by(m, uid);
    if (f->canceled_by >= 0) {
        json_t *cancel = mr_meta_task(m, f->canceled_by);
        const char *at = json_string_value(json_object_get(cancel, "enqueuedAt"));
        snprintf(f->canceled_at, sizeof f->canceled_at, "%s", at ? at : "");
        json_decref(cancel);
    }
    size_t i;
    json_t *t;
    json_array_foreach(json_object_get(task, "cancels"), i, t) {
        int d = mr_meta_cancel_decision(m, uid, json_integer_value(t));
        f->canceled_tasks += d == 1;
        f->deciding |= d == -1;
    }
    json_t *parts = json_object_get(task, "parts");
    f->part_count = json_array_size(parts);
    f->parts = mr_calloc(f->part_count, sizeof *f->parts);
    const char *storage = json_string_value(json_object_get(task, "storage"));
    if (!storage) { /* a task that wrote nothing anywhere: all its parts are over */
        for (size_t k = 0; k < f->part_count; k++)
            f->parts[k].ended = 1;
        return;
    }
    mr_topology_holder *holder = mr_meta_topology(m);
    mr_topology *topo = mr_topology_acquire(holder);
    const mr_index *ix = mr_topology_find_storage(topo, storage);
    json_t *collected = ix ? NULL : mr_meta_collected(m, storage);
    json_t *part;
    json_array_foreach(parts, i, part)
        gather_part(m, storage, ix, collected, part, &f->parts[i]);
    json_decref(collected);
    mr_topology_release(holder, topo);
}

void mr_task_facts_clear(mr_task_facts *f)
{
    for (size_t i = 0; i < f->part_count; i++)
        json_decref(f->parts[i].error);
    free(f->parts);
    memset(f, 0, sizeof *f);
}

/* ---------------------------------------------------------------- the view */

enum status { ENQUEUED, PROCESSING, SUCCEEDED, FAILED, CANCELED };
static const char *const status_names[] = {"enqueued", "processing", "succeeded", "failed", "canceled"};

/* Walks the parts: their status, the dead letters and the time the last one was done. */
static enum status parts_status(const json_t *task, const mr_task_facts *f, json_t **error, size_t *dead,
                                char *finished, size_t finlen)
{
    size_t done = 0, started = 0, after_deletion = 0;
    size_t i;
    json_t *part;
    json_array_foreach(json_object_get(task, "parts"), i, part) {
        const mr_part_facts *pf = &f->parts[i];
        int64_t last = json_integer_value(json_array_get(part, 2));
        int part_done = pf->ended || pf->after_deletion || pf->committed > last;
        done += part_done;
        started += pf->started || part_done;
        after_deletion += pf->after_deletion;
        *dead += pf->dead;
        if (pf->error && !*error)
            *error = json_deep_copy(pf->error);
        if (part_done && strcmp(pf->committed_at, finished) > 0)
            snprintf(finished, finlen, "%s", pf->committed_at);
    }
    if (done < f->part_count)
        return started ? PROCESSING : ENQUEUED;
    if (!*error && after_deletion) {
        /* written to an incarnation already deleted (two gateways raced): said, never lost silently */
        mr_error e;
        mr_error_set(&e, "index_not_found", "Index `%s` not found.",
                     json_string_value(json_object_get(task, "indexUid")) ? json_string_value(json_object_get(task, "indexUid")) : "");
        *error = mr_error_json(&e);
    }
    return *error ? FAILED : SUCCEEDED;
}

/* What a deletion by filter or of everything removed: the sum of its shards' counts, once every
 * shard has said (null until then, and for a part that never reached a node). */
static json_t *removed_by_parts(const mr_task_facts *f)
{
    json_int_t sum = 0;
    for (size_t i = 0; i < f->part_count; i++) {
        if (!f->parts[i].removed_known)
            return json_null();
        sum += f->parts[i].removed;
    }
    return f->part_count ? json_integer(sum) : json_null();
}

static json_t *view_details(const json_t *task, const mr_task_facts *f, enum status st, size_t dead)
{
    json_t *details = json_deep_copy(json_object_get(task, "details"));
    int ended = st >= SUCCEEDED;
    json_t *received = json_object_get(details, "receivedDocuments");
    /* The records around a dead letter are applied: a failed task says how many were. A task
     * that failed when it was written wrote nothing. */
    if (received)
        json_object_set_new(details, "indexedDocuments",
                            !ended ? json_null()
                            : st == CANCELED || json_object_get(task, "error")
                                ? json_integer(0)
                                : json_integer(json_integer_value(received) - (json_int_t)dead));
    /* Deletions by id report the valid ids given once done (a node would count those it found;
     * an invalid id names no document); deletions by filter or of everything can't know their
     * count here and stay null. */
    json_t *provided = json_object_get(details, "providedIds"), *valid = json_object_get(task, "validIds");
    if (json_integer_value(provided) > 0 && json_is_null(json_object_get(details, "deletedDocuments")))
        json_object_set_new(details, "deletedDocuments",
                            st == SUCCEEDED ? json_incref(valid ? valid : provided) : json_null());
    else if (provided && st == SUCCEEDED && json_is_null(json_object_get(details, "deletedDocuments")))
        json_object_set_new(details, "deletedDocuments", removed_by_parts(f));
    if (json_object_get(task, "cancels"))
        json_object_set_new(details, "canceledTasks", ended ? json_integer(f->canceled_tasks) : json_null());
    return details;
}

json_t *mr_task_view_of(const json_t *task, const mr_task_facts *f)
{
    const char *enqueued = json_string_value(json_object_get(task, "enqueuedAt"));
    json_t *error = json_deep_copy(json_object_get(task, "error"));
    size_t dead = 0;
    char finished[48] = "";
    enum status st;
    if (error)
        st = FAILED;
    else if (f->canceled_by >= 0)
        st = CANCELED;
    else if (json_object_get(task, "cancels"))
        st = f->deciding ? PROCESSING : SUCCEEDED;
    else
        st = parts_status(task, f, &error, &dead, finished, sizeof finished);
    if (st == CANCELED)
        snprintf(finished, sizeof finished, "%s", f->canceled_at);
    if (st >= SUCCEEDED && (!finished[0] || strcmp(finished, enqueued ? enqueued : "") < 0))
        snprintf(finished, sizeof finished, "%s", enqueued ? enqueued : "");
    char duration[64] = "";
    int64_t from_ns, to_ns;
    if (st >= SUCCEEDED && enqueued && !mr_parse_time(enqueued, &from_ns) && !mr_parse_time(finished, &to_ns))
        mr_iso_duration(duration, sizeof duration, to_ns - from_ns);
    json_t *details = view_details(task, f, st, dead);
    /* each task is a batch of its own, from when it starts: Miroir applies every task alone */
    json_t *batch = st == ENQUEUED ? json_null() : json_incref(json_object_get(task, "uid"));
    return json_pack("{s:O, s:o, s:O?, s:s, s:O, s:o, s:o, s:o, s:s?, s:s?, s:s?, s:s?}", "uid",
                     json_object_get(task, "uid"), "batchUid", batch, "indexUid", json_object_get(task, "indexUid"), "status",
                     status_names[st], "type", json_object_get(task, "type"), "canceledBy",
                     f->canceled_by >= 0 && st == CANCELED ? json_integer(f->canceled_by) : json_null(), "details",
                     details, "error", error ? error : json_null(), "duration", duration[0] ? duration : NULL,
                     "enqueuedAt", enqueued, "startedAt", st == ENQUEUED ? NULL : enqueued, "finishedAt",
                     st >= SUCCEEDED ? finished : NULL);
}

json_t *mr_task_view(mr_meta *m, const json_t *task)
{
    json_t *done = mr_meta_task_done(m, json_integer_value(json_object_get(task, "uid")));
    if (done)
        return done;
    mr_task_facts f;
    mr_task_gather(m, task, &f);
    json_t *view = mr_task_view_of(task, &f);
    mr_task_facts_clear(&f);
    return view;
}

json_t *mr_task_batch_view(const json_t *view)
{
    json_t *uid = json_object_get(view, "batchUid");
    const char *status = json_string_value(json_object_get(view, "status"));
    const char *type = json_string_value(json_object_get(view, "type"));
    if (!json_is_integer(uid) || !status || !type)
        return NULL;
    json_t *index = json_object_get(view, "indexUid"), *indexes = json_object();
    if (json_is_string(index))
        json_object_set_new(indexes, json_string_value(index), json_integer(1));
    json_t *stats = json_pack("{s:i, s:{s:i}, s:{s:i}, s:o, s:{}}", "totalNbTasks", 1, "status", status, 1, "types",
                              type, 1, "indexUids", indexes, "progressTrace");
    int running = strcmp(status, "processing") == 0;
    json_t *duration = json_object_get(view, "duration"), *finished = json_object_get(view, "finishedAt");
    return json_pack("{s:O, s:o, s:O, s:o, s:O, s:O, s:O, s:s}", "uid", uid, "progress",
                     running ? json_pack("{s:[], s:f}", "steps", "percentage", 0.0) : json_null(), "details",
                     json_object_get(view, "details"), "stats", stats, "duration", duration ? duration : json_null(),
                     "startedAt", json_object_get(view, "startedAt"), "finishedAt", finished ? finished : json_null(),
                     "batchStrategy", "one task per batch: Miroir applies each task on its own");
}

int mr_task_finished(const json_t *view)
{
    const char *s = json_string_value(json_object_get(view, "status"));
    return s && (strcmp(s, "succeeded") == 0 || strcmp(s, "failed") == 0 || strcmp(s, "canceled") == 0);
}
