/* Packs each layer's four matrices and the head's dense layer once, so no product repacks a
 * weight per call; and the four layer matrices quantized to int8 for en_qgemm. */
#include <stdlib.h>

#include "en_gemm.h"
#include "en_model.h"

static int pack_int8(en_model *m);

int en_model_pack(en_model *m) {
    const en_config *cfg = &m->cfg;
    int H = cfg->hidden, F = cfg->ffn;
    size_t qkv = en_packed_floats(3 * H, H), wo = en_packed_floats(H, H);
    size_t w1 = en_packed_floats(F, H), w2 = en_packed_floats(H, F);
    size_t per_layer = qkv + wo + w1 + w2; // each a multiple of 16 floats: panels stay aligned
    size_t pool = en_packed_floats(H, H);
    void *arena = NULL;
    if (posix_memalign(&arena, 64, (per_layer * cfg->layers + pool) * sizeof(float)))
        return EN_ENOMEM;
    free(m->packed_arena);
    m->packed_arena = arena;
    for (int l = 0; l < cfg->layers; l++) {
        const en_layer_weights *w = &m->w.layer[l];
        float *p = m->packed_arena + per_layer * l;
        en_pack_rows(w->wqkv, H, 3 * H, H, 1.f, p);
        en_pack_rows(w->wo, H, H, H, 1.f, p + qkv);
        en_pack_rows(w->w1, H, F, H, 1.f, p + qkv + wo);
        en_pack_rows(w->w2, F, H, F, 1.f, p + qkv + wo + w1);
        m->packed[l] = (en_packed_layer){p, p + qkv, p + qkv + wo, p + qkv + wo + w1};
    }
    float *p = m->packed_arena + per_layer * cfg->layers;
    en_pack_rows(m->w.pool_w, H, H, H, 1.f, p);
    m->pool_packed = p;
    return pack_int8(m);
}

/* Bytes of one quantized matrix: the panels, then the scales and column sums (64-byte
 * multiples, so the next matrix's panels stay aligned). */
static size_t qmat_bytes(int n, int k) {
    size_t cols = (size_t)(n + EN_PANEL - 1) / EN_PANEL * EN_PANEL;
    return en_qpacked_bytes(n, k) + cols * (sizeof(float) + sizeof(int32_t));
}

static en_qmat qpack(const float *src, int n, int k, char **at) {
    size_t cols = (size_t)(n + EN_PANEL - 1) / EN_PANEL * EN_PANEL;
    int8_t *w = (int8_t *)*at;
    float *scale = (float *)(w + en_qpacked_bytes(n, k));
    int32_t *csum = (int32_t *)(scale + cols);
    en_qpack_rows(src, k, n, k, w, scale, csum);
    *at += qmat_bytes(n, k);
    return (en_qmat){w, scale, csum};
}

static int pack_int8(en_model *m) {
    const en_config *cfg = &m->cfg;
    int H = cfg->hidden, F = cfg->ffn;
    size_t per_layer =
        qmat_bytes(3 * H, H) + qmat_bytes(H, H) + qmat_bytes(F, H) + qmat_bytes(H, F);
    void *arena = NULL;
    if (posix_memalign(&arena, 64, per_layer * cfg->layers))
        return EN_ENOMEM;
    free(m->qpacked_arena);
    m->qpacked_arena = arena;
    char *at = arena;
    for (int l = 0; l < cfg->layers; l++) {
        const en_layer_weights *w = &m->w.layer[l];
        en_qlayer *q = &m->qpacked[l];
        q->wqkv = qpack(w->wqkv, 3 * H, H, &at);
        q->wo = qpack(w->wo, H, H, &at);
        q->w1 = qpack(w->w1, F, H, &at);
        q->w2 = qpack(w->w2, H, F, &at);
    }
    return 0;
}
