/* Byte-level BPE (GPT-2, RoBERTa), as Hugging Face's RobertaTokenizer and its tokenizer.json
 * pipeline (ByteLevel pre-tokenizer + BPE model) compute it:
 * 1. the text is split by GPT-2's pattern
 *    's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+
 *    (leftmost alternative first, each greedy; \s is Unicode's White_Space);
 * 2. each pre-token's UTF-8 bytes become printable characters (GPT-2's bytes_to_unicode), each
 *    one a piece of the vocabulary;
 * 3. adjacent pieces are merged, the pair of lowest rank first (leftmost among equals), until no
 *    pair is in the merges: a binary heap of candidate pairs over a linked list of symbols, so a
 *    word of m bytes takes O(m log m), however long. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <utf8proc.h>

#include "en_tok_internal.h"

#define MAX_VOCAB_FILE_BYTES (256u << 20)

/* A symbol of the word being merged: its piece and its neighbours (-1: none). */
enum { SYM_ID, SYM_PREV, SYM_NEXT, SYM_FIELDS };
/* A heap entry: a candidate merge of the symbols at `left` and `right`, valid while both still
 * hold the ids they had when it was pushed. */
enum { HP_RANK, HP_LEFT, HP_RIGHT, HP_LID, HP_RID, HP_FIELDS };

static int32_t byte_char(int b);
static const en_tok_merge *merge_find(const en_tokenizer *t, int32_t a, int32_t b);
static int bpe_word(const en_tokenizer *t, const uint8_t *bytes, size_t n, en_tok_scratch *s,
                    en_i32vec *out, size_t cap);
static size_t pretoken_end(const int32_t *cp, size_t n, size_t i);

int en__bpe_bytes(en_tokenizer *t, const char *what, en_diag *diag) {
    for (int b = 0; b < 256; b++) {
        uint8_t u8[4];
        size_t len = en__utf8_put(byte_char(b), u8);
        t->byte_id[b] = en__tok_find(t, NULL, (const char *)u8, len);
        if (t->byte_id[b] < 0)
            return en_fail(diag, EN_EVOCAB,
                           "%s: no piece for byte 0x%02x ('%.*s'): a byte-level BPE vocabulary "
                           "has all 256",
                           what, b, (int)len, (const char *)u8);
    }
    return 0;
}

int en__bpe_init_merges(en_tokenizer *t, size_t n) {
    uint32_t size = 16;
    while (size < 2 * n && size < (1u << 30))
        size *= 2;
    free(t->merges);
    t->merges = malloc((size_t)size * sizeof *t->merges);
    if (!t->merges) return EN_ENOMEM;
    for (uint32_t i = 0; i < size; i++)
        t->merges[i].key = UINT64_MAX;
    t->merge_mask = size - 1;
    return 0;
}

int en__bpe_add_merge(en_tokenizer *t, const char *a, size_t alen, const char *b, size_t blen,
                      uint32_t rank, const char *what, en_diag *diag) {
    char *ab = malloc(alen + blen + 1);
    if (!ab) return en_fail(diag, EN_ENOMEM, "%s: out of memory", what);
    memcpy(ab, a, alen);
    memcpy(ab + alen, b, blen);
    int32_t ida = en__tok_find(t, NULL, a, alen), idb = en__tok_find(t, NULL, b, blen);
    int32_t merged = en__tok_find(t, NULL, ab, alen + blen);
    int rc = 0;
    if (ida < 0 || idb < 0 || merged < 0) {
        const char *which = ida < 0 ? a : idb < 0 ? b : ab;
        int wlen = (int)(ida < 0 ? alen : idb < 0 ? blen : alen + blen);
        rc = en_fail(diag, EN_EVOCAB,
                     "%s: merge %u (\"%.*s %.*s\"): \"%.*s\" is not in the "
                     "vocabulary",
                     what, rank + 1, (int)(alen > 64 ? 64 : alen), a, (int)(blen > 64 ? 64 : blen),
                     b, wlen > 64 ? 64 : wlen, which);
    }
    free(ab);
    if (rc != 0) return rc;
    uint64_t key = (uint64_t)(uint32_t)ida << 32 | (uint32_t)idb;
    uint32_t i = (uint32_t)((key * 0x9e3779b97f4a7c15ull) >> 32) & t->merge_mask;
    while (t->merges[i].key != UINT64_MAX && t->merges[i].key != key)
        i = (i + 1) & t->merge_mask;
    t->merges[i] = (en_tok_merge){key, rank, merged}; // a later duplicate wins, as in HF
    return 0;
}

/* vocab.json and merges.txt: merges one a line "a b", an optional "#version" first line. */
int en__bpe_load_slow(en_tokenizer *t, const char *dir, en_diag *diag) {
    char path[4096];
    snprintf(path, sizeof path, "%s/vocab.json", dir);
    char *data = NULL;
    size_t size = 0;
    int rc = en__read_file(path, MAX_VOCAB_FILE_BYTES, &data, &size);
    if (rc != 0) return en_fail(diag, rc, "%s: %s", path, en_strerror(rc));
    json_error_t jerr;
    json_t *vocab = json_loadb(data, size, JSON_REJECT_DUPLICATES, &jerr);
    free(data);
    if (!vocab) return en_fail(diag, EN_EFORMAT, "%s:%d: %s", path, jerr.line, jerr.text);
    rc = en__tok_vocab_json(t, vocab, NULL, path, diag);
    json_decref(vocab);
    if (rc != 0) return rc;
    snprintf(path, sizeof path, "%s/merges.txt", dir);
    if ((rc = en__read_file(path, MAX_VOCAB_FILE_BYTES, &data, &size)) != 0)
        return en_fail(diag, rc, "%s: %s", path, en_strerror(rc));
    size_t lines = 1;
    for (size_t i = 0; i < size; i++)
        lines += data[i] == '\n';
    if ((rc = en__bpe_init_merges(t, lines)) != 0) {
        free(data);
        return en_fail(diag, rc, "%s: out of memory", path);
    }
    uint32_t rank = 0;
    size_t line = 0;
    for (char *p = data; rc == 0 && p < data + size;) {
        char *end = memchr(p, '\n', (size_t)(data + size - p));
        if (!end) end = data + size;
        size_t len = (size_t)(end - p);
        if (len > 0 && p[len - 1] == '\r') len--;
        line++;
        if (len > 0 && !(line == 1 && len >= 8 && memcmp(p, "#version", 8) == 0)) {
            char *sp = memchr(p, ' ', len);
            if (!sp || sp == p || sp + 1 == p + len ||
                memchr(sp + 1, ' ', (size_t)(p + len - sp - 1)))
                rc = en_fail(diag, EN_EVOCAB, "%s: line %zu: not two pieces separated by a space",
                             path, line);
            else
                rc = en__bpe_add_merge(t, p, (size_t)(sp - p), sp + 1, (size_t)(p + len - sp - 1),
                                       rank++, path, diag);
        }
        p = end + 1;
    }
    free(data);
    if (rc == 0) rc = en__bpe_bytes(t, dir, diag);
    return rc;
}

int en__bpe_segment(const en_tokenizer *t, const char *text, size_t len, bool first,
                    en_tok_scratch *s, en_i32vec *out, size_t cap) {
    // Code points (invalid bytes dropped), with a space in front when add_prefix_space says so.
    s->text.n = 0;
    int rc = en__vec_reserve(&s->text, len + 1);
    if (rc != 0) return rc;
    int32_t *cp = s->text.v;
    size_t n = 0;
    for (size_t i = 0; i < len;) {
        int32_t c = en__utf8_next((const uint8_t *)text, len, &i);
        if (c >= 0) cp[n++] = c;
    }
    if (first && t->add_prefix_space && n > 0 && !en__is_white_space(cp[0])) {
        memmove(cp + 1, cp, n * sizeof *cp);
        cp[0] = ' ';
        n++;
    }
    for (size_t i = 0; i < n && out->n < cap;) {
        size_t j = pretoken_end(cp, n, i);
        if (s->u8cap < (j - i) * 4) {
            uint8_t *nb = realloc(s->u8, (j - i) * 4);
            if (!nb) return EN_ENOMEM;
            s->u8 = nb, s->u8cap = (j - i) * 4;
        }
        size_t nb = 0;
        for (size_t k = i; k < j; k++)
            nb += en__utf8_put(cp[k], s->u8 + nb);
        if ((rc = bpe_word(t, s->u8, nb, s, out, cap)) != 0) return rc;
        i = j;
    }
    return 0;
}

// --- helpers ---

// GPT-2's bytes_to_unicode: printable Latin-1 bytes stand for themselves, the others (controls,
// space, DEL, NBSP, soft hyphen) for U+0100 onwards in byte order.
static int32_t byte_char(int b) {
    if ((b >= 33 && b <= 126) || (b >= 161 && b <= 172) || (b >= 174 && b <= 255)) return b;
    int k = 0;
    for (int x = 0; x < b; x++)
        k += !((x >= 33 && x <= 126) || (x >= 161 && x <= 172) || (x >= 174 && x <= 255));
    return 256 + k;
}

static const en_tok_merge *merge_find(const en_tokenizer *t, int32_t a, int32_t b) {
    uint64_t key = (uint64_t)(uint32_t)a << 32 | (uint32_t)b;
    uint32_t i = (uint32_t)((key * 0x9e3779b97f4a7c15ull) >> 32) & t->merge_mask;
    for (;; i = (i + 1) & t->merge_mask) {
        if (t->merges[i].key == key) return &t->merges[i];
        if (t->merges[i].key == UINT64_MAX) return NULL;
    }
}

static bool is_letter(int32_t c) {
    utf8proc_category_t k = utf8proc_category(c);
    return k >= UTF8PROC_CATEGORY_LU && k <= UTF8PROC_CATEGORY_LO;
}

static bool is_number(int32_t c) {
    utf8proc_category_t k = utf8proc_category(c);
    return k >= UTF8PROC_CATEGORY_ND && k <= UTF8PROC_CATEGORY_NO;
}

static bool is_other(int32_t c) {
    return !en__is_white_space(c) && !is_letter(c) && !is_number(c);
}

// Where the pre-token starting at i ends: the first alternative of GPT-2's pattern that matches.
static size_t pretoken_end(const int32_t *cp, size_t n, size_t i) {
    if (cp[i] == '\'' && i + 1 < n) { // 's 't 're 've 'm 'll 'd (lower case only)
        int32_t a = cp[i + 1], b = i + 2 < n ? cp[i + 2] : 0;
        if (a == 's' || a == 't' || a == 'm' || a == 'd') return i + 2;
        if ((a == 'r' && b == 'e') || (a == 'v' && b == 'e') || (a == 'l' && b == 'l'))
            return i + 3;
    }
    size_t k = i + (cp[i] == ' ' && i + 1 < n); // the optional space of ` ?\p{L}+` etc.
    bool (*classes[])(int32_t) = {is_letter, is_number, is_other};
    for (int c = 0; c < 3; c++) {
        if (!classes[c](cp[k])) continue;
        size_t j = k + 1;
        while (j < n && classes[c](cp[j]))
            j++;
        return j;
    }
    // \s+(?!\S): whitespace up to the last one before a non-space (all of it at the end);
    // else \s+: a single whitespace character before a non-space.
    size_t j = i + 1;
    while (j < n && en__is_white_space(cp[j]))
        j++;
    if (j < n && j - i > 1) return j - 1;
    return j;
}

// Sifts heap entry `at` (HP_FIELDS ints each) up or down; ordered by rank, then left position.
static bool heap_less(const int32_t *h, size_t a, size_t b) {
    const int32_t *x = h + a * HP_FIELDS, *y = h + b * HP_FIELDS;
    if (x[HP_RANK] != y[HP_RANK]) return (uint32_t)x[HP_RANK] < (uint32_t)y[HP_RANK];
    return x[HP_LEFT] < y[HP_LEFT];
}

static void heap_swap(int32_t *h, size_t a, size_t b) {
    int32_t tmp[HP_FIELDS];
    memcpy(tmp, h + a * HP_FIELDS, sizeof tmp);
    memcpy(h + a * HP_FIELDS, h + b * HP_FIELDS, sizeof tmp);
    memcpy(h + b * HP_FIELDS, tmp, sizeof tmp);
}

static void heap_push(en_i32vec *heap, const en_tokenizer *t, const int32_t *sym, int32_t left) {
    int32_t right = sym[left * SYM_FIELDS + SYM_NEXT];
    if (right < 0) return;
    int32_t lid = sym[left * SYM_FIELDS + SYM_ID], rid = sym[right * SYM_FIELDS + SYM_ID];
    const en_tok_merge *m = merge_find(t, lid, rid);
    if (!m) return;
    size_t at = heap->n / HP_FIELDS; // room was reserved by the caller
    int32_t *e = heap->v + heap->n;
    e[HP_RANK] = (int32_t)m->rank, e[HP_LEFT] = left, e[HP_RIGHT] = right;
    e[HP_LID] = lid, e[HP_RID] = rid;
    heap->n += HP_FIELDS;
    while (at > 0 && heap_less(heap->v, at, (at - 1) / 2)) {
        heap_swap(heap->v, at, (at - 1) / 2);
        at = (at - 1) / 2;
    }
}

static void heap_pop(en_i32vec *heap, int32_t *top) {
    memcpy(top, heap->v, HP_FIELDS * sizeof *top);
    heap->n -= HP_FIELDS;
    size_t n = heap->n / HP_FIELDS;
    if (n == 0) return;
    memcpy(heap->v, heap->v + heap->n, HP_FIELDS * sizeof *top);
    for (size_t at = 0;;) {
        size_t l = 2 * at + 1, r = l + 1, best = at;
        if (l < n && heap_less(heap->v, l, best)) best = l;
        if (r < n && heap_less(heap->v, r, best)) best = r;
        if (best == at) break;
        heap_swap(heap->v, at, best);
        at = best;
    }
}

// BPE of one pre-token's bytes; appends its piece ids to `out`, at most up to `cap`.
static int bpe_word(const en_tokenizer *t, const uint8_t *bytes, size_t n, en_tok_scratch *s,
                    en_i32vec *out, size_t cap) {
    if (n > INT32_MAX / 4) return EN_EINPUT;
    s->sym.n = s->heap.n = 0;
    // Each merge pushes at most two candidates: n - 1 at first, 2 (n - 1) later.
    int rc = en__vec_reserve(&s->sym, n * SYM_FIELDS);
    if (rc == 0) rc = en__vec_reserve(&s->heap, 3 * n * HP_FIELDS);
    if (rc != 0) return rc;
    int32_t *sym = s->sym.v;
    for (size_t i = 0; i < n; i++) {
        sym[i * SYM_FIELDS + SYM_ID] = t->byte_id[bytes[i]];
        sym[i * SYM_FIELDS + SYM_PREV] = (int32_t)i - 1;
        sym[i * SYM_FIELDS + SYM_NEXT] = i + 1 < n ? (int32_t)i + 1 : -1;
    }
    for (size_t i = 0; i + 1 < n; i++)
        heap_push(&s->heap, t, sym, (int32_t)i);
    while (s->heap.n > 0) {
        int32_t e[HP_FIELDS];
        heap_pop(&s->heap, e);
        int32_t l = e[HP_LEFT], r = e[HP_RIGHT];
        int32_t *L = sym + l * SYM_FIELDS, *R = sym + r * SYM_FIELDS;
        if (L[SYM_ID] != e[HP_LID] || L[SYM_NEXT] != r || R[SYM_ID] != e[HP_RID])
            continue; // stale: one side has been merged since
        L[SYM_ID] = merge_find(t, e[HP_LID], e[HP_RID])->merged;
        L[SYM_NEXT] = R[SYM_NEXT];
        if (R[SYM_NEXT] >= 0) sym[R[SYM_NEXT] * SYM_FIELDS + SYM_PREV] = l;
        R[SYM_ID] = -1; // gone
        if (L[SYM_PREV] >= 0) heap_push(&s->heap, t, sym, L[SYM_PREV]);
        heap_push(&s->heap, t, sym, l);
    }
    for (int32_t i = 0; i >= 0 && out->n < cap; i = sym[i * SYM_FIELDS + SYM_NEXT]) {
        if ((rc = en__vec_reserve(out, 1)) != 0) return rc;
        out->v[out->n++] = sym[i * SYM_FIELDS + SYM_ID];
    }
    return 0;
}
