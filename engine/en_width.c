/* Narrowed models: the kept heads' and neurons' weights copied out, factors folded in. */
#include "en_width.h"

#include "en_gemm.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* Layer l's width against the configuration (en_model_narrow()'s check). */
static int width_check(const en_config *cfg, int l, const en_layer_width *w, en_diag *diag) {
    if (w->n_heads == 0) return 0;
    if (w->n_heads > cfg->heads)
        return en_fail(diag, EN_ESCHEDULE, "layer %d keeps %d heads; the model has %d", l,
                       w->n_heads, cfg->heads);
    if (w->n_neurons > cfg->ffn)
        return en_fail(diag, EN_ESCHEDULE, "layer %d keeps %d FFN neurons; the model has %d", l,
                       w->n_neurons, cfg->ffn);
    struct {
        const char *what;
        int n, limit;
        const int32_t *ids;
        const float *scale;
    } lists[2] = {
        {"head", w->n_heads > 0 ? w->n_heads : 0, cfg->heads, w->heads, w->head_scale},
        {"neuron", w->n_neurons > 0 ? w->n_neurons : 0, cfg->ffn, w->neurons, w->neuron_scale}};
    for (int i = 0; i < 2; i++)
        for (int j = 0; j < lists[i].n; j++) {
            int32_t id = lists[i].ids[j];
            if (id < 0 || id >= lists[i].limit || (j > 0 && id <= lists[i].ids[j - 1]))
                return en_fail(diag, EN_ESCHEDULE,
                               "layer %d: %s %d at place %d is out of range or not ascending", l,
                               lists[i].what, id, j);
            if (lists[i].scale && !isfinite(lists[i].scale[j]))
                return en_fail(diag, EN_ESCHEDULE,
                               "layer %d: %s %d has a factor that is not "
                               "a finite number",
                               l, lists[i].what, id);
        }
    return 0;
}

/* Floats of layer l's narrowed row-major weights: wqkv, bqkv, wo of a narrowed attention, w1,
 * b1, w2 of a narrowed FFN. */
static size_t narrow_floats(const en_config *cfg, const en_layer_width *w) {
    size_t H = (size_t)cfg->hidden, G = w->n_heads > 0 ? w->n_heads * (H / cfg->heads) : 0;
    size_t F = w->n_neurons > 0 ? (size_t)w->n_neurons : 0;
    return 3 * G * H + 3 * G + H * G + F * H + F + H * F;
}

/* The widths a narrowed layer computes. */
static en_layer_weights shape_of(const en_config *cfg, const en_layer_width *w) {
    return (en_layer_weights){.heads = w->n_heads > 0 ? w->n_heads : cfg->heads,
                              .ffn = w->n_neurons >= 0 ? w->n_neurons : cfg->ffn};
}

static void narrow_layer(const en_config *cfg, const en_layer_weights *src, const en_layer_width *w,
                         float *mem, en_layer_weights *dst) {
    int H = cfg->hidden, d = H / cfg->heads, g = w->n_heads > 0 ? w->n_heads : 0, G = g * d;
    int F = w->n_neurons > 0 ? w->n_neurons : 0;
    *dst = *src; // biases, LayerNorms and halves that stay whole are borrowed
    float *wqkv = mem, *bqkv = wqkv + (size_t)3 * G * H, *wo = bqkv + 3 * G;
    float *w1 = wo + (size_t)H * G, *b1 = w1 + (size_t)F * H, *w2 = b1 + F;
    if (g > 0) {
        dst->heads = g;
        dst->wqkv = wqkv, dst->bqkv = bqkv, dst->wo = wo;
    }
    if (w->n_neurons >= 0) {
        dst->ffn = F;
        dst->w1 = w1, dst->b1 = b1, dst->w2 = w2;
    }
    /* Q, K, V rows of the kept heads, in that order; Wo columns of the same heads, scaled */
    for (int part = 0; part < 3; part++)
        for (int i = 0; i < g; i++) {
            size_t from = (size_t)part * H + (size_t)w->heads[i] * d;
            size_t to = (size_t)part * G + (size_t)i * d;
            memcpy(wqkv + to * H, src->wqkv + from * H, (size_t)d * H * sizeof(float));
            memcpy(bqkv + to, src->bqkv + from, (size_t)d * sizeof(float));
        }
    for (int o = 0; o < H; o++)
        for (int i = 0; i < g; i++) {
            float s = w->head_scale ? w->head_scale[i] : 1.f;
            const float *col = src->wo + (size_t)o * H + (size_t)w->heads[i] * d;
            for (int t = 0; t < d; t++)
                wo[(size_t)o * G + (size_t)i * d + t] = col[t] * s;
        }
    /* W1 rows and b1 entries of the kept neurons; W2 columns of the same, scaled */
    for (int j = 0; j < F; j++) {
        memcpy(w1 + (size_t)j * H, src->w1 + (size_t)w->neurons[j] * H, H * sizeof(float));
        b1[j] = src->b1[w->neurons[j]];
    }
    for (int o = 0; o < H; o++)
        for (int j = 0; j < F; j++)
            w2[(size_t)o * F + j] = src->w2[(size_t)o * cfg->ffn + w->neurons[j]] *
                                    (w->neuron_scale ? w->neuron_scale[j] : 1.f);
}

int en_model_narrow(const en_model *m, const en_layer_width *width, en_model **out, en_diag *diag) {
    *out = NULL;
    const en_config *cfg = &m->cfg;
    size_t rows = 0, packed = 0, qbytes = 0;
    for (int l = 0; l < cfg->layers; l++) {
        int rc = width_check(cfg, l, &width[l], diag);
        if (rc) return rc;
        en_layer_weights shape = shape_of(cfg, &width[l]);
        if (width[l].n_heads) {
            rows += narrow_floats(cfg, &width[l]);
            packed += (width[l].n_heads > 0 ? en_pack_attention(cfg, &shape, NULL, NULL) : 0) +
                      (width[l].n_neurons >= 0 ? en_pack_ffn(cfg, &shape, NULL, NULL) : 0);
            qbytes += (width[l].n_heads > 0 ? en_qpack_attention(cfg, &shape, NULL, NULL) : 0) +
                      (width[l].n_neurons >= 0 ? en_qpack_ffn(cfg, &shape, NULL, NULL) : 0);
        }
    }
    en_model *n = malloc(sizeof *n);
    if (!n) return en_fail(diag, EN_ENOMEM, "no memory for a narrowed model");
    *n = *m;
    n->base = m->base ? m->base : m;
    n->owned_base = NULL;
    n->arena = malloc((rows ? rows : 1) * sizeof(float));
    n->arena_floats = rows;
    n->packed_arena = en_weights_alloc((packed ? packed : 16) * 4);
    n->qpacked_arena = en_weights_alloc(qbytes ? qbytes : 64);
    if (!n->arena || !n->packed_arena || !n->qpacked_arena) {
        free(n->arena);
        free(n->packed_arena);
        free(n->qpacked_arena);
        free(n);
        return en_fail(diag, EN_ENOMEM, "no memory for a narrowed model (%zu floats)",
                       rows + packed);
    }
    float *r = n->arena, *p = n->packed_arena;
    char *q = n->qpacked_arena;
    for (int l = 0; l < cfg->layers; l++) {
        if (!width[l].n_heads) continue;
        narrow_layer(cfg, &m->w.layer[l], &width[l], r, &n->w.layer[l]);
        r += narrow_floats(cfg, &width[l]);
        if (width[l].n_heads > 0) {
            p += en_pack_attention(cfg, &n->w.layer[l], p, &n->packed[l]);
            q += en_qpack_attention(cfg, &n->w.layer[l], q, &n->qpacked[l]);
        }
        if (width[l].n_neurons >= 0) {
            p += en_pack_ffn(cfg, &n->w.layer[l], p, &n->packed[l]);
            q += en_qpack_ffn(cfg, &n->w.layer[l], q, &n->qpacked[l]);
        }
    }
    *out = n;
    return 0;
}

void en_model_compose_layer(en_model *dst, int l, const en_model *attn, const en_model *ffn) {
    en_layer_weights *w = &dst->w.layer[l];
    const en_layer_weights *a = &attn->w.layer[l], *f = &ffn->w.layer[l];
    w->heads = a->heads;
    w->wqkv = a->wqkv;
    w->bqkv = a->bqkv;
    w->wo = a->wo;
    w->ffn = f->ffn;
    w->w1 = f->w1;
    w->b1 = f->b1;
    w->w2 = f->w2;
    dst->packed[l].wqkv = attn->packed[l].wqkv;
    dst->packed[l].wo = attn->packed[l].wo;
    dst->packed[l].w1 = ffn->packed[l].w1;
    dst->packed[l].w2 = ffn->packed[l].w2;
    dst->qpacked[l].wqkv = attn->qpacked[l].wqkv;
    dst->qpacked[l].wo = attn->qpacked[l].wo;
    dst->qpacked[l].w1 = ffn->qpacked[l].w1;
    dst->qpacked[l].w2 = ffn->qpacked[l].w2;
}
