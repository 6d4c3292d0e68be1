/* metrics.h: lock-free counters and latency histograms, written in Prometheus' text format.
 *
 * Ownership: the caller embeds them (e.g. one per route in the gateway's context) and observes
 * from any thread; a scrape reads them without stopping the writers, so a scrape may see a
 * count and a sum from slightly different instants, as Prometheus allows. */
#ifndef MIROIR_METRICS_H
#define MIROIR_METRICS_H

#include <stdatomic.h>
#include <stddef.h>

#define MR_HIST_BUCKETS 14

typedef struct mr_histogram {
    atomic_ullong buckets[MR_HIST_BUCKETS]; /* non-cumulative: observations ≤ bound[i] and > bound[i-1] */
    atomic_ullong count;
    atomic_ullong sum_us;
} mr_histogram;

void mr_histogram_observe(mr_histogram *h, double ms);

/* A growing text buffer for one scrape. */
typedef struct mr_text {
    char *data;
    size_t len, cap;
} mr_text;

void mr_text_printf(mr_text *t, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Writes the _bucket, _sum and _count series of h as name{labels,le="…"} (labels may be ""). */
void mr_histogram_write(mr_text *t, const char *name, const char *labels, const mr_histogram *h);

/* Escapes a label value (backslash, quote, newline) into out. */
void mr_label_escape(char *out, size_t outlen, const char *value);

#endif
