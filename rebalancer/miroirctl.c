/* miroirctl.c: the operator's command line. It speaks only to the gateway's /_miroir/ API, so
 * it needs no access to Kafka or to the nodes. */
#include <curl/curl.h>
#include <getopt.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "util.h"

static const char usage[] =
    "usage: miroirctl [--gateway URL] COMMAND [ARGS]\n"
    "\n"
    "Operate a Miroir cluster through its gateway.\n"
    "\n"
    "Commands:\n"
    "  status                 nodes (zone, replicas, bytes, and the fullest against the mean),\n"
    "                         then one table per index: shards × nodes, each cell the replica's\n"
    "                         state (R ready, B building, N new, X retiring) and lag, a * after a\n"
    "                         shard whose replicas share a zone that need not\n"
    "  lag                    every replica that is behind its shard's log, with its lag\n"
    "  add-node ID URL        add a Meilisearch node (or make a drained one active again, or\n"
    "                         change its URL or zone); the rebalancer plans every index anew and\n"
    "                         moves to it only its share\n"
    "  drain ID               move every replica off the node; it stays a member\n"
    "  remove-node ID         drain the node, then remove it from the cluster\n"
    "  remove-node --force ID remove it at once (a dead node); its replicas are rebuilt on the\n"
    "                         other nodes from the log\n"
    "  verify [--repair] [INDEX...]\n"
    "                         compare every shard's replicas by checksum; with --repair, rebuild\n"
    "                         the divergent ones from the log\n"
    "  backup INDEX FILE      write the index to FILE as NDJSON: a first line with its primary key,\n"
    "                         shards, replication factor and settings, then every document, read\n"
    "                         shard by shard (see docs/operations.md for what a backup taken\n"
    "                         under writes holds)\n"
    "  restore FILE [INDEX]   create INDEX (default: the backup's) from FILE, in this cluster or\n"
    "                         another, and wait until every document is indexed\n"
    "  rebalance              plan every index anew with the shard sizes of now, levelling the\n"
    "                         nodes' loads (after some indexes grew more than others)\n"
    "  wait                   wait until no replica is moving, with a progress bar\n"
    "\n"
    "Options:\n"
    "  -g, --gateway URL      the gateway (default $MIROIR_GATEWAY, else http://127.0.0.1:17700)\n"
    "  -k, --key KEY          an API key for the gateway (default $MIROIR_API_KEY): status, lag\n"
    "                         and wait need stats.get; add-node, drain, remove-node, rebalance,\n"
    "                         verify and backup need the master key or a key with the action \"*\";\n"
    "                         restore, one that may create indexes and add documents\n"
    "  -z, --zone ZONE        with add-node: the node's failure domain (rack, availability zone);\n"
    "                         replicas of a shard go to different zones when there are enough\n"
    "  -w, --wait             after add-node, drain, remove-node or rebalance, wait for the moves\n"
    "                         to finish\n"
    "  -t, --timeout SECONDS  how long wait waits (default 3600)\n"
    "  -h, --help             this help\n"
    "\n"
    "Exit status: 0 on success, 1 when the gateway refused or verify found divergence, 2 on\n"
    "bad usage or when the gateway could not be reached.\n";

struct ctl {
    const char *gateway;
    const char *key;
    int wait;
    long timeout_s;
};

struct sink {
    char *data;
    size_t len;
};

static size_t collect(char *p, size_t size, size_t n, void *arg)
{
    struct sink *s = arg;
    char *grown = realloc(s->data, s->len + size * n + 1);
    if (!grown)
        return 0;
    s->data = grown;
    memcpy(s->data + s->len, p, size * n);
    s->len += size * n;
    s->data[s->len] = '\0';
    return size * n;
}

/* Calls the gateway with a body of ctype (may be NULL); returns the HTTP status (0 if
 * unreachable) and the JSON answer in *out. */
static long call_raw(const struct ctl *c, const char *method, const char *path, const char *body, size_t len,
                     const char *ctype, json_t **out)
{
    CURL *h = curl_easy_init();
    struct sink sink = {0};
    char url[1024], auth[600], type[128];
    snprintf(type, sizeof type, "Content-Type: %s", ctype ? ctype : "application/json");
    struct curl_slist *headers = curl_slist_append(NULL, type);
    if (c->key && *c->key) {
        snprintf(auth, sizeof auth, "Authorization: Bearer %s", c->key);
        headers = curl_slist_append(headers, auth);
    }
    snprintf(url, sizeof url, "%s%s", c->gateway, path);
    curl_easy_setopt(h, CURLOPT_URL, url);
    curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, method);
    curl_easy_setopt(h, CURLOPT_HTTPHEADER, headers);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, collect);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, &sink);
    curl_easy_setopt(h, CURLOPT_TIMEOUT, 600L);
    if (body) {
        curl_easy_setopt(h, CURLOPT_POSTFIELDS, body);
        curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)len);
    }
    long status = 0;
    if (curl_easy_perform(h) == CURLE_OK)
        curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &status);
    *out = sink.data ? json_loads(sink.data, 0, NULL) : NULL;
    free(sink.data);
    curl_slist_free_all(headers);
    curl_easy_cleanup(h);
    return status;
}

/* Calls the gateway with a JSON body (may be NULL). */
static long call(const struct ctl *c, const char *method, const char *path, const json_t *body, json_t **out)
{
    char *text = body ? json_dumps(body, JSON_COMPACT) : NULL;
    long status = call_raw(c, method, path, text, text ? strlen(text) : 0, NULL, out);
    free(text);
    return status;
}

/* Prints a refusal or an unreachable gateway; returns the exit status for it. */
static int failed(const struct ctl *c, long status, json_t *answer)
{
    if (status == 0) {
        fprintf(stderr, "miroirctl: cannot reach the gateway at %s\n", c->gateway);
        return 2;
    }
    const char *msg = json_string_value(json_object_get(answer, "message"));
    const char *code = json_string_value(json_object_get(answer, "code"));
    fprintf(stderr, "miroirctl: %s (%s, HTTP %ld)\n", msg ? msg : "request failed", code ? code : "?", status);
    return 1;
}

static char state_letter(const char *state)
{
    if (!state)
        return '?';
    if (strcmp(state, "ready") == 0)
        return 'R';
    if (strcmp(state, "building") == 0)
        return 'B';
    if (strcmp(state, "new") == 0)
        return 'N';
    return 'X';
}

/* "12.3 MiB", or "-" when not known. */
static void format_bytes(char *out, size_t len, json_t *bytes)
{
    static const char *const units[] = {"B", "KiB", "MiB", "GiB", "TiB"};
    if (!json_is_number(bytes)) {
        snprintf(out, len, "-");
        return;
    }
    double v = json_number_value(bytes);
    size_t u = 0;
    while (v >= 1024 && u < 4) {
        v /= 1024;
        u++;
    }
    snprintf(out, len, u ? "%.1f %s" : "%.0f %s", v, units[u]);
}

static void print_status(json_t *topo)
{
    json_t *nodes = json_object_get(topo, "nodes");
    printf("cluster: %s\n\n%-16s %-8s %-12s %-9s %-11s %-5s %s\n", json_string_value(json_object_get(topo, "health")),
           "NODE", "STATE", "ZONE", "REPLICAS", "BYTES", "UP", "URL");
    size_t i;
    json_t *n;
    json_array_foreach(nodes, i, n) {
        const char *url = json_string_value(json_object_get(n, "url"));
        const char *zone = json_string_value(json_object_get(n, "zone"));
        char bytes[32];
        format_bytes(bytes, sizeof bytes, json_object_get(n, "bytes"));
        printf("%-16s %-8s %-12.12s %-9lld %-11s %-5s %s\n", json_string_value(json_object_get(n, "id")),
               json_string_value(json_object_get(n, "state")), zone ? zone : "-",
               json_integer_value(json_object_get(n, "replicas")), bytes,
               json_is_true(json_object_get(n, "up")) ? "yes" : "NO", url ? url : "(needs a key with the * action)");
    }
    json_t *capacity = json_object_get(topo, "capacity");
    json_t *by_replicas = json_object_get(capacity, "replicas"), *by_bytes = json_object_get(capacity, "bytes");
    if (by_replicas) {
        printf("\nfullest node / mean: %.2f× by replicas (%.0f / %.1f)", json_number_value(json_object_get(by_replicas, "maxOverMean")),
               json_number_value(json_object_get(by_replicas, "max")), json_number_value(json_object_get(by_replicas, "mean")));
        if (by_bytes) {
            char max[32], mean[32];
            format_bytes(max, sizeof max, json_object_get(by_bytes, "max"));
            format_bytes(mean, sizeof mean, json_object_get(by_bytes, "mean"));
            printf(", %.2f× by bytes (%s / %s)", json_number_value(json_object_get(by_bytes, "maxOverMean")), max, mean);
        }
        printf("\n");
    }
    json_t *ix;
    json_array_foreach(json_object_get(topo, "indexes"), i, ix) {
        if (json_is_true(json_object_get(ix, "deleted")))
            continue;
        printf("\nindex %s (storage %s, %lld shards, rf %lld)\n%-6s", json_string_value(json_object_get(ix, "uid")),
               json_string_value(json_object_get(ix, "storage")), json_integer_value(json_object_get(ix, "shards")),
               json_integer_value(json_object_get(ix, "replicationFactor")), "SHARD");
        size_t k;
        json_array_foreach(nodes, k, n) printf(" %-12.12s", json_string_value(json_object_get(n, "id")));
        printf("\n");
        size_t s;
        json_t *shard;
        json_array_foreach(json_object_get(ix, "placement"), s, shard) {
            char label[32];
            snprintf(label, sizeof label, "%zu%s", s, json_is_true(json_object_get(shard, "zonesShared")) ? "*" : "");
            printf("%-6s", label);
            json_array_foreach(nodes, k, n) {
                const char *id = json_string_value(json_object_get(n, "id"));
                char cell[32] = "-";
                size_t r;
                json_t *rep;
                json_array_foreach(json_object_get(shard, "replicas"), r, rep) {
                    if (strcmp(json_string_value(json_object_get(rep, "node")), id) != 0)
                        continue;
                    json_t *lag = json_object_get(rep, "lag");
                    if (lag && json_integer_value(lag) > 0)
                        snprintf(cell, sizeof cell, "%c lag %lld", state_letter(json_string_value(json_object_get(rep, "state"))),
                                 json_integer_value(lag));
                    else
                        snprintf(cell, sizeof cell, "%c", state_letter(json_string_value(json_object_get(rep, "state"))));
                }
                printf(" %-12s", cell);
            }
            printf("\n");
        }
    }
}

/* GET /_miroir/topology into *topo; returns 0, or the exit status (then *topo is NULL). */
static int fetch_topology(const struct ctl *c, json_t **topo)
{
    long st = call(c, "GET", "/_miroir/topology", NULL, topo);
    if (st == 200)
        return 0;
    int rc = failed(c, st, *topo);
    json_decref(*topo);
    *topo = NULL;
    return rc;
}

static int cmd_status(const struct ctl *c)
{
    json_t *topo;
    int rc = fetch_topology(c, &topo);
    if (rc)
        return rc;
    print_status(topo);
    json_decref(topo);
    return 0;
}

static int cmd_lag(const struct ctl *c)
{
    json_t *topo;
    int rc = fetch_topology(c, &topo);
    if (rc)
        return rc;
    printf("%-24s %-6s %-14s %-9s %s\n", "INDEX", "SHARD", "NODE", "STATE", "LAG");
    size_t i, s, r;
    json_t *ix, *shard, *rep;
    json_array_foreach(json_object_get(topo, "indexes"), i, ix) {
        json_array_foreach(json_object_get(ix, "placement"), s, shard) {
            json_array_foreach(json_object_get(shard, "replicas"), r, rep) {
                json_int_t lag = json_integer_value(json_object_get(rep, "lag"));
                if (lag > 0)
                    printf("%-24s %-6zu %-14s %-9s %lld\n", json_string_value(json_object_get(ix, "uid")), s,
                           json_string_value(json_object_get(rep, "node")),
                           json_string_value(json_object_get(rep, "state")), lag);
            }
        }
    }
    json_decref(topo);
    return 0;
}

/* Counts the replicas still moving (and those the targets want that are not placed yet) and the
 * records their rebuilds have left to apply. A node being removed counts until it has left. */
static void moving(json_t *topo, long *replicas, long long *records_left, long long *records_total)
{
    *replicas = 0;
    *records_left = *records_total = 0;
    size_t i, s, r;
    json_t *ix, *shard, *rep;
    json_array_foreach(json_object_get(topo, "indexes"), i, ix) {
        if (json_is_true(json_object_get(ix, "deleted")))
            continue; /* cleared away, not moved: counting it, wait would never end while apps churn */
        *replicas += json_is_true(json_object_get(ix, "planPending")); /* its moves are not known yet */
        json_array_foreach(json_object_get(ix, "placement"), s, shard) {
            json_array_foreach(json_object_get(shard, "replicas"), r, rep) {
                const char *st = json_string_value(json_object_get(rep, "state"));
                if (!st || (strcmp(st, "ready") == 0 && !json_is_true(json_object_get(rep, "rebuildRequested"))))
                    continue;
                (*replicas)++;
                *records_left += json_integer_value(json_object_get(rep, "lag"));
                *records_total += json_integer_value(json_object_get(shard, "endOffset"));
            }
            size_t t;
            json_t *node;
            json_array_foreach(json_object_get(shard, "target"), t, node) {
                int placed = 0;
                json_array_foreach(json_object_get(shard, "replicas"), r, rep)
                    placed |= json_equal(json_object_get(rep, "node"), node);
                *replicas += !placed;
            }
        }
    }
    /* members on their way out count until they are gone */
    json_t *n;
    json_array_foreach(json_object_get(topo, "nodes"), i, n) {
        if (strcmp(json_string_value(json_object_get(n, "state")), "removing") == 0)
            (*replicas)++;
    }
}

static int cmd_wait(const struct ctl *c)
{
    int64_t deadline = mr_now_ms() + c->timeout_s * 1000;
    int tty = isatty(STDERR_FILENO);
    int settled_rounds = 0;
    while (mr_now_ms() < deadline) {
        json_t *topo;
        int rc = fetch_topology(c, &topo);
        if (rc)
            return rc;
        long replicas;
        long long left, total;
        moving(topo, &replicas, &left, &total);
        json_decref(topo);
        double done = total > 0 ? 1.0 - (double)left / (double)total : (replicas ? 0.0 : 1.0);
        int width = 30, filled = (int)(done * width);
        char bar[64];
        for (int k = 0; k < width; k++)
            bar[k] = k < filled ? '#' : '.';
        bar[width] = '\0';
        fprintf(stderr, "%s[%s] %3d%%  %ld replica(s) moving, %lld records left%s", tty ? "\r" : "", bar,
                (int)(done * 100), replicas, left, tty ? "   " : "\n");
        /* the rebalancer may not have placed anything yet: settled means settled twice */
        settled_rounds = replicas == 0 ? settled_rounds + 1 : 0;
        if (settled_rounds >= 2) {
            fprintf(stderr, "%sdone\n", tty ? "\n" : "");
            return 0;
        }
        mr_sleep_ms(1000);
    }
    fprintf(stderr, "\nmiroirctl: still moving after %ld s\n", c->timeout_s);
    return 1;
}

static int membership(const struct ctl *c, const char *method, const char *path, json_t *body)
{
    json_t *answer;
    long st = call(c, method, path, body, &answer);
    json_decref(body);
    if (st != 202) {
        int rc = failed(c, st, answer);
        json_decref(answer);
        return rc;
    }
    printf("node %s: %s\n", json_string_value(json_object_get(answer, "id")),
           json_string_value(json_object_get(answer, "state")));
    json_decref(answer);
    return c->wait ? cmd_wait(c) : 0;
}

/* ---- backup and restore ---- */

#define BACKUP_PAGE 10000
#define RESTORE_BATCH 10000

/* GET path into *out, or the exit status of the refusal. */
static int get_json(const struct ctl *c, const char *path, json_t **out)
{
    long st = call(c, "GET", path, NULL, out);
    if (st == 200)
        return 0;
    int rc = failed(c, st, *out);
    json_decref(*out);
    *out = NULL;
    return rc;
}

static int cmd_backup(const struct ctl *c, const char *index, const char *file)
{
    char path[512];
    json_t *ix = NULL, *settings = NULL, *topo = NULL;
    snprintf(path, sizeof path, "/indexes/%.200s", index);
    int rc = get_json(c, path, &ix);
    if (!rc) {
        snprintf(path, sizeof path, "/indexes/%.200s/settings", index);
        rc = get_json(c, path, &settings);
    }
    if (!rc)
        rc = get_json(c, "/_miroir/topology", &topo);
    json_t *layout = NULL;
    size_t i;
    json_t *one;
    json_array_foreach(json_object_get(topo, "indexes"), i, one)
        if (!json_is_true(json_object_get(one, "deleted")) &&
            strcmp(json_string_value(json_object_get(one, "uid")), index) == 0)
            layout = one;
    FILE *f = !rc && layout ? fopen(file, "w") : NULL;
    if (!rc && !f) {
        fprintf(stderr, "miroirctl: %s\n", layout ? "cannot write the backup file" : "the index is not in the topology");
        rc = 1;
    }
    long long documents = 0;
    if (f) {
        char at[48];
        mr_now_rfc3339(at, sizeof at);
        json_t *head = json_pack("{s:i, s:s, s:O, s:O, s:O, s:O, s:s}", "miroirBackup", 1, "uid", index, "primaryKey",
                                 json_object_get(ix, "primaryKey"), "shards", json_object_get(layout, "shards"),
                                 "replicationFactor", json_object_get(layout, "replicationFactor"), "settings",
                                 settings, "at", at);
        json_dumpf(head, f, JSON_COMPACT);
        fputc('\n', f);
        json_decref(head);
        json_int_t shards = json_integer_value(json_object_get(layout, "shards"));
        for (json_int_t s = 0; s < shards && !rc; s++) {
            for (long offset = 0;; offset += BACKUP_PAGE) {
                json_t *page;
                snprintf(path, sizeof path, "/_miroir/indexes/%.200s/shards/%lld/documents?offset=%ld&limit=%d", index,
                         (long long)s, offset, BACKUP_PAGE);
                if ((rc = get_json(c, path, &page)))
                    break;
                json_t *doc;
                json_array_foreach(json_object_get(page, "results"), i, doc) {
                    json_dumpf(doc, f, JSON_COMPACT);
                    fputc('\n', f);
                    documents++;
                }
                size_t got = json_array_size(json_object_get(page, "results"));
                json_decref(page);
                if (got < BACKUP_PAGE)
                    break;
            }
        }
        if (fclose(f) != 0 && !rc) {
            fprintf(stderr, "miroirctl: writing %s failed\n", file);
            rc = 1;
        }
    }
    if (!rc)
        printf("backed up %s: %lld documents, its settings and layout, to %s\n", index, documents, file);
    json_decref(ix);
    json_decref(settings);
    json_decref(topo);
    return rc;
}

/* Waits for a task of the gateway to end; returns 0 if it succeeded. */
static int wait_task(const struct ctl *c, json_t *answer)
{
    json_int_t uid = json_integer_value(json_object_get(answer, "taskUid"));
    char path[64];
    snprintf(path, sizeof path, "/tasks/%lld", (long long)uid);
    for (int64_t deadline = mr_now_ms() + c->timeout_s * 1000; mr_now_ms() < deadline; mr_sleep_ms(200)) {
        json_t *t;
        long st = call(c, "GET", path, NULL, &t);
        const char *status = json_string_value(json_object_get(t, "status"));
        int done = st == 200 && status && strcmp(status, "enqueued") != 0 && strcmp(status, "processing") != 0;
        if (done && strcmp(status, "succeeded") != 0) {
            const char *why = json_string_value(json_object_get(json_object_get(t, "error"), "message"));
            fprintf(stderr, "miroirctl: task %lld %s: %s\n", (long long)uid, status, why ? why : "");
        }
        int ok = done && strcmp(status, "succeeded") == 0;
        json_decref(t);
        if (done)
            return ok ? 0 : 1;
    }
    fprintf(stderr, "miroirctl: task %lld still running after %ld s\n", (long long)uid, c->timeout_s);
    return 1;
}

/* POSTs the batch of NDJSON documents; returns 0 once its task succeeded. */
static int restore_batch(const struct ctl *c, const char *index, const char *body, size_t len)
{
    char path[512];
    snprintf(path, sizeof path, "/indexes/%.200s/documents", index);
    json_t *answer;
    long st = call_raw(c, "POST", path, body, len, "application/x-ndjson", &answer);
    int rc = st == 202 ? wait_task(c, answer) : failed(c, st, answer);
    json_decref(answer);
    return rc;
}

static int cmd_restore(const struct ctl *c, const char *file, const char *as)
{
    FILE *f = fopen(file, "r");
    if (!f) {
        fprintf(stderr, "miroirctl: cannot read %s\n", file);
        return 2;
    }
    char *line = NULL;
    size_t cap = 0;
    ssize_t n = getline(&line, &cap, f);
    json_t *head = n > 0 ? json_loads(line, 0, NULL) : NULL;
    if (!json_is_integer(json_object_get(head, "miroirBackup"))) {
        fprintf(stderr, "miroirctl: %s is no backup written by miroirctl backup\n", file);
        free(line);
        fclose(f);
        json_decref(head);
        return 2;
    }
    const char *index = as ? as : json_string_value(json_object_get(head, "uid"));
    json_t *create = json_pack("{s:s, s:O, s:O, s:O}", "uid", index, "primaryKey", json_object_get(head, "primaryKey"),
                               "shards", json_object_get(head, "shards"), "replicationFactor",
                               json_object_get(head, "replicationFactor"));
    json_t *answer;
    long st = call(c, "POST", "/indexes", create, &answer);
    json_decref(create);
    int rc = st == 202 ? wait_task(c, answer) : failed(c, st, answer);
    json_decref(answer);
    if (!rc) {
        char path[512];
        snprintf(path, sizeof path, "/indexes/%.200s/settings", index);
        st = call(c, "PATCH", path, json_object_get(head, "settings"), &answer);
        rc = st == 202 ? wait_task(c, answer) : failed(c, st, answer);
        json_decref(answer);
    }
    char *batch = NULL;
    size_t len = 0, batch_cap = 0, in_batch = 0;
    long long documents = 0;
    while (!rc && (n = getline(&line, &cap, f)) > 0) {
        if (len + (size_t)n + 1 > batch_cap) {
            batch_cap = (len + (size_t)n + 1) * 2;
            char *grown = realloc(batch, batch_cap);
            if (!grown) {
                rc = 1;
                break;
            }
            batch = grown;
        }
        memcpy(batch + len, line, (size_t)n);
        len += (size_t)n;
        documents++;
        if (++in_batch == RESTORE_BATCH) {
            rc = restore_batch(c, index, batch, len);
            len = in_batch = 0;
        }
    }
    if (!rc && in_batch)
        rc = restore_batch(c, index, batch, len);
    if (!rc)
        printf("restored %lld documents into %s\n", documents, index);
    free(batch);
    free(line);
    fclose(f);
    json_decref(head);
    return rc;
}

static int cmd_rebalance(const struct ctl *c)
{
    json_t *answer;
    long st = call(c, "POST", "/_miroir/rebalance", NULL, &answer);
    if (st != 202) {
        int rc = failed(c, st, answer);
        json_decref(answer);
        return rc;
    }
    printf("rebalance requested at %s\n", json_string_value(json_object_get(answer, "requestedAt")));
    json_decref(answer);
    return c->wait ? cmd_wait(c) : 0;
}

static int cmd_verify(const struct ctl *c, int repair, char **indexes, int n)
{
    json_t *body = json_pack("{s:b}", "repair", repair);
    if (n > 0) {
        json_t *list = json_array();
        for (int i = 0; i < n; i++)
            json_array_append_new(list, json_string(indexes[i]));
        json_object_set_new(body, "indexes", list);
    }
    json_t *answer;
    long st = call(c, "POST", "/_miroir/verify", body, &answer);
    json_decref(body);
    if (st != 200) {
        int rc = failed(c, st, answer);
        json_decref(answer);
        return rc;
    }
    size_t i, r;
    json_t *shard, *rep;
    int bad = 0;
    json_array_foreach(json_object_get(answer, "shards"), i, shard) {
        const char *status = json_string_value(json_object_get(shard, "status"));
        printf("%-24s shard %-4lld %-11s", json_string_value(json_object_get(shard, "index")),
               json_integer_value(json_object_get(shard, "shard")), status);
        json_array_foreach(json_object_get(shard, "replicas"), r, rep) {
            printf(" %s=%s%s%s", json_string_value(json_object_get(rep, "node")),
                   json_string_value(json_object_get(rep, "checksum")),
                   json_is_true(json_object_get(rep, "divergent")) ? "(divergent)" : "",
                   json_is_true(json_object_get(rep, "rebuildRequested")) ? "(rebuilding)" : "");
        }
        printf("\n");
        bad |= strcmp(status, "consistent") != 0;
    }
    json_t *sum = json_object_get(answer, "summary");
    printf("consistent %lld, divergent %lld, unsettled %lld, unavailable %lld\n",
           json_integer_value(json_object_get(sum, "consistent")), json_integer_value(json_object_get(sum, "divergent")),
           json_integer_value(json_object_get(sum, "unsettled")), json_integer_value(json_object_get(sum, "unavailable")));
    json_decref(answer);
    return bad;
}

int main(int argc, char **argv)
{
    struct ctl c = {.gateway = getenv("MIROIR_GATEWAY"), .key = getenv("MIROIR_API_KEY"), .timeout_s = 3600};
    const char *zone = NULL;
    int force = 0, repair = 0;
    static const struct option opts[] = {{"gateway", required_argument, NULL, 'g'}, {"key", required_argument, NULL, 'k'},
                                         {"wait", no_argument, NULL, 'w'},          {"timeout", required_argument, NULL, 't'},
                                         {"force", no_argument, NULL, 'f'},         {"repair", no_argument, NULL, 'r'},
                                         {"zone", required_argument, NULL, 'z'},    {"help", no_argument, NULL, 'h'},
                                         {NULL, 0, NULL, 0}};
    int o;
    while ((o = getopt_long(argc, argv, "g:k:wt:frz:h", opts, NULL)) != -1) {
        switch (o) {
        case 'z':
            zone = optarg;
            break;
        case 'g':
            c.gateway = optarg;
            break;
        case 'k':
            c.key = optarg;
            break;
        case 'w':
            c.wait = 1;
            break;
        case 't':
            c.timeout_s = strtol(optarg, NULL, 10);
            break;
        case 'f':
            force = 1;
            break;
        case 'r':
            repair = 1;
            break;
        case 'h':
            fputs(usage, stdout);
            return 0;
        default:
            fputs(usage, stderr);
            return 2;
        }
    }
    if (!c.gateway || !*c.gateway)
        c.gateway = "http://127.0.0.1:17700";
    if (optind >= argc) {
        fputs(usage, stderr);
        return 2;
    }
    const char *cmd = argv[optind];
    char **args = argv + optind + 1;
    int nargs = argc - optind - 1;
    char path[256];
    curl_global_init(CURL_GLOBAL_DEFAULT);
    int rc = 2;
    if (strcmp(cmd, "status") == 0 && nargs == 0) {
        rc = cmd_status(&c);
    } else if (strcmp(cmd, "lag") == 0 && nargs == 0) {
        rc = cmd_lag(&c);
    } else if (strcmp(cmd, "wait") == 0 && nargs == 0) {
        rc = cmd_wait(&c);
    } else if (strcmp(cmd, "add-node") == 0 && nargs == 2) {
        json_t *body = json_pack("{s:s, s:s}", "id", args[0], "url", args[1]);
        if (zone)
            json_object_set_new(body, "zone", json_string(zone));
        rc = membership(&c, "POST", "/_miroir/nodes", body);
    } else if (strcmp(cmd, "backup") == 0 && nargs == 2) {
        rc = cmd_backup(&c, args[0], args[1]);
    } else if (strcmp(cmd, "restore") == 0 && (nargs == 1 || nargs == 2)) {
        rc = cmd_restore(&c, args[0], nargs == 2 ? args[1] : NULL);
    } else if (strcmp(cmd, "rebalance") == 0 && nargs == 0) {
        rc = cmd_rebalance(&c);
    } else if (strcmp(cmd, "drain") == 0 && nargs == 1) {
        snprintf(path, sizeof path, "/_miroir/nodes/%.100s/drain", args[0]);
        rc = membership(&c, "POST", path, NULL);
    } else if (strcmp(cmd, "remove-node") == 0 && nargs == 1) {
        snprintf(path, sizeof path, "/_miroir/nodes/%.100s%s", args[0], force ? "?force=true" : "");
        rc = membership(&c, "DELETE", path, NULL);
    } else if (strcmp(cmd, "verify") == 0) {
        rc = cmd_verify(&c, repair, args, nargs);
    } else {
        fprintf(stderr, "miroirctl: unknown command or wrong arguments: %s\n\n", cmd);
        fputs(usage, stderr);
    }
    curl_global_cleanup();
    return rc;
}
