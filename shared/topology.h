/* topology.h: indexes, their shards and replica placements, as one immutable snapshot.
 *
 * Ownership: a snapshot is built by one writer (the meta follower), published into an
 * mr_topology_holder, and read by any thread through acquire/release. A reader never sees a
 * snapshot change under it; the writer swaps in a new one. Who serves shard k is then a pure
 * function of the snapshot. */
#ifndef MIROIR_TOPOLOGY_H
#define MIROIR_TOPOLOGY_H

#include <jansson.h>
#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "config.h"
#include "record.h"

#define MR_MAX_REPLICAS 8 /* RF ≤ 3, plus replicas being built or retired during moves */
#define MR_MAX_SHARDS 1024
#define MR_STORAGE_MAX (MR_INDEX_UID_MAX + 21) /* "<uid>-<generation>" */
#define MR_MAX_RF 3

enum mr_replica_state {
    MR_REPLICA_READY,    /* caught up: serves reads, counts for task completion */
    MR_REPLICA_BUILDING, /* being filled by replaying the partition; takes writes, no reads */
    MR_REPLICA_RETIRING, /* leaving: no reads, no writes; its index is about to be dropped */
    MR_REPLICA_NEW,      /* placed; the rebalancer is clearing the node of any stale copy first */
};

typedef struct mr_replica {
    char node[MR_NODE_ID_MAX];
    enum mr_replica_state state;
    /* Which life of this replica: a rebuild starts a new one, and an applied offset counts only
     * for the incarnation that wrote it, so a stale offset can never skip history. */
    uint64_t incarnation;
} mr_replica;

enum mr_member_state {
    MR_MEMBER_ACTIVE,   /* placement may put replicas here */
    MR_MEMBER_DRAINING, /* its replicas move away; it stays a member (e.g. for maintenance) */
    MR_MEMBER_REMOVING, /* its replicas move away, then it leaves the cluster */
};

/* A Meilisearch node of the cluster, from miroir.meta (node/<id>). */
typedef struct mr_member {
    mr_node node;
    enum mr_member_state state;
} mr_member;

typedef struct mr_shard {
    mr_replica replicas[MR_MAX_REPLICAS];
    size_t count;
    /* For a dropped incarnation: the offset of its delete-index record in this shard's partition
     * (-1: none was written). Records after it were never meant for this incarnation. */
    int64_t deleted_at;
    /* Where the shard's replicas should be (place.h), as the rebalancer moves them there. */
    char target[MR_MAX_RF][MR_NODE_ID_MAX];
    size_t target_count;
} mr_shard;

/* An incarnation of an index: one life between its creation and its deletion. Each has storage of
 * its own, so nothing of an earlier life (documents, settings, offsets, task states) can reach a
 * later one; a dropped incarnation stays in the topology until its storage is collected. */
typedef struct mr_index {
    char uid[MR_INDEX_UID_MAX + 1];
    /* The name of everything physical: topics miroir.idx|in|dlq.<storage>, shard indexes
     * <storage>__s<k>, applied offsets. "<uid>-<generation>" at creation (mr_storage_name); a
     * swap exchanges the storages of two indexes. Never reused. */
    char storage[MR_STORAGE_MAX + 1];
    uint64_t generation; /* the uid's incarnation counter when this one was created */
    char primary_key[256]; /* "" until set or inferred */
    uint32_t shard_count;
    uint32_t rf;
    long max_total_hits;       /* pagination.maxTotalHits: caps hits and totals */
    long max_values_per_facet; /* faceting.maxValuesPerFacet: caps merged facet values */
    char distinct_attribute[256]; /* distinctAttribute: deduplicated across shards; "" for none */
    int deleted;               /* dropped: hidden from the API, kept until its storage is collected */
    /* The members (mr_topology_signature) the shards' targets were planned for; 0 for an index
     * placed before targets existed, by rendezvous alone, which the rebalancer plans anew. */
    uint64_t planned_for;
    char created_at[40];
    char updated_at[40];
    mr_shard *shards; /* shard_count entries, owned */
} mr_index;

typedef struct mr_topology {
    mr_index *indexes; /* owned, sorted by uid, the live incarnation of a uid before its dropped ones */
    size_t count;
    mr_member members[MR_MAX_NODES];
    size_t member_count;
    int refs;          /* guarded by the holder's mutex */
} mr_topology;

/* Index definitions travel as JSON in the meta topic. Returns a new reference. */
json_t *mr_index_to_json(const mr_index *ix);
/* Fills ix from JSON (ix->shards is allocated; free with mr_index_clear). Returns 0 or -1. */
int mr_index_from_json(const json_t *j, mr_index *ix);
void mr_index_clear(mr_index *ix);
/* Deep copy into dst (which must be cleared/uninitialised). */
void mr_index_copy(mr_index *dst, const mr_index *src);

/* The placement alone ([[{node, state, incarnation}, …], …]), as the rebalancer writes it. */
json_t *mr_placement_to_json(const mr_index *ix);
/* Replaces ix's placement with j's. Returns 0, or -1 (ix untouched) if j doesn't fit ix. */
int mr_placement_from_json(const json_t *j, mr_index *ix);
/* Sets "target" ([[node, …], …]) and "plannedFor" on obj from ix; nothing if ix has no plan. */
void mr_target_to_json(const mr_index *ix, json_t *obj);
/* Reads "target" and "plannedFor" from obj into ix (left as they are if obj has none). Returns 0,
 * or -1 (ix untouched) if they don't fit ix. */
int mr_target_from_json(const json_t *obj, mr_index *ix);

/* The live incarnation of uid; NULL if there is none. */
const mr_index *mr_topology_find(const mr_topology *t, const char *uid);
/* The incarnation whose storage is storage (dropped ones too); NULL if none. */
const mr_index *mr_topology_find_storage(const mr_topology *t, const char *storage);

/* Returns a new snapshot equal to t with the incarnation of storage replaced by ix (ix is copied),
 * or removed when ix is NULL. A live ix also ends any other live incarnation of its uid. t itself
 * is untouched. */
mr_topology *mr_topology_with(const mr_topology *t, const char *storage, const mr_index *ix);
mr_topology *mr_topology_new(void);
/* Returns a new snapshot equal to t with the member set (added or replaced), or removed when m
 * is NULL (then only id counts). */
mr_topology *mr_topology_with_member(const mr_topology *t, const char *id, const mr_member *m);

/* A member by id, or NULL. */
const mr_member *mr_topology_member(const mr_topology *t, const char *id);
/* How many replicas, in every state and index (deleted ones too), node holds. */
size_t mr_topology_replicas_on(const mr_topology *t, const char *node);
/* The position of node's replica in the shard, or -1. */
int mr_shard_replica_index(const mr_shard *s, const char *node);

/* Fills ids (MR_MAX_NODES entries) with the active members' ids; returns their number. The
 * pointers live as long as t. */
size_t mr_topology_active_ids(const mr_topology *t, const char **ids);
/* What placement depends on in the membership: the active members' ids and zones, hashed. Equal
 * for equal memberships whatever their order; never 0. */
uint64_t mr_topology_signature(const mr_topology *t);

typedef struct mr_topology_holder {
    pthread_mutex_t lock;
    mr_topology *current;
} mr_topology_holder;

void mr_topology_holder_init(mr_topology_holder *h);
void mr_topology_holder_destroy(mr_topology_holder *h);
/* Takes a reference to the current snapshot; give it back with mr_topology_release. */
mr_topology *mr_topology_acquire(mr_topology_holder *h);
void mr_topology_release(mr_topology_holder *h, mr_topology *t);
/* Publishes t (the holder takes the caller's reference). */
void mr_topology_publish(mr_topology_holder *h, mr_topology *t);

/* "<index>__s<k>": the Meilisearch index that holds one shard on a node. */
void mr_shard_index_name(char *out, size_t outlen, const char *index, uint32_t shard);

/* "<uid>-<generation>": the storage of a uid's generation-th incarnation. Unique: the generation
 * is all digits, so the last '-' tells the uid back, and a uid's generations only grow. */
void mr_storage_name(char *out, size_t outlen, const char *uid, uint64_t generation);

const char *mr_replica_state_name(enum mr_replica_state s);
const char *mr_member_state_name(enum mr_member_state s);
int mr_member_state_parse(const char *s, enum mr_member_state *out);

#endif
