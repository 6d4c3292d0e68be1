/* meta.c: follower and writer of the metadata topics. */
#include "meta.h"

#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kafka.h"
#include "record.h"
#include "util.h"

struct mr_meta {
    rd_kafka_t *consumer;
    mr_topology_holder topology;
    pthread_mutex_t lock; /* guards everything below */
    pthread_cond_t progressed;
    json_t *applied; /* "uid/shard/node" -> {"offset", "at", "incarnation"} */
    json_t *placements; /* storage -> {"createdAt", "placement"}: the rebalancer's placements */
    json_t *rebuilds;   /* "storage/shard/node" -> {"at"}: replicas to rebuild from the log */
    json_t *dlq;     /* "uid/shard" -> [[offset, error], …] */
    json_t *tasks;   /* "uid" -> task */
    json_t *deleted_tasks; /* [[first, last], …]: task uids deleted from the history */
    json_t *keys;          /* uid -> key record; replaced, never changed, so readers can keep one */
    int keys_seeded;
    int64_t meta_next, tasks_next;
};

mr_meta *mr_meta_new(const mr_config *cfg, char *err, size_t errlen)
{
    mr_meta *m = calloc(1, sizeof *m);
    m->consumer = mr_kafka_consumer(cfg, NULL, err, errlen);
    if (!m->consumer) {
        free(m);
        return NULL;
    }
    static const char *const compacted[] = {"cleanup.policy", "compact", NULL};
    static const char *const forever[] = {"retention.ms", "-1", NULL};
    if (mr_kafka_create_topic(m->consumer, MR_TOPIC_META, 1, compacted, 10000, err, errlen) ||
        mr_kafka_create_topic(m->consumer, MR_TOPIC_TASKS, 1, forever, 10000, err, errlen)) {
        rd_kafka_destroy(m->consumer);
        free(m);
        return NULL;
    }
    mr_topology_holder_init(&m->topology);
    pthread_mutex_init(&m->lock, NULL);
    pthread_cond_init(&m->progressed, NULL);
    m->applied = json_object();
    m->placements = json_object();
    m->rebuilds = json_object();
    m->dlq = json_object();
    m->tasks = json_object();
    m->deleted_tasks = json_array();
    m->keys = json_object();
    rd_kafka_topic_partition_list_t *parts = rd_kafka_topic_partition_list_new(2);
    rd_kafka_topic_partition_list_add(parts, MR_TOPIC_META, 0)->offset = RD_KAFKA_OFFSET_BEGINNING;
    rd_kafka_topic_partition_list_add(parts, MR_TOPIC_TASKS, 0)->offset = RD_KAFKA_OFFSET_BEGINNING;
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
    json_decref(m->applied);
    json_decref(m->placements);
    json_decref(m->rebuilds);
    json_decref(m->dlq);
    json_decref(m->tasks);
    json_decref(m->deleted_tasks);
    json_decref(m->keys);
    pthread_cond_destroy(&m->progressed);
    pthread_mutex_destroy(&m->lock);
    free(m);
}

mr_topology_holder *mr_meta_topology(mr_meta *m)
{
    return &m->topology;
}

/* The rebalancer owns placements (placement/<storage>), the gateway owns definitions
 * (index/<uid>): two writers never overwrite each other's fields. A placement applies to the
 * index of its storage created at the time it names, so one left from a deleted index of the
 * same name never applies to a new one. */
static void overlay_placement(mr_meta *m, mr_index *ix)
{
    pthread_mutex_lock(&m->lock);
    json_t *p = json_object_get(m->placements, ix->storage);
    const char *created = json_string_value(json_object_get(p, "createdAt"));
    if (created && strcmp(created, ix->created_at) == 0 &&
        mr_placement_from_json(json_object_get(p, "placement"), ix) != 0)
        mr_log("warn", "meta", "ignoring a malformed placement of %s", ix->storage);
    pthread_mutex_unlock(&m->lock);
}

static void apply_placement(mr_meta *m, const char *storage, json_t *value)
{
    pthread_mutex_lock(&m->lock);
    if (value)
        json_object_set(m->placements, storage, value);
    else
        json_object_del(m->placements, storage);
    pthread_mutex_unlock(&m->lock);
    mr_topology *cur = mr_topology_acquire(&m->topology);
    const mr_index *found = mr_topology_find_storage(cur, storage);
    if (found && value) {
        mr_index ix;
        mr_index_copy(&ix, found);
        overlay_placement(m, &ix);
        mr_topology_publish(&m->topology, mr_topology_with(cur, ix.uid, &ix));
        mr_index_clear(&ix);
    }
    mr_topology_release(&m->topology, cur);
}

static void apply_member(mr_meta *m, const char *id, const json_t *value)
{
    mr_node node = {0};
    enum mr_member_state state = MR_MEMBER_ACTIVE;
    const char *url = json_string_value(json_object_get(value, "url"));
    if (strlen(id) >= sizeof node.id ||
        (value && (!url || mr_member_state_parse(json_string_value(json_object_get(value, "state")), &state)))) {
        mr_log("warn", "meta", "ignoring a malformed member record for node %s", id);
        return;
    }
    memcpy(node.id, id, strlen(id) + 1);
    snprintf(node.url, sizeof node.url, "%s", url ? url : "");
    mr_topology *cur = mr_topology_acquire(&m->topology);
    mr_topology *next = mr_topology_with_member(cur, &node, value ? &state : NULL);
    mr_topology_release(&m->topology, cur);
    mr_topology_publish(&m->topology, next);
}

static void apply_index(mr_meta *m, const char *uid, const json_t *value)
{
    mr_index ix;
    const mr_index *def = NULL;
    if (value) {
        if (mr_index_from_json(value, &ix) != 0) {
            mr_log("warn", "meta", "ignoring a malformed definition of index %s", uid);
            return;
        }
        overlay_placement(m, &ix);
        def = &ix;
    }
    mr_topology *cur = mr_topology_acquire(&m->topology);
    mr_topology *next = mr_topology_with(cur, uid, def);
    mr_topology_release(&m->topology, cur);
    mr_topology_publish(&m->topology, next);
    if (def)
        mr_index_clear(&ix);
}

/* Several definitions at once: readers see all of them change, or none. */
static void apply_swap(mr_meta *m, const json_t *value)
{
    mr_topology *cur = mr_topology_acquire(&m->topology);
    mr_topology *next = NULL;
    size_t i;
    json_t *def;
    json_array_foreach(json_object_get(value, "indexes"), i, def) {
        mr_index ix;
        if (mr_index_from_json(def, &ix) != 0)
            continue;
        overlay_placement(m, &ix);
        mr_topology *t = mr_topology_with(next ? next : cur, ix.uid, &ix);
        if (next)
            mr_topology_release(&m->topology, next);
        next = t;
        mr_index_clear(&ix);
    }
    mr_topology_release(&m->topology, cur);
    if (next)
        mr_topology_publish(&m->topology, next);
}

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

/* The tasks topic is append-only: deleting tasks records their uid ranges here, and the
 * follower forgets them (whichever of the two topics it reads first). */
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
        }
    }
}

static void apply_dlq(mr_meta *m, const char *rest, json_t *value)
{
    /* rest = "<uid>/<shard>/<offset>" */
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
    if (!value)
        return;
    json_array_append_new(list, json_pack("[I, O]", offset, json_object_get(value, "error")));
}

static void apply_meta_record(mr_meta *m, const rd_kafka_message_t *msg)
{
    char key[1024];
    if (!msg->key || msg->key_len >= sizeof key)
        return;
    memcpy(key, msg->key, msg->key_len);
    key[msg->key_len] = '\0';
    json_t *value = msg->len ? json_loadb(msg->payload, msg->len, 0, NULL) : NULL;
    if (strncmp(key, "index/", 6) == 0) {
        apply_index(m, key + 6, value);
    } else if (strncmp(key, "placement/", 10) == 0) {
        apply_placement(m, key + 10, value);
    } else if (strncmp(key, "node/", 5) == 0) {
        apply_member(m, key + 5, value);
    } else if (strncmp(key, "swap/", 5) == 0) {
        if (value)
            apply_swap(m, value);
    } else {
        pthread_mutex_lock(&m->lock);
        if (strncmp(key, "applied/", 8) == 0) {
            if (value)
                json_object_set(m->applied, key + 8, value);
            else
                json_object_del(m->applied, key + 8);
        } else if (strncmp(key, "rebuild/", 8) == 0) {
            if (value)
                json_object_set(m->rebuilds, key + 8, value);
            else
                json_object_del(m->rebuilds, key + 8);
        } else if (strncmp(key, "dlq/", 4) == 0) {
            apply_dlq(m, key + 4, value);
        } else if (strncmp(key, "deleted-tasks/", 14) == 0 && value) {
            apply_deleted_tasks(m, value);
        } else if (strncmp(key, "key/", 4) == 0) {
            json_t *keys = json_copy(m->keys);
            if (value)
                json_object_set(keys, key + 4, value);
            else
                json_object_del(keys, key + 4);
            json_decref(m->keys);
            m->keys = keys;
        } else if (strcmp(key, "keys-seeded") == 0) {
            m->keys_seeded = 1;
        }
        pthread_mutex_unlock(&m->lock);
    }
    json_decref(value);
}

int mr_meta_poll(mr_meta *m, int timeout_ms)
{
    int applied = 0;
    for (int i = 0; i < 10000; i++) {
        rd_kafka_message_t *msg = rd_kafka_consumer_poll(m->consumer, i == 0 ? timeout_ms : 0);
        if (!msg)
            break;
        if (msg->err) {
            rd_kafka_message_destroy(msg);
            continue;
        }
        const char *topic = rd_kafka_topic_name(msg->rkt);
        if (strcmp(topic, MR_TOPIC_META) == 0) {
            apply_meta_record(m, msg);
            pthread_mutex_lock(&m->lock);
            m->meta_next = msg->offset + 1;
        } else {
            json_t *task = json_loadb(msg->payload, msg->len, 0, NULL);
            pthread_mutex_lock(&m->lock);
            if (task && task_deleted(m, msg->offset)) {
                json_decref(task);
            } else if (task) {
                char uid[32];
                snprintf(uid, sizeof uid, "%" PRId64, msg->offset);
                json_object_set_new(task, "uid", json_integer(msg->offset));
                json_object_set_new(m->tasks, uid, task);
            }
            m->tasks_next = msg->offset + 1;
        }
        pthread_cond_broadcast(&m->progressed);
        pthread_mutex_unlock(&m->lock);
        rd_kafka_message_destroy(msg);
        applied++;
    }
    return applied;
}

int mr_meta_sync(mr_meta *m, int timeout_ms)
{
    int64_t lo, meta_hi, tasks_hi;
    int64_t deadline = mr_now_ms() + timeout_ms;
    /* A topic created a moment ago may have no leader yet: ask again until the deadline. */
    while (rd_kafka_query_watermark_offsets(m->consumer, MR_TOPIC_META, 0, &lo, &meta_hi, 1000) ||
           rd_kafka_query_watermark_offsets(m->consumer, MR_TOPIC_TASKS, 0, &lo, &tasks_hi, 1000)) {
        if (mr_now_ms() > deadline)
            return -1;
        mr_meta_poll(m, 100);
    }
    for (;;) {
        pthread_mutex_lock(&m->lock);
        int done = m->meta_next >= meta_hi && m->tasks_next >= tasks_hi;
        pthread_mutex_unlock(&m->lock);
        if (done)
            return 0;
        if (mr_now_ms() > deadline)
            return -1;
        mr_meta_poll(m, 50);
    }
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

int64_t mr_meta_applied(mr_meta *m, const char *index, uint32_t shard, const mr_replica *rep, char *at, size_t atlen)
{
    char key[600];
    snprintf(key, sizeof key, "%s/%u/%s", index, shard, rep->node);
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

json_t *mr_meta_index_keys(mr_meta *m, const char *index)
{
    json_t *keys = json_array();
    size_t len = strlen(index);
    char key[1200];
    pthread_mutex_lock(&m->lock);
    if (json_object_get(m->placements, index)) {
        snprintf(key, sizeof key, "placement/%s", index);
        json_array_append_new(keys, json_string(key));
    }
    const char *k;
    json_t *v;
    json_object_foreach(m->applied, k, v) {
        if (strncmp(k, index, len) == 0 && k[len] == '/') {
            snprintf(key, sizeof key, "applied/%s", k);
            json_array_append_new(keys, json_string(key));
        }
    }
    json_object_foreach(m->dlq, k, v) {
        if (strncmp(k, index, len) == 0 && k[len] == '/') {
            size_t i;
            json_t *entry;
            json_array_foreach(v, i, entry) {
                snprintf(key, sizeof key, "dlq/%s/%" JSON_INTEGER_FORMAT, k, json_integer_value(json_array_get(entry, 0)));
                json_array_append_new(keys, json_string(key));
            }
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

int64_t mr_meta_task_count(mr_meta *m)
{
    pthread_mutex_lock(&m->lock);
    int64_t n = m->tasks_next;
    pthread_mutex_unlock(&m->lock);
    return n;
}

json_t *mr_meta_task(mr_meta *m, int64_t uid)
{
    char key[32];
    snprintf(key, sizeof key, "%" PRId64, uid);
    pthread_mutex_lock(&m->lock);
    json_t *t = json_deep_copy(json_object_get(m->tasks, key));
    pthread_mutex_unlock(&m->lock);
    return t;
}

json_t *mr_meta_dlq_error(mr_meta *m, const char *index, uint32_t shard, int64_t first, int64_t last,
                          size_t *count)
{
    char key[600];
    snprintf(key, sizeof key, "%s/%u", index, shard);
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
        json_t *v = json_pack("{s:s, s:s}", "url", cfg->nodes[i].url, "state", mr_member_state_name(MR_MEMBER_ACTIVE));
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
