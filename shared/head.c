/* head.c: see head.h. */
#include "head.h"

#include <ctype.h>
#include <string.h>

#define METHOD_MAX 16 /* the longest method a route answers is 6 letters; others are noise */

/* The end of the first line of bytes (the '\n'), or NULL. */
static const char *line_end(const char *bytes, size_t n) { return memchr(bytes, '\n', n); }

/* Whether bytes[0..n) can start, or be, "METHOD SP target SP HTTP/1.x". */
static int request_line_plausible(const char *bytes, size_t n)
{
    size_t i = 0;
    while (i < n && i < METHOD_MAX && bytes[i] >= 'A' && bytes[i] <= 'Z')
        i++;
    if (i == 0)
        return 0;
    if (i == n)
        return 1;
    if (bytes[i] != ' ')
        return 0;
    const char *end = line_end(bytes, n);
    if (!end)
        return 1; /* the target is still arriving */
    size_t len = (size_t)(end - bytes);
    if (len > 0 && bytes[len - 1] == '\r')
        len--;
    static const char v10[] = " HTTP/1.0", v11[] = " HTTP/1.1";
    size_t vlen = sizeof v10 - 1;
    if (len < i + 1 + vlen)
        return 0;
    const char *version = bytes + len - vlen;
    if (memcmp(version, v10, vlen) != 0 && memcmp(version, v11, vlen) != 0)
        return 0;
    for (const char *p = bytes + i + 1; p < version; p++)
        if ((unsigned char)*p <= ' ' || *p == 0x7f)
            return 0;
    return version > bytes + i + 1;
}

enum mr_head_verdict mr_head_judge(const char *bytes, size_t n, size_t max)
{
    if (n == 0)
        return MR_HEAD_PARTIAL;
    if (!request_line_plausible(bytes, n))
        return MR_HEAD_NOT_HTTP;
    for (const char *p = line_end(bytes, n); p; p = line_end(p + 1, n - (size_t)(p + 1 - bytes))) {
        /* an empty line: "\n\n" or "\n\r\n" */
        size_t rest = n - (size_t)(p + 1 - bytes);
        if ((rest >= 1 && p[1] == '\n') || (rest >= 2 && p[1] == '\r' && p[2] == '\n'))
            return MR_HEAD_COMPLETE;
    }
    return n >= max ? MR_HEAD_TOO_LARGE : MR_HEAD_PARTIAL;
}

static int hex_value(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    c = (char)tolower((unsigned char)c);
    return c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
}

int mr_head_path_clean(const char *target)
{
    for (const char *p = target; *p && *p != '?'; p++) {
        unsigned char c = (unsigned char)*p;
        if (c < 0x20 || c == 0x7f)
            return 0;
        if (c == '%') {
            int hi = hex_value(p[1]), lo = hi < 0 ? -1 : hex_value(p[2]);
            if (lo >= 0 && (hi * 16 + lo < 0x20 || hi * 16 + lo == 0x7f))
                return 0;
        }
    }
    return 1;
}
