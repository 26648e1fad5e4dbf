/* BERT WordPiece tokenizer, step for step the one of Hugging Face's slow BertTokenizer
 * (BasicTokenizer + WordpieceTokenizer). Unicode data (categories, NFC/NFD, simple lower-case
 * mappings) comes from utf8proc; the few places where Python's str.lower()/str.split() differ
 * from those (full lower-casing of U+0130, the Final_Sigma rule, U+2028/U+2029 splitting words)
 * are handled here. Text is processed as arrays of code points, one word at a time; pieces are
 * looked up in an open-addressing hash table built at load time. Nothing is written after
 * load, so one tokenizer serves any number of threads. */
#include "en_tokenizer.h"

#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>
#include <utf8proc.h>

#include "en_file.h"

enum {
    MAX_WORD_CHARS = 100, // HF's max_input_chars_per_word: longer words become [UNK]
};

struct en_tokenizer {
    char *blob;         // every piece, NUL-terminated, back to back (owned)
    uint32_t *offs;     // [n_pieces] offset of each piece in blob (owned)
    uint32_t *lens;     // [n_pieces] byte length of each piece (owned)
    int32_t n_pieces;   // number of pieces (lines of vocab.txt)
    int32_t *slots;     // [mask + 1] piece id per slot, -1 when empty (owned)
    uint32_t mask;      // table size - 1 (a power of two at least twice n_pieces)
    bool lower;         // do_lower_case
    bool strip_accents; // strip_accents, or do_lower_case when null
    bool split_cjk;     // tokenize_chinese_chars
    int32_t cls_id, sep_id, unk_id;
};

// A growable array of code points or piece ids.
typedef struct i32vec {
    int32_t *v;
    size_t n, cap;
} i32vec;

// Per-call buffers, so that en_tokenize() keeps no state in the tokenizer.
typedef struct scratch {
    i32vec text;   // the cleaned text of one segment, words separated by ' '
    i32vec w1, w2; // one word through NFC, lower-casing, NFD
    uint8_t *u8;   // UTF-8 of one word (for utf8proc and for vocabulary lookups)
    size_t u8cap;
} scratch;

static int load_vocab(en_tokenizer *t, const char *dir, en_diag *diag);
static int load_config(en_tokenizer *t, const char *dir, en_diag *diag);
static int32_t vocab_find(const en_tokenizer *t, const char *s, size_t len, bool cont);
static int tokenize_segment(const en_tokenizer *t, const char *text, size_t cap, scratch *s,
                            i32vec *out);

int en_tokenizer_load(const char *dir, en_tokenizer **out, en_diag *diag) {
    if (!dir || !out) return en_fail(diag, EN_EINPUT, "en_tokenizer_load: NULL argument");
    *out = NULL;
    en_tokenizer *t = calloc(1, sizeof *t);
    if (!t) return en_fail(diag, EN_ENOMEM, "%s: out of memory", dir);
    t->lower = t->strip_accents = t->split_cjk = true;
    int rc = load_vocab(t, dir, diag);
    if (rc == 0) rc = load_config(t, dir, diag);
    if (rc != 0) {
        en_tokenizer_free(t);
        return rc;
    }
    *out = t;
    return 0;
}

void en_tokenizer_free(en_tokenizer *t) {
    if (!t) return;
    free(t->blob);
    free(t->offs);
    free(t->lens);
    free(t->slots);
    free(t);
}

int en_tokenizer_vocab_size(const en_tokenizer *t) {
    return t ? t->n_pieces : 0;
}

const char *en_tokenizer_piece(const en_tokenizer *t, int32_t id) {
    if (!t || id < 0 || id >= t->n_pieces) return NULL;
    return t->blob + t->offs[id];
}

int en_tokenize(const en_tokenizer *t, const char *text, const char *text_pair, int max_len,
                int32_t *ids, int32_t *type_ids, int *n_out, en_diag *diag) {
    if (!t || !text || !ids || !type_ids || !n_out)
        return en_fail(diag, EN_EINPUT, "en_tokenize: NULL argument");
    *n_out = 0;
    int specials = text_pair ? 3 : 2;
    if (max_len < specials)
        return en_fail(diag, EN_ERANGE, "max_len %d is below %d ([CLS] and [SEP]%s)", max_len,
                       specials, text_pair ? " twice" : "");
    // Room for word pieces. Stopping each segment at this many pieces gives the same result
    // as truncating the full segments: longest-first never keeps more than `budget` of one.
    size_t budget = (size_t)(max_len - specials);
    scratch s = {0};
    i32vec a = {0}, b = {0};
    int rc = tokenize_segment(t, text, budget, &s, &a);
    if (rc == 0 && text_pair) rc = tokenize_segment(t, text_pair, budget, &s, &b);
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
        ids[n] = t->cls_id, type_ids[n++] = 0;
        for (size_t i = 0; i < la; i++)
            ids[n] = a.v[i], type_ids[n++] = 0;
        ids[n] = t->sep_id, type_ids[n++] = 0;
        if (text_pair) {
            for (size_t i = 0; i < lb; i++)
                ids[n] = b.v[i], type_ids[n++] = 1;
            ids[n] = t->sep_id, type_ids[n++] = 1;
        }
        *n_out = n;
    }
    free(a.v);
    free(b.v);
    free(s.text.v);
    free(s.w1.v);
    free(s.w2.v);
    free(s.u8);
    return rc;
}

/* ---- Loading ---------------------------------------------------------------------------- */

static bool utf8_valid(const uint8_t *s, size_t n);

static uint64_t fnv1a(uint64_t h, const void *p, size_t n) {
    const uint8_t *b = p;
    for (size_t i = 0; i < n; i++)
        h = (h ^ b[i]) * 0x100000001b3ull;
    return h;
}

static const uint64_t FNV_BASIS = 0xcbf29ce484222325ull;

// Id of the piece `s[0..len)`, or of "##" + that when `cont`; -1 when absent.
static int32_t vocab_find(const en_tokenizer *t, const char *s, size_t len, bool cont) {
    uint64_t h = fnv1a(cont ? fnv1a(FNV_BASIS, "##", 2) : FNV_BASIS, s, len);
    size_t want = len + (cont ? 2 : 0);
    for (uint32_t i = (uint32_t)h & t->mask;; i = (i + 1) & t->mask) {
        int32_t id = t->slots[i];
        if (id < 0) return -1;
        const char *p = t->blob + t->offs[id];
        if (t->lens[id] != want) continue;
        if (cont && (p[0] != '#' || p[1] != '#')) continue;
        if (memcmp(p + (cont ? 2 : 0), s, len) == 0) return id;
    }
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
    uint32_t tsize = 16;
    while (tsize < 2 * n)
        tsize *= 2;
    t->blob = data;
    t->offs = malloc(n * sizeof *t->offs);
    t->lens = malloc(n * sizeof *t->lens);
    t->slots = malloc((size_t)tsize * sizeof *t->slots);
    if (!t->offs || !t->lens || !t->slots)
        return en_fail(diag, EN_ENOMEM, "%s: out of memory", path);
    memset(t->slots, 0xff, (size_t)tsize * sizeof *t->slots); // all -1
    t->mask = tsize - 1;
    size_t start = 0;
    for (size_t id = 0; id < n; id++) {
        size_t end = start;
        while (end < size && data[end] != '\n' && data[end] != '\r')
            end++;
        size_t next = end + 1;
        if (end + 1 < size && data[end] == '\r' && data[end + 1] == '\n') next++;
        if (end < size) data[end] = '\0';
        size_t len = end - start;
        if (memchr(data + start, '\0', len) != NULL)
            return en_fail(diag, EN_EVOCAB, "%s: line %zu: NUL byte in piece", path, id + 1);
        if (!utf8_valid((const uint8_t *)data + start, len))
            return en_fail(diag, EN_EVOCAB, "%s: line %zu: invalid UTF-8", path, id + 1);
        t->offs[id] = (uint32_t)start;
        t->lens[id] = (uint32_t)len;
        int32_t dup = vocab_find(t, data + start, len, false);
        if (dup >= 0) {
            // HF would let the later line win silently; a duplicate means a broken file.
            char ex[4 * EN_EXCERPT_MAX + 8];
            return en_fail(diag, EN_EVOCAB, "%s: line %zu: piece %s already on line %d", path,
                           id + 1, en_excerpt(data + start, len, ex, sizeof ex), dup + 1);
        }
        uint32_t slot = (uint32_t)fnv1a(FNV_BASIS, data + start, len) & t->mask;
        while (t->slots[slot] >= 0)
            slot = (slot + 1) & t->mask;
        t->slots[slot] = (int32_t)id;
        t->n_pieces = (int32_t)id + 1;
        start = next;
    }
    return 0;
}

// A boolean option: absent or null keeps `*v`.
static int config_bool(json_t *root, const char *key, bool *v, const char *path, en_diag *diag) {
    json_t *j = json_object_get(root, key);
    if (!j || json_is_null(j)) return 0;
    if (!json_is_boolean(j))
        return en_fail(diag, EN_EFORMAT, "%s: \"%s\" must be true, false or null", path, key);
    *v = json_is_true(j);
    return 0;
}

// Sets `*id` to the piece named by `key` in the config (a string, or an object
// {"content": string} as a serialized AddedToken), or by `def` when the key is absent or null.
static int config_special(const en_tokenizer *t, json_t *root, const char *key, const char *def,
                          int32_t *id, const char *dir, en_diag *diag) {
    json_t *j = root ? json_object_get(root, key) : NULL;
    const char *name = def;
    if (j && !json_is_null(j)) {
        if (json_is_object(j)) j = json_object_get(j, "content");
        if (!json_is_string(j))
            return en_fail(diag, EN_EFORMAT, "%s/tokenizer_config.json: \"%s\" must be a string",
                           dir, key);
        name = json_string_value(j);
    }
    *id = vocab_find(t, name, strlen(name), false);
    if (*id < 0)
        return en_fail(diag, EN_EVOCAB, "%s/vocab.txt: no %.64s piece (%s)", dir, name, key);
    return 0;
}

// tokenizer_config.json, when present: do_lower_case, strip_accents, tokenize_chinese_chars
// and the names of the [CLS], [SEP] and [UNK] pieces; then looks those pieces up.
static int load_config(en_tokenizer *t, const char *dir, en_diag *diag) {
    char path[4096];
    if (snprintf(path, sizeof path, "%s/tokenizer_config.json", dir) >= (int)sizeof path)
        return en_fail(diag, -ENAMETOOLONG, "%s/tokenizer_config.json: path too long", dir);
    json_t *root = NULL;
    char *text;
    size_t len;
    int frc = en_file_read(path, EN_MAX_TOKCONFIG_BYTES, &text, &len, diag);
    if (frc == 0) {
        json_error_t jerr;
        root = json_loadb(text, len, 0, &jerr);
        free(text);
        char why[JSON_ERROR_TEXT_LENGTH];
        if (!root)
            return en_fail(diag, EN_EFORMAT, "%s:%d:%d: %s", path, jerr.line, jerr.column,
                           en_json_reason(jerr.text, why, sizeof why));
    } else if (frc != -ENOENT) { // no file: BertTokenizer's defaults
        return frc;
    }
    int rc = 0;
    bool strip = t->lower, strip_set = false;
    if (root) {
        if (!json_is_object(root)) rc = en_fail(diag, EN_EFORMAT, "%s: not a JSON object", path);
        if (rc == 0) rc = config_bool(root, "do_lower_case", &t->lower, path, diag);
        json_t *js = json_object_get(root, "strip_accents");
        if (rc == 0 && js && !json_is_null(js)) {
            strip_set = true;
            rc = config_bool(root, "strip_accents", &strip, path, diag);
        }
        if (rc == 0) rc = config_bool(root, "tokenize_chinese_chars", &t->split_cjk, path, diag);
        bool basic = true;
        if (rc == 0) rc = config_bool(root, "do_basic_tokenize", &basic, path, diag);
        if (rc == 0 && !basic)
            rc = en_fail(diag, EN_EFORMAT, "%s: do_basic_tokenize false is not supported", path);
    }
    // strip_accents null: accents go with lower-casing (HF's BasicTokenizer).
    t->strip_accents = strip_set ? strip : t->lower;
    if (rc == 0) rc = config_special(t, root, "cls_token", "[CLS]", &t->cls_id, dir, diag);
    if (rc == 0) rc = config_special(t, root, "sep_token", "[SEP]", &t->sep_id, dir, diag);
    if (rc == 0) rc = config_special(t, root, "unk_token", "[UNK]", &t->unk_id, dir, diag);
    json_decref(root);
    return rc;
}

/* ---- UTF-8 ------------------------------------------------------------------------------ */

// Decodes the code point at s[*i] (RFC 3629: no overlong forms, surrogates or values over
// U+10FFFF) and advances *i past it; on an invalid sequence returns -1 and advances one byte,
// which drops exactly the bytes Python's bytes.decode("utf-8", "ignore") drops.
static int32_t utf8_next(const uint8_t *s, size_t n, size_t *i) {
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

static bool utf8_valid(const uint8_t *s, size_t n) {
    for (size_t i = 0; i < n;)
        if (utf8_next(s, n, &i) < 0) return false;
    return true;
}

// Writes the UTF-8 of `cp` (a valid code point) at `out`; returns its length.
static size_t utf8_put(int32_t cp, uint8_t *out) {
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

static int vec_reserve(i32vec *v, size_t extra) {
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
        len += utf8_put(in->v[i], s->u8 + len);
    out->n = 0;
    // Room for the usual case up front (and never a NULL buffer for utf8proc).
    if ((rc = vec_reserve(out, in->n * 2 + 4)) != 0) return rc;
    for (;;) {
        utf8proc_ssize_t got = utf8proc_decompose(s->u8, (utf8proc_ssize_t)len, out->v,
                                                  (utf8proc_ssize_t)out->cap, options);
        if (got < 0) return EN_EINPUT; // cannot happen: the input is valid UTF-8
        if ((size_t)got <= out->cap) {
            out->n = (size_t)got;
            break;
        }
        if ((rc = vec_reserve(out, (size_t)got)) != 0) return rc;
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
static int lower_word(const i32vec *in, i32vec *out) {
    out->n = 0;
    int rc = vec_reserve(out, in->n * 2);
    if (rc != 0) return rc;
    for (size_t i = 0; i < in->n; i++) {
        int32_t cp = in->v[i];
        if (cp < 0x80) {
            out->v[out->n++] = cp >= 'A' && cp <= 'Z' ? cp + 32 : cp;
        } else if (cp == 0x130) {
            out->v[out->n++] = 'i';
            out->v[out->n++] = 0x307;
        } else if (cp == 0x3a3) {
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
// ended, and so on; [UNK] alone when some position matches nothing or n > 100.
static int wordpiece(const en_tokenizer *t, const int32_t *cps, size_t n, scratch *s, i32vec *out,
                     size_t cap) {
    int32_t local[MAX_WORD_CHARS];
    size_t nl = 0;
    if (n > MAX_WORD_CHARS) {
        local[nl++] = t->unk_id;
    } else {
        uint32_t off[MAX_WORD_CHARS + 1]; // byte offset of each character
        int rc = u8_reserve(s, n * 4);
        if (rc != 0) return rc;
        off[0] = 0;
        for (size_t i = 0; i < n; i++)
            off[i + 1] = off[i] + (uint32_t)utf8_put(cps[i], s->u8 + off[i]);
        for (size_t start = 0; start < n;) {
            int32_t id = -1;
            size_t end = n;
            for (; end > start; end--) {
                id = vocab_find(t, (const char *)s->u8 + off[start], off[end] - off[start],
                                start > 0);
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
    int rc = vec_reserve(out, nl);
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
    int rc = vec_reserve(w, n);
    if (rc != 0) return rc;
    memcpy(w->v, cps, n * sizeof *cps);
    w->n = n;
    bool ascii = true;
    for (size_t i = 0; i < n; i++)
        ascii = ascii && cps[i] < 0x80;
    // ASCII text is its own NFC and NFD: skip utf8proc for it.
    if (!ascii) {
        // HF normalizes the whole text to NFC before splitting it into words; per word gives
        // the same as spaces neither compose nor reorder.
        if ((rc = normalize(s, w, tmp, UTF8PROC_STABLE | UTF8PROC_COMPOSE)) != 0) return rc;
        i32vec *x = w;
        w = tmp, tmp = x;
    }
    if (t->lower) {
        if ((rc = lower_word(w, tmp)) != 0) return rc;
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

// Appends the WordPiece ids of `text` to `out`, stopping at `cap` ids.
static int tokenize_segment(const en_tokenizer *t, const char *text, size_t cap, scratch *s,
                            i32vec *out) {
    // Clean-up: drop invalid bytes, NUL, U+FFFD and control characters; whitespace becomes
    // ' '; CJK ideographs get a space on each side so that each is a word.
    const uint8_t *u = (const uint8_t *)text;
    size_t len = strlen(text);
    s->text.n = 0;
    int rc = vec_reserve(&s->text, len * 3 + 1); // at most 3 code points per byte
    if (rc != 0) return rc;
    int32_t *v = s->text.v;
    size_t n = 0;
    for (size_t i = 0; i < len;) {
        int32_t cp = utf8_next(u, len, &i);
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
