/* The INT8 packed-panel product, written once and compiled once per instruction set, with
 * -ffp-contract=off (the epilogue is the reference's float operations, one by one). The
 * including file defines:
 *   QW             int32 lanes (= columns) per vector register: 16, 8 or 4
 *   QMR            rows per tile
 *   EN_QGEMM_NAME  the function to define
 *   qv             the integer vector type
 *   q_zero(), q_load(p), q_bcast(p), q_dot(acc, a, w): acc += the 4-term dot products of the
 *                  broadcast 4 bytes of A (u8) with each column's 4 bytes of W (s7), exactly.
 *
 * A tile is QMR rows x 16 columns of int32 sums in QMR * 16 / QW registers; per 4 k it loads
 * one 64-byte row of the panel and broadcasts 4 bytes of each row of A. The sums are exact on
 * every path (each path's file says how), so the epilogue sees the reference's int32, takes
 * the zero point's share off (z[i] * csum[j]) and applies the reference's float operations.
 * No k blocking: a panel is kp * 16 bytes (16 KB at k = 1024), read once per tile of rows from
 * L1/L2. */

#include <stdint.h>
#include <string.h>

#include "en_qgemm.h"

typedef float vf __attribute__((vector_size(QW * 4)));
typedef int32_t vi __attribute__((vector_size(QW * 4)));
typedef float vfu __attribute__((vector_size(QW * 4), aligned(4), may_alias));
typedef int32_t viu __attribute__((vector_size(QW * 4), aligned(4), may_alias));

#include "en_vmath.h"

#define NV (EN_PANEL / QW) // vectors per tile row

/* One tile of `mr` rows (a compile-time constant at every call) by 16 columns: the sums over
 * `kq` groups of 4 k, then the epilogue into c (ldc) with the 16 columns' scales, bias, csum. */
static inline __attribute__((always_inline)) void
tile(const int mr, int kq, const uint8_t *aq, int ldq, const int8_t *b, const float *a_scale,
     const int32_t *a_zero, const float *ws, const int32_t *csum, const float *bias, int flags,
     float *c, int ldc, const int8_t *next) {
    qv acc[QMR][NV];
    for (int r = 0; r < mr; r++)
        for (int v = 0; v < NV; v++)
            acc[r][v] = q_zero();
    for (int q = 0; q < kq; q++) {
        if (next) // the next panel into L2, a line per step, while this one is computed
            __builtin_prefetch(next + (size_t)q * EN_QK * EN_PANEL, 0, 2);
        qv wv[NV];
        for (int v = 0; v < NV; v++)
            wv[v] = q_load(b + (size_t)q * EN_QK * EN_PANEL + v * QW * EN_QK);
        for (int r = 0; r < mr; r++) {
            qv a = q_bcast(aq + (size_t)r * ldq + q * EN_QK);
            for (int v = 0; v < NV; v++)
                acc[r][v] = q_dot(acc[r][v], a, wv[v]);
        }
    }
    /* acc - z csum, then v = ((float)acc * a_scale) * w_scale + bias, GELU, + C: as
     * en_qgemm_ref() */
    for (int r = 0; r < mr; r++)
        for (int v = 0; v < NV; v++) {
            vi x = (vi)acc[r][v] - *(const viu *)(csum + v * QW) * a_zero[r];
            vf f = __builtin_convertvector(x, vf) * a_scale[r];
            f = f * *(const vfu *)(ws + v * QW);
            if (bias) f = f + *(const vfu *)(bias + v * QW);
            if (flags & EN_GEMM_GELU) f = vm_gelu(f);
            vfu *out = (vfu *)(c + (size_t)r * ldc + v * QW);
            if (flags & EN_GEMM_ACCUMULATE) f = *out + f;
            *out = f;
        }
}

/* Any row count up to QMR: a switch so each count gets its own constant-size tile. */
static void tile_rows(int mr, int kq, const uint8_t *aq, int ldq, const int8_t *b,
                      const float *a_scale, const int32_t *a_zero, const float *ws,
                      const int32_t *csum, const float *bias, int flags, float *c, int ldc,
                      const int8_t *next) {
    switch (mr) {
#define EN_QTILE_CASE_(R)                                                                          \
    case R:                                                                                        \
        tile(R, kq, aq, ldq, b, a_scale, a_zero, ws, csum, bias, flags, c, ldc, next);             \
        break;
        EN_QTILE_CASE_(1)
        EN_QTILE_CASE_(2)
#if QMR >= 3
        EN_QTILE_CASE_(3)
#endif
#if QMR >= 4
        EN_QTILE_CASE_(4)
#endif
#if QMR >= 5
        EN_QTILE_CASE_(5)
#endif
#if QMR >= 6
        EN_QTILE_CASE_(6)
#endif
#if QMR >= 7
        EN_QTILE_CASE_(7)
#endif
#if QMR >= 8
        EN_QTILE_CASE_(8)
#endif
#undef EN_QTILE_CASE_
    default:
        break;
    }
}

void EN_QGEMM_NAME(int m, int n, int k, const en_qrows *a, const en_qmat *w, const float *bias,
                   int flags, float *c, int ldc, int jp0, int jp1) {
    int kp = en_qk_round(k), kq = kp / EN_QK;
    /* rows split evenly over the fewest tiles: 25 rows as 4 x 4 + 3 x 3, not 6 x 4 + 1 */
    int tiles = (m + QMR - 1) / QMR;
    for (int jp = jp0; jp < jp1; jp++) {
        const int8_t *b = w->w + (size_t)jp * EN_PANEL * kp;
        const int8_t *next = jp + 1 < jp1 ? b + (size_t)EN_PANEL * kp : NULL;
        int j0 = jp * EN_PANEL, nc = n - j0 < EN_PANEL ? n - j0 : EN_PANEL;
        const float *ws = w->scale + j0, *bj = bias ? bias + j0 : NULL;
        const int32_t *cs = w->csum + j0;
        for (int t = 0, i = 0; t < tiles; t++) {
            int mr = m / tiles + (t < m % tiles);
            const uint8_t *at = a->q + (size_t)i * a->ld;
            const int8_t *nt = t == 0 ? next : NULL;
            const float *as = a->scale + i;
            const int32_t *az = a->zero + i;
            int ldq = a->ld;
            float *ct = c + (size_t)i * ldc + j0;
            if (nc < EN_PANEL) {
                /* the last panel of an n that is not a multiple of 16: C and the bias go
                 * through padded copies (the scales and csum are padded in the model) */
                float pad[QMR][EN_PANEL] = {{0}}, bpad[EN_PANEL] = {0};
                for (int r = 0; r < mr && (flags & EN_GEMM_ACCUMULATE); r++)
                    memcpy(pad[r], ct + (size_t)r * ldc, nc * sizeof(float));
                if (bj) memcpy(bpad, bj, nc * sizeof(float));
                tile_rows(mr, kq, at, ldq, b, as, az, ws, cs, bj ? bpad : NULL, flags, pad[0],
                          EN_PANEL, nt);
                for (int r = 0; r < mr; r++)
                    memcpy(ct + (size_t)r * ldc, pad[r], nc * sizeof(float));
            } else if (mr == QMR)
                tile(QMR, kq, at, ldq, b, as, az, ws, cs, bj, flags, ct, ldc, nt);
            else
                tile_rows(mr, kq, at, ldq, b, as, az, ws, cs, bj, flags, ct, ldc, nt);
            i += mr;
        }
    }
}
