/* answer.h: a shard's search answer, read lazily.
 *
 * A search over S shards gets S × (offset + limit) hits back and keeps offset + limit of them;
 * building a whole JSON tree for every hit was most of the gateway's CPU per query. So each hit
 * is kept as a stub: its own text under MR_HIT_TEXT, checked for shape but not parsed. A field is
 * parsed when the merge asks for it (mr_hit_get), and then kept in the stub; only the hits that
 * reach the merge's heap are ever asked, S + offset + limit of them. The hits the merge keeps
 * lose what only the merge needed (mr_hit_drop) and are written to the client from their text
 * (mr_json_dumps): no hit is ever parsed whole. Everything else in the answer (counts, facets)
 * is parsed as usual. */
#ifndef MIROIR_ANSWER_H
#define MIROIR_ANSWER_H

#include <jansson.h>
#include <stddef.h>

#define MR_HIT_TEXT "_miroir_text"

/* Reads a Meilisearch search answer (a JSON object with a "hits" array of objects), each hit a
 * stub to be (mr_hits_at). Returns a new reference, or NULL if text is not such an answer, or not JSON: then parse
 * it whole, which gives jansson's own error. */
json_t *mr_answer_load(const char *text, size_t len);

/* The same for a /multi-search answer: {"results": [answer, …]}, each answer read as above. */
json_t *mr_answers_load(const char *text, size_t len);

/* Hit i of a loaded answer's "hits" (borrowed; NULL past the end). A hit is loaded as its bare
 * text, and made a stub the first time it is asked for here: most hits of a search over many
 * shards are never asked for, and making each one a stub cost as much as reading it. Every
 * reader of a loaded answer's hits goes through this; a bare text is never written out. */
json_t *mr_hits_at(json_t *hits, size_t i);

/* A top-level field of a hit, stub or whole (borrowed; NULL if the hit has none): a stub's is
 * parsed from its text the first time, then kept in the stub, so that json_object_get finds it
 * from then on. */
json_t *mr_hit_get(json_t *hit, const char *name);

/* Reads the n named fields of a stub in one walk of its text, each kept in the stub if the hit
 * has it (a whole hit has them already). */
void mr_hit_read(json_t *hit, const char *const *names, size_t n);

/* Makes a stub whole, in place: the hit's own fields in its order, then whatever was added to
 * the stub since it was read. A whole hit is left as it is. Returns 0, or -1 if the hit's text
 * does not parse (the stub is left as it was). */
int mr_hit_expand(json_t *hit);

/* Takes the n named fields out of a hit, stub or whole, and the field formatted_name (if not
 * NULL) out of its "_formatted": a stub's text is written again without them, unparsed.
 * Returns 0, or -1 if a stub's text does not walk (then only its own fields went). */
int mr_hit_drop(json_t *hit, const char *const *names, size_t n, const char *formatted_name);

/* json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY), except that a stub (an object in a "hits"
 * array) is written as expanding it would make it, from its text, without parsing it. The caller frees the text; NULL on a value
 * jansson would not write either. */
char *mr_json_dumps(const json_t *v);

#endif
