/* insync.c: each shard's in-sync set and commit point.
 *
 * The in-sync set is the ready replicas that keep up; the commit point is the smallest applied
 * offset among them, and never goes back. A task is succeeded once the commit point passed it
 * (task.h), and only in-sync replicas serve reads, so every read sees every task reported
 * succeeded. A replica leaves the set when its node fails, or when it has applied nothing for
 * in_sync_lag_ms while behind its peers, so a dead or stuck node holds nothing back (the last
 * member stays, so the point never moves on without one); it joins again once it has applied
 * everything below the commit point, which then cannot go back. This worker, holding the
 * shard's lease, is the set's only writer. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "alloc.h"
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
    stream *members[MR_MAX_REPLICAS], *others[MR_MAX_REPLICAS];
    size_t nm = 0, no = 0;
    int64_t most = -1;
    for (size_t i = st->first_stream; i < st->first_stream + st->stream_count; i++) {
        stream *s = &in->streams[i];
        if (!s->ready)
            continue;
        if (in_set(st, s) && nm < MR_MAX_REPLICAS) {
            members[nm++] = s;
            most = s->applied > most ? s->applied : most;
        } else if (no < MR_MAX_REPLICAS) {
            others[no++] = s;
        }
    }
    mr_replica set[MR_MAX_REPLICAS];
    size_t count = 0;
    stream *best = NULL;
    for (size_t i = 0; i < nm; i++) {
        stream *s = members[i];
        int stalled = s->applied < most && now - s->advanced_ms > in->cfg->in_sync_lag_ms;
        if (!s->failures && !stalled)
            set_add(set, &count, s);
        if (!best || s->applied > best->applied)
            best = s;
    }
    if (!count && best) /* the last member stays: without one the point could never move safely */
        set_add(set, &count, best);
    for (size_t i = 0; i < no; i++)
        if (!others[i]->failures && others[i]->applied >= st->commit)
            set_add(set, &count, others[i]);
    int64_t commit = st->commit;
    int64_t least = -1;
    for (size_t i = 0; i < count; i++) {
        for (size_t k = st->first_stream; k < st->first_stream + st->stream_count; k++) {
            const stream *s = &in->streams[k];
            if (s->incarnation == set[i].incarnation && strcmp(s->node_id, set[i].node) == 0 &&
                (least < 0 || s->applied < least))
                least = s->applied;
        }
    }
    if (least > commit)
        commit = least;
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
