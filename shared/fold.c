/* fold.c: a window of document records folded into the operations they amount to (fold.h). */
#include "fold.h"

void mr_fold_add(json_t *fold, enum mr_op op, const char *id, size_t id_len, json_t *doc)
{
    json_t *cur = json_object_getn(fold, id, id_len);
    char was = cur ? mr_fold_kind(cur) : 0;
    json_t *now;
    if (op == MR_OP_DELETE) {
        json_decref(doc);
        now = json_pack("[s, n]", "d");
    } else if (op == MR_OP_REPLACE || was == 'd') {
        now = json_pack("[s, o]", "r", doc);
    } else if (!was) {
        now = json_pack("[s, o]", "u", doc);
    } else {
        json_t *merged = json_deep_copy(json_array_get(cur, 1));
        json_object_update(merged, doc);
        json_decref(doc);
        now = json_pack("[s, o]", was == 'r' ? "r" : "u", merged);
    }
    json_object_setn_new(fold, id, id_len, now);
}

char mr_fold_kind(const json_t *entry)
{
    const char *k = json_string_value(json_array_get(entry, 0));
    return k ? k[0] : 0;
}
