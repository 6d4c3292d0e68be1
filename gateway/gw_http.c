/* gw_http.c: the HTTP front: libmicrohttpd glue, body limits, the route table, replies. */
#include <linux/tcp.h>
#include <malloc.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "alloc.h"
#include "answer.h"
#include "auth.h"
#include "buf.h"
#include "codec.h"
#include "gw.h"
#include "head.h"
#include "util.h"

#define GW_TRIM_AFTER_BYTES (1 << 20)
#define GW_WATCH_MS 250
#define GW_BUDGET_STEP (1 << 20) /* a body of unknown length reserves its budget by this much */

/* What a connection libmicrohttpd holds is doing, for the watch: its idle timer restarts at
 * every byte, so it can't see a head or a body that arrives a byte at a time. */
enum conn_phase {
    CONN_IDLE,     /* between requests */
    CONN_BODY,     /* the head was read; the body arrives */
    CONN_BUSY,     /* a handler runs, or the answer is sent */
    CONN_ANSWERED, /* the watch answered 408 and shut the socket */
};

struct gw_conn {
    struct gw_conn *prev, *next;
    int fd;
    enum conn_phase phase;
    int64_t phase_ms;      /* when the phase began */
    uint64_t idle_rx;      /* idle: the bytes the socket had received when it became idle */
    int64_t first_byte_ms; /* idle: when bytes of a next request were first seen, or 0 */
    size_t body_bytes;     /* body: received so far */
};

struct gw_front {
    gw *g;
    struct MHD_Daemon *mhd;
    gw_door *door;
    pthread_mutex_t conns_lock; /* the list and every gw_conn's fields */
    struct gw_conn *conns;
    atomic_llong body_bytes;    /* reserved by bodies in flight, against body_budget_bytes */
    pthread_t watch;
    int watching; /* the watch thread was started */
    atomic_int stopping;
};

struct route {
    const char *method;
    const char *pattern; /* segments separated by '/', "*" captures one segment */
    gw_handler handler;
    int on_index;        /* the first capture names an existing index, resolved before the call */
    const char *action;  /* what the caller's key must allow (auth.h); NULL: public */
};

static const struct route routes[] = {
    {"GET", "health", gw_route_health, 0, NULL},
    {"GET", "_miroir", gw_route_console, 0, NULL},
    {"GET", "version", gw_route_version, 0, "version"},
    {"GET", "experimental-features", gw_route_features_get, 0, "experimental.get"},
    {"PATCH", "experimental-features", gw_route_features_update, 0, "experimental.update"},
    {"GET", "_miroir/topology", gw_route_topology, 0, "stats.get"},
    {"GET", "_miroir/nodes", gw_route_nodes_list, 0, "stats.get"},
    {"POST", "_miroir/nodes", gw_route_node_add, 0, MR_ACTION_CLUSTER_ADMIN},
    {"POST", "_miroir/nodes/*/drain", gw_route_node_drain, 0, MR_ACTION_CLUSTER_ADMIN},
    {"DELETE", "_miroir/nodes/*", gw_route_node_remove, 0, MR_ACTION_CLUSTER_ADMIN},
    {"POST", "_miroir/verify", gw_route_verify, 0, MR_ACTION_CLUSTER_ADMIN},
    {"POST", "_miroir/rebalance", gw_route_rebalance, 0, MR_ACTION_CLUSTER_ADMIN},
    {"GET", "_miroir/indexes/*/shards/*/documents", gw_route_shard_documents, 1, MR_ACTION_CLUSTER_ADMIN},
    {"GET", "metrics", gw_route_metrics, 0, "metrics.get"},
    {"POST", "indexes", gw_route_index_create, 0, "indexes.create"},
    {"GET", "indexes", gw_route_index_list, 0, "indexes.get"},
    {"GET", "indexes/*", gw_route_index_get, 1, "indexes.get"},
    {"DELETE", "indexes/*", gw_route_index_delete, 0, "indexes.delete"},
    {"PATCH", "indexes/*", gw_route_index_update, 0, "indexes.update"},
    {"POST", "swap-indexes", gw_route_swap_indexes, 0, "indexes.swap"},
    {"POST", "indexes/*/documents", gw_route_documents_add, 0, "documents.add"},
    {"PUT", "indexes/*/documents", gw_route_documents_update, 0, "documents.add"},
    {"GET", "indexes/*/documents", gw_route_documents_browse, 1, "documents.get"},
    {"POST", "indexes/*/documents/fetch", gw_route_documents_fetch, 1, "documents.get"},
    {"POST", "indexes/*/documents/delete-batch", gw_route_documents_delete_batch, 0, "documents.delete"},
    {"POST", "indexes/*/documents/delete", gw_route_documents_delete_filter, 0, "documents.delete"},
    {"DELETE", "indexes/*/documents", gw_route_documents_clear, 0, "documents.delete"},
    {"GET", "indexes/*/stats", gw_route_index_stats, 1, "stats.get"},
    {"GET", "stats", gw_route_stats, 0, "stats.get"},
    {"GET", "indexes/*/documents/*", gw_route_document_get, 1, "documents.get"},
    {"DELETE", "indexes/*/documents/*", gw_route_document_delete, 0, "documents.delete"},
    {"GET", "indexes/*/search", gw_route_search_get, 1, "search"},
    {"POST", "indexes/*/search", gw_route_search_post, 1, "search"},
    {"GET", "indexes/*/similar", gw_route_similar_get, 1, "search"},
    {"POST", "indexes/*/similar", gw_route_similar_post, 1, "search"},
    {"GET", "indexes/*/settings", gw_route_settings_get, 1, "settings.get"},
    {"PATCH", "indexes/*/settings", gw_route_settings_update, 0, "settings.update"},
    {"DELETE", "indexes/*/settings", gw_route_settings_reset, 0, "settings.update"},
    {"GET", "indexes/*/settings/*", gw_route_setting_get, 1, "settings.get"},
    {"PUT", "indexes/*/settings/*", gw_route_setting_update, 0, "settings.update"},
    {"PATCH", "indexes/*/settings/*", gw_route_setting_update, 0, "settings.update"},
    {"DELETE", "indexes/*/settings/*", gw_route_setting_reset, 0, "settings.update"},
    {"POST", "indexes/*/facet-search", gw_route_facet_search, 1, "search"},
    {"POST", "multi-search", gw_route_multi_search, 0, "search"},
    {"GET", "tasks", gw_route_tasks_list, 0, "tasks.get"},
    {"POST", "tasks/cancel", gw_route_tasks_cancel, 0, "tasks.cancel"},
    {"DELETE", "tasks", gw_route_tasks_delete, 0, "tasks.delete"},
    {"GET", "tasks/*", gw_route_task_get, 0, "tasks.get"},
    {"GET", "batches", gw_route_batches_list, 0, "tasks.get"},
    {"GET", "batches/*", gw_route_batch_get, 0, "tasks.get"},
    {"GET", "keys", gw_route_keys_list, 0, "keys.get"},
    {"POST", "keys", gw_route_key_create, 0, "keys.create"},
    {"GET", "keys/*", gw_route_key_get, 0, "keys.get"},
    {"PATCH", "keys/*", gw_route_key_update, 0, "keys.update"},
    {"DELETE", "keys/*", gw_route_key_delete, 0, "keys.delete"},
};

_Static_assert(sizeof routes / sizeof routes[0] < GW_ROUTE_SLOTS, "one metrics slot per route, and one spare");

int gw_route_at(size_t i, const char **method, const char **pattern)
{
    if (i >= sizeof routes / sizeof routes[0])
        return 0;
    *method = routes[i].method;
    *pattern = routes[i].pattern;
    return 1;
}

const char *gw_request_id(gw *g)
{
    const gw_request_context *ctx = pthread_getspecific(g->request_key);
    return ctx ? ctx->id : "-";
}

int64_t gw_request_deadline(gw *g)
{
    const gw_request_context *ctx = pthread_getspecific(g->request_key);
    return ctx ? ctx->deadline_ms : 0;
}

/* The client's X-Request-Id when it is a sane token, else a new one. */
static void request_id(gw *g, struct MHD_Connection *conn, char *out, size_t len)
{
    const char *given = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "X-Request-Id");
    size_t n = given ? strlen(given) : 0;
    int sane = n > 0 && n < len && n <= 64;
    for (size_t i = 0; sane && i < n; i++)
        sane = (given[i] >= 'a' && given[i] <= 'z') || (given[i] >= 'A' && given[i] <= 'Z') ||
               (given[i] >= '0' && given[i] <= '9') || given[i] == '-' || given[i] == '_' || given[i] == '.';
    if (sane)
        snprintf(out, len, "%s", given);
    else
        snprintf(out, len, "%llx-%llx", (unsigned long long)mr_now_ms(), atomic_fetch_add(&g->request_seq, 1));
}

/* Per-connection request state across libmicrohttpd's calls. */
struct upload {
    int begun;   /* the request's headers were read */
    char *query; /* the raw query string (libmicrohttpd hands the handler only its parsed form) */
    mr_buf body;
    size_t reserved; /* of the body budget, given back when the request ends */
    int too_large;
    int over_budget;
    int bad_path;  /* the target's path holds a control character */
    int responded; /* an answer was queued */
    struct gw_conn *link;
    int64_t started_ms;
    gw_request_context ctx;
};

void gw_reply(gw_response *res, int status, json_t *body)
{
    json_decref(res->body);
    res->status = status;
    res->body = body;
}

void gw_reply_error(gw_response *res, const mr_error *err)
{
    gw_reply(res, err->status, mr_error_json(err));
}

const char *gw_arg(const gw_request *req, const char *name)
{
    return MHD_lookup_connection_value(req->conn, MHD_GET_ARGUMENT_KIND, name);
}

json_t *gw_csv_list(const char *s)
{
    json_t *arr = json_array();
    char *copy = strdup(s), *save = NULL;
    for (char *t = strtok_r(copy, ",", &save); t; t = strtok_r(NULL, ",", &save))
        json_array_append_new(arr, json_string(t));
    free(copy);
    return arr;
}

json_t *gw_body_object(const gw_request *req, mr_error *err)
{
    if (req->body_len == 0) {
        mr_error_set(err, "missing_payload", "A json payload is missing.");
        return NULL;
    }
    json_error_t jerr;
    json_t *v = json_loadb(req->body, req->body_len, 0, &jerr);
    if (!v) {
        mr_error_set(err, "malformed_payload", "The json payload provided is malformed. `%s at line %d column %d`.",
                     jerr.text, jerr.line, jerr.column);
        return NULL;
    }
    if (!json_is_object(v)) {
        json_decref(v);
        mr_error_set(err, "bad_request", "Invalid value type: expected an object");
        return NULL;
    }
    return v;
}

const mr_index *gw_find_index(mr_topology *topo, const char *uid, mr_error *err)
{
    const mr_index *ix = mr_topology_find(topo, uid);
    if (!ix)
        mr_error_set(err, "index_not_found", "Index `%.200s` not found.", uid);
    return ix;
}

/* Matches path against pattern; fills captures (pointers into buf, which holds a copy of path). */
static int match(const char *pattern, const char *path, char *buf, size_t buflen, const char **captures)
{
    snprintf(buf, buflen, "%s", path);
    char *p = buf;
    const char *pat = pattern;
    int ncap = 0;
    for (;;) {
        size_t plen = strcspn(pat, "/");
        char *slash = strchr(p, '/');
        size_t seglen = slash ? (size_t)(slash - p) : strlen(p);
        if (plen == 1 && pat[0] == '*') {
            if (seglen == 0 || ncap == GW_MAX_CAPTURES)
                return 0;
            captures[ncap++] = p;
        } else if (plen != seglen || strncmp(pat, p, plen) != 0) {
            return 0;
        }
        int pat_more = pat[plen] == '/';
        if (!pat_more && !slash)
            break;
        if (pat_more != (slash != NULL))
            return 0;
        *slash = '\0';
        p = slash + 1;
        pat += plen + 1;
    }
    for (int i = 0; i < ncap; i++)
        MHD_http_unescape((char *)captures[i]);
    return 1;
}

/* The route for req's method and path, its index in the table, or -1. *path_known tells a
 * path some route has (under another method; their methods are added to allow). buf holds the
 * captures, trimmed the path without its slashes at either end. */
static int find_route(gw_request *req, char *trimmed, char *buf, size_t len, char *allow, size_t allow_len,
                      int *path_known)
{
    const char *path = req->path;
    while (*path == '/')
        path++;
    snprintf(trimmed, len, "%s", path);
    size_t n = strlen(trimmed);
    while (n > 0 && trimmed[n - 1] == '/')
        trimmed[--n] = '\0';
    *path_known = 0;
    for (size_t i = 0; i < sizeof routes / sizeof routes[0]; i++) {
        if (!match(routes[i].pattern, trimmed, buf, len, req->captures))
            continue;
        *path_known = 1;
        if (strcmp(routes[i].method, req->method) == 0)
            return (int)i;
        size_t used = strlen(allow);
        if (!strstr(allow, routes[i].method))
            snprintf(allow + used, allow_len - used, "%s%s", used ? ", " : "", routes[i].method);
    }
    return -1;
}

/* Rights first, as Meilisearch does: a key that may not see an index can't learn whether it
 * exists. Returns 0, or -1 with denied. */
static int authorize_route(gw *g, const struct route *r, gw_request *req, mr_error *denied)
{
    return gw_authorize(g, req, r->action, denied) ||
                   (strncmp(r->pattern, "indexes/*", 9) == 0 && gw_may_use(req, req->captures[0], denied))
               ? -1
               : 0;
}

/* Runs the route matching req; returns its index in the table, or GW_ROUTE_SLOTS - 1. */
static size_t dispatch(gw *g, gw_request *req, gw_response *res)
{
    char buf[4096], trimmed[4096];
    int path_known;
    int found = find_route(req, trimmed, buf, sizeof buf, res->allow, sizeof res->allow, &path_known);
    if (found >= 0) {
        const struct route *r = &routes[found];
        mr_error denied;
        if (authorize_route(g, r, req, &denied)) {
            gw_reply_error(res, &denied);
            return (size_t)found;
        }
        if (!r->on_index) {
            r->handler(g, req, res);
            return (size_t)found;
        }
        /* The snapshot is held for the whole call: req->ix stays valid even if the topology
         * changes meanwhile. */
        mr_topology *topo = mr_topology_acquire(mr_meta_topology(g->meta));
        mr_error err;
        req->ix = gw_find_index(topo, req->captures[0], &err);
        if (req->ix)
            r->handler(g, req, res);
        else
            gw_reply_error(res, &err);
        mr_topology_release(mr_meta_topology(g->meta), topo);
        return (size_t)found;
    }
    /* Meilisearch answers both with an empty body (SDKs then report the status line); Miroir's
     * own routes say what went wrong */
    if (strncmp(trimmed, "_miroir", 7) != 0) {
        res->status = path_known ? 405 : 404;
        return GW_ROUTE_SLOTS - 1;
    }
    mr_error e;
    if (path_known)
        mr_error_set(&e, "method_not_allowed", "Method `%s` is not allowed on `%.200s`.", req->method, req->path);
    else
        mr_error_set(&e, "not_found", "Route `%s %.200s` does not exist.", req->method, req->path);
    gw_reply_error(res, &e);
    return GW_ROUTE_SLOTS - 1;
}

/* A field of an error answer, for the log ("" when there is none). */
static const char *error_field(const gw_response *res, const char *name)
{
    const char *v = json_string_value(json_object_get(res->body, name));
    return v ? v : "";
}

static enum MHD_Result send_response(struct MHD_Connection *conn, gw_response *res, const char *rid)
{
    char *text = res->text ? res->text : res->body ? mr_json_dumps(res->body) : NULL;
    res->text = NULL; /* the response takes it */
    size_t len = text ? strlen(text) : 0;
    /* Every answer in the coding the client asked for, however small, as Meilisearch gives it:
     * some SDKs decode without looking at Content-Encoding. */
    const char *coding = len ? mr_pick_coding(MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "Accept-Encoding")) : NULL;
    char *packed;
    size_t packed_len;
    if (coding && mr_encode_body(coding, text, len, &packed, &packed_len) == 0) {
        free(text);
        text = packed;
        len = packed_len;
    } else {
        coding = NULL;
    }
    struct MHD_Response *r = MHD_create_response_from_buffer(len, text ? text : (char *)"", text ? MHD_RESPMEM_MUST_FREE : MHD_RESPMEM_PERSISTENT);
    if (text)
        MHD_add_response_header(r, "Content-Type", res->text_type ? res->text_type : "application/json");
    if (coding)
        MHD_add_response_header(r, "Content-Encoding", coding);
    MHD_add_response_header(r, "Vary", "Accept-Encoding");
    MHD_add_response_header(r, "X-Content-Type-Options", "nosniff");
    if (res->text_type && strncmp(res->text_type, "text/html", 9) == 0) /* the console: its own inline code only */
        MHD_add_response_header(r, "Content-Security-Policy",
                                "default-src 'self'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; img-src data:; "
                                "frame-ancestors 'none'");
    MHD_add_response_header(r, "X-Request-Id", rid);
    if (res->close)
        MHD_add_response_header(r, "Connection", "close");
    if (res->status == 405 && res->allow[0])
        MHD_add_response_header(r, "Allow", res->allow);
    enum MHD_Result ret = MHD_queue_response(conn, (unsigned)res->status, r);
    MHD_destroy_response(r);
    return ret;
}

/* Replaces a body sent with a Content-Encoding by its decoded bytes, held to the same size limit;
 * on failure the answer is in res. */
static int decode_upload(gw *g, struct MHD_Connection *conn, struct upload *up, gw_response *res)
{
    const char *coding = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "Content-Encoding");
    if (!coding || strcasecmp(coding, "identity") == 0 || !up->body.data)
        return 0;
    char *plain;
    size_t plain_len;
    mr_error e;
    if (mr_decode_body(coding, up->body.data, up->body.len, (size_t)g->cfg->max_body_bytes, &plain, &plain_len, &e)) {
        gw_reply_error(res, &e);
        return -1;
    }
    mr_buf_free(&up->body);
    up->body = (mr_buf){.data = plain, .len = plain_len, .cap = plain_len + 1};
    return 0;
}

/* ---- the connections libmicrohttpd holds, and their watch ---- */

static uint64_t bytes_received(int fd)
{
    struct tcp_info info;
    socklen_t len = sizeof info;
    return getsockopt(fd, IPPROTO_TCP, TCP_INFO, &info, &len) == 0 ? info.tcpi_bytes_received : 0;
}

static void enter_phase(gw_front *f, struct gw_conn *c, enum conn_phase phase)
{
    if (!c)
        return;
    pthread_mutex_lock(&f->conns_lock);
    if (c->phase != CONN_ANSWERED) {
        c->phase = phase;
        c->phase_ms = mr_now_ms();
        c->body_bytes = 0;
        c->first_byte_ms = 0;
        if (phase == CONN_IDLE)
            c->idle_rx = bytes_received(c->fd);
    }
    pthread_mutex_unlock(&f->conns_lock);
}

static void body_arrived(gw_front *f, struct gw_conn *c, size_t n)
{
    if (!c)
        return;
    pthread_mutex_lock(&f->conns_lock);
    c->body_bytes += n;
    pthread_mutex_unlock(&f->conns_lock);
}

/* Whether c has broken its deadline: a next request's head not ended within header_timeout_ms
 * of its first byte, or a body slower than body_min_rate once header_timeout_ms have passed. */
static int overdue(const mr_config *cfg, struct gw_conn *c, int64_t now)
{
    if (c->phase == CONN_IDLE) {
        if (!c->first_byte_ms && bytes_received(c->fd) > c->idle_rx)
            c->first_byte_ms = now;
        return c->first_byte_ms && now - c->first_byte_ms > cfg->header_timeout_ms;
    }
    if (c->phase == CONN_BODY)
        return now - c->phase_ms > cfg->header_timeout_ms + (int64_t)(c->body_bytes * 1000 / (size_t)cfg->body_min_rate);
    return 0;
}

static void *watch_connections(void *arg)
{
    gw_front *f = arg;
    mr_error e;
    mr_error_set(&e, "miroir_request_too_slow",
                 "The request did not arrive in time: its head within header_timeout_ms, its body at body_min_rate.");
    while (!atomic_load(&f->stopping)) {
        usleep(GW_WATCH_MS * 1000);
        int64_t now = mr_now_ms();
        pthread_mutex_lock(&f->conns_lock);
        for (struct gw_conn *c = f->conns; c; c = c->next) {
            if (!overdue(f->g->cfg, c, now))
                continue;
            /* libmicrohttpd's thread only reads this socket now, and the list keeps it open
             * (it is closed after the connection leaves the list): the answer goes out whole,
             * then the shutdown ends the read it waits in. */
            gw_answer_raw(c->fd, &e);
            shutdown(c->fd, SHUT_RDWR);
            c->phase = CONN_ANSWERED;
        }
        pthread_mutex_unlock(&f->conns_lock);
    }
    return NULL;
}

/* ---- one request ---- */

/* Takes n more bytes of the body budget for up; 0, or -1 when the budget can't spare them. */
static int reserve_body(gw_front *f, struct upload *up, size_t n)
{
    long long total = atomic_fetch_add(&f->body_bytes, (long long)n) + (long long)n;
    if (total > f->g->cfg->body_budget_bytes) {
        atomic_fetch_sub(&f->body_bytes, (long long)n);
        return -1;
    }
    up->reserved += n;
    return 0;
}

/* The two answers a body can get on its head or at its end. */
static void too_large(mr_error *e, const mr_config *cfg)
{
    mr_error_set(e, "payload_too_large", "The provided payload reached the size limit. The maximum accepted payload size is %ld bytes.",
                 cfg->max_body_bytes);
}

static void over_budget(mr_error *e, const mr_config *cfg)
{
    mr_error_set(e, "miroir_too_many_uploads", "Request bodies in flight have reached body_budget_bytes (%ld bytes); retry later.",
                 cfg->body_budget_bytes);
}

/* Counts an answer in the route's metrics and writes the access log line. */
static void account(gw *g, size_t route, const char *method, const char *url, const struct upload *up,
                    const gw_response *res)
{
    gw_route_counters *st = &g->routes[route];
    int64_t took_ms = mr_now_ms() - up->started_ms;
    mr_histogram_observe(&st->latency, (double)took_ms);
    atomic_fetch_add(&st->by_class[res->status / 100 < 6 ? res->status / 100 : 5], 1);
    /* The access log: the path without its query string, and the error code, never a header. */
    if (res->status >= 500)
        mr_log_request("warn", "gateway", up->ctx.id, "%s %s -> %d in %lld ms: %s", method, url, res->status,
                       (long long)took_ms, error_field(res, "message"));
    else if (g->cfg->access_log)
        mr_log_request("info", "gateway", up->ctx.id, "%s %s -> %d in %lld ms%s%s", method, url, res->status,
                       (long long)took_ms, res->status >= 400 ? " " : "", res->status >= 400 ? error_field(res, "code") : "");
}

/* What the head alone settles, answered before any body is read, so that a refused upload
 * costs the gateway nothing: a path with a control character, a Content-Length past
 * max_body_bytes, a caller the route refuses, a body the budget can't hold. Returns 1 when the
 * answer is queued (libmicrohttpd then reads no body, and closes the connection after it). */
static int answer_from_head(gw_front *f, struct MHD_Connection *conn, const char *url, const char *method,
                            struct upload *up)
{
    gw *g = f->g;
    const char *length = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_LENGTH);
    int chunked = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_TRANSFER_ENCODING) != NULL;
    unsigned long long declared = length ? strtoull(length, NULL, 10) : 0;
    int has_body = declared > 0 || chunked;
    mr_error e = {0};
    size_t route = GW_ROUTE_SLOTS - 1;
    if (up->bad_path) {
        mr_error_set(&e, "bad_request", "The request path holds a control character (raw or percent-encoded).");
    } else if (has_body) {
        /* the caller first, as a node checks the key before it reads the payload */
        gw_request req = {.conn = conn, .method = method, .path = url, .query = up->query};
        char buf[4096], trimmed[4096], allow[64] = "";
        int path_known;
        int found = find_route(&req, trimmed, buf, sizeof buf, allow, sizeof allow, &path_known);
        if (found >= 0 && authorize_route(g, &routes[found], &req, &e))
            ;
        else if (declared > (unsigned long long)g->cfg->max_body_bytes)
            too_large(&e, g->cfg);
        else if (found >= 0 && reserve_body(f, up, (size_t)declared))
            over_budget(&e, g->cfg);
        gw_caller_clear(&req.caller);
        if (found >= 0)
            route = (size_t)found;
    }
    if (!mr_failed(&e))
        return 0;
    gw_response res = {.close = 1};
    gw_reply_error(&res, &e);
    send_response(conn, &res, up->ctx.id);
    up->responded = 1;
    account(g, route, method, url, up, &res);
    json_decref(res.body);
    return 1;
}

/* Keeps n bytes of the body, within max_body_bytes and the budget; past either, the bytes are
 * dropped and the answer says why once the body has ended. */
static void keep_body(gw_front *f, struct upload *up, const char *data, size_t n)
{
    if (up->too_large || up->over_budget)
        return;
    if (up->body.len + n > (size_t)f->g->cfg->max_body_bytes) {
        up->too_large = 1;
        return;
    }
    if (up->body.len + n > up->reserved && reserve_body(f, up, up->body.len + n - up->reserved + GW_BUDGET_STEP)) {
        up->over_budget = 1;
        return;
    }
    /* a declared length is reserved whole: one allocation of the right size */
    mr_buf_add(&up->body, data, n, up->reserved + 1);
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *conn, const char *url, const char *method,
                                  const char *version, const char *upload_data, size_t *upload_data_size,
                                  void **con_cls)
{
    (void)version;
    gw_front *f = cls;
    gw *g = f->g;
    struct upload *up = *con_cls;
    if (!up->begun) {
        up->begun = 1;
        const union MHD_ConnectionInfo *info = MHD_get_connection_info(conn, MHD_CONNECTION_INFO_SOCKET_CONTEXT);
        up->link = info ? info->socket_context : NULL;
        enter_phase(f, up->link, CONN_BODY);
        request_id(g, conn, up->ctx.id, sizeof up->ctx.id);
        answer_from_head(f, conn, url, method, up);
        return MHD_YES;
    }
    if (*upload_data_size) {
        body_arrived(f, up->link, *upload_data_size);
        keep_body(f, up, upload_data, *upload_data_size);
        *upload_data_size = 0;
        return MHD_YES;
    }
    enter_phase(f, up->link, CONN_BUSY);
    gw_response res = {.status = 200};
    size_t route = GW_ROUTE_SLOTS - 1;
    up->ctx.deadline_ms = mr_now_ms() + g->cfg->request_timeout_ms; /* from the end of the upload */
    pthread_setspecific(g->request_key, &up->ctx);
    mr_error e;
    if (up->too_large) {
        too_large(&e, g->cfg);
        gw_reply_error(&res, &e);
    } else if (up->over_budget) {
        over_budget(&e, g->cfg);
        gw_reply_error(&res, &e);
    } else if (decode_upload(g, conn, up, &res) == 0) {
        gw_request req = {.conn = conn, .method = method, .path = url, .query = up->query,
                          .body = up->body.data ? up->body.data : "", .body_len = up->body.len};
        route = dispatch(g, &req, &res);
        gw_caller_clear(&req.caller);
    }
    enum MHD_Result ret = send_response(conn, &res, up->ctx.id);
    up->responded = 1;
    account(g, route, method, url, up, &res);
    json_decref(res.body);
    pthread_setspecific(g->request_key, NULL);
    return ret;
}

/* Every connection joins the watch's list for its life. */
static void on_connection(void *cls, struct MHD_Connection *conn, void **socket_context,
                          enum MHD_ConnectionNotificationCode code)
{
    gw_front *f = cls;
    if (code == MHD_CONNECTION_NOTIFY_STARTED) {
        atomic_fetch_add(&f->g->connections, 1);
        const union MHD_ConnectionInfo *info = MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CONNECTION_FD);
        struct gw_conn *c = mr_calloc(1, sizeof *c);
        c->fd = info ? info->connect_fd : -1;
        c->phase = CONN_IDLE;
        c->phase_ms = mr_now_ms();
        c->idle_rx = bytes_received(c->fd);
        pthread_mutex_lock(&f->conns_lock);
        c->next = f->conns;
        if (f->conns)
            f->conns->prev = c;
        f->conns = c;
        pthread_mutex_unlock(&f->conns_lock);
        *socket_context = c;
        return;
    }
    struct gw_conn *c = *socket_context;
    if (c) {
        pthread_mutex_lock(&f->conns_lock);
        if (c->prev)
            c->prev->next = c->next;
        else
            f->conns = c->next;
        if (c->next)
            c->next->prev = c->prev;
        pthread_mutex_unlock(&f->conns_lock);
        free(c);
        *socket_context = NULL;
    }
    atomic_fetch_sub(&f->g->connections, 1);
}

/* Every request's state begins here, where the URI is still as the client sent it. */
static void *on_uri(void *cls, const char *uri, struct MHD_Connection *conn)
{
    (void)cls;
    (void)conn;
    struct upload *up = mr_calloc(1, sizeof *up);
    up->started_ms = mr_now_ms();
    const char *q = strchr(uri, '?');
    up->query = mr_strdup(q ? q + 1 : "");
    up->bad_path = !mr_head_path_clean(uri);
    return up;
}

static void on_completed(void *cls, struct MHD_Connection *conn, void **con_cls, enum MHD_RequestTerminationCode toe)
{
    (void)conn;
    gw_front *f = cls;
    struct upload *up = *con_cls;
    if (!up)
        return;
    /* A body cut short: the client may still read, so say so before libmicrohttpd closes
     * (unless the watch has answered already). */
    if (up->begun && !up->responded && toe != MHD_REQUEST_TERMINATED_COMPLETED_OK &&
        toe != MHD_REQUEST_TERMINATED_DAEMON_SHUTDOWN && up->link) {
        pthread_mutex_lock(&f->conns_lock);
        if (up->link->phase != CONN_ANSWERED) {
            mr_error e;
            mr_error_set(&e, "bad_request", "The request body ended before its Content-Length (or last chunk).");
            gw_answer_raw(up->link->fd, &e);
            up->link->phase = CONN_ANSWERED;
        }
        pthread_mutex_unlock(&f->conns_lock);
    }
    atomic_fetch_sub(&f->body_bytes, (long long)up->reserved);
    enter_phase(f, up->link, CONN_IDLE);
    int large = up->body.cap >= GW_TRIM_AFTER_BYTES;
    mr_buf_free(&up->body);
    free(up->query);
    free(up);
    *con_cls = NULL;
    /* Parsing a large write body spreads its JSON over many small blocks in this thread's
     * arena; glibc keeps those pages after the free. Hand them back, at a cost that is small
     * next to the parse. */
    if (large)
        malloc_trim(0);
}

gw_front *gw_http_start(gw *g, char *err, size_t errlen)
{
    gw_front *f = mr_calloc(1, sizeof *f);
    f->g = g;
    pthread_mutex_init(&f->conns_lock, NULL);
    /* A thread per connection: handlers block on Kafka acks and node fan-out, and a slow one
     * must not hold up other clients. The front door accepts, and hands over only connections
     * with a whole request head, at most max_connections of them (a few more for its races with
     * closing ones); poll, not select, as descriptors run past FD_SETSIZE. */
    f->mhd = MHD_start_daemon(
        MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_THREAD_PER_CONNECTION | MHD_USE_POLL | MHD_USE_ITC |
            MHD_USE_NO_LISTEN_SOCKET | MHD_USE_ERROR_LOG,
        0, NULL, NULL, on_request, f, MHD_OPTION_CONNECTION_LIMIT, (unsigned)(g->cfg->max_connections + 16),
        MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)g->cfg->connection_timeout_s, MHD_OPTION_NOTIFY_COMPLETED, on_completed, f,
        MHD_OPTION_URI_LOG_CALLBACK, on_uri, NULL, MHD_OPTION_NOTIFY_CONNECTION, on_connection, f, MHD_OPTION_END);
    if (!f->mhd) {
        snprintf(err, errlen, "libmicrohttpd did not start");
        gw_http_stop(f);
        return NULL;
    }
    if (pthread_create(&f->watch, NULL, watch_connections, f)) {
        snprintf(err, errlen, "cannot start the connections' watch");
        gw_http_stop(f);
        return NULL;
    }
    f->watching = 1;
    f->door = gw_door_start(g, f->mhd, err, errlen);
    if (!f->door) {
        gw_http_stop(f);
        return NULL;
    }
    return f;
}

void gw_http_stop(gw_front *f)
{
    if (!f)
        return;
    gw_door_stop(f->door); /* no new connections first */
    atomic_store(&f->stopping, 1);
    if (f->watching)
        pthread_join(f->watch, NULL);
    if (f->mhd)
        MHD_stop_daemon(f->mhd);
    pthread_mutex_destroy(&f->conns_lock);
    free(f);
}
