/* answer.h: a shard's search answer, read lazily.
 *
 * A search over S shards gets S × (offset + limit) hits back and keeps offset + limit of them;
 * building a whole JSON tree for every hit was most of the gateway's CPU per query. So each hit
 * is read as a stub: only the fields the merge reads (named by the caller: the ranking score and
 * its details, the write order, the primary key, the distinct attribute), parsed, and the hit's
 * own text under MR_HIT_TEXT. The hits the merge keeps are made whole (mr_hit_expand); the others
 * are never parsed. Everything else in the answer (counts, facets) is parsed as usual. */
#ifndef MIROIR_ANSWER_H
#define MIROIR_ANSWER_H

#include <jansson.h>
#include <stddef.h>

#define MR_HIT_TEXT "_miroir_text"

/* Reads a Meilisearch search answer (a JSON object with a "hits" array of objects), each hit a
 * stub holding the fields named in keep (nkeep of them) that it has. Returns a new reference, or
 * NULL if text is not such an answer, or not JSON, or a name in keep is one that JSON would
 * escape: then parse it whole. */
json_t *mr_answer_load(const char *text, size_t len, const char *const *keep, size_t nkeep);

/* The same for a /multi-search answer: {"results": [answer, …]}, each answer read as above. */
json_t *mr_answers_load(const char *text, size_t len, const char *const *keep, size_t nkeep);

/* Makes a stub whole, in place: the hit's own fields in its order, then whatever was added to
 * the stub since it was read. A whole hit is left as it is. Returns 0, or -1 if the hit's text
 * does not parse (the stub is left as it was). */
int mr_hit_expand(json_t *hit);

#endif
