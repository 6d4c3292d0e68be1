/* main.c: miroir-ingest: leases shard partitions through a consumer group and applies them to
 * every replica; routes inbox topics to shard partitions. */
#include <curl/curl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "ingest.h"
#include "kafka.h"
#include "util.h"

#define GROUP_ID "miroir.ingest"
#define SUBSCRIPTION "^miroir\\.(idx|in)\\..+"

static int is_index_topic(const char *topic)
{
    return strncmp(topic, MR_TOPIC_INDEX_PREFIX, strlen(MR_TOPIC_INDEX_PREFIX)) == 0;
}

/* Keeps only the index-topic partitions of parts in in->leased, and pauses them on the group
 * handle: the group only grants the lease; node readers do the reading. */
static void on_rebalance(rd_kafka_t *rk, rd_kafka_resp_err_t err, rd_kafka_topic_partition_list_t *parts, void *opaque)
{
    ingest *in = opaque;
    if (in->leased) {
        rd_kafka_topic_partition_list_destroy(in->leased);
        in->leased = NULL;
    }
    if (err == RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS) {
        rd_kafka_assign(rk, parts);
        in->leased = rd_kafka_topic_partition_list_new(parts->cnt);
        for (int i = 0; i < parts->cnt; i++)
            if (is_index_topic(parts->elems[i].topic))
                rd_kafka_topic_partition_list_add(in->leased, parts->elems[i].topic, parts->elems[i].partition);
        rd_kafka_pause_partitions(rk, in->leased);
        mr_log("info", "ingest", "leased %d shard partitions", in->leased->cnt);
    } else {
        rd_kafka_assign(rk, NULL);
        ingest_free_streams(in); /* stop applying what another worker is about to own */
        mr_log("info", "ingest", "lease revoked");
    }
    in->streams_dirty = 1;
}

static int poll_group(ingest *in)
{
    rd_kafka_message_t *batch[1000];
    size_t n = 0;
    while (n < sizeof batch / sizeof batch[0]) {
        rd_kafka_message_t *m = rd_kafka_consumer_poll(in->group, 0);
        if (!m)
            break;
        if (m->err || is_index_topic(rd_kafka_topic_name(m->rkt))) {
            rd_kafka_message_destroy(m);
            continue;
        }
        batch[n++] = m;
    }
    if (!n)
        return 0;
    if (ingest_route_inbox(in, batch, n) >= 0) {
        rd_kafka_topic_partition_list_t *offsets = rd_kafka_topic_partition_list_new((int)n);
        for (size_t i = 0; i < n; i++) /* later offsets of a partition overwrite earlier ones */
            rd_kafka_topic_partition_list_add(offsets, rd_kafka_topic_name(batch[i]->rkt), batch[i]->partition)->offset =
                batch[i]->offset + 1;
        rd_kafka_commit(in->group, offsets, 0);
        rd_kafka_topic_partition_list_destroy(offsets);
    } else {
        /* Not routed: read them again from the last commit. */
        for (size_t i = 0; i < n; i++) {
            rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(1);
            rd_kafka_topic_partition_list_add(l, rd_kafka_topic_name(batch[i]->rkt), batch[i]->partition);
            rd_kafka_committed(in->group, l, 5000);
            if (l->elems[0].offset < 0)
                l->elems[0].offset = RD_KAFKA_OFFSET_BEGINNING;
            rd_kafka_error_t *e = rd_kafka_seek_partitions(in->group, l, 5000);
            if (e)
                rd_kafka_error_destroy(e);
            rd_kafka_topic_partition_list_destroy(l);
        }
        usleep(200 * 1000);
    }
    for (size_t i = 0; i < n; i++)
        rd_kafka_message_destroy(batch[i]);
    return 1;
}

int main(int argc, char **argv)
{
    mr_config cfg;
    int early = mr_config_main(&cfg, argc, argv, "miroir-ingest",
                               "Applies the shard partitions of every index to every replica, each from its own offset;\n"
                               "workers share partitions through the consumer group miroir.ingest.");
    if (early >= 0)
        return early;
    char err[512];
    curl_global_init(CURL_GLOBAL_DEFAULT);
    sigset_t sigs;
    mr_block_signals(&sigs); /* every thread inherits this; main waits for them */

    ingest in = {.cfg = &cfg};
    int rc = 1;
    if (mr_meta_join(&cfg, &in.producer, &in.meta, err, sizeof err))
        goto out;
    in.http = mr_http_new(cfg.node_key, cfg.upstream_timeout_ms, cfg.connect_timeout_ms);

    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    const char *settings[][2] = {{"bootstrap.servers", cfg.kafka_brokers}, {"group.id", GROUP_ID},
                                 {"client.id", cfg.worker_id},             {"enable.auto.commit", "false"},
                                 {"auto.offset.reset", "earliest"},        {"topic.metadata.refresh.interval.ms", "2000"},
                                 {"session.timeout.ms", "10000"},          {"heartbeat.interval.ms", "1000"},
                                 {"max.poll.interval.ms", "300000"}};
    for (size_t i = 0; i < sizeof settings / sizeof settings[0]; i++)
        rd_kafka_conf_set(conf, settings[i][0], settings[i][1], NULL, 0);
    for (size_t i = 0; i < cfg.kafka_prop_count; i++)
        if (rd_kafka_conf_set(conf, cfg.kafka_props[i].name, cfg.kafka_props[i].value, err, sizeof err)) {
            rd_kafka_conf_destroy(conf);
            goto out;
        }
    rd_kafka_conf_set_opaque(conf, &in);
    rd_kafka_conf_set_rebalance_cb(conf, on_rebalance);
    in.group = rd_kafka_new(RD_KAFKA_CONSUMER, conf, err, sizeof err);
    if (!in.group) {
        rd_kafka_conf_destroy(conf);
        goto out;
    }
    rd_kafka_poll_set_consumer(in.group);
    rd_kafka_topic_partition_list_t *sub = rd_kafka_topic_partition_list_new(1);
    rd_kafka_topic_partition_list_add(sub, SUBSCRIPTION, RD_KAFKA_PARTITION_UA);
    rd_kafka_subscribe(in.group, sub);
    rd_kafka_topic_partition_list_destroy(sub);
    mr_log("info", "ingest", "worker %s started", cfg.worker_id);

    const struct timespec no_wait = {0, 0};
    while (1) {
        if (sigtimedwait(&sigs, NULL, &no_wait) > 0)
            break;
        mr_meta_poll(in.meta, 0);
        int work = poll_group(&in);
        mr_topology *now = mr_topology_acquire(mr_meta_topology(in.meta));
        if (now != in.topo_seen)
            in.streams_dirty = 1;
        mr_topology_release(mr_meta_topology(in.meta), now);
        if (in.streams_dirty)
            ingest_rebuild_streams(&in);
        work |= ingest_apply_round(&in);
        rd_kafka_poll(in.producer, 0);
        if (!work)
            usleep(2000);
    }
    mr_log("info", "ingest", "shutting down");
    /* Closing Kafka handles can wait on an unreachable broker; all state is in Kafka, so a
     * shutdown that takes too long may end here without losing anything. */
    alarm(10);
    rc = 0;
out:
    if (rc)
        fprintf(stderr, "miroir-ingest: %s\n", err);
    if (in.group) {
        rd_kafka_consumer_close(in.group);
        rd_kafka_destroy(in.group);
    }
    ingest_free_streams(&in);
    if (in.leased)
        rd_kafka_topic_partition_list_destroy(in.leased);
    if (in.topo_seen)
        mr_topology_release(mr_meta_topology(in.meta), in.topo_seen);
    ingest_free_readers(&in);
    mr_http_free(in.http);
    mr_meta_free(in.meta);
    if (in.producer) {
        rd_kafka_flush(in.producer, 5000);
        rd_kafka_destroy(in.producer);
    }
    curl_global_cleanup();
    return rc;
}
