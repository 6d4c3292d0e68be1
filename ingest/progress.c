/* progress.c: the progress writer. Applied offsets, commit points, dead-letter marks and cancel
 * votes of a shard go to its lease's partition of miroir.progress, in transactions that also
 * commit the lease group's offsets: the broker accepts such a transaction only from a member of
 * the group's current generation, so a worker that lost its leases (stopped past its session, or
 * replaced) can never write progress again, nor move an offset back.
 *
 * A transaction costs tens of milliseconds of round trips, so a thread of its own writes them:
 * the apply loop queues records and goes on. */
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "alloc.h"
#include "hrw.h"
#include "ingest.h"
#include "kafka.h"
#include "util.h"

/* Shorter than the group's session timeout (10 s) less a heartbeat: until then no other member
 * can have been given a lease the last accepted transaction proved this worker held. */
#define LEASE_WINDOW_MS 3000
#define TXN_TIMEOUT_MS 10000

struct ingest_progress {
    rd_kafka_t *tx;     /* used by the writer thread only, once started */
    pthread_t thread;
    pthread_mutex_t lock; /* guards everything below */
    pthread_cond_t wake, done;
    json_t *queue;        /* key -> [lease, value or null]: the latest of each key, for the next transaction */
    unsigned char *held;  /* leases entries: the leases the next transaction may write for */
    int renew;            /* a transaction is wanted even with nothing queued */
    uint64_t asked, written; /* transactions asked for (a flush), and the last one that ended */
    atomic_int stopping;
    atomic_llong last_ok_ms; /* when the last accepted transaction began */
};

static rd_kafka_t *new_writer(ingest *in, char *err, size_t errlen)
{
    char id[128];
    snprintf(id, sizeof id, "miroir.ingest.%s", in->cfg->worker_id);
    const char *const props[] = {"transactional.id", id, "transaction.timeout.ms", "10000",
                                 /* a transaction right after another is refused for a moment
                                  * (concurrent transactions); retry soon rather than after 100 ms */
                                 "retry.backoff.ms", "5", "linger.ms", "0",
                                 /* a record's delivery may not outlast its transaction */
                                 "message.timeout.ms", "9000", NULL};
    rd_kafka_t *tx = mr_kafka_producer_with(in->cfg, props, err, errlen);
    if (!tx)
        return NULL;
    rd_kafka_error_t *e = rd_kafka_init_transactions(tx, 30000);
    if (e) {
        snprintf(err, errlen, "starting transactions: %s", rd_kafka_error_string(e));
        rd_kafka_error_destroy(e);
        rd_kafka_destroy(tx);
        return NULL;
    }
    /* learn the topic now: the first transaction would otherwise wait for it */
    mr_kafka_topic_exists(tx, MR_TOPIC_PROGRESS);
    return tx;
}

/* The lease offsets a transaction commits: one per lease held (the value is never read; the
 * commit is what the broker checks against the generation). NULL when none is held. Lock held. */
static rd_kafka_topic_partition_list_t *held_leases(const ingest *in)
{
    rd_kafka_topic_partition_list_t *l = NULL;
    for (uint32_t p = 0; p < in->leases; p++) {
        if (!in->progress->held[p])
            continue;
        if (!l)
            l = rd_kafka_topic_partition_list_new(8);
        rd_kafka_topic_partition_list_add(l, MR_TOPIC_PROGRESS, (int32_t)p)->offset = 0;
    }
    return l;
}

/* librdkafka's transactional calls may fail in three ways: retriable (a timeout, a broker away:
 * call again, and the call resumes), abortable (the transaction must be aborted, then another one
 * begun), and fatal (another process took this transactional id, or the producer was fenced:
 * only a new producer can go on). */
static int retriable(rd_kafka_error_t *e)
{
    return e && rd_kafka_error_is_retriable(e) && !rd_kafka_error_is_fatal(e) && !rd_kafka_error_txn_requires_abort(e);
}

/* Calls commit or abort until it is done or fails for good, while the writer is not stopping. */
static rd_kafka_error_t *until_done(ingest *in, rd_kafka_error_t *(*call)(rd_kafka_t *, int))
{
    rd_kafka_error_t *e;
    while (retriable(e = call(in->progress->tx, TXN_TIMEOUT_MS)) && !in->progress->stopping) {
        rd_kafka_error_destroy(e);
        mr_sleep_ms(100);
    }
    return e;
}

/* Ends a failed transaction: aborted, or with a fatal error, the producer made anew. */
static void txn_failed(ingest *in, rd_kafka_error_t *e)
{
    struct ingest_progress *p = in->progress;
    mr_log("warn", "ingest", "a progress transaction failed: %s", rd_kafka_error_string(e));
    int fatal = rd_kafka_error_is_fatal(e);
    rd_kafka_error_destroy(e);
    atomic_store(&p->last_ok_ms, 0); /* nothing is proved until a transaction goes through again */
    if (!fatal) {
        rd_kafka_error_t *a = until_done(in, rd_kafka_abort_transaction);
        if (a) {
            fatal = rd_kafka_error_is_fatal(a);
            rd_kafka_error_destroy(a);
        }
    }
    if (fatal) {
        char err[512];
        rd_kafka_destroy(p->tx);
        p->tx = new_writer(in, err, sizeof err);
        if (!p->tx)
            mr_log("error", "ingest", "could not start a new progress writer: %s", err);
    }
}

/* One transaction of records (for the leases in offsets). Returns 0, or -1 when it failed. */
static int write_one(ingest *in, json_t *records, rd_kafka_topic_partition_list_t *offsets)
{
    struct ingest_progress *p = in->progress;
    if (!p->tx) {
        char err[512];
        if (!(p->tx = new_writer(in, err, sizeof err)))
            return -1;
    }
    rd_kafka_error_t *e = rd_kafka_begin_transaction(p->tx);
    const char *key;
    json_t *entry;
    json_object_foreach(records, key, entry) {
        if (e)
            break;
        int32_t lease = (int32_t)json_integer_value(json_array_get(entry, 0));
        const char *value = json_string_value(json_array_get(entry, 1));
        rd_kafka_resp_err_t pe = rd_kafka_producev(
            p->tx, RD_KAFKA_V_TOPIC(MR_TOPIC_PROGRESS), RD_KAFKA_V_PARTITION(lease), RD_KAFKA_V_KEY(key, strlen(key)),
            RD_KAFKA_V_VALUE((void *)value, value ? strlen(value) : 0), RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
            RD_KAFKA_V_END);
        if (pe)
            e = rd_kafka_error_new(pe, "producing progress: %s", rd_kafka_err2str(pe));
    }
    /* The group's generation as the records were chosen: retried with it as it is, so that a
     * rebalance meanwhile (which may have given a lease away) fails the transaction. */
    rd_kafka_consumer_group_metadata_t *group = e ? NULL : rd_kafka_consumer_group_metadata(in->group);
    while (!e) {
        e = rd_kafka_send_offsets_to_transaction(p->tx, offsets, group, TXN_TIMEOUT_MS);
        if (!retriable(e) || p->stopping)
            break;
        rd_kafka_error_destroy(e);
        e = NULL;
        mr_sleep_ms(100);
    }
    if (group)
        rd_kafka_consumer_group_metadata_destroy(group);
    if (!e)
        e = until_done(in, rd_kafka_commit_transaction);
    if (e) {
        txn_failed(in, e);
        return -1;
    }
    return 0;
}

static void *writer(void *arg)
{
    ingest *in = arg;
    struct ingest_progress *p = in->progress;
    pthread_mutex_lock(&p->lock);
    while (!p->stopping) {
        int due = p->renew && mr_now_ms() - atomic_load(&p->last_ok_ms) >= LEASE_WINDOW_MS / 2;
        if (!json_object_size(p->queue) && !due && p->written == p->asked) {
            pthread_cond_wait(&p->wake, &p->lock);
            continue;
        }
        uint64_t asked = p->asked;
        json_t *records = p->queue;
        p->queue = json_object();
        p->renew = 0;
        /* what a lease no longer held carries is dropped: its next holder writes its own */
        const char *key;
        void *tmp;
        json_t *entry;
        json_object_foreach_safe(records, tmp, key, entry)
            if (!p->held[json_integer_value(json_array_get(entry, 0))])
                json_object_del(records, key);
        rd_kafka_topic_partition_list_t *offsets = held_leases(in);
        pthread_mutex_unlock(&p->lock);
        int64_t began = mr_now_ms();
        int rc = offsets ? write_one(in, records, offsets) : 0;
        if (offsets)
            rd_kafka_topic_partition_list_destroy(offsets);
        pthread_mutex_lock(&p->lock);
        if (rc == 0 && offsets)
            atomic_store(&p->last_ok_ms, began);
        if (rc) { /* written again with the next one, unless newer records replaced them */
            json_object_update_missing(p->queue, records);
            pthread_mutex_unlock(&p->lock);
            mr_sleep_ms(100);
            pthread_mutex_lock(&p->lock);
        }
        json_decref(records);
        p->written = rc == 0 ? asked : p->written;
        pthread_cond_broadcast(&p->done);
    }
    pthread_mutex_unlock(&p->lock);
    return NULL;
}

int ingest_progress_start(ingest *in, char *err, size_t errlen)
{
    struct ingest_progress *p = mr_calloc(1, sizeof *p);
    in->progress = p;
    p->queue = json_object();
    p->held = mr_calloc(in->leases ? in->leases : 1, 1);
    pthread_mutex_init(&p->lock, NULL);
    pthread_cond_init(&p->wake, NULL);
    pthread_cond_init(&p->done, NULL);
    p->tx = new_writer(in, err, errlen);
    if (!p->tx)
        return -1;
    pthread_create(&p->thread, NULL, writer, in);
    return 0;
}

void ingest_progress_stop(ingest *in)
{
    struct ingest_progress *p = in->progress;
    if (!p)
        return;
    if (p->tx) {
        pthread_mutex_lock(&p->lock);
        p->stopping = 1;
        pthread_cond_signal(&p->wake);
        pthread_mutex_unlock(&p->lock);
        pthread_join(p->thread, NULL);
        rd_kafka_flush(p->tx, 2000);
        rd_kafka_destroy(p->tx);
    }
    json_decref(p->queue);
    free(p->held);
    pthread_cond_destroy(&p->wake);
    pthread_cond_destroy(&p->done);
    pthread_mutex_destroy(&p->lock);
    free(p);
    in->progress = NULL;
}

void ingest_progress_put(ingest *in, const char *storage, uint32_t shard, const char *key, const char *value)
{
    struct ingest_progress *p = in->progress;
    pthread_mutex_lock(&p->lock);
    json_object_set_new(p->queue, key, json_pack("[i, s?]", (int)mr_lease_of(storage, shard, in->leases), value));
    pthread_cond_signal(&p->wake);
    pthread_mutex_unlock(&p->lock);
}

void ingest_progress_hold(ingest *in, uint32_t lease, int held)
{
    struct ingest_progress *p = in->progress;
    pthread_mutex_lock(&p->lock);
    p->held[lease] = (unsigned char)held;
    if (!held) {
        const char *key;
        void *tmp;
        json_t *entry;
        json_object_foreach_safe(p->queue, tmp, key, entry)
            if ((uint32_t)json_integer_value(json_array_get(entry, 0)) == lease)
                json_object_del(p->queue, key);
    }
    pthread_mutex_unlock(&p->lock);
}

int ingest_may_act(ingest *in)
{
    int64_t ok = atomic_load(&in->progress->last_ok_ms);
    return ok && mr_now_ms() - ok < LEASE_WINDOW_MS;
}

void ingest_progress_renew(ingest *in)
{
    struct ingest_progress *p = in->progress;
    pthread_mutex_lock(&p->lock);
    p->renew = 1;
    pthread_cond_signal(&p->wake);
    pthread_mutex_unlock(&p->lock);
}

int ingest_progress_flush(ingest *in, int timeout_ms)
{
    struct ingest_progress *p = in->progress;
    pthread_mutex_lock(&p->lock);
    uint64_t want = ++p->asked;
    pthread_cond_signal(&p->wake);
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    int64_t at = (int64_t)ts.tv_nsec + (int64_t)timeout_ms * 1000000;
    ts.tv_sec += at / 1000000000;
    ts.tv_nsec = at % 1000000000;
    int rc = 0;
    while (p->written < want && rc == 0)
        rc = pthread_cond_timedwait(&p->done, &p->lock, &ts);
    int ok = p->written >= want;
    pthread_mutex_unlock(&p->lock);
    return ok ? 0 : -1;
}
