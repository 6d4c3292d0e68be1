/* latency.c: latency estimates and the replica order they give (latency.h). */
#include "latency.h"

#include <string.h>

#include "topology.h"

/* Slow: twice the fastest replica's mean, and 10 ms more. */
#define SLOW_FACTOR 2.0
#define SLOW_MARGIN_MS 10.0
/* Each pass-over fades the estimate by this fraction. */
#define FADE_DIVISOR 512
/* A probe that neither answers nor is reported within this lets another one go. */
#define PROBE_MS 1000

void mr_latency_observe(mr_latency *l, double ms)
{
    long long sample = (long long)(ms * 1000.0), srtt = atomic_load(&l->srtt_us), var = atomic_load(&l->rttvar_us);
    if (srtt == 0) {
        atomic_store(&l->srtt_us, sample > 0 ? sample : 1);
        atomic_store(&l->rttvar_us, sample / 2);
        return;
    }
    long long dev = sample > srtt ? sample - srtt : srtt - sample;
    atomic_store(&l->rttvar_us, var + (dev - var) / 4);
    long long next = srtt + (sample - srtt) / 8 > 0 ? srtt + (sample - srtt) / 8 : 1;
    if (atomic_load(&l->passed_over)) {
        if (sample <= srtt)
            atomic_store(&l->passed_over, 0);
        else
            next = sample; /* a blend would let it back after a fraction of the fading */
    }
    atomic_store(&l->srtt_us, next);
    atomic_store(&l->probe_until_ms, 0);
}

void mr_latency_get(const mr_latency *l, double *mean_ms, double *high_ms)
{
    long long srtt = l ? atomic_load(&l->srtt_us) : 0, var = l ? atomic_load(&l->rttvar_us) : 0;
    *mean_ms = (double)srtt / 1000.0;
    *high_ms = (double)(srtt + 4 * var) / 1000.0;
}

static void fade(mr_latency *l)
{
    long long srtt = atomic_load(&l->srtt_us), var = atomic_load(&l->rttvar_us);
    if (srtt > 1)
        atomic_store(&l->srtt_us, srtt - srtt / FADE_DIVISOR > 0 ? srtt - srtt / FADE_DIVISOR : 1);
    atomic_store(&l->rttvar_us, var - var / FADE_DIVISOR); /* or a probe's hedge waits on the old spread */
}

/* Whether this caller may ask a passed-over replica: only the one that takes the probe. */
static int takes_probe(mr_latency *l, int64_t now_ms)
{
    if (!atomic_load(&l->passed_over))
        return 1;
    long long until = atomic_load(&l->probe_until_ms);
    return until <= now_ms && atomic_compare_exchange_strong(&l->probe_until_ms, &until, now_ms + PROBE_MS);
}

void mr_latency_prefer(mr_latency *const *lat, const char **nodes, size_t n, int64_t now_ms)
{
    double mean[MR_MAX_REPLICAS], high, best = -1;
    if (n > MR_MAX_REPLICAS)
        return;
    for (size_t i = 0; i < n; i++) {
        mr_latency_get(lat[i], &mean[i], &high);
        if (mean[i] > 0 && (best < 0 || mean[i] < best))
            best = mean[i];
    }
    if (best < 0)
        return;
    const char *fast[MR_MAX_REPLICAS], *slow[MR_MAX_REPLICAS];
    size_t nf = 0, ns = 0;
    for (size_t i = 0; i < n; i++) {
        if (lat[i] && mean[i] > best * SLOW_FACTOR && mean[i] > best + SLOW_MARGIN_MS) {
            atomic_store(&lat[i]->passed_over, 1);
            fade(lat[i]);
            slow[ns++] = nodes[i];
        } else if (lat[i] && mean[i] > best && !takes_probe(lat[i], now_ms)) { /* the fastest needs no probe */
            slow[ns++] = nodes[i];
        } else {
            fast[nf++] = nodes[i];
        }
    }
    memcpy(nodes, fast, nf * sizeof *nodes);
    memcpy(nodes + nf, slow, ns * sizeof *nodes);
}
