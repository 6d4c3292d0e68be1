/* gw_write.c: producing writes: records to an incarnation's partitions, then the task that
 * covers them, and the create-index records that must come first in every partition. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "alloc.h"
#include "gw.h"
#include "kafka.h"
#include "record.h"
#include "task.h"
#include "util.h"

void gw_topic_of(char *out, size_t outlen, const char *prefix, const char *storage)
{
    snprintf(out, outlen, "%s%s", prefix, storage);
}

const mr_index *gw_write_begin(gw *g, const gw_request *req, const char *uid, int create, gw_write *w,
                               mr_error *err)
{
    for (int attempt = 0; attempt < 2; attempt++) {
        pthread_rwlock_rdlock(&g->writes);
        w->locked = 1;
        w->topo = mr_topology_acquire(mr_meta_topology(g->meta));
        const mr_index *ix = mr_topology_find(w->topo, uid);
        if (ix)
            return ix;
        gw_write_end(g, w);
        if (!create || !gw_may_act(req, "indexes.create") || attempt > 0)
            break;
        if (gw_create_implicitly(g, uid, err))
            return NULL;
    }
    /* no index, or it is gone again at once (a concurrent deletion) */
    mr_error_set(err, "index_not_found", "Index `%.200s` not found.", uid);
    return NULL;
}

void gw_write_end(gw *g, gw_write *w)
{
    if (w->topo)
        mr_topology_release(mr_meta_topology(g->meta), w->topo);
    if (w->locked)
        pthread_rwlock_unlock(&g->writes);
    *w = (gw_write){0};
}

int gw_produce_task(gw *g, mr_produce_msg *msgs, size_t n, json_t *task, gw_response *res)
{
    mr_error err;
    /* A task follows the storage it wrote to, which later swaps or deletions don't change. */
    const char *index_uid = json_string_value(json_object_get(task, "indexUid"));
    if (index_uid && !json_object_get(task, "storage")) {
        mr_topology *topo = mr_topology_acquire(mr_meta_topology(g->meta));
        const mr_index *ix = mr_topology_find(topo, index_uid);
        if (ix)
            json_object_set_new(task, "storage", json_string(ix->storage));
        mr_topology_release(mr_meta_topology(g->meta), topo);
    }
    if (n && mr_produce_all(g->producer, msgs, n, &err)) {
        gw_reply_error(res, &err);
        return -1;
    }
    /* The task covers, per partition, the range of offsets this write produced. */
    int64_t first[MR_MAX_SHARDS], last[MR_MAX_SHARDS];
    for (size_t s = 0; s < MR_MAX_SHARDS; s++)
        first[s] = last[s] = -1;
    for (size_t i = 0; i < n; i++) {
        int32_t p = msgs[i].partition;
        if (first[p] < 0 || msgs[i].offset < first[p])
            first[p] = msgs[i].offset;
        if (msgs[i].offset > last[p])
            last[p] = msgs[i].offset;
    }
    for (uint32_t s = 0; s < MR_MAX_SHARDS; s++)
        if (first[s] >= 0)
            mr_task_add_part(task, s, first[s], last[s]);
    int64_t uid;
    if (mr_meta_add_task(g->meta, g->producer, task, &uid, &err)) {
        gw_reply_error(res, &err);
        return -1;
    }
    gw_reply(res, 202, mr_task_summary(uid, task));
    return 0;
}

/* One record per partition of ix's index topic, each carrying value under op. Returns 0 or -1
 * with err; offsets (if not NULL, ix->shard_count entries) get where each landed. */
static int produce_everywhere(gw *g, const mr_index *ix, enum mr_op op, const json_t *value, mr_produce_msg **out,
                              mr_error *err)
{
    char topic[300];
    gw_topic_of(topic, sizeof topic, MR_TOPIC_INDEX_PREFIX, ix->storage);
    char *text = json_dumps(value, JSON_COMPACT);
    mr_produce_msg *msgs = mr_calloc(ix->shard_count, sizeof *msgs);
    for (uint32_t s = 0; s < ix->shard_count; s++)
        msgs[s] = (mr_produce_msg){.topic = topic, .partition = (int32_t)s, .value = text, .value_len = strlen(text),
                                   .headers = mr_headers_op(mr_op_name(op))};
    int rc = mr_produce_all(g->producer, msgs, ix->shard_count, err);
    free(text);
    for (uint32_t s = 0; s < ix->shard_count; s++)
        msgs[s].topic = NULL; /* points into this frame */
    if (out && rc == 0)
        *out = msgs;
    else
        free(msgs);
    return rc;
}

int gw_produce_control(gw *g, const mr_index *ix, enum mr_op op, const json_t *value, json_t *task,
                       gw_response *res)
{
    mr_error err;
    mr_produce_msg *msgs = NULL;
    if (gw_ready_storage(g, ix, &err) || produce_everywhere(g, ix, op, value, &msgs, &err)) {
        gw_reply_error(res, &err);
        return -1;
    }
    if (!json_object_get(task, "storage"))
        json_object_set_new(task, "storage", json_string(ix->storage));
    for (uint32_t s = 0; s < ix->shard_count; s++)
        mr_task_add_part(task, s, msgs[s].offset, msgs[s].offset);
    free(msgs);
    return gw_produce_task(g, NULL, 0, task, res);
}

void gw_failed_task(gw *g, const char *index_uid, const char *type, json_t *details, const mr_error *why,
                    gw_response *res)
{
    json_t *task = mr_task_new(index_uid, type, details);
    json_object_set_new(task, "error", mr_error_json(why));
    gw_produce_task(g, NULL, 0, task, res);
    json_decref(task);
}

/* Whether every partition of the topic has a record; -1 if Kafka didn't say. */
static int partitions_started(gw *g, const mr_index *ix, int *started)
{
    int64_t *ends = mr_calloc(ix->shard_count, sizeof *ends);
    mr_kafka_index_ends(g->producer, ix->storage, ix->shard_count, ends, 2000);
    int rc = 0;
    for (uint32_t s = 0; s < ix->shard_count; s++) {
        if (ends[s] < 0)
            rc = -1;
        started[s] = ends[s] > 0;
    }
    free(ends);
    return rc;
}

int gw_ready_storage(gw *g, const mr_index *ix, mr_error *err)
{
    pthread_mutex_lock(&g->ready_lock);
    int rc = 0;
    if (json_object_get(g->ready, ix->storage))
        goto out;
    char topic[300], why[512], segment[24];
    snprintf(segment, sizeof segment, "%ld", g->cfg->history_segment_bytes);
    /* Kafka frees the history below a cut a whole segment at a time: its default of 1 GiB would
     * keep most of a small index's history on disk long after its checkpoint. */
    const char *const retention[] = {"retention.ms", "-1", "cleanup.policy", "delete", "segment.bytes", segment, NULL};
    gw_topic_of(topic, sizeof topic, MR_TOPIC_INDEX_PREFIX, ix->storage);
    int *started = mr_calloc(ix->shard_count, sizeof *started);
    int made = mr_kafka_create_topic(g->producer, topic, (int)ix->shard_count, retention, 10000, why, sizeof why);
    /* a topic this call made is empty; one that was there may have records already */
    if (made < 0 || (made == 1 && partitions_started(g, ix, started))) {
        mr_error_set(err, "miroir_kafka_unavailable", "The index's topic could not be made ready: %.300s",
                     made < 0 ? why : "Kafka did not give its partitions' ends");
        free(started);
        rc = -1;
        goto out;
    }
    /* A partition already written to starts with a create-index record (the first writer
     * produced one before anything else), or with a direct producer's record, which makes the
     * node create the shard index itself. Two gateways may both write one: the second is a no-op. */
    json_t *payload = json_pack("{s:s?}", "primaryKey", ix->primary_key[0] ? ix->primary_key : NULL);
    char *text = json_dumps(payload, JSON_COMPACT);
    mr_produce_msg *msgs = mr_calloc(ix->shard_count, sizeof *msgs);
    size_t n = 0;
    for (uint32_t s = 0; s < ix->shard_count; s++)
        if (!started[s])
            msgs[n++] = (mr_produce_msg){.topic = topic, .partition = (int32_t)s, .value = text,
                                         .value_len = strlen(text),
                                         .headers = mr_headers_op(mr_op_name(MR_OP_CREATE_INDEX))};
    rc = n ? mr_produce_all(g->producer, msgs, n, err) : 0;
    if (rc == 0)
        json_object_set_new(g->ready, ix->storage, json_true());
    free(msgs);
    free(text);
    json_decref(payload);
    free(started);
out:
    pthread_mutex_unlock(&g->ready_lock);
    return rc;
}
