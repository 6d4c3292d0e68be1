/* fuzz_payload.c: HTTP write bodies: JSON, NDJSON and CSV parsing, then document validation and
 * primary-key inference, as the gateway runs them on every write.
 * Input: one byte choosing the format and CSV delimiter, then the body. */
#include <stddef.h>
#include <stdint.h>

#include "payload.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    static const char delimiters[] = {',', ';', '\t', '|'};
    enum mr_payload_format fmt = (enum mr_payload_format)(data[0] % 3);
    char delimiter = delimiters[(data[0] >> 2) % 4];
    mr_error err;
    json_t *docs = mr_payload_parse((const char *)data + 1, size - 1, fmt, delimiter, &err);
    if (docs) {
        char pk[512];
        if (mr_primary_key_infer(docs, pk, sizeof pk, &err) == 0)
            mr_documents_validate(docs, pk, &err);
        mr_documents_validate(docs, "id", &err);
        json_decref(docs);
    }
    return 0;
}
