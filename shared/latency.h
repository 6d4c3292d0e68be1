/* latency.h: a node's recent latency as a client of it sees it, and the order that puts a
 * shard's replicas in (adaptive replica selection, as Elasticsearch's).
 *
 * The estimate is TCP's for a round trip (RFC 6298, Jacobson): a smoothed mean, gain 1/8, and a
 * mean deviation, gain 1/4. Threads race on its fields; an estimate tolerates that.
 *
 * A replica clearly slower than the fastest of its shard goes after the others. Each time it is
 * passed over its estimate fades a little, so after a few hundred queries it looks fast again and
 * is asked once more: a replica that has become fast is found that way. Only one request at a
 * time may be that probe: every query that saw the faded estimate would otherwise wait on the
 * slow node at once, and a burst of them sets the tail of every client's latency. The probe's
 * answer ends the node's probation if it is as fast as the estimate that let the node back;
 * slower, the estimate starts again from it. */
#ifndef MIROIR_LATENCY_H
#define MIROIR_LATENCY_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

/* A zeroed struct knows nothing yet. */
typedef struct mr_latency {
    atomic_llong srtt_us, rttvar_us; /* 0 until the first answer */
    atomic_int passed_over;          /* went after a faster replica, and no probe answered fast since */
    atomic_llong probe_until_ms;     /* a probe is out until then; 0: none */
} mr_latency;

/* An answer that took ms. */
void mr_latency_observe(mr_latency *l, double ms);

/* The mean, and the time by which nearly every answer comes (mean + 4 deviations); 0 and 0 while
 * nothing is known. l may be NULL: nothing known. */
void mr_latency_get(const mr_latency *l, double *mean_ms, double *high_ms);

/* Orders n replicas (nodes[i] with estimate lat[i], which may be NULL), in their given order
 * otherwise: the fast ones first, then the slow ones and those passed over whose probe is out.
 * A passed-over replica that looks fast again, but not the fastest, is put first for one caller
 * only: that call is the probe, and the caller reports its answer (mr_latency_observe). */
void mr_latency_prefer(mr_latency *const *lat, const char **nodes, size_t n, int64_t now_ms);

#endif
