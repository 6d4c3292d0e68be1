/* lease.c: the consumer group whose partitions are the leases on shards. A shard's lease is a
 * partition of miroir.progress (mr_lease_of); the worker assigned it applies the shard and writes
 * its progress there. Rebalancing is cooperative: a worker joining or leaving moves only the
 * leases that change hands, and the others keep applying. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "alloc.h"
#include "hrw.h"
#include "ingest.h"
#include "kafka.h"
#include "util.h"

#define GROUP_ID "miroir.leases"

static int cooperative(rd_kafka_t *rk)
{
    const char *p = rd_kafka_rebalance_protocol(rk);
    return p && strcmp(p, "COOPERATIVE") == 0;
}

static void took(rd_kafka_error_t *e, const char *what)
{
    if (e) {
        mr_log("error", "ingest", "%s leases failed: %s", what, rd_kafka_error_string(e));
        rd_kafka_error_destroy(e);
    }
}

/* The group only grants the lease: nothing is read from it (the fetch starts at the end and is
 * paused at once). */
static void on_rebalance(rd_kafka_t *rk, rd_kafka_resp_err_t err, rd_kafka_topic_partition_list_t *parts, void *opaque)
{
    ingest *in = opaque;
    if (err == RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS) {
        for (int i = 0; i < parts->cnt; i++) {
            parts->elems[i].offset = RD_KAFKA_OFFSET_END;
            if ((uint32_t)parts->elems[i].partition < in->leases) {
                in->owned[parts->elems[i].partition] = 1;
                ingest_progress_hold(in, (uint32_t)parts->elems[i].partition, 1);
            }
        }
        if (cooperative(rk))
            took(rd_kafka_incremental_assign(rk, parts), "taking");
        else
            rd_kafka_assign(rk, parts);
        rd_kafka_pause_partitions(rk, parts);
        mr_log("info", "ingest", "took %d leases", parts->cnt);
    } else {
        /* Handing leases over gracefully: their last progress goes first, while the generation
         * still holds. A lost assignment can't write any more; the next holder reads what was. */
        if (!rd_kafka_assignment_lost(rk) && ingest_progress_flush(in, 2000))
            mr_log("warn", "ingest", "the last progress of the leases handed over was not written");
        for (int i = 0; i < parts->cnt; i++) {
            uint32_t p = (uint32_t)parts->elems[i].partition;
            if (p >= in->leases)
                continue;
            in->owned[p] = 0;
            ingest_drop_lease(in, p);
            ingest_progress_hold(in, p, 0);
        }
        if (cooperative(rk))
            took(rd_kafka_incremental_unassign(rk, parts), "handing over");
        else
            rd_kafka_assign(rk, NULL);
        mr_log("info", "ingest", "handed over %d leases%s", parts->cnt, rd_kafka_assignment_lost(rk) ? " (lost)" : "");
    }
    in->streams_dirty = 1;
    in->leases_changed = 1;
}

int ingest_lease_start(ingest *in, char *err, size_t errlen)
{
    in->owned = mr_calloc(in->leases, 1);
    static const char *const group[] = {"partition.assignment.strategy", "cooperative-sticky", "session.timeout.ms",
                                        "10000", "heartbeat.interval.ms", "1000", "max.poll.interval.ms", "300000",
                                        NULL};
    in->group = mr_kafka_consumer_cb(in->cfg, GROUP_ID, group, on_rebalance, in, err, errlen);
    if (!in->group)
        return -1;
    rd_kafka_topic_partition_list_t *sub = rd_kafka_topic_partition_list_new(1);
    rd_kafka_topic_partition_list_add(sub, MR_TOPIC_PROGRESS, RD_KAFKA_PARTITION_UA);
    rd_kafka_resp_err_t e = rd_kafka_subscribe(in->group, sub);
    rd_kafka_topic_partition_list_destroy(sub);
    if (e) {
        snprintf(err, errlen, "subscribing to %s: %s", MR_TOPIC_PROGRESS, rd_kafka_err2str(e));
        return -1;
    }
    return 0;
}

void ingest_lease_poll(ingest *in)
{
    for (int i = 0; i < 100; i++) {
        rd_kafka_message_t *m = rd_kafka_consumer_poll(in->group, 0);
        if (!m)
            break;
        if (m->err && m->err != RD_KAFKA_RESP_ERR__PARTITION_EOF)
            mr_log("warn", "ingest", "lease group: %s", rd_kafka_message_errstr(m));
        rd_kafka_message_destroy(m);
    }
}

void ingest_lease_stop(ingest *in)
{
    if (in->group) {
        rd_kafka_consumer_close(in->group); /* hands the leases over (the rebalance callback runs) */
        rd_kafka_destroy(in->group);
        in->group = NULL;
    }
    free(in->owned);
    in->owned = NULL;
}

int ingest_owns(const ingest *in, const char *storage, uint32_t shard)
{
    return in->owned && in->owned[mr_lease_of(storage, shard, in->leases)];
}
