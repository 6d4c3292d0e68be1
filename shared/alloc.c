/* alloc.c: allocations that never return NULL (see alloc.h). */
#include "alloc.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void *checked(void *p, size_t size)
{
    if (!p && size) {
        /* no mr_log: it may allocate, and this is the one path that must not */
        fprintf(stderr, "level=error comp=alloc msg=\"out of memory allocating %zu bytes\"\n", size);
        abort();
    }
    return p;
}

void *mr_malloc(size_t size)
{
    return checked(malloc(size ? size : 1), size);
}

void *mr_calloc(size_t count, size_t size)
{
    return checked(calloc(count ? count : 1, size ? size : 1), count * size);
}

void *mr_realloc(void *p, size_t size)
{
    return checked(realloc(p, size ? size : 1), size);
}

char *mr_strdup(const char *s)
{
    return checked(strdup(s), strlen(s) + 1);
}

char *mr_strndup(const char *s, size_t n)
{
    return checked(strndup(s, n), n + 1);
}
