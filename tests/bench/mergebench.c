/* mergebench.c: the gateway's CPU per query in the merge, for S shards, from canned answers.
 *
 * Each shard answers 20 hits (limit 20) with descending _rankingScore, as a node would. For
 * S = 1, 4, 16, 64 it times reading the S answers as the gateway does (mr_answer_load: hits
 * kept as text), and as a whole jansson parse would, then merging them (mr_search_merge) and
 * writing the reply (mr_json_dumps), and prints one JSON line per S. */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "answer.h"
#include "merge.h"

static double now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e6 + ts.tv_nsec / 1e3;
}

static char *canned_answer(unsigned shard, unsigned limit)
{
    json_t *hits = json_array();
    srand(shard + 1);
    double score = 1.0;
    for (unsigned i = 0; i < limit; i++) {
        score -= (double)(rand() % 1000) / 50000.0;
        json_array_append_new(hits, json_pack("{s:s, s:s, s:s, s:s, s:f}", "id", "123456", "name", "react-router-dom",
                                              "summary", "Declarative routing for React web applications", "registry",
                                              "npm", "_rankingScore", score));
    }
    json_t *a = json_pack("{s:o, s:s, s:i, s:i, s:i, s:i}", "hits", hits, "query", "react router", "processingTimeMs", 1,
                          "limit", (int)limit, "offset", 0, "estimatedTotalHits", 1000);
    char *text = json_dumps(a, JSON_COMPACT);
    json_decref(a);
    return text;
}

int main(int argc, char **argv)
{
    int iterations = argc > 1 ? atoi(argv[1]) : 2000;
    static const unsigned sizes[] = {1, 4, 16, 64};
    for (size_t k = 0; k < sizeof sizes / sizeof sizes[0]; k++) {
        unsigned S = sizes[k];
        char **texts = calloc(S, sizeof *texts);
        json_t **answers = calloc(S, sizeof *answers);
        for (unsigned s = 0; s < S; s++)
            texts[s] = canned_answer(s, 20);
        mr_error err;
        mr_search_req req;
        if (mr_search_req_init(&req, json_pack("{s:s, s:i, s:b}", "q", "react router", "limit", 20, "showRankingScore", 0),
                               NULL, &err)) {
            fprintf(stderr, "mergebench: %s\n", err.message);
            return 1;
        }
        mr_merge_limits limits = {1000, 100};
        double parse_us = 0, whole_us = 0, merge_us = 0;
        for (int it = 0; it < iterations; it++) {
            double t0 = now_us();
            for (unsigned s = 0; s < S; s++)
                json_decref(json_loads(texts[s], 0, NULL));
            double t1 = now_us();
            for (unsigned s = 0; s < S; s++)
                answers[s] = mr_answer_load(texts[s], strlen(texts[s]));
            double t2 = now_us();
            json_t *merged = mr_search_merge(&req, answers, S, &limits, NULL);
            char *out = mr_json_dumps(merged); /* the reply is serialised once */
            double t3 = now_us();
            free(out);
            json_decref(merged);
            for (unsigned s = 0; s < S; s++)
                json_decref(answers[s]);
            whole_us += t1 - t0;
            parse_us += t2 - t1;
            merge_us += t3 - t2;
        }
        printf("{\"shards\": %u, \"parse_us\": %.2f, \"whole_parse_us\": %.2f, \"merge_us\": %.2f}\n", S,
               parse_us / iterations, whole_us / iterations, merge_us / iterations);
        mr_search_req_clear(&req);
        for (unsigned s = 0; s < S; s++)
            free(texts[s]);
        free(texts);
        free(answers);
    }
    return 0;
}
