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

#include "alloc.h"
#include "buf.h"

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

/* A walker's callback is handed where a value begins and where the text ends, and returns past
 * the value (or NULL to stop the walk): a value whose inside it walks anyway (a hit, an answer)
 * is then scanned once, not once to find its end and once more inside. */
typedef const char *(*member_fn)(const char *key, size_t key_len, const char *value, const char *end, void *ctx);
typedef const char *(*element_fn)(const char *value, const char *end, void *ctx);

/* Calls fn on each member of the object at p (key without its quotes, as written). Returns past
 * the object, or NULL if it is not one or fn stopped. */
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
        const char *value = skip_space(p + 1, end), *value_end = fn(key, (size_t)(key_end - 1 - key), value, end, ctx);
        if (!value_end)
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
        const char *value_end = fn(p, end, ctx);
        if (!value_end)
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

/* A hit is kept as its bare text, made a stub when it is first asked for (mr_hits_at). Its
 * strings and brackets were matched on the way here; the rest of its shape is met when it is
 * read (a second walk of every hit would cost as much as the first). */
static const char *hit_element(const char *value, const char *end, void *ctx)
{
    json_t *hits = ctx;
    const char *value_end = *value == '{' ? skip_value(value, end) : NULL;
    if (!value_end)
        return NULL;
    return json_array_append_new(hits, json_stringn_nocheck(value, (size_t)(value_end - value))) ? NULL : value_end;
}

json_t *mr_hits_at(json_t *hits, size_t i)
{
    json_t *hit = json_array_get(hits, i);
    if (!json_is_string(hit))
        return hit;
    json_t *stub = json_object();
    json_object_set(stub, MR_HIT_TEXT, hit); /* the same text, not a copy */
    json_array_set_new(hits, i, stub);
    return stub;
}

static const char *answer_member(const char *key, size_t key_len, const char *value, const char *end, void *ctx)
{
    json_t *answer = ctx;
    if (memchr(key, '\\', key_len))
        return NULL; /* an escaped name: not a Meilisearch answer's */
    json_t *v;
    const char *value_end;
    if (key_len == 4 && memcmp(key, "hits", 4) == 0) {
        v = json_array();
        value_end = each_element(value, end, hit_element, v);
    } else {
        value_end = skip_value(value, end);
        v = value_end ? parse_span(value, value_end) : NULL;
    }
    if (!value_end || !v || json_object_setn_new(answer, key, key_len, v)) {
        json_decref(v);
        return NULL;
    }
    return value_end;
}

/* The answer whose object begins at text; *past is where it ends. */
static json_t *load_answer(const char *text, const char *end, const char **past)
{
    json_t *answer = json_object();
    *past = each_member(text, end, answer_member, answer);
    if (!*past || !json_is_array(json_object_get(answer, "hits"))) {
        json_decref(answer);
        return NULL;
    }
    return answer;
}

json_t *mr_answer_load(const char *text, size_t len)
{
    if (!text)
        return NULL;
    const char *end = text + len, *past;
    json_t *answer = load_answer(text, end, &past);
    if (answer && skip_space(past, end) != end) {
        json_decref(answer);
        return NULL;
    }
    return answer;
}

static const char *result_element(const char *value, const char *end, void *ctx)
{
    const char *past;
    json_t *answer = load_answer(value, end, &past);
    return answer && json_array_append_new(ctx, answer) == 0 ? past : NULL;
}

static const char *results_member(const char *key, size_t key_len, const char *value, const char *end, void *ctx)
{
    if (key_len != 7 || memcmp(key, "results", 7) != 0)
        return NULL;
    json_t *results = json_array();
    const char *value_end = each_element(value, end, result_element, results);
    if (!value_end || json_object_set_new(ctx, "results", results))
        return NULL;
    return value_end;
}

json_t *mr_answers_load(const char *text, size_t len)
{
    if (!text)
        return NULL;
    const char *end = text + len;
    json_t *answers = json_object();
    const char *past = each_member(text, end, results_member, answers);
    if (!past || skip_space(past, end) != end || !json_is_array(json_object_get(answers, "results"))) {
        json_decref(answers);
        return NULL;
    }
    return answers;
}

/* Whether a member's key, as written (without its quotes), is name. A key written with escapes
 * is read by jansson before it is compared. */
static int key_is(const char *key, size_t key_len, const char *name, size_t name_len)
{
    if (!memchr(key, '\\', key_len))
        return key_len == name_len && memcmp(key, name, key_len) == 0;
    json_t *decoded = json_loadb(key - 1, key_len + 2, JSON_DECODE_ANY, NULL);
    int same = json_is_string(decoded) && json_string_length(decoded) == name_len &&
               memcmp(json_string_value(decoded), name, name_len) == 0;
    json_decref(decoded);
    return same;
}

struct reading {
    json_t *hit;
    const char *const *names;
    size_t n, left; /* names still to find */
};

/* Keeps each named member met in the stub; stops the walk once all are found. */
static const char *read_member(const char *key, size_t key_len, const char *value, const char *end, void *ctx)
{
    struct reading *r = ctx;
    const char *value_end = skip_value(value, end);
    for (size_t i = 0; i < r->n && value_end; i++) {
        if (!key_is(key, key_len, r->names[i], strlen(r->names[i])) || json_object_get(r->hit, r->names[i]))
            continue;
        json_t *v = parse_span(value, value_end);
        if (v)
            json_object_set_new(r->hit, r->names[i], v); /* the same as in the text: expanding keeps it */
        return --r->left == 0 ? NULL : value_end;
    }
    return value_end;
}

void mr_hit_read(json_t *hit, const char *const *names, size_t n)
{
    json_t *text = json_object_get(hit, MR_HIT_TEXT);
    if (!json_is_string(text))
        return;
    struct reading r = {hit, names, n, 0};
    for (size_t i = 0; i < n; i++)
        r.left += !json_object_get(hit, names[i]);
    if (!r.left)
        return;
    const char *t = json_string_value(text);
    each_member(t, t + json_string_length(text), read_member, &r);
}

json_t *mr_hit_get(json_t *hit, const char *name)
{
    json_t *v = json_object_get(hit, name);
    if (!v) {
        mr_hit_read(hit, &name, 1);
        v = json_object_get(hit, name);
    }
    return v;
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

/* ---------------------------------------------------------------- writing hits back */

static void put(mr_buf *out, const char *p, size_t n)
{
    mr_buf_add(out, p, n, 4096);
}

/* The comma before a member or element, unless it is the first. */
static void put_separator(mr_buf *out, int *first)
{
    if (!*first)
        put(out, ",", 1);
    *first = 0;
}

/* A member as written: "key":value, after a comma unless it is the first. */
static void put_member(mr_buf *out, int *first, const char *key, size_t key_len, const char *value,
                       const char *value_end)
{
    put_separator(out, first);
    put(out, key - 1, key_len + 2);
    put(out, ":", 1);
    put(out, value, (size_t)(value_end - value));
}

struct dropping {
    mr_buf *out;
    int first;
    const char *const *names; /* left out */
    size_t n;
    const char *formatted_name; /* left out of "_formatted" */
};

static int is_dropped(const struct dropping *d, const char *key, size_t key_len)
{
    for (size_t i = 0; i < d->n; i++)
        if (key_is(key, key_len, d->names[i], strlen(d->names[i])))
            return 1;
    return 0;
}

static const char *drop_member(const char *key, size_t key_len, const char *value, const char *end, void *ctx);

static int write_without(mr_buf *out, const char *text, const char *end, const char *const *names, size_t n,
                         const char *formatted_name)
{
    struct dropping d = {out, 1, names, n, formatted_name};
    put(out, "{", 1);
    if (each_member(text, end, drop_member, &d) != end)
        return -1;
    put(out, "}", 1);
    return 0;
}

static const char *drop_member(const char *key, size_t key_len, const char *value, const char *end, void *ctx)
{
    struct dropping *d = ctx;
    const char *value_end = skip_value(value, end);
    if (!value_end || is_dropped(d, key, key_len))
        return value_end;
    if (d->formatted_name && *value == '{' && key_is(key, key_len, "_formatted", 10)) {
        put_separator(d->out, &d->first);
        put(d->out, key - 1, key_len + 2);
        put(d->out, ":", 1);
        return write_without(d->out, value, value_end, &d->formatted_name, 1, NULL) ? NULL : value_end;
    }
    put_member(d->out, &d->first, key, key_len, value, value_end);
    return value_end;
}

int mr_hit_drop(json_t *hit, const char *const *names, size_t n, const char *formatted_name)
{
    for (size_t i = 0; i < n; i++)
        json_object_del(hit, names[i]);
    json_t *text = json_object_get(hit, MR_HIT_TEXT);
    if (!json_is_string(text)) {
        json_object_del(json_object_get(hit, "_formatted"), formatted_name);
        return 0;
    }
    const char *t = json_string_value(text);
    mr_buf out = {0};
    mr_buf_add(&out, "", 0, json_string_length(text) + 1); /* never longer than the text: one allocation */
    int rc = write_without(&out, t, t + json_string_length(text), names, n, formatted_name);
    if (rc == 0)
        json_object_set_new(hit, MR_HIT_TEXT, json_stringn_nocheck(out.data, out.len));
    mr_buf_free(&out);
    return rc;
}

/* ---- the writer: jansson's compact form, with stubs written from their text */

/* A stub is only looked for among the elements of a "hits" array (hit_stubs): anywhere else, an
 * object holding MR_HIT_TEXT is a document's own, written as it is. */
static int write_value(mr_buf *out, const json_t *v, int hit_stubs);

static void write_key(mr_buf *out, const char *key, size_t len)
{
    int plain = 1;
    for (size_t i = 0; i < len && plain; i++)
        plain = key[i] != '"' && key[i] != '\\' && (unsigned char)key[i] >= 0x20;
    if (plain) {
        put(out, "\"", 1);
        put(out, key, len);
        put(out, "\":", 2);
        return;
    }
    json_t *k = json_stringn_nocheck(key, len);
    write_value(out, k, 0);
    json_decref(k);
    put(out, ":", 1);
}

struct stub_writing {
    mr_buf *out;
    int first;
    const json_t *stub;
    const json_t *written[32]; /* the stub's fields written in the text's place */
    size_t written_count;
};

static const char *write_stub_member(const char *key, size_t key_len, const char *value, const char *end, void *ctx)
{
    struct stub_writing *w = ctx;
    const char *value_end = skip_value(value, end);
    json_t *own = !value_end || memchr(key, '\\', key_len) ? NULL : json_object_getn(w->stub, key, key_len);
    if (!own) {
        if (value_end)
            put_member(w->out, &w->first, key, key_len, value, value_end);
        return value_end;
    }
    if (w->written_count == sizeof w->written / sizeof *w->written)
        return NULL;
    w->written[w->written_count++] = own;
    put_separator(w->out, &w->first);
    write_key(w->out, key, key_len);
    return write_value(w->out, own, 0) ? NULL : value_end;
}

/* A stub as expanding it would make it: the text's members, the stub's own value in place of
 * the text's where it has one, then the stub's other fields. */
static int write_stub(mr_buf *out, const json_t *stub, const json_t *text)
{
    const char *t = json_string_value(text), *end = t + json_string_length(text);
    struct stub_writing w = {.out = out, .first = 1, .stub = stub};
    put(out, "{", 1);
    if (each_member(t, end, write_stub_member, &w) != end)
        return -1;
    const char *key;
    size_t key_len;
    json_t *value;
    json_object_keylen_foreach((json_t *)stub, key, key_len, value) {
        int done = value == text;
        for (size_t i = 0; i < w.written_count && !done; i++)
            done = w.written[i] == value;
        if (done)
            continue;
        put_separator(out, &w.first);
        write_key(out, key, key_len);
        if (write_value(out, value, 0))
            return -1;
    }
    put(out, "}", 1);
    return 0;
}

static int write_value(mr_buf *out, const json_t *v, int hit_stubs)
{
    if (json_is_object(v)) {
        json_t *text = hit_stubs ? json_object_get(v, MR_HIT_TEXT) : NULL;
        if (json_is_string(text)) {
            size_t before = out->len;
            if (write_stub(out, v, text) == 0)
                return 0;
            out->len = before; /* a text that does not walk: as it is, as json_dumps would */
        }
        put(out, "{", 1);
        const char *key;
        size_t key_len;
        json_t *member;
        int first = 1;
        json_object_keylen_foreach((json_t *)v, key, key_len, member) {
            put_separator(out, &first);
            write_key(out, key, key_len);
            if (write_value(out, member, json_is_array(member) && key_len == 4 && memcmp(key, "hits", 4) == 0))
                return -1;
        }
        put(out, "}", 1);
        return 0;
    }
    if (json_is_array(v)) {
        put(out, "[", 1);
        for (size_t i = 0; i < json_array_size(v); i++) {
            if (i)
                put(out, ",", 1);
            if (write_value(out, json_array_get(v, i), hit_stubs))
                return -1;
        }
        put(out, "]", 1);
        return 0;
    }
    char small[256];
    size_t n = json_dumpb(v, small, sizeof small, JSON_COMPACT | JSON_ENCODE_ANY);
    if (!n)
        return -1;
    if (n <= sizeof small) {
        put(out, small, n);
        return 0;
    }
    char *big = mr_malloc(n);
    json_dumpb(v, big, n, JSON_COMPACT | JSON_ENCODE_ANY);
    put(out, big, n);
    free(big);
    return 0;
}

char *mr_json_dumps(const json_t *v)
{
    mr_buf out = {0};
    if (!v || write_value(&out, v, 0)) {
        mr_buf_free(&out);
        return NULL;
    }
    put(&out, "", 0); /* NUL-terminated, even if nothing was written */
    return out.data;
}
