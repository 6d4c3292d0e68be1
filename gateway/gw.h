/* gw.h: the gateway's context, its request and response, and the route handlers.
 *
 * Ownership: main owns the gw (config, Kafka producer, meta follower, HTTP client, node
 * health) for the life of the process. Each HTTP request owns its gw_request (body bytes) and
 * gw_response (body JSON) for the duration of one handler call. */
#ifndef MIROIR_GW_H
#define MIROIR_GW_H

#include <jansson.h>
#include <librdkafka/rdkafka.h>
#include <microhttpd.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>

#include "apierr.h"
#include "config.h"
#include "kafka.h"
#include "latency.h"
#include "meili.h"
#include "merge.h"
#include "meta.h"
#include "metrics.h"
#include "topology.h"

typedef struct gw_node_health {
    char id[MR_NODE_ID_MAX]; /* written once, before the slot is published */
    atomic_llong down_until_ms; /* 0 or a time before now: up */
    atomic_int consecutive_failures;
    atomic_int failed_check; /* its last health check failed: down until it answers again */
    atomic_llong bytes;      /* its database size, from its /stats a few seconds ago; -1: not known */
    mr_histogram upstream; /* latency of this node's answers, as the gateway sees them */
    mr_latency latency;    /* its recent latency, and whether it is passed over (latency.h) */
} gw_node_health;

#define GW_ROUTE_SLOTS 64 /* one per route of the table, the last for requests no route matched */

typedef struct gw_route_counters {
    mr_histogram latency;
    atomic_ullong by_class[6]; /* answers by status class: [2] is 2xx, … [5] is 5xx */
} gw_route_counters;

typedef struct gw {
    const mr_config *cfg;
    rd_kafka_t *producer;
    mr_meta *meta;
    mr_http *http;
    /* One circuit per node id ever seen; slots are claimed under health_lock and never reused. */
    gw_node_health health[MR_MAX_NODES];
    atomic_int health_count;
    pthread_mutex_t health_lock;
    gw_route_counters routes[GW_ROUTE_SLOTS];
    /* The gw_request_context of the request the calling thread serves (a connection's thread
     * serves one request at a time), so fan-out and logs can carry its id and deadline without
     * threading them through every call. */
    pthread_key_t request_key;
    atomic_ullong request_seq;
    _Atomic uint64_t write_seq; /* the last document sequence number given out (seq.h) */
    atomic_int stopping;
    /* API key lookup by value (gw_auth.c): rebuilt when the metadata's key set changes. */
    pthread_mutex_t keys_lock;
    json_t *keys_source;   /* the key set keys_by_value was built from */
    json_t *keys_by_value; /* derived value -> key record */
    atomic_int connections; /* open client connections, for the max_connections answer */
    /* Hedged shard requests (gw_scatter.c): every shard request earns hedge_percent hundredths of
     * a hedge, a hedge spends one (in thousandths), so hedges stay within that share. */
    atomic_llong hedge_budget_milli;
    atomic_ullong shard_requests, hedges, hedges_won, search_batches, window_retries;
    /* The index life cycle (gw_lifecycle.c). Lock order: writes, then defs, then ready_lock. */
    pthread_rwlock_t writes; /* read: producing to an incarnation; write: ending or swapping incarnations */
    pthread_mutex_t defs;    /* one writer of index/<uid> records at a time */
    pthread_mutex_t ready_lock;
    json_t *ready;           /* storage -> true: its index topic exists and starts with create-index records */
    pthread_mutex_t janitor_lock;
    pthread_cond_t janitor_wake;
    int janitor_due;         /* something for the janitor to do now, not at its next round */
} gw;

#define GW_MAX_CAPTURES 3

/* Who sent a request (gw_auth.c); owned by the request. */
typedef struct gw_caller {
    int open;     /* no master key is configured: every route is open */
    int master;   /* the master key */
    json_t *key;  /* the API key used, or the one that signed the tenant token */
    json_t *rules; /* a tenant token's searchRules, else NULL */
} gw_caller;

typedef struct gw_request {
    struct MHD_Connection *conn;
    const char *method;
    const char *path;
    const char *query; /* the query string as sent, still encoded, without its "?"; "" if none */
    const char *captures[GW_MAX_CAPTURES]; /* the "*" segments of the route, decoded */
    const mr_index *ix; /* for index routes: the index named by captures[0], valid during the call */
    const char *body;
    size_t body_len;
    gw_caller caller;
} gw_request;

typedef struct gw_response {
    int status;
    json_t *body; /* owned; NULL for an empty body */
    char *text;   /* owned; a non-JSON body (with text_type) instead of body */
    const char *text_type;
    int close; /* close the connection after this answer */
    char allow[64]; /* an Allow header's methods (a 405), or "" */
} gw_response;

typedef struct gw_request_context {
    char id[72];
    int64_t deadline_ms; /* the fan-out stops asking nodes after this (request_timeout_ms) */
} gw_request_context;

/* The id of the request this thread serves ("-" outside a request). */
const char *gw_request_id(gw *g);
/* The deadline of the request this thread serves (0: none). */
int64_t gw_request_deadline(gw *g);

/* Response helpers: each takes ownership of body. */
void gw_reply(gw_response *res, int status, json_t *body);
void gw_reply_error(gw_response *res, const mr_error *err);

/* A query-string argument, or NULL. */
const char *gw_arg(const gw_request *req, const char *name);
/* A query-string list ("a,b,c") as a new JSON array of strings. */
json_t *gw_csv_list(const char *s);
/* The request body parsed as a JSON object; NULL with err set (bad_request / malformed). */
json_t *gw_body_object(const gw_request *req, mr_error *err);

/* The offset (default 0) and limit (default 20) query arguments of a list route. Returns 0, or
 * -1 with err invalid_<resource>_offset / _limit, Meilisearch's codes. */
int gw_offset_limit(const gw_request *req, const char *resource, long *offset, long *limit, mr_error *err);

/* ---- authorization (gw_auth.c) ---- */
/* Identifies the caller of req from its Authorization header and checks it may perform action
 * (NULL: a public route). Returns 0, or -1 with err (401 / 403 as Meilisearch answers). */
int gw_authorize(gw *g, gw_request *req, const char *action, mr_error *err);
void gw_caller_clear(gw_caller *c);
/* Whether the caller may also perform action (beyond the route's own). */
int gw_may_act(const gw_request *req, const char *action);
/* Whether the caller's key (and tenant token) covers index. */
int gw_may_see(const gw_request *req, const char *index);
/* gw_may_see, or -1 with err (invalid_api_key naming the allowed indexes). */
int gw_may_use(const gw_request *req, const char *index, mr_error *err);
/* Whether the caller may see every index (the master key, or a key for "*"). */
int gw_may_use_all(const gw_request *req);
/* Whether the caller may see where the nodes are (their URLs): the master key, or a key with the
 * "*" action. Others learn node ids and states only. */
int gw_may_see_nodes(const gw_request *req);
/* ANDs a tenant token's filter for index into a search body. Returns 0 or -1 with err. */
int gw_apply_search_rules(const gw_request *req, const char *index, json_t *search, mr_error *err);
/* Creates Meilisearch's default keys once per cluster (when a master key is set). */
int gw_seed_keys(gw *g, mr_error *err);

/* Looks up an index; on failure sets err (index_not_found) and returns NULL. The returned index
 * lives as long as topo. */
const mr_index *gw_find_index(mr_topology *topo, const char *uid, mr_error *err);
/* Rewrites the names of ix's shard indexes in a node's error as ix's uid: internal names never
 * reach a client. */
void gw_error_for_client(mr_error *err, const mr_index *ix);

/* ---- nodes: health and replica choice (gw_nodes.c) ---- */
/* Copies the member's URL into url. Returns 0, or -1 if id is not a member. */
int gw_node_url(gw *g, const char *id, char *url, size_t len);
/* Cluster colour: green, yellow or red; shards_out (if not NULL) gets every shard's state, and
 * *zones_shared (if not NULL) how many shards have replicas sharing a zone that need not. */
const char *gw_cluster_health(gw *g, json_t *shards_out, size_t *zones_shared);
/* Returns the number of active members; *rf (if not NULL) gets the default replication factor. */
size_t gw_default_rf(gw *g, long *rf);
/* Copies every member (whatever its state) into out (MR_MAX_NODES entries); returns how many. */
size_t gw_members(gw *g, mr_member *out);
int gw_node_is_up(gw *g, const char *id);
/* The task as Meilisearch shows it, internal names rewritten (new reference). */
json_t *gw_task_view(gw *g, const json_t *task);
void gw_node_report(gw *g, const char *id, int ok);
/* A node's recent latency (ms): its smoothed mean, and a high percentile estimate (mean + 4 mean
 * deviations). Both 0 before its first answer. */
void gw_node_latency(gw *g, const char *id, double *mean_ms, double *high_ms);
/* Fills out with the replicas of shard that may serve reads, ranked for key: the ready ones in the
 * shard's in-sync set (each has applied every task reported succeeded), up nodes first, each
 * group by rendezvous on key. Returns their number. */
size_t gw_replica_order(gw *g, const mr_index *ix, uint32_t shard, uint64_t key, const char **out);
/* Asks a live node to check a request the way it checks its own, on a scratch index of its own
 * (path is appended to /indexes/<scratch>): its answer is Meilisearch's validation, errors
 * included, with the scratch index named uid, the client's. Returns 0 if it accepted it, or -1
 * with err (its 4xx, or no node reachable). */
int gw_node_check(gw *g, const char *uid, const char *method, const char *path, const char *body, mr_error *err);
/* Pings every node's /health; meant for a background thread. With measure, also reads each live
 * node's database size from its /stats (gw_node_bytes). */
void gw_nodes_check(gw *g, int measure_sizes);
/* A member's database size in bytes as last measured, or -1 if not known. */
long long gw_node_bytes(gw *g, const char *id);

/* ---- fan-out (gw_scatter.c) ---- */
typedef struct gw_shard_call {
    const mr_index *ix;
    uint32_t shard;
    uint64_t key;     /* ranks the shard's replicas (rendezvous): equal keys meet equal replicas */
    const char *method;
    char path[1700];  /* appended to the node's URL (at most 256 bytes) */
    const char *body; /* may be NULL; owned by the caller */
    int raw;          /* keep the 2xx answer as text (raw_answer) instead of parsing it */
    int search;       /* a search (gw_search_call): may go in one /multi-search with the query's
                       * other searches bound for the same node (batch_shard_searches), and its
                       * hits are read as stubs (answer.h) */
    const char *distinct; /* with search: the attribute the merge deduplicates on ("" for none) */
    int allow_missing; /* may stay unanswered (answer and error both empty) when no replica of its
                        * shard can be reached: a search that allows partial results */
    json_t *answer;   /* out: the parsed 2xx answer, owned by the call (gw_scatter_clear) */
    char *raw_answer; /* out, with raw: the 2xx answer's bytes, owned by the call */
    mr_error error;   /* out: a node's 4xx, passed through */
} gw_shard_call;

/* Runs every call on a replica of its shard (rendezvous order on its key, up nodes first, slow
 * ones last), in parallel, failing over to the next replica when a node doesn't answer and
 * hedging a late call on another replica. Returns 0 when every call has an answer (or may go
 * without: allow_missing); else -1 with err: the first node 4xx (*failed, if not NULL, is its
 * index), miroir_request_timeout or miroir_shard_unavailable. */
int gw_scatter(gw *g, gw_shard_call *calls, size_t n, mr_error *err, size_t *failed);
void gw_scatter_clear(gw_shard_call *calls, size_t n);
/* POSTs body to one shard (suffix: after /indexes/<shard index>) and passes its 2xx answer to
 * res unparsed, where the node's answer is the client's. Returns 0, or -1 with err. */
int gw_pass_through(gw *g, const mr_index *ix, uint32_t shard, uint64_t key, const char *suffix, const json_t *body,
                    gw_response *res, mr_error *err);
/* A search of shard with body (borrowed); distinct (borrowed, "" for none) is the attribute the
 * merge deduplicates on. */
void gw_search_call(gw_shard_call *call, const mr_index *ix, uint32_t shard, uint64_t key, const char *body,
                    const char *distinct);
/* "/indexes/<index>__s<shard><suffix>" */
void gw_shard_path(char *out, size_t outlen, const mr_index *ix, uint32_t shard, const char *suffix);

/* ---- one search over the shards of one index (gw_search.c) ---- */

/* A GET route's parameters in Meilisearch's query-string form: lists are comma-separated, a
 * filter is JSON when it reads as JSON. */
typedef struct gw_get_param {
    const char *name;
    enum { GW_P_STRING, GW_P_INT, GW_P_BOOL, GW_P_LIST, GW_P_FLOAT, GW_P_FILTER } kind;
} gw_get_param;
/* The body a GET request's parameters (params, ended by a NULL name) stand for: a new object, or
 * NULL with err (code_prefix + the parameter's snake_case name, as Meilisearch names it). */
json_t *gw_params_body(const gw_request *req, const gw_get_param *params, const char *code_prefix, mr_error *err);

typedef struct gw_query {
    const mr_index *ix;
    mr_search_req sreq;
    json_t *shard_body; /* what every shard is asked */
    char *text;         /* shard_body as text */
    uint64_t key;       /* replica affinity */
    size_t narrow;      /* the narrowed window the shards were asked for first (0: none) */
    char *narrow_text;  /* the body asking for it */
} gw_query;

/* Validates body (borrowed; the query keeps a reference) for ix. Returns 0 or -1 with err. */
int gw_query_prepare(gw_query *q, const mr_index *ix, json_t *body, mr_error *err);
/* Fills ix->shard_count calls, one per shard. */
void gw_query_calls(const gw_query *q, gw_shard_call *calls);
/* Narrowed shard windows (merge.h, docs/search.md): if the query is narrowed, its calls (from
 * gw_query_calls) ask for the narrowed window instead (slim: the first of two phases). After
 * their scatter, gw_query_widen asks again, with body (the whole window), the shards whose
 * narrowed answer may lack hits of the page, and puts their answers in place. Returns 0 (also
 * when the query was not narrowed), or -1 with err if a shard asked again could not answer;
 * partial: a shard asked again that no replica answers is left without an answer. */
void gw_query_narrow(gw *g, gw_query *q, gw_shard_call *calls, int slim);
int gw_query_widen(gw *g, gw_query *q, gw_shard_call *calls, const char *body, int partial, mr_error *err);
/* Merges the answered calls into the client's answer (new reference); see mr_search_merge for
 * short_answer (may be NULL). */
json_t *gw_query_merge(const gw_query *q, gw_shard_call *calls, int *short_answer);
/* Scatters and merges, asking again for more when distinct left the page short; over
 * two_phase_min_shards shards or more, in two phases (query, then fetch: gw_search.c). Returns
 * the answer, or NULL with err. */
json_t *gw_query_run(gw *g, gw_query *q, mr_error *err);
/* gw_query_run; with partial, shards without a reachable replica are left out, and the answer
 * names them ("missingShards"). */
json_t *gw_query_run_partial(gw *g, gw_query *q, int partial, mr_error *err);
void gw_query_clear(gw_query *q);

/* The stats of one index summed over its shards, shaped like a node's answer (new reference),
 * or NULL with err. */
json_t *gw_index_stats(gw *g, const mr_index *ix, mr_error *err);

/* ---- writes (gw_write.c) ---- */
/* A write in progress: it holds g->writes for reading, so no deletion or swap ends its
 * incarnation meanwhile, and the topology snapshot its index lives in. */
typedef struct gw_write {
    mr_topology *topo;
    int locked;
} gw_write;
/* Starts a write to uid's live incarnation. With create, makes the incarnation first if there is
 * none and the caller's key may create indexes (as Meilisearch creates an index on a first write).
 * Returns the index, or NULL with err (index_not_found, or why it could not be made). Either way
 * gw_write_end ends it. */
const mr_index *gw_write_begin(gw *g, const gw_request *req, const char *uid, int create, gw_write *w,
                               mr_error *err);
/* Ends a write; a no-op for a zeroed w. */
void gw_write_end(gw *g, gw_write *w);
/* "miroir.idx.<storage>" and its kin. */
void gw_topic_of(char *out, size_t outlen, const char *prefix, const char *storage);
/* Produces records and records a task; answers 202 with the task summary or an error. The task
 * keeps the parts it has and gains one per partition written. */
int gw_produce_task(gw *g, mr_produce_msg *msgs, size_t n, json_t *task, gw_response *res);
/* Produces one control record per partition, so index-wide operations keep their order with
 * documents, and answers with its task. */
int gw_produce_control(gw *g, const mr_index *ix, enum mr_op op, const json_t *value, json_t *task,
                       gw_response *res);
/* Records a task that failed before it wrote anything (Meilisearch enqueues it and fails it). */
void gw_failed_task(gw *g, const char *index_uid, const char *type, json_t *details, const mr_error *why,
                    gw_response *res);
/* Makes sure an incarnation's index topic exists and every partition starts with a create-index
 * record, so nothing is produced ahead of it. Cheap once done. Returns 0 or -1 with err. */
int gw_ready_storage(gw *g, const mr_index *ix, mr_error *err);

/* ---- the index life cycle (gw_lifecycle.c) ---- */
/* Creates a new incarnation of uid (a storage of its own); the caller holds no lock. On success
 * *task_out is the indexCreation task record to write (it fails with index_already_exists when
 * uid has a live incarnation). Returns 0 or -1 with err (bad arguments, Kafka). */
int gw_create_index(gw *g, const char *uid, const char *primary_key, long shards, long rf, json_t **task_out,
                    mr_error *err);
/* Makes uid's live incarnation, with the index defaults, if it has none (a write to a missing
 * index, for a key that may create indexes). Returns 0 or -1 with err. */
int gw_create_implicitly(gw *g, const char *uid, mr_error *err);
/* Deletes uid's live incarnation (see gw_lifecycle.c) and answers with its task. */
void gw_delete_index(gw *g, const char *uid, gw_response *res);
/* Rewrites the live definition of ix's uid with update applied to a copy of it, if ix is still its
 * live incarnation (stamping updatedAt). Returns 0 or -1 with err. */
int gw_update_definition(gw *g, const mr_index *ix, void (*update)(mr_index *, const void *), const void *arg,
                         mr_error *err);
/* An update for gw_update_definition: the primary key (arg, a string) an index takes from its
 * first write or from PATCH /indexes/{uid}, as on one node. */
void gw_set_primary_key(mr_index *ix, const void *pk);
/* 0 if uid is a valid index uid, else -1 with Meilisearch's invalid_index_uid error. */
int gw_check_uid(const char *uid, mr_error *err);
/* Writes live definitions that change together (a swap, a rename) in one metadata record. */
int gw_swap_definitions(gw *g, const json_t *defs, mr_error *err);
/* The janitor: prepares new incarnations' topics, collects dropped ones, records finished tasks.
 * Runs until g->stopping. */
void *gw_janitor(void *g);
/* Asks the janitor to run now. */
void gw_janitor_poke(gw *g);
/* The dropped incarnations being collected, and what each waits for (new reference). */
json_t *gw_collecting(gw *g);

/* ---- route handlers ---- */
typedef void (*gw_handler)(gw *g, const gw_request *req, gw_response *res);
void gw_route_health(gw *g, const gw_request *req, gw_response *res);
void gw_route_version(gw *g, const gw_request *req, gw_response *res);
void gw_route_features_get(gw *g, const gw_request *req, gw_response *res);
void gw_route_features_update(gw *g, const gw_request *req, gw_response *res);
void gw_route_topology(gw *g, const gw_request *req, gw_response *res);
void gw_route_nodes_list(gw *g, const gw_request *req, gw_response *res);
void gw_route_node_add(gw *g, const gw_request *req, gw_response *res);
void gw_route_node_drain(gw *g, const gw_request *req, gw_response *res);
void gw_route_node_remove(gw *g, const gw_request *req, gw_response *res);
void gw_route_verify(gw *g, const gw_request *req, gw_response *res);
void gw_route_rebalance(gw *g, const gw_request *req, gw_response *res);
void gw_route_shard_documents(gw *g, const gw_request *req, gw_response *res);
void gw_route_metrics(gw *g, const gw_request *req, gw_response *res);

/* The route table, for metrics: route i's method and pattern; false past the last. */
int gw_route_at(size_t i, const char **method, const char **pattern);
/* Records the upstream latency of one node answer. */
void gw_node_observe(gw *g, const char *id, double ms);
void gw_route_index_create(gw *g, const gw_request *req, gw_response *res);
void gw_route_index_list(gw *g, const gw_request *req, gw_response *res);
void gw_route_index_delete(gw *g, const gw_request *req, gw_response *res);
void gw_route_index_update(gw *g, const gw_request *req, gw_response *res);
void gw_route_swap_indexes(gw *g, const gw_request *req, gw_response *res);
void gw_route_index_get(gw *g, const gw_request *req, gw_response *res);
void gw_route_documents_add(gw *g, const gw_request *req, gw_response *res);
void gw_route_documents_update(gw *g, const gw_request *req, gw_response *res);
void gw_route_documents_browse(gw *g, const gw_request *req, gw_response *res);
void gw_route_documents_fetch(gw *g, const gw_request *req, gw_response *res);
void gw_route_documents_delete_batch(gw *g, const gw_request *req, gw_response *res);
void gw_route_documents_delete_filter(gw *g, const gw_request *req, gw_response *res);
void gw_route_documents_clear(gw *g, const gw_request *req, gw_response *res);
void gw_route_index_stats(gw *g, const gw_request *req, gw_response *res);
void gw_route_stats(gw *g, const gw_request *req, gw_response *res);
void gw_route_document_get(gw *g, const gw_request *req, gw_response *res);
void gw_route_document_delete(gw *g, const gw_request *req, gw_response *res);
void gw_route_search_get(gw *g, const gw_request *req, gw_response *res);
void gw_route_similar_get(gw *g, const gw_request *req, gw_response *res);
void gw_route_similar_post(gw *g, const gw_request *req, gw_response *res);
void gw_route_search_post(gw *g, const gw_request *req, gw_response *res);
void gw_route_settings_get(gw *g, const gw_request *req, gw_response *res);
void gw_route_settings_update(gw *g, const gw_request *req, gw_response *res);
void gw_route_settings_reset(gw *g, const gw_request *req, gw_response *res);
void gw_route_setting_get(gw *g, const gw_request *req, gw_response *res);
void gw_route_setting_update(gw *g, const gw_request *req, gw_response *res);
void gw_route_setting_reset(gw *g, const gw_request *req, gw_response *res);
void gw_route_facet_search(gw *g, const gw_request *req, gw_response *res);
void gw_route_tasks_list(gw *g, const gw_request *req, gw_response *res);
void gw_route_batches_list(gw *g, const gw_request *req, gw_response *res);
void gw_route_batch_get(gw *g, const gw_request *req, gw_response *res);
void gw_route_tasks_cancel(gw *g, const gw_request *req, gw_response *res);
void gw_route_tasks_delete(gw *g, const gw_request *req, gw_response *res);
void gw_route_multi_search(gw *g, const gw_request *req, gw_response *res);
void gw_route_task_get(gw *g, const gw_request *req, gw_response *res);
void gw_route_keys_list(gw *g, const gw_request *req, gw_response *res);
void gw_route_key_get(gw *g, const gw_request *req, gw_response *res);
void gw_route_key_create(gw *g, const gw_request *req, gw_response *res);
void gw_route_key_update(gw *g, const gw_request *req, gw_response *res);
void gw_route_key_delete(gw *g, const gw_request *req, gw_response *res);
void gw_route_console(gw *g, const gw_request *req, gw_response *res);

/* Starts the HTTP daemon; NULL on failure. */
/* The HTTP front: the door, libmicrohttpd behind it, and the watch over its connections. */
typedef struct gw_front gw_front;
gw_front *gw_http_start(gw *g, char *err, size_t errlen);
void gw_http_stop(gw_front *front);

/* ---- the front door (gw_door.c) ---- */
typedef struct gw_door gw_door;
/* Listens on gateway_listen and hands each connection to mhd (started with
 * MHD_USE_NO_LISTEN_SOCKET) once its client has sent a whole request head. NULL with err. */
gw_door *gw_door_start(gw *g, struct MHD_Daemon *mhd, char *err, size_t errlen);
void gw_door_stop(gw_door *door);
/* Writes a small whole error answer, with Connection: close, on a socket nothing else writes
 * to at the moment. */
void gw_answer_raw(int fd, const mr_error *e);

#endif
