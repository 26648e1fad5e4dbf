/* Packs each layer's four matrices and the head's dense layer once, so no product repacks a
 * weight per call; and the four layer matrices quantized to int8 for en_qgemm. */
#include <stdlib.h>

#include "en_gemm.h"
#include "en_model.h"
#include "en_qgemm.h"

size_t en_pack_attention(const en_config *cfg, const en_layer_weights *w, float *dst,
                         en_packed_layer *out) {
    int H = cfg->hidden, G = w->heads * (H / cfg->heads);
    size_t qkv = en_packed_floats(3 * G, H); // each a multiple of 16 floats: panels stay aligned
    if (dst) {
        out->wqkv = dst;
        en_pack_rows(w->wqkv, H, 3 * G, H, 1.f, dst);
        out->wo = dst + qkv;
        en_pack_rows(w->wo, G, H, G, 1.f, dst + qkv);
    }
    return qkv + en_packed_floats(H, G);
}

size_t en_pack_ffn(const en_config *cfg, const en_layer_weights *w, float *dst,
                   en_packed_layer *out) {
    int H = cfg->hidden, F = w->ffn;
    size_t w1 = en_packed_floats(F, H);
    if (dst) {
        out->w1 = dst;
        en_pack_rows(w->w1, H, F, H, 1.f, dst);
        out->w2 = dst + w1;
        en_pack_rows(w->w2, F, H, F, 1.f, dst + w1);
    }
    return w1 + en_packed_floats(H, F);
}

/* Bytes of one quantized matrix: the panels, then the scales and column sums (64-byte
 * multiples, so the next matrix's panels stay aligned). */
static size_t qmat_bytes(int n, int k) {
    size_t cols = (size_t)(n + EN_PANEL - 1) / EN_PANEL * EN_PANEL;
    return en_qpacked_bytes(n, k) + cols * (sizeof(float) + sizeof(int32_t));
}

/* Quantizes W [n, k] into `at` (NULL: only counts); returns the bytes used. */
static size_t qpack(const float *src, int n, int k, char *at, en_qmat *out) {
    if (at) {
        size_t cols = (size_t)(n + EN_PANEL - 1) / EN_PANEL * EN_PANEL;
        int8_t *w = (int8_t *)at;
        float *scale = (float *)(w + en_qpacked_bytes(n, k));
        int32_t *csum = (int32_t *)(scale + cols);
        en_qpack_rows(src, k, n, k, w, scale, csum);
        *out = (en_qmat){w, scale, csum};
    }
    return qmat_bytes(n, k);
}

size_t en_qpack_attention(const en_config *cfg, const en_layer_weights *w, char *dst,
                          en_qlayer *out) {
    int H = cfg->hidden, G = w->heads * (H / cfg->heads);
    size_t used = qpack(w->wqkv, 3 * G, H, dst, out ? &out->wqkv : NULL);
    return used + qpack(w->wo, H, G, dst ? dst + used : NULL, out ? &out->wo : NULL);
}

size_t en_qpack_ffn(const en_config *cfg, const en_layer_weights *w, char *dst, en_qlayer *out) {
    int H = cfg->hidden, F = w->ffn;
    size_t used = qpack(w->w1, F, H, dst, out ? &out->w1 : NULL);
    return used + qpack(w->w2, H, F, dst ? dst + used : NULL, out ? &out->w2 : NULL);
}

static int pack_int8(en_model *m) {
    const en_config *cfg = &m->cfg;
    size_t total = 0;
    for (int l = 0; l < cfg->layers; l++)
        total += en_qpack_attention(cfg, &m->w.layer[l], NULL, NULL) +
                 en_qpack_ffn(cfg, &m->w.layer[l], NULL, NULL);
    void *arena = en_weights_alloc(total);
    if (!arena) return EN_ENOMEM;
    free(m->qpacked_arena);
    m->qpacked_arena = arena;
    char *at = arena;
    for (int l = 0; l < cfg->layers; l++) {
        at += en_qpack_attention(cfg, &m->w.layer[l], at, &m->qpacked[l]);
        at += en_qpack_ffn(cfg, &m->w.layer[l], at, &m->qpacked[l]);
    }
    return 0;
}

int en_model_pack(en_model *m) {
    const en_config *cfg = &m->cfg;
    int H = cfg->hidden;
    size_t total = en_packed_floats(H, H);
    for (int l = 0; l < cfg->layers; l++)
        total += en_pack_attention(cfg, &m->w.layer[l], NULL, NULL) +
                 en_pack_ffn(cfg, &m->w.layer[l], NULL, NULL);
    void *arena = en_weights_alloc(total * sizeof(float));
    if (!arena) return EN_ENOMEM;
    free(m->packed_arena);
    m->packed_arena = arena;
    float *p = m->packed_arena;
    for (int l = 0; l < cfg->layers; l++) {
        p += en_pack_attention(cfg, &m->w.layer[l], p, &m->packed[l]);
        p += en_pack_ffn(cfg, &m->w.layer[l], p, &m->packed[l]);
    }
    if (m->base) { // the head is the base model's, already packed
        m->pool_packed = m->base->pool_packed;
    } else {
        en_pack_rows(m->w.pool_w, H, H, H, 1.f, p);
        m->pool_packed = p;
    }
    return pack_int8(m);
}
