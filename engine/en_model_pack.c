/* Packs each layer's four matrices and the head's dense layer once, so no product repacks a
 * weight per call. */
#include <stdlib.h>

#include "en_gemm.h"
#include "en_model.h"

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

int en_model_pack(en_model *m) {
    const en_config *cfg = &m->cfg;
    int H = cfg->hidden;
    size_t total = en_packed_floats(H, H);
    for (int l = 0; l < cfg->layers; l++)
        total += en_pack_attention(cfg, &m->w.layer[l], NULL, NULL) +
                 en_pack_ffn(cfg, &m->w.layer[l], NULL, NULL);
    void *arena = NULL;
    if (posix_memalign(&arena, 64, total * sizeof(float)))
        return EN_ENOMEM;
    free(m->packed_arena);
    m->packed_arena = arena;
    float *p = m->packed_arena;
    for (int l = 0; l < cfg->layers; l++) {
        p += en_pack_attention(cfg, &m->w.layer[l], p, &m->packed[l]);
        p += en_pack_ffn(cfg, &m->w.layer[l], p, &m->packed[l]);
    }
    if (m->base) { // the head is the base model's, already packed
        m->pool_packed = m->base->pool_packed;
        return 0;
    }
    en_pack_rows(m->w.pool_w, H, H, H, 1.f, p);
    m->pool_packed = p;
    return 0;
}
