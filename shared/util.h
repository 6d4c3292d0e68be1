/* util.h: clocks, timestamps and logfmt logging. */
#ifndef MIROIR_UTIL_H
#define MIROIR_UTIL_H

#include <stddef.h>
#include <signal.h>
#include <stdint.h>
#include <time.h>

/* Monotonic milliseconds, for timeouts and durations. */
int64_t mr_now_ms(void);
void mr_sleep_ms(long ms);

/* Blocks SIGINT and SIGTERM in the calling thread and those it starts (into set, for sigwait or
 * sigtimedwait), and ignores SIGPIPE. Called once from main, before any thread starts. */
void mr_block_signals(sigset_t *set);

/* Wall-clock time as RFC 3339 with nanoseconds, like Meilisearch's "2024-01-01T00:00:00.123456789Z". */
void mr_now_rfc3339(char *out, size_t outlen);
/* The wall clock, to the nanosecond. */
struct timespec mr_now_real(void);

/* A qsort comparator for an array of strings (const char *), in byte order. */
int mr_compare_strings(const void *a, const void *b);

/* Parses an RFC 3339 time ("2024-01-31T10:00:00.5Z", "+01:00" offsets too) or a date
 * ("2024-01-31") into nanoseconds since the epoch. Returns 0, or -1 if s is neither. */
int mr_parse_time(const char *s, int64_t *ns);

/* One logfmt line on stderr: ts=… level=… comp=… msg="…". Thread-safe (one write per line). */
void mr_log(const char *level, const char *component, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
/* mr_log with the request's id as its own field (request_id=…), so one request's lines can be
 * found across the gateway's log (its X-Request-Id, also sent to the nodes). */
void mr_log_request(const char *level, const char *component, const char *request_id, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

#endif
