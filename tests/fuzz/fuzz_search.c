/* fuzz_search.c: search parameters and the merge of shard answers, as the gateway runs them on
 * every search: validation, the shard body, then the k-way merge and the facet merges.
 * Input: lines; the first is the client's search body, each further line one shard's answer. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "merge.h"

#define MAX_SHARDS 16

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *p = (const char *)data, *end = p + size;
    const char *nl = memchr(p, '\n', size);
    json_t *body = json_loadb(p, nl ? (size_t)(nl - p) : size, 0, NULL);
    if (!json_is_object(body)) {
        json_decref(body);
        return 0;
    }
    json_t *answers[MAX_SHARDS];
    size_t n = 0;
    for (const char *line = nl ? nl + 1 : end; line < end && n < MAX_SHARDS;) {
        const char *next = memchr(line, '\n', (size_t)(end - line));
        size_t len = next ? (size_t)(next - line) : (size_t)(end - line);
        json_t *a = json_loadb(line, len, 0, NULL);
        if (json_is_object(a))
            answers[n++] = a;
        else
            json_decref(a);
        line = next ? next + 1 : end;
    }
    mr_search_req req;
    mr_error err;
    if (mr_search_req_init(&req, body, NULL, &err) == 0) {
        json_t *shard_body = mr_search_shard_body(&req, 1000);
        (void)mr_search_affinity(shard_body);
        json_decref(shard_body);
        mr_merge_limits limits = {1000, 100};
        int short_answer = 0;
        json_t *merged = mr_search_merge(&req, answers, n, &limits, &short_answer);
        json_decref(merged);
        json_t *facets = mr_merge_facet_distribution(answers, n, 100);
        json_decref(facets);
        json_t *stats = mr_merge_facet_stats(answers, n);
        json_decref(stats);
        json_t *facet_hits = mr_merge_facet_hits(answers, n, 100);
        json_decref(facet_hits);
        mr_search_req_clear(&req);
    }
    json_decref(body);
    for (size_t i = 0; i < n; i++)
        json_decref(answers[i]);
    return 0;
}
