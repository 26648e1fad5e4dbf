/* Fuzzes the safetensors header parser from memory: any input must give 0 or an error code,
 * never a crash, a leak or undefined behaviour; what it accepts must satisfy the invariants
 * the loader relies on. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "engine/en_safetensors.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    en_st_header h;
    en_diag diag = {""};
    int rc = en_st_parse_mem(data, size, "fuzz", &h, &diag);
    if (rc == 0) {
        uint64_t data_size = h.file_size - h.data_start;
        for (size_t i = 0; i < h.n; i++) {
            const en_st_tensor *t = &h.t[i];
            if (t->begin > t->end || t->end > data_size || t->ndim > EN_ST_MAX_DIMS ||
                en_st_find(&h, t->name) != t)
                abort();
        }
    } else if (rc > 0 || diag.msg[0] == '\0' || h.n != 0 || h.t != NULL) {
        abort(); // a failure always says why and leaves nothing allocated
    }
    en_st_header_free(&h);
    return 0;
}
