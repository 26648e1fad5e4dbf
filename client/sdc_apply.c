/* A record's "width" into a narrowed model. */
#include "client/sdc_apply.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/en_width.h"

static const msgpack_object *get(const msgpack_object *map, const char *key) {
    if (!map || map->type != MSGPACK_OBJECT_MAP) return NULL;
    size_t n = strlen(key);
    for (uint32_t i = 0; i < map->via.map.size; i++) {
        const msgpack_object *k = &map->via.map.ptr[i].key;
        if (k->type == MSGPACK_OBJECT_STR && k->via.str.size == n &&
            memcmp(k->via.str.ptr, key, n) == 0)
            return &map->via.map.ptr[i].val;
    }
    return NULL;
}

/* Entry l of list `key` of the width map: an array of at most `max` numbers, into ints or
 * floats. -1 when malformed. */
static int read_list(const msgpack_object *w, const char *key, int l, int max, int32_t *iv,
                     float *fv) {
    const msgpack_object *a = get(w, key);
    if (!a || a->type != MSGPACK_OBJECT_ARRAY || (uint32_t)l >= a->via.array.size) return -1;
    const msgpack_object *e = &a->via.array.ptr[l];
    if (e->type != MSGPACK_OBJECT_ARRAY || e->via.array.size > (uint32_t)max) return -1;
    for (uint32_t i = 0; i < e->via.array.size; i++) {
        const msgpack_object *v = &e->via.array.ptr[i];
        double x;
        if (v->type == MSGPACK_OBJECT_POSITIVE_INTEGER)
            x = (double)v->via.u64;
        else if (v->type == MSGPACK_OBJECT_NEGATIVE_INTEGER)
            x = (double)v->via.i64;
        else if (v->type == MSGPACK_OBJECT_FLOAT32 || v->type == MSGPACK_OBJECT_FLOAT64)
            x = v->via.f64;
        else
            return -1;
        if (iv) iv[i] = (int32_t)x;
        if (fv) fv[i] = (float)x;
    }
    return (int)e->via.array.size;
}

int sdc_apply_width(const msgpack_object *record, const en_model *m, en_model **out, char *err,
                    size_t cap) {
    *out = NULL;
    const msgpack_object *w = get(record, "width");
    if (!w) return 0;
    const en_config *cfg = &m->cfg;
    size_t per = (size_t)cfg->heads + cfg->ffn;
    int32_t *ids = malloc(per * cfg->layers * sizeof *ids);
    float *scale = malloc(per * cfg->layers * sizeof *scale);
    int rc = 0;
    if (!ids || !scale) {
        snprintf(err, cap, "out of memory");
        rc = EN_ENOMEM;
    }
    en_layer_width lw[EN_MAX_LAYERS];
    for (int l = 0; rc == 0 && l < cfg->layers; l++) {
        int32_t *h = ids + per * l, *n = h + cfg->heads;
        float *hs = scale + per * l, *ns = hs + cfg->heads;
        int g = read_list(w, "heads", l, cfg->heads, h, NULL);
        int k = read_list(w, "neurons", l, cfg->ffn, n, NULL);
        if (g < 1 || k < 0 || read_list(w, "head_scale", l, cfg->heads, NULL, hs) != g ||
            read_list(w, "neuron_scale", l, cfg->ffn, NULL, ns) != k) {
            snprintf(err, cap,
                     "the record's width is malformed at layer %d, or is not for this "
                     "model (%d layers, %d heads, %d FFN neurons)",
                     l, cfg->layers, cfg->heads, cfg->ffn);
            rc = EN_ESCHEDULE;
        }
        lw[l] = (en_layer_width){g, h, hs, k, n, ns};
    }
    en_diag diag;
    if (rc == 0 && (rc = en_model_narrow(m, lw, out, &diag)) != 0)
        snprintf(err, cap, "%s", diag.msg);
    free(ids);
    free(scale);
    return rc;
}
