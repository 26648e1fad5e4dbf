/* A model into a checkpoint folder: config.json (plus "searchd_width"), model.safetensors
 * (F32, the family's tensor names), the tokenizer's files. */
#include "en_export.h"

#include <errno.h>
#include <jansson.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "en_family.h"
#include "en_file.h"

/* What a tensor of role r holds in m (layer l): its data and shape (cols VECTOR: a vector; a
 * matrix may have 0 columns, a layer without neurons). NULL when the model has no such tensor
 * (no token types, no projection). */
#define VECTOR ((size_t)-1)
static const float *tensor_of(const en_model *m, en_role r, int l, size_t *rows, size_t *cols) {
    const en_config *c = &m->cfg;
    const en_weights *w = &m->w;
    const en_layer_weights *y = &w->layer[l];
    size_t H = (size_t)c->hidden, E = (size_t)c->emb, G = (size_t)y->heads * (H / c->heads);
    size_t F = (size_t)y->ffn;
    *cols = VECTOR;
    switch (r) {
    case EN_T_WORD:
        *rows = (size_t)c->vocab_size, *cols = E;
        return w->word_emb;
    case EN_T_POS:
        *rows = (size_t)c->pos_rows, *cols = E;
        return w->pos_emb;
    case EN_T_TYPE:
        *rows = (size_t)c->type_vocab, *cols = E;
        return w->type_emb;
    case EN_T_EMB_LN_G:
        *rows = E;
        return w->emb_ln_g;
    case EN_T_EMB_LN_B:
        *rows = E;
        return w->emb_ln_b;
    case EN_T_PROJ_W:
        *rows = H, *cols = E;
        return w->proj_w;
    case EN_T_PROJ_B:
        *rows = H;
        return w->proj_b;
    case EN_T_Q_W:
    case EN_T_K_W:
    case EN_T_V_W:
        *rows = G, *cols = H;
        return y->wqkv + (size_t)(r - EN_T_Q_W) * G * H;
    case EN_T_Q_B:
    case EN_T_K_B:
    case EN_T_V_B:
        *rows = G;
        return y->bqkv + (size_t)(r - EN_T_Q_B) * G;
    case EN_T_O_W:
        *rows = H, *cols = G;
        return y->wo;
    case EN_T_O_B:
        *rows = H;
        return y->bo;
    case EN_T_LN1_G:
        *rows = H;
        return y->ln1_g;
    case EN_T_LN1_B:
        *rows = H;
        return y->ln1_b;
    case EN_T_W1:
        *rows = F, *cols = H;
        return y->w1;
    case EN_T_B1:
        *rows = F;
        return y->b1;
    case EN_T_W2:
        *rows = H, *cols = F;
        return y->w2;
    case EN_T_B2:
        *rows = H;
        return y->b2;
    case EN_T_LN2_G:
        *rows = H;
        return y->ln2_g;
    case EN_T_LN2_B:
        *rows = H;
        return y->ln2_b;
    case EN_T_HEAD_W:
        *rows = H, *cols = H;
        return w->pool_w;
    case EN_T_HEAD_B:
        *rows = H;
        return w->pool_b;
    case EN_T_CLS_W:
        *rows = (size_t)c->num_labels, *cols = H;
        return w->cls_w;
    case EN_T_CLS_B:
        *rows = (size_t)c->num_labels;
        return w->cls_b;
    default:
        return NULL;
    }
}

static int per_layer(en_role r) {
    return r >= EN_T_Q_W && r <= EN_T_LN2_B;
}

/* Writes `len` bytes to `dir/name` via a temp file renamed into place. */
static int write_file(const char *dir, const char *name, const void *head, size_t head_len,
                      const en_model *m, int tensors, en_diag *diag);

/* The safetensors body: every tensor of the family's table in table order, F32. */
static int write_tensors(FILE *f, const en_model *m) {
    const en_family_def *fam = en_family_get(m->cfg.family);
    for (int r = 0; r < EN_T_COUNT; r++)
        for (int l = 0; l < (per_layer((en_role)r) ? m->cfg.layers : 1); l++) {
            size_t rows, cols;
            const float *p = tensor_of(m, (en_role)r, l, &rows, &cols);
            if (!p || !fam->tensor[r]) continue;
            size_t n = rows * (cols == VECTOR ? 1 : cols);
            if (n && fwrite(p, sizeof(float), n, f) != n) return -1;
        }
    return 0;
}

/* The safetensors header: names, dtype, shapes and offsets in the order write_tensors writes. */
static char *header_json(const en_model *m, size_t *len) {
    const en_family_def *fam = en_family_get(m->cfg.family);
    json_t *h = json_object();
    json_object_set_new(h, "__metadata__", json_pack("{s:s}", "format", "pt"));
    size_t off = 0;
    for (int r = 0; r < EN_T_COUNT; r++)
        for (int l = 0; l < (per_layer((en_role)r) ? m->cfg.layers : 1); l++) {
            size_t rows, cols;
            const float *p = tensor_of(m, (en_role)r, l, &rows, &cols);
            if (!p || !fam->tensor[r]) continue;
            char name[256];
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wformat-nonliteral" // the family table's literals
            snprintf(name, sizeof name, fam->tensor[r], l);
#pragma GCC diagnostic pop
            size_t bytes = rows * (cols == VECTOR ? 1 : cols) * sizeof(float);
            json_t *shape = cols != VECTOR ? json_pack("[I, I]", (json_int_t)rows, (json_int_t)cols)
                                           : json_pack("[I]", (json_int_t)rows);
            json_object_set_new(h, name,
                                json_pack("{s:s, s:o, s:[I, I]}", "dtype", "F32", "shape", shape,
                                          "data_offsets", (json_int_t)off,
                                          (json_int_t)(off + bytes)));
            off += bytes;
        }
    char *text = json_dumps(h, JSON_COMPACT);
    json_decref(h);
    if (!text) return NULL;
    // 8-byte aligned, as the format asks: padded with spaces
    size_t n = strlen(text), padded = (n + 7) / 8 * 8;
    char *out = realloc(text, padded + 1);
    if (!out) {
        free(text);
        return NULL;
    }
    memset(out + n, ' ', padded - n);
    out[padded] = '\0';
    *len = padded;
    return out;
}

static int write_file(const char *dir, const char *name, const void *head, size_t head_len,
                      const en_model *m, int tensors, en_diag *diag) {
    char path[PATH_MAX], tmp[PATH_MAX + 8];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    FILE *f = fopen(tmp, "wb");
    if (!f) return en_fail(diag, -errno, "%s: %s", tmp, strerror(errno));
    int ok = 1;
    if (tensors) { // safetensors: u64 little-endian header length, the header, the data
        uint64_t n = head_len;
        uint8_t le[8];
        for (int i = 0; i < 8; i++)
            le[i] = (uint8_t)(n >> (8 * i));
        ok = fwrite(le, 1, 8, f) == 8;
    }
    ok = ok && fwrite(head, 1, head_len, f) == head_len;
    if (ok && tensors) ok = write_tensors(f, m) == 0;
    int err = ok ? 0 : errno ? errno : EIO;
    if (fflush(f) != 0 || fsync(fileno(f)) != 0) err = err ? err : errno;
    if (fclose(f) != 0) err = err ? err : errno;
    if (!err && rename(tmp, path) != 0) err = errno;
    if (err) {
        unlink(tmp);
        return en_fail(diag, -err, "%s: %s", path, strerror(err));
    }
    return 0;
}

/* Copies src_dir/name to out_dir/name when it exists. */
static int copy_if_there(const char *src_dir, const char *out_dir, const char *name,
                         en_diag *diag) {
    char path[PATH_MAX];
    snprintf(path, sizeof path, "%s/%s", src_dir, name);
    char *data;
    size_t len;
    if (access(path, F_OK) != 0) return 0;
    int rc = en_file_read(path, 64u << 20, &data, &len, diag);
    if (rc) return rc;
    rc = write_file(out_dir, name, data, len, NULL, 0, diag);
    free(data);
    return rc;
}

int en_model_export(const en_model *m, const char *src_dir, const char *out_dir, en_diag *diag) {
    char path[PATH_MAX];
    if (mkdir(out_dir, 0755) != 0 && errno != EEXIST)
        return en_fail(diag, -errno, "%s: %s", out_dir, strerror(errno));
    static const char *const mine[] = {"config.json", "model.safetensors"};
    for (int i = 0; i < 2; i++) {
        snprintf(path, sizeof path, "%s/%s", out_dir, mine[i]);
        if (access(path, F_OK) == 0)
            return en_fail(diag, EN_EINPUT, "%s already holds %s: export into a new folder",
                           out_dir, mine[i]);
    }
    /* config.json: the source's, plus each layer's width */
    snprintf(path, sizeof path, "%s/config.json", src_dir);
    json_error_t jerr;
    json_t *cfg = json_load_file(path, 0, &jerr);
    if (!cfg) return en_fail(diag, EN_EFORMAT, "%s: %s", path, jerr.text);
    json_t *heads = json_array(), *ffn = json_array();
    for (int l = 0; l < m->cfg.layers; l++) {
        json_array_append_new(heads, json_integer(m->w.layer[l].heads));
        json_array_append_new(ffn, json_integer(m->w.layer[l].ffn));
    }
    json_object_set_new(cfg, "searchd_width",
                        json_pack("{s:o, s:o, s:s}", "heads", heads, "ffn", ffn, "note",
                                  "attention heads and FFN neurons each layer keeps (searchctl "
                                  "export; factors folded into the weights)"));
    char *text = json_dumps(cfg, JSON_INDENT(2));
    json_decref(cfg);
    if (!text) return en_fail(diag, EN_ENOMEM, "no memory for config.json");
    int rc = write_file(out_dir, "config.json", text, strlen(text), NULL, 0, diag);
    free(text);
    /* the tokenizer's files, whichever the family ships */
    static const char *const tok[] = {
        "vocab.txt",  "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json",
        "vocab.json", "merges.txt"};
    for (size_t i = 0; rc == 0 && i < sizeof tok / sizeof *tok; i++)
        rc = copy_if_there(src_dir, out_dir, tok[i], diag);
    size_t hlen = 0;
    char *head = rc == 0 ? header_json(m, &hlen) : NULL;
    if (rc == 0 && !head) rc = en_fail(diag, EN_ENOMEM, "no memory for the safetensors header");
    if (rc == 0) rc = write_file(out_dir, "model.safetensors", head, hlen, m, 1, diag);
    free(head);
    return rc;
}
