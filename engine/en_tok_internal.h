#pragma once
/* The tokenizer's insides, shared by its parts: en_tokenizer.c (vocabulary, the slow files,
 * special tokens in text, templates, truncation, WordPiece), en_bpe.c (byte-level BPE) and
 * en_tokjson.c (the tokenizer.json reader). Internal to the engine. */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "en_tokenizer.h"

enum {
    EN_TOK_MAX_TEMPLATE = 16,     // items of a post-processing template
    EN_TOK_SEQ_A = -1,            // template item: the first text's pieces
    EN_TOK_SEQ_B = -2,            // template item: the second text's pieces
    EN_TOK_MAX_WORD_CHARS = 1000, // the largest max_input_chars_per_word taken
};

typedef enum en_tok_kind { EN_TOK_WORDPIECE, EN_TOK_BPE } en_tok_kind;

/* Text matched as one token before anything else (HF's added tokens). */
typedef struct en_tok_special {
    char *text; // owned
    size_t len;
    int32_t id;
    bool lstrip, rstrip; // also takes the whitespace on its left / right
} en_tok_special;

/* One item of a template: a fixed id or a sequence, with its type id. */
typedef struct en_tok_item {
    int32_t id; // a piece id, or EN_TOK_SEQ_A / EN_TOK_SEQ_B
    int32_t type;
} en_tok_item;

/* A BPE merge: the pair (left, right) of piece ids becomes `merged` at priority `rank`. */
typedef struct en_tok_merge {
    uint64_t key; // left << 32 | right; UINT64_MAX: empty slot
    uint32_t rank;
    int32_t merged;
} en_tok_merge;

struct en_tokenizer {
    en_tok_kind kind;
    const char *file; // where the vocabulary came from: "vocab.txt", "tokenizer.json", ...
    // Vocabulary: piece id -> bytes; bytes -> id through an open-addressing table.
    char *blob;     // every piece, NUL-terminated, back to back (owned)
    uint32_t *offs; // [n_pieces] offset of each piece in blob (owned)
    uint32_t *lens; // [n_pieces] byte length of each piece (owned)
    int32_t n_pieces;
    int32_t *slots; // [mask + 1] piece id per slot, -1 when empty (owned)
    uint32_t mask;  // table size - 1 (a power of two at least twice n_pieces)
    // WordPiece (BertNormalizer + BertPreTokenizer + WordPiece)
    bool lower;         // lowercase
    bool strip_accents; // NFD and drop Mn
    bool split_cjk;     // spaces around CJK ideographs
    bool nfc;           // NFC first (the slow BertTokenizer; tokenizer.json's pipeline does not)
    bool final_sigma;   // lower-case as Python's str.lower() (slow) rather than per character
    int max_chars;      // longer words are the unknown piece
    int32_t unk_id;     // -1: none (byte-level BPE)
    // Byte-level BPE
    bool add_prefix_space;
    int32_t byte_id[256]; // the piece of each byte's printable character
    en_tok_merge *merges; // [merge_mask + 1] (owned)
    uint32_t merge_mask;
    // Special tokens in text and the post-processing templates
    en_tok_special *specials; // [n_specials] longest first (owned)
    int n_specials;
    en_tok_item single[EN_TOK_MAX_TEMPLATE], pair[EN_TOK_MAX_TEMPLATE];
    int n_single, n_pair;
};

/* A growable array of code points or piece ids. */
typedef struct en_i32vec {
    int32_t *v;
    size_t n, cap;
} en_i32vec;

/* Per-call buffers, so that en_tokenize() keeps no state in the tokenizer. */
typedef struct en_tok_scratch {
    en_i32vec text;   // the code points of one piece of text
    en_i32vec w1, w2; // one word through NFC, lower-casing, NFD
    en_i32vec sym;    // BPE: symbols (id, prev, next) triplets
    en_i32vec heap;   // BPE: candidate merges (rank, left, right position, left id, right id)
    uint8_t *u8;      // UTF-8 of one word
    size_t u8cap;
} en_tok_scratch;

// --- en_tokenizer.c: shared by the parts ---

/// A tokenizer with BERT's defaults and no vocabulary; NULL when out of memory.
en_tokenizer *en__tok_new(void);
/// Makes the lookup table of t's n pieces at blob + offs[i], lens[i] (set by the caller):
/// refuses NUL bytes, invalid UTF-8 and duplicates, naming `what` and, when `lines`, the line.
int en__tok_index(en_tokenizer *t, const char *what, bool lines, en_diag *diag);
/// Id of the piece `s[0..len)` (after `prefix` when not NULL), or -1.
int32_t en__tok_find(const en_tokenizer *t, const char *prefix, const char *s, size_t len);
/// Adds a special token matched in text (copied), keeping the list longest first.
int en__tok_add_special(en_tokenizer *t, const char *text, size_t len, int32_t id, bool lstrip,
                        bool rstrip);
/// The BERT template ([CLS] A [SEP] / [CLS] A [SEP] B [SEP], B typed 1) or RoBERTa's
/// (<s> A </s> / <s> A </s></s> B </s>, all typed 0).
void en__tok_template(en_tokenizer *t, int32_t cls, int32_t sep, bool roberta);
int en__vec_reserve(en_i32vec *v, size_t extra);
/// Decodes the code point at s[*i] and advances past it; -1 (one byte) for invalid UTF-8.
int32_t en__utf8_next(const uint8_t *s, size_t n, size_t *i);
/// Writes the UTF-8 of `cp` at `out`; returns its length (1..4).
size_t en__utf8_put(int32_t cp, uint8_t *out);
/// Unicode's White_Space property.
bool en__is_white_space(int32_t cp);
/// Reads a whole file (at most `max` bytes); -errno or EN_E*; `*data` owned, NUL-terminated.
int en__read_file(const char *path, size_t max, char **data, size_t *size);

// --- en_bpe.c ---

/// Fills byte_id from the vocabulary (every byte's character must be a piece).
int en__bpe_bytes(en_tokenizer *t, const char *what, en_diag *diag);
/// Adds the merge of pieces `a` and `b` at `rank` (a later duplicate wins, as in HF).
int en__bpe_add_merge(en_tokenizer *t, const char *a, size_t alen, const char *b, size_t blen,
                      uint32_t rank, const char *what, en_diag *diag);
/// Makes room for `n` merges; call before en__bpe_add_merge.
int en__bpe_init_merges(en_tokenizer *t, size_t n);
/// Reads vocab.json and merges.txt of `dir`.
int en__bpe_load_slow(en_tokenizer *t, const char *dir, en_diag *diag);
/// Appends the piece ids of text[0..len) (no special tokens in it), at most up to `cap` ids.
int en__bpe_segment(const en_tokenizer *t, const char *text, size_t len, bool first,
                    en_tok_scratch *s, en_i32vec *out, size_t cap);

// --- en_tokjson.c ---

/// Fills `t` from the text of a tokenizer.json (`len` bytes); `what` names it in messages.
int en__tokjson_parse(en_tokenizer *t, const char *json, size_t len, const char *what,
                      en_diag *diag);
/// The vocabulary from a JSON object piece -> id (vocab.json, tokenizer.json's model.vocab), ids
/// 0..n-1 each once; `added` (an added_tokens array, or NULL) may add ids n, n+1, ...
int en__tok_vocab_json(en_tokenizer *t, json_t *vocab, json_t *added, const char *what,
                       en_diag *diag);
