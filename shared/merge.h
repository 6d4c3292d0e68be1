/* merge.h: a search over S shards: the per-shard request, and the one merge of their answers.
 *
 * The gateway asks every shard for the first offset+limit hits (capped at maxTotalHits) with
 * their ranking score, then k-way merges them: score descending (with `sort`, rule by rule as
 * the index ranks them, from the ranking score details), ties in write order (seq.h) as one
 * node breaks them, then by shard and position,
 * so the merged order is a pure function of the shard answers. Counts add up (capped at
 * maxTotalHits), facet counts add up, facet stats take min and max. */
#ifndef MIROIR_MERGE_H
#define MIROIR_MERGE_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#include "apierr.h"

typedef struct mr_search_req {
    json_t *body;       /* the client's search body (owned reference) */
    int page_mode;      /* page or hitsPerPage given */
    size_t offset, limit;
    size_t page, hits_per_page;
    int show_ranking_score;
    int show_details;   /* showRankingScoreDetails, as the client asked */
    int by_details;     /* merge rule by rule (needed with `sort`), from the shards' score details */
    /* A semantic or hybrid search (as a node tells them apart) ranks by approximate nearest
     * neighbours, whose answer depends on how many are asked for: a shard's first k hits need
     * not be the first k of its longer answer, so such a search is neither narrowed nor split
     * in two phases. */
    int semantic;
    /* A hybrid search (a query, and a semanticRatio strictly between 0 and 1) mixes keyword and
     * semantic hits, and a node orders them by score times their side's weight (semanticRatio,
     * or 1 - semanticRatio): the merge does too, telling the sides apart by the score details
     * (a semantic hit's have "vectorSort"), and counts the page's semantic hits. */
    int weighted;
    double semantic_ratio;
    char distinct[256]; /* the distinct attribute ("" for none): deduplicated across shards too */
    size_t overfetch;   /* each shard is asked for window × overfetch hits (≥ 1), see distinct */
    json_t *added;      /* attributes added to attributesToRetrieve for the merge, removed after */
} mr_search_req;

/* Takes a reference to body (a JSON object) and validates the paging parameters. distinct is the
 * index's distinctAttribute ("" or NULL for none); the body's own "distinct" wins over it.
 * Returns 0, or -1 with err in Meilisearch's words (req then holds nothing). */
int mr_search_req_init(mr_search_req *req, json_t *body, const char *distinct, mr_error *err);
void mr_search_req_clear(mr_search_req *req);

/* The body sent to every shard (new reference). */
json_t *mr_search_shard_body(mr_search_req *req, long max_total_hits);

/* Asks a shard body for its first `hits` hits (limit, or hitsPerPage in page mode). */
void mr_search_body_window(json_t *shard_body, const mr_search_req *req, size_t hits);

/* A narrowed window: each shard is first asked for fewer hits than the page could take from it.
 * The page's hits fall on the shards at random (a document's shard is a hash of its id), so
 * the count on one shard is binomial: the window is the smallest that at most 2% of searches
 * would outgrow (then mr_search_doubt). Returns 0 when narrowing would not ask for less (one
 * shard, a small window) or would not be exact (distinct: a shard's window bounds the count).
 * A shard's first k hits are the first k of its longer answer (checked on Meilisearch 1.21),
 * and its counts and facets do not depend on the window. */
size_t mr_search_narrow_window(const mr_search_req *req, long max_total_hits, size_t shards);

/* The shards whose narrowed answer (narrow hits) may lack hits of the page: each answered all
 * `narrow` hits, and the merged order took its last one before the page was full, so its next
 * hits, unseen, could rank on the page. Asked again for the whole window, they make the merge
 * exact. A shard whose last hit was not taken is safe: its unseen hits rank below that one.
 * Sets doubt[s] (n flags, the caller's) and returns how many are set. */
size_t mr_search_doubt(const mr_search_req *req, json_t *const *answers, size_t n, long max_total_hits, size_t narrow,
                       unsigned char *doubt);

/* Whether a hit of req's search came from its semantic side, as a node counts it into
 * semanticHitCount: every hit of a semantic search; in a hybrid one, a hit whose score details
 * (asked of the shards for it) hold "vectorSort"; none of a keyword search. */
int mr_search_hit_semantic(const mr_search_req *req, json_t *hit);

/* Orders two sort values as Meilisearch does: numbers before strings before anything else
 * (missing, null), in both directions. Negative: a first. */
int mr_compare_sort_values(const json_t *a, const json_t *b, int descending);

/* The summed "facetDistribution" of n answers (or of objects holding one), in Meilisearch's
 * value order, at most max_values per facet; NULL if none has one. New reference. */
json_t *mr_merge_facet_distribution(json_t *const *answers, size_t n, size_t max_values);
/* The merged "facetStats" (min of minima, max of maxima); NULL if none has one. */
json_t *mr_merge_facet_stats(json_t *const *answers, size_t n);

/* Merges the "facetHits" of n facet-search answers: counts added per value (compared folded),
 * ordered by name, at most max_values. Returns a new array. */
json_t *mr_merge_facet_hits(json_t *const *answers, size_t n, size_t max_values);

/* Makes sure an answer restricted to the attribute list retrieved (attributesToRetrieve, or a
 * fetch's fields; not an array: everything comes back) includes attr, which the merge needs.
 * An attribute it adds is also appended to *added (created on first use; the caller owns it),
 * so that it can be removed from the merged answer. */
void mr_retrieve_for_merge(json_t *retrieved, const char *attr, json_t **added);

/* Takes out of a merged hit, stub (answer.h) or whole, what only the merge needed: the ranking
 * score and its details unless the client asked for them, the attributes added for the merge,
 * and the write order (from "_formatted" too). A stub stays a stub. */
void mr_search_hit_finish(const mr_search_req *req, json_t *hit);

/* A hash of the query without its paging: the same query meets the same replicas. */
uint64_t mr_search_affinity(const json_t *shard_body);

/* The index settings that bound a merged answer. */
typedef struct mr_merge_limits {
    long max_total_hits;       /* pagination.maxTotalHits */
    long max_values_per_facet; /* faceting.maxValuesPerFacet */
} mr_merge_limits;

/* Merges n shard answers (each a parsed Meilisearch search answer; the merge may modify them)
 * into the client's answer, a new reference. With distinct, *short_answer (if not NULL) is set
 * when deduplication left the page short while some shard may hold more: ask again with a
 * larger req->overfetch. */
json_t *mr_search_merge(const mr_search_req *req, json_t *const *answers, size_t n, const mr_merge_limits *limits,
                        int *short_answer);

/* A scattered query's processingTimeMs: the slowest answer's own. The shards work at once, so
 * this is the engine's time on the query's critical path; like one node's, it leaves out the
 * HTTP hops (the gateway's request durations are in /metrics). NULL answers are skipped. */
json_int_t mr_engine_ms(json_t *const *answers, size_t n);

#endif
