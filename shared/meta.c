/* meta.c: follower and writer of the metadata topics. */
#include "meta.h"

#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "alloc.h"
#include "hrw.h"
#include "kafka.h"
#include "record.h"
#include "util.h"

struct mr_meta {
    rd_kafka_t *consumer;
    mr_topology_holder topology;
    uint32_t leases;
    pthread_mutex_t lock; /* guards everything below */
    pthread_cond_t progressed;
    uint64_t changes;      /* records applied so far, for mr_meta_wait_change */
    json_t *generations;   /* uid -> generation */
    json_t *dropped;       /* storage -> true: incarnations whose drop was recorded */
    json_t *collected;     /* storage -> {"uid", "shards", "deletedAt"} */
    json_t *applied;       /* "storage/shard/node" -> {"offset", "at", "incarnation"} */
    json_t *commits;       /* "storage/shard" -> {"offset", "at", "isr"} */
    json_t *placements;    /* storage -> {"createdAt", "placement"}: the rebalancer's placements */
    json_t *rebuilds;      /* "storage/shard/node" -> {"at"}: replicas to rebuild from the log */
    json_t *dlq;           /* "storage/shard" -> [[offset, error], …] */
    json_t *removed;       /* "storage/shard/offset" -> documents a filter or clear record removed */
    json_t *checkpoints;   /* "storage/shard" -> the newest complete checkpoint (history.h) */
    json_t *copies;        /* "storage/shard/node" -> the last copy from a peer into that replica */
    json_t *tasks;         /* "uid" -> task */
    json_t *done;          /* "uid" -> the finished view */
    json_t *deleted_tasks; /* [[first, last], …]: task uids deleted from the history */
    json_t *keys;          /* uid -> key record; replaced, never changed, so readers can keep one */
    json_t *singletons;    /* records of one key each: "features", "plan", "rebalance-request" */
    int keys_seeded;
    /* cancelation (see meta.h); holds and skips are derived from cancels, votes and tasks */
    json_t *cancels;  /* "cancel uid" -> [task uids] */
    json_t *votes;    /* "cancel/task/shard" -> held (bool) */
    json_t *canceled; /* "task uid" -> cancel uid */
    json_t *holds;    /* "storage/shard" -> first offset held */
    json_t *skips;    /* "storage/shard" -> [[first, last], …] canceled */
    uint64_t cancel_version;
    int64_t meta_next, tasks_next;
    int64_t *progress_next; /* per partition: past the last record read, or the end last seen */
};

/* ---------------------------------------------------------------- set-up */

static uint32_t topic_partitions(rd_kafka_t *rk, const char *topic)
{
    const struct rd_kafka_metadata *md = NULL;
    rd_kafka_topic_t *t = rd_kafka_topic_new(rk, topic, NULL);
    uint32_t n = 0;
    if (rd_kafka_metadata(rk, 0, t, &md, 5000) == RD_KAFKA_RESP_ERR_NO_ERROR) {
        if (md->topic_cnt == 1 && md->topics[0].err == RD_KAFKA_RESP_ERR_NO_ERROR)
            n = (uint32_t)md->topics[0].partition_cnt;
        rd_kafka_metadata_destroy(md);
    }
    rd_kafka_topic_destroy(t);
    return n;
}

mr_meta *mr_meta_new(const mr_config *cfg, char *err, size_t errlen)
{
    /* the progress topic is written in transactions: read only what they committed, and be told
     * where a partition ends, since a transaction's marker takes an offset no record has */
    static const char *const follower[] = {"isolation.level", "read_committed", "enable.partition.eof", "true", NULL};
    rd_kafka_t *consumer = mr_kafka_consumer(cfg, NULL, follower, err, errlen);
    if (!consumer)
        return NULL;
    static const char *const compacted[] = {"cleanup.policy", "compact", NULL};
    static const char *const forever[] = {"retention.ms", "-1", NULL};
    uint32_t leases = 0;
    if (mr_kafka_create_topic(consumer, MR_TOPIC_META, 1, compacted, 10000, err, errlen) < 0 ||
        mr_kafka_create_topic(consumer, MR_TOPIC_TASKS, 1, forever, 10000, err, errlen) < 0 ||
        mr_kafka_create_topic(consumer, MR_TOPIC_PROGRESS, (int)cfg->progress_partitions, compacted, 10000, err,
                              errlen) < 0) {
        rd_kafka_destroy(consumer);
        return NULL;
    }
    /* the topic, once made, decides: a changed configuration can't move every lease */
    if ((leases = topic_partitions(consumer, MR_TOPIC_PROGRESS)) == 0) {
        snprintf(err, errlen, "could not read the partitions of %s", MR_TOPIC_PROGRESS);
        rd_kafka_destroy(consumer);
        return NULL;
    }
    mr_meta *m = mr_calloc(1, sizeof *m);
    m->consumer = consumer;
    m->leases = leases;
    mr_topology_holder_init(&m->topology);
    pthread_mutex_init(&m->lock, NULL);
    pthread_cond_init(&m->progressed, NULL);
    json_t **objects[] = {&m->generations, &m->dropped, &m->collected, &m->applied, &m->commits, &m->placements,
                          &m->rebuilds, &m->dlq, &m->removed, &m->tasks, &m->done, &m->keys, &m->cancels, &m->votes,
                          &m->canceled, &m->holds, &m->skips, &m->singletons, &m->checkpoints, &m->copies};
    for (size_t i = 0; i < sizeof objects / sizeof objects[0]; i++)
        *objects[i] = json_object();
    m->deleted_tasks = json_array();
    m->progress_next = mr_calloc(leases, sizeof *m->progress_next);
    rd_kafka_topic_partition_list_t *parts = rd_kafka_topic_partition_list_new(2 + (int)leases);
    rd_kafka_topic_partition_list_add(parts, MR_TOPIC_META, 0)->offset = RD_KAFKA_OFFSET_BEGINNING;
    rd_kafka_topic_partition_list_add(parts, MR_TOPIC_TASKS, 0)->offset = RD_KAFKA_OFFSET_BEGINNING;
    for (uint32_t p = 0; p < leases; p++)
        rd_kafka_topic_partition_list_add(parts, MR_TOPIC_PROGRESS, (int32_t)p)->offset = RD_KAFKA_OFFSET_BEGINNING;
    rd_kafka_assign(m->consumer, parts);
    rd_kafka_topic_partition_list_destroy(parts);
    return m;
}

void mr_meta_free(mr_meta *m)
{
    if (!m)
        return;
    rd_kafka_assign(m->consumer, NULL);
    rd_kafka_consumer_close(m->consumer);
    rd_kafka_destroy(m->consumer);
    mr_topology_holder_destroy(&m->topology);
    json_t *objects[] = {m->generations, m->dropped, m->collected, m->applied, m->commits, m->placements,
                         m->rebuilds, m->dlq, m->removed, m->tasks, m->done, m->keys, m->cancels, m->votes, m->canceled,
                         m->holds, m->skips, m->deleted_tasks, m->singletons, m->checkpoints, m->copies};
    for (size_t i = 0; i < sizeof objects / sizeof objects[0]; i++)
        json_decref(objects[i]);
    free(m->progress_next);
    pthread_cond_destroy(&m->progressed);
    pthread_mutex_destroy(&m->lock);
    free(m);
}

mr_topology_holder *mr_meta_topology(mr_meta *m)
{
    return &m->topology;
}

uint32_t mr_meta_leases(const mr_meta *m)
{
    return m->leases;
}

/* ---------------------------------------------------------------- topology records */

/* The rebalancer owns placements (placement/<storage>), the gateway owns definitions: two
 * writers never overwrite each other's fields. A placement applies to the incarnation of its
 * storage created at the time it names. Called with m->lock held. */
static void overlay_placement(mr_meta *m, mr_index *ix)
{
    json_t *p = json_object_get(m->placements, ix->storage);
    const char *created = json_string_value(json_object_get(p, "createdAt"));
    if (created && strcmp(created, ix->created_at) == 0 &&
        (mr_placement_from_json(json_object_get(p, "placement"), ix) != 0 || mr_target_from_json(p, ix) != 0))
        mr_log("warn", "meta", "ignoring a malformed placement of %s", ix->storage);
}

/* Publishes the snapshot with storage's incarnation replaced by ix (or removed). */
static void publish_with(mr_meta *m, const char *storage, const mr_index *ix)
{
    mr_topology *cur = mr_topology_acquire(&m->topology);
    mr_topology *next = mr_topology_with(cur, storage, ix);
    mr_topology_release(&m->topology, cur);
    mr_topology_publish(&m->topology, next);
}

static void apply_placement(mr_meta *m, const char *storage, json_t *value)
{
    pthread_mutex_lock(&m->lock);
    if (value)
        json_object_set(m->placements, storage, value);
    else
        json_object_del(m->placements, storage);
    mr_topology *cur = mr_topology_acquire(&m->topology);
    const mr_index *found = mr_topology_find_storage(cur, storage);
    mr_index ix;
    int update = found && value;
    if (update) {
        mr_index_copy(&ix, found);
        overlay_placement(m, &ix);
    }
    pthread_mutex_unlock(&m->lock);
    mr_topology_release(&m->topology, cur);
    if (update) {
        publish_with(m, storage, &ix);
        mr_index_clear(&ix);
    }
}

static void apply_member(mr_meta *m, const char *id, const json_t *value)
{
    mr_member member = {.state = MR_MEMBER_ACTIVE};
    const char *url = json_string_value(json_object_get(value, "url"));
    const char *zone = json_string_value(json_object_get(value, "zone"));
    if (strlen(id) >= sizeof member.node.id || (zone && strlen(zone) >= sizeof member.node.zone) ||
        (value && (!url || mr_member_state_parse(json_string_value(json_object_get(value, "state")), &member.state)))) {
        mr_log("warn", "meta", "ignoring a malformed member record for node %s", id);
        return;
    }
    memcpy(member.node.id, id, strlen(id) + 1);
    snprintf(member.node.url, sizeof member.node.url, "%s", url ? url : "");
    snprintf(member.node.zone, sizeof member.node.zone, "%s", zone ? zone : "");
    mr_topology *cur = mr_topology_acquire(&m->topology);
    mr_topology *next = mr_topology_with_member(cur, id, value ? &member : NULL);
    mr_topology_release(&m->topology, cur);
    mr_topology_publish(&m->topology, next);
}

/* Reads a live definition; NULL-able. Returns 0, or -1 if it is malformed. */
static int live_definition(const json_t *def, mr_index *ix)
{
    if (mr_index_from_json(def, ix) != 0)
        return -1;
    ix->deleted = 0;
    return 0;
}

/* Whether an incarnation's end was recorded: a definition naming it live is then stale (the
 * gateway records the drop before it clears the uid's live incarnation). Lock held. */
static int storage_ended(const mr_meta *m, const char *storage)
{
    return json_object_get(m->dropped, storage) || json_object_get(m->collected, storage);
}

/* index/<uid>: {"generation", "live"}. */
static void apply_index(mr_meta *m, const char *uid, const json_t *value)
{
    json_t *live = json_object_get(value, "live");
    mr_index ix;
    if (live && !json_is_null(live) && live_definition(live, &ix) != 0) {
        mr_log("warn", "meta", "ignoring a malformed definition of index %s", uid);
        return;
    }
    int install = live && !json_is_null(live);
    pthread_mutex_lock(&m->lock);
    if (value)
        json_object_set_new(m->generations, uid, json_integer(json_integer_value(json_object_get(value, "generation"))));
    if (install && storage_ended(m, ix.storage)) {
        mr_index_clear(&ix);
        install = 0;
        live = NULL;
    } else if (install) {
        overlay_placement(m, &ix);
    }
    pthread_mutex_unlock(&m->lock);
    if (install) {
        publish_with(m, ix.storage, &ix);
        mr_index_clear(&ix);
        return;
    }
    if (!live) /* no live incarnation: the uid's live one, if any, is gone */
        return;
    mr_topology *cur = mr_topology_acquire(&m->topology);
    const mr_index *old = mr_topology_find(cur, uid);
    char storage[MR_STORAGE_MAX + 1];
    snprintf(storage, sizeof storage, "%s", old ? old->storage : "");
    mr_topology_release(&m->topology, cur);
    if (storage[0])
        publish_with(m, storage, NULL);
}

/* dropped/<storage>: the incarnation ends; a tombstone once it is collected. */
static void apply_dropped(mr_meta *m, const char *storage, const json_t *value)
{
    mr_index ix;
    if (value && mr_index_from_json(value, &ix) != 0) {
        mr_log("warn", "meta", "ignoring a malformed dropped incarnation %s", storage);
        return;
    }
    pthread_mutex_lock(&m->lock);
    if (value) {
        json_object_set_new(m->dropped, storage, json_true());
        ix.deleted = 1;
        overlay_placement(m, &ix);
    }
    pthread_mutex_unlock(&m->lock);
    publish_with(m, storage, value ? &ix : NULL);
    if (value)
        mr_index_clear(&ix);
}

/* Several live definitions at once: readers see all of them change, or none. */
static void apply_swap(mr_meta *m, const json_t *value)
{
    mr_topology *cur = mr_topology_acquire(&m->topology);
    mr_topology *next = NULL;
    size_t i;
    json_t *def;
    json_array_foreach(json_object_get(value, "indexes"), i, def) {
        mr_index ix;
        if (live_definition(def, &ix) != 0)
            continue;
        pthread_mutex_lock(&m->lock);
        int ended = storage_ended(m, ix.storage);
        if (!ended)
            overlay_placement(m, &ix);
        pthread_mutex_unlock(&m->lock);
        if (!ended) {
            mr_topology *t = mr_topology_with(next ? next : cur, ix.storage, &ix);
            if (next)
                mr_topology_release(&m->topology, next);
            next = t;
        }
        mr_index_clear(&ix);
    }
    mr_topology_release(&m->topology, cur);
    if (next)
        mr_topology_publish(&m->topology, next);
}

/* ---------------------------------------------------------------- tasks and cancelation */

static int task_deleted(const mr_meta *m, int64_t uid)
{
    size_t i;
    json_t *range;
    json_array_foreach(m->deleted_tasks, i, range) {
        if (uid >= json_integer_value(json_array_get(range, 0)) && uid <= json_integer_value(json_array_get(range, 1)))
            return 1;
    }
    return 0;
}

static json_t *by_uid(json_t *object, int64_t uid)
{
    char key[32];
    snprintf(key, sizeof key, "%" PRId64, uid);
    return json_object_get(object, key);
}

static json_t *vote_of(const mr_meta *m, int64_t cancel, int64_t task, json_int_t shard)
{
    char key[96];
    snprintf(key, sizeof key, "%" PRId64 "/%" PRId64 "/%" JSON_INTEGER_FORMAT, cancel, task, shard);
    return json_object_get(m->votes, key);
}

/* A cancel's decision on a task from the votes of its parts. Lock held. */
static int decide(const mr_meta *m, int64_t cancel, int64_t task_uid, const json_t *task)
{
    int all_held = 1;
    size_t i;
    json_t *part;
    json_array_foreach(json_object_get(task, "parts"), i, part) {
        json_t *v = vote_of(m, cancel, task_uid, json_integer_value(json_array_get(part, 0)));
        if (v && !json_is_true(json_object_get(v, "held")))
            return 0;
        all_held &= v != NULL;
    }
    return all_held ? 1 : -1;
}

static void shard_key(char *out, size_t len, const char *storage, json_int_t shard)
{
    snprintf(out, len, "%s/%" JSON_INTEGER_FORMAT, storage, shard);
}

/* Derives canceled, holds and skips again from the cancels and their votes. Lock held. */
static void recompute_cancels(mr_meta *m)
{
    json_object_clear(m->canceled);
    json_object_clear(m->holds);
    json_object_clear(m->skips);
    const char *ckey;
    json_t *uids;
    json_object_foreach(m->cancels, ckey, uids) {
        int64_t cancel = strtoll(ckey, NULL, 10);
        size_t i;
        json_t *t;
        json_array_foreach(uids, i, t) {
            int64_t uid = json_integer_value(t);
            json_t *task = by_uid(m->tasks, uid);
            if (!task || by_uid(m->canceled, uid))
                continue;
            int d = decide(m, cancel, uid, task);
            const char *storage = json_string_value(json_object_get(task, "storage"));
            if (d == 0 || !storage)
                continue;
            if (d == 1) {
                char key[32];
                snprintf(key, sizeof key, "%" PRId64, uid);
                json_object_set_new(m->canceled, key, json_integer(cancel));
            }
            size_t k;
            json_t *part;
            json_array_foreach(json_object_get(task, "parts"), k, part) {
                char skey[MR_STORAGE_MAX + 32];
                json_int_t shard = json_integer_value(json_array_get(part, 0));
                shard_key(skey, sizeof skey, storage, shard);
                if (d == 1) {
                    json_t *list = json_object_get(m->skips, skey);
                    if (!list)
                        json_object_set_new(m->skips, skey, list = json_array());
                    json_array_append_new(list, json_pack("[O, O]", json_array_get(part, 1), json_array_get(part, 2)));
                } else if (vote_of(m, cancel, uid, shard)) { /* pending and held here */
                    json_t *held = json_object_get(m->holds, skey);
                    json_int_t first = json_integer_value(json_array_get(part, 1));
                    if (!held || json_integer_value(held) > first)
                        json_object_set_new(m->holds, skey, json_integer(first));
                }
            }
        }
    }
    m->cancel_version++;
}

/* The tasks topic is append-only: deleting tasks records their uid ranges here, and the
 * follower forgets them (whichever of the two topics it reads first). Lock held. */
static void apply_deleted_tasks(mr_meta *m, const json_t *value)
{
    size_t i;
    json_t *range;
    json_array_foreach(json_object_get(value, "ranges"), i, range) {
        json_array_append(m->deleted_tasks, range);
        for (json_int_t uid = json_integer_value(json_array_get(range, 0));
             uid <= json_integer_value(json_array_get(range, 1)); uid++) {
            char key[32];
            snprintf(key, sizeof key, "%" JSON_INTEGER_FORMAT, uid);
            json_object_del(m->tasks, key);
            json_object_del(m->done, key);
        }
    }
}

static void apply_task(mr_meta *m, int64_t offset, json_t *task)
{
    if (!task || task_deleted(m, offset)) {
        json_decref(task);
        return;
    }
    char uid[32];
    snprintf(uid, sizeof uid, "%" PRId64, offset);
    json_object_set_new(task, "uid", json_integer(offset));
    json_t *cancels = json_object_get(task, "cancels");
    if (json_is_array(cancels)) {
        json_object_set(m->cancels, uid, cancels);
        recompute_cancels(m);
    }
    json_object_set_new(m->tasks, uid, task);
}

/* ---------------------------------------------------------------- progress records */

/* A storage's collection leaves late progress records of it behind; they mean nothing. */
static int of_collected(const mr_meta *m, const char *rest)
{
    const char *slash = strchr(rest, '/');
    char storage[MR_STORAGE_MAX + 1];
    if (!slash || (size_t)(slash - rest) > MR_STORAGE_MAX)
        return 0;
    snprintf(storage, sizeof storage, "%.*s", (int)(slash - rest), rest);
    return json_object_get(m->collected, storage) != NULL;
}

static void apply_dlq(mr_meta *m, const char *rest, json_t *value)
{
    /* rest = "<storage>/<shard>/<offset>" */
    const char *slash = strrchr(rest, '/');
    if (!slash)
        return;
    char group[512];
    snprintf(group, sizeof group, "%.*s", (int)(slash - rest), rest);
    json_t *list = json_object_get(m->dlq, group);
    if (!list) {
        list = json_array();
        json_object_set_new(m->dlq, group, list);
    }
    /* Every replica of the shard marks the same record; keep one mark per offset. A tombstone
     * (no value) removes the mark. */
    json_int_t offset = (json_int_t)strtoll(slash + 1, NULL, 10);
    size_t i;
    json_t *entry;
    json_array_foreach(list, i, entry) {
        if (json_integer_value(json_array_get(entry, 0)) == offset) {
            if (!value)
                json_array_remove(list, i);
            return;
        }
    }
    if (value)
        json_array_append_new(list, json_pack("[I, O]", offset, json_object_get(value, "error")));
}

/* Keeps the larger of two offsets of one life: a late write can never move a replica back. */
static void apply_applied(mr_meta *m, const char *rest, json_t *value)
{
    json_t *old = json_object_get(m->applied, rest);
    if (value && old && json_integer_value(json_object_get(old, "incarnation")) ==
                            json_integer_value(json_object_get(value, "incarnation")) &&
        json_integer_value(json_object_get(old, "offset")) > json_integer_value(json_object_get(value, "offset")))
        return;
    if (value)
        json_object_set(m->applied, rest, value);
    else
        json_object_del(m->applied, rest);
}

static void apply_progress_record(mr_meta *m, const char *key, json_t *value)
{
    if (strncmp(key, "applied/", 8) == 0) {
        if (!of_collected(m, key + 8))
            apply_applied(m, key + 8, value);
    } else if (strncmp(key, "commit/", 7) == 0) {
        /* a commit point never goes back: a lower one (which no lease holder writes) is ignored */
        json_t *old = json_object_get(m->commits, key + 7);
        if (value && !of_collected(m, key + 7) &&
            (!old || json_integer_value(json_object_get(value, "offset")) >= json_integer_value(json_object_get(old, "offset"))))
            json_object_set(m->commits, key + 7, value);
        else if (!value)
            json_object_del(m->commits, key + 7);
    } else if (strncmp(key, "dlq/", 4) == 0) {
        apply_dlq(m, key + 4, value);
    } else if (strncmp(key, "removed/", 8) == 0) {
        /* every replica reports its count; they are equal, and the first stands */
        if (value && !json_object_get(m->removed, key + 8) && !of_collected(m, key + 8))
            json_object_set_new(m->removed, key + 8, json_integer(json_integer_value(json_object_get(value, "count"))));
        else if (!value)
            json_object_del(m->removed, key + 8);
    } else if (strncmp(key, "checkpoint/", 11) == 0 || strncmp(key, "copy/", 5) == 0) {
        json_t *into = key[1] == 'h' ? m->checkpoints : m->copies;
        const char *rest = strchr(key, '/') + 1;
        if (value && !of_collected(m, rest))
            json_object_set(into, rest, value);
        else if (!value)
            json_object_del(into, rest);
    } else if (strncmp(key, "vote/", 5) == 0) {
        if (value)
            json_object_set(m->votes, key + 5, value);
        else
            json_object_del(m->votes, key + 5);
        recompute_cancels(m);
    }
}

/* ---------------------------------------------------------------- polling */

static char *record_key(const rd_kafka_message_t *msg, char *buf, size_t len)
{
    if (!msg->key || msg->key_len >= len)
        return NULL;
    memcpy(buf, msg->key, msg->key_len);
    buf[msg->key_len] = '\0';
    return buf;
}

static void apply_meta_record(mr_meta *m, const char *key, json_t *value)
{
    if (strncmp(key, "index/", 6) == 0) {
        apply_index(m, key + 6, value);
    } else if (strncmp(key, "dropped/", 8) == 0) {
        apply_dropped(m, key + 8, value);
    } else if (strncmp(key, "placement/", 10) == 0) {
        apply_placement(m, key + 10, value);
    } else if (strncmp(key, "node/", 5) == 0) {
        apply_member(m, key + 5, value);
    } else if (strncmp(key, "swap/", 5) == 0) {
        if (value)
            apply_swap(m, value);
    } else {
        pthread_mutex_lock(&m->lock);
        if (strncmp(key, "collected/", 10) == 0) {
            if (value)
                json_object_set(m->collected, key + 10, value);
        } else if (strncmp(key, "rebuild/", 8) == 0) {
            if (value)
                json_object_set(m->rebuilds, key + 8, value);
            else
                json_object_del(m->rebuilds, key + 8);
        } else if (strncmp(key, "deleted-tasks/", 14) == 0 && value) {
            apply_deleted_tasks(m, value);
        } else if (strncmp(key, "task-done/", 10) == 0) {
            /* the first record of a task's end stands; a second gateway's would only repeat it */
            int64_t uid = strtoll(key + 10, NULL, 10);
            if (value && !json_object_get(m->done, key + 10) && !task_deleted(m, uid))
                json_object_set(m->done, key + 10, value);
        } else if (strncmp(key, "key/", 4) == 0) {
            json_t *keys = json_copy(m->keys);
            if (value)
                json_object_set(keys, key + 4, value);
            else
                json_object_del(keys, key + 4);
            json_decref(m->keys);
            m->keys = keys;
        } else if (strcmp(key, "features") == 0 || strcmp(key, "plan") == 0 || strcmp(key, "rebalance-request") == 0) {
            if (value)
                json_object_set(m->singletons, key, value);
            else
                json_object_del(m->singletons, key);
        } else if (strcmp(key, "keys-seeded") == 0) {
            m->keys_seeded = 1;
        }
        pthread_mutex_unlock(&m->lock);
    }
}

/* Applies one record and moves the topic's position past it. */
static void apply_message(mr_meta *m, const rd_kafka_message_t *msg)
{
    const char *topic = rd_kafka_topic_name(msg->rkt);
    char kbuf[1024];
    const char *key = record_key(msg, kbuf, sizeof kbuf);
    json_t *value = msg->len ? json_loadb(msg->payload, msg->len, 0, NULL) : NULL;
    if (strcmp(topic, MR_TOPIC_META) == 0) {
        if (key)
            apply_meta_record(m, key, value);
        pthread_mutex_lock(&m->lock);
        m->meta_next = msg->offset + 1;
    } else if (strcmp(topic, MR_TOPIC_TASKS) == 0) {
        pthread_mutex_lock(&m->lock);
        apply_task(m, msg->offset, json_incref(value));
        m->tasks_next = msg->offset + 1;
    } else {
        pthread_mutex_lock(&m->lock);
        if (key)
            apply_progress_record(m, key, value);
        if ((uint32_t)msg->partition < m->leases)
            m->progress_next[msg->partition] = msg->offset + 1;
    }
    m->changes++;
    pthread_cond_broadcast(&m->progressed);
    pthread_mutex_unlock(&m->lock);
    json_decref(value);
}

int mr_meta_poll(mr_meta *m, int timeout_ms)
{
    int applied = 0;
    for (int i = 0; i < 10000; i++) {
        rd_kafka_message_t *msg = rd_kafka_consumer_poll(m->consumer, i == 0 ? timeout_ms : 0);
        if (!msg)
            break;
        if (msg->err == RD_KAFKA_RESP_ERR__PARTITION_EOF) {
            /* the end of a partition: past it even when a transaction's marker is the last */
            pthread_mutex_lock(&m->lock);
            const char *topic = rd_kafka_topic_name(msg->rkt);
            if (strcmp(topic, MR_TOPIC_PROGRESS) == 0 && (uint32_t)msg->partition < m->leases &&
                msg->offset > m->progress_next[msg->partition])
                m->progress_next[msg->partition] = msg->offset;
            pthread_mutex_unlock(&m->lock);
        } else if (!msg->err) {
            apply_message(m, msg);
            applied++;
        }
        rd_kafka_message_destroy(msg);
    }
    return applied;
}

/* The ends of every followed partition, in one request: meta, tasks, then progress 0…leases-1.
 * Returns 0, or -1 if Kafka did not say. */
static int query_ends(mr_meta *m, int64_t *ends)
{
    rd_kafka_topic_partition_list_t *parts = rd_kafka_topic_partition_list_new(2 + (int)m->leases);
    rd_kafka_topic_partition_list_add(parts, MR_TOPIC_META, 0)->offset = RD_KAFKA_OFFSET_END;
    rd_kafka_topic_partition_list_add(parts, MR_TOPIC_TASKS, 0)->offset = RD_KAFKA_OFFSET_END;
    for (uint32_t p = 0; p < m->leases; p++)
        rd_kafka_topic_partition_list_add(parts, MR_TOPIC_PROGRESS, (int32_t)p)->offset = RD_KAFKA_OFFSET_END;
    int rc = rd_kafka_offsets_for_times(m->consumer, parts, 1000) == RD_KAFKA_RESP_ERR_NO_ERROR ? 0 : -1;
    for (int i = 0; rc == 0 && i < parts->cnt; i++) {
        if (parts->elems[i].err || parts->elems[i].offset < 0)
            rc = -1;
        ends[i] = parts->elems[i].offset;
    }
    rd_kafka_topic_partition_list_destroy(parts);
    return rc;
}

static int read_up_to(mr_meta *m, const int64_t *ends)
{
    pthread_mutex_lock(&m->lock);
    int done = m->meta_next >= ends[0] && m->tasks_next >= ends[1];
    for (uint32_t p = 0; done && p < m->leases; p++)
        done = m->progress_next[p] >= ends[2 + p];
    pthread_mutex_unlock(&m->lock);
    return done;
}

int mr_meta_sync(mr_meta *m, int timeout_ms)
{
    int64_t *ends = mr_calloc(2 + m->leases, sizeof *ends);
    int64_t deadline = mr_now_ms() + timeout_ms;
    int rc = 0;
    /* A topic created a moment ago may have no leader yet: ask again until the deadline. */
    while (query_ends(m, ends)) {
        if (mr_now_ms() > deadline) {
            rc = -1;
            goto out;
        }
        mr_meta_poll(m, 100);
    }
    while (!read_up_to(m, ends)) {
        if (mr_now_ms() > deadline) {
            rc = -1;
            break;
        }
        mr_meta_poll(m, 50);
    }
out:
    free(ends);
    return rc;
}

int mr_meta_wait(mr_meta *m, const char *topic, int64_t offset, int timeout_ms)
{
    int64_t deadline = mr_now_ms() + timeout_ms;
    int is_meta = strcmp(topic, MR_TOPIC_META) == 0;
    pthread_mutex_lock(&m->lock);
    int rc = 0;
    while ((is_meta ? m->meta_next : m->tasks_next) <= offset) {
        int64_t left = deadline - mr_now_ms();
        if (left <= 0) {
            rc = -1;
            break;
        }
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        int64_t wake = (int64_t)ts.tv_nsec + (left < 50 ? left : 50) * 1000000;
        ts.tv_sec += wake / 1000000000;
        ts.tv_nsec = wake % 1000000000;
        pthread_cond_timedwait(&m->progressed, &m->lock, &ts);
    }
    pthread_mutex_unlock(&m->lock);
    return rc;
}

void mr_meta_wait_change(mr_meta *m, int timeout_ms)
{
    pthread_mutex_lock(&m->lock);
    uint64_t seen = m->changes;
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    int64_t wake = (int64_t)ts.tv_nsec + (int64_t)timeout_ms * 1000000;
    ts.tv_sec += wake / 1000000000;
    ts.tv_nsec = wake % 1000000000;
    while (m->changes == seen)
        if (pthread_cond_timedwait(&m->progressed, &m->lock, &ts))
            break;
    pthread_mutex_unlock(&m->lock);
}

/* ---------------------------------------------------------------- getters */

int64_t mr_meta_applied(mr_meta *m, const char *storage, uint32_t shard, const mr_replica *rep, char *at, size_t atlen)
{
    char key[600];
    snprintf(key, sizeof key, "%s/%u/%s", storage, shard, rep->node);
    pthread_mutex_lock(&m->lock);
    json_t *v = json_object_get(m->applied, key);
    if ((uint64_t)json_integer_value(json_object_get(v, "incarnation")) != rep->incarnation)
        v = NULL; /* written by an earlier life of this replica */
    int64_t off = v ? (int64_t)json_integer_value(json_object_get(v, "offset")) : 0;
    if (at) {
        const char *s = v ? json_string_value(json_object_get(v, "at")) : NULL;
        snprintf(at, atlen, "%s", s ? s : "");
    }
    pthread_mutex_unlock(&m->lock);
    return off;
}

void mr_meta_commit(mr_meta *m, const char *storage, uint32_t shard, mr_commit *out)
{
    char key[600];
    snprintf(key, sizeof key, "%s/%u", storage, shard);
    memset(out, 0, sizeof *out);
    pthread_mutex_lock(&m->lock);
    json_t *v = json_object_get(m->commits, key);
    if (v) {
        out->known = 1;
        out->offset = (int64_t)json_integer_value(json_object_get(v, "offset"));
        snprintf(out->at, sizeof out->at, "%s", json_string_value(json_object_get(v, "at")) ? json_string_value(json_object_get(v, "at")) : "");
        size_t i;
        json_t *member;
        json_array_foreach(json_object_get(v, "isr"), i, member) {
            const char *node = json_string_value(json_array_get(member, 0));
            if (!node || out->isr_count == MR_MAX_REPLICAS)
                continue;
            mr_replica *r = &out->isr[out->isr_count++];
            snprintf(r->node, sizeof r->node, "%s", node);
            r->incarnation = (uint64_t)json_integer_value(json_array_get(member, 1));
        }
    }
    pthread_mutex_unlock(&m->lock);
}

int mr_commit_has(const mr_commit *c, const mr_replica *rep)
{
    if (!c->known)
        return rep->state == MR_REPLICA_READY;
    for (size_t i = 0; i < c->isr_count; i++)
        if (c->isr[i].incarnation == rep->incarnation && strcmp(c->isr[i].node, rep->node) == 0)
            return 1;
    return 0;
}

int mr_meta_readable(mr_meta *m, const char *storage, uint32_t shard, const mr_commit *c, const mr_replica *rep)
{
    if (rep->state != MR_REPLICA_READY)
        return 0;
    return mr_commit_has(c, rep) || mr_meta_applied(m, storage, shard, rep, NULL, 0) >= c->offset;
}

uint64_t mr_meta_generation(mr_meta *m, const char *uid)
{
    pthread_mutex_lock(&m->lock);
    uint64_t g = (uint64_t)json_integer_value(json_object_get(m->generations, uid));
    pthread_mutex_unlock(&m->lock);
    return g;
}

json_t *mr_meta_collected(mr_meta *m, const char *storage)
{
    pthread_mutex_lock(&m->lock);
    json_t *c = json_deep_copy(json_object_get(m->collected, storage));
    pthread_mutex_unlock(&m->lock);
    return c;
}

json_t *mr_meta_checkpoint(mr_meta *m, const char *storage, uint32_t shard)
{
    char key[MR_STORAGE_MAX + 16];
    snprintf(key, sizeof key, "%s/%u", storage, shard);
    pthread_mutex_lock(&m->lock);
    json_t *c = json_object_get(m->checkpoints, key);
    json_t *copy = c ? json_deep_copy(c) : NULL;
    pthread_mutex_unlock(&m->lock);
    return copy;
}

json_t *mr_meta_history(mr_meta *m)
{
    pthread_mutex_lock(&m->lock);
    json_t *h = json_pack("{s:O, s:O}", "checkpoints", m->checkpoints, "copies", m->copies);
    json_t *copy = json_deep_copy(h);
    json_decref(h);
    pthread_mutex_unlock(&m->lock);
    return copy;
}

json_t *mr_meta_progress_keys(mr_meta *m, const char *storage)
{
    json_t *keys = json_array();
    size_t len = strlen(storage);
    json_t *sources[] = {m->applied, m->commits, m->checkpoints, m->copies};
    const char *prefixes[] = {"applied/", "commit/", "checkpoint/", "copy/"};
    pthread_mutex_lock(&m->lock);
    for (size_t i = 0; i < 4; i++) {
        const char *k;
        json_t *v;
        json_object_foreach(sources[i], k, v) {
            if (strncmp(k, storage, len) != 0 || k[len] != '/')
                continue;
            char key[1200];
            snprintf(key, sizeof key, "%s%s", prefixes[i], k);
            uint32_t shard = (uint32_t)strtoul(k + len + 1, NULL, 10);
            json_array_append_new(keys, json_pack("[i, s]", (int)mr_lease_of(storage, shard, m->leases), key));
        }
    }
    pthread_mutex_unlock(&m->lock);
    return keys;
}

size_t mr_meta_dlq_count(mr_meta *m, const char *storage)
{
    size_t n = 0, len = strlen(storage);
    pthread_mutex_lock(&m->lock);
    const char *k;
    json_t *v;
    json_object_foreach(m->dlq, k, v) {
        if (strncmp(k, storage, len) == 0 && k[len] == '/')
            n += json_array_size(v);
    }
    pthread_mutex_unlock(&m->lock);
    return n;
}

json_t *mr_meta_rebuilds(mr_meta *m)
{
    pthread_mutex_lock(&m->lock);
    json_t *copy = json_deep_copy(m->rebuilds);
    pthread_mutex_unlock(&m->lock);
    return copy;
}

json_t *mr_meta_keys(mr_meta *m, int *seeded)
{
    pthread_mutex_lock(&m->lock);
    json_t *keys = json_incref(m->keys);
    if (seeded)
        *seeded = m->keys_seeded;
    pthread_mutex_unlock(&m->lock);
    return keys;
}

json_t *mr_meta_singleton(mr_meta *m, const char *key)
{
    pthread_mutex_lock(&m->lock);
    json_t *v = json_object_get(m->singletons, key);
    json_t *copy = v ? json_deep_copy(v) : json_object();
    pthread_mutex_unlock(&m->lock);
    return copy;
}

int64_t mr_meta_task_count(mr_meta *m)
{
    pthread_mutex_lock(&m->lock);
    int64_t n = m->tasks_next;
    pthread_mutex_unlock(&m->lock);
    return n;
}

static json_t *copy_by_uid(mr_meta *m, json_t *object, int64_t uid)
{
    pthread_mutex_lock(&m->lock);
    json_t *t = json_deep_copy(by_uid(object, uid));
    pthread_mutex_unlock(&m->lock);
    return t;
}

json_t *mr_meta_task(mr_meta *m, int64_t uid)
{
    return copy_by_uid(m, m->tasks, uid);
}

json_t *mr_meta_task_done(mr_meta *m, int64_t uid)
{
    return copy_by_uid(m, m->done, uid);
}

json_t *mr_meta_open_tasks(mr_meta *m)
{
    json_t *open = json_array();
    pthread_mutex_lock(&m->lock);
    const char *k;
    json_t *v;
    json_object_foreach(m->tasks, k, v) {
        if (!json_object_get(m->done, k))
            json_array_append(open, json_object_get(v, "uid"));
    }
    pthread_mutex_unlock(&m->lock);
    return open;
}

json_t *mr_meta_dlq_error(mr_meta *m, const char *storage, uint32_t shard, int64_t first, int64_t last,
                          size_t *count)
{
    char key[600];
    snprintf(key, sizeof key, "%s/%u", storage, shard);
    json_t *found = NULL;
    pthread_mutex_lock(&m->lock);
    size_t i;
    json_t *entry;
    json_array_foreach(json_object_get(m->dlq, key), i, entry) {
        json_int_t off = json_integer_value(json_array_get(entry, 0));
        if (off >= first && off <= last) {
            (*count)++;
            if (!found)
                found = json_deep_copy(json_array_get(entry, 1));
        }
    }
    pthread_mutex_unlock(&m->lock);
    return found;
}

int64_t mr_meta_removed(mr_meta *m, const char *storage, uint32_t shard, int64_t offset)
{
    char key[600];
    snprintf(key, sizeof key, "%s/%u/%" PRId64, storage, shard, offset);
    pthread_mutex_lock(&m->lock);
    json_t *count = json_object_get(m->removed, key);
    int64_t n = count ? (int64_t)json_integer_value(count) : -1;
    pthread_mutex_unlock(&m->lock);
    return n;
}

/* ---------------------------------------------------------------- cancelation getters */

int64_t mr_meta_canceled_by(mr_meta *m, int64_t uid)
{
    pthread_mutex_lock(&m->lock);
    json_t *c = by_uid(m->canceled, uid);
    int64_t by = c ? (int64_t)json_integer_value(c) : -1;
    pthread_mutex_unlock(&m->lock);
    return by;
}

int mr_meta_cancel_decision(mr_meta *m, int64_t cancel, int64_t task)
{
    pthread_mutex_lock(&m->lock);
    json_t *by = by_uid(m->canceled, task);
    json_t *record = by_uid(m->tasks, task);
    int d = by ? (json_integer_value(by) == cancel) : record ? decide(m, cancel, task, record) : 0;
    if (!by && d == 1) /* all held, yet an earlier cancel is still deciding: this one waits */
        d = -1;
    pthread_mutex_unlock(&m->lock);
    return d;
}

int64_t mr_meta_hold_from(mr_meta *m, const char *storage, uint32_t shard)
{
    char key[MR_STORAGE_MAX + 32];
    shard_key(key, sizeof key, storage, shard);
    pthread_mutex_lock(&m->lock);
    json_t *h = json_object_get(m->holds, key);
    int64_t from = h ? (int64_t)json_integer_value(h) : -1;
    pthread_mutex_unlock(&m->lock);
    return from;
}

int mr_meta_is_canceled(mr_meta *m, const char *storage, uint32_t shard, int64_t offset)
{
    char key[MR_STORAGE_MAX + 32];
    shard_key(key, sizeof key, storage, shard);
    int hit = 0;
    pthread_mutex_lock(&m->lock);
    size_t i;
    json_t *range;
    json_array_foreach(json_object_get(m->skips, key), i, range) {
        if (offset >= json_integer_value(json_array_get(range, 0)) && offset <= json_integer_value(json_array_get(range, 1)))
            hit = 1;
    }
    pthread_mutex_unlock(&m->lock);
    return hit;
}

int mr_meta_has_skips(mr_meta *m, const char *storage, uint32_t shard)
{
    char key[MR_STORAGE_MAX + 32];
    shard_key(key, sizeof key, storage, shard);
    pthread_mutex_lock(&m->lock);
    int has = json_object_get(m->skips, key) != NULL;
    pthread_mutex_unlock(&m->lock);
    return has;
}

uint64_t mr_meta_cancel_version(mr_meta *m)
{
    pthread_mutex_lock(&m->lock);
    uint64_t v = m->cancel_version;
    pthread_mutex_unlock(&m->lock);
    return v;
}

json_t *mr_meta_pending_votes(mr_meta *m)
{
    json_t *out = json_array();
    pthread_mutex_lock(&m->lock);
    const char *ckey;
    json_t *uids;
    json_object_foreach(m->cancels, ckey, uids) {
        int64_t cancel = strtoll(ckey, NULL, 10);
        size_t i;
        json_t *t;
        json_array_foreach(uids, i, t) {
            int64_t uid = json_integer_value(t);
            json_t *task = by_uid(m->tasks, uid);
            const char *storage = json_string_value(json_object_get(task, "storage"));
            if (!task || !storage || by_uid(m->canceled, uid) || decide(m, cancel, uid, task) != -1)
                continue;
            size_t k;
            json_t *part;
            json_array_foreach(json_object_get(task, "parts"), k, part) {
                json_int_t shard = json_integer_value(json_array_get(part, 0));
                if (!vote_of(m, cancel, uid, shard))
                    json_array_append_new(out, json_pack("{s:I, s:I, s:s, s:I, s:O}", "cancel", (json_int_t)cancel,
                                                         "task", (json_int_t)uid, "storage", storage, "shard", shard,
                                                         "first", json_array_get(part, 1)));
            }
        }
    }
    pthread_mutex_unlock(&m->lock);
    return out;
}

/* ---------------------------------------------------------------- writing */

static int put_and_wait(mr_meta *m, rd_kafka_t *producer, const char *topic, const char *key, const json_t *value,
                        int wait_applied, int64_t *offset, mr_error *err)
{
    char *text = value ? json_dumps(value, JSON_COMPACT) : NULL;
    mr_produce_msg msg = {
        .topic = topic,
        .partition = 0,
        .key = key,
        .key_len = key ? strlen(key) : 0,
        .value = text,
        .value_len = text ? strlen(text) : 0,
    };
    int rc = mr_produce_all(producer, &msg, 1, err);
    free(text);
    if (rc)
        return -1;
    if (offset)
        *offset = msg.offset;
    if (wait_applied && mr_meta_wait(m, topic, msg.offset, 15000)) {
        mr_error_set(err, "miroir_kafka_unavailable", "metadata written but not read back within 15 s");
        return -1;
    }
    return 0;
}

int mr_meta_put(mr_meta *m, rd_kafka_t *producer, const char *key, const json_t *value, int wait_applied,
                mr_error *err)
{
    return put_and_wait(m, producer, MR_TOPIC_META, key, value, wait_applied, NULL, err);
}

int mr_meta_add_task(mr_meta *m, rd_kafka_t *producer, const json_t *task, int64_t *uid, mr_error *err)
{
    return put_and_wait(m, producer, MR_TOPIC_TASKS, NULL, task, 1, uid, err);
}

void mr_meta_progress_tombstone(rd_kafka_t *producer, int32_t partition, const char *key)
{
    rd_kafka_producev(producer, RD_KAFKA_V_TOPIC(MR_TOPIC_PROGRESS), RD_KAFKA_V_PARTITION(partition),
                      RD_KAFKA_V_KEY(key, strlen(key)), RD_KAFKA_V_VALUE(NULL, 0), RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
                      RD_KAFKA_V_END);
}

int mr_meta_seed_members(mr_meta *m, rd_kafka_t *producer, const mr_config *cfg, mr_error *err)
{
    mr_topology *t = mr_topology_acquire(&m->topology);
    size_t members = t->member_count;
    mr_topology_release(&m->topology, t);
    if (members)
        return 0;
    for (size_t i = 0; i < cfg->node_count; i++) {
        char key[64];
        snprintf(key, sizeof key, "node/%s", cfg->nodes[i].id);
        json_t *v = json_pack("{s:s, s:s, s:s}", "url", cfg->nodes[i].url, "state",
                              mr_member_state_name(MR_MEMBER_ACTIVE), "zone", cfg->nodes[i].zone);
        int rc = mr_meta_put(m, producer, key, v, 0, err);
        json_decref(v);
        if (rc)
            return -1;
    }
    /* the caller's follower isn't polled by anyone else yet: read the members back here */
    if (cfg->node_count && mr_meta_sync(m, 15000)) {
        mr_error_set(err, "miroir_kafka_unavailable", "the configured nodes were written but not read back within 15 s");
        return -1;
    }
    return 0;
}

int mr_meta_join(const mr_config *cfg, rd_kafka_t **producer, mr_meta **meta, char *err, size_t errlen)
{
    *meta = NULL;
    *producer = mr_kafka_producer(cfg, err, errlen);
    if (!*producer)
        return -1;
    *meta = mr_meta_new(cfg, err, errlen);
    mr_error seed = {0};
    if (!*meta) {
        /* err is set */
    } else if (mr_meta_sync(*meta, 30000)) {
        snprintf(err, errlen, "could not read the metadata topics within 30 s");
    } else if (mr_meta_seed_members(*meta, *producer, cfg, &seed)) {
        snprintf(err, errlen, "could not record the configured nodes: %s", seed.message);
    } else {
        return 0;
    }
    mr_meta_free(*meta);
    *meta = NULL;
    rd_kafka_destroy(*producer);
    *producer = NULL;
    return -1;
}
