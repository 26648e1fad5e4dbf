/* Fuzzes en_tokenize() with the demo model's vocabulary (SEARCHD_DEMO_MODEL, else
 * models/sst2-bert-L4-H128-demo under the working directory).
 *
 * Input layout: byte 0 picks max_len (2 + byte, so truncation is exercised) and whether the
 * rest is a pair; the rest is the text, and for a pair the first 0x00 byte separates text from
 * text_pair (no 0x00: empty text_pair). Any other 0x00 ends that segment, as the C API takes
 * NUL-terminated strings. Checks the output invariants: length within max_len, [CLS] first,
 * [SEP] last, ids in range, type ids 0 then 1, at least the template's [SEP]s (text that spells
 * [SEP] adds more). */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/en_tokenizer.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static en_tokenizer *tok; // loaded once; read-only afterwards

static void load_once(void) {
    if (tok) return;
    const char *dir = getenv("SEARCHD_DEMO_MODEL");
    if (!dir) dir = "models/sst2-bert-L4-H128-demo";
    en_diag diag = {{0}};
    int rc = en_tokenizer_load(dir, &tok, &diag);
    if (rc != 0) {
        fprintf(stderr, "fuzz_tokenizer: cannot load %s: %s (%s)\n", dir, en_strerror(rc),
                diag.msg);
        abort();
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    load_once();
    if (size == 0) return 0;
    int max_len = 2 + (data[0] & 0x7f) * 4; // 2..510
    int pair = data[0] >> 7;
    if (pair && max_len < 3) max_len = 3;
    char *buf = malloc(size + 1);
    if (!buf) return 0;
    memcpy(buf, data + 1, size - 1);
    buf[size - 1] = '\0';
    const char *a = buf, *b = NULL;
    if (pair) {
        size_t alen = strlen(buf);
        b = alen < size - 1 ? buf + alen + 1 : buf + size - 1; // the empty string
    }
    int32_t *ids = malloc(sizeof *ids * (size_t)max_len);
    int32_t *types = malloc(sizeof *types * (size_t)max_len);
    int n = -1;
    en_diag diag;
    if (ids && types) {
        int rc = en_tokenize(tok, a, b, max_len, ids, types, &n, &diag);
        if (rc != 0) {
            fprintf(stderr, "en_tokenize failed: %s (%s)\n", en_strerror(rc), diag.msg);
            abort();
        }
        int vocab = en_tokenizer_vocab_size(tok);
        int specials = pair ? 3 : 2;
        if (n < specials || n > max_len) abort();
        int seps = 0, type = 0;
        for (int i = 0; i < n; i++) {
            if (ids[i] < 0 || ids[i] >= vocab || !en_tokenizer_piece(tok, ids[i])) abort();
            if (types[i] < type || types[i] > 1) abort(); // type ids never go back from 1 to 0
            type = types[i];
            seps += strcmp(en_tokenizer_piece(tok, ids[i]), "[SEP]") == 0;
        }
        if (strcmp(en_tokenizer_piece(tok, ids[0]), "[CLS]") != 0 ||
            strcmp(en_tokenizer_piece(tok, ids[n - 1]), "[SEP]") != 0 || seps < specials - 1 ||
            types[0] != 0 || types[n - 1] != pair)
            abort();
    }
    free(ids);
    free(types);
    free(buf);
    return 0;
}
