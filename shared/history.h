/* history.h: how much of a shard's history its partition must keep, and when a checkpoint is due.
 *
 * A shard's partition of miroir.idx.<storage> is its history. Every replica applies it from its
 * own offset; a replica built anew copies a ready peer pinned to an offset X and replays from X;
 * when no replica is left, the shard comes back from its newest checkpoint (a consistent copy of
 * one replica at offset X, in partition k of miroir.ckpt.<storage>) and the records from X on.
 * So the records below T can go, where T is the lowest of:
 *   - the offset of the shard's newest complete checkpoint (a restore replays from it);
 *   - every placed replica's applied offset (each goes on from its own; a replica behind the
 *     checkpoint would have nothing to read);
 *   - the first record held for a cancelation not decided yet (it may still be skipped, or must
 *     still be applied).
 * Task statuses need no record: they are derived from commit points and marks in
 * miroir.progress. Checkpoints older than the newest complete one go with it.
 *
 * Pure functions, unit-tested. */
#ifndef MIROIR_HISTORY_H
#define MIROIR_HISTORY_H

#include <stddef.h>
#include <stdint.h>

/* The first offset the shard's partition must keep: every record below it may be deleted.
 * checkpoint is the newest complete checkpoint's offset (-1: none, then nothing may go);
 * applied[0..n) the placed replicas' applied offsets; hold_from the first offset held for a
 * cancelation (-1: none). */
int64_t mr_history_keep_from(int64_t checkpoint, const int64_t *applied, size_t n, int64_t hold_from);

/* Whether a new checkpoint is due: the history written since the last one (end - last, last -1
 * for none: then end) is at least min_records and at least ratio times the shard's live documents. */
int mr_history_checkpoint_due(int64_t end, int64_t last, int64_t live_documents, double ratio, int64_t min_records);

#endif
