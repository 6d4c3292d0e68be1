/* main.c: miroir-ingest: holds leases on shards through a consumer group and applies each leased
 * shard to every replica; routes inbox topics to shard partitions. */
#include <curl/curl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "ingest.h"
#include "kafka.h"
#include "util.h"

int main(int argc, char **argv)
{
    mr_config cfg;
    int early = mr_config_main(&cfg, argc, argv, "miroir-ingest",
                               "Applies the shards of every index to every replica, each from its own offset; workers\n"
                               "share the shards through leases (the consumer group miroir.leases).");
    if (early >= 0)
        return early;
    char err[512];
    curl_global_init(CURL_GLOBAL_DEFAULT);
    sigset_t sigs;
    mr_block_signals(&sigs); /* every thread inherits this; main waits for them */

    ingest in = {.cfg = &cfg, .my_votes = json_object(), .dlq_topics = json_object(),
                 .topics = json_object()};
    int rc = 1;
    if (mr_meta_join(&cfg, &in.producer, &in.meta, err, sizeof err))
        goto out;
    in.http = mr_http_new(cfg.node_key, cfg.upstream_timeout_ms, cfg.connect_timeout_ms);
    in.leases = mr_meta_leases(in.meta);
    if (ingest_progress_start(&in, err, sizeof err) || ingest_lease_start(&in, err, sizeof err) ||
        ingest_inbox_start(&in, err, sizeof err))
        goto out;
    mr_log("info", "ingest", "worker %s started", cfg.worker_id);

    const struct timespec no_wait = {0, 0};
    while (1) {
        if (sigtimedwait(&sigs, NULL, &no_wait) > 0)
            break;
        mr_meta_poll(in.meta, 0);
        ingest_lease_poll(&in);
        int work = ingest_inbox_poll(&in);
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
    ingest_inbox_stop(&in);
    ingest_history_stop(&in); /* a checkpoint being written is left unfinished: it never counts */
    if (in.progress)
        ingest_progress_flush(&in, 5000); /* the last progress, while the leases are still held */
    ingest_free_streams(&in);
    ingest_lease_stop(&in);
    ingest_progress_stop(&in);
    if (in.topo_seen)
        mr_topology_release(mr_meta_topology(in.meta), in.topo_seen);
    ingest_free_readers(&in);
    free(in.shards);
    mr_http_free(in.http);
    mr_meta_free(in.meta);
    if (in.producer) {
        rd_kafka_flush(in.producer, 5000);
        rd_kafka_destroy(in.producer);
    }
    json_decref(in.my_votes);
    json_decref(in.dlq_topics);
    json_decref(in.topics);
    curl_global_cleanup();
    return rc;
}
