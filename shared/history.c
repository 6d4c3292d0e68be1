/* history.c: the rules for truncating a shard's history and for taking checkpoints (history.h). */
#include "history.h"

int64_t mr_history_keep_from(int64_t checkpoint, const int64_t *applied, size_t n, int64_t hold_from)
{
    if (checkpoint < 0)
        return 0;
    int64_t keep = checkpoint;
    for (size_t i = 0; i < n; i++)
        keep = applied[i] < keep ? applied[i] : keep;
    if (hold_from >= 0 && hold_from < keep)
        keep = hold_from;
    return keep > 0 ? keep : 0;
}

int mr_history_checkpoint_due(int64_t end, int64_t last, int64_t live_documents, double ratio, int64_t min_records)
{
    int64_t since = end - (last > 0 ? last : 0);
    return since >= min_records && (double)since >= ratio * (double)(live_documents > 0 ? live_documents : 0);
}
