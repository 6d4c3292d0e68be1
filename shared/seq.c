/* seq.c: sequence numbers of writes, and their separator-only spelling in documents. */
#include "seq.h"

#include <string.h>

/* Ascending ASCII, all separators to Meilisearch's tokenizer (charabia's defaults), and none of
 * the characters ("#", "@", "+", "-", "_", ".", "&", "'") an index is likely to declare
 * non-separators in nonSeparatorTokens, nor any JSON must escape. */
static const char alphabet[16] = {' ', '!', '%', '(', ')', '*', ',', '/', ':', ';', '?', '[', ']', '`', '{', '}'};

uint64_t mr_seq_reserve(_Atomic uint64_t *last, int64_t now_ms, size_t n)
{
    uint64_t floor = (uint64_t)now_ms << MR_SEQ_COUNTER_BITS;
    uint64_t seen = atomic_load(last), first;
    do {
        first = seen + 1 > floor ? seen + 1 : floor;
    } while (!atomic_compare_exchange_weak(last, &seen, first + (n ? n - 1 : 0)));
    return first;
}

uint64_t mr_seq_of_record(int64_t timestamp_ms, int64_t offset)
{
    uint64_t mask = ((uint64_t)1 << MR_SEQ_COUNTER_BITS) - 1;
    return ((uint64_t)(timestamp_ms > 0 ? timestamp_ms : 0) << MR_SEQ_COUNTER_BITS) | ((uint64_t)offset & mask);
}

void mr_seq_encode(uint64_t seq, char out[MR_SEQ_LEN + 1])
{
    for (int i = MR_SEQ_LEN - 1; i >= 0; i--, seq >>= 4)
        out[i] = alphabet[seq & 15];
    out[MR_SEQ_LEN] = '\0';
}

int mr_seq_decode(const char *text, uint64_t *seq)
{
    if (!text || strlen(text) != MR_SEQ_LEN)
        return -1;
    uint64_t v = 0;
    for (int i = 0; i < MR_SEQ_LEN; i++) {
        const char *at = memchr(alphabet, text[i], sizeof alphabet);
        if (!at || !text[i])
            return -1;
        v = v << 4 | (uint64_t)(at - alphabet);
    }
    *seq = v;
    return 0;
}

int mr_seq_compare(const json_t *a, const json_t *b)
{
    const char *x = json_string_value(json_object_get(a, MR_SEQ_FIELD));
    const char *y = json_string_value(json_object_get(b, MR_SEQ_FIELD));
    return x && y ? strcmp(x, y) : 0;
}

void mr_seq_strip(json_t *doc)
{
    json_object_del(doc, MR_SEQ_FIELD);
    json_object_del(json_object_get(doc, "_formatted"), MR_SEQ_FIELD);
}

/* The position of name in the string array list, or -1. */
static int position_of(const json_t *list, const char *name)
{
    size_t i;
    json_t *v;
    json_array_foreach(list, i, v) {
        const char *text = json_string_value(v);
        if (text && strcmp(text, name) == 0)
            return (int)i;
    }
    return -1;
}

void mr_seq_settings_for_node(json_t *settings)
{
    json_t *shown = json_object_get(settings, "displayedAttributes");
    if (json_is_array(shown) && position_of(shown, "*") < 0 && position_of(shown, MR_SEQ_FIELD) < 0)
        json_array_append_new(shown, json_string(MR_SEQ_FIELD));
}

void mr_seq_settings_for_client(json_t *settings)
{
    json_t *shown = json_object_get(settings, "displayedAttributes");
    int at = position_of(shown, MR_SEQ_FIELD);
    if (at >= 0)
        json_array_remove(shown, (size_t)at);
}
