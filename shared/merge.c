/* merge.c: the shard search request and the k-way merge of shard answers. */
#include "merge.h"

#include <ctype.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <xxhash.h>

#include "answer.h"
#include "seq.h"

static int read_count(json_t *body, const char *name, size_t *out, size_t min, const char *code, mr_error *err)
{
    json_t *v = json_object_get(body, name);
    if (!v || json_is_null(v))
        return 0;
    if (!json_is_integer(v) || json_integer_value(v) < (json_int_t)min) {
        char *text = json_dumps(v, JSON_ENCODE_ANY | JSON_COMPACT);
        mr_error_set(err, code, "Invalid value type at `.%s`: expected a %s integer, but found `%.100s`", name,
                     min ? "strictly positive" : "positive", text ? text : "?");
        free(text);
        return -1;
    }
    *out = (size_t)json_integer_value(v);
    return 0;
}

static int given(const json_t *body, const char *key)
{
    json_t *v = json_object_get(body, key);
    return v && !json_is_null(v);
}

/* The search kinds as a node tells them apart: without `hybrid`, a keyword search (a vector or
 * media without it is the nodes' to refuse); with a semanticRatio of 0, or nothing to compare
 * (no query, vector or media), a keyword search too; with a ratio of 1, or no query, a semantic
 * one; else hybrid. A malformed hybrid is the nodes' to refuse. */
static void weigh_sides(mr_search_req *req, const json_t *body)
{
    json_t *hybrid = json_object_get(body, "hybrid");
    json_t *ratio = json_object_get(hybrid, "semanticRatio");
    req->semantic_ratio = json_is_number(ratio) ? json_number_value(ratio) : 0.5;
    const char *q = json_string_value(json_object_get(body, "q"));
    int query = 0;
    for (; q && *q && !query; q++)
        query = !isspace((unsigned char)*q);
    int compared = query || given(body, "vector") || given(body, "media");
    req->semantic = json_is_object(hybrid) && (!ratio || json_is_number(ratio)) && req->semantic_ratio > 0 && compared;
    req->weighted = req->semantic && query && req->semantic_ratio < 1;
}

int mr_search_req_init(mr_search_req *req, json_t *body, const char *distinct, mr_error *err)
{
    memset(req, 0, sizeof *req);
    req->overfetch = 1;
    req->limit = 20;
    req->page = 1;
    req->hits_per_page = 20;
    if (read_count(body, "offset", &req->offset, 0, "invalid_search_offset", err) ||
        read_count(body, "limit", &req->limit, 0, "invalid_search_limit", err) ||
        read_count(body, "page", &req->page, 0, "invalid_search_page", err) ||
        read_count(body, "hitsPerPage", &req->hits_per_page, 0, "invalid_search_hits_per_page", err))
        return -1;
    json_t *score = json_object_get(body, "showRankingScore");
    if (score && !json_is_boolean(score)) {
        mr_error_set(err, "invalid_search_show_ranking_score",
                     "Invalid value type at `.showRankingScore`: expected a boolean");
        return -1;
    }
    req->show_ranking_score = json_is_true(score);
    json_t *details = json_object_get(body, "showRankingScoreDetails");
    req->show_details = json_is_true(details);
    /* With `sort`, the order is no longer the score's: a sort rule sits among the ranking rules,
     * and only the per-rule details say where a hit falls. */
    req->by_details = json_array_size(json_object_get(body, "sort")) > 0;
    weigh_sides(req, body);
    req->page_mode = (json_object_get(body, "page") && !json_is_null(json_object_get(body, "page"))) ||
                     (json_object_get(body, "hitsPerPage") && !json_is_null(json_object_get(body, "hitsPerPage")));
    json_t *d = json_object_get(body, "distinct");
    if (json_is_string(d))
        snprintf(req->distinct, sizeof req->distinct, "%s", json_string_value(d));
    else if (distinct && (!d || json_is_null(d)))
        snprintf(req->distinct, sizeof req->distinct, "%s", distinct);
    req->body = json_incref(body);
    return 0;
}

void mr_search_req_clear(mr_search_req *req)
{
    json_decref(req->body);
    json_decref(req->added);
    req->body = NULL;
    req->added = NULL;
}

static size_t window(const mr_search_req *req, long max_total_hits)
{
    size_t want = req->page_mode ? req->page * req->hits_per_page : req->offset + req->limit;
    return want > (size_t)max_total_hits ? (size_t)max_total_hits : want;
}

void mr_retrieve_for_merge(json_t *retrieved, const char *attr, json_t **added)
{
    if (!json_is_array(retrieved))
        return;
    size_t i;
    json_t *a;
    json_array_foreach(retrieved, i, a) {
        const char *name = json_string_value(a);
        if (name && (strcmp(name, "*") == 0 || strcmp(name, attr) == 0))
            return;
    }
    json_array_append_new(retrieved, json_string(attr));
    if (!*added)
        *added = json_array();
    json_array_append_new(*added, json_string(attr));
}

void mr_search_body_window(json_t *shard_body, const mr_search_req *req, size_t hits)
{
    json_object_del(shard_body, "offset");
    json_object_del(shard_body, "limit");
    json_object_del(shard_body, "page");
    json_object_del(shard_body, "hitsPerPage");
    if (req->page_mode) {
        /* page mode makes every shard count its hits exhaustively, so totalHits can add up */
        json_object_set_new(shard_body, "page", json_integer(1));
        json_object_set_new(shard_body, "hitsPerPage", json_integer((json_int_t)hits));
    } else {
        json_object_set_new(shard_body, "offset", json_integer(0));
        json_object_set_new(shard_body, "limit", json_integer((json_int_t)hits));
    }
}

/* How rarely a narrowed search asks a shard again: at most this share of searches, were the
 * page's hits spread over the shards at random. */
#define NARROW_RETRY_SHARE 0.02

size_t mr_search_narrow_window(const mr_search_req *req, long max_total_hits, size_t shards)
{
    size_t full = window(req, max_total_hits) * req->overfetch;
    if (shards < 2 || req->distinct[0] || req->semantic || full < 2)
        return 0;
    /* A shard is asked again when it holds `narrow` or more of the window's hits: each of the
     * `full` hits is on it with chance p, so that count is binomial. The smallest narrow whose
     * tail, over all shards, stays under the share. */
    double p = 1.0 / (double)shards, pmf = pow(1.0 - p, (double)full), below = 0;
    if (pmf <= 0)
        return 0; /* a window too deep to weigh (it underflows): asked whole */
    for (size_t k = 0; k < full; k++) {
        below += pmf; /* P(count <= k) */
        if ((1.0 - below) * (double)shards <= NARROW_RETRY_SHARE)
            return k + 1 < full ? k + 1 : 0;
        pmf *= (double)(full - k) / (double)(k + 1) * p / (1.0 - p);
    }
    return 0;
}

json_t *mr_search_shard_body(mr_search_req *req, long max_total_hits)
{
    json_t *b = json_deep_copy(req->body);
    size_t want = window(req, max_total_hits) * req->overfetch;
    json_decref(req->added);
    req->added = NULL;
    if (req->distinct[0])
        mr_retrieve_for_merge(json_object_get(b, "attributesToRetrieve"), req->distinct, &req->added);
    mr_retrieve_for_merge(json_object_get(b, "attributesToRetrieve"), MR_SEQ_FIELD, &req->added);
    mr_search_body_window(b, req, want);
    json_object_set_new(b, "showRankingScore", json_true());
    if (req->by_details || req->weighted)
        json_object_set_new(b, "showRankingScoreDetails", json_true());
    return b;
}

uint64_t mr_search_affinity(const json_t *shard_body)
{
    json_t *b = json_deep_copy(shard_body);
    json_object_del(b, "offset");
    json_object_del(b, "limit");
    json_object_del(b, "page");
    json_object_del(b, "hitsPerPage");
    char *text = json_dumps(b, JSON_COMPACT | JSON_SORT_KEYS);
    uint64_t h = XXH64(text, strlen(text), 0);
    free(text);
    json_decref(b);
    return h;
}

/* ---- k-way merge: a binary heap of shard cursors ---- */

struct cursor {
    json_t *hits;
    json_t *hit; /* hits[pos] */
    size_t pos, shard;
    double score;    /* weighted in a hybrid search */
    int by_details;
    int semantic;    /* mr_search_hit_semantic */
    const mr_search_req *req;
};

int mr_search_hit_semantic(const mr_search_req *req, json_t *hit)
{
    if (!req->weighted)
        return req->semantic;
    return json_object_get(mr_hit_get(hit, "_rankingScoreDetails"), "vectorSort") != NULL;
}

/* Reads what the comparisons need of the hit (answer.h): from then on json_object_get finds it. */
static void cursor_at(struct cursor *c, size_t pos)
{
    c->pos = pos;
    c->hit = mr_hits_at(c->hits, pos);
    static const char *const compared[] = {"_rankingScore", MR_SEQ_FIELD, "_rankingScoreDetails"};
    int weighted = c->req->weighted;
    mr_hit_read(c->hit, compared, c->by_details || weighted ? 3 : 2);
    c->score = json_number_value(json_object_get(c->hit, "_rankingScore"));
    c->semantic = mr_search_hit_semantic(c->req, c->hit);
    if (weighted)
        c->score *= c->semantic ? c->req->semantic_ratio : 1.0 - c->req->semantic_ratio;
}

static int sort_value_rank(const json_t *v)
{
    return json_is_number(v) ? 0 : json_is_string(v) ? 1 : 2;
}

/* Next code point of a UTF-8 string, folded the way Meilisearch normalizes sort values: case
 * and Latin-1 diacritics ignored (é → e, Ä → a). Other scripts compare by code point. */
static unsigned fold_next(const unsigned char **p)
{
    static const char latin1[] = "aaaaaaaceeeeiiiidnooooo*ouuuuyts" /* U+00C0..U+00DF */
                                 "aaaaaaaceeeeiiiidnooooo/ouuuuyty"; /* U+00E0..U+00FF */
    unsigned c = *(*p)++;
    if (c < 0x80)
        return c >= 'A' && c <= 'Z' ? c + 32 : c;
    int extra = c >= 0xF0 ? 3 : c >= 0xE0 ? 2 : c >= 0xC0 ? 1 : 0;
    c &= 0x3F >> extra;
    for (int i = 0; i < extra && (**p & 0xC0) == 0x80; i++)
        c = (c << 6) | (*(*p)++ & 0x3F);
    if (c >= 0xC0 && c <= 0xFF)
        return (unsigned char)latin1[c - 0xC0];
    return c;
}

static int compare_text(const char *a, const char *b)
{
    const unsigned char *x = (const unsigned char *)a, *y = (const unsigned char *)b;
    while (*x && *y) {
        unsigned cx = fold_next(&x), cy = fold_next(&y);
        if (cx != cy)
            return cx < cy ? -1 : 1;
    }
    return *x ? 1 : *y ? -1 : 0;
}

int mr_compare_sort_values(const json_t *a, const json_t *b, int descending)
{
    int ra = sort_value_rank(a), rb = sort_value_rank(b);
    if (ra != rb)
        return ra < rb ? -1 : 1;
    int c = 0;
    if (ra == 0) {
        double x = json_number_value(a), y = json_number_value(b);
        c = x < y ? -1 : x > y;
    } else if (ra == 1) {
        c = compare_text(json_string_value(a), json_string_value(b));
    }
    return descending ? -c : c;
}

/* Compares two hits rule by rule from their _rankingScoreDetails (rules come in ranking order):
 * scored rules by score, descending; sort rules by value (geo: by distance) in the rule's
 * direction. Negative: a ranks first. */
static int compare_details(const json_t *a, const json_t *b)
{
    json_t *da = json_object_get(a, "_rankingScoreDetails");
    json_t *db = json_object_get(b, "_rankingScoreDetails");
    const char *rule;
    json_t *ea;
    json_object_foreach(da, rule, ea) {
        json_t *eb = json_object_get(db, rule);
        if (!eb)
            continue;
        json_t *sa = json_object_get(ea, "score"), *sb = json_object_get(eb, "score");
        if (sa && sb) {
            double x = json_number_value(sa), y = json_number_value(sb);
            if (x != y)
                return x > y ? -1 : 1;
            continue;
        }
        size_t len = strlen(rule);
        int descending = len > 5 && strcmp(rule + len - 5, ":desc") == 0;
        const char *field = json_object_get(ea, "distance") ? "distance" : "value";
        int c = mr_compare_sort_values(json_object_get(ea, field), json_object_get(eb, field), descending);
        if (c)
            return c;
    }
    return 0;
}

/* a ranks before b */
static int before(const struct cursor *a, const struct cursor *b)
{
    if (a->by_details) {
        int c = compare_details(a->hit, b->hit);
        if (c)
            return c < 0;
    } else if (a->score != b->score) {
        return a->score > b->score;
    }
    int written = mr_seq_compare(a->hit, b->hit);
    if (written)
        return written < 0;
    if (a->shard != b->shard)
        return a->shard < b->shard;
    return a->pos < b->pos;
}

static void sift_down(struct cursor *heap, size_t n, size_t i)
{
    for (;;) {
        size_t best = i, l = 2 * i + 1, r = l + 1;
        if (l < n && before(&heap[l], &heap[best]))
            best = l;
        if (r < n && before(&heap[r], &heap[best]))
            best = r;
        if (best == i)
            return;
        struct cursor t = heap[i];
        heap[i] = heap[best];
        heap[best] = t;
        i = best;
    }
}

/* True if hit's distinct value was seen before (and remembers it). Hits without the attribute
 * are all distinct, as in Meilisearch. */
static int seen_distinct(json_t *seen, json_t *hit, const char *attr)
{
    json_t *v = mr_hit_get(hit, attr);
    if (!v || json_is_null(v))
        return 0;
    char *key = json_dumps(v, JSON_ENCODE_ANY | JSON_COMPACT);
    int dup = json_object_get(seen, key) != NULL;
    if (!dup)
        json_object_set_new(seen, key, json_true());
    free(key);
    return dup;
}

void mr_search_hit_finish(const mr_search_req *req, json_t *hit)
{
    const char *names[8]; /* the added attributes are the distinct one and the write order at most */
    size_t n = 0;
    if (!req->show_ranking_score)
        names[n++] = "_rankingScore";
    if (!req->show_details)
        names[n++] = "_rankingScoreDetails";
    names[n++] = MR_SEQ_FIELD;
    for (size_t k = 0; k < json_array_size(req->added) && n < sizeof names / sizeof *names; k++)
        names[n++] = json_string_value(json_array_get(req->added, k));
    if (mr_hit_drop(hit, names, n, MR_SEQ_FIELD))
        json_object_del(hit, MR_HIT_TEXT); /* cannot happen with a node's answer; never shown */
}

/* Walks the answers' hits in merged order until `upto` have been taken (a hit deduplicated away
 * is not taken), appending the ones from skip on to out (if not NULL), and counting in *semantic
 * (if not NULL) those that came from the semantic side (mr_search_hit_semantic). ran_out (if not NULL) flags each shard
 * whose last hit was taken while the page still wanted more. */
static void walk_hits(const mr_search_req *req, json_t *const *answers, size_t n, size_t skip, size_t upto,
                      json_t *out, size_t *semantic, unsigned char *ran_out)
{
    json_t *seen = req->distinct[0] ? json_object() : NULL;
    struct cursor *heap = calloc(n ? n : 1, sizeof *heap);
    size_t len = 0;
    for (size_t s = 0; s < n; s++) {
        json_t *hits = answers[s] ? json_object_get(answers[s], "hits") : NULL;
        if (json_array_size(hits) == 0)
            continue;
        heap[len] = (struct cursor){.hits = hits, .shard = s, .by_details = req->by_details, .req = req};
        cursor_at(&heap[len++], 0);
    }
    for (size_t i = len; i-- > 0;)
        sift_down(heap, len, i);
    for (size_t taken = 0; len > 0 && taken < upto;) {
        struct cursor *top = &heap[0];
        json_t *hit = top->hit;
        if (!seen || !seen_distinct(seen, hit, req->distinct)) {
            if (taken >= skip && out) {
                json_array_append(out, hit);
                if (semantic)
                    *semantic += (size_t)top->semantic;
            }
            taken++;
        }
        if (top->pos + 1 < json_array_size(top->hits)) {
            cursor_at(top, top->pos + 1);
        } else {
            if (ran_out && taken < upto)
                ran_out[top->shard] = 1;
            heap[0] = heap[--len];
        }
        sift_down(heap, len, 0);
    }
    free(heap);
    json_decref(seen);
}

size_t mr_search_doubt(const mr_search_req *req, json_t *const *answers, size_t n, long max_total_hits, size_t narrow,
                       unsigned char *doubt)
{
    unsigned char *ran_out = calloc(n ? n : 1, 1);
    walk_hits(req, answers, n, 0, window(req, max_total_hits), NULL, NULL, ran_out);
    size_t count = 0;
    for (size_t s = 0; s < n; s++) {
        doubt[s] = ran_out[s] && json_array_size(json_object_get(answers[s], "hits")) >= narrow;
        count += doubt[s];
    }
    free(ran_out);
    return count;
}

static json_t *merge_hits(const mr_search_req *req, json_t *const *answers, size_t n, size_t skip, size_t take,
                          size_t *semantic)
{
    json_t *out = json_array();
    walk_hits(req, answers, n, skip, skip + take, out, semantic, NULL);
    /* only now: the comparisons above needed the scores, details and distinct values */
    size_t i;
    json_t *hit;
    json_array_foreach(out, i, hit) mr_search_hit_finish(req, hit);
    return out;
}

struct facet_hit {
    const char *value; /* borrowed from an answer */
    json_int_t count;
};

static int facet_hit_order(const void *a, const void *b)
{
    const char *x = ((const struct facet_hit *)a)->value, *y = ((const struct facet_hit *)b)->value;
    int c = compare_text(x, y);
    return c ? c : strcmp(x, y); /* equal when folded: the byte-wise first spelling is kept */
}

json_t *mr_merge_facet_hits(json_t *const *answers, size_t n, size_t max_values)
{
    size_t total = 0;
    for (size_t s = 0; s < n; s++)
        total += json_array_size(json_object_get(answers[s], "facetHits"));
    struct facet_hit *all = calloc(total ? total : 1, sizeof *all);
    size_t k = 0;
    for (size_t s = 0; s < n; s++) {
        size_t i;
        json_t *h;
        json_array_foreach(json_object_get(answers[s], "facetHits"), i, h) {
            const char *v = json_string_value(json_object_get(h, "value"));
            if (v)
                all[k++] = (struct facet_hit){v, json_integer_value(json_object_get(h, "count"))};
        }
    }
    qsort(all, k, sizeof *all, facet_hit_order);
    json_t *out = json_array();
    for (size_t i = 0; i < k && json_array_size(out) < max_values;) {
        size_t j = i + 1;
        json_int_t count = all[i].count;
        while (j < k && compare_text(all[i].value, all[j].value) == 0)
            count += all[j++].count;
        json_array_append_new(out, json_pack("{s:s, s:I}", "value", all[i].value, "count", count));
        i = j;
    }
    free(all);
    return out;
}

/* Facet values in Meilisearch's "alpha" order: numbers first, numerically, then strings. */
static int cmp_facet_values(const void *a, const void *b)
{
    const char *x = *(const char *const *)a, *y = *(const char *const *)b;
    char *ex, *ey;
    double dx = strtod(x, &ex), dy = strtod(y, &ey);
    int nx = *x && !*ex, ny = *y && !*ey;
    if (nx != ny)
        return nx ? -1 : 1;
    if (nx && dx != dy)
        return dx < dy ? -1 : 1;
    int c = compare_text(x, y);
    return c ? c : strcmp(x, y);
}

/* Sums {attr: {value: count}} over shards; values in Meilisearch's default order (numbers, then
 * names), cut at max_values. That is exact: a value among the first max_values of the whole
 * index is among the first max_values of every shard that has it. */
json_t *mr_merge_facet_distribution(json_t *const *answers, size_t n, size_t max_values)
{
    json_t *sum = NULL;
    for (size_t s = 0; s < n; s++) {
        json_t *fd = answers[s] ? json_object_get(answers[s], "facetDistribution") : NULL;
        if (!json_is_object(fd))
            continue;
        if (!sum)
            sum = json_object();
        const char *attr;
        json_t *values;
        json_object_foreach(fd, attr, values) {
            json_t *acc = json_object_get(sum, attr);
            if (!acc) {
                acc = json_object();
                json_object_set_new(sum, attr, acc);
            }
            const char *value;
            json_t *count;
            json_object_foreach(values, value, count) {
                json_t *prev = json_object_get(acc, value);
                json_int_t c = json_integer_value(count) + (prev ? json_integer_value(prev) : 0);
                json_object_set_new(acc, value, json_integer(c));
            }
        }
    }
    if (!sum)
        return NULL;
    json_t *sorted = json_object();
    const char *attr;
    json_t *acc;
    json_object_foreach(sum, attr, acc) {
        size_t k = json_object_size(acc), i = 0;
        const char **keys = calloc(k ? k : 1, sizeof *keys);
        const char *value;
        json_t *count;
        json_object_foreach(acc, value, count) keys[i++] = value;
        qsort(keys, k, sizeof *keys, cmp_facet_values);
        json_t *ordered = json_object();
        for (i = 0; i < k && i < max_values; i++)
            json_object_set(ordered, keys[i], json_object_get(acc, keys[i]));
        json_object_set_new(sorted, attr, ordered);
        free(keys);
    }
    json_decref(sum);
    return sorted;
}

json_t *mr_merge_facet_stats(json_t *const *answers, size_t n)
{
    json_t *out = NULL;
    for (size_t s = 0; s < n; s++) {
        json_t *fs = answers[s] ? json_object_get(answers[s], "facetStats") : NULL;
        if (!json_is_object(fs))
            continue;
        if (!out)
            out = json_object();
        const char *attr;
        json_t *st;
        json_object_foreach(fs, attr, st) {
            double mn = json_number_value(json_object_get(st, "min"));
            double mx = json_number_value(json_object_get(st, "max"));
            json_t *acc = json_object_get(out, attr);
            if (acc) {
                mn = fmin(mn, json_number_value(json_object_get(acc, "min")));
                mx = fmax(mx, json_number_value(json_object_get(acc, "max")));
            }
            json_object_set_new(out, attr, json_pack("{s:f, s:f}", "min", mn, "max", mx));
        }
    }
    return out;
}

static json_int_t sum_field(json_t *const *answers, size_t n, const char *name)
{
    json_int_t total = 0;
    for (size_t s = 0; s < n; s++)
        if (answers[s])
            total += json_integer_value(json_object_get(answers[s], name));
    return total;
}

/* With distinct, shard counts don't add up: a value can stand in several shards. When every
 * shard returned all its hits (none filled its window), the distinct values seen are the exact
 * count; otherwise the sum is the estimate. */
static json_int_t distinct_total(const mr_search_req *req, json_t *const *answers, size_t n, size_t shard_window,
                                 json_int_t sum)
{
    for (size_t s = 0; s < n; s++)
        if (answers[s] && json_array_size(json_object_get(answers[s], "hits")) >= shard_window)
            return sum;
    json_t *seen = json_object();
    json_int_t count = 0;
    for (size_t s = 0; s < n; s++) {
        json_t *hits = answers[s] ? json_object_get(answers[s], "hits") : NULL;
        for (size_t i = 0; i < json_array_size(hits); i++)
            count += !seen_distinct(seen, mr_hits_at(hits, i), req->distinct);
    }
    json_decref(seen);
    return count;
}

/* With distinct, a page came out short if it has fewer hits than asked while some shard filled
 * its whole window (so it may hold more). */
static int came_out_short(const mr_search_req *req, const json_t *hits, size_t wanted, json_t *const *answers, size_t n,
                          size_t shard_window)
{
    if (!req->distinct[0] || json_array_size(hits) >= wanted)
        return 0;
    for (size_t s = 0; s < n; s++)
        if (answers[s] && json_array_size(json_object_get(answers[s], "hits")) >= shard_window)
            return 1;
    return 0;
}

static int any_has(json_t *const *answers, size_t n, const char *field)
{
    for (size_t s = 0; s < n; s++)
        if (json_object_get(answers[s], field))
            return 1;
    return 0;
}

/* The query's vector (given, or embedded from q), which a semantic search shows with
 * retrieveVectors: every shard embeds the same query the same way. */
static void set_query_vector(json_t *out, json_t *const *answers, size_t n)
{
    for (size_t s = 0; s < n; s++) {
        json_t *v = json_object_get(answers[s], "queryVector");
        if (v) {
            json_object_set(out, "queryVector", v);
            return;
        }
    }
}

json_int_t mr_engine_ms(json_t *const *answers, size_t n)
{
    json_int_t slowest = 0;
    for (size_t s = 0; s < n; s++) {
        json_int_t ms = answers[s] ? json_integer_value(json_object_get(answers[s], "processingTimeMs")) : 0;
        if (ms > slowest)
            slowest = ms;
    }
    return slowest;
}

json_t *mr_search_merge(const mr_search_req *req, json_t *const *answers, size_t n, const mr_merge_limits *limits,
                        int *short_answer)
{
    json_int_t elapsed_ms = mr_engine_ms(answers, n);
    if (short_answer)
        *short_answer = 0;
    long max_total_hits = limits->max_total_hits;
    json_t *q = json_object_get(req->body, "q");
    json_t *out = json_object();
    size_t cap = (size_t)max_total_hits, semantic = 0;
    if (req->page_mode) {
        /* page 0 is a page of nothing, as on one node */
        size_t skip = req->page ? (req->page - 1) * req->hits_per_page : window(req, max_total_hits);
        size_t want = window(req, max_total_hits);
        json_t *hits = merge_hits(req, answers, n, skip, want > skip ? want - skip : 0, &semantic);
        if (short_answer)
            *short_answer = came_out_short(req, hits, want > skip ? want - skip : 0, answers, n, want * req->overfetch);
        json_object_set_new(out, "hits", hits);
        json_object_set_new(out, "query", json_string(json_is_string(q) ? json_string_value(q) : ""));
        set_query_vector(out, answers, n);
        json_object_set_new(out, "processingTimeMs", json_integer(elapsed_ms));
        json_int_t total = sum_field(answers, n, "totalHits");
        if (req->distinct[0])
            total = distinct_total(req, answers, n, want * req->overfetch, total);
        if ((size_t)total > cap)
            total = (json_int_t)cap;
        json_object_set_new(out, "hitsPerPage", json_integer((json_int_t)req->hits_per_page));
        json_object_set_new(out, "page", json_integer((json_int_t)req->page));
        json_int_t pages = req->hits_per_page ? (total + (json_int_t)req->hits_per_page - 1) / (json_int_t)req->hits_per_page : 0;
        json_object_set_new(out, "totalPages", json_integer(pages));
        json_object_set_new(out, "totalHits", json_integer(total));
    } else {
        size_t want = window(req, max_total_hits);
        size_t take = want > req->offset ? want - req->offset : 0;
        json_t *hits = merge_hits(req, answers, n, req->offset, take, &semantic);
        if (short_answer)
            *short_answer = came_out_short(req, hits, take, answers, n, want * req->overfetch);
        json_object_set_new(out, "hits", hits);
        json_object_set_new(out, "query", json_string(json_is_string(q) ? json_string_value(q) : ""));
        set_query_vector(out, answers, n);
        json_object_set_new(out, "processingTimeMs", json_integer(elapsed_ms));
        json_object_set_new(out, "limit", json_integer((json_int_t)req->limit));
        /* a node reports an offset past maxTotalHits as maxTotalHits */
        json_object_set_new(out, "offset", json_integer((json_int_t)(req->offset > cap ? cap : req->offset)));
        json_int_t total = sum_field(answers, n, "estimatedTotalHits");
        if (req->distinct[0])
            total = distinct_total(req, answers, n, want * req->overfetch, total);
        json_object_set_new(out, "estimatedTotalHits", json_integer((size_t)total > cap ? (json_int_t)cap : total));
    }
    json_t *fd = mr_merge_facet_distribution(answers, n, (size_t)limits->max_values_per_facet);
    if (fd)
        json_object_set_new(out, "facetDistribution", fd);
    json_t *fs = mr_merge_facet_stats(answers, n);
    if (fs)
        json_object_set_new(out, "facetStats", fs);
    if (any_has(answers, n, "semanticHitCount"))
        json_object_set_new(out, "semanticHitCount", json_integer((json_int_t)semantic));
    return out;
}
