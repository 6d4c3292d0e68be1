/* main.c: miroir-rebalancer: follows the metadata and moves replicas toward their target. */
#include <curl/curl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kafka.h"
#include "rebalancer.h"
#include "util.h"

int main(int argc, char **argv)
{
    mr_config cfg;
    int early = mr_config_main(&cfg, argc, argv, "miroir-rebalancer",
                               "Moves replicas toward the rendezvous placement of the active members (one per cluster).");
    if (early >= 0)
        return early;
    char err[512];
    snprintf(cfg.worker_id, sizeof cfg.worker_id, "rebalancer");
    curl_global_init(CURL_GLOBAL_DEFAULT);
    sigset_t sigs;
    mr_block_signals(&sigs); /* every thread inherits this; main waits for them */

    rebalancer rb = {.cfg = &cfg, .retiring_since = json_object(), .building_seen = json_object()};
    int rc = 1;
    if (mr_meta_join(&cfg, &rb.producer, &rb.meta, err, sizeof err))
        goto out;
    rb.http = mr_http_new(cfg.node_key, cfg.upstream_timeout_ms, cfg.connect_timeout_ms);
    mr_log("info", "rebalancer", "started");
    const struct timespec no_wait = {0, 0};
    while (sigtimedwait(&sigs, NULL, &no_wait) <= 0) {
        /* Decide on the freshest metadata: sync up to Kafka's end before each pass. */
        if (mr_meta_sync(rb.meta, 5000) == 0)
            rb_tick(&rb);
        rd_kafka_poll(rb.producer, 0);
        mr_sleep_ms(cfg.rebalance_interval_ms);
    }
    mr_log("info", "rebalancer", "shutting down");
    alarm(10);
    rc = 0;
out:
    if (rc)
        fprintf(stderr, "miroir-rebalancer: %s\n", err);
    mr_http_free(rb.http);
    mr_meta_free(rb.meta);
    if (rb.producer) {
        rd_kafka_flush(rb.producer, 5000);
        rd_kafka_destroy(rb.producer);
    }
    json_decref(rb.retiring_since);
    json_decref(rb.building_seen);
    curl_global_cleanup();
    return rc;
}
