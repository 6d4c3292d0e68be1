/* checksum.c: order-independent document-set digests. */
#include "checksum.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <xxhash.h>

void mr_checksum_add(mr_checksum *c, const json_t *doc)
{
    char *text = json_dumps(doc, JSON_COMPACT | JSON_SORT_KEYS | JSON_ENCODE_ANY);
    c->sum += XXH64(text, strlen(text), 0);
    c->count++;
    free(text);
}

void mr_checksum_format(const mr_checksum *c, char *out, size_t outlen)
{
    snprintf(out, outlen, "%" PRIu64 ":%016" PRIx64, c->count, c->sum);
}
