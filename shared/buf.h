/* buf.h: a growable byte buffer, always NUL-terminated once anything was added.
 *
 * The owner holds the struct and frees data with mr_buf_free (or free(data) when it takes the
 * bytes for itself). A zeroed struct is an empty buffer. */
#ifndef MIROIR_BUF_H
#define MIROIR_BUF_H

#include <stddef.h>

typedef struct mr_buf {
    char *data;
    size_t len, cap;
} mr_buf;

/* Appends n bytes of p. The first allocation is at least first_cap bytes (a caller that knows the
 * size to come gets it in one), and later ones double. */
void mr_buf_add(mr_buf *b, const void *p, size_t n, size_t first_cap);

void mr_buf_free(mr_buf *b);

#endif
