/* The tokenizer.json reader: Hugging Face's fast-tokenizer file, one JSON object with the
 * pipeline's parts. Two pipelines are supported, the ones the supported families ship:
 * - WordPiece: normalizer BertNormalizer, pre_tokenizer BertPreTokenizer, model WordPiece
 *   ("##" continuations);
 * - byte-level BPE: normalizer null, pre_tokenizer ByteLevel, model BPE (merges as "a b"
 *   strings or ["a", "b"] pairs);
 * with post_processor TemplateProcessing, BertProcessing, RobertaProcessing or null, and
 * added_tokens (matched in text before anything else). Anything else (a Unigram model, other
 * normalizers) is refused naming the part and what is supported. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "en_tok_internal.h"

static int read_wordpiece(en_tokenizer *t, json_t *root, json_t *model, const char *what,
                          en_diag *diag);
static int read_bpe(en_tokenizer *t, json_t *root, json_t *model, const char *what, en_diag *diag);
static int read_post(en_tokenizer *t, json_t *post, const char *what, en_diag *diag);
static int read_added(en_tokenizer *t, json_t *added, const char *what, en_diag *diag);
static const char *type_of(json_t *part);

int en_tokenizer_from_json(const char *json, size_t len, en_tokenizer **out, en_diag *diag) {
    if (!json || !out) return en_fail(diag, EN_EINPUT, "en_tokenizer_from_json: NULL argument");
    *out = NULL;
    en_tokenizer *t = en__tok_new();
    if (!t) return en_fail(diag, EN_ENOMEM, "tokenizer.json: out of memory");
    t->file = "tokenizer.json";
    int rc = en__tokjson_parse(t, json, len, "tokenizer.json", diag);
    if (rc != 0) {
        en_tokenizer_free(t);
        return rc;
    }
    *out = t;
    return 0;
}

int en__tokjson_parse(en_tokenizer *t, const char *json, size_t len, const char *what,
                      en_diag *diag) {
    json_error_t jerr;
    json_t *root = json_loadb(json, len, JSON_REJECT_DUPLICATES, &jerr);
    if (!root)
        return en_fail(diag, EN_EFORMAT, "%s:%d:%d: not valid JSON: %s", what, jerr.line,
                       jerr.column, jerr.text);
    int rc = 0;
    json_t *model = json_object_get(root, "model");
    const char *type = type_of(model);
    if (!json_is_object(root) || !json_is_object(model))
        rc = en_fail(diag, EN_EFORMAT, "%s: not a tokenizer.json (no \"model\" object)", what);
    else if (strcmp(type, "WordPiece") == 0)
        rc = read_wordpiece(t, root, model, what, diag);
    else if (strcmp(type, "BPE") == 0)
        rc = read_bpe(t, root, model, what, diag);
    else if (strcmp(type, "Unigram") == 0)
        rc = en_fail(diag, EN_EVOCAB,
                     "%s: model Unigram (SentencePiece, as XLM-R's) is not supported; supported: "
                     "WordPiece and byte-level BPE",
                     what);
    else
        rc = en_fail(diag, EN_EFORMAT,
                     "%s: model '%.64s' is not supported; supported: WordPiece and byte-level BPE",
                     what, type);
    if (rc == 0) rc = read_post(t, json_object_get(root, "post_processor"), what, diag);
    json_decref(root);
    return rc;
}

int en__tok_vocab_json(en_tokenizer *t, json_t *vocab, json_t *added, const char *what,
                       en_diag *diag) {
    if (!json_is_object(vocab))
        return en_fail(diag, EN_EVOCAB, "%s: the vocabulary is not an object piece -> id", what);
    size_t n = json_object_size(vocab), n_added = json_array_size(added), cap = n + n_added;
    if (n == 0) return en_fail(diag, EN_EVOCAB, "%s: empty vocabulary", what);
    if (cap > INT32_MAX / 4) return en_fail(diag, EN_EVOCAB, "%s: too many pieces", what);
    const char **piece = calloc(cap, sizeof *piece);
    size_t *plen = calloc(cap, sizeof *plen);
    int rc = piece && plen ? 0 : en_fail(diag, EN_ENOMEM, "%s: out of memory", what);
    const char *key;
    json_t *v;
    json_object_foreach(vocab, key, v) {
        if (rc != 0) break;
        json_int_t id = json_is_integer(v) ? json_integer_value(v) : -1;
        if (id < 0 || (size_t)id >= n)
            rc = en_fail(diag, EN_EVOCAB, "%s: piece \"%.64s\" has id %s; ids run from 0 to %zu",
                         what, key, json_is_integer(v) ? "out of range" : "not an integer", n - 1);
        else if (piece[id])
            rc = en_fail(diag, EN_EVOCAB, "%s: pieces \"%.64s\" and \"%.64s\" share id %lld", what,
                         piece[id], key, (long long)id);
        else
            piece[id] = key, plen[id] = strlen(key);
    }
    // Added tokens beyond the vocabulary take the ids after it.
    size_t total = n;
    for (size_t i = 0; rc == 0 && i < n_added; i++) {
        json_t *a = json_array_get(added, i), *c = json_object_get(a, "content");
        json_int_t id = json_is_integer(json_object_get(a, "id"))
                            ? json_integer_value(json_object_get(a, "id"))
                            : -1;
        if (!json_is_string(c) || id < 0 || (size_t)id >= cap) {
            rc = en_fail(diag, EN_EVOCAB,
                         "%s: added token %zu needs a \"content\" string and an "
                         "\"id\" below %zu",
                         what, i, cap);
        } else if (!piece[id]) {
            piece[id] = json_string_value(c), plen[id] = json_string_length(c);
            if ((size_t)id >= total) total = (size_t)id + 1;
        } else if (plen[id] != json_string_length(c) ||
                   memcmp(piece[id], json_string_value(c), plen[id]) != 0) {
            rc = en_fail(diag, EN_EVOCAB,
                         "%s: added token \"%.64s\" has id %lld, the id of "
                         "\"%.64s\"",
                         what, json_string_value(c), (long long)id, piece[id]);
        }
    }
    size_t bytes = 0;
    for (size_t id = 0; rc == 0 && id < total; id++) {
        if (!piece[id]) rc = en_fail(diag, EN_EVOCAB, "%s: no piece has id %zu", what, id);
        bytes += plen[id] + 1;
    }
    if (rc == 0 && bytes >= UINT32_MAX) rc = en_fail(diag, EN_EVOCAB, "%s: too large", what);
    if (rc == 0) {
        t->blob = malloc(bytes);
        t->offs = malloc(total * sizeof *t->offs);
        t->lens = malloc(total * sizeof *t->lens);
        if (!t->blob || !t->offs || !t->lens)
            rc = en_fail(diag, EN_ENOMEM, "%s: out of memory", what);
    }
    for (size_t id = 0, at = 0; rc == 0 && id < total; id++) {
        memcpy(t->blob + at, piece[id], plen[id]);
        t->blob[at + plen[id]] = '\0';
        t->offs[id] = (uint32_t)at;
        t->lens[id] = (uint32_t)plen[id];
        at += plen[id] + 1;
    }
    free(piece);
    free(plen);
    if (rc != 0) return rc;
    t->n_pieces = (int32_t)total;
    return en__tok_index(t, what, false, diag);
}

// --- helpers ---

// A part's "type" string; "null" for a JSON null or a missing part.
static const char *type_of(json_t *part) {
    if (!part || json_is_null(part)) return "null";
    const char *s = json_string_value(json_object_get(part, "type"));
    return s ? s : "(no type)";
}

// An optional boolean field of a part: absent or null keeps `*v`.
static int get_bool(json_t *part, const char *key, bool *v, const char *what, en_diag *diag) {
    json_t *j = json_object_get(part, key);
    if (!j || json_is_null(j)) return 0;
    if (!json_is_boolean(j))
        return en_fail(diag, EN_EFORMAT, "%s: \"%s\" of %s must be true, false or null", what, key,
                       type_of(part));
    *v = json_is_true(j);
    return 0;
}

static int read_wordpiece(en_tokenizer *t, json_t *root, json_t *model, const char *what,
                          en_diag *diag) {
    t->kind = EN_TOK_WORDPIECE;
    t->nfc = t->final_sigma = false; // the pipeline lower-cases character by character
    json_t *norm = json_object_get(root, "normalizer");
    json_t *pre = json_object_get(root, "pre_tokenizer");
    if (strcmp(type_of(norm), "BertNormalizer") != 0)
        return en_fail(diag, EN_EFORMAT,
                       "%s: normalizer %s is not supported with WordPiece; "
                       "supported: BertNormalizer",
                       what, type_of(norm));
    if (strcmp(type_of(pre), "BertPreTokenizer") != 0)
        return en_fail(diag, EN_EFORMAT,
                       "%s: pre_tokenizer %s is not supported with WordPiece; "
                       "supported: BertPreTokenizer",
                       what, type_of(pre));
    bool clean = true, strip_set = false;
    int rc = get_bool(norm, "clean_text", &clean, what, diag);
    if (rc == 0) rc = get_bool(norm, "handle_chinese_chars", &t->split_cjk, what, diag);
    if (rc == 0) rc = get_bool(norm, "lowercase", &t->lower, what, diag);
    json_t *js = json_object_get(norm, "strip_accents");
    if (rc == 0 && js && !json_is_null(js)) { // null: as lowercase
        strip_set = true;
        rc = get_bool(norm, "strip_accents", &t->strip_accents, what, diag);
    }
    if (rc != 0) return rc;
    if (!strip_set) t->strip_accents = t->lower;
    if (!clean)
        return en_fail(diag, EN_EFORMAT, "%s: BertNormalizer clean_text false is not supported",
                       what);
    json_t *prefix = json_object_get(model, "continuing_subword_prefix");
    if (prefix && !json_is_null(prefix) &&
        !(json_is_string(prefix) && strcmp(json_string_value(prefix), "##") == 0))
        return en_fail(diag, EN_EFORMAT, "%s: continuing_subword_prefix must be \"##\"", what);
    json_t *mc = json_object_get(model, "max_input_chars_per_word");
    if (mc && !json_is_null(mc)) {
        json_int_t v = json_is_integer(mc) ? json_integer_value(mc) : 0;
        if (v < 1 || v > EN_TOK_MAX_WORD_CHARS)
            return en_fail(diag, EN_EFORMAT, "%s: max_input_chars_per_word must be 1 to %d", what,
                           EN_TOK_MAX_WORD_CHARS);
        t->max_chars = (int)v;
    }
    json_t *added = json_object_get(root, "added_tokens");
    if ((rc = en__tok_vocab_json(t, json_object_get(model, "vocab"), added, what, diag)) != 0)
        return rc;
    const char *unk = json_string_value(json_object_get(model, "unk_token"));
    t->unk_id = unk ? en__tok_find(t, NULL, unk, strlen(unk)) : -1;
    if (t->unk_id < 0)
        return en_fail(diag, EN_EVOCAB, "%s: the WordPiece unk_token \"%.64s\" is not a piece",
                       what, unk ? unk : "(none)");
    return read_added(t, added, what, diag);
}

static int read_bpe(en_tokenizer *t, json_t *root, json_t *model, const char *what, en_diag *diag) {
    t->kind = EN_TOK_BPE;
    json_t *norm = json_object_get(root, "normalizer");
    json_t *pre = json_object_get(root, "pre_tokenizer");
    if (norm && !json_is_null(norm))
        return en_fail(diag, EN_EFORMAT,
                       "%s: normalizer %s is not supported with BPE; "
                       "supported: none (byte-level BPE)",
                       what, type_of(norm));
    if (strcmp(type_of(pre), "ByteLevel") != 0)
        return en_fail(diag, EN_EFORMAT,
                       "%s: pre_tokenizer %s is not supported with BPE; "
                       "supported: ByteLevel",
                       what, type_of(pre));
    bool regex = true, fallback = false;
    int rc = get_bool(pre, "add_prefix_space", &t->add_prefix_space, what, diag);
    if (rc == 0) rc = get_bool(pre, "use_regex", &regex, what, diag);
    if (rc == 0) rc = get_bool(model, "byte_fallback", &fallback, what, diag);
    if (rc != 0) return rc;
    static const char *const empty_keys[] = {"continuing_subword_prefix", "end_of_word_suffix"};
    for (int i = 0; i < 2; i++) {
        json_t *v = json_object_get(model, empty_keys[i]);
        if (v && !json_is_null(v) && !(json_is_string(v) && json_string_length(v) == 0))
            return en_fail(diag, EN_EFORMAT, "%s: BPE %s is not supported", what, empty_keys[i]);
    }
    json_t *dropout = json_object_get(model, "dropout");
    if (!regex || fallback || (dropout && !json_is_null(dropout)))
        return en_fail(diag, EN_EFORMAT,
                       "%s: ByteLevel use_regex false, BPE byte_fallback or "
                       "dropout are not supported",
                       what);
    json_t *added = json_object_get(root, "added_tokens");
    if ((rc = en__tok_vocab_json(t, json_object_get(model, "vocab"), added, what, diag)) != 0)
        return rc;
    json_t *merges = json_object_get(model, "merges");
    if (!json_is_array(merges))
        return en_fail(diag, EN_EFORMAT, "%s: BPE \"merges\" must be an array", what);
    if ((rc = en__bpe_init_merges(t, json_array_size(merges))) != 0)
        return en_fail(diag, rc, "%s: out of memory", what);
    size_t i;
    json_t *m;
    json_array_foreach(merges, i, m) {
        const char *a = NULL, *b = NULL;
        size_t alen = 0, blen = 0;
        if (json_is_string(m)) { // "a b"
            a = json_string_value(m);
            const char *sp = strchr(a, ' ');
            if (sp && !strchr(sp + 1, ' ')) alen = (size_t)(sp - a), b = sp + 1, blen = strlen(b);
        } else if (json_array_size(m) == 2 && json_is_string(json_array_get(m, 0)) &&
                   json_is_string(json_array_get(m, 1))) { // ["a", "b"]
            a = json_string_value(json_array_get(m, 0)),
            b = json_string_value(json_array_get(m, 1));
            alen = json_string_length(json_array_get(m, 0));
            blen = json_string_length(json_array_get(m, 1));
        }
        if (!b || alen == 0 || blen == 0)
            return en_fail(diag, EN_EFORMAT, "%s: merge %zu is neither \"a b\" nor [\"a\", \"b\"]",
                           what, i + 1);
        if ((rc = en__bpe_add_merge(t, a, alen, b, blen, (uint32_t)i, what, diag)) != 0) return rc;
    }
    if ((rc = en__bpe_bytes(t, what, diag)) != 0) return rc;
    return read_added(t, added, what, diag);
}

// added_tokens: each is matched in text (all ids are pieces by now).
static int read_added(en_tokenizer *t, json_t *added, const char *what, en_diag *diag) {
    if (added && !json_is_null(added) && !json_is_array(added))
        return en_fail(diag, EN_EFORMAT, "%s: \"added_tokens\" must be an array", what);
    size_t i;
    json_t *a;
    json_array_foreach(added, i, a) {
        json_t *c = json_object_get(a, "content");
        int rc = en__tok_add_special(t, json_string_value(c), json_string_length(c),
                                     (int32_t)json_integer_value(json_object_get(a, "id")),
                                     json_is_true(json_object_get(a, "lstrip")),
                                     json_is_true(json_object_get(a, "rstrip")));
        if (rc != 0) return en_fail(diag, rc, "%s: out of memory", what);
    }
    return 0;
}

// The id of a special token named [name, id] (Bert/RobertaProcessing), checked against the
// vocabulary.
static int pair_id(json_t *v, int32_t *id, const char *key, const char *what, en_diag *diag) {
    json_t *name = json_array_get(v, 0), *num = json_array_get(v, 1);
    json_int_t x = json_is_integer(num) ? json_integer_value(num) : -1;
    if (!json_is_string(name) || x < 0 || x > INT32_MAX)
        return en_fail(diag, EN_EFORMAT, "%s: post_processor \"%s\" must be [token, id]", what,
                       key);
    *id = (int32_t)x;
    return 0;
}

// One template item {"SpecialToken": {"id", "type_id"}} or {"Sequence": {"id": "A"|"B", ...}}.
static int template_items(const en_tokenizer *t, json_t *items, json_t *specials, en_tok_item *out,
                          int *n_out, const char *what, en_diag *diag) {
    *n_out = 0;
    if (!json_is_array(items))
        return en_fail(diag, EN_EFORMAT,
                       "%s: TemplateProcessing needs \"single\" and \"pair\" "
                       "arrays",
                       what);
    size_t i;
    json_t *it;
    json_array_foreach(items, i, it) {
        json_t *sp = json_object_get(it, "SpecialToken"), *seq = json_object_get(it, "Sequence");
        json_t *body = sp ? sp : seq;
        const char *name = json_string_value(json_object_get(body, "id"));
        json_t *type = json_object_get(body, "type_id");
        if (!name || !json_is_integer(type) || json_integer_value(type) < 0 ||
            json_integer_value(type) > 1 << 20)
            return en_fail(diag, EN_EFORMAT,
                           "%s: template item %zu needs an \"id\" and a "
                           "\"type_id\"",
                           what, i);
        int32_t type_id = (int32_t)json_integer_value(type);
        json_t *ids = sp ? json_object_get(json_object_get(specials, name), "ids") : NULL;
        if (seq && (strcmp(name, "A") == 0 || strcmp(name, "B") == 0)) {
            if (*n_out == EN_TOK_MAX_TEMPLATE) goto too_long;
            out[(*n_out)++] = (en_tok_item){name[0] == 'A' ? EN_TOK_SEQ_A : EN_TOK_SEQ_B, type_id};
            continue;
        }
        if (!json_is_array(ids) || json_array_size(ids) == 0)
            return en_fail(diag, EN_EFORMAT,
                           "%s: template item \"%.64s\" is not in "
                           "special_tokens",
                           what, name);
        size_t k;
        json_t *id;
        json_array_foreach(ids, k, id) {
            json_int_t x = json_is_integer(id) ? json_integer_value(id) : -1;
            if (x < 0 || x >= t->n_pieces)
                return en_fail(diag, EN_EVOCAB,
                               "%s: special token \"%.64s\" has an id outside "
                               "the vocabulary",
                               what, name);
            if (*n_out == EN_TOK_MAX_TEMPLATE) goto too_long;
            out[(*n_out)++] = (en_tok_item){(int32_t)x, type_id};
        }
    }
    return 0;
too_long:
    return en_fail(diag, EN_EFORMAT, "%s: a template longer than %d items", what,
                   EN_TOK_MAX_TEMPLATE);
}

static int read_post(en_tokenizer *t, json_t *post, const char *what, en_diag *diag) {
    const char *type = type_of(post);
    if (strcmp(type, "null") == 0) { // the pieces alone
        t->n_single = 1, t->single[0] = (en_tok_item){EN_TOK_SEQ_A, 0};
        t->n_pair = 2, t->pair[0] = t->single[0], t->pair[1] = (en_tok_item){EN_TOK_SEQ_B, 1};
        return 0;
    }
    if (strcmp(type, "TemplateProcessing") == 0) {
        json_t *sp = json_object_get(post, "special_tokens");
        int rc = template_items(t, json_object_get(post, "single"), sp, t->single, &t->n_single,
                                what, diag);
        if (rc == 0)
            rc = template_items(t, json_object_get(post, "pair"), sp, t->pair, &t->n_pair, what,
                                diag);
        return rc;
    }
    bool roberta = strcmp(type, "RobertaProcessing") == 0;
    if (!roberta && strcmp(type, "BertProcessing") != 0)
        return en_fail(diag, EN_EFORMAT,
                       "%s: post_processor %s is not supported; supported: "
                       "TemplateProcessing, BertProcessing, RobertaProcessing",
                       what, type);
    int32_t cls = 0, sep = 0;
    int rc = pair_id(json_object_get(post, "cls"), &cls, "cls", what, diag);
    if (rc == 0) rc = pair_id(json_object_get(post, "sep"), &sep, "sep", what, diag);
    if (rc == 0 && (cls >= t->n_pieces || sep >= t->n_pieces))
        rc = en_fail(diag, EN_EVOCAB, "%s: post_processor ids outside the vocabulary", what);
    if (rc == 0) en__tok_template(t, cls, sep, roberta);
    return rc;
}
