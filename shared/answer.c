/* answer.c: a search answer read lazily (answer.h).
 *
 * The scanner below only finds where values begin and end; every value that is kept is parsed by
 * jansson from its own span, so nothing here decides what JSON means. A text the scanner cannot
 * walk is refused (NULL), and the caller parses it whole, which gives jansson's own error. */
#include "answer.h"

#include <errno.h>
#include <math.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

static const char *skip_space(const char *p, const char *end)
{
    while (p < end && (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r'))
        p++;
    return p;
}

/* Past the string whose opening quote is at p; NULL if it does not end. A quote ends it unless
 * an odd run of backslashes stands before it. */
static const char *skip_string(const char *p, const char *end)
{
    const char *from = p + 1;
    for (;;) {
        const char *quote = memchr(from, '"', (size_t)(end - from));
        if (!quote)
            return NULL;
        size_t slashes = 0;
        while (quote - slashes > from && quote[-1 - (ptrdiff_t)slashes] == '\\')
            slashes++;
        if (slashes % 2 == 0)
            return quote + 1;
        from = quote + 1;
    }
}

static int ends_literal(char c)
{
    return c == ',' || c == '}' || c == ']' || c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

/* Past the value that begins at p; NULL if it does not end. */
static const char *skip_value(const char *p, const char *end)
{
    if (p >= end)
        return NULL;
    if (*p == '"')
        return skip_string(p, end);
    if (*p == '{' || *p == '[') {
        int depth = 0;
        while (p < end) {
            if (*p == '"') {
                p = skip_string(p, end);
                if (!p)
                    return NULL;
                continue;
            }
            if (*p == '{' || *p == '[')
                depth++;
            else if ((*p == '}' || *p == ']') && --depth == 0)
                return p + 1;
            p++;
        }
        return NULL;
    }
    const char *start = p; /* a number, true, false or null */
    while (p < end && !ends_literal(*p))
        p++;
    return p > start ? p : NULL;
}

typedef int (*member_fn)(const char *key, size_t key_len, const char *value, const char *value_end, void *ctx);
typedef int (*element_fn)(const char *value, const char *value_end, void *ctx);

/* Calls fn on each member of the object at p (key without its quotes, as written). Returns past
 * the object, or NULL if it is not one or fn failed. */
static const char *each_member(const char *p, const char *end, member_fn fn, void *ctx)
{
    p = skip_space(p, end);
    if (p >= end || *p != '{')
        return NULL;
    p = skip_space(p + 1, end);
    if (p < end && *p == '}')
        return p + 1;
    for (;;) {
        if (p >= end || *p != '"')
            return NULL;
        const char *key = p + 1, *key_end = skip_string(p, end);
        if (!key_end)
            return NULL;
        p = skip_space(key_end, end);
        if (p >= end || *p != ':')
            return NULL;
        const char *value = skip_space(p + 1, end), *value_end = skip_value(value, end);
        if (!value_end || fn(key, (size_t)(key_end - 1 - key), value, value_end, ctx))
            return NULL;
        p = skip_space(value_end, end);
        if (p < end && *p == ',')
            p = skip_space(p + 1, end);
        else if (p < end && *p == '}')
            return p + 1;
        else
            return NULL;
    }
}

static const char *each_element(const char *p, const char *end, element_fn fn, void *ctx)
{
    p = skip_space(p, end);
    if (p >= end || *p != '[')
        return NULL;
    p = skip_space(p + 1, end);
    if (p < end && *p == ']')
        return p + 1;
    for (;;) {
        const char *value_end = skip_value(p, end);
        if (!value_end || fn(p, value_end, ctx))
            return NULL;
        p = skip_space(value_end, end);
        if (p < end && *p == ',')
            p = skip_space(p + 1, end);
        else if (p < end && *p == ']')
            return p + 1;
        else
            return NULL;
    }
}

/* A kept value: the usual ones (a number, a string without escapes) are made directly, as
 * jansson would make them; the rest is parsed by jansson. */
static json_t *parse_span(const char *value, const char *value_end)
{
    size_t n = (size_t)(value_end - value);
    if (n >= 2 && *value == '"' && !memchr(value + 1, '\\', n - 2))
        return json_stringn_nocheck(value + 1, n - 2); /* a node writes valid UTF-8 */
    if (n < 32 && (*value == '-' || (*value >= '0' && *value <= '9'))) {
        char number[32], *stop;
        memcpy(number, value, n);
        number[n] = '\0';
        errno = 0;
        if (!strpbrk(number, ".eE")) {
            long long i = strtoll(number, &stop, 10);
            if (!*stop && !errno)
                return json_integer(i);
        } else {
            double d = strtod(number, &stop);
            if (!*stop && !errno && isfinite(d))
                return json_real(d);
        }
    }
    json_error_t e;
    return json_loadb(value, n, JSON_DECODE_ANY, &e);
}

static int is_name(const char *key, size_t key_len, const char *name)
{
    return strlen(name) == key_len && memcmp(key, name, key_len) == 0;
}

struct reading {
    const char *const *keep;
    size_t nkeep;
    json_t *into; /* the answer, the hits array, or the stub being filled */
};

static int stub_member(const char *key, size_t key_len, const char *value, const char *value_end, void *ctx)
{
    struct reading *r = ctx;
    for (size_t i = 0; i < r->nkeep; i++) {
        if (!is_name(key, key_len, r->keep[i]))
            continue;
        json_t *v = parse_span(value, value_end);
        return v ? json_object_set_new(r->into, r->keep[i], v) : -1;
    }
    return 0;
}

static int hit_element(const char *value, const char *value_end, void *ctx)
{
    struct reading *r = ctx;
    struct reading stub = {r->keep, r->nkeep, json_object()};
    if (each_member(value, value_end, stub_member, &stub) != value_end) {
        json_decref(stub.into);
        return -1;
    }
    json_object_set_new(stub.into, MR_HIT_TEXT, json_stringn_nocheck(value, (size_t)(value_end - value)));
    return json_array_append_new(r->into, stub.into);
}

static int answer_member(const char *key, size_t key_len, const char *value, const char *value_end, void *ctx)
{
    struct reading *r = ctx;
    if (memchr(key, '\\', key_len))
        return -1; /* an escaped name: not a Meilisearch answer's */
    json_t *v;
    if (is_name(key, key_len, "hits")) {
        struct reading hits = {r->keep, r->nkeep, json_array()};
        if (each_element(value, value_end, hit_element, &hits) != value_end) {
            json_decref(hits.into);
            return -1;
        }
        v = hits.into;
    } else if (!(v = parse_span(value, value_end))) {
        return -1;
    }
    return json_object_setn_new(r->into, key, key_len, v);
}

static int plain_names(const char *const *keep, size_t nkeep)
{
    for (size_t i = 0; i < nkeep; i++)
        for (const unsigned char *c = (const unsigned char *)keep[i]; *c; c++)
            if (*c == '"' || *c == '\\' || *c < 0x20)
                return 0;
    return 1;
}

/* The answer whose object begins at text; *past is where it ends. */
static json_t *load_answer(const char *text, const char *end, const char *const *keep, size_t nkeep,
                           const char **past)
{
    struct reading r = {keep, nkeep, json_object()};
    *past = each_member(text, end, answer_member, &r);
    if (!*past || !json_is_array(json_object_get(r.into, "hits"))) {
        json_decref(r.into);
        return NULL;
    }
    return r.into;
}

json_t *mr_answer_load(const char *text, size_t len, const char *const *keep, size_t nkeep)
{
    if (!text || !plain_names(keep, nkeep))
        return NULL;
    const char *end = text + len, *past;
    json_t *answer = load_answer(text, end, keep, nkeep, &past);
    if (answer && skip_space(past, end) != end) {
        json_decref(answer);
        return NULL;
    }
    return answer;
}

static int result_element(const char *value, const char *value_end, void *ctx)
{
    struct reading *r = ctx;
    const char *past;
    json_t *answer = load_answer(value, value_end, r->keep, r->nkeep, &past);
    if (answer && past != value_end) {
        json_decref(answer);
        return -1;
    }
    return answer ? json_array_append_new(r->into, answer) : -1;
}

static int results_member(const char *key, size_t key_len, const char *value, const char *value_end, void *ctx)
{
    struct reading *r = ctx;
    if (!is_name(key, key_len, "results"))
        return -1;
    struct reading results = {r->keep, r->nkeep, json_array()};
    if (each_element(value, value_end, result_element, &results) != value_end) {
        json_decref(results.into);
        return -1;
    }
    return json_object_set_new(r->into, "results", results.into);
}

json_t *mr_answers_load(const char *text, size_t len, const char *const *keep, size_t nkeep)
{
    if (!text || !plain_names(keep, nkeep))
        return NULL;
    const char *end = text + len;
    struct reading r = {keep, nkeep, json_object()};
    const char *past = each_member(text, end, results_member, &r);
    if (!past || skip_space(past, end) != end || !json_is_array(json_object_get(r.into, "results"))) {
        json_decref(r.into);
        return NULL;
    }
    return r.into;
}

int mr_hit_expand(json_t *hit)
{
    json_t *text = json_object_get(hit, MR_HIT_TEXT);
    if (!json_is_string(text))
        return 0;
    json_error_t e;
    json_t *whole = json_loadb(json_string_value(text), json_string_length(text), 0, &e);
    if (!json_is_object(whole)) {
        json_decref(whole);
        return -1;
    }
    /* the stub's own fields win: the ones read are the same, the ones added since are new */
    const char *key;
    json_t *value;
    json_object_foreach(hit, key, value)
        if (strcmp(key, MR_HIT_TEXT) != 0)
            json_object_set(whole, key, value);
    json_object_clear(hit);
    json_object_update(hit, whole);
    json_decref(whole);
    return 0;
}
