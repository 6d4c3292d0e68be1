/* fold.h: folding a run of document records into the operations they amount to.
 *
 * A replay has no reader waiting on its intermediate states, only on its end, and a history of
 * interleaved replaces, updates and deletes would otherwise cost a Meilisearch task per run of
 * one kind. Operations on different documents commute, so a window of records folds, per
 * document and in order, into one operation:
 *   replace(x)                  -> replace(x)
 *   update(y) on nothing        -> update(y)
 *   update(y) on replace(x)     -> replace(x + y);   on update(x): update(x + y)
 *   update(y) on a delete       -> replace(y)        (a partial update of a missing document creates it)
 *   delete                      -> delete
 * where x + y sets y's top-level fields on x, as Meilisearch's partial update does. Applying the
 * folded deletes, replaces and updates, in any order, leaves the index as the records did. */
#ifndef MIROIR_FOLD_H
#define MIROIR_FOLD_H

#include <jansson.h>
#include <stddef.h>

#include "record.h"

/* A fold is a JSON object: document id -> ["r" | "u" | "d", document or null], owned by the
 * caller. Adds one record (op replace, update or delete; doc is stolen, NULL for a delete). */
void mr_fold_add(json_t *fold, enum mr_op op, const char *id, size_t id_len, json_t *doc);

/* The folded operation of an entry: 'r', 'u' or 'd'. */
char mr_fold_kind(const json_t *entry);

#endif
