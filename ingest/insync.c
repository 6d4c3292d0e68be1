/* insync.c: each shard's in-sync set and commit point, kept by the worker that holds the shard's
 * lease, its only writer. The rule is shared/insync.h; this file feeds it and records the result. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "alloc.h"
#include "insync.h"
#include "stream.h"
#include "util.h"

typedef struct ingest_stream stream;
typedef struct ingest_shard shard_state;

static shard_state *find_shard(shard_state *shards, size_t n, const char *storage, uint32_t shard)
{
    for (size_t i = 0; i < n; i++)
        if (shards[i].shard == shard && strcmp(shards[i].storage, storage) == 0)
            return &shards[i];
    return NULL;
}

static int in_set(const shard_state *st, const stream *s)
{
    for (size_t i = 0; i < st->isr_count; i++)
        if (st->isr[i].incarnation == s->incarnation && strcmp(st->isr[i].node, s->node_id) == 0)
            return 1;
    return 0;
}

static void set_add(mr_replica *set, size_t *count, const stream *s)
{
    if (*count == MR_MAX_REPLICAS)
        return;
    mr_replica *r = &set[(*count)++];
    memset(r, 0, sizeof *r);
    snprintf(r->node, sizeof r->node, "%s", s->node_id);
    r->incarnation = s->incarnation;
}

static void shard_init(ingest *in, shard_state *st, const stream *first)
{
    memset(st, 0, sizeof *st);
    snprintf(st->storage, sizeof st->storage, "%s", first->storage);
    st->shard = first->shard;
    mr_commit c;
    mr_meta_commit(in->meta, st->storage, st->shard, &c);
    st->known = c.known;
    st->commit = c.offset;
    st->isr_count = c.isr_count;
    memcpy(st->isr, c.isr, sizeof st->isr);
    /* no record yet: every ready replica counts, as readers assume (mr_commit_has) */
    for (const stream *s = first; !c.known && s < in->streams + in->stream_count; s++) {
        if (s->shard != st->shard || strcmp(s->storage, st->storage) != 0)
            break;
        if (s->ready)
            set_add(st->isr, &st->isr_count, s);
    }
}

void ingest_shards_rebuild(ingest *in)
{
    shard_state *old = in->shards;
    size_t old_count = in->shard_count;
    in->shards = mr_calloc(in->stream_count, sizeof *in->shards);
    in->shard_count = 0;
    for (size_t i = 0; i < in->stream_count; i++) {
        const stream *s = &in->streams[i];
        shard_state *last = in->shard_count ? &in->shards[in->shard_count - 1] : NULL;
        if (last && last->shard == s->shard && strcmp(last->storage, s->storage) == 0) {
            last->stream_count++;
            continue;
        }
        shard_state *kept = find_shard(old, old_count, s->storage, s->shard);
        shard_state *st = &in->shards[in->shard_count++];
        if (kept)
            *st = *kept;
        else
            shard_init(in, st, s);
        st->first_stream = i;
        st->stream_count = 1;
    }
    free(old);
}

static void write_commit(ingest *in, const shard_state *st)
{
    json_t *isr = json_array();
    for (size_t i = 0; i < st->isr_count; i++)
        json_array_append_new(isr, json_pack("[s, I]", st->isr[i].node, (json_int_t)st->isr[i].incarnation));
    char at[48], key[MR_STORAGE_MAX + 32];
    mr_now_rfc3339(at, sizeof at);
    json_t *v = json_pack("{s:I, s:s, s:o}", "offset", (json_int_t)st->commit, "at", at, "isr", isr);
    char *text = json_dumps(v, JSON_COMPACT);
    snprintf(key, sizeof key, "commit/%s/%u", st->storage, st->shard);
    ingest_progress_put(in, st->storage, st->shard, key, text);
    free(text);
    json_decref(v);
}

static int same_set(const shard_state *st, const mr_replica *set, size_t count)
{
    if (count != st->isr_count)
        return 0;
    for (size_t i = 0; i < count; i++) {
        int found = 0;
        for (size_t j = 0; j < st->isr_count && !found; j++)
            found = set[i].incarnation == st->isr[j].incarnation && strcmp(set[i].node, st->isr[j].node) == 0;
        if (!found)
            return 0;
    }
    return 1;
}

static void shard_update(ingest *in, shard_state *st, int64_t now)
{
    mr_isr_replica replicas[MR_MAX_REPLICAS];
    stream *of[MR_MAX_REPLICAS];
    size_t n = 0;
    for (size_t i = st->first_stream; i < st->first_stream + st->stream_count && n < MR_MAX_REPLICAS; i++) {
        stream *s = &in->streams[i];
        if (!s->ready)
            continue;
        of[n] = s;
        replicas[n++] = (mr_isr_replica){.node = s->node_id, .incarnation = s->incarnation, .applied = s->applied,
                                         .advanced_ms = s->advanced_ms, .behind_since_ms = s->behind_since_ms,
                                         .failing = s->failures > 0, .member = in_set(st, s)};
    }
    mr_replica set[MR_MAX_REPLICAS];
    size_t count;
    int64_t commit = mr_isr_next(replicas, n, st->commit, now, in->cfg->in_sync_lag_ms, set, &count);
    for (size_t i = 0; i < n; i++)
        of[i]->behind_since_ms = replicas[i].behind_since_ms;
    if (commit == st->commit && same_set(st, set, count))
        return;
    if (!same_set(st, set, count))
        mr_log("info", "ingest", "%s shard %u: in-sync set now %zu replica(s), commit point %" PRId64, st->storage,
               st->shard, count, commit);
    st->commit = commit;
    memcpy(st->isr, set, sizeof set);
    st->isr_count = count;
    st->known = 1;
    write_commit(in, st);
}

void ingest_shards_update(ingest *in, int64_t now)
{
    for (size_t i = 0; i < in->shard_count; i++)
        shard_update(in, &in->shards[i], now);
}
