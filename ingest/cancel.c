/* cancel.c: answering cancelations. For each part of a task to cancel in a shard whose lease this
 * worker holds, it votes once: held if no replica of the shard has been sent any of the part's
 * records (none can have begun to apply it), and from then no replica takes them until the
 * cancel is decided; begun otherwise. The task is canceled only if every part was held (meta.h);
 * then no replica ever applies those records, one rebuilt later included. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "stream.h"
#include "util.h"

typedef struct ingest_stream stream;

static int of_shard(const stream *s, const char *storage, uint32_t shard)
{
    return s->shard == shard && strcmp(s->storage, storage) == 0;
}

static void vote(ingest *in, const json_t *part)
{
    int64_t cancel = json_integer_value(json_object_get(part, "cancel"));
    int64_t task = json_integer_value(json_object_get(part, "task"));
    const char *storage = json_string_value(json_object_get(part, "storage"));
    uint32_t shard = (uint32_t)json_integer_value(json_object_get(part, "shard"));
    int64_t first = json_integer_value(json_object_get(part, "first"));
    char key[96];
    snprintf(key, sizeof key, "%" PRId64 "/%" PRId64 "/%u", cancel, task, shard);
    if (!ingest_owns(in, storage, shard) || json_object_get(in->my_votes, key))
        return;
    int begun = 0;
    for (size_t i = 0; i < in->stream_count; i++) {
        const stream *s = &in->streams[i];
        begun |= of_shard(s, storage, shard) && (s->sent_upto > first || s->applied > first);
    }
    char full[128];
    snprintf(full, sizeof full, "vote/%s", key);
    ingest_progress_put(in, storage, shard, full, begun ? "{\"held\":false}" : "{\"held\":true}");
    mr_log("info", "ingest", "cancel %" PRId64 " of task %" PRId64 " on %s shard %u: %s", cancel, task, storage, shard,
           begun ? "already begun" : "held");
    json_object_set_new(in->my_votes, key, json_pack("{s:s, s:i, s:I, s:b}", "storage", storage, "shard", (int)shard,
                                                     "first", (json_int_t)first, "held", !begun));
    if (begun)
        return;
    /* what was read ahead past the part is read again, and stops at it */
    for (size_t i = 0; i < in->stream_count; i++) {
        stream *s = &in->streams[i];
        if (of_shard(s, storage, shard) && (s->batch_first >= 0 || s->pending_len > s->pending_head))
            ingest_stream_unsend(in, s);
    }
}

/* The first offset held on a shard: by a decided-pending vote the follower has read, or by one
 * of this worker's not read back yet. */
static int64_t hold_of(ingest *in, const stream *s)
{
    int64_t hold = mr_meta_hold_from(in->meta, s->storage, s->shard);
    const char *key;
    json_t *v;
    json_object_foreach(in->my_votes, key, v) {
        if (!json_is_true(json_object_get(v, "held")) ||
            !of_shard(s, json_string_value(json_object_get(v, "storage")),
                      (uint32_t)json_integer_value(json_object_get(v, "shard"))))
            continue;
        int64_t first = json_integer_value(json_object_get(v, "first"));
        if (hold < 0 || first < hold)
            hold = first;
    }
    return hold;
}

static void forget_decided(ingest *in)
{
    const char *key;
    void *tmp;
    json_t *v;
    json_object_foreach_safe(in->my_votes, tmp, key, v) {
        int64_t cancel = strtoll(key, NULL, 10);
        int64_t task = strtoll(strchr(key, '/') + 1, NULL, 10);
        if (mr_meta_cancel_decision(in->meta, cancel, task) != -1)
            json_object_del(in->my_votes, key);
    }
}

void ingest_cancels_update(ingest *in)
{
    uint64_t version = mr_meta_cancel_version(in->meta);
    if (version == in->cancels_seen)
        return;
    json_t *pending = mr_meta_pending_votes(in->meta);
    size_t i;
    json_t *part;
    json_array_foreach(pending, i, part)
        vote(in, part);
    json_decref(pending);
    forget_decided(in);
    for (size_t k = 0; k < in->stream_count; k++) {
        stream *s = &in->streams[k];
        int64_t before = s->hold_from;
        s->hold_from = hold_of(in, s);
        s->skips = mr_meta_has_skips(in->meta, s->storage, s->shard);
        if (before >= 0 && (s->hold_from < 0 || s->hold_from > before))
            ingest_stream_release(in, s);
    }
    /* this worker's own votes change nothing the follower has read: look again next round */
    in->cancels_seen = json_object_size(in->my_votes) ? version - 1 : version;
}
