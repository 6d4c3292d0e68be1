/* main.c: miroir-gateway: wires config, Kafka, the meta follower and the HTTP front together. */
#include <curl/curl.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include "gw.h"
#include "kafka.h"
#include "util.h"

static void *follow_meta(void *arg)
{
    gw *g = arg;
    while (!atomic_load(&g->stopping))
        mr_meta_poll(g->meta, 100);
    return NULL;
}

static void *check_nodes(void *arg)
{
    gw *g = arg;
    /* node sizes change slowly, and reading them costs each node a walk of its files */
    for (unsigned round = 0; !atomic_load(&g->stopping); round++) {
        gw_nodes_check(g, round % 5 == 0);
        for (int i = 0; i < 10 && !atomic_load(&g->stopping); i++)
            usleep(100 * 1000);
    }
    return NULL;
}

int main(int argc, char **argv)
{
    mr_config cfg;
    int early = mr_config_main(&cfg, argc, argv, "miroir-gateway",
                               "The HTTP front: speaks the Meilisearch API on gateway_listen, scatters searches to one\n"
                               "replica per shard and merges them, produces writes to Kafka, serves /_miroir/ and /metrics.");
    if (early >= 0)
        return early;
    char err[512];
    snprintf(cfg.worker_id, sizeof cfg.worker_id, "gateway");
    curl_global_init(CURL_GLOBAL_DEFAULT);

    sigset_t sigs;
    mr_block_signals(&sigs); /* every thread inherits this; main waits for them */

    gw g = {.cfg = &cfg};
    pthread_mutex_init(&g.health_lock, NULL);
    pthread_mutex_init(&g.keys_lock, NULL);
    pthread_rwlock_init(&g.writes, NULL);
    pthread_mutex_init(&g.defs, NULL);
    pthread_mutex_init(&g.ready_lock, NULL);
    pthread_mutex_init(&g.janitor_lock, NULL);
    pthread_cond_init(&g.janitor_wake, NULL);
    g.ready = json_object();
    pthread_key_create(&g.request_key, NULL);
    int rc = 1;
    pthread_t meta_thread, health_thread, janitor_thread;
    gw_front *front = NULL;
    /* every client connection is a descriptor: take all the kernel allows this process */
    struct rlimit files;
    if (getrlimit(RLIMIT_NOFILE, &files) == 0 && files.rlim_cur < files.rlim_max) {
        files.rlim_cur = files.rlim_max;
        setrlimit(RLIMIT_NOFILE, &files);
    }
    if (mr_meta_join(&cfg, &g.producer, &g.meta, err, sizeof err))
        goto fail;
    mr_error seed_err;
    if (gw_seed_keys(&g, &seed_err)) {
        snprintf(err, sizeof err, "creating the default API keys: %.400s", seed_err.message);
        goto fail;
    }
    g.http = mr_http_new(cfg.node_key, cfg.upstream_timeout_ms, cfg.connect_timeout_ms);
    if (g.http)
        mr_http_set_own_client(g.http, (int)cfg.own_node_client);
    pthread_create(&meta_thread, NULL, follow_meta, &g);
    pthread_create(&health_thread, NULL, check_nodes, &g);
    pthread_create(&janitor_thread, NULL, gw_janitor, &g);
    front = gw_http_start(&g, err, sizeof err);
    if (front) {
        mr_log("info", "gateway", "listening on %s", cfg.gateway_listen);
        int sig;
        sigwait(&sigs, &sig);
        mr_log("info", "gateway", "signal %d: shutting down", sig);
        alarm(10); /* closing Kafka handles can wait on an unreachable broker; no state is lost */
        gw_http_stop(front);
        rc = 0;
    }
    atomic_store(&g.stopping, 1);
    gw_janitor_poke(&g);
    pthread_join(meta_thread, NULL);
    pthread_join(health_thread, NULL);
    pthread_join(janitor_thread, NULL);
fail:
    if (rc)
        fprintf(stderr, "miroir-gateway: %s\n", err);
    mr_http_free(g.http);
    mr_meta_free(g.meta);
    if (g.producer) {
        rd_kafka_flush(g.producer, 5000);
        rd_kafka_destroy(g.producer);
    }
    pthread_mutex_destroy(&g.health_lock);
    pthread_mutex_destroy(&g.keys_lock);
    pthread_rwlock_destroy(&g.writes);
    pthread_mutex_destroy(&g.defs);
    pthread_mutex_destroy(&g.ready_lock);
    pthread_mutex_destroy(&g.janitor_lock);
    pthread_cond_destroy(&g.janitor_wake);
    json_decref(g.ready);
    json_decref(g.keys_source);
    json_decref(g.keys_by_value);
    pthread_key_delete(g.request_key);
    curl_global_cleanup();
    return rc;
}
