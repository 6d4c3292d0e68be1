/* metrics.c: histograms and the Prometheus text format. */
#include "metrics.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* seconds; the last bucket is +Inf */
static const double bounds[MR_HIST_BUCKETS - 1] = {0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05,
                                                    0.1,    0.25,  0.5,    1,     2.5,   10};

void mr_histogram_observe(mr_histogram *h, double ms)
{
    double s = ms / 1000.0;
    size_t i = 0;
    while (i < MR_HIST_BUCKETS - 1 && s > bounds[i])
        i++;
    atomic_fetch_add(&h->buckets[i], 1);
    atomic_fetch_add(&h->count, 1);
    atomic_fetch_add(&h->sum_us, (unsigned long long)(ms * 1000.0));
}

void mr_text_printf(mr_text *t, const char *fmt, ...)
{
    for (;;) {
        va_list ap;
        va_start(ap, fmt);
        size_t room = t->cap - t->len;
        int n = vsnprintf(t->data ? t->data + t->len : NULL, t->data ? room : 0, fmt, ap);
        va_end(ap);
        if (n < 0)
            return;
        if (t->data && (size_t)n < room) {
            t->len += (size_t)n;
            return;
        }
        size_t cap = t->cap ? t->cap : 4096;
        while (cap - t->len <= (size_t)n)
            cap *= 2;
        char *grown = realloc(t->data, cap);
        if (!grown)
            return;
        t->data = grown;
        t->cap = cap;
    }
}

void mr_histogram_write(mr_text *t, const char *name, const char *labels, const mr_histogram *h)
{
    const char *sep = labels[0] ? "," : "";
    unsigned long long cumulative = 0;
    for (size_t i = 0; i < MR_HIST_BUCKETS; i++) {
        cumulative += atomic_load(&h->buckets[i]);
        if (i < MR_HIST_BUCKETS - 1)
            mr_text_printf(t, "%s_bucket{%s%sle=\"%g\"} %llu\n", name, labels, sep, bounds[i], cumulative);
        else
            mr_text_printf(t, "%s_bucket{%s%sle=\"+Inf\"} %llu\n", name, labels, sep, cumulative);
    }
    mr_text_printf(t, "%s_sum{%s} %.6f\n", name, labels, (double)atomic_load(&h->sum_us) / 1e6);
    mr_text_printf(t, "%s_count{%s} %llu\n", name, labels, atomic_load(&h->count));
}

void mr_label_escape(char *out, size_t outlen, const char *value)
{
    size_t n = 0;
    for (const char *p = value; *p && n + 3 < outlen; p++) {
        if (*p == '\\' || *p == '"') {
            out[n++] = '\\';
            out[n++] = *p;
        } else if (*p == '\n') {
            out[n++] = '\\';
            out[n++] = 'n';
        } else {
            out[n++] = *p;
        }
    }
    out[n] = '\0';
}
