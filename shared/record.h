/* record.h: the Kafka record format of an index topic (see docs/record-format.md).
 *
 * Topic miroir.idx.<index>, partition = shard, key = document id, value = document JSON,
 * header "miroir.op" = the operation. A record without the header is a "replace" (Meilisearch's
 * POST /documents), so a plain keyed JSON record from any producer is a valid write.
 * Control records (index-wide operations) carry an empty key and go to every partition. */
#ifndef MIROIR_RECORD_H
#define MIROIR_RECORD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "apierr.h"

#define MR_HEADER_OP "miroir.op"
#define MR_HEADER_PRIMARY_KEY "miroir.pk" /* optional: the index's primary key when the record was written */
#define MR_TOPIC_INDEX_PREFIX "miroir.idx."
#define MR_TOPIC_INBOX_PREFIX "miroir.in."
#define MR_TOPIC_DLQ_PREFIX "miroir.dlq."
#define MR_TOPIC_CHECKPOINT_PREFIX "miroir.ckpt."
#define MR_TOPIC_META "miroir.meta"
#define MR_TOPIC_TASKS "miroir.tasks"
#define MR_TOPIC_PROGRESS "miroir.progress"
#define MR_DOCID_MAX 511

enum mr_op {
    MR_OP_INVALID = 0,
    MR_OP_REPLACE,          /* value: full document; replaces it (POST /documents) */
    MR_OP_UPDATE,           /* value: partial document; merges fields (PUT /documents) */
    MR_OP_DELETE,           /* value ignored */
    MR_OP_CREATE_INDEX,     /* control; value: {"primaryKey": …} */
    MR_OP_CLEAR,            /* control; delete all documents */
    MR_OP_DELETE_BY_FILTER, /* control; value: {"filter": …} */
    MR_OP_SETTINGS,         /* control; value: a settings object (PATCH semantics) */
    MR_OP_DELETE_INDEX,     /* control; drops the shard index */
    MR_OP_UPDATE_INDEX,     /* control; value: {"primaryKey": …} */
    MR_OP_CHECKPOINT,       /* control, in miroir.ckpt.<storage> only: {"offset", "phase": begin|end}
                             * marks a checkpoint's bounds; applying it does nothing */
};

const char *mr_op_name(enum mr_op op);
/* Returns MR_OP_INVALID for an unknown name. A NULL name (no header) is MR_OP_REPLACE. */
enum mr_op mr_op_parse(const char *name, size_t len);
bool mr_op_is_control(enum mr_op op);

/* A consumed record, as views into the message that holds the bytes. */
typedef struct mr_record {
    enum mr_op op;
    const char *key;
    size_t key_len;
    const char *value;
    size_t value_len;
} mr_record;

/* Decodes a record from its parts (op header may be NULL). Checks what can be checked without
 * the index: a known op; a document record has a valid id as key; a control record has an
 * empty key. Returns 0, or -1 with err set (the record is poison and goes to the DLQ). */
int mr_record_decode(const char *key, size_t key_len, const char *value, size_t value_len,
                     const char *op_header, size_t op_len, mr_record *out, mr_error *err);

/* True if s[0..len) is a valid Meilisearch document id: [a-zA-Z0-9_-]{1,511}. */
bool mr_docid_valid(const char *s, size_t len);

/* Writes the id of a primary-key value into out (strings as is, non-negative integers in
 * decimal). Returns the id's length, or -1 with err set if the value is no valid id. */
int mr_docid_from_json(const void *json_value, char *out, size_t outlen, mr_error *err);

/* Index uids: [a-zA-Z0-9_-]{1,400}. Shorter than Meilisearch's 512 because the shard suffix
 * and the Kafka topic name (249 chars max) must fit. */
bool mr_index_uid_valid(const char *uid);
#define MR_INDEX_UID_MAX 200

#endif
