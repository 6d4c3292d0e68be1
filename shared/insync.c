/* insync.c: the rule for a shard's in-sync set and commit point (insync.h). */
#include "insync.h"

#include <stdio.h>
#include <string.h>

static void set_add(mr_replica *set, size_t *count, const mr_isr_replica *r)
{
    if (*count == MR_MAX_REPLICAS)
        return;
    mr_replica *out = &set[(*count)++];
    memset(out, 0, sizeof *out);
    snprintf(out->node, sizeof out->node, "%s", r->node);
    out->incarnation = r->incarnation;
}

/* Which member stays when all would leave: one whose node answers, though it lags, before one
 * that fails; keeping the failing one would raise the point to it and leave the shard with no
 * readable replica for as long as its node is cut off. Then the most advanced. */
static int better_keeper(const mr_isr_replica *a, const mr_isr_replica *b)
{
    if (!a->failing != !b->failing)
        return !a->failing;
    return a->applied > b->applied;
}

int64_t mr_isr_next(mr_isr_replica *replicas, size_t n, int64_t commit, int64_t now_ms, int64_t lag_ms,
                    mr_replica *set, size_t *count)
{
    int64_t most = -1;
    for (size_t i = 0; i < n; i++)
        if (replicas[i].member && replicas[i].applied > most)
            most = replicas[i].applied;
    for (size_t i = 0; i < n; i++) {
        mr_isr_replica *r = &replicas[i];
        if (r->applied >= most)
            r->behind_since_ms = 0;
        else if (!r->behind_since_ms)
            r->behind_since_ms = now_ms;
    }
    *count = 0;
    const mr_isr_replica *keeper = NULL;
    for (size_t i = 0; i < n; i++) {
        const mr_isr_replica *r = &replicas[i];
        if (!r->member)
            continue;
        int64_t still_since = r->advanced_ms > r->behind_since_ms ? r->advanced_ms : r->behind_since_ms;
        int stalled = r->applied < most && now_ms - still_since > lag_ms;
        if (!r->failing && !stalled)
            set_add(set, count, r);
        if (!keeper || better_keeper(r, keeper))
            keeper = r;
    }
    if (!*count && keeper)
        set_add(set, count, keeper);
    for (size_t i = 0; i < n; i++)
        if (!replicas[i].member && !replicas[i].failing && replicas[i].applied >= commit)
            set_add(set, count, &replicas[i]);
    int64_t least = -1;
    for (size_t k = 0; k < *count; k++)
        for (size_t i = 0; i < n; i++)
            if (replicas[i].incarnation == set[k].incarnation && strcmp(replicas[i].node, set[k].node) == 0 &&
                (least < 0 || replicas[i].applied < least))
                least = replicas[i].applied;
    return least > commit ? least : commit;
}
