/* util.c: clocks, timestamps and logfmt logging. */
#include "util.h"

#include <stdarg.h>
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

void mr_log(const char *level, const char *component, const char *fmt, ...)
{
    char ts[48], msg[2048], line[2300];
    mr_now_rfc3339(ts, sizeof ts);
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    /* logfmt quoting: escape backslashes and quotes, flatten newlines */
    char quoted[sizeof msg * 2];
    size_t q = 0;
    for (const char *p = msg; *p && q + 2 < sizeof quoted; p++) {
        if (*p == '"' || *p == '\\')
            quoted[q++] = '\\';
        quoted[q++] = *p == '\n' ? ' ' : *p;
    }
    quoted[q] = '\0';
    int n = snprintf(line, sizeof line, "ts=%s level=%s comp=%s msg=\"%s\"\n", ts, level, component, quoted);
    if (n > 0)
        (void)!write(STDERR_FILENO, line, (size_t)n < sizeof line ? (size_t)n : sizeof line - 1);
}
