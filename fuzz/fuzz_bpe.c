/* Fuzzes the byte-level BPE tokenizer with the RoBERTa model of shared/ (SEARCHD_SHARED, else
 * ../shared): the same text through the tokenizer read from tokenizer.json and the one read
 * from vocab.json + merges.txt must give the same ids.
 *
 * Input layout: byte 0 picks max_len (4 + byte & 0x7f, so truncation is exercised) and whether
 * the rest is a pair; for a pair byte 1 says where the rest splits. Texts are passed with their
 * lengths (en_tokenize_n), so NUL bytes are text like any other. Checks: the two tokenizers
 * agree, length within max_len, <s> first, </s> last, ids in range, every type id 0. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/en_tokenizer.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static en_tokenizer *fast, *slow; // loaded once; read-only afterwards

static en_tokenizer *load(en_tok_files which) {
    const char *shared = getenv("SEARCHD_SHARED");
    char dir[1024];
    snprintf(dir, sizeof dir, "%s/models/tiny-roberta-random", shared ? shared : "../shared");
    en_tokenizer *t = NULL;
    en_diag diag = {{0}};
    int rc = en_tokenizer_load_files(dir, which, &t, &diag);
    if (rc != 0) {
        fprintf(stderr, "fuzz_bpe: cannot load %s: %s (%s)\n", dir, en_strerror(rc), diag.msg);
        abort();
    }
    return t;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (!fast) fast = load(EN_TOK_FILES_FAST), slow = load(EN_TOK_FILES_SLOW);
    if (size < 2) return 0;
    int max_len = 4 + (data[0] & 0x7f) * 4; // 4..512
    int pair = data[0] >> 7;
    const char *text = (const char *)data + 2;
    size_t len = size - 2, alen = pair ? data[1] % (len + 1) : len;
    int32_t *ids = malloc(sizeof *ids * (size_t)max_len * 2), *ids2 = ids + max_len;
    int32_t *types = malloc(sizeof *types * (size_t)max_len * 2), *types2 = types + max_len;
    int n = -1, n2 = -2;
    en_diag diag;
    if (ids && types) {
        int rc = en_tokenize_n(fast, text, alen, pair ? text + alen : NULL, len - alen, max_len,
                               ids, types, &n, &diag);
        int rc2 = en_tokenize_n(slow, text, alen, pair ? text + alen : NULL, len - alen, max_len,
                                ids2, types2, &n2, &diag);
        if (rc != 0 || rc2 != 0) {
            fprintf(stderr, "en_tokenize_n failed: %s (%s)\n", en_strerror(rc), diag.msg);
            abort();
        }
        if (n != n2 || memcmp(ids, ids2, sizeof *ids * (size_t)n) != 0) abort();
        int vocab = en_tokenizer_vocab_size(fast);
        if (n < (pair ? 4 : 2) || n > max_len) abort();
        for (int i = 0; i < n; i++)
            if (ids[i] < 0 || ids[i] >= vocab || types[i] != 0) abort();
        if (strcmp(en_tokenizer_piece(fast, ids[0]), "<s>") != 0 ||
            strcmp(en_tokenizer_piece(fast, ids[n - 1]), "</s>") != 0)
            abort();
    }
    free(ids);
    free(types);
    return 0;
}
