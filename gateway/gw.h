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
    mr_histogram upstream; /* latency of this node's answers, as the gateway sees them */
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
    atomic_int stopping;
    /* API key lookup by value (gw_auth.c): rebuilt when the metadata's key set changes. */
    pthread_mutex_t keys_lock;
    json_t *keys_source;   /* the key set keys_by_value was built from */
    json_t *keys_by_value; /* derived value -> key record */
    atomic_int connections; /* open client connections, for the max_connections answer */
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
/* ANDs a tenant token's filter for index into a search body. Returns 0 or -1 with err. */
int gw_apply_search_rules(const gw_request *req, const char *index, json_t *search, mr_error *err);
/* Creates Meilisearch's default keys once per cluster (when a master key is set). */
int gw_seed_keys(gw *g, mr_error *err);

/* Looks up an index; on failure sets err (index_not_found) and returns NULL. The returned index
 * lives as long as topo. */
const mr_index *gw_find_index(mr_topology *topo, const char *uid, mr_error *err);

/* ---- nodes: health and replica choice (gw_nodes.c) ---- */
/* Copies the member's URL into url. Returns 0, or -1 if id is not a member. */
int gw_node_url(gw *g, const char *id, char *url, size_t len);
/* Cluster colour: green, yellow or red; shards_out (if not NULL) gets the degraded shards. */
const char *gw_cluster_health(gw *g, json_t *shards_out);
/* Returns the number of active members; *rf (if not NULL) gets the default replication factor. */
size_t gw_default_rf(gw *g, long *rf);
/* Copies every member (whatever its state) into out (MR_MAX_NODES entries); returns how many. */
size_t gw_members(gw *g, mr_member *out);
int gw_node_is_up(gw *g, const char *id);
/* gw_node_is_up with the signature task views take. */
int gw_node_live(void *g, const char *id);
/* The task as Meilisearch shows it, seen with this gateway's node health (new reference). */
json_t *gw_task_view(gw *g, const json_t *task);
void gw_node_report(gw *g, const char *id, int ok);
/* Fills out with the ready replicas of shard, ranked for key: up nodes first, each group by
 * rendezvous on key. Returns their number. */
size_t gw_replica_order(gw *g, const mr_index *ix, uint32_t shard, uint64_t key, const char **out);
/* Pings every node's /health; meant for a background thread. */
void gw_nodes_check(gw *g);

/* ---- fan-out (gw_scatter.c) ---- */
typedef struct gw_shard_call {
    const mr_index *ix;
    uint32_t shard;
    uint64_t key;     /* ranks the shard's replicas (rendezvous): equal keys meet equal replicas */
    const char *method;
    char path[1700];  /* appended to the node's URL (at most 256 bytes) */
    const char *body; /* may be NULL; owned by the caller */
    int raw;          /* keep the 2xx answer as text (raw_answer) instead of parsing it */
    json_t *answer;   /* out: the parsed 2xx answer, owned by the call (gw_scatter_clear) */
    char *raw_answer; /* out, with raw: the 2xx answer's bytes, owned by the call */
    mr_error error;   /* out: a node's 4xx, passed through */
} gw_shard_call;

/* Runs every call on a replica of its shard (rendezvous order on its key, up nodes first), in
 * parallel, failing over to the next replica when a node doesn't answer. Returns 0 when every
 * call has an answer; else -1 with err: the first node 4xx (*failed, if not NULL, is its index),
 * or miroir_shard_unavailable. */
int gw_scatter(gw *g, gw_shard_call *calls, size_t n, mr_error *err, size_t *failed);
void gw_scatter_clear(gw_shard_call *calls, size_t n);
/* "/indexes/<index>__s<shard><suffix>" */
void gw_shard_path(char *out, size_t outlen, const mr_index *ix, uint32_t shard, const char *suffix);

/* ---- one search over the shards of one index (gw_search.c) ---- */
typedef struct gw_query {
    const mr_index *ix;
    mr_search_req sreq;
    json_t *shard_body; /* what every shard is asked */
    char *text;         /* shard_body as text */
    uint64_t key;       /* replica affinity */
} gw_query;

/* Validates body (borrowed; the query keeps a reference) for ix. Returns 0 or -1 with err. */
int gw_query_prepare(gw_query *q, const mr_index *ix, json_t *body, mr_error *err);
/* Fills ix->shard_count calls, one per shard. */
void gw_query_calls(const gw_query *q, gw_shard_call *calls);
/* Merges the answered calls into the client's answer (new reference); see mr_search_merge for
 * short_answer (may be NULL). */
json_t *gw_query_merge(const gw_query *q, gw_shard_call *calls, int64_t started_ms, int *short_answer);
/* Scatters and merges, asking again for more when distinct left the page short. Returns the
 * answer, or NULL with err. */
json_t *gw_query_run(gw *g, gw_query *q, int64_t started_ms, mr_error *err);
void gw_query_clear(gw_query *q);

/* The stats of one index summed over its shards, shaped like a node's answer (new reference),
 * or NULL with err. */
json_t *gw_index_stats(gw *g, const mr_index *ix, mr_error *err);

/* ---- writes (gw_documents.c) ---- */
/* Produces records and records a task; answers 202 with the task summary or an error. */
int gw_produce_task(gw *g, mr_produce_msg *msgs, size_t n, json_t *task, gw_response *res);
/* Produces one control record per partition, so index-wide operations keep their order with
 * documents, and answers with its task. */
int gw_produce_control(gw *g, const mr_index *ix, enum mr_op op, const json_t *value, json_t *task,
                       gw_response *res);
/* Writes ix as the index's definition in the metadata (stamping updatedAt) and waits until
 * this gateway reads it back. Returns 0 or -1 with err. */
int gw_put_index(gw *g, mr_index *ix, mr_error *err);
/* Creates an index (used by POST /indexes and by a write to an unknown index). */
int gw_create_index(gw *g, const char *uid, const char *primary_key, long shards, long rf, json_t **task_out,
                    mr_error *err);

/* ---- route handlers ---- */
typedef void (*gw_handler)(gw *g, const gw_request *req, gw_response *res);
void gw_route_health(gw *g, const gw_request *req, gw_response *res);
void gw_route_version(gw *g, const gw_request *req, gw_response *res);
void gw_route_topology(gw *g, const gw_request *req, gw_response *res);
void gw_route_nodes_list(gw *g, const gw_request *req, gw_response *res);
void gw_route_node_add(gw *g, const gw_request *req, gw_response *res);
void gw_route_node_drain(gw *g, const gw_request *req, gw_response *res);
void gw_route_node_remove(gw *g, const gw_request *req, gw_response *res);
void gw_route_verify(gw *g, const gw_request *req, gw_response *res);
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
void gw_route_search_post(gw *g, const gw_request *req, gw_response *res);
void gw_route_settings_get(gw *g, const gw_request *req, gw_response *res);
void gw_route_settings_update(gw *g, const gw_request *req, gw_response *res);
void gw_route_settings_reset(gw *g, const gw_request *req, gw_response *res);
void gw_route_setting_get(gw *g, const gw_request *req, gw_response *res);
void gw_route_setting_update(gw *g, const gw_request *req, gw_response *res);
void gw_route_setting_reset(gw *g, const gw_request *req, gw_response *res);
void gw_route_facet_search(gw *g, const gw_request *req, gw_response *res);
void gw_route_tasks_list(gw *g, const gw_request *req, gw_response *res);
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
struct MHD_Daemon *gw_http_start(gw *g, char *err, size_t errlen);

#endif
