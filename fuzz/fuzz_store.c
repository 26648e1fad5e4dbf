/* Fuzz target: a state file as sc_store_read() sees it (framing, checksum), then its payload
 * as a frontier and as a latency model, as searchd loads them. The checksum would stop almost
 * every mutated payload, so the bytes are also parsed as a bare JSON frontier. */
#include <jansson.h>
#include <stdint.h>
#include <stdlib.h>

#include "schedules/sc_store.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void parse_json(const void *text, size_t len) {
    json_t *j = json_loadb(text, len, 0, NULL);
    if (!j) return;
    sc_frontier f;
    en_diag d;
    if (sc_frontier_from_json(j, &f, &d) == 0) {
        json_t *back = sc_frontier_to_json(&f); // what loads must write back
        json_decref(back);
        sc_frontier_free(&f);
    }
    sc_latency_model lm;
    sc_latency_from_json(j, &lm, &d);
    json_decref(j);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    void *payload;
    size_t len;
    en_diag d;
    if (sc_store_decode(data, size, "fuzz", &payload, &len, &d) == 0) {
        parse_json(payload, len);
        free(payload);
    }
    parse_json(data, size);
    return 0;
}
