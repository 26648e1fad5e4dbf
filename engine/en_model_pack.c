/* Packs each layer's four matrices and the head's dense layer once, so no product repacks a
 * weight per call. */
#include <stdlib.h>

#include "en_gemm.h"
#include "en_model.h"

size_t en_layer_packed_floats(const en_config *cfg, const en_layer_weights *w) {
    int H = cfg->hidden, G = w->heads * (H / cfg->heads), F = w->ffn;
    return en_packed_floats(3 * G, H) + en_packed_floats(H, G) + en_packed_floats(F, H) +
           en_packed_floats(H, F); // each a multiple of 16 floats: panels stay aligned
}

void en_layer_pack(const en_config *cfg, const en_layer_weights *w, float *dst,
                   en_packed_layer *out) {
    int H = cfg->hidden, G = w->heads * (H / cfg->heads), F = w->ffn;
    out->wqkv = dst;
    en_pack_rows(w->wqkv, H, 3 * G, H, 1.f, dst);
    dst += en_packed_floats(3 * G, H);
    out->wo = dst;
    en_pack_rows(w->wo, G, H, G, 1.f, dst);
    dst += en_packed_floats(H, G);
    out->w1 = dst;
    en_pack_rows(w->w1, H, F, H, 1.f, dst);
    dst += en_packed_floats(F, H);
    out->w2 = dst;
    en_pack_rows(w->w2, F, H, F, 1.f, dst);
}

int en_model_pack(en_model *m) {
    const en_config *cfg = &m->cfg;
    int H = cfg->hidden;
    size_t total = en_packed_floats(H, H);
    for (int l = 0; l < cfg->layers; l++)
        total += en_layer_packed_floats(cfg, &m->w.layer[l]);
    void *arena = NULL;
    if (posix_memalign(&arena, 64, total * sizeof(float)))
        return EN_ENOMEM;
    free(m->packed_arena);
    m->packed_arena = arena;
    float *p = m->packed_arena;
    for (int l = 0; l < cfg->layers; l++) {
        en_layer_pack(cfg, &m->w.layer[l], p, &m->packed[l]);
        p += en_layer_packed_floats(cfg, &m->w.layer[l]);
    }
    if (m->base) { // the head is the base model's, already packed
        m->pool_packed = m->base->pool_packed;
        return 0;
    }
    en_pack_rows(m->w.pool_w, H, H, H, 1.f, p);
    m->pool_packed = p;
    return 0;
}
