/* topology.c: index definitions, placement and the refcounted topology snapshot. */
#include "topology.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <xxhash.h>

#include "alloc.h"

static const char *const state_names[] = {"ready", "building", "retiring", "new"};
static const char *const member_state_names[] = {"active", "draining", "removing"};

const char *mr_member_state_name(enum mr_member_state s)
{
    return member_state_names[s];
}

int mr_member_state_parse(const char *s, enum mr_member_state *out)
{
    for (size_t i = 0; i < sizeof member_state_names / sizeof member_state_names[0]; i++) {
        if (s && strcmp(s, member_state_names[i]) == 0) {
            *out = (enum mr_member_state)i;
            return 0;
        }
    }
    return -1;
}

const char *mr_replica_state_name(enum mr_replica_state s)
{
    return state_names[s];
}

static int state_parse(const char *s, enum mr_replica_state *out)
{
    for (size_t i = 0; i < sizeof state_names / sizeof state_names[0]; i++) {
        if (s && strcmp(s, state_names[i]) == 0) {
            *out = (enum mr_replica_state)i;
            return 0;
        }
    }
    return -1;
}

void mr_shard_index_name(char *out, size_t outlen, const char *index, uint32_t shard)
{
    snprintf(out, outlen, "%s__s%u", index, shard);
}

void mr_storage_name(char *out, size_t outlen, const char *uid, uint64_t generation)
{
    snprintf(out, outlen, "%s-%" PRIu64, uid, generation);
}

json_t *mr_placement_to_json(const mr_index *ix)
{
    json_t *shards = json_array();
    for (uint32_t s = 0; s < ix->shard_count; s++) {
        json_t *reps = json_array();
        for (size_t r = 0; r < ix->shards[s].count; r++) {
            const mr_replica *rep = &ix->shards[s].replicas[r];
            json_array_append_new(reps, json_pack("{s:s, s:s, s:I}", "node", rep->node, "state",
                                                  mr_replica_state_name(rep->state), "incarnation",
                                                  (json_int_t)rep->incarnation));
        }
        json_array_append_new(shards, reps);
    }
    return shards;
}

int mr_placement_from_json(const json_t *j, mr_index *ix)
{
    if (!json_is_array(j) || json_array_size(j) != ix->shard_count)
        return -1;
    mr_shard *shards = mr_calloc(ix->shard_count, sizeof *shards);
    for (uint32_t s = 0; s < ix->shard_count; s++) {
        shards[s].deleted_at = -1;
        if (ix->shards) { /* the target and the deletion point are not the placement's to change */
            shards[s].deleted_at = ix->shards[s].deleted_at;
            memcpy(shards[s].target, ix->shards[s].target, sizeof shards[s].target);
            shards[s].target_count = ix->shards[s].target_count;
        }
        json_t *reps = json_array_get(j, s);
        size_t r;
        json_t *rep;
        json_array_foreach(reps, r, rep) {
            if (r >= MR_MAX_REPLICAS)
                break;
            mr_replica *dst = &shards[s].replicas[r];
            const char *node = json_string_value(json_object_get(rep, "node"));
            if (!node || state_parse(json_string_value(json_object_get(rep, "state")), &dst->state)) {
                free(shards);
                return -1;
            }
            snprintf(dst->node, sizeof dst->node, "%s", node);
            dst->incarnation = (uint64_t)json_integer_value(json_object_get(rep, "incarnation"));
            shards[s].count++;
        }
    }
    free(ix->shards);
    ix->shards = shards;
    return 0;
}

void mr_target_to_json(const mr_index *ix, json_t *obj)
{
    if (!ix->planned_for)
        return;
    json_t *target = json_array();
    for (uint32_t s = 0; s < ix->shard_count; s++) {
        json_t *nodes = json_array();
        for (size_t r = 0; r < ix->shards[s].target_count; r++)
            json_array_append_new(nodes, json_string(ix->shards[s].target[r]));
        json_array_append_new(target, nodes);
    }
    char sig[24];
    snprintf(sig, sizeof sig, "%016" PRIx64, ix->planned_for);
    json_object_set_new(obj, "target", target);
    json_object_set_new(obj, "plannedFor", json_string(sig));
}

int mr_target_from_json(const json_t *obj, mr_index *ix)
{
    json_t *target = json_object_get(obj, "target");
    const char *sig = json_string_value(json_object_get(obj, "plannedFor"));
    if (!target && !sig)
        return 0;
    if (!sig || !json_is_array(target) || json_array_size(target) != ix->shard_count)
        return -1;
    char *end;
    uint64_t planned = strtoull(sig, &end, 16);
    if (*end || !planned)
        return -1;
    for (uint32_t s = 0; s < ix->shard_count; s++) {
        json_t *nodes = json_array_get(target, s);
        if (!json_is_array(nodes) || json_array_size(nodes) > MR_MAX_RF)
            return -1;
        size_t r;
        json_t *node;
        json_array_foreach(nodes, r, node)
            if (!json_is_string(node) || strlen(json_string_value(node)) >= MR_NODE_ID_MAX)
                return -1;
    }
    for (uint32_t s = 0; s < ix->shard_count; s++) {
        json_t *nodes = json_array_get(target, s);
        size_t r;
        json_t *node;
        json_array_foreach(nodes, r, node)
            snprintf(ix->shards[s].target[r], MR_NODE_ID_MAX, "%s", json_string_value(node));
        ix->shards[s].target_count = json_array_size(nodes);
    }
    ix->planned_for = planned;
    return 0;
}

json_t *mr_index_to_json(const mr_index *ix)
{
    json_t *j = json_pack("{s:s, s:s, s:I, s:s, s:i, s:i, s:i, s:i, s:s, s:b, s:s, s:s, s:o}", "uid", ix->uid, "storage",
                          ix->storage[0] ? ix->storage : ix->uid, "generation", (json_int_t)ix->generation,
                          "primaryKey", ix->primary_key, "shards", (json_int_t)ix->shard_count, "replicationFactor",
                          (json_int_t)ix->rf, "maxTotalHits", (json_int_t)ix->max_total_hits, "maxValuesPerFacet",
                          (json_int_t)ix->max_values_per_facet, "distinctAttribute", ix->distinct_attribute, "deleted",
                          ix->deleted, "createdAt", ix->created_at, "updatedAt", ix->updated_at, "placement",
                          mr_placement_to_json(ix));
    mr_target_to_json(ix, j);
    if (ix->deleted) {
        json_t *at = json_array();
        for (uint32_t s = 0; s < ix->shard_count; s++)
            json_array_append_new(at, json_integer(ix->shards[s].deleted_at));
        json_object_set_new(j, "deletedAt", at);
    }
    return j;
}

int mr_index_from_json(const json_t *j, mr_index *ix)
{
    memset(ix, 0, sizeof *ix);
    const char *uid = NULL, *pk = NULL, *created = NULL, *updated = NULL, *distinct = "", *storage = NULL;
    json_int_t shards = 0, rf = 0, mth = 0, mvpf = 100, generation = 0;
    int deleted = 0;
    json_t *placement = NULL, *deleted_at = NULL;
    if (json_unpack((json_t *)j, "{s:s, s?s, s?I, s:s, s:I, s:I, s:I, s?I, s?s, s?b, s?o, s:s, s:s, s:o}", "uid", &uid,
                    "storage", &storage, "generation", &generation, "primaryKey", &pk, "shards", &shards,
                    "replicationFactor", &rf, "maxTotalHits", &mth, "maxValuesPerFacet", &mvpf, "distinctAttribute",
                    &distinct, "deleted", &deleted, "deletedAt", &deleted_at, "createdAt", &created, "updatedAt",
                    &updated, "placement", &placement) != 0)
        return -1;
    if (shards < 1 || shards > MR_MAX_SHARDS || rf < 1 || generation < 0 || !json_is_array(placement) ||
        json_array_size(placement) != (size_t)shards || strlen(uid) > MR_INDEX_UID_MAX ||
        (storage && strlen(storage) > MR_STORAGE_MAX))
        return -1;
    snprintf(ix->uid, sizeof ix->uid, "%s", uid);
    snprintf(ix->storage, sizeof ix->storage, "%s", storage ? storage : uid);
    snprintf(ix->primary_key, sizeof ix->primary_key, "%s", pk);
    snprintf(ix->created_at, sizeof ix->created_at, "%s", created);
    snprintf(ix->updated_at, sizeof ix->updated_at, "%s", updated);
    ix->generation = (uint64_t)generation;
    ix->shard_count = (uint32_t)shards;
    ix->rf = (uint32_t)rf;
    ix->max_total_hits = (long)mth;
    ix->max_values_per_facet = (long)mvpf;
    snprintf(ix->distinct_attribute, sizeof ix->distinct_attribute, "%s", distinct);
    ix->deleted = deleted;
    if (mr_placement_from_json(placement, ix) != 0)
        return -1;
    for (uint32_t s = 0; s < ix->shard_count; s++) {
        json_t *at = json_array_get(deleted_at, s);
        ix->shards[s].deleted_at = json_is_integer(at) ? (int64_t)json_integer_value(at) : -1;
    }
    if (mr_target_from_json(j, ix) != 0) {
        mr_index_clear(ix);
        return -1;
    }
    return 0;
}

void mr_index_clear(mr_index *ix)
{
    free(ix->shards);
    ix->shards = NULL;
}

void mr_index_copy(mr_index *dst, const mr_index *src)
{
    *dst = *src;
    dst->shards = mr_calloc(src->shard_count, sizeof *dst->shards);
    memcpy(dst->shards, src->shards, src->shard_count * sizeof *dst->shards);
}

mr_topology *mr_topology_new(void)
{
    mr_topology *t = mr_calloc(1, sizeof *t);
    t->refs = 1;
    return t;
}

mr_topology *mr_topology_with_member(const mr_topology *t, const char *id, const mr_member *m)
{
    mr_topology *n = mr_topology_with(t, "", NULL); /* a copy: no incarnation has the empty storage */
    size_t k = 0;
    while (k < n->member_count && strcmp(n->members[k].node.id, id) != 0)
        k++;
    if (!m) {
        if (k < n->member_count) {
            memmove(&n->members[k], &n->members[k + 1], (n->member_count - k - 1) * sizeof n->members[0]);
            n->member_count--;
        }
        return n;
    }
    if (k == n->member_count) {
        if (k == MR_MAX_NODES)
            return n;
        n->member_count++;
    }
    n->members[k] = *m;
    return n;
}

const mr_member *mr_topology_member(const mr_topology *t, const char *id)
{
    for (size_t i = 0; i < t->member_count; i++)
        if (strcmp(t->members[i].node.id, id) == 0)
            return &t->members[i];
    return NULL;
}

size_t mr_topology_replicas_on(const mr_topology *t, const char *node)
{
    size_t n = 0;
    for (size_t i = 0; i < t->count; i++)
        for (uint32_t s = 0; s < t->indexes[i].shard_count; s++)
            n += mr_shard_replica_index(&t->indexes[i].shards[s], node) >= 0;
    return n;
}

int mr_shard_replica_index(const mr_shard *s, const char *node)
{
    for (size_t r = 0; r < s->count; r++)
        if (strcmp(s->replicas[r].node, node) == 0)
            return (int)r;
    return -1;
}

size_t mr_topology_active_ids(const mr_topology *t, const char **ids)
{
    size_t n = 0;
    for (size_t i = 0; i < t->member_count; i++)
        if (t->members[i].state == MR_MEMBER_ACTIVE)
            ids[n++] = t->members[i].node.id;
    return n;
}

static int by_id(const void *a, const void *b)
{
    return strcmp((*(const mr_member *const *)a)->node.id, (*(const mr_member *const *)b)->node.id);
}

uint64_t mr_topology_signature(const mr_topology *t)
{
    const mr_member *active[MR_MAX_NODES];
    size_t n = 0;
    for (size_t i = 0; i < t->member_count; i++)
        if (t->members[i].state == MR_MEMBER_ACTIVE)
            active[n++] = &t->members[i];
    qsort(active, n, sizeof active[0], by_id);
    XXH64_state_t *h = XXH64_createState();
    XXH64_reset(h, 0);
    for (size_t i = 0; i < n; i++) {
        /* NUL-separated, so no two memberships read alike */
        XXH64_update(h, active[i]->node.id, strlen(active[i]->node.id) + 1);
        XXH64_update(h, active[i]->node.zone, strlen(active[i]->node.zone) + 1);
    }
    uint64_t sig = XXH64_digest(h);
    XXH64_freeState(h);
    return sig ? sig : 1;
}

static void topology_free(mr_topology *t)
{
    for (size_t i = 0; i < t->count; i++)
        mr_index_clear(&t->indexes[i]);
    free(t->indexes);
    free(t);
}

/* The order of the snapshot: by uid, a uid's live incarnation first, then its dropped ones. */
static int index_order(const mr_index *a, const mr_index *b)
{
    int c = strcmp(a->uid, b->uid);
    if (c)
        return c;
    if (a->deleted != b->deleted)
        return a->deleted - b->deleted;
    return strcmp(a->storage, b->storage);
}

static int index_order_qsort(const void *a, const void *b)
{
    return index_order(a, b);
}

const mr_index *mr_topology_find(const mr_topology *t, const char *uid)
{
    size_t lo = 0, hi = t->count;
    while (lo < hi) { /* the first entry of uid, which is its live one if it has one */
        size_t mid = (lo + hi) / 2;
        if (strcmp(t->indexes[mid].uid, uid) < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    if (lo < t->count && strcmp(t->indexes[lo].uid, uid) == 0 && !t->indexes[lo].deleted)
        return &t->indexes[lo];
    return NULL;
}

const mr_index *mr_topology_find_storage(const mr_topology *t, const char *storage)
{
    for (size_t i = 0; i < t->count; i++)
        if (strcmp(t->indexes[i].storage, storage) == 0)
            return &t->indexes[i];
    return NULL;
}

mr_topology *mr_topology_with(const mr_topology *t, const char *storage, const mr_index *ix)
{
    mr_topology *n = mr_topology_new();
    memcpy(n->members, t->members, t->member_count * sizeof t->members[0]);
    n->member_count = t->member_count;
    n->indexes = mr_calloc(t->count + 1, sizeof *n->indexes);
    for (size_t i = 0; i < t->count; i++) {
        const mr_index *old = &t->indexes[i];
        int replaced = strcmp(old->storage, storage) == 0 ||
                       (ix && !ix->deleted && !old->deleted && strcmp(old->uid, ix->uid) == 0);
        if (!replaced)
            mr_index_copy(&n->indexes[n->count++], old);
    }
    if (ix)
        mr_index_copy(&n->indexes[n->count++], ix);
    qsort(n->indexes, n->count, sizeof *n->indexes, index_order_qsort);
    return n;
}

void mr_topology_holder_init(mr_topology_holder *h)
{
    pthread_mutex_init(&h->lock, NULL);
    h->current = mr_topology_new();
}

void mr_topology_holder_destroy(mr_topology_holder *h)
{
    mr_topology_release(h, h->current);
    pthread_mutex_destroy(&h->lock);
}

mr_topology *mr_topology_acquire(mr_topology_holder *h)
{
    pthread_mutex_lock(&h->lock);
    mr_topology *t = h->current;
    t->refs++;
    pthread_mutex_unlock(&h->lock);
    return t;
}

void mr_topology_release(mr_topology_holder *h, mr_topology *t)
{
    pthread_mutex_lock(&h->lock);
    int last = --t->refs == 0;
    pthread_mutex_unlock(&h->lock);
    if (last)
        topology_free(t);
}

void mr_topology_publish(mr_topology_holder *h, mr_topology *t)
{
    pthread_mutex_lock(&h->lock);
    mr_topology *old = h->current;
    h->current = t;
    int last = --old->refs == 0;
    pthread_mutex_unlock(&h->lock);
    if (last)
        topology_free(old);
}
