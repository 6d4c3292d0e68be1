/* gw_http.c: the HTTP front: libmicrohttpd glue, body limits, the route table, replies. */
#include <arpa/inet.h>
#include <malloc.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "auth.h"
#include "gw.h"
#include "util.h"

#define GW_OVER_CAPACITY_SLOTS 64 /* connections past max_connections that still get an answer */
#define GW_TRIM_AFTER_BYTES (1 << 20)

static const char over_capacity_mark = 1; /* only its address is used: a connection's mark */

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
    {"GET", "_miroir/topology", gw_route_topology, 0, "stats.get"},
    {"GET", "_miroir/nodes", gw_route_nodes_list, 0, "stats.get"},
    {"POST", "_miroir/nodes", gw_route_node_add, 0, MR_ACTION_CLUSTER_ADMIN},
    {"POST", "_miroir/nodes/*/drain", gw_route_node_drain, 0, MR_ACTION_CLUSTER_ADMIN},
    {"DELETE", "_miroir/nodes/*", gw_route_node_remove, 0, MR_ACTION_CLUSTER_ADMIN},
    {"POST", "_miroir/verify", gw_route_verify, 0, MR_ACTION_CLUSTER_ADMIN},
    {"GET", "metrics", gw_route_metrics, 0, "metrics.get"},
    {"POST", "indexes", gw_route_index_create, 0, "indexes.create"},
    {"GET", "indexes", gw_route_index_list, 0, "indexes.get"},
    {"GET", "indexes/*", gw_route_index_get, 1, "indexes.get"},
    {"DELETE", "indexes/*", gw_route_index_delete, 1, "indexes.delete"},
    {"PATCH", "indexes/*", gw_route_index_update, 1, "indexes.update"},
    {"POST", "swap-indexes", gw_route_swap_indexes, 0, "indexes.swap"},
    {"POST", "indexes/*/documents", gw_route_documents_add, 0, "documents.add"},
    {"PUT", "indexes/*/documents", gw_route_documents_update, 0, "documents.add"},
    {"GET", "indexes/*/documents", gw_route_documents_browse, 1, "documents.get"},
    {"POST", "indexes/*/documents/fetch", gw_route_documents_fetch, 1, "documents.get"},
    {"POST", "indexes/*/documents/delete-batch", gw_route_documents_delete_batch, 1, "documents.delete"},
    {"POST", "indexes/*/documents/delete", gw_route_documents_delete_filter, 1, "documents.delete"},
    {"DELETE", "indexes/*/documents", gw_route_documents_clear, 1, "documents.delete"},
    {"GET", "indexes/*/stats", gw_route_index_stats, 1, "stats.get"},
    {"GET", "stats", gw_route_stats, 0, "stats.get"},
    {"GET", "indexes/*/documents/*", gw_route_document_get, 1, "documents.get"},
    {"DELETE", "indexes/*/documents/*", gw_route_document_delete, 1, "documents.delete"},
    {"GET", "indexes/*/search", gw_route_search_get, 1, "search"},
    {"POST", "indexes/*/search", gw_route_search_post, 1, "search"},
    {"GET", "indexes/*/settings", gw_route_settings_get, 1, "settings.get"},
    {"PATCH", "indexes/*/settings", gw_route_settings_update, 1, "settings.update"},
    {"DELETE", "indexes/*/settings", gw_route_settings_reset, 1, "settings.update"},
    {"GET", "indexes/*/settings/*", gw_route_setting_get, 1, "settings.get"},
    {"PUT", "indexes/*/settings/*", gw_route_setting_update, 1, "settings.update"},
    {"PATCH", "indexes/*/settings/*", gw_route_setting_update, 1, "settings.update"},
    {"DELETE", "indexes/*/settings/*", gw_route_setting_reset, 1, "settings.update"},
    {"POST", "indexes/*/facet-search", gw_route_facet_search, 1, "search"},
    {"POST", "multi-search", gw_route_multi_search, 0, "search"},
    {"GET", "tasks", gw_route_tasks_list, 0, "tasks.get"},
    {"POST", "tasks/cancel", gw_route_tasks_cancel, 0, "tasks.cancel"},
    {"DELETE", "tasks", gw_route_tasks_delete, 0, "tasks.delete"},
    {"GET", "tasks/*", gw_route_task_get, 0, "tasks.get"},
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
    char *body;
    size_t len, cap;
    int too_large;
    int over_capacity; /* its connection came past max_connections: answered 503, then closed */
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
    if (ix && ix->deleted)
        ix = NULL;
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

/* Runs the route matching req; returns its index in the table, or GW_ROUTE_SLOTS - 1. */
static size_t dispatch(gw *g, gw_request *req, gw_response *res)
{
    char buf[4096];
    const char *path = req->path;
    while (*path == '/')
        path++;
    size_t len = strlen(path);
    char trimmed[4096];
    snprintf(trimmed, sizeof trimmed, "%s", path);
    while (len > 0 && trimmed[len - 1] == '/')
        trimmed[--len] = '\0';
    int path_known = 0;
    for (size_t i = 0; i < sizeof routes / sizeof routes[0]; i++) {
        if (!match(routes[i].pattern, trimmed, buf, sizeof buf, req->captures))
            continue;
        path_known = 1;
        if (strcmp(routes[i].method, req->method) != 0)
            continue;
        /* Rights first, as Meilisearch does: a key that may not see an index can't learn
         * whether it exists. */
        mr_error denied;
        if (gw_authorize(g, req, routes[i].action, &denied) ||
            (strncmp(routes[i].pattern, "indexes/*", 9) == 0 && gw_may_use(req, req->captures[0], &denied))) {
            gw_reply_error(res, &denied);
            return i;
        }
        if (!routes[i].on_index) {
            routes[i].handler(g, req, res);
            return i;
        }
        /* The snapshot is held for the whole call: req->ix stays valid even if the topology
         * changes meanwhile. */
        mr_topology *topo = mr_topology_acquire(mr_meta_topology(g->meta));
        mr_error err;
        req->ix = gw_find_index(topo, req->captures[0], &err);
        if (req->ix)
            routes[i].handler(g, req, res);
        else
            gw_reply_error(res, &err);
        mr_topology_release(mr_meta_topology(g->meta), topo);
        return i;
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
    char *text = res->text ? res->text : res->body ? json_dumps(res->body, JSON_COMPACT | JSON_ENCODE_ANY) : NULL;
    res->text = NULL; /* the response takes it */
    size_t len = text ? strlen(text) : 0;
    struct MHD_Response *r = MHD_create_response_from_buffer(len, text ? text : (char *)"", text ? MHD_RESPMEM_MUST_FREE : MHD_RESPMEM_PERSISTENT);
    if (text)
        MHD_add_response_header(r, "Content-Type", res->text_type ? res->text_type : "application/json");
    MHD_add_response_header(r, "X-Content-Type-Options", "nosniff");
    if (res->text_type && strncmp(res->text_type, "text/html", 9) == 0) /* the console: its own inline code only */
        MHD_add_response_header(r, "Content-Security-Policy",
                                "default-src 'self'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; img-src data:; "
                                "frame-ancestors 'none'");
    MHD_add_response_header(r, "X-Request-Id", rid);
    if (res->close)
        MHD_add_response_header(r, "Connection", "close");
    enum MHD_Result ret = MHD_queue_response(conn, (unsigned)res->status, r);
    MHD_destroy_response(r);
    return ret;
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *conn, const char *url, const char *method,
                                  const char *version, const char *upload_data, size_t *upload_data_size,
                                  void **con_cls)
{
    (void)version;
    gw *g = cls;
    struct upload *up = *con_cls;
    if (!up) {
        up = calloc(1, sizeof *up);
        up->started_ms = mr_now_ms();
        const union MHD_ConnectionInfo *info = MHD_get_connection_info(conn, MHD_CONNECTION_INFO_SOCKET_CONTEXT);
        up->over_capacity = info && info->socket_context == &over_capacity_mark;
        request_id(g, conn, up->ctx.id, sizeof up->ctx.id);
        *con_cls = up;
        return MHD_YES;
    }
    if (*upload_data_size) {
        size_t n = *upload_data_size;
        *upload_data_size = 0;
        if (up->over_capacity)
            return MHD_YES;
        if (up->too_large || up->len + n > (size_t)g->cfg->max_body_bytes) {
            up->too_large = 1; /* keep reading so the client gets the answer, but drop the bytes */
            return MHD_YES;
        }
        if (up->len + n + 1 > up->cap) {
            size_t cap = up->cap ? up->cap : 65536;
            while (cap < up->len + n + 1)
                cap *= 2;
            char *grown = realloc(up->body, cap);
            if (!grown)
                return MHD_NO;
            up->body = grown;
            up->cap = cap;
        }
        memcpy(up->body + up->len, upload_data, n);
        up->len += n;
        up->body[up->len] = '\0';
        return MHD_YES;
    }
    gw_response res = {.status = 200};
    size_t route = GW_ROUTE_SLOTS - 1;
    up->ctx.deadline_ms = mr_now_ms() + g->cfg->request_timeout_ms; /* from the end of the upload */
    pthread_setspecific(g->request_key, &up->ctx);
    if (up->over_capacity) {
        mr_error e;
        mr_error_set(&e, "miroir_too_many_connections",
                     "The gateway has reached max_connections (%ld) open connections; retry later.", g->cfg->max_connections);
        gw_reply_error(&res, &e);
        res.close = 1;
    } else if (up->too_large) {
        mr_error e;
        mr_error_set(&e, "payload_too_large", "The provided payload reached the size limit. The maximum accepted payload size is %ld bytes.",
                     g->cfg->max_body_bytes);
        gw_reply_error(&res, &e);
    } else {
        gw_request req = {.conn = conn, .method = method, .path = url, .body = up->body ? up->body : "", .body_len = up->len};
        route = dispatch(g, &req, &res);
        gw_caller_clear(&req.caller);
    }
    enum MHD_Result ret = send_response(conn, &res, up->ctx.id);
    gw_route_counters *st = &g->routes[route];
    int64_t took_ms = mr_now_ms() - up->started_ms;
    mr_histogram_observe(&st->latency, (double)took_ms);
    atomic_fetch_add(&st->by_class[res.status / 100 < 6 ? res.status / 100 : 5], 1);
    /* The access log: the path without its query string, and the error code, never a header. */
    if (res.status >= 500)
        mr_log_request("warn", "gateway", up->ctx.id, "%s %s -> %d in %lld ms: %s", method, url, res.status,
                       (long long)took_ms, error_field(&res, "message"));
    else if (g->cfg->access_log)
        mr_log_request("info", "gateway", up->ctx.id, "%s %s -> %d in %lld ms%s%s", method, url, res.status,
                       (long long)took_ms, res.status >= 400 ? " " : "", res.status >= 400 ? error_field(&res, "code") : "");
    json_decref(res.body);
    pthread_setspecific(g->request_key, NULL);
    return ret;
}

/* A connection opened while max_connections were already open is marked for its whole life: its
 * requests get 503 and it is closed, while the connections that came first keep working. */
static void on_connection(void *cls, struct MHD_Connection *conn, void **socket_context,
                          enum MHD_ConnectionNotificationCode code)
{
    (void)conn;
    gw *g = cls;
    if (code == MHD_CONNECTION_NOTIFY_STARTED) {
        int open = atomic_fetch_add(&g->connections, 1) + 1;
        *socket_context = open > g->cfg->max_connections ? (void *)&over_capacity_mark : NULL;
    } else {
        atomic_fetch_sub(&g->connections, 1);
    }
}

static void on_completed(void *cls, struct MHD_Connection *conn, void **con_cls, enum MHD_RequestTerminationCode toe)
{
    (void)cls;
    (void)conn;
    (void)toe;
    struct upload *up = *con_cls;
    if (up) {
        int large = up->cap >= GW_TRIM_AFTER_BYTES;
        free(up->body);
        free(up);
        *con_cls = NULL;
        /* Parsing a large write body spreads its JSON over many small blocks in this thread's
         * arena; glibc keeps those pages after the free. Hand them back, at a cost that is small
         * next to the parse. */
        if (large)
            malloc_trim(0);
    }
}

struct MHD_Daemon *gw_http_start(gw *g, char *err, size_t errlen)
{
    char host[128];
    snprintf(host, sizeof host, "%s", g->cfg->gateway_listen);
    char *colon = strrchr(host, ':');
    if (!colon) {
        snprintf(err, errlen, "gateway_listen: expected host:port, got '%s'", g->cfg->gateway_listen);
        return NULL;
    }
    *colon = '\0';
    struct sockaddr_in addr = {.sin_family = AF_INET, .sin_port = htons((uint16_t)atoi(colon + 1))};
    if (inet_pton(AF_INET, host, &addr.sin_addr) != 1) {
        snprintf(err, errlen, "gateway_listen: '%s' is not an IPv4 address", host);
        return NULL;
    }
    /* A thread per connection: handlers block on Kafka acks and node fan-out, and a slow one
     * must not hold up other clients. libmicrohttpd's own limit is set above max_connections so
     * that the connections past it get a clear 503 instead of a silent close. */
    struct MHD_Daemon *d = MHD_start_daemon(
        MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_THREAD_PER_CONNECTION | MHD_USE_ERROR_LOG, 0, NULL, NULL,
        on_request, g, MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&addr, MHD_OPTION_CONNECTION_LIMIT,
        (unsigned)(g->cfg->max_connections + GW_OVER_CAPACITY_SLOTS), MHD_OPTION_CONNECTION_TIMEOUT,
        (unsigned)g->cfg->connection_timeout_s, MHD_OPTION_NOTIFY_COMPLETED, on_completed, NULL,
        MHD_OPTION_NOTIFY_CONNECTION, on_connection, g, MHD_OPTION_END);
    if (!d)
        snprintf(err, errlen, "cannot listen on %s", g->cfg->gateway_listen);
    return d;
}
