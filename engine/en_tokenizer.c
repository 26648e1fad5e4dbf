/* The tokenizer: the vocabulary, loading from the slow files or tokenizer.json, special tokens
 * spelled in text, the post-processing template and truncation, and BERT's WordPiece step for
 * step as Hugging Face's slow BertTokenizer (BasicTokenizer + WordpieceTokenizer) or its
 * tokenizer.json pipeline (BertNormalizer + BertPreTokenizer + WordPiece). Byte-level BPE is in
 * en_bpe.c, the tokenizer.json reader in en_tokjson.c. Unicode data (categories, NFC/NFD, simple
 * lower-case mappings) comes from utf8proc; the few places where Python's str.lower()/str.split()
 * differ from those (full lower-casing of U+0130, the Final_Sigma rule, U+2028/U+2029 splitting
 * words) are handled here. Pieces are looked up in an open-addressing hash table built at load
 * time. Nothing is written after load, so one tokenizer serves any number of threads. */
#include "en_tokenizer.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <utf8proc.h>

#include "en_file.h"
#include "en_hash.h"
#include "en_tok_internal.h"

#define MAX_TOKENIZER_BYTES (256u << 20) // tokenizer files are a few MB; refuse anything absurd

enum {
    MAX_WORD_CHARS = 100, // HF's max_input_chars_per_word: longer words become [UNK]
};

typedef en_i32vec i32vec;
typedef en_tok_scratch scratch;

static int load_vocab(en_tokenizer *t, const char *dir, en_diag *diag);
static int load_config(en_tokenizer *t, const char *dir, bool fast, en_diag *diag);
static int tokenize_text(const en_tokenizer *t, const char *text, size_t len, size_t cap,
                         scratch *s, i32vec *out);
static int tokenize_segment(const en_tokenizer *t, const char *text, size_t len, size_t cap,
                            scratch *s, i32vec *out);
static bool file_exists(const char *dir, const char *file);

int en_tokenizer_load(const char *dir, en_tokenizer **out, en_diag *diag) {
    return en_tokenizer_load_files(dir, EN_TOK_FILES_AUTO, out, diag);
}

int en_tokenizer_load_files(const char *dir, en_tok_files which, en_tokenizer **out,
                            en_diag *diag) {
    if (!dir || !out) return en_fail(diag, EN_EINPUT, "en_tokenizer_load: NULL argument");
    *out = NULL;
    en_tokenizer *t = en__tok_new();
    if (!t) return en_fail(diag, EN_ENOMEM, "%s: out of memory", dir);
    int rc = 0;
    bool fast = which == EN_TOK_FILES_FAST ||
                (which == EN_TOK_FILES_AUTO && file_exists(dir, "tokenizer.json"));
    char path[4096];
    if (fast) {
        t->file = "tokenizer.json";
        char *data = NULL;
        size_t size = 0;
        snprintf(path, sizeof path, "%s/tokenizer.json", dir);
        rc = en__read_file(path, MAX_TOKENIZER_BYTES, &data, &size);
        if (rc != 0) rc = en_fail(diag, rc, "%s: %s", path, en_strerror(rc));
        if (rc == 0) rc = en__tokjson_parse(t, data, size, path, diag);
        free(data);
    } else if (file_exists(dir, "vocab.json") || file_exists(dir, "merges.txt")) {
        t->kind = EN_TOK_BPE;
        t->file = "vocab.json";
        rc = en__bpe_load_slow(t, dir, diag);
    } else if (!file_exists(dir, "vocab.txt") &&
               (file_exists(dir, "sentencepiece.bpe.model") || file_exists(dir, "spiece.model") ||
                file_exists(dir, "tokenizer.model"))) {
        rc = en_fail(diag, EN_EVOCAB,
                     "%s: only a SentencePiece model (XLM-R, ALBERT, T5 style), which is not "
                     "supported; supported tokenizers: WordPiece (vocab.txt or tokenizer.json) "
                     "and byte-level BPE (vocab.json + merges.txt or tokenizer.json)",
                     dir);
    } else {
        t->file = "vocab.txt";
        rc = load_vocab(t, dir, diag);
    }
    if (rc == 0) rc = load_config(t, dir, fast, diag);
    if (rc != 0) {
        en_tokenizer_free(t);
        return rc;
    }
    *out = t;
    return 0;
}

en_tokenizer *en__tok_new(void) {
    en_tokenizer *t = calloc(1, sizeof *t);
    if (!t) return NULL;
    t->lower = t->strip_accents = t->split_cjk = t->nfc = t->final_sigma = true;
    t->max_chars = MAX_WORD_CHARS;
    t->unk_id = -1;
    return t;
}

void en_tokenizer_free(en_tokenizer *t) {
    if (!t) return;
    free(t->blob);
    free(t->offs);
    free(t->lens);
    free(t->slots);
    free(t->merges);
    for (int i = 0; i < t->n_specials; i++)
        free(t->specials[i].text);
    free(t->specials);
    free(t);
}

int en_tokenizer_vocab_size(const en_tokenizer *t) {
    return t ? t->n_pieces : 0;
}

const char *en_tokenizer_piece(const en_tokenizer *t, int32_t id) {
    if (!t || id < 0 || id >= t->n_pieces) return NULL;
    return t->blob + t->offs[id];
}

int en_tokenizer_specials(const en_tokenizer *t, int pair) {
    const en_tok_item *tpl = pair ? t->pair : t->single;
    int n = 0;
    for (int i = 0; i < (pair ? t->n_pair : t->n_single); i++)
        n += tpl[i].id >= 0;
    return n;
}

const char *en_tokenizer_file(const en_tokenizer *t) {
    return t && t->file ? t->file : "vocab.txt";
}

const char *en_tokenizer_kind(const en_tokenizer *t) {
    return t && t->kind == EN_TOK_BPE ? "byte-level BPE" : "WordPiece";
}

int en_tokenize(const en_tokenizer *t, const char *text, const char *text_pair, int max_len,
                int32_t *ids, int32_t *type_ids, int *n_out, en_diag *diag) {
    return en_tokenize_n(t, text, text ? strlen(text) : 0, text_pair,
                         text_pair ? strlen(text_pair) : 0, max_len, ids, type_ids, n_out, diag);
}

int en_tokenize_n(const en_tokenizer *t, const char *text, size_t text_len, const char *text_pair,
                  size_t pair_len, int max_len, int32_t *ids, int32_t *type_ids, int *n_out,
                  en_diag *diag) {
    if (!t || !text || !ids || !type_ids || !n_out)
        return en_fail(diag, EN_EINPUT, "en_tokenize: NULL argument");
    *n_out = 0;
    const en_tok_item *tpl = text_pair ? t->pair : t->single;
    int n_tpl = text_pair ? t->n_pair : t->n_single,
        specials = en_tokenizer_specials(t, !!text_pair);
    if (text_pair && n_tpl == 0)
        return en_fail(diag, EN_EINPUT, "this tokenizer has no template for a pair of texts");
    if (max_len < specials || max_len < 1)
        return en_fail(diag, EN_ERANGE, "max_len %d is below the %d special tokens%s", max_len,
                       specials, text_pair ? " of a pair" : "");
    // Room for pieces. Stopping each segment at this many pieces gives the same result as
    // truncating the full segments: longest-first never keeps more than `budget` of one.
    size_t budget = (size_t)(max_len - specials);
    scratch s = {0};
    i32vec a = {0}, b = {0};
    int rc = tokenize_text(t, text, text_len, budget, &s, &a);
    if (rc == 0 && text_pair) rc = tokenize_text(t, text_pair, pair_len, budget, &s, &b);
    if (rc != 0) {
        rc = en_fail(diag, rc, "tokenize: %s", en_strerror(rc));
    } else {
        size_t la = a.n, lb = b.n;
        // HF truncate_sequences, longest_first: drop the last piece of the longer segment,
        // of the second one when both are as long.
        while (la + lb > budget) {
            if (la > lb)
                la--;
            else
                lb--;
        }
        int n = 0;
        for (int i = 0; i < n_tpl; i++) {
            const i32vec *seq = tpl[i].id == EN_TOK_SEQ_A   ? &a
                                : tpl[i].id == EN_TOK_SEQ_B ? &b
                                                            : NULL;
            size_t count = seq == &a ? la : seq == &b ? lb : 0;
            if (!seq) ids[n] = tpl[i].id, type_ids[n++] = tpl[i].type;
            for (size_t k = 0; k < count; k++)
                ids[n] = seq->v[k], type_ids[n++] = tpl[i].type;
        }
        *n_out = n;
    }
    free(a.v);
    free(b.v);
    free(s.text.v);
    free(s.w1.v);
    free(s.w2.v);
    free(s.sym.v);
    free(s.heap.v);
    free(s.u8);
    return rc;
}

/* ---- Vocabulary ------------------------------------------------------------------------- */

int32_t en__tok_find(const en_tokenizer *t, const char *prefix, const char *s, size_t len) {
    size_t plen = prefix ? strlen(prefix) : 0;
    uint64_t h = en_fnv1a(en_fnv1a(EN_FNV1A_BASIS, prefix ? prefix : "", plen), s, len);
    for (uint32_t i = (uint32_t)h & t->mask;; i = (i + 1) & t->mask) {
        int32_t id = t->slots[i];
        if (id < 0) return -1;
        const char *p = t->blob + t->offs[id];
        if (t->lens[id] != len + plen) continue;
        if (plen && memcmp(p, prefix, plen) != 0) continue;
        if (memcmp(p + plen, s, len) == 0) return id;
    }
}

static bool utf8_valid(const uint8_t *s, size_t n) {
    for (size_t i = 0; i < n;)
        if (en__utf8_next(s, n, &i) < 0) return false;
    return true;
}

int en__tok_index(en_tokenizer *t, const char *what, bool lines, en_diag *diag) {
    uint32_t tsize = 16;
    while (tsize < 2 * (uint32_t)t->n_pieces)
        tsize *= 2;
    t->slots = malloc((size_t)tsize * sizeof *t->slots);
    if (!t->slots) return en_fail(diag, EN_ENOMEM, "%s: out of memory", what);
    memset(t->slots, 0xff, (size_t)tsize * sizeof *t->slots); // all -1
    t->mask = tsize - 1;
    int32_t n = t->n_pieces;
    t->n_pieces = 0; // grows as pieces are indexed, so lookups see only those
    for (int32_t id = 0; id < n; id++) {
        const char *p = t->blob + t->offs[id];
        size_t len = t->lens[id];
        char where[32] = "";
        if (lines) snprintf(where, sizeof where, "line %d: ", id + 1);
        if (memchr(p, '\0', len) != NULL)
            return en_fail(diag, EN_EVOCAB, "%s: %sNUL byte in piece %d", what, where, id);
        if (!utf8_valid((const uint8_t *)p, len))
            return en_fail(diag, EN_EVOCAB, "%s: %sinvalid UTF-8 in piece %d", what, where, id);
        int32_t dup = en__tok_find(t, NULL, p, len);
        if (dup >= 0) { // HF would let the later one win silently; a duplicate means a broken file
            char ex[4 * EN_EXCERPT_MAX + 8];
            en_excerpt(p, len, ex, sizeof ex);
            if (lines)
                return en_fail(diag, EN_EVOCAB, "%s: %spiece %s already on line %d", what, where,
                               ex, dup + 1);
            return en_fail(diag, EN_EVOCAB, "%s: piece %s has ids %d and %d", what, ex, dup, id);
        }
        uint32_t slot = (uint32_t)en_fnv1a(EN_FNV1A_BASIS, p, len) & t->mask;
        while (t->slots[slot] >= 0)
            slot = (slot + 1) & t->mask;
        t->slots[slot] = id;
        t->n_pieces = id + 1;
    }
    return 0;
}

int en__read_file(const char *path, size_t max, char **data, size_t *size) {
    // Regular files only, size checked first: a FIFO or /dev/zero fails at once.
    return en_file_read(path, max, data, size, NULL);
}

static bool file_exists(const char *dir, const char *file) {
    char path[4096];
    struct stat st;
    return snprintf(path, sizeof path, "%s/%s", dir, file) < (int)sizeof path &&
           stat(path, &st) == 0;
}

// vocab.txt as Python's `open(path, encoding="utf-8").readlines()` sees it (universal
// newlines: "\n", "\r\n" and "\r" end a line), one piece a line, id = line number.
static int load_vocab(en_tokenizer *t, const char *dir, en_diag *diag) {
    char path[4096];
    if (snprintf(path, sizeof path, "%s/vocab.txt", dir) >= (int)sizeof path)
        return en_fail(diag, -ENAMETOOLONG, "%s/vocab.txt: path too long", dir);
    char *data = NULL;
    size_t size = 0;
    int rc = en_file_read(path, EN_MAX_VOCAB_BYTES, &data, &size, diag);
    if (rc != 0) return rc;
    if (size >= UINT32_MAX) {
        free(data);
        return en_fail(diag, EN_EVOCAB, "%s: file too large (%zu bytes)", path, size);
    }
    // Lines end at '\n' or '\r'; each terminator becomes the piece's NUL, in place.
    size_t n = 0;
    for (size_t i = 0; i < size; i++) {
        if (data[i] == '\n' || data[i] == '\r') {
            n++;
            if (data[i] == '\r' && i + 1 < size && data[i + 1] == '\n') i++;
        }
    }
    if (size > 0 && data[size - 1] != '\n' && data[size - 1] != '\r')
        n++; // a last line without a newline
    if (n == 0) {
        free(data);
        return en_fail(diag, EN_EVOCAB, "%s: empty vocabulary", path);
    }
    if (n > INT32_MAX / 4) {
        free(data);
        return en_fail(diag, EN_EVOCAB, "%s: too many pieces (%zu)", path, n);
    }
    t->blob = data;
    t->offs = malloc(n * sizeof *t->offs);
    t->lens = malloc(n * sizeof *t->lens);
    if (!t->offs || !t->lens) return en_fail(diag, EN_ENOMEM, "%s: out of memory", path);
    size_t start = 0;
    for (size_t id = 0; id < n; id++) {
        size_t end = start;
        while (end < size && data[end] != '\n' && data[end] != '\r')
            end++;
        size_t next = end + 1;
        if (end + 1 < size && data[end] == '\r' && data[end + 1] == '\n') next++;
        if (end < size) data[end] = '\0';
        t->offs[id] = (uint32_t)start;
        t->lens[id] = (uint32_t)(end - start);
        start = next;
    }
    t->n_pieces = (int32_t)n;
    return en__tok_index(t, path, true, diag);
}

/* ---- Special tokens and templates ------------------------------------------------------- */

int en__tok_add_special(en_tokenizer *t, const char *text, size_t len, int32_t id, bool lstrip,
                        bool rstrip) {
    if (len == 0) return 0; // never matches
    for (int i = 0; i < t->n_specials; i++) {
        en_tok_special *sp = &t->specials[i];
        if (sp->len == len && memcmp(sp->text, text, len) == 0) {
            // Named again (a plain string in tokenizer_config.json after an AddedToken with
            // lstrip in tokenizer.json, say): the same token; what strips stays stripping.
            sp->id = id, sp->lstrip |= lstrip, sp->rstrip |= rstrip;
            return 0;
        }
    }
    en_tok_special *grown = realloc(t->specials, (size_t)(t->n_specials + 1) * sizeof *grown);
    char *copy = malloc(len + 1);
    if (grown) t->specials = grown;
    if (!grown || !copy) {
        free(copy);
        return EN_ENOMEM;
    }
    memcpy(copy, text, len);
    copy[len] = '\0';
    int at = t->n_specials++; // longest first, so the first match at a position is the longest
    while (at > 0 && t->specials[at - 1].len < len) {
        t->specials[at] = t->specials[at - 1];
        at--;
    }
    t->specials[at] = (en_tok_special){copy, len, id, lstrip, rstrip};
    return 0;
}

void en__tok_template(en_tokenizer *t, int32_t cls, int32_t sep, bool roberta) {
    en_tok_item a = {EN_TOK_SEQ_A, 0}, c = {cls, 0}, s0 = {sep, 0};
    t->n_single = 3;
    t->single[0] = c, t->single[1] = a, t->single[2] = s0;
    if (roberta) {
        en_tok_item b = {EN_TOK_SEQ_B, 0};
        t->n_pair = 6;
        memcpy(t->pair, (en_tok_item[]){c, a, s0, s0, b, s0}, 6 * sizeof(en_tok_item));
    } else {
        en_tok_item b = {EN_TOK_SEQ_B, 1}, s1 = {sep, 1};
        t->n_pair = 5;
        memcpy(t->pair, (en_tok_item[]){c, a, s0, b, s1}, 5 * sizeof(en_tok_item));
    }
}

// A boolean option: absent or null keeps `*v`; `*set` (when not NULL) says it was there.
static int config_bool(json_t *root, const char *key, bool *v, bool *set, const char *path,
                       en_diag *diag) {
    json_t *j = root ? json_object_get(root, key) : NULL;
    if (!j || json_is_null(j)) return 0;
    if (!json_is_boolean(j))
        return en_fail(diag, EN_EFORMAT, "%s: \"%s\" must be true, false or null", path, key);
    *v = json_is_true(j);
    if (set) *set = true;
    return 0;
}

/* A special token named by `key` in tokenizer_config.json or else special_tokens_map.json: a
 * string, or an object {"content": string, "lstrip": bool, ...} (a serialized AddedToken).
 * Sets `*name` (borrowed from the JSON, or `def`) and the strip flags. */
static int config_special(json_t *cfg, json_t *map, const char *key, const char *def,
                          const char **name, bool *lstrip, bool *rstrip, const char *dir,
                          en_diag *diag) {
    json_t *j = cfg ? json_object_get(cfg, key) : NULL;
    if (!j || json_is_null(j)) j = map ? json_object_get(map, key) : NULL;
    *name = def, *lstrip = *rstrip = false;
    if (!j || json_is_null(j)) return 0;
    if (json_is_object(j)) {
        *lstrip = json_is_true(json_object_get(j, "lstrip"));
        *rstrip = json_is_true(json_object_get(j, "rstrip"));
        j = json_object_get(j, "content");
    }
    if (!json_is_string(j))
        return en_fail(diag, EN_EFORMAT, "%s/tokenizer_config.json: \"%s\" must be a string", dir,
                       key);
    *name = json_string_value(j);
    return 0;
}

static int load_json(const char *path, json_t **root, en_diag *diag) {
    *root = NULL;
    char *text;
    size_t len;
    int rc = en_file_read(path, EN_MAX_TOKCONFIG_BYTES, &text, &len, diag);
    if (rc == -ENOENT) return 0; // optional
    if (rc != 0) return rc;
    json_error_t jerr;
    *root = json_loadb(text, len, 0, &jerr);
    free(text);
    char why[JSON_ERROR_TEXT_LENGTH];
    if (!*root)
        return en_fail(diag, EN_EFORMAT, "%s:%d:%d: %s", path, jerr.line, jerr.column,
                       en_json_reason(jerr.text, why, sizeof why));
    if (!json_is_object(*root)) return en_fail(diag, EN_EFORMAT, "%s: not a JSON object", path);
    return 0;
}

/* The special tokens of the slow files: [CLS] [SEP] [UNK] [PAD] [MASK] (WordPiece) or
 * <s> </s> <unk> <pad> <mask> (BPE) as tokenizer_config.json / special_tokens_map.json name
 * them; the first three must be pieces (only sep and cls for BPE); all that are pieces are
 * matched in text. tokenizer.json lists its own (en_tokjson.c); these are added to them. */
static int config_specials(en_tokenizer *t, json_t *cfg, json_t *map, bool fast, const char *dir,
                           en_diag *diag) {
    static const char *const keys[] = {"cls_token",  "sep_token", "unk_token", "pad_token",
                                       "mask_token", "bos_token", "eos_token"};
    static const char *const wp[] = {"[CLS]", "[SEP]", "[UNK]", "[PAD]", "[MASK]", NULL, NULL};
    static const char *const bpe[] = {"<s>", "</s>", "<unk>", "<pad>", "<mask>", "<s>", "</s>"};
    bool is_bpe = t->kind == EN_TOK_BPE;
    // added_tokens_decoder {"id": {"content": ..., "lstrip": ...}}: matched in text.
    const char *key;
    json_t *v;
    json_object_foreach(cfg ? json_object_get(cfg, "added_tokens_decoder") : NULL, key, v) {
        json_t *c = json_object_get(v, "content");
        int32_t id = json_is_string(c)
                         ? en__tok_find(t, NULL, json_string_value(c), json_string_length(c))
                         : -1;
        if (id >= 0 && strtol(key, NULL, 10) == id &&
            en__tok_add_special(t, json_string_value(c), json_string_length(c), id,
                                json_is_true(json_object_get(v, "lstrip")),
                                json_is_true(json_object_get(v, "rstrip"))) != 0)
            return en_fail(diag, EN_ENOMEM, "%s: out of memory", dir);
    }
    int32_t found[7];
    for (int k = 0; k < 7; k++) {
        const char *name;
        bool lstrip, rstrip;
        const char *def = fast ? NULL : is_bpe ? bpe[k] : wp[k];
        int rc = config_special(cfg, map, keys[k], def, &name, &lstrip, &rstrip, dir, diag);
        if (rc != 0) return rc;
        // RobertaTokenizer's <mask> takes the space before it.
        if (is_bpe && k == 4 && !fast) lstrip = lstrip || strcmp(name, "<mask>") == 0;
        found[k] = name ? en__tok_find(t, NULL, name, strlen(name)) : -1;
        bool required = !fast && (k < 2 || (k == 2 && !is_bpe));
        if (found[k] < 0 && required)
            return en_fail(diag, EN_EVOCAB, "%s/%s: no %.64s piece (%s)", dir, t->file, name,
                           keys[k]);
        if (found[k] >= 0 &&
            (rc = en__tok_add_special(t, name, strlen(name), found[k], lstrip, rstrip)) != 0)
            return en_fail(diag, rc, "%s: out of memory", dir);
    }
    if (!fast) {
        if (!is_bpe) t->unk_id = found[2];
        en__tok_template(t, found[0], found[1], is_bpe);
    }
    return 0;
}

// tokenizer_config.json and special_tokens_map.json, when present: for WordPiece
// do_lower_case, strip_accents, tokenize_chinese_chars (over tokenizer.json's normalizer, as
// HF's fast tokenizers do), for BPE add_prefix_space; and the special tokens.
static int load_config(en_tokenizer *t, const char *dir, bool fast, en_diag *diag) {
    char path[4096], map_path[4096];
    if (snprintf(path, sizeof path, "%s/tokenizer_config.json", dir) >= (int)sizeof path ||
        snprintf(map_path, sizeof map_path, "%s/special_tokens_map.json", dir) >=
            (int)sizeof map_path)
        return en_fail(diag, -ENAMETOOLONG, "%s/tokenizer_config.json: path too long", dir);
    json_t *root = NULL, *map = NULL;
    int rc = load_json(path, &root, diag);
    if (rc == 0) rc = load_json(map_path, &map, diag);
    bool strip = t->strip_accents, strip_set = false, lower_set = false;
    if (rc == 0 && root && t->kind == EN_TOK_WORDPIECE) {
        rc = config_bool(root, "do_lower_case", &t->lower, &lower_set, path, diag);
        if (rc == 0) rc = config_bool(root, "strip_accents", &strip, &strip_set, path, diag);
        if (rc == 0)
            rc = config_bool(root, "tokenize_chinese_chars", &t->split_cjk, NULL, path, diag);
        bool basic = true;
        if (rc == 0) rc = config_bool(root, "do_basic_tokenize", &basic, NULL, path, diag);
        if (rc == 0 && !basic)
            rc = en_fail(diag, EN_EFORMAT, "%s: do_basic_tokenize false is not supported", path);
        // strip_accents null: accents go with lower-casing (HF's BasicTokenizer).
        if (strip_set)
            t->strip_accents = strip;
        else if (lower_set || !fast)
            t->strip_accents = t->lower;
    }
    if (rc == 0 && root && t->kind == EN_TOK_BPE)
        rc = config_bool(root, "add_prefix_space", &t->add_prefix_space, NULL, path, diag);
    if (rc == 0) rc = config_specials(t, root, map, fast, dir, diag);
    json_decref(root);
    json_decref(map);
    return rc;
}

/* ---- Special tokens in text ------------------------------------------------------------- */

// The code point that ends just before s[end] (start <= end), and its first byte at *at.
static int32_t utf8_prev(const char *s, size_t start, size_t end, size_t *at) {
    size_t p = end - 1;
    while (p > start && end - p < 4 && ((uint8_t)s[p] & 0xc0) == 0x80)
        p--;
    size_t i = p;
    int32_t cp = en__utf8_next((const uint8_t *)s, end, &i);
    *at = p;
    return i == end ? cp : -1;
}

// Pieces of one stretch of text without special tokens, by the tokenizer's algorithm.
static int encode_plain(const en_tokenizer *t, const char *text, size_t len, bool first, size_t cap,
                        scratch *s, i32vec *out) {
    if (len == 0 || out->n >= cap) return 0;
    if (t->kind == EN_TOK_BPE) return en__bpe_segment(t, text, len, first, s, out, cap);
    return tokenize_segment(t, text, len, cap, s, out);
}

// Appends the piece ids of `text` to `out`, stopping at `cap` ids: the text is split at every
// special token it spells (the longest at the leftmost place; with lstrip / rstrip it also takes
// the whitespace on that side), which becomes its id; the rest goes through the algorithm.
static int tokenize_text(const en_tokenizer *t, const char *text, size_t len, size_t cap,
                         scratch *s, i32vec *out) {
    size_t start = 0;
    for (size_t i = 0; i < len && out->n < cap;) {
        const en_tok_special *sp = NULL;
        for (int k = 0; k < t->n_specials && !sp; k++)
            if (t->specials[k].len <= len - i &&
                memcmp(text + i, t->specials[k].text, t->specials[k].len) == 0)
                sp = &t->specials[k];
        if (!sp) {
            i++;
            continue;
        }
        size_t end = i, at;
        while (sp->lstrip && end > start && en__is_white_space(utf8_prev(text, start, end, &at)))
            end = at;
        int rc = encode_plain(t, text + start, end - start, start == 0, cap, s, out);
        if (rc != 0) return rc;
        if (out->n < cap) {
            if ((rc = en__vec_reserve(out, 1)) != 0) return rc;
            out->v[out->n++] = sp->id;
        }
        i += sp->len;
        for (size_t j = i; sp->rstrip && j < len;) {
            if (!en__is_white_space(en__utf8_next((const uint8_t *)text, len, &j))) break;
            i = j;
        }
        start = i;
    }
    return encode_plain(t, text + start, len - start, start == 0, cap, s, out);
}

/* ---- UTF-8 ------------------------------------------------------------------------------ */

// Decodes the code point at s[*i] (RFC 3629: no overlong forms, surrogates or values over
// U+10FFFF) and advances *i past it; on an invalid sequence returns -1 and advances one byte,
// which drops exactly the bytes Python's bytes.decode("utf-8", "ignore") drops.
int32_t en__utf8_next(const uint8_t *s, size_t n, size_t *i) {
    size_t p = *i;
    uint8_t c = s[p];
    *i = p + 1;
    if (c < 0x80) return c;
    int len;
    int32_t cp, min;
    if (c >= 0xc2 && c <= 0xdf)
        len = 2, cp = c & 0x1f, min = 0x80;
    else if (c >= 0xe0 && c <= 0xef)
        len = 3, cp = c & 0x0f, min = 0x800;
    else if (c >= 0xf0 && c <= 0xf4)
        len = 4, cp = c & 0x07, min = 0x10000;
    else
        return -1;
    if (n - p < (size_t)len) return -1;
    for (int k = 1; k < len; k++) {
        if ((s[p + k] & 0xc0) != 0x80) return -1;
        cp = (cp << 6) | (s[p + k] & 0x3f);
    }
    if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) return -1;
    *i = p + (size_t)len;
    return cp;
}

// Writes the UTF-8 of `cp` (a valid code point) at `out`; returns its length.
size_t en__utf8_put(int32_t cp, uint8_t *out) {
    if (cp < 0x80) {
        out[0] = (uint8_t)cp;
        return 1;
    }
    if (cp < 0x800) {
        out[0] = (uint8_t)(0xc0 | (cp >> 6));
        out[1] = (uint8_t)(0x80 | (cp & 0x3f));
        return 2;
    }
    if (cp < 0x10000) {
        out[0] = (uint8_t)(0xe0 | (cp >> 12));
        out[1] = (uint8_t)(0x80 | ((cp >> 6) & 0x3f));
        out[2] = (uint8_t)(0x80 | (cp & 0x3f));
        return 3;
    }
    out[0] = (uint8_t)(0xf0 | (cp >> 18));
    out[1] = (uint8_t)(0x80 | ((cp >> 12) & 0x3f));
    out[2] = (uint8_t)(0x80 | ((cp >> 6) & 0x3f));
    out[3] = (uint8_t)(0x80 | (cp & 0x3f));
    return 4;
}

/* ---- Character classes (HF's _is_whitespace, _is_control, _is_punctuation) -------------- */

static bool is_space(int32_t cp) {
    // U+2028/U+2029 are not spaces to HF but Python's str.split() splits words on them.
    return cp == ' ' || cp == '\t' || cp == '\n' || cp == '\r' || cp == 0x2028 || cp == 0x2029 ||
           utf8proc_category(cp) == UTF8PROC_CATEGORY_ZS;
}

bool en__is_white_space(int32_t cp) {
    return (cp >= 0x9 && cp <= 0xd) || cp == ' ' || cp == 0x85 || cp == 0xa0 || cp == 0x1680 ||
           (cp >= 0x2000 && cp <= 0x200a) || cp == 0x2028 || cp == 0x2029 || cp == 0x202f ||
           cp == 0x205f || cp == 0x3000;
}

static bool is_control(int32_t cp) {
    if (cp == '\t' || cp == '\n' || cp == '\r') return false;
    switch (utf8proc_category(cp)) {
    case UTF8PROC_CATEGORY_CN: // every "C*" category, as HF tests category(c).startswith("C")
    case UTF8PROC_CATEGORY_CC:
    case UTF8PROC_CATEGORY_CF:
    case UTF8PROC_CATEGORY_CS:
    case UTF8PROC_CATEGORY_CO:
        return true;
    default:
        return false;
    }
}

static bool is_punct(int32_t cp) {
    if ((cp >= 33 && cp <= 47) || (cp >= 58 && cp <= 64) || (cp >= 91 && cp <= 96) ||
        (cp >= 123 && cp <= 126))
        return true; // ASCII symbols such as '$' and '^' count as punctuation too
    utf8proc_category_t c = utf8proc_category(cp);
    return c >= UTF8PROC_CATEGORY_PC && c <= UTF8PROC_CATEGORY_PO;
}

// The CJK Unified Ideographs blocks of HF's _is_chinese_char (not Hangul, kana, etc.).
static bool is_cjk(int32_t cp) {
    return (cp >= 0x4e00 && cp <= 0x9fff) || (cp >= 0x3400 && cp <= 0x4dbf) ||
           (cp >= 0x20000 && cp <= 0x2a6df) || (cp >= 0x2a700 && cp <= 0x2b73f) ||
           (cp >= 0x2b740 && cp <= 0x2b81f) || (cp >= 0x2b820 && cp <= 0x2ceaf) ||
           (cp >= 0xf900 && cp <= 0xfaff) || (cp >= 0x2f800 && cp <= 0x2fa1f);
}

// Unicode's Case_Ignorable: categories Mn Me Cf Lm Sk and Word_Break MidLetter, MidNumLet,
// Single_Quote. Only used for the Final_Sigma rule.
static bool is_case_ignorable(int32_t cp) {
    switch (utf8proc_category(cp)) {
    case UTF8PROC_CATEGORY_MN:
    case UTF8PROC_CATEGORY_ME:
    case UTF8PROC_CATEGORY_CF:
    case UTF8PROC_CATEGORY_LM:
    case UTF8PROC_CATEGORY_SK:
        return true;
    default:
        break;
    }
    static const int32_t word_break[] = {0x27,   0x2e,   0x3a,   0xb7,   0x387,  0x55f,
                                         0x5f4,  0x2018, 0x2019, 0x2024, 0x2027, 0xfe13,
                                         0xfe52, 0xfe55, 0xff07, 0xff0e, 0xff1a};
    for (size_t i = 0; i < sizeof word_break / sizeof word_break[0]; i++)
        if (cp == word_break[i]) return true;
    return false;
}

// Unicode's Cased: Lu Ll Lt, anything with a case mapping, and Other_Lowercase /
// Other_Uppercase (listed, as utf8proc has no such property). Only for Final_Sigma.
static bool is_cased(int32_t cp) {
    utf8proc_category_t c = utf8proc_category(cp);
    if (c == UTF8PROC_CATEGORY_LU || c == UTF8PROC_CATEGORY_LL || c == UTF8PROC_CATEGORY_LT)
        return true;
    if (utf8proc_tolower(cp) != cp || utf8proc_toupper(cp) != cp) return true;
    static const int32_t other[][2] = {
        {0xaa, 0xaa},       {0xba, 0xba},       {0x2b0, 0x2b8},     {0x2c0, 0x2c1},
        {0x2e0, 0x2e4},     {0x345, 0x345},     {0x37a, 0x37a},     {0x10fc, 0x10fc},
        {0x1d2c, 0x1d6a},   {0x1d78, 0x1d78},   {0x1d9b, 0x1dbf},   {0x2071, 0x2071},
        {0x207f, 0x207f},   {0x2090, 0x209c},   {0x2160, 0x217f},   {0x24b6, 0x24e9},
        {0x2c7c, 0x2c7d},   {0xa69c, 0xa69d},   {0xa770, 0xa770},   {0xa7f2, 0xa7f4},
        {0xa7f8, 0xa7f9},   {0xab5c, 0xab5f},   {0xab69, 0xab69},   {0x10780, 0x10780},
        {0x10783, 0x10785}, {0x10787, 0x107b0}, {0x107b2, 0x107ba}, {0x1e030, 0x1e06d},
        {0x1f130, 0x1f149}, {0x1f150, 0x1f169}, {0x1f170, 0x1f189},
    };
    for (size_t i = 0; i < sizeof other / sizeof other[0]; i++)
        if (cp >= other[i][0] && cp <= other[i][1]) return true;
    return false;
}

/* ---- Basic tokenizer and WordPiece ------------------------------------------------------ */

int en__vec_reserve(i32vec *v, size_t extra) {
    if (v->cap - v->n >= extra) return 0;
    size_t cap = v->cap ? v->cap : 64;
    while (cap - v->n < extra) {
        if (cap > SIZE_MAX / 2 / sizeof *v->v) return EN_ENOMEM;
        cap *= 2;
    }
    int32_t *nv = realloc(v->v, cap * sizeof *nv);
    if (!nv) return EN_ENOMEM;
    v->v = nv;
    v->cap = cap;
    return 0;
}

// Makes s->u8 hold at least `n` bytes.
static int u8_reserve(scratch *s, size_t n) {
    if (s->u8cap >= n) return 0;
    size_t cap = s->u8cap ? s->u8cap : 256;
    while (cap < n) {
        if (cap > SIZE_MAX / 2) return EN_ENOMEM;
        cap *= 2;
    }
    uint8_t *nb = realloc(s->u8, cap);
    if (!nb) return EN_ENOMEM;
    s->u8 = nb;
    s->u8cap = cap;
    return 0;
}

// Runs utf8proc over the word in `in` (`options`: NFC or NFD) into `out`.
static int normalize(scratch *s, const i32vec *in, i32vec *out, utf8proc_option_t options) {
    int rc = u8_reserve(s, in->n * 4 + 1);
    if (rc != 0) return rc;
    size_t len = 0;
    for (size_t i = 0; i < in->n; i++)
        len += en__utf8_put(in->v[i], s->u8 + len);
    out->n = 0;
    // Room for the usual case up front (and never a NULL buffer for utf8proc).
    if ((rc = en__vec_reserve(out, in->n * 2 + 4)) != 0) return rc;
    for (;;) {
        utf8proc_ssize_t got = utf8proc_decompose(s->u8, (utf8proc_ssize_t)len, out->v,
                                                  (utf8proc_ssize_t)out->cap, options);
        if (got < 0) return EN_EINPUT; // cannot happen: the input is valid UTF-8
        if ((size_t)got <= out->cap) {
            out->n = (size_t)got;
            break;
        }
        if ((rc = en__vec_reserve(out, (size_t)got)) != 0) return rc;
    }
    if (options & UTF8PROC_COMPOSE) {
        utf8proc_ssize_t got = utf8proc_normalize_utf32(out->v, (utf8proc_ssize_t)out->n, options);
        if (got < 0) return EN_EINPUT;
        out->n = (size_t)got;
    }
    return 0;
}

// Python's str.lower() of one word: simple lower-case mappings, except U+0130 -> "i\u0307"
// (SpecialCasing) and capital sigma -> final sigma at the end of a word (Final_Sigma, as
// CPython's handle_capital_sigma() applies it).
static int lower_word(const i32vec *in, i32vec *out, bool final_sigma) {
    out->n = 0;
    int rc = en__vec_reserve(out, in->n * 2);
    if (rc != 0) return rc;
    for (size_t i = 0; i < in->n; i++) {
        int32_t cp = in->v[i];
        if (cp < 0x80) {
            out->v[out->n++] = cp >= 'A' && cp <= 'Z' ? cp + 32 : cp;
        } else if (cp == 0x130) {
            out->v[out->n++] = 'i';
            out->v[out->n++] = 0x307;
        } else if (cp == 0x3a3 && final_sigma) {
            // Final when a cased letter comes before and none after, skipping case-ignorables.
            size_t j = i;
            while (j > 0 && is_case_ignorable(in->v[j - 1]))
                j--;
            bool final = j > 0 && is_cased(in->v[j - 1]);
            for (j = i + 1; final && j < in->n && is_case_ignorable(in->v[j]); j++) {
            }
            if (final && j < in->n && is_cased(in->v[j])) final = false;
            out->v[out->n++] = final ? 0x3c2 : 0x3c3;
        } else {
            out->v[out->n++] = utf8proc_tolower(cp);
        }
    }
    return 0;
}

// Appends WordPiece ids of one basic token (`cps[0..n)`) to `out`, at most up to `cap` ids:
// the longest vocabulary piece from the start, then the longest "##" piece from where it
// ended, and so on; [UNK] alone when some position matches nothing or n > max_chars.
static int wordpiece(const en_tokenizer *t, const int32_t *cps, size_t n, scratch *s, i32vec *out,
                     size_t cap) {
    int32_t local[EN_TOK_MAX_WORD_CHARS];
    size_t nl = 0;
    if (n > (size_t)t->max_chars) {
        local[nl++] = t->unk_id;
    } else {
        uint32_t off[EN_TOK_MAX_WORD_CHARS + 1]; // byte offset of each character
        int rc = u8_reserve(s, n * 4);
        if (rc != 0) return rc;
        off[0] = 0;
        for (size_t i = 0; i < n; i++)
            off[i + 1] = off[i] + (uint32_t)en__utf8_put(cps[i], s->u8 + off[i]);
        for (size_t start = 0; start < n;) {
            int32_t id = -1;
            size_t end = n;
            for (; end > start; end--) {
                id = en__tok_find(t, start > 0 ? "##" : NULL, (const char *)s->u8 + off[start],
                                  off[end] - off[start]);
                if (id >= 0) break;
            }
            if (id < 0) {
                local[0] = t->unk_id;
                nl = 1;
                break;
            }
            local[nl++] = id;
            start = end;
        }
    }
    if (out->n + nl > cap) nl = cap - out->n;
    int rc = en__vec_reserve(out, nl);
    if (rc != 0) return rc;
    memcpy(out->v + out->n, local, nl * sizeof *local);
    out->n += nl;
    return 0;
}

// One whitespace-separated word: NFC, then lower-casing and/or NFD with marks (Mn) removed,
// then a split around each punctuation character, then WordPiece on each part.
static int process_word(const en_tokenizer *t, const int32_t *cps, size_t n, scratch *s,
                        i32vec *out, size_t cap) {
    i32vec *w = &s->w1, *tmp = &s->w2;
    w->n = 0;
    int rc = en__vec_reserve(w, n);
    if (rc != 0) return rc;
    memcpy(w->v, cps, n * sizeof *cps);
    w->n = n;
    bool ascii = true;
    for (size_t i = 0; i < n; i++)
        ascii = ascii && cps[i] < 0x80;
    // ASCII text is its own NFC and NFD: skip utf8proc for it.
    if (!ascii && t->nfc) {
        // HF normalizes the whole text to NFC before splitting it into words; per word gives
        // the same as spaces neither compose nor reorder.
        if ((rc = normalize(s, w, tmp, UTF8PROC_STABLE | UTF8PROC_COMPOSE)) != 0) return rc;
        i32vec *x = w;
        w = tmp, tmp = x;
    }
    if (t->lower) {
        if ((rc = lower_word(w, tmp, t->final_sigma)) != 0) return rc;
        i32vec *x = w;
        w = tmp, tmp = x;
    }
    if (t->strip_accents && !ascii) {
        if ((rc = normalize(s, w, tmp, UTF8PROC_STABLE | UTF8PROC_DECOMPOSE)) != 0) return rc;
        size_t k = 0;
        for (size_t i = 0; i < tmp->n; i++)
            if (utf8proc_category(tmp->v[i]) != UTF8PROC_CATEGORY_MN) tmp->v[k++] = tmp->v[i];
        tmp->n = k;
        i32vec *x = w;
        w = tmp, tmp = x;
    }
    // Lower-casing and NFD never create spaces, so what is left is one word.
    for (size_t i = 0; i < w->n && out->n < cap;) {
        size_t j = i + 1;
        if (!is_punct(w->v[i]))
            while (j < w->n && !is_punct(w->v[j]))
                j++;
        if ((rc = wordpiece(t, w->v + i, j - i, s, out, cap)) != 0) return rc;
        i = j;
    }
    return 0;
}

// Appends the WordPiece ids of text[0..len) to `out`, stopping at `cap` ids.
static int tokenize_segment(const en_tokenizer *t, const char *text, size_t len, size_t cap,
                            scratch *s, i32vec *out) {
    // Clean-up: drop invalid bytes, NUL, U+FFFD and control characters; whitespace becomes
    // ' '; CJK ideographs get a space on each side so that each is a word.
    const uint8_t *u = (const uint8_t *)text;
    s->text.n = 0;
    int rc = en__vec_reserve(&s->text, len * 3 + 1); // at most 3 code points per byte
    if (rc != 0) return rc;
    int32_t *v = s->text.v;
    size_t n = 0;
    for (size_t i = 0; i < len;) {
        int32_t cp = en__utf8_next(u, len, &i);
        if (cp <= 0 || cp == 0xfffd) continue;
        if (is_space(cp)) {
            v[n++] = ' ';
        } else if (is_control(cp)) {
            continue;
        } else if (t->split_cjk && is_cjk(cp)) {
            v[n++] = ' ';
            v[n++] = cp;
            v[n++] = ' ';
        } else {
            v[n++] = cp;
        }
    }
    s->text.n = n;
    for (size_t i = 0; i < n && out->n < cap;) {
        if (v[i] == ' ') {
            i++;
            continue;
        }
        size_t j = i;
        while (j < n && v[j] != ' ')
            j++;
        if ((rc = process_word(t, v + i, j - i, s, out, cap)) != 0) return rc;
        i = j;
    }
    return 0;
}
