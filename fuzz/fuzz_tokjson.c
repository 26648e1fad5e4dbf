/* Fuzzes the tokenizer.json reader (en_tokenizer_from_json) on arbitrary bytes. A file it
 * accepts must tokenize a few fixed texts (special tokens, punctuation, CJK, emoji, a pair)
 * within max_len with ids inside the vocabulary. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/en_tokenizer.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    en_tokenizer *t = NULL;
    en_diag diag;
    if (en_tokenizer_from_json((const char *)data, size, &t, &diag) != 0) {
        if (t) abort(); // a failure leaves no tokenizer
        return 0;
    }
    static const char *const texts[][2] = {
        {"Hello, world! it's [CLS] <s> a test", NULL},
        {"  caf\xc3\xa9 \xe4\xb8\xad\xe6\x96\x87 \xf0\x9f\x98\x80 <mask>", "second [SEP] text"},
        {"", ""},
    };
    enum { MAX_LEN = 24 };
    int vocab = en_tokenizer_vocab_size(t);
    for (size_t i = 0; i < sizeof texts / sizeof texts[0]; i++) {
        int32_t ids[MAX_LEN], types[MAX_LEN];
        int n = -1;
        int rc = en_tokenize(t, texts[i][0], texts[i][1], MAX_LEN, ids, types, &n, &diag);
        if (rc != 0) continue; // e.g. a template longer than MAX_LEN
        if (n < 0 || n > MAX_LEN) abort();
        for (int k = 0; k < n; k++)
            if (ids[k] < 0 || ids[k] >= vocab || !en_tokenizer_piece(t, ids[k])) abort();
    }
    en_tokenizer_free(t);
    return 0;
}
