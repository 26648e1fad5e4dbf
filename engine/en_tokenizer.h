#pragma once
/* BERT's WordPiece tokenizer, identical to Hugging Face's BertTokenizer: basic tokenization
 * (clean-up of control characters, whitespace split, CJK characters split apart, lower-casing
 * and accent stripping when do_lower_case, punctuation split), then greedy longest-match-first
 * WordPiece with "##" continuations, [UNK] for words over 100 characters or that cannot be
 * split. Produces `[CLS] a [SEP]` or `[CLS] a [SEP] b [SEP]` with token types 0/1, truncated
 * to a maximum length (longest-first for pairs, as Hugging Face does). */

#include <stdint.h>

#include "en_error.h"

typedef struct en_tokenizer en_tokenizer;

/// Loads `<dir>/vocab.txt` (one piece a line, id = line number) and, if present,
/// `<dir>/tokenizer_config.json` (`do_lower_case`, default true). Errors: -ENOENT (missing
/// vocab, message names the path), EN_EVOCAB (empty vocabulary, duplicate piece, missing
/// [CLS]/[SEP]/[UNK]), EN_EFORMAT (bad tokenizer_config.json). On success `*out` is owned by
/// the caller: free it with en_tokenizer_free().
int en_tokenizer_load(const char *dir, en_tokenizer **out, en_diag *diag);

/// Frees a tokenizer; NULL is allowed.
void en_tokenizer_free(en_tokenizer *t);

/// Number of pieces in the vocabulary.
int en_tokenizer_vocab_size(const en_tokenizer *t);

/// Tokenizes `text` (UTF-8, NUL-terminated; invalid UTF-8 bytes are dropped) and, when
/// `text_pair` is not NULL, the second segment. Writes at most `max_len` ids into `ids` and
/// `type_ids` (both caller-owned arrays of at least `max_len` elements) and their count into
/// `*n_out`; over-long input is truncated (longest-first for pairs) so the result always ends
/// with [SEP]. `max_len` must be >= 3 for a pair, >= 2 otherwise (EN_ERANGE). Thread-safe: the
/// tokenizer is read-only.
int en_tokenize(const en_tokenizer *t, const char *text, const char *text_pair, int max_len,
                int32_t *ids, int32_t *type_ids, int *n_out, en_diag *diag);

/// The piece for `id`, or NULL when out of range. Borrowed from the tokenizer.
const char *en_tokenizer_piece(const en_tokenizer *t, int32_t id);
