/* buf.c: a growable byte buffer (buf.h). */
#include "buf.h"

#include <stdlib.h>
#include <string.h>

#include "alloc.h"

void mr_buf_add(mr_buf *b, const void *p, size_t n, size_t first_cap)
{
    if (b->len + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap * 2 : (first_cap ? first_cap : 1);
        while (cap < b->len + n + 1)
            cap *= 2;
        b->data = mr_realloc(b->data, cap);
        b->cap = cap;
    }
    if (n)
        memcpy(b->data + b->len, p, n);
    b->len += n;
    b->data[b->len] = '\0';
}

void mr_buf_free(mr_buf *b)
{
    free(b->data);
    *b = (mr_buf){0};
}
