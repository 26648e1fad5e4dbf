/* Packs each layer's four matrices and the head's dense layer once, so no product repacks a
 * weight per call. */
#include <stdlib.h>

#include "en_gemm.h"
#include "en_model.h"

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
    return 0;
}
