#include "en_config.h"

#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "en_file.h"

#define MAX_CONFIG_BYTES (16u << 20) // a config.json is a few kB; refuse anything absurd

/* The integer dimensions: one row per field, with the range a sane checkpoint stays inside. */
static const struct {
    const char *key;
    size_t off;
    int min, max;
} int_fields[] = {
    {"vocab_size", offsetof(en_config, vocab_size), 1, 1 << 22},
    {"hidden_size", offsetof(en_config, hidden), 1, 1 << 14},
    {"num_hidden_layers", offsetof(en_config, layers), 1, EN_MAX_LAYERS},
    {"num_attention_heads", offsetof(en_config, heads), 1, 1 << 10},
    {"intermediate_size", offsetof(en_config, ffn), 1, 1 << 16},
    {"max_position_embeddings", offsetof(en_config, max_pos), 2, 1 << 16},
    {"type_vocab_size", offsetof(en_config, type_vocab), 1, 1 << 10},
};

static int parse_root(json_t *root, const char *what, en_config *cfg, en_diag *diag);
static int check_arch(json_t *root, const char *what, en_diag *diag);
static int get_int(json_t *root, const char *key, int min, int max, int *out, const char *what,
                   en_diag *diag);
static int get_optional_string(json_t *root, const char *key, const char *dflt, const char **out,
                               const char *what, en_diag *diag);
static int parse_labels(json_t *root, en_config *cfg, const char *what, en_diag *diag);
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
    rc = en_config_parse(text, len, path, cfg, diag);
    free(text);
    return rc;
}

int en_config_parse(const char *json, size_t len, const char *what, en_config *cfg, en_diag *diag) {
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
    int rc = check_arch(root, what, diag);
    for (size_t i = 0; rc == 0 && i < sizeof int_fields / sizeof int_fields[0]; i++) {
        int *field = (int *)((char *)cfg + int_fields[i].off);
        rc = get_int(root, int_fields[i].key, int_fields[i].min, int_fields[i].max, field, what,
                     diag);
    }
    if (rc < 0) return rc;
    if (cfg->hidden % cfg->heads != 0)
        return en_fail(diag, EN_ECONFIG,
                       "%s: hidden_size %d is not divisible by num_attention_heads %d", what,
                       cfg->hidden, cfg->heads);
    cfg->ln_eps = 1e-12;
    json_t *eps = json_object_get(root, "layer_norm_eps");
    if (eps && !json_is_number(eps))
        return en_fail(diag, EN_ECONFIG, "%s: field 'layer_norm_eps' must be a number, found %s",
                       what, json_type_name(eps));
    if (eps) cfg->ln_eps = json_number_value(eps);
    if (!(cfg->ln_eps > 0 && cfg->ln_eps < 1)) // also refuses NaN
        return en_fail(diag, EN_ECONFIG, "%s: field 'layer_norm_eps' is %g; must be in (0, 1)",
                       what, cfg->ln_eps);
    const char *act = NULL, *pos_type = NULL;
    if ((rc = get_optional_string(root, "hidden_act", "gelu", &act, what, diag)) < 0) return rc;
    if (strcmp(act, "gelu") != 0) // gelu_new etc. are the tanh approximation: other numbers
        return en_fail(diag, EN_ECONFIG,
                       "%s: field 'hidden_act' is '%.64s'; only \"gelu\" (exact erf GELU) is "
                       "supported",
                       what, act);
    rc = get_optional_string(root, "position_embedding_type", "absolute", &pos_type, what, diag);
    if (rc < 0) return rc;
    if (strcmp(pos_type, "absolute") != 0)
        return en_fail(diag, EN_ECONFIG,
                       "%s: field 'position_embedding_type' is '%.64s'; only \"absolute\" is "
                       "supported",
                       what, pos_type);
    return parse_labels(root, cfg, what, diag);
}

static int check_arch(json_t *root, const char *what, en_diag *diag) {
    json_t *mt = json_object_get(root, "model_type");
    json_t *archs = json_object_get(root, "architectures");
    if (archs && !json_is_null(archs) && !json_is_array(archs))
        return en_fail(diag, EN_ECONFIG, "%s: field 'architectures' must be an array, found %s",
                       what, json_type_name(archs));
    const char *first = NULL; // the first architecture named, for the messages
    int is_bert_cls = 0;
    for (size_t i = 0; i < json_array_size(archs); i++) {
        const char *a = json_string_value(json_array_get(archs, i));
        if (!a)
            return en_fail(diag, EN_ECONFIG, "%s: field 'architectures' holds a non-string", what);
        if (!first) first = a;
        is_bert_cls |= strcmp(a, "BertForSequenceClassification") == 0;
    }
    if (!mt) return en_fail(diag, EN_ECONFIG, "%s: field 'model_type' is missing", what);
    if (!json_is_string(mt))
        return en_fail(diag, EN_ECONFIG, "%s: field 'model_type' must be a string, found %s", what,
                       json_type_name(mt));
    if (strcmp(json_string_value(mt), "bert") != 0)
        return en_fail(diag, EN_EARCH, "%s: model_type '%.64s' (%.64s) is not supported; only BERT",
                       what, json_string_value(mt), first ? first : "no architectures listed");
    // No list is accepted: the classifier tensors are required anyway.
    if (first && !is_bert_cls)
        return en_fail(diag, EN_EARCH,
                       "%s: architecture '%.64s' is not supported; only "
                       "BertForSequenceClassification",
                       what, first);
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
