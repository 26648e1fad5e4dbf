#pragma once
/* The tokenizers of the supported families, giving the ids Hugging Face's tokenizers give:
 * - BERT's WordPiece (BERT, DistilBERT, ELECTRA): basic tokenization (clean-up of control
 *   characters, whitespace split, CJK characters split apart, lower-casing and accent stripping
 *   when do_lower_case, punctuation split), then greedy longest-match-first WordPiece with "##"
 *   continuations, [UNK] for words over 100 characters or that cannot be split;
 * - byte-level BPE (RoBERTa): GPT-2's pre-tokenization pattern, bytes mapped to printable
 *   characters, merges applied by rank within each pre-token.
 * Read from the slow files (vocab.txt; vocab.json + merges.txt) or from tokenizer.json, with
 * tokenizer_config.json / special_tokens_map.json. Text that spells a special token ([CLS],
 * <s>, ...) becomes that token, as in HF. Produces the family's template (`[CLS] a [SEP]`,
 * `[CLS] a [SEP] b [SEP]` with types 0/1; `<s> a </s></s> b </s>`), truncated to a maximum
 * length (longest-first for pairs, as Hugging Face does). */

#include <stddef.h>
#include <stdint.h>

#include "en_error.h"

typedef struct en_tokenizer en_tokenizer;

/// Loads the tokenizer of a model folder: `<dir>/tokenizer.json` when present, else
/// `vocab.json` + `merges.txt` (byte-level BPE), else `vocab.txt` (WordPiece, one piece a line,
/// id = line number); then, if present, `tokenizer_config.json` and `special_tokens_map.json`
/// (`do_lower_case`, special tokens, ...). Errors: -ENOENT (missing vocab, message names the
/// path), EN_EVOCAB (empty vocabulary, duplicate piece, missing [CLS]/[SEP]/[UNK], a
/// SentencePiece tokenizer, which is not supported), EN_EFORMAT (bad JSON, an unsupported
/// tokenizer.json component). On success `*out` is owned by the caller: free it with
/// en_tokenizer_free().
int en_tokenizer_load(const char *dir, en_tokenizer **out, en_diag *diag);

/// Which files en_tokenizer_load_files() reads.
typedef enum en_tok_files {
    EN_TOK_FILES_AUTO, // tokenizer.json when present, else the slow files
    EN_TOK_FILES_SLOW, // vocab.json + merges.txt, else vocab.txt
    EN_TOK_FILES_FAST, // tokenizer.json
} en_tok_files;

/// en_tokenizer_load() with the choice of files (tests compare both ways).
int en_tokenizer_load_files(const char *dir, en_tok_files which, en_tokenizer **out, en_diag *diag);

/// A tokenizer from the text of a tokenizer.json (`len` bytes, need not be NUL-terminated),
/// without any other file. `*out` is owned by the caller. Errors as en_tokenizer_load().
int en_tokenizer_from_json(const char *json, size_t len, en_tokenizer **out, en_diag *diag);

/// Frees a tokenizer; NULL is allowed.
void en_tokenizer_free(en_tokenizer *t);

/// Number of pieces in the vocabulary.
int en_tokenizer_vocab_size(const en_tokenizer *t);

/// Tokenizes `text` (UTF-8, NUL-terminated; invalid UTF-8 bytes are dropped) and, when
/// `text_pair` is not NULL, the second segment. Writes at most `max_len` ids into `ids` and
/// `type_ids` (both caller-owned arrays of at least `max_len` elements) and their count into
/// `*n_out`; over-long input is truncated (longest-first for pairs) so the result always ends
/// with the template's last token ([SEP], </s>). `max_len` must be at least the template's
/// special tokens (3 or 4 for a pair, 2 otherwise; EN_ERANGE). Thread-safe: the tokenizer is
/// read-only.
int en_tokenize(const en_tokenizer *t, const char *text, const char *text_pair, int max_len,
                int32_t *ids, int32_t *type_ids, int *n_out, en_diag *diag);

/// en_tokenize() of texts given with their byte lengths, so they may hold U+0000 (dropped by
/// WordPiece's clean-up, a byte like any other for byte-level BPE).
int en_tokenize_n(const en_tokenizer *t, const char *text, size_t text_len, const char *text_pair,
                  size_t pair_len, int max_len, int32_t *ids, int32_t *type_ids, int *n_out,
                  en_diag *diag);

/// How many special tokens the template adds to one text (`pair` 0) or a pair (`pair` 1):
/// 2 and 3 for BERT's, 2 and 4 for RoBERTa's.
int en_tokenizer_specials(const en_tokenizer *t, int pair);

/// The file the vocabulary came from ("vocab.txt", "vocab.json", "tokenizer.json"). Static.
const char *en_tokenizer_file(const en_tokenizer *t);

/// "WordPiece" or "byte-level BPE". Static storage.
const char *en_tokenizer_kind(const en_tokenizer *t);

/// The piece for `id`, or NULL when out of range. Borrowed from the tokenizer.
const char *en_tokenizer_piece(const en_tokenizer *t, int32_t id);
