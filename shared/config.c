/* config.c: the configuration table (name, type, default, bounds) and its one parser. */
#include "config.h"

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum kind { STR, LONG, NODES };

struct key {
    const char *name;
    enum kind kind;
    size_t offset;
    size_t size; /* for STR */
    const char *def;
    long min, max; /* for LONG */
};

#define S(field, def) #field, STR, offsetof(mr_config, field), sizeof(((mr_config *)0)->field), def, 0, 0
#define L(field, def, lo, hi) #field, LONG, offsetof(mr_config, field), 0, #def, lo, hi

static const struct key keys[] = {
    {S(kafka_brokers, "127.0.0.1:19092")},
    {"nodes", NODES, 0, 0, "", 0, 0},
    {S(node_key, "")},
    {S(master_key, "")},
    {S(gateway_listen, "127.0.0.1:17700")},
    {L(max_body_bytes, 104857600, 1024, 4294967296)},
    {L(max_connections, 1024, 1, 100000)},
    {L(connection_timeout_s, 60, 1, 86400)},
    {L(header_timeout_ms, 10000, 100, 600000)},
    {L(body_min_rate, 16384, 1, 1073741824)},
    {L(body_budget_bytes, 268435456, 1048576, 1099511627776)},
    {L(upstream_timeout_ms, 5000, 10, 600000)},
    {L(request_timeout_ms, 30000, 10, 3600000)},
    {L(task_deletion_wait_ms, 5000, 0, 600000)},
    {L(access_log, 1, 0, 1)},
    {L(connect_timeout_ms, 1000, 10, 60000)},
    {L(produce_timeout_ms, 15000, 100, 600000)},
    {L(ingest_batch_docs, 10000, 1, 1000000)},
    {L(ingest_batch_ms, 50, 0, 60000)},
    {L(ingest_inflight, 4, 1, 64)},
    {L(rebuild_batch_docs, 50000, 1, 1000000)},
    {L(ingest_retry_ms, 200, 10, 60000)},
    {L(stray_quiet_ms, 2000, 0, 600000)},
    {S(worker_id, "ingest")},
    {L(default_max_total_hits, 1000, 1, 100000000)},
    {L(browse_in_order_max, 10000, 0, 1000000)},
    {L(in_sync_lag_ms, 5000, 10, 600000)},
    {L(progress_partitions, 16, 1, 1024)},
    {L(rebalance_concurrency, 2, 1, 1024)},
    {L(rebalance_interval_ms, 500, 10, 60000)},
    {L(retire_grace_ms, 2000, 0, 600000)},
    {L(rebuild_stall_warn_ms, 60000, 100, 86400000)},
    {L(level_interval_ms, 3600000, 0, 604800000)},
    {L(rebuild_from_peer, 1, 0, 1)},
    {L(fill_timeout_ms, 3600000, 1000, 86400000)},
    {L(checkpoint_history_percent, 100, 1, 100000)},
    {L(checkpoint_min_records, 100000, 0, 1000000000000)},
    {L(history_segment_bytes, 67108864, 1048576, 1073741824)},
    {L(hedge_percent, 5, 0, 100)},
    {L(hedge_min_ms, 10, 1, 60000)},
    {L(two_phase_min_shards, 0, 0, 1024)},
    {L(batch_shard_searches, 1, 0, 1)},
    {L(narrow_shard_windows, 1, 0, 1)},
    {L(own_node_client, 1, 0, 1)},
    {L(node_open_indexes, 18, 1, 100000)},
};

#undef S
#undef L

static char *trim(char *s)
{
    while (isspace((unsigned char)*s))
        s++;
    char *end = s + strlen(s);
    while (end > s && isspace((unsigned char)end[-1]))
        *--end = '\0';
    return s;
}

int mr_config_parse_nodes(mr_config *cfg, const char *spec, char *err, size_t errlen)
{
    char buf[8192];
    snprintf(buf, sizeof buf, "%s", spec);
    cfg->node_count = 0;
    char *save = NULL;
    for (char *item = strtok_r(buf, ",", &save); item; item = strtok_r(NULL, ",", &save)) {
        item = trim(item);
        if (!*item)
            continue;
        char *eq = strchr(item, '=');
        if (!eq || eq == item || !eq[1]) {
            snprintf(err, errlen, "nodes: expected id=url, got '%s'", item);
            return -1;
        }
        *eq = '\0';
        if (cfg->node_count == MR_MAX_NODES) {
            snprintf(err, errlen, "nodes: more than %d nodes", MR_MAX_NODES);
            return -1;
        }
        mr_node *n = &cfg->nodes[cfg->node_count];
        if (strlen(item) >= sizeof n->id || strlen(eq + 1) >= sizeof n->url) {
            snprintf(err, errlen, "nodes: id or url too long in '%s'", item);
            return -1;
        }
        if (mr_config_node(cfg, item)) {
            snprintf(err, errlen, "nodes: duplicate node id '%s'", item);
            return -1;
        }
        char *zone = strchr(eq + 1, '#'); /* a node's URL has no fragment: the rest is its zone */
        if (zone)
            *zone++ = '\0';
        if (zone && (!*zone || strlen(zone) >= sizeof n->zone)) {
            snprintf(err, errlen, "nodes: empty or too long zone for '%s'", item);
            return -1;
        }
        snprintf(n->id, sizeof n->id, "%s", item);
        snprintf(n->url, sizeof n->url, "%s", eq + 1);
        snprintf(n->zone, sizeof n->zone, "%s", zone ? zone : "");
        cfg->node_count++;
    }
    return 0;
}

const mr_node *mr_config_node(const mr_config *cfg, const char *id)
{
    for (size_t i = 0; i < cfg->node_count; i++)
        if (strcmp(cfg->nodes[i].id, id) == 0)
            return &cfg->nodes[i];
    return NULL;
}

static int set_key(mr_config *cfg, const struct key *k, const char *value, char *err, size_t errlen)
{
    char *field = (char *)cfg + k->offset;
    switch (k->kind) {
    case STR:
        if (strlen(value) >= k->size) {
            snprintf(err, errlen, "%s: value longer than %zu bytes", k->name, k->size - 1);
            return -1;
        }
        snprintf(field, k->size, "%s", value);
        return 0;
    case LONG: {
        char *end;
        errno = 0;
        long v = strtol(value, &end, 10);
        if (errno || end == value || *end || v < k->min || v > k->max) {
            snprintf(err, errlen, "%s: '%s' is not an integer in [%ld, %ld]", k->name, value, k->min, k->max);
            return -1;
        }
        *(long *)(void *)field = v;
        return 0;
    }
    case NODES:
        return mr_config_parse_nodes(cfg, value, err, errlen);
    }
    return -1;
}

static int set_kafka_prop(mr_config *cfg, const char *name, const char *value, char *err, size_t errlen)
{
    for (size_t i = 0; i < cfg->kafka_prop_count; i++) {
        if (strcmp(cfg->kafka_props[i].name, name) == 0) {
            snprintf(cfg->kafka_props[i].value, sizeof cfg->kafka_props[i].value, "%s", value);
            return 0;
        }
    }
    if (cfg->kafka_prop_count == MR_MAX_KAFKA_PROPS || strlen(name) >= sizeof cfg->kafka_props[0].name ||
        strlen(value) >= sizeof cfg->kafka_props[0].value) {
        snprintf(err, errlen, "kafka.%s: too many kafka properties or too long", name);
        return -1;
    }
    mr_kafka_prop *p = &cfg->kafka_props[cfg->kafka_prop_count++];
    snprintf(p->name, sizeof p->name, "%s", name);
    snprintf(p->value, sizeof p->value, "%s", value);
    return 0;
}

static int set_named(mr_config *cfg, const char *name, const char *value, char *err, size_t errlen)
{
    if (strncmp(name, "kafka.", 6) == 0)
        return set_kafka_prop(cfg, name + 6, value, err, errlen);
    for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++)
        if (strcmp(keys[i].name, name) == 0)
            return set_key(cfg, &keys[i], value, err, errlen);
    snprintf(err, errlen, "unknown configuration key '%s'", name);
    return -1;
}

static int load_file(mr_config *cfg, const char *path, char *err, size_t errlen)
{
    FILE *f = fopen(path, "r");
    if (!f) {
        snprintf(err, errlen, "%s: %s", path, strerror(errno));
        return -1;
    }
    char line[8192];
    int lineno = 0, rc = 0;
    while (rc == 0 && fgets(line, sizeof line, f)) {
        lineno++;
        char *s = trim(line);
        if (!*s || *s == '#')
            continue;
        char *eq = strchr(s, '=');
        if (!eq) {
            snprintf(err, errlen, "%s:%d: expected key = value", path, lineno);
            rc = -1;
            break;
        }
        *eq = '\0';
        char sub[512];
        rc = set_named(cfg, trim(s), trim(eq + 1), sub, sizeof sub);
        if (rc)
            snprintf(err, errlen, "%s:%d: %s", path, lineno, sub);
    }
    fclose(f);
    return rc;
}

static void env_name(char *env, size_t len, const char *key)
{
    size_t n = (size_t)snprintf(env, len, "MIROIR_");
    for (const char *p = key; *p && n + 1 < len; p++)
        env[n++] = (char)toupper((unsigned char)*p);
    env[n] = '\0';
}

void mr_config_describe(FILE *out)
{
    fprintf(out, "Configuration: the file named by MIROIR_CONFIG (key = value lines), then the environment.\n\n"
                 "  %-24s %-32s %s\n", "KEY", "ENVIRONMENT", "DEFAULT");
    for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++) {
        char env[128];
        env_name(env, sizeof env, keys[i].name);
        fprintf(out, "  %-24s %-32s %s\n", keys[i].name, env, keys[i].def[0] ? keys[i].def : "-");
    }
    fprintf(out, "  %-24s %-32s %s\n", "kafka.<property>", "", "passed to librdkafka as is");
}

int mr_config_load(mr_config *cfg, const char *path, char *err, size_t errlen)
{
    memset(cfg, 0, sizeof *cfg);
    for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++)
        if (set_key(cfg, &keys[i], keys[i].def, err, errlen))
            return -1;
    if (path && *path && load_file(cfg, path, err, errlen))
        return -1;
    for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++) {
        char env[128];
        env_name(env, sizeof env, keys[i].name);
        const char *v = getenv(env);
        if (v && set_key(cfg, &keys[i], v, err, errlen))
            return -1;
    }
    return 0;
}

int mr_config_main(mr_config *cfg, int argc, char **argv, const char *program, const char *about)
{
    if (argc > 1) {
        int help = strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0;
        FILE *out = help ? stdout : stderr;
        fprintf(out, "usage: %s [--help]\n\n%s\n\n", program, about);
        mr_config_describe(out);
        return help ? 0 : 2;
    }
    char err[512];
    if (mr_config_load(cfg, getenv("MIROIR_CONFIG"), err, sizeof err)) {
        fprintf(stderr, "%s: %s\n", program, err);
        return 2;
    }
    return -1;
}
