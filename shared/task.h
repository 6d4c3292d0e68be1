/* task.h: Miroir tasks, and the Meilisearch view of them.
 *
 * A task record (in miroir.tasks; its offset is the uid) says what a write produced:
 *   {"indexUid", "storage", "type", "enqueuedAt", "details", "parts": [[shard, first, last], …],
 *    "error"?}
 * Its status is derived, never stored: a part is done when every ready replica of the shard has
 * applied past `last`; a dead-lettered record inside a part makes the task failed. */
#ifndef MIROIR_TASK_H
#define MIROIR_TASK_H

#include <jansson.h>

#include "meta.h"

/* Whether a node is reachable, as the caller sees it. */
typedef int (*mr_node_live_fn)(void *ctx, const char *node);

/* Returns a new reference: the task as Meilisearch shows it (uid, status, details, error, …).
 * task is a record from mr_meta_task (with "uid"). A part is done when every ready replica on a
 * live node has applied it, and at least one has: a dead node doesn't hold tasks back, and
 * catches up when it returns (live may be NULL: every node counts). */
json_t *mr_task_view(mr_meta *m, const json_t *task, mr_node_live_fn live, void *live_ctx);

/* The 202 answer of an enqueued task: {taskUid, indexUid, status, type, enqueuedAt}. */
json_t *mr_task_summary(int64_t uid, const json_t *task);

/* Helper for writers: a new task record with empty parts. */
json_t *mr_task_new(const char *index_uid, const char *type, json_t *details /* stolen */);

/* Adds [shard, first, last] for records produced at offsets first..last of one partition. */
void mr_task_add_part(json_t *task, uint32_t shard, int64_t first, int64_t last);

#endif
