/* seq.h: the order documents were written in, across shards.
 *
 * One Meilisearch node gives tied hits, and documents browsed without a sort, in the order of its
 * internal document ids, which follow insertion. Shards number their documents apart, so every
 * document carries the sequence number of its last write in a reserved field, and the gateway
 * merges shard answers by it (and removes it from what clients see).
 *
 * A sequence number is (milliseconds since the epoch << 20) + a counter: the gateway reserves a
 * run per write (record header miroir.seq); a record without the header gets its timestamp and
 * offset. In the document it is written as 16 characters, one per 4 bits, from an alphabet of
 * ASCII characters Meilisearch's tokenizer takes as separators: the field yields no word, so no
 * search ever matches it, and its byte order is its numeric order. */
#ifndef MIROIR_SEQ_H
#define MIROIR_SEQ_H

#include <jansson.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#define MR_SEQ_FIELD "_miroir_seq"
#define MR_HEADER_SEQ "miroir.seq"
#define MR_SEQ_LEN 16
#define MR_SEQ_COUNTER_BITS 20

/* Reserves n consecutive sequence numbers after *last (shared by a process's writers) and no
 * earlier than now_ms; returns the first. */
uint64_t mr_seq_reserve(_Atomic uint64_t *last, int64_t now_ms, size_t n);

/* The sequence number of a record without the header: its timestamp, then its offset. */
uint64_t mr_seq_of_record(int64_t timestamp_ms, int64_t offset);

/* Writes seq's field value (MR_SEQ_LEN characters and a NUL) into out. */
void mr_seq_encode(uint64_t seq, char out[MR_SEQ_LEN + 1]);
/* Reads a field value back into *seq. Returns 0, or -1 if text is no field value. */
int mr_seq_decode(const char *text, uint64_t *seq);

/* Orders two documents (or hits) by their field: negative if a was written first; 0 when either
 * has none (a document written before the field existed, or not displayed). */
int mr_seq_compare(const json_t *a, const json_t *b);

/* Removes the field from a document or hit, and from its "_formatted" copy. */
void mr_seq_strip(json_t *doc);

/* Settings as a shard index gets them: a displayedAttributes list that doesn't show everything
 * shows the field too, or the merge couldn't read it. Changes settings in place. */
void mr_seq_settings_for_node(json_t *settings);
/* Settings as a client sees them: the field taken out of displayedAttributes again. */
void mr_seq_settings_for_client(json_t *settings);

#endif
