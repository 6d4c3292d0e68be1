/* task.c: task records and their derived status. */
#include "task.h"

#include <string.h>

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

enum progress { NOT_STARTED, STARTED, DONE };

/* Walks every part against the applied offsets of the ready replicas. */
static enum progress task_progress(mr_meta *m, const json_t *task, mr_node_live_fn live, void *live_ctx,
                                   json_t **error, size_t *dead, char *finished, size_t finlen)
{
    /* The storage the task wrote to: after a swap, its uid names another index. */
    const char *storage = json_string_value(json_object_get(task, "storage"));
    mr_topology_holder *holder = mr_meta_topology(m);
    mr_topology *topo = mr_topology_acquire(holder);
    const mr_index *ix = storage ? mr_topology_find_storage(topo, storage) : NULL;
    size_t parts_total = 0, parts_done = 0, replicas_started = 0;
    finished[0] = '\0';
    size_t i;
    json_t *part;
    json_array_foreach(json_object_get(task, "parts"), i, part) {
        uint32_t shard = (uint32_t)json_integer_value(json_array_get(part, 0));
        int64_t first = json_integer_value(json_array_get(part, 1));
        int64_t last = json_integer_value(json_array_get(part, 2));
        parts_total++;
        if (!ix || shard >= ix->shard_count) { /* the index is gone: nothing left to wait for */
            parts_done++;
            continue;
        }
        size_t ready = 0, done = 0;
        for (size_t r = 0; r < ix->shards[shard].count; r++) {
            const mr_replica *rep = &ix->shards[shard].replicas[r];
            if (rep->state != MR_REPLICA_READY || (live && !live(live_ctx, rep->node)))
                continue;
            ready++;
            char at[48];
            int64_t applied = mr_meta_applied(m, ix->storage, shard, rep, at, sizeof at);
            if (applied > last) {
                done++;
                if (strcmp(at, finished) > 0)
                    snprintf(finished, finlen, "%s", at);
            }
            if (applied > first)
                replicas_started++;
        }
        if (ready > 0 && done == ready) {
            parts_done++;
            json_t *e = mr_meta_dlq_error(m, ix->storage, shard, first, last, dead);
            if (e && !*error)
                *error = e;
            else
                json_decref(e);
        }
    }
    mr_topology_release(holder, topo);
    if (parts_done == parts_total)
        return DONE;
    return replicas_started || parts_done ? STARTED : NOT_STARTED;
}

json_t *mr_task_view(mr_meta *m, const json_t *task, mr_node_live_fn live, void *live_ctx)
{
    json_t *error = json_deep_copy(json_object_get(task, "error"));
    size_t dead = 0;
    char finished[48] = "";
    enum progress p = error ? DONE : task_progress(m, task, live, live_ctx, &error, &dead, finished, sizeof finished);
    const char *status = error ? "failed" : p == DONE ? "succeeded" : p == STARTED ? "processing" : "enqueued";
    json_t *enq = json_object_get(task, "enqueuedAt");
    json_t *details = json_deep_copy(json_object_get(task, "details"));
    json_t *received = json_object_get(details, "receivedDocuments");
    if (received)
        json_object_set_new(details, "indexedDocuments",
                            p == DONE ? json_integer(json_integer_value(received) - (json_int_t)dead) : json_null());
    /* Deletions by id report the ids given once done (a node would count those it found);
     * deletions by filter or of everything can't know their count here and stay null. */
    json_t *provided = json_object_get(details, "providedIds");
    if (json_integer_value(provided) > 0 && json_is_null(json_object_get(details, "deletedDocuments")))
        json_object_set_new(details, "deletedDocuments", p == DONE ? json_incref(provided) : json_null());
    if (!finished[0] && p == DONE)
        snprintf(finished, sizeof finished, "%s", json_string_value(enq));
    return json_pack("{s:O, s:n, s:O, s:s, s:O, s:n, s:o, s:o, s:n, s:O, s:O?, s:s?}", "uid", json_object_get(task, "uid"),
                     "batchUid", "indexUid", json_object_get(task, "indexUid"), "status", status, "type",
                     json_object_get(task, "type"), "canceledBy", "details", details, "error",
                     error ? error : json_null(), "duration", "enqueuedAt", enq, "startedAt",
                     p == NOT_STARTED ? NULL : enq, "finishedAt", p == DONE ? finished : NULL);
}
