/* gw_lifecycle.c: the index life cycle: incarnations are created, deleted, swapped and collected.
 *
 * Every creation of a uid is a new incarnation with storage of its own ("<uid>-<generation>": its
 * topics and shard indexes), so a uid can be deleted and created again at once, any number of
 * times, and nothing of an earlier life reaches a later one. Deleting writes a delete-index
 * record into every partition of the incarnation (after every write produced before it), records
 * the incarnation as dropped, and frees the uid. The janitor, a thread of every gateway, makes new
 * incarnations' topics ready, collects a dropped incarnation once every replica applied its
 * deletion, and records tasks' ends.
 *
 * Within one gateway, g->writes orders writes against deletions and swaps: a write produced
 * while its incarnation was live comes before the delete-index records. Between gateways, a write
 * racing a deletion can land after them; its task then fails with index_not_found (task.c). */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "alloc.h"
#include "gw.h"
#include "kafka.h"
#include "plan.h"
#include "record.h"
#include "task.h"
#include "util.h"

#define JANITOR_ROUND_MS 200

/* Writes index/<uid> = {"generation", "live"} and waits until this gateway has read it back.
 * g->defs held. */
static int put_uid_record(gw *g, const char *uid, uint64_t generation, const mr_index *live, mr_error *err)
{
    json_t *rec = json_pack("{s:I, s:o}", "generation", (json_int_t)generation, "live",
                            live ? mr_index_to_json(live) : json_null());
    char key[MR_INDEX_UID_MAX + 16];
    snprintf(key, sizeof key, "index/%s", uid);
    int rc = mr_meta_put(g->meta, g->producer, key, rec, 1, err);
    json_decref(rec);
    return rc;
}

static int make_incarnation(gw *g, const char *uid, const char *primary_key, long shards, long rf, mr_index *ix,
                            mr_error *err)
{
    uint64_t generation = mr_meta_generation(g->meta, uid) + 1;
    *ix = (mr_index){.shard_count = (uint32_t)shards, .rf = (uint32_t)rf, .generation = generation,
                     .max_total_hits = g->cfg->default_max_total_hits, .max_values_per_facet = 100};
    snprintf(ix->uid, sizeof ix->uid, "%s", uid);
    mr_storage_name(ix->storage, sizeof ix->storage, uid, generation);
    snprintf(ix->primary_key, sizeof ix->primary_key, "%s", primary_key ? primary_key : "");
    mr_now_rfc3339(ix->created_at, sizeof ix->created_at);
    snprintf(ix->updated_at, sizeof ix->updated_at, "%s", ix->created_at);
    mr_topology *topo = mr_topology_acquire(mr_meta_topology(g->meta));
    json_t *plan = mr_meta_singleton(g->meta, "plan");
    mr_plan_new_index(topo, ix, json_object_get(plan, "weights"));
    json_decref(plan);
    mr_topology_release(mr_meta_topology(g->meta), topo);
    int rc = put_uid_record(g, uid, generation, ix, err);
    if (rc)
        mr_index_clear(ix);
    else
        gw_janitor_poke(g);
    return rc;
}

int gw_check_uid(const char *uid, mr_error *err)
{
    if (mr_index_uid_valid(uid))
        return 0;
    mr_error_set(err, "invalid_index_uid",
                 "`%.200s` is not a valid index uid. Index uid can be an integer or a string containing only "
                 "alphanumeric characters, hyphens (-) and underscores (_), and can not be more than %d bytes.",
                 uid, MR_INDEX_UID_MAX);
    return -1;
}

static int check_create(gw *g, const char *uid, long shards, long rf, mr_error *err)
{
    if (gw_check_uid(uid, err))
        return -1;
    if (shards < 1 || shards > MR_MAX_SHARDS) {
        mr_error_set(err, "miroir_invalid_shards", "`shards` must be an integer from 1 to %d.", MR_MAX_SHARDS);
        return -1;
    }
    size_t active = gw_default_rf(g, NULL);
    if (rf < 1 || rf > 3 || (size_t)rf > active) {
        mr_error_set(err, "miroir_invalid_replication_factor",
                     "`replicationFactor` must be 1, 2 or 3 and at most the number of active nodes (%zu).", active);
        return -1;
    }
    return 0;
}

static int has_live(gw *g, const char *uid)
{
    mr_topology *topo = mr_topology_acquire(mr_meta_topology(g->meta));
    int live = mr_topology_find(topo, uid) != NULL;
    mr_topology_release(mr_meta_topology(g->meta), topo);
    return live;
}

int gw_create_index(gw *g, const char *uid, const char *primary_key, long shards, long rf, json_t **task_out,
                    mr_error *err)
{
    *task_out = NULL;
    if (check_create(g, uid, shards, rf, err))
        return -1;
    json_t *task = mr_task_new(uid, "indexCreation",
                               json_pack("{s:s?}", "primaryKey", primary_key && *primary_key ? primary_key : NULL));
    pthread_mutex_lock(&g->defs);
    int rc = 0;
    if (has_live(g, uid)) {
        /* Meilisearch enqueues the creation and fails the task; so do we. */
        mr_error e;
        mr_error_set(&e, "index_already_exists", "Index `%s` already exists.", uid);
        json_object_set_new(task, "error", mr_error_json(&e));
    } else {
        mr_index ix;
        rc = make_incarnation(g, uid, primary_key, shards, rf, &ix, err);
        if (rc == 0) {
            /* Its topic starts with a create-index record in every partition (gw_ready_storage):
             * the task is done once each shard applied its first record. */
            json_object_set_new(task, "storage", json_string(ix.storage));
            for (uint32_t s = 0; s < ix.shard_count; s++)
                mr_task_add_part(task, s, 0, 0);
            mr_index_clear(&ix);
        }
    }
    pthread_mutex_unlock(&g->defs);
    if (rc)
        json_decref(task);
    else
        *task_out = task;
    return rc;
}

int gw_create_implicitly(gw *g, const char *uid, mr_error *err)
{
    long rf;
    gw_default_rf(g, &rf);
    if (check_create(g, uid, 4, rf, err))
        return -1;
    pthread_mutex_lock(&g->defs);
    int rc = 0;
    if (!has_live(g, uid)) {
        mr_index ix;
        rc = make_incarnation(g, uid, NULL, 4, rf, &ix, err);
        if (rc == 0)
            mr_index_clear(&ix);
    }
    pthread_mutex_unlock(&g->defs);
    return rc;
}

/* Deleting: the delete-index records go first, so every write produced before them is in order;
 * then the drop is recorded, which is the moment the uid is free (a definition still naming the
 * incarnation live loses to it); then the uid's record says it has no live incarnation. */
void gw_delete_index(gw *g, const char *uid, gw_response *res)
{
    mr_error err;
    json_t *task = mr_task_new(uid, "indexDeletion", json_pack("{s:n}", "deletedDocuments"));
    pthread_rwlock_wrlock(&g->writes);
    pthread_mutex_lock(&g->defs);
    mr_topology *topo = mr_topology_acquire(mr_meta_topology(g->meta));
    const mr_index *live = mr_topology_find(topo, uid);
    mr_index dropped;
    json_t *payload = json_object();
    if (!live) {
        mr_error_set(&err, "index_not_found", "Index `%.200s` not found.", uid);
        json_object_set_new(task, "error", mr_error_json(&err));
        gw_produce_task(g, NULL, 0, task, res);
        goto out;
    }
    if (gw_produce_control(g, live, MR_OP_DELETE_INDEX, payload, task, res))
        goto out;
    mr_index_copy(&dropped, live);
    /* The task's parts are where the delete-index records landed. */
    size_t i;
    json_t *part;
    json_array_foreach(json_object_get(task, "parts"), i, part)
        dropped.shards[json_integer_value(json_array_get(part, 0))].deleted_at = json_integer_value(json_array_get(part, 1));
    dropped.deleted = 1;
    mr_now_rfc3339(dropped.updated_at, sizeof dropped.updated_at);
    json_t *def = mr_index_to_json(&dropped);
    char key[MR_STORAGE_MAX + 16];
    snprintf(key, sizeof key, "dropped/%s", dropped.storage);
    mr_error perr = {0};
    if (mr_meta_put(g->meta, g->producer, key, def, 1, &perr) ||
        put_uid_record(g, uid, mr_meta_generation(g->meta, uid), NULL, &perr))
        gw_reply_error(res, &perr); /* the deletion's task exists; retrying the request is safe */
    json_decref(def);
    mr_index_clear(&dropped);
    gw_janitor_poke(g);
out:
    json_decref(payload);
    mr_topology_release(mr_meta_topology(g->meta), topo);
    pthread_mutex_unlock(&g->defs);
    pthread_rwlock_unlock(&g->writes);
    json_decref(task);
}

int gw_update_definition(gw *g, const mr_index *ix, void (*update)(mr_index *, const void *), const void *arg,
                         mr_error *err)
{
    pthread_mutex_lock(&g->defs);
    mr_topology *topo = mr_topology_acquire(mr_meta_topology(g->meta));
    const mr_index *live = mr_topology_find(topo, ix->uid);
    int rc = 0;
    if (live && strcmp(live->storage, ix->storage) == 0) {
        mr_index copy;
        mr_index_copy(&copy, live);
        update(&copy, arg);
        mr_now_rfc3339(copy.updated_at, sizeof copy.updated_at);
        rc = put_uid_record(g, copy.uid, mr_meta_generation(g->meta, copy.uid), &copy, err);
        mr_index_clear(&copy);
    }
    mr_topology_release(mr_meta_topology(g->meta), topo);
    pthread_mutex_unlock(&g->defs);
    return rc;
}

void gw_set_primary_key(mr_index *ix, const void *pk)
{
    snprintf(ix->primary_key, sizeof ix->primary_key, "%s", (const char *)pk);
}

int gw_swap_definitions(gw *g, const json_t *defs, mr_error *err)
{
    char key[64];
    snprintf(key, sizeof key, "swap/%" PRId64, mr_now_ms());
    json_t *record = json_pack("{s:O}", "indexes", defs);
    /* the caller holds g->writes and g->defs: no write lands in a storage while it changes hands */
    int rc = mr_meta_put(g->meta, g->producer, key, record, 1, err);
    json_decref(record);
    return rc;
}

/* ---------------------------------------------------------------- the janitor */

void gw_janitor_poke(gw *g)
{
    pthread_mutex_lock(&g->janitor_lock);
    g->janitor_due = 1;
    pthread_cond_signal(&g->janitor_wake);
    pthread_mutex_unlock(&g->janitor_lock);
}

/* The inbox and dead-letter topics belong to the uid, not to one incarnation, so an upstream
 * producer (a Kafka Connect task, say) goes on writing to miroir.in.<uid> across a delete and a
 * create. Nobody's first write: made in the background, and kept. */
static void make_side_topics(gw *g, const mr_index *ix, json_t *made)
{
    if (json_object_get(made, ix->uid))
        return;
    static const char *const retention[] = {"retention.ms", "-1", "cleanup.policy", "delete", NULL};
    char topic[300], why[512];
    gw_topic_of(topic, sizeof topic, MR_TOPIC_INBOX_PREFIX, ix->uid);
    int rc = mr_kafka_create_topic(g->producer, topic, (int)ix->shard_count, retention, 10000, why, sizeof why);
    gw_topic_of(topic, sizeof topic, MR_TOPIC_DLQ_PREFIX, ix->uid);
    if (rc >= 0)
        rc = mr_kafka_create_topic(g->producer, topic, 1, retention, 10000, why, sizeof why);
    rc = rc < 0 ? -1 : 0;
    if (rc)
        mr_log("warn", "janitor", "%s", why);
    else
        json_object_set_new(made, ix->uid, json_true());
}

/* What a dropped incarnation still waits for before its storage can go: a replica that has not
 * applied its deletion yet ("n2 shard 3"), or NULL when nothing. */
static int collect_waits(gw *g, const mr_topology *t, const mr_index *ix, char *why, size_t len)
{
    for (uint32_t s = 0; s < ix->shard_count; s++) {
        const mr_shard *sh = &ix->shards[s];
        if (sh->deleted_at < 0)
            continue;
        for (size_t r = 0; r < sh->count; r++) {
            const mr_replica *rep = &sh->replicas[r];
            if ((rep->state != MR_REPLICA_READY && rep->state != MR_REPLICA_BUILDING) ||
                !mr_topology_member(t, rep->node))
                continue; /* never built, about to go, or its node left: nothing of it to delete */
            if (mr_meta_applied(g->meta, ix->storage, s, rep, NULL, 0) <= sh->deleted_at) {
                snprintf(why, len, "%s to apply the deletion of shard %u", rep->node, s);
                return 1;
            }
        }
    }
    return 0;
}

json_t *gw_collecting(gw *g)
{
    json_t *out = json_array();
    mr_topology *t = mr_topology_acquire(mr_meta_topology(g->meta));
    for (size_t i = 0; i < t->count; i++) {
        const mr_index *ix = &t->indexes[i];
        if (!ix->deleted)
            continue;
        char why[200] = "";
        int waits = collect_waits(g, t, ix, why, sizeof why);
        json_array_append_new(out, json_pack("{s:s, s:s, s:s}", "uid", ix->uid, "storage", ix->storage, "waitingFor",
                                             waits ? why : "collection"));
    }
    mr_topology_release(mr_meta_topology(g->meta), t);
    return out;
}

/* Everything of a dropped incarnation goes, but what its tasks need to say how they ended. */
static void collect(gw *g, const mr_index *ix)
{
    mr_error err = {0};
    json_t *deleted_at = json_array();
    for (uint32_t s = 0; s < ix->shard_count; s++)
        json_array_append_new(deleted_at, json_integer(ix->shards[s].deleted_at));
    json_t *record = json_pack("{s:s, s:i, s:o}", "uid", ix->uid, "shards", (int)ix->shard_count, "deletedAt", deleted_at);
    char key[MR_STORAGE_MAX + 32];
    snprintf(key, sizeof key, "collected/%s", ix->storage);
    int rc = mr_meta_put(g->meta, g->producer, key, record, 1, &err);
    json_decref(record);
    if (rc) {
        mr_log("warn", "janitor", "could not record %s as collected: %s", ix->storage, err.message);
        return;
    }
    /* the dropped record last, read back: the next round must not find this incarnation again */
    static const char *const gone[] = {"placement/", "dropped/"};
    for (size_t i = 0; i < 2; i++) {
        snprintf(key, sizeof key, "%s%s", gone[i], ix->storage);
        mr_meta_put(g->meta, g->producer, key, NULL, i == 1, &err);
    }
    pthread_mutex_lock(&g->ready_lock);
    json_object_del(g->ready, ix->storage);
    pthread_mutex_unlock(&g->ready_lock);
    json_t *rebuilds = mr_meta_rebuilds(g->meta);
    const char *k;
    json_t *v;
    size_t len = strlen(ix->storage);
    json_object_foreach(rebuilds, k, v) {
        if (strncmp(k, ix->storage, len) == 0 && k[len] == '/') {
            char full[MR_STORAGE_MAX + 200];
            snprintf(full, sizeof full, "rebuild/%s", k);
            mr_meta_put(g->meta, g->producer, full, NULL, 0, &err);
        }
    }
    json_decref(rebuilds);
    json_t *progress = mr_meta_progress_keys(g->meta, ix->storage);
    size_t i;
    json_t *entry;
    json_array_foreach(progress, i, entry)
        mr_meta_progress_tombstone(g->producer, (int32_t)json_integer_value(json_array_get(entry, 0)),
                                   json_string_value(json_array_get(entry, 1)));
    json_decref(progress);
    /* A storage's name is never reused, so nobody waits for its topic to be gone. */
    char topic[300], why[512];
    const char *prefixes[] = {MR_TOPIC_INDEX_PREFIX, MR_TOPIC_CHECKPOINT_PREFIX};
    for (size_t t = 0; t < 2; t++) {
        gw_topic_of(topic, sizeof topic, prefixes[t], ix->storage);
        if (mr_kafka_delete_topic(g->producer, topic, 0, why, sizeof why))
            mr_log("warn", "janitor", "%s", why);
    }
    rd_kafka_flush(g->producer, 2000);
    mr_log("info", "janitor", "collected %s, an incarnation of index %s", ix->storage, ix->uid);
}

/* A task's end is recorded once, by whichever gateway sees it first; recorded (uid -> true)
 * remembers what this janitor wrote until the follower has read it back. */
static void record_finished_tasks(gw *g, json_t *recorded)
{
    json_t *open = mr_meta_open_tasks(g->meta);
    json_t *still = json_object();
    mr_produce_msg *msgs = mr_calloc(json_array_size(open), sizeof *msgs);
    char (*keys)[48] = mr_calloc(json_array_size(open), sizeof *keys);
    size_t n = 0, i;
    json_t *uid;
    json_array_foreach(open, i, uid) {
        char key[32];
        snprintf(key, sizeof key, "%" JSON_INTEGER_FORMAT, json_integer_value(uid));
        if (json_object_get(recorded, key)) {
            json_object_set_new(still, key, json_true());
            continue;
        }
        json_t *task = mr_meta_task(g->meta, json_integer_value(uid));
        json_t *view = task ? mr_task_view(g->meta, task) : NULL;
        if (view && mr_task_finished(view)) {
            snprintf(keys[n], sizeof keys[n], "task-done/%s", key);
            char *text = json_dumps(view, JSON_COMPACT);
            msgs[n] = (mr_produce_msg){.topic = MR_TOPIC_META, .partition = 0, .key = keys[n],
                                       .key_len = strlen(keys[n]), .value = text, .value_len = strlen(text)};
            n++;
            json_object_set_new(still, key, json_true());
        }
        json_decref(view);
        json_decref(task);
    }
    mr_error err;
    if (n && mr_produce_all(g->producer, msgs, n, &err)) {
        mr_log("warn", "janitor", "could not record the end of %zu tasks: %s", n, err.message);
        json_object_clear(still); /* written again next round */
    }
    for (size_t k = 0; k < n; k++)
        free((void *)msgs[k].value);
    free(msgs);
    free(keys);
    json_object_clear(recorded);
    json_object_update(recorded, still);
    json_decref(still);
    json_decref(open);
}

static void janitor_round(gw *g, json_t *side_topics, json_t *recorded)
{
    mr_topology *t = mr_topology_acquire(mr_meta_topology(g->meta));
    for (size_t i = 0; i < t->count && !atomic_load(&g->stopping); i++) {
        const mr_index *ix = &t->indexes[i];
        mr_error err;
        if (!ix->deleted) {
            if (gw_ready_storage(g, ix, &err))
                mr_log("warn", "janitor", "index %s: %s", ix->uid, err.message);
            else
                make_side_topics(g, ix, side_topics);
            continue;
        }
        char why[200];
        if (!collect_waits(g, t, ix, why, sizeof why))
            collect(g, ix);
    }
    mr_topology_release(mr_meta_topology(g->meta), t);
    record_finished_tasks(g, recorded);
}

void *gw_janitor(void *arg)
{
    gw *g = arg;
    json_t *side_topics = json_object(), *recorded = json_object();
    while (!atomic_load(&g->stopping)) {
        janitor_round(g, side_topics, recorded);
        pthread_mutex_lock(&g->janitor_lock);
        if (!g->janitor_due) {
            struct timespec ts;
            clock_gettime(CLOCK_REALTIME, &ts);
            int64_t wake = (int64_t)ts.tv_nsec + (int64_t)JANITOR_ROUND_MS * 1000000;
            ts.tv_sec += wake / 1000000000;
            ts.tv_nsec = wake % 1000000000;
            pthread_cond_timedwait(&g->janitor_wake, &g->janitor_lock, &ts);
        }
        g->janitor_due = 0;
        pthread_mutex_unlock(&g->janitor_lock);
    }
    json_decref(side_topics);
    json_decref(recorded);
    return NULL;
}
