/* util.c: clocks, timestamps and logfmt logging. */
#include "util.h"

#include <pthread.h>

#include <stdarg.h>
#include <stdlib.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

int64_t mr_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void mr_sleep_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0)
        ;
}

void mr_block_signals(sigset_t *set)
{
    sigemptyset(set);
    sigaddset(set, SIGINT);
    sigaddset(set, SIGTERM);
    pthread_sigmask(SIG_BLOCK, set, NULL);
    signal(SIGPIPE, SIG_IGN);
}

int mr_compare_strings(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

struct timespec mr_now_real(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return ts;
}

void mr_now_rfc3339(char *out, size_t outlen)
{
    struct timespec ts;
    struct tm tm;
    clock_gettime(CLOCK_REALTIME, &ts);
    gmtime_r(&ts.tv_sec, &tm);
    char base[32];
    strftime(base, sizeof base, "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(out, outlen, "%s.%09ldZ", base, ts.tv_nsec);
}

int mr_parse_time(const char *s, int64_t *ns)
{
    struct tm tm = {0};
    const char *rest = strptime(s, "%Y-%m-%d", &tm);
    if (!rest)
        return -1;
    int64_t frac = 0;
    long offset = 0;
    if (*rest == 'T' || *rest == 't' || *rest == ' ') {
        rest = strptime(rest + 1, "%H:%M:%S", &tm);
        if (!rest)
            return -1;
        if (*rest == '.') {
            int64_t scale = 100000000;
            for (rest++; *rest >= '0' && *rest <= '9'; rest++, scale /= 10)
                frac += (*rest - '0') * scale;
        }
        if (*rest == 'Z' || *rest == 'z') {
            rest++;
        } else if ((*rest == '+' || *rest == '-') && strlen(rest) == 6 && rest[3] == ':') {
            int h = atoi(rest + 1), mi = atoi(rest + 4);
            offset = (rest[0] == '+' ? 1 : -1) * (h * 3600L + mi * 60L);
            rest += 6;
        } else {
            return -1;
        }
    }
    if (*rest)
        return -1;
    *ns = ((int64_t)timegm(&tm) - offset) * 1000000000 + frac;
    return 0;
}

static void log_line(const char *level, const char *component, const char *request_id, const char *fmt, va_list ap)
{
    char ts[48], msg[2048], line[2400];
    mr_now_rfc3339(ts, sizeof ts);
    vsnprintf(msg, sizeof msg, fmt, ap);
    /* logfmt quoting: escape backslashes and quotes, flatten newlines */
    char quoted[sizeof msg * 2];
    size_t q = 0;
    for (const char *p = msg; *p && q + 2 < sizeof quoted; p++) {
        if (*p == '"' || *p == '\\')
            quoted[q++] = '\\';
        quoted[q++] = *p == '\n' ? ' ' : *p;
    }
    quoted[q] = '\0';
    int n = request_id ? snprintf(line, sizeof line, "ts=%s level=%s comp=%s request_id=%s msg=\"%s\"\n", ts, level,
                                  component, request_id, quoted)
                       : snprintf(line, sizeof line, "ts=%s level=%s comp=%s msg=\"%s\"\n", ts, level, component, quoted);
    if (n > 0)
        (void)!write(STDERR_FILENO, line, (size_t)n < sizeof line ? (size_t)n : sizeof line - 1);
}

void mr_log(const char *level, const char *component, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    log_line(level, component, NULL, fmt, ap);
    va_end(ap);
}

void mr_log_request(const char *level, const char *component, const char *request_id, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    log_line(level, component, request_id, fmt, ap);
    va_end(ap);
}
