#include "en_config.h"

#include "en_family.h"

#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "en_file.h"

#define MAX_CONFIG_BYTES (16u << 20) // a config.json is a few kB; refuse anything absurd

/* The integer dimensions, in en_key order: where each goes and the range a sane checkpoint stays
 * inside. Their names in config.json come from the family's row (en_family.c). */
static const struct {
    size_t off;
    int min, max;
} int_fields[EN_K_COUNT] = {
    [EN_K_VOCAB] = {offsetof(en_config, vocab_size), 1, 1 << 22},
    [EN_K_HIDDEN] = {offsetof(en_config, hidden), 1, 1 << 14},
    [EN_K_LAYERS] = {offsetof(en_config, layers), 1, EN_MAX_LAYERS},
    [EN_K_HEADS] = {offsetof(en_config, heads), 1, 1 << 10},
    [EN_K_FFN] = {offsetof(en_config, ffn), 1, 1 << 16},
    [EN_K_MAX_POS] = {offsetof(en_config, pos_rows), 2, 1 << 16},
    [EN_K_TYPE_VOCAB] = {offsetof(en_config, type_vocab), 1, 1 << 10},
    [EN_K_EMB] = {offsetof(en_config, emb), 1, 1 << 14},
};

static int parse_root(json_t *root, const char *what, en_config *cfg, en_diag *diag);
static int check_arch(json_t *root, const char *what, const en_family_def **fam, en_diag *diag);
static int parse_positions(json_t *root, const en_family_def *fam, en_config *cfg, const char *what,
                           en_diag *diag);
static int get_int(json_t *root, const char *key, int min, int max, int *out, const char *what,
                   en_diag *diag);
static int get_optional_string(json_t *root, const char *key, const char *dflt, const char **out,
                               const char *what, en_diag *diag);
static int parse_labels(json_t *root, en_config *cfg, const char *what, en_diag *diag);
static int config_parse(const char *json, size_t len, const char *what, en_config *cfg,
                        en_diag *diag);
static int parse_width(json_t *root, en_config *cfg, const char *what, en_diag *diag);
static int parse_id2label(json_t *m, en_config *cfg, const char *what, en_diag *diag);
static int parse_label2id(json_t *m, en_config *cfg, int have_names, const char *what,
                          en_diag *diag);
static int parse_index(const char *s, int n);
static const char *json_type_name(const json_t *v);

int en_config_load(const char *path, en_config *cfg, en_diag *diag) {
    memset(cfg, 0, sizeof *cfg);
    char *text;
    size_t len;
    int rc = en_file_read(path, MAX_CONFIG_BYTES, &text, &len, diag);
    if (rc) return rc;
    rc = config_parse(text, len, path, cfg, diag);
    free(text);
    return rc;
}

/* en_config_load() of a JSON text of `len` bytes; `what` names it in messages. */
static int config_parse(const char *json, size_t len, const char *what, en_config *cfg,
                        en_diag *diag) {
    memset(cfg, 0, sizeof *cfg);
    json_error_t err;
    // Duplicate keys would make a field mean whichever came last: refuse them.
    json_t *root = json_loadb(json, len, JSON_REJECT_DUPLICATES, &err);
    char why[JSON_ERROR_TEXT_LENGTH];
    if (!root) // the reason without jansson's quote of the file
        return en_fail(diag, EN_EFORMAT, "%s: not valid JSON (line %d: %s)", what, err.line,
                       en_json_reason(err.text, why, sizeof why));
    int rc = parse_root(root, what, cfg, diag);
    json_decref(root);
    return rc;
}

// --- helpers ---

// Everything but the parsing of the text: `root` is borrowed.
static int parse_root(json_t *root, const char *what, en_config *cfg, en_diag *diag) {
    if (!json_is_object(root)) return en_fail(diag, EN_EFORMAT, "%s: not a JSON object", what);
    const en_family_def *fam = NULL;
    int rc = check_arch(root, what, &fam, diag);
    for (int k = 0; rc == 0 && k < EN_K_COUNT; k++) {
        int *field = (int *)((char *)cfg + int_fields[k].off);
        if (fam->keys[k])
            rc = get_int(root, fam->keys[k], int_fields[k].min, int_fields[k].max, field, what,
                         diag);
    }
    if (rc < 0) return rc;
    cfg->family = fam->family;
    cfg->head_act = fam->head_act;
    if (!fam->keys[EN_K_EMB]) cfg->emb = cfg->hidden; // type_vocab stays 0 without its key
    if ((rc = parse_positions(root, fam, cfg, what, diag)) < 0) return rc;
    if (cfg->hidden % cfg->heads != 0)
        return en_fail(diag, EN_ECONFIG,
                       "%s: hidden_size %d is not divisible by num_attention_heads %d", what,
                       cfg->hidden, cfg->heads);
    cfg->ln_eps = 1e-12;
    json_t *eps = fam->eps_key ? json_object_get(root, fam->eps_key) : NULL;
    if (eps && !json_is_number(eps))
        return en_fail(diag, EN_ECONFIG, "%s: field 'layer_norm_eps' must be a number, found %s",
                       what, json_type_name(eps));
    if (eps) cfg->ln_eps = json_number_value(eps);
    if (!(cfg->ln_eps > 0 && cfg->ln_eps < 1)) // also refuses NaN
        return en_fail(diag, EN_ECONFIG, "%s: field 'layer_norm_eps' is %g; must be in (0, 1)",
                       what, cfg->ln_eps);
    const char *act = NULL, *pos_type = NULL;
    if ((rc = get_optional_string(root, fam->act_key, "gelu", &act, what, diag)) < 0) return rc;
    if (strcmp(act, "gelu") != 0) // gelu_new etc. are the tanh approximation: other numbers
        return en_fail(diag, EN_ECONFIG,
                       "%s: field '%s' is '%.64s'; only \"gelu\" (exact erf GELU) is "
                       "supported",
                       what, fam->act_key, act);
    rc = get_optional_string(root, "position_embedding_type", "absolute", &pos_type, what, diag);
    if (rc < 0) return rc;
    if (strcmp(pos_type, "absolute") != 0)
        return en_fail(diag, EN_ECONFIG,
                       "%s: field 'position_embedding_type' is '%.64s'; only \"absolute\" is "
                       "supported",
                       what, pos_type);
    if ((rc = parse_width(root, cfg, what, diag)) < 0) return rc;
    return parse_labels(root, cfg, what, diag);
}

/* "searchd_width": {"heads": [g per layer], "ffn": [m per layer]} of an exported narrowed
 * checkpoint; without it every layer is whole. */
static int parse_width(json_t *root, en_config *cfg, const char *what, en_diag *diag) {
    for (int l = 0; l < cfg->layers; l++) {
        cfg->layer_heads[l] = cfg->heads;
        cfg->layer_ffn[l] = cfg->ffn;
    }
    json_t *w = json_object_get(root, "searchd_width");
    if (!w) return 0;
    static const char *const keys[] = {"heads", "ffn"};
    for (int k = 0; k < 2; k++) {
        json_t *a = json_object_get(w, keys[k]);
        int lo = k == 0 ? 1 : 0, hi = k == 0 ? cfg->heads : cfg->ffn;
        if (!json_is_array(a) || (int)json_array_size(a) != cfg->layers)
            return en_fail(diag, EN_ECONFIG,
                           "%s: searchd_width.%s must be an array of %d "
                           "integers (one per layer)",
                           what, keys[k], cfg->layers);
        for (int l = 0; l < cfg->layers; l++) {
            json_t *v = json_array_get(a, (size_t)l);
            json_int_t x = json_is_integer(v) ? json_integer_value(v) : -1;
            if (x < lo || x > hi)
                return en_fail(diag, EN_ECONFIG,
                               "%s: searchd_width.%s[%d] must be an integer "
                               "in [%d, %d]",
                               what, keys[k], l, lo, hi);
            (k == 0 ? cfg->layer_heads : cfg->layer_ffn)[l] = (int)x;
        }
    }
    return 0;
}

/* Picks the family row by model_type; architectures, when listed, must name its
 * *ForSequenceClassification class. */
static int check_arch(json_t *root, const char *what, const en_family_def **fam, en_diag *diag) {
    json_t *mt = json_object_get(root, "model_type");
    json_t *archs = json_object_get(root, "architectures");
    if (archs && !json_is_null(archs) && !json_is_array(archs))
        return en_fail(diag, EN_ECONFIG, "%s: field 'architectures' must be an array, found %s",
                       what, json_type_name(archs));
    const char *first = NULL; // the first architecture named, for the messages
    for (size_t i = 0; i < json_array_size(archs); i++) {
        const char *a = json_string_value(json_array_get(archs, i));
        if (!a)
            return en_fail(diag, EN_ECONFIG, "%s: field 'architectures' holds a non-string", what);
        if (!first) first = a;
    }
    if (!mt) return en_fail(diag, EN_ECONFIG, "%s: field 'model_type' is missing", what);
    if (!json_is_string(mt))
        return en_fail(diag, EN_ECONFIG, "%s: field 'model_type' must be a string, found %s", what,
                       json_type_name(mt));
    const char *type = json_string_value(mt);
    *fam = en_family_find(type);
    if (!*fam) {
        const char *known = en_family_unsupported(type);
        return en_fail(diag, EN_EARCH,
                       "%s: %s%smodel_type '%.64s' (%.64s) is not supported; "
                       "supported: %s",
                       what, known ? known : "", known ? " " : "", type,
                       first ? first : "no architectures listed", en_family_list());
    }
    if (!first) return 0; // no list: the classifier tensors are required anyway
    for (size_t i = 0; i < json_array_size(archs); i++)
        if (strcmp(json_string_value(json_array_get(archs, i)), (*fam)->arch) == 0) return 0;
    return en_fail(diag, EN_EARCH,
                   "%s: architecture '%.64s' is not supported; for model_type "
                   "'%s' only %s",
                   what, first, (*fam)->model_type, (*fam)->arch);
}

/* Where token i's position embedding is, and so how long a sequence may be. */
static int parse_positions(json_t *root, const en_family_def *fam, en_config *cfg, const char *what,
                           en_diag *diag) {
    cfg->pos_offset = 0;
    if (fam->positions_after_pad) {
        int pad = 1; // RobertaConfig's default
        json_t *pad_v = json_object_get(root, "pad_token_id");
        if (pad_v && !json_is_null(pad_v)) {
            int rc = get_int(root, "pad_token_id", 0, cfg->vocab_size - 1, &pad, what, diag);
            if (rc < 0) return rc;
        }
        cfg->pos_offset = pad + 1;
    }
    cfg->max_pos = cfg->pos_rows - cfg->pos_offset;
    if (cfg->max_pos < 2)
        return en_fail(diag, EN_ECONFIG,
                       "%s: max_position_embeddings %d leaves room for %d tokens after "
                       "pad_token_id + 1 = %d; need at least 2",
                       what, cfg->pos_rows, cfg->max_pos, cfg->pos_offset);
    return 0;
}

static int get_int(json_t *root, const char *key, int min, int max, int *out, const char *what,
                   en_diag *diag) {
    json_t *v = json_object_get(root, key);
    if (!v) return en_fail(diag, EN_ECONFIG, "%s: field '%s' is missing", what, key);
    if (!json_is_integer(v))
        return en_fail(diag, EN_ECONFIG, "%s: field '%s' must be an integer, found %s", what, key,
                       json_type_name(v));
    json_int_t x = json_integer_value(v);
    if (x < min || x > max)
        return en_fail(diag, EN_ECONFIG, "%s: field '%s' is %lld; must be between %d and %d", what,
                       key, (long long)x, min, max);
    *out = (int)x;
    return 0;
}

static int get_optional_string(json_t *root, const char *key, const char *dflt, const char **out,
                               const char *what, en_diag *diag) {
    json_t *v = json_object_get(root, key);
    if (v && !json_is_string(v))
        return en_fail(diag, EN_ECONFIG, "%s: field '%s' must be a string, found %s", what, key,
                       json_type_name(v));
    *out = v ? json_string_value(v) : dflt;
    return 0;
}

/* The number of labels and their names. HF writes id2label and label2id (num_labels is a
 * property derived from id2label); a hand-written config may give only num_labels. Whatever is
 * present must agree. */
static int parse_labels(json_t *root, en_config *cfg, const char *what, en_diag *diag) {
    json_t *id2label = json_object_get(root, "id2label");
    json_t *label2id = json_object_get(root, "label2id");
    json_t *num = json_object_get(root, "num_labels");
    json_t *pt = json_object_get(root, "problem_type");
    id2label = json_is_null(id2label) ? NULL : id2label;
    label2id = json_is_null(label2id) ? NULL : label2id;
    if (pt && !json_is_null(pt) &&
        !(json_is_string(pt) && strcmp(json_string_value(pt), "single_label_classification") == 0))
        return en_fail(diag, EN_ECONFIG,
                       "%s: field 'problem_type' is %s%.64s%s; only single_label_classification "
                       "(softmax over the labels) is supported",
                       what, json_is_string(pt) ? "'" : "",
                       json_is_string(pt) ? json_string_value(pt) : json_type_name(pt),
                       json_is_string(pt) ? "'" : "");
    cfg->num_labels = 0;
    int rc = 0;
    if (id2label && (rc = parse_id2label(id2label, cfg, what, diag)) < 0) return rc;
    if (label2id && (rc = parse_label2id(label2id, cfg, id2label != NULL, what, diag)) < 0)
        return rc;
    if (num) {
        int n;
        if ((rc = get_int(root, "num_labels", 1, EN_MAX_LABELS, &n, what, diag)) < 0) return rc;
        if (cfg->num_labels && n != cfg->num_labels)
            return en_fail(diag, EN_ECONFIG, "%s: field 'num_labels' is %d but %s lists %d labels",
                           what, n, id2label ? "id2label" : "label2id", cfg->num_labels);
        cfg->num_labels = n;
    }
    if (cfg->num_labels == 0) cfg->num_labels = 2; // BertConfig's default
    if (cfg->num_labels < 2)
        return en_fail(diag, EN_ECONFIG,
                       "%s: 1 label is a regression head, which is not supported; need 2 to %d "
                       "labels",
                       what, EN_MAX_LABELS);
    for (int i = 0; i < cfg->num_labels; i++) {
        if (cfg->labels[i][0] == '\0')
            snprintf(cfg->labels[i], sizeof cfg->labels[i], "LABEL_%d", i);
        for (int j = 0; j < i; j++)
            if (strcmp(cfg->labels[i], cfg->labels[j]) == 0) // a name must pick one label
                return en_fail(diag, EN_ECONFIG, "%s: label name '%s' is used for ids %d and %d",
                               what, cfg->labels[i], j, i);
    }
    return 0;
}

static int parse_id2label(json_t *m, en_config *cfg, const char *what, en_diag *diag) {
    if (!json_is_object(m))
        return en_fail(diag, EN_ECONFIG, "%s: field 'id2label' must be an object, found %s", what,
                       json_type_name(m));
    size_t n = json_object_size(m);
    if (n < 1 || n > EN_MAX_LABELS)
        return en_fail(diag, EN_ECONFIG, "%s: field 'id2label' has %zu labels; must be 2 to %d",
                       what, n, EN_MAX_LABELS);
    const char *key;
    json_t *v;
    json_object_foreach(m, key, v) {
        int id = parse_index(key, (int)n);
        if (id < 0)
            return en_fail(diag, EN_ECONFIG,
                           "%s: field 'id2label' has key '%.32s'; keys must be the ids 0 to %zu",
                           what, key, n - 1);
        const char *name = json_string_value(v);
        if (!name || name[0] == '\0' || strlen(name) >= sizeof cfg->labels[0])
            return en_fail(diag, EN_ECONFIG,
                           "%s: field 'id2label' entry '%s' must be a non-empty string of at "
                           "most %zu bytes",
                           what, key, sizeof cfg->labels[0] - 1);
        memcpy(cfg->labels[id], name, strlen(name) + 1);
    }
    cfg->num_labels = (int)n;
    return 0;
}

static int parse_label2id(json_t *m, en_config *cfg, int have_names, const char *what,
                          en_diag *diag) {
    if (!json_is_object(m))
        return en_fail(diag, EN_ECONFIG, "%s: field 'label2id' must be an object, found %s", what,
                       json_type_name(m));
    size_t n = json_object_size(m);
    if (n < 1 || n > EN_MAX_LABELS || (have_names && n != (size_t)cfg->num_labels))
        return en_fail(diag, EN_ECONFIG,
                       "%s: field 'label2id' has %zu labels but id2label has %d (limit %d)", what,
                       n, cfg->num_labels, EN_MAX_LABELS);
    const char *key;
    json_t *v;
    json_object_foreach(m, key, v) {
        json_int_t id = json_is_integer(v) ? json_integer_value(v) : -1;
        if (id < 0 || id >= (json_int_t)n)
            return en_fail(diag, EN_ECONFIG,
                           "%s: field 'label2id' maps '%.64s' to something other than an id "
                           "from 0 to %zu",
                           what, key, n - 1);
        if (have_names) {
            if (strcmp(cfg->labels[id], key) != 0)
                return en_fail(diag, EN_ECONFIG,
                               "%s: label2id maps '%.64s' to %lld but id2label names %lld '%s'",
                               what, key, (long long)id, (long long)id, cfg->labels[id]);
            continue;
        }
        if (key[0] == '\0' || strlen(key) >= sizeof cfg->labels[0] || cfg->labels[id][0])
            return en_fail(diag, EN_ECONFIG,
                           "%s: field 'label2id': '%.64s' is empty, too long, or its id %lld is "
                           "taken",
                           what, key, (long long)id);
        memcpy(cfg->labels[id], key, strlen(key) + 1);
    }
    cfg->num_labels = (int)n;
    return 0;
}

// The id a canonical decimal key ("0", "17"; no sign, no leading zero) names when below n,
// else -1.
static int parse_index(const char *s, int n) {
    if (s[0] == '\0' || (s[0] == '0' && s[1] != '\0')) return -1;
    long v = 0;
    for (const char *p = s; *p; p++) {
        if (*p < '0' || *p > '9' || v > n) return -1;
        v = v * 10 + (*p - '0');
    }
    return v < n ? (int)v : -1;
}

static const char *json_type_name(const json_t *v) {
    switch (json_typeof(v)) {
    case JSON_OBJECT:
        return "an object";
    case JSON_ARRAY:
        return "an array";
    case JSON_STRING:
        return "a string";
    case JSON_INTEGER:
        return "an integer";
    case JSON_REAL:
        return "a real number";
    case JSON_TRUE:
    case JSON_FALSE:
        return "a boolean";
    case JSON_NULL:
        return "null";
    }
    return "something else";
}
