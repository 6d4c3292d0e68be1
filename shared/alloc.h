/* alloc.h: the one policy for a failed allocation.
 *
 * Miroir's processes hold no state that a restart from Kafka can't rebuild, and a half-done
 * request cut short by a NULL would be harder to reason about than a crash. So, as redis's
 * zmalloc does, an allocation that fails logs what was asked for and aborts the process; callers
 * never check for NULL. Memory from these functions is freed with free(). */
#ifndef MIROIR_ALLOC_H
#define MIROIR_ALLOC_H

#include <stddef.h>

void *mr_malloc(size_t size);
void *mr_calloc(size_t count, size_t size);
void *mr_realloc(void *p, size_t size);
char *mr_strdup(const char *s);
char *mr_strndup(const char *s, size_t n);

#endif
