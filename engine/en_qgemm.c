/* INT8 products: quantization, packing, the scalar reference, and the choice of vector path by
 * CPU. Compiled with -ffp-contract=off (meson.build), like the vector paths: the epilogue's
 * float operations are the same, one by one, on every path. */
#include "en_qgemm.h"

#include <string.h>

#include "en_isa.h"

/* The reference's GELU is the vector one on vectors of one float: the same operations. */
typedef float vf __attribute__((vector_size(4)));
typedef int32_t vi __attribute__((vector_size(4)));
#include "en_vmath.h"

typedef struct qisa_path {
    en_isa isa; // name, supported(): first, for en_isa_table
    en_qgemm_fn *fn;
} qisa_path;

static void scalar_panels(int m, int n, int k, const en_qrows *a, const en_qmat *w,
                          const float *bias, int flags, float *c, int ldc, int jp0, int jp1);

static int has_vnni(void) {
    return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
           __builtin_cpu_supports("avx512vnni");
}
static int has_avx512bw(void) {
    return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw");
}
static int has_avx2(void) {
    return __builtin_cpu_supports("avx2");
}
static int has_ssse3(void) {
    return __builtin_cpu_supports("ssse3");
}
static int has_scalar(void) {
    return 1;
}

/* Best first. */
static const qisa_path paths[] = {
    {{"avx512vnni", has_vnni}, en_qgemm_avx512vnni},
    {{"avx512bw", has_avx512bw}, en_qgemm_avx512bw},
    {{"avx2", has_avx2}, en_qgemm_avx2},
    {{"ssse3", has_ssse3}, en_qgemm_ssse3},
    {{"scalar", has_scalar}, scalar_panels},
};

const char *const en_qgemm_isa_names[] = {"avx512vnni", "avx512bw", "avx2",
                                          "ssse3",      "scalar",   NULL};

/* The path in use: chosen once, on first use (or by en_qgemm_set_isa). */
static en_isa_table table = {paths, sizeof paths[0], sizeof paths / sizeof paths[0], NULL};

static const qisa_path *path(void) {
    return en_isa_current(&table);
}

const char *en_qgemm_isa(void) {
    return path()->isa.name;
}

int en_qgemm_set_isa(const char *name) {
    return en_isa_set(&table, name);
}

size_t en_qpacked_bytes(int n, int k) {
    return (size_t)(n + EN_PANEL - 1) / EN_PANEL * EN_PANEL * (size_t)en_qk_round(k);
}

/* Round to nearest, ties to even, for |x| <= 2^22 (x is within [-256, 256] here), clamped to
 * [lo, hi]: the same in every build, vectorizable, no libm call. */
static inline int32_t round_q(float x, int32_t lo, int32_t hi) {
    float r = (x + 12582912.f) - 12582912.f;
    int32_t q = (int32_t)r;
    return q > hi ? hi : q < lo ? lo : q;
}

/* max |x| over n floats. */
static float absmax(const float *x, int n) {
    float amax = 0.f;
    for (int p = 0; p < n; p++) {
        float v = x[p] < 0 ? -x[p] : x[p];
        amax = v > amax ? v : amax;
    }
    return amax;
}

#define W_MAX 63 // 7-bit weights (en_qgemm.h says why)

void en_qpack_rows(const float *src, int ldw, int n, int k, int8_t *w, float *scale,
                   int32_t *csum) {
    int kp = en_qk_round(k), np = (n + EN_PANEL - 1) / EN_PANEL;
    memset(w, 0, (size_t)np * EN_PANEL * kp);
    for (int j = 0; j < np * EN_PANEL; j++) {
        scale[j] = 0.f;
        csum[j] = 0;
        if (j >= n) continue;
        /* column j: byte (p / 4) * 64 + (j % 16) * 4 + p % 4 of its panel, in runs of 4 */
        int8_t q[EN_QK];
        int8_t *col = w + (size_t)(j / EN_PANEL) * EN_PANEL * kp + (j % EN_PANEL) * EN_QK;
        /* inv: what a value is multiplied by before rounding; 0 for an all-zero column */
        float amax = absmax(src + (size_t)j * ldw, k), inv = amax > 0 ? W_MAX / amax : 0.f;
        for (int p0 = 0; p0 < k; p0 += EN_QK) {
            memset(q, 0, sizeof q);
            for (int p = p0; p < k && p < p0 + EN_QK; p++) {
                q[p - p0] = (int8_t)round_q(src[(size_t)j * ldw + p] * inv, -W_MAX, W_MAX);
                csum[j] += q[p - p0];
            }
            memcpy(col + (size_t)p0 * EN_PANEL, q, EN_QK);
        }
        scale[j] = amax / W_MAX;
    }
}

/* The range of n floats, widened to hold 0. Min and max are exact, so lanes change nothing but
 * the speed: a scalar compare-and-select chain does not vectorize without -ffast-math, and at
 * k = 128 it cost as much as the product. */
typedef float v8f __attribute__((vector_size(32)));
typedef int32_t v8i __attribute__((vector_size(32)));
typedef float v8fu __attribute__((vector_size(32), aligned(4), may_alias));

static void row_range(const float *x, int n, float *lo_out, float *hi_out) {
    v8f vlo = {0}, vhi = {0};
    int p = 0;
    for (; p + 8 <= n; p += 8) {
        v8f v = *(const v8fu *)(x + p);
        v8i lt = (v8i)(v < vlo), gt = (v8i)(v > vhi);
        vlo = (v8f)(((v8i)v & lt) | ((v8i)vlo & ~lt));
        vhi = (v8f)(((v8i)v & gt) | ((v8i)vhi & ~gt));
    }
    float lo = 0.f, hi = 0.f;
    for (int i = 0; i < 8; i++) {
        lo = vlo[i] < lo ? vlo[i] : lo;
        hi = vhi[i] > hi ? vhi[i] : hi;
    }
    for (; p < n; p++) {
        lo = x[p] < lo ? x[p] : lo;
        hi = x[p] > hi ? x[p] : hi;
    }
    *lo_out = lo;
    *hi_out = hi;
}

void en_quantize_rows(int m, int k, const float *a, int lda, const en_qrows *out) {
    int kp = en_qk_round(k);
    for (int i = 0; i < m; i++) {
        uint8_t *row = out->q + (size_t)i * out->ld;
        const float *x = a + (size_t)i * lda;
        float lo, hi;
        row_range(x, k, &lo, &hi);
        float inv = hi > lo ? 255.f / (hi - lo) : 0.f;
        int32_t z = round_q(-lo * inv, 0, 255);
        for (int p = 0; p < k; p++)
            row[p] = (uint8_t)round_q(x[p] * inv + (float)z, 0, 255);
        memset(row + k, 0, kp - k);
        out->scale[i] = (hi - lo) / 255.f;
        out->zero[i] = z;
    }
}

/* Wq[j][p] of a packed matrix. */
static inline int32_t wq_at(const en_qmat *w, int kp, int j, int p) {
    return w->w[(size_t)(j / EN_PANEL) * EN_PANEL * kp + (p / EN_QK) * EN_QK * EN_PANEL +
                (j % EN_PANEL) * EN_QK + p % EN_QK];
}

/* The definition, over columns [j0, j1). */
static void ref_cols(int m, int k, const en_qrows *a, const en_qmat *w, const float *bias,
                     int flags, float *c, int ldc, int j0, int j1) {
    int kp = en_qk_round(k);
    for (int i = 0; i < m; i++)
        for (int j = j0; j < j1; j++) {
            int32_t acc = 0;
            for (int p = 0; p < k; p++)
                acc += (int32_t)a->q[(size_t)i * a->ld + p] * wq_at(w, kp, j, p);
            acc -= a->zero[i] * w->csum[j];
            float v = (float)acc * a->scale[i];
            v = v * w->scale[j];
            if (bias) v = v + bias[j];
            if (flags & EN_GEMM_GELU) v = vm_gelu((vf){v})[0];
            float *out = c + (size_t)i * ldc + j;
            *out = flags & EN_GEMM_ACCUMULATE ? *out + v : v;
        }
}

void en_qgemm_ref(int m, int n, int k, const en_qrows *a, const en_qmat *w, const float *bias,
                  int flags, float *c, int ldc) {
    ref_cols(m, k, a, w, bias, flags, c, ldc, 0, n);
}

static void scalar_panels(int m, int n, int k, const en_qrows *a, const en_qmat *w,
                          const float *bias, int flags, float *c, int ldc, int jp0, int jp1) {
    int j1 = jp1 * EN_PANEL < n ? jp1 * EN_PANEL : n;
    ref_cols(m, k, a, w, bias, flags, c, ldc, jp0 * EN_PANEL, j1);
}

/* One product's operands, for the split over threads. */
typedef struct qgemm_args {
    en_qgemm_fn *fn;
    int m, n, k, flags, ldc;
    const en_qrows *a;
    const float *bias;
    const en_qmat *w;
    float *c;
} qgemm_args;

static void run_panels(void *arg, int jp0, int jp1) {
    qgemm_args *g = arg;
    g->fn(g->m, g->n, g->k, g->a, g->w, g->bias, g->flags, g->c, g->ldc, jp0, jp1);
}

void en_qgemm_q(int m, int n, int k, const en_qrows *a, const en_qmat *w, const float *bias,
                int flags, float *c, int ldc) {
    qgemm_args g = {path()->fn, m, n, k, flags, ldc, a, bias, w, c};
    /* an int8 multiply-add costs about a quarter of a float one */
    en__gemm_split((n + EN_PANEL - 1) / EN_PANEL, (long)m * n * k / 4, run_panels, &g);
}

void en_qgemm(int m, int n, int k, const float *a, int lda, const en_qmat *w, const float *bias,
              int flags, float *c, int ldc, const en_qrows *scratch) {
    en_quantize_rows(m, k, a, lda, scratch);
    en_qgemm_q(m, n, k, scratch, w, bias, flags, c, ldc);
}

en_qmat en_qmat_cols(const en_qmat *w, int k, int j0) {
    return (en_qmat){w->w + (size_t)j0 * en_qk_round(k), w->scale + j0, w->csum + j0};
}
