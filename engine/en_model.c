/* Loads a *ForSequenceClassification checkpoint of any family of en_family.h: config.json,
 * the tokenizer, then model.safetensors. All weights live in one F32 arena laid out by the
 * tensor table below (names from the family's row); the
 * file is read once from start to end, tensors going straight into their place with pread (F16
 * and BF16 through a small buffer, converted exactly), every byte feeding the FNV-1a hash. */
#include "en_model.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "en_config.h"
#include "en_family.h"
#include "en_file.h"
#include "en_hash.h"
#include "en_safetensors.h"

// F32 tensors are read into the arena as they are stored: that needs a little-endian host.
#if !defined(__BYTE_ORDER__) || __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "en_model.c reads little-endian safetensors straight into memory"
#endif

#define CHUNK_BYTES (1u << 20) // the read buffer: the only memory beyond the arena
#define ALIGN_FLOATS 16        // each tensor that starts a field starts on a 64-byte boundary

/* Dimensions a tensor's expected shape is made of, all from config.json. D_G and D_F are a
 * layer's own: its heads times the head size, and its FFN neurons (all of them, unless the
 * checkpoint was narrowed by searchctl export). */
enum dim { D_NONE, D_V, D_H, D_E, D_P, D_T, D_I, D_C, D_G, D_F };

#define NO_FIELD (-1) // the tensor has no field: it follows the previous one in the arena

/* What each role of en_family.h is: its shape and its field. The names are the family's
 * (en_family.c). Arena order is table order (layer rows repeat per layer), which is what makes
 * query, key, value one [3H, H] matrix `wqkv` and their biases one [3H] vector `bqkv`. */
typedef struct tensor_def {
    int per_layer;       // field is in en_layer_weights, repeated for every layer
    enum dim rows, cols; // cols D_NONE: a vector
    ptrdiff_t field;     // offsetof in en_weights / en_layer_weights, or NO_FIELD
    int if_projected;    // needed only when the embeddings are narrower than H (E != H)
} tensor_def;

#define W_(f) (ptrdiff_t) offsetof(en_weights, f)
#define L_(f) (ptrdiff_t) offsetof(en_layer_weights, f)

static const tensor_def defs[EN_T_COUNT] = {
    [EN_T_WORD] = {0, D_V, D_E, W_(word_emb), 0},
    [EN_T_POS] = {0, D_P, D_E, W_(pos_emb), 0},
    [EN_T_TYPE] = {0, D_T, D_E, W_(type_emb), 0},
    [EN_T_EMB_LN_G] = {0, D_E, D_NONE, W_(emb_ln_g), 0},
    [EN_T_EMB_LN_B] = {0, D_E, D_NONE, W_(emb_ln_b), 0},
    [EN_T_PROJ_W] = {0, D_H, D_E, W_(proj_w), 1},
    [EN_T_PROJ_B] = {0, D_H, D_NONE, W_(proj_b), 1},
    [EN_T_Q_W] = {1, D_G, D_H, L_(wqkv), 0},
    [EN_T_K_W] = {1, D_G, D_H, NO_FIELD, 0},
    [EN_T_V_W] = {1, D_G, D_H, NO_FIELD, 0},
    [EN_T_Q_B] = {1, D_G, D_NONE, L_(bqkv), 0},
    [EN_T_K_B] = {1, D_G, D_NONE, NO_FIELD, 0},
    [EN_T_V_B] = {1, D_G, D_NONE, NO_FIELD, 0},
    [EN_T_O_W] = {1, D_H, D_G, L_(wo), 0},
    [EN_T_O_B] = {1, D_H, D_NONE, L_(bo), 0},
    [EN_T_LN1_G] = {1, D_H, D_NONE, L_(ln1_g), 0},
    [EN_T_LN1_B] = {1, D_H, D_NONE, L_(ln1_b), 0},
    [EN_T_W1] = {1, D_F, D_H, L_(w1), 0},
    [EN_T_B1] = {1, D_F, D_NONE, L_(b1), 0},
    [EN_T_W2] = {1, D_H, D_F, L_(w2), 0},
    [EN_T_B2] = {1, D_H, D_NONE, L_(b2), 0},
    [EN_T_LN2_G] = {1, D_H, D_NONE, L_(ln2_g), 0},
    [EN_T_LN2_B] = {1, D_H, D_NONE, L_(ln2_b), 0},
    [EN_T_HEAD_W] = {0, D_H, D_H, W_(pool_w), 0},
    [EN_T_HEAD_B] = {0, D_H, D_NONE, W_(pool_b), 0},
    [EN_T_CLS_W] = {0, D_C, D_H, W_(cls_w), 0},
    [EN_T_CLS_B] = {0, D_C, D_NONE, W_(cls_b), 0},
};
#define N_DEFS ((size_t)EN_T_COUNT)

/* One needed tensor of this checkpoint: a table row, for one layer when per-layer. */
typedef struct slot {
    const tensor_def *def;
    const char *name; // the family's name for it (a pattern when per-layer)
    int layer;
    const en_st_tensor *t; // borrowed from the header
    size_t off;            // in the arena, in floats
    size_t count;          // floats
} slot;

typedef struct loader {
    const char *path; // of model.safetensors, for messages
    const en_config *cfg;
    const en_family_def *fam;
    en_st_header hdr;
    slot *slots;
    size_t n_slots;
    int fd;
    uint8_t *buf;  // CHUNK_BYTES
    uint64_t hash; // FNV-1a of the bytes read so far, in file order
} loader;

static int load_weights(en_model *m, const char *dir, en_diag *diag);
static int open_fail(const char *dir, int rc, en_diag *diag);
static int plan_slots(loader *ld, en_diag *diag);
static int find_tensor(loader *ld, slot *s, en_diag *diag);
static int check_tensor(const loader *ld, const slot *s, en_diag *diag);
static int read_file(loader *ld, float *arena, en_diag *diag);
static int read_tensor(loader *ld, const en_st_tensor *t, float *dst, en_diag *diag);
static int hash_range(loader *ld, uint64_t from, uint64_t to, en_diag *diag);
static int read_fail(const loader *ld, int rc, en_diag *diag);
static void bind_fields(en_model *m, const loader *ld);
static void fill_dtype(en_model *m, const loader *ld);
static size_t dim_value(const en_config *c, enum dim d, int layer);
static int format_name(const loader *ld, const slot *s, int strip, int old, char *out, size_t cap);
static void format_shape(const uint64_t *shape, int ndim, char *out, size_t cap);
static int cmp_begin(const void *a, const void *b);
static float f16_to_f32(uint16_t h);
static float bf16_to_f32(uint16_t h);

int en_model_load(const char *dir, en_model **out, en_diag *diag) {
    *out = NULL;
    en_model *m = calloc(1, sizeof *m);
    if (!m) return en_fail(diag, EN_ENOMEM, "%s: no memory for the model", dir);
    char path[PATH_MAX];
    int rc = 0;
    if (snprintf(path, sizeof path, "%s/config.json", dir) >= (int)sizeof path)
        rc = en_fail(diag, -ENAMETOOLONG, "%s: path too long", dir);
    if (rc == 0) rc = en_config_load(path, &m->cfg, diag);
    if (rc == 0) rc = en_tokenizer_load(dir, &m->tok, diag);
    if (rc == 0 && en_tokenizer_vocab_size(m->tok) != m->cfg.vocab_size)
        rc = en_fail(diag, EN_EVOCAB, "%s/%s has %d pieces but config.json says vocab_size %d", dir,
                     en_tokenizer_file(m->tok), en_tokenizer_vocab_size(m->tok), m->cfg.vocab_size);
    if (rc == 0) rc = load_weights(m, dir, diag);
    for (int l = 0; rc == 0 && l < m->cfg.layers; l++) {
        m->w.layer[l].heads = m->cfg.layer_heads[l]; // whole, unless exported narrowed
        m->w.layer[l].ffn = m->cfg.layer_ffn[l];
    }
    if (rc == 0 && en_model_pack(m) < 0)
        rc = en_fail(diag, EN_ENOMEM, "%s: no memory for the packed weights", dir);
    if (rc < 0) {
        en_model_free(m);
        return rc;
    }
    *out = m;
    return 0;
}

const char *en_model_family(const en_model *m) {
    const en_family_def *f = m ? en_family_get(m->cfg.family) : NULL;
    return f ? f->name : "unknown";
}

void en_model_free(en_model *m) {
    if (!m) return;
    if (!m->base) en_tokenizer_free(m->tok);
    free(m->arena);
    free(m->packed_arena);
    free(m->qpacked_arena);
    en_model_free(m->owned_base);
    free(m);
}

// --- helpers ---

static int load_weights(en_model *m, const char *dir, en_diag *diag) {
    char path[PATH_MAX];
    if (snprintf(path, sizeof path, "%s/model.safetensors", dir) >= (int)sizeof path)
        return en_fail(diag, -ENAMETOOLONG, "%s: path too long", dir);
    loader ld = {.path = path,
                 .cfg = &m->cfg,
                 .fam = en_family_get(m->cfg.family),
                 .fd = -1,
                 .hash = EN_FNV1A_BASIS};
    int rc = 0;
    // Non-blocking open, regular files only: a FIFO here must not hang the loading thread.
    if ((rc = en_file_open(path, EN_MAX_WEIGHTS_BYTES, &ld.fd, NULL, diag)) < 0)
        return open_fail(dir, rc, diag);
    if ((rc = en_st_parse_fd(ld.fd, path, &ld.hdr, diag)) < 0) goto done;
    if ((rc = plan_slots(&ld, diag)) < 0) goto done;
    // Every tensor is found, typed and shaped as config.json says: only now allocate.
    m->arena_floats = ld.slots[ld.n_slots - 1].off + ld.slots[ld.n_slots - 1].count;
    void *arena = NULL;
    if (posix_memalign(&arena, ALIGN_FLOATS * sizeof(float), m->arena_floats * sizeof(float))) {
        rc = en_fail(diag, EN_ENOMEM, "%s: no memory for %zu MB of F32 weights", path,
                     m->arena_floats * sizeof(float) >> 20);
        goto done;
    }
    m->arena = arena;
    for (size_t i = 0, end = 0; i < ld.n_slots; end = ld.slots[i].off + ld.slots[i].count, i++)
        memset(m->arena + end, 0, (ld.slots[i].off - end) * sizeof(float)); // alignment gaps
    ld.buf = malloc(CHUNK_BYTES);
    if (!ld.buf) {
        rc = en_fail(diag, EN_ENOMEM, "%s: no memory for the read buffer", path);
        goto done;
    }
    if ((rc = read_file(&ld, m->arena, diag)) < 0) goto done;
    bind_fields(m, &ld);
    fill_dtype(m, &ld);
    m->weights_hash = ld.hash;
done:
    free(ld.buf);
    free(ld.slots);
    en_st_header_free(&ld.hdr);
    close(ld.fd);
    return rc;
}

/* Expands the table into one slot per needed tensor, finds and checks each in the header, and
 * lays the arena out. */
static int plan_slots(loader *ld, en_diag *diag) {
    size_t per_layer = 0;
    for (size_t i = 0; i < N_DEFS; i++)
        per_layer += (size_t)defs[i].per_layer;
    ld->slots = calloc(N_DEFS + per_layer * (size_t)ld->cfg->layers, sizeof *ld->slots);
    if (!ld->slots) return en_fail(diag, EN_ENOMEM, "%s: no memory for the tensor table", ld->path);
    int projected = ld->cfg->emb != ld->cfg->hidden;
    for (size_t i = 0; i < N_DEFS; i++) {
        const char *name = ld->fam->tensor[i];
        if (!defs[i].per_layer) {
            if (name && (!defs[i].if_projected || projected))
                ld->slots[ld->n_slots++] = (slot){.def = &defs[i], .name = name};
            continue;
        }
        size_t end = i; // the run of per-layer rows [i, end) repeats for every layer
        while (end < N_DEFS && defs[end].per_layer)
            end++;
        for (int l = 0; l < ld->cfg->layers; l++)
            for (size_t k = i; k < end; k++)
                ld->slots[ld->n_slots++] =
                    (slot){.def = &defs[k], .name = ld->fam->tensor[k], .layer = l};
        i = end - 1;
    }
    size_t off = 0;
    for (size_t i = 0; i < ld->n_slots; i++) {
        slot *s = &ld->slots[i];
        int rc = find_tensor(ld, s, diag);
        if (rc == 0) rc = check_tensor(ld, s, diag);
        if (rc < 0) return rc;
        // Sizes are bounded by config.json's ranges, so these sums cannot overflow size_t.
        s->count =
            dim_value(ld->cfg, s->def->rows, s->layer) * dim_value(ld->cfg, s->def->cols, s->layer);
        if (s->def->field != NO_FIELD) off = (off + ALIGN_FLOATS - 1) / ALIGN_FLOATS * ALIGN_FLOATS;
        s->off = off;
        off += s->count;
    }
    return 0;
}

/* Looks the slot's tensor up under every name it may have (with or without the family's
 * prefix, the TF-era LayerNorm gamma/beta); two of them present is ambiguous. */
static int find_tensor(loader *ld, slot *s, en_diag *diag) {
    char name[256], found_name[256] = "";
    for (int old = 0; old <= 1; old++) {
        for (int strip = 0; strip <= 1; strip++) {
            if (!format_name(ld, s, strip, old, name, sizeof name)) continue;
            const en_st_tensor *t = en_st_find(&ld->hdr, name);
            if (!t) continue;
            if (s->t)
                return en_fail(diag, EN_ETENSOR, "%s: both '%s' and '%s' are present: which one?",
                               ld->path, found_name, name);
            s->t = t;
            memcpy(found_name, name, sizeof name);
        }
    }
    if (s->t) return 0;
    format_name(ld, s, 0, 0, name, sizeof name);
    return en_fail(diag, EN_ETENSOR, "%s: tensor '%s' is missing (a %s checkpoint has it)",
                   ld->path, name, ld->fam->name);
}

static int check_tensor(const loader *ld, const slot *s, en_diag *diag) {
    const en_st_tensor *t = s->t;
    if (t->dtype != EN_ST_F32 && t->dtype != EN_ST_F16 && t->dtype != EN_ST_BF16)
        return en_fail(diag, EN_EDTYPE,
                       "%s: tensor '%s' has dtype %s; only F32, F16 and BF16 are supported",
                       ld->path, t->name, en_st_dtype_name(t->dtype));
    uint64_t want[2] = {dim_value(ld->cfg, s->def->rows, s->layer),
                        dim_value(ld->cfg, s->def->cols, s->layer)};
    int want_ndim = s->def->cols == D_NONE ? 1 : 2;
    if (t->ndim == want_ndim && t->shape[0] == want[0] &&
        (want_ndim == 1 || t->shape[1] == want[1]))
        return 0;
    char found[128], expected[64];
    format_shape(t->shape, t->ndim, found, sizeof found);
    format_shape(want, want_ndim, expected, sizeof expected);
    return en_fail(diag, EN_ESHAPE, "%s: tensor '%s' has shape %s; config.json implies %s",
                   ld->path, t->name, found, expected);
}

/* Reads the file once, start to end: bytes of needed tensors go to their slots, every byte
 * (header, gaps, unused tensors included) into the hash. */
static int read_file(loader *ld, float *arena, en_diag *diag) {
    const en_st_header *h = &ld->hdr;
    // Which slot, if any, each header tensor fills; then the tensors in file order.
    float **dst = calloc(h->n, sizeof *dst);
    const en_st_tensor **order = malloc(h->n * sizeof *order);
    int rc = 0;
    if (!dst || !order) {
        rc = en_fail(diag, EN_ENOMEM, "%s: no memory for the read plan", ld->path);
        goto done;
    }
    for (size_t i = 0; i < ld->n_slots; i++)
        dst[ld->slots[i].t - h->t] = arena + ld->slots[i].off;
    for (size_t i = 0; i < h->n; i++)
        order[i] = &h->t[i];
    qsort(order, h->n, sizeof *order, cmp_begin);
    uint64_t pos = 0;
    for (size_t i = 0; i < h->n && rc == 0; i++) {
        const en_st_tensor *t = order[i];
        if (t->begin == t->end) continue; // no bytes: an empty tensor may sit anywhere
        rc = hash_range(ld, pos, h->data_start + t->begin, diag);
        float *d = dst[t - h->t];
        if (rc == 0)
            rc = d ? read_tensor(ld, t, d, diag)
                   : hash_range(ld, h->data_start + t->begin, h->data_start + t->end, diag);
        pos = h->data_start + t->end;
    }
    if (rc == 0) rc = hash_range(ld, pos, h->file_size, diag);
done:
    free(order);
    free(dst);
    return rc;
}

static int read_tensor(loader *ld, const en_st_tensor *t, float *dst, en_diag *diag) {
    uint64_t off = ld->hdr.data_start + t->begin, end = ld->hdr.data_start + t->end;
    while (off < end) {
        size_t n = end - off < CHUNK_BYTES ? (size_t)(end - off) : CHUNK_BYTES;
        // F32 goes straight into place; the hash then reads it while it is still in cache.
        uint8_t *p = t->dtype == EN_ST_F32 ? (uint8_t *)dst : ld->buf;
        int rc = en_st_pread_full(ld->fd, p, n, off);
        if (rc != 0) return read_fail(ld, rc, diag);
        ld->hash = en_fnv1a(ld->hash, p, n);
        size_t n16 = n / 2;
        if (t->dtype == EN_ST_F16)
            for (size_t i = 0; i < n16; i++)
                dst[i] = f16_to_f32((uint16_t)(p[2 * i] | p[2 * i + 1] << 8));
        else if (t->dtype == EN_ST_BF16)
            for (size_t i = 0; i < n16; i++)
                dst[i] = bf16_to_f32((uint16_t)(p[2 * i] | p[2 * i + 1] << 8));
        dst += t->dtype == EN_ST_F32 ? n / 4 : n16; // CHUNK_BYTES keeps whole elements
        off += n;
    }
    return 0;
}

static int hash_range(loader *ld, uint64_t from, uint64_t to, en_diag *diag) {
    while (from < to) {
        size_t n = to - from < CHUNK_BYTES ? (size_t)(to - from) : CHUNK_BYTES;
        int rc = en_st_pread_full(ld->fd, ld->buf, n, from);
        if (rc != 0) return read_fail(ld, rc, diag);
        ld->hash = en_fnv1a(ld->hash, ld->buf, n);
        from += n;
    }
    return 0;
}

/* model.safetensors cannot be opened: say how to convert when the folder has PyTorch weights. */
/* model.safetensors could not be opened (`rc`, the message in diag): when it is missing but
 * pytorch_model.bin is there, say how to convert that. */
static int open_fail(const char *dir, int rc, en_diag *diag) {
    char bin[PATH_MAX];
    if (rc == -ENOENT && snprintf(bin, sizeof bin, "%s/pytorch_model.bin", dir) < (int)sizeof bin &&
        access(bin, F_OK) == 0)
        return en_fail(diag, EN_EFORMAT,
                       "%s: only pytorch_model.bin (a PyTorch pickle), which is not read; convert "
                       "it to model.safetensors: python3 -c \"from transformers import "
                       "AutoModelForSequenceClassification as M; "
                       "M.from_pretrained('%s').save_pretrained('%s', safe_serialization=True)\"",
                       dir, dir, dir);
    return rc;
}

static int read_fail(const loader *ld, int rc, en_diag *diag) {
    if (rc == 1) return en_fail(diag, EN_EFORMAT, "%s: file shrank while it was read", ld->path);
    return en_fail(diag, rc, "%s: read failed: %s", ld->path, strerror(-rc));
}

static void bind_fields(en_model *m, const loader *ld) {
    for (size_t i = 0; i < ld->n_slots; i++) {
        const slot *s = &ld->slots[i];
        if (s->def->field == NO_FIELD) continue;
        char *base = s->def->per_layer ? (char *)&m->w.layer[s->layer] : (char *)&m->w;
        *(const float **)(base + s->def->field) = m->arena + s->off;
    }
}

// The dtype of the weights as stored, "mixed" when they differ.
static void fill_dtype(en_model *m, const loader *ld) {
    en_st_dtype d = ld->slots[0].t->dtype;
    const char *name = en_st_dtype_name(d);
    for (size_t i = 1; i < ld->n_slots; i++)
        if (ld->slots[i].t->dtype != d) name = "mixed";
    snprintf(m->dtype, sizeof m->dtype, "%s", name);
}

static size_t dim_value(const en_config *c, enum dim d, int layer) {
    switch (d) {
    case D_G:
        return (size_t)c->layer_heads[layer] * (size_t)(c->hidden / c->heads);
    case D_F:
        return (size_t)c->layer_ffn[layer];
    case D_NONE:
        return 1;
    case D_V:
        return (size_t)c->vocab_size;
    case D_H:
        return (size_t)c->hidden;
    case D_E:
        return (size_t)c->emb;
    case D_P:
        return (size_t)c->pos_rows;
    case D_T:
        return (size_t)c->type_vocab;
    case D_I:
        return (size_t)c->ffn;
    case D_C:
        return (size_t)c->num_labels;
    }
    return 0;
}

/* The slot's name, without the family's prefix when `strip`, with the TF-era LayerNorm
 * gamma/beta when `old`; 0 when there is no such variant. */
static int format_name(const loader *ld, const slot *s, int strip, int old, char *out, size_t cap) {
    const char *pattern = s->name;
    size_t plen = strlen(ld->fam->prefix);
    if (strip) {
        if (strncmp(pattern, ld->fam->prefix, plen) != 0) return 0;
        pattern += plen;
    }
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wformat-nonliteral" // the patterns are the table's literals
    size_t n = (size_t)snprintf(out, cap, pattern, s->layer);
#pragma GCC diagnostic pop
    if (!old) return 1;
    // LayerNorm.weight -> LayerNorm.gamma, LayerNorm.bias -> LayerNorm.beta
    static const char *const from[] = {"LayerNorm.weight", "LayerNorm.bias"};
    static const char *const to[] = {"LayerNorm.gamma", "LayerNorm.beta"};
    for (int i = 0; i < 2; i++) {
        size_t fl = strlen(from[i]);
        if (n < cap && n >= fl && strcmp(out + n - fl, from[i]) == 0) {
            snprintf(out + n - fl, cap - (n - fl), "%s", to[i]);
            return 1;
        }
    }
    return 0;
}

static void format_shape(const uint64_t *shape, int ndim, char *out, size_t cap) {
    size_t n = (size_t)snprintf(out, cap, "[");
    for (int i = 0; i < ndim && n < cap; i++)
        n += (size_t)snprintf(out + n, cap - n, "%s%llu", i ? ", " : "",
                              (unsigned long long)shape[i]);
    if (n < cap) snprintf(out + n, cap - n, "]");
}

static int cmp_begin(const void *a, const void *b) {
    const en_st_tensor *x = *(const en_st_tensor *const *)a, *y = *(const en_st_tensor *const *)b;
    return (x->begin > y->begin) - (x->begin < y->begin);
}

// Exact: every F16 value, subnormals, infinities and NaN payloads included, is an F32 value.
static float f16_to_f32(uint16_t h) {
    uint32_t sign = (uint32_t)(h & 0x8000) << 16;
    uint32_t exp = h >> 10 & 0x1f, man = h & 0x3ff, bits;
    if (exp == 0x1f) {
        bits = sign | 0x7f800000u | man << 13;
    } else if (exp != 0) {
        bits = sign | (exp + 112) << 23 | man << 13; // rebias 15 -> 127
    } else if (man == 0) {
        bits = sign;
    } else { // subnormal man * 2^-24: normalise so the leading 1 is bit 10
        uint32_t e = 113;
        while (!(man & 0x400)) {
            man <<= 1;
            e--;
        }
        bits = sign | e << 23 | (man & 0x3ff) << 13;
    }
    float f;
    memcpy(&f, &bits, sizeof f);
    return f;
}

static float bf16_to_f32(uint16_t h) {
    uint32_t bits = (uint32_t)h << 16;
    float f;
    memcpy(&f, &bits, sizeof f);
    return f;
}
