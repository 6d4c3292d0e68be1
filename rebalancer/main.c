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
    if (argc > 1) {
        int help = strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0;
        fprintf(help ? stdout : stderr, "usage: %s [--help]\n\n%s\n\n", "miroir-rebalancer", "Moves replicas toward the rendezvous placement of the active members (one per cluster).");
        mr_config_describe(help ? stdout : stderr);
        return help ? 0 : 2;
    }
    mr_config cfg;
    char err[512];
    if (mr_config_load(&cfg, getenv("MIROIR_CONFIG"), err, sizeof err)) {
        fprintf(stderr, "miroir-rebalancer: %s\n", err);
        return 2;
    }
    snprintf(cfg.worker_id, sizeof cfg.worker_id, "rebalancer");
    curl_global_init(CURL_GLOBAL_DEFAULT);
    sigset_t sigs;
    sigemptyset(&sigs);
    sigaddset(&sigs, SIGINT);
    sigaddset(&sigs, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &sigs, NULL);
    signal(SIGPIPE, SIG_IGN);

    rebalancer rb = {.cfg = &cfg, .retiring_since = json_object()};
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
    curl_global_cleanup();
    return rc;
}
