/* fuzz_record.c: Kafka record decoding, as ingest runs it on every consumed record, including
 * those upstream systems produce directly.
 * Input: key length and op-header length (one byte each), then key, op header and value. */
#include <stddef.h>
#include <stdint.h>

#include "record.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 2)
        return 0;
    size_t key_len = data[0], op_len = data[1] % 32;
    const char *rest = (const char *)data + 2;
    size -= 2;
    if (key_len + op_len > size)
        return 0;
    const char *key = rest, *op = rest + key_len, *value = rest + key_len + op_len;
    size_t value_len = size - key_len - op_len;
    mr_record rec;
    mr_error err;
    if (mr_record_decode(key, key_len, value, value_len, op_len ? op : NULL, op_len, &rec, &err) == 0 &&
        !mr_op_is_control(rec.op)) {
        json_t *doc = json_loadb(rec.value, rec.value_len, 0, NULL);
        char id[512];
        if (doc)
            mr_docid_from_json(json_object_get(doc, "id"), id, sizeof id, &err);
        json_decref(doc);
    }
    return 0;
}
