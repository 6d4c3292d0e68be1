/* config.h: every process's configuration, read once in main from a file and the environment. */
#ifndef MIROIR_CONFIG_H
#define MIROIR_CONFIG_H

#include <stddef.h>
#include <stdio.h>

#define MR_MAX_NODES 64
#define MR_NODE_ID_MAX 32
#define MR_ZONE_MAX 64
#define MR_MAX_KAFKA_PROPS 32

typedef struct mr_node {
    char id[MR_NODE_ID_MAX];
    char url[256];
    char zone[MR_ZONE_MAX]; /* its failure domain (rack, availability zone); "" for none */
} mr_node;

typedef struct mr_kafka_prop {
    char name[128];
    char value[256];
} mr_kafka_prop;

typedef struct mr_config {
    char kafka_brokers[256];
    mr_node nodes[MR_MAX_NODES];
    size_t node_count;
    char node_key[256];       /* the key the gateway and ingest present to Meilisearch nodes */
    char master_key[256];     /* the gateway's master key for clients; empty: the API is open */
    char gateway_listen[128]; /* host:port */
    long max_body_bytes;
    long max_connections;
    long connection_timeout_s;  /* idle client connections are closed after this */
    long header_timeout_ms;     /* a request head must arrive within this of its first byte */
    long body_min_rate;         /* bytes per second a body must keep up, after header_timeout_ms */
    long body_budget_bytes;     /* request bodies held in memory at once, all connections together */
    long upstream_timeout_ms;   /* one node request, end to end */
    long request_timeout_ms;    /* a client request's fan-out, failovers included */
    long task_deletion_wait_ms; /* how long DELETE /tasks waits for the tasks it matched to end */
    long access_log;            /* 1: the gateway logs every request (id, route, status, time) */
    long connect_timeout_ms;    /* TCP connect to a node */
    long produce_timeout_ms;    /* Kafka delivery; past it a write answers 503 */
    long ingest_batch_docs;
    long ingest_batch_ms;
    long ingest_inflight;       /* Meilisearch tasks in flight per replica */
    long rebuild_batch_docs;    /* records per batch for a replica being rebuilt (replaying history) */
    long ingest_retry_ms;       /* first backoff after a node failure; doubles up to 5 s */
    long stray_quiet_ms;        /* after an unanswered write, how long a shard index's tasks must stop growing */
    char worker_id[64];
    long default_max_total_hits;
    long browse_in_order_max; /* browsing without sort is in write order up to this many documents */
    long in_sync_lag_ms;        /* a replica behind its peers that applies nothing this long leaves the in-sync set */
    long progress_partitions;   /* partitions of miroir.progress, i.e. ingest leases; read when the topic is made */
    long rebalance_concurrency; /* replicas being built at once, cluster-wide: the rebuild throttle */
    long rebalance_interval_ms; /* how often the rebalancer looks at the placement */
    long retire_grace_ms;       /* between a replica's last read and the drop of its index */
    long rebuild_stall_warn_ms; /* a building replica whose offset stands still this long is reported */
    long level_interval_ms;     /* how often the rebalancer checks the nodes' loads for drift; 0: never */
    long rebuild_from_peer;     /* 1: a new replica copies a ready peer pinned to an offset, then replays the rest */
    long fill_timeout_ms;       /* a copy or restore that takes longer is given up for a replay of the log */
    long checkpoint_history_percent; /* a checkpoint is due once the history since the last is this % of the live documents */
    long checkpoint_min_records;     /* … and at least this many records; 0: no checkpoints */
    long history_segment_bytes;      /* segment.bytes of index and checkpoint topics: the disk a cut frees comes in these */
    long hedge_percent;         /* hedged shard requests, at most this % of all; 0: no hedging */
    long hedge_min_ms;          /* a shard request is hedged no sooner than this */
    long two_phase_min_shards;  /* searches over this many shards or more fetch their page in a second phase; 0: never */
    long batch_shard_searches;  /* 1: a query's searches bound for one node go in one /multi-search */
    long narrow_shard_windows;  /* 1: shards are first asked for their likely share of the page (merge.h) */
    long own_node_client;       /* 1: the gateway speaks plain http to the nodes itself, not through libcurl (meili.h) */
    long node_open_indexes;     /* how many indexes a node keeps open: /health names the nodes holding more */
    mr_kafka_prop kafka_props[MR_MAX_KAFKA_PROPS]; /* kafka.<property> = value, passed to librdkafka */
    size_t kafka_prop_count;
} mr_config;

/* Fills cfg with defaults, then the file at path (NULL or "" for none), then MIROIR_<NAME>
 * environment variables. Returns 0, or -1 with a message in err naming the bad key. */
int mr_config_load(mr_config *cfg, const char *path, char *err, size_t errlen);

/* Prints every key with its environment variable and default (for --help). */
void mr_config_describe(FILE *out);

/* A program's start: answers --help (exit status 0) or a bad argument (2) with its usage, or
 * loads cfg from MIROIR_CONFIG and the environment (2 on error, with the message on stderr).
 * Returns -1 when the program should go on. */
int mr_config_main(mr_config *cfg, int argc, char **argv, const char *program, const char *about);

/* Parses "id=url,id=url" into cfg->nodes; "id=url#zone" also names the node's zone. Returns 0
 * or -1 with err. */
int mr_config_parse_nodes(mr_config *cfg, const char *spec, char *err, size_t errlen);

/* Returns the node with this id, or NULL. The pointer lives as long as cfg. */
const mr_node *mr_config_node(const mr_config *cfg, const char *id);

#endif
