/* task.h: Miroir tasks, and the Meilisearch view of them.
 *
 * A task record (in miroir.tasks; its offset is the uid) says what a write produced:
 *   {"indexUid", "storage", "type", "enqueuedAt", "details", "parts": [[shard, first, last], …],
 *    "error"?, "cancels"?: [uids]}
 * Its status is derived, never stored while it runs: a part is done once its shard's commit point
 * (meta.h) has passed `last`, and commit points never go back, so neither does a status. Once a
 * task has ended, its view is recorded (task-done/) and shown as it was from then on.
 *
 * The derivation is split in two: mr_task_gather reads what the metadata knows of each part
 * (the facts), and mr_task_view_of, a pure function, turns a record and its facts into the view. */
#ifndef MIROIR_TASK_H
#define MIROIR_TASK_H

#include <jansson.h>

#include "meta.h"

/* What is known of one part of a task: one shard's range of records. */
typedef struct mr_part_facts {
    int64_t committed;  /* the shard's commit point */
    char committed_at[48];
    int started;        /* some replica applied past the part's first record */
    int ended;          /* the incarnation was collected: every record it had was dealt with */
    int after_deletion; /* the incarnation was deleted before these records were written */
    size_t dead;        /* records of the part that went to the dead-letter topic */
    /* a one-record part (a deletion by filter or of all): whether a replica said how many
     * documents it removed, and how many */
    int removed_known;
    int64_t removed;
    json_t *error;      /* owned: the first one's error, or NULL */
} mr_part_facts;

typedef struct mr_task_facts {
    mr_part_facts *parts; /* one per entry of the record's "parts", owned */
    size_t part_count;
    int64_t canceled_by;  /* the cancel task that canceled this one, or -1 */
    char canceled_at[48]; /* that cancel's enqueuedAt */
    /* for a taskCancelation: how many of its tasks it canceled, and whether it is still deciding */
    int64_t canceled_tasks;
    int deciding;
} mr_task_facts;

/* The facts of task (a record from mr_meta_task) as m knows them now. Free with
 * mr_task_facts_clear. */
void mr_task_gather(mr_meta *m, const json_t *task, mr_task_facts *f);
void mr_task_facts_clear(mr_task_facts *f);

/* The task as Meilisearch shows it (new reference): uid, status, details, error, times. Pure. */
json_t *mr_task_view_of(const json_t *task, const mr_task_facts *f);

/* The view of task now: its recorded end if it has one, else derived (new reference). */
json_t *mr_task_view(mr_meta *m, const json_t *task);
/* The batch a task view belongs to, as Meilisearch shows a batch (new reference), or NULL while
 * the task is enqueued: every task is a batch of its own (batchUid is its uid) from when it
 * starts, since each is applied alone, shard by shard. Pure. */
json_t *mr_task_batch_view(const json_t *view);

/* Whether a view's status is final (succeeded, failed, canceled). */
int mr_task_finished(const json_t *view);

/* The 202 answer of an enqueued task: {taskUid, indexUid, status, type, enqueuedAt}. */
json_t *mr_task_summary(int64_t uid, const json_t *task);

/* Helper for writers: a new task record with empty parts. */
json_t *mr_task_new(const char *index_uid, const char *type, json_t *details /* stolen */);

/* Adds [shard, first, last] for records produced at offsets first..last of one partition. */
void mr_task_add_part(json_t *task, uint32_t shard, int64_t first, int64_t last);

/* An ISO 8601 duration as Meilisearch writes one ("PT0.012S", "P1DT2S"), for ns nanoseconds. */
void mr_iso_duration(char *out, size_t outlen, int64_t ns);

#endif
