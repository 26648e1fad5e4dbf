/* The packed-panel product, written once and compiled once per instruction set: the including
 * file defines VW (floats per vector register) and EN_GEMM_NAME (the function to define) and is
 * compiled with that set's flags and -ffp-contract=fast (so `acc += b * a` is one FMA).
 *
 * A tile is MR rows x 16 columns of C held in MR * 16 / VW vector registers; per step of k it
 * loads one row of the panel (16 floats) and broadcasts one float of each of the MR rows of A.
 * Blocking: k in blocks of KC (one panel block, KC x 16 floats, stays in L1 across all the row
 * tiles), rows in blocks of MC (that A block stays in L2 across all the panels). For the few
 * rows of a request, MC covers all of them, so each weight panel is read from memory once. */

#include <stdint.h>
#include <string.h>

#include "en_gemm.h"

typedef float vf __attribute__((vector_size(VW * 4)));
typedef int32_t vi __attribute__((vector_size(VW * 4)));
typedef float vfu __attribute__((vector_size(VW * 4), aligned(4), may_alias));

#include "en_vmath.h"

static inline vf load_u(const float *p) {
    return *(const vfu *)p;
}

#define NV (EN_PANEL / VW) // vectors per tile row
#if VW == 16
#define MR 12 // 12 accumulators of 32 registers
#elif VW == 8
#define MR 6 // 12 accumulators + 2 panel vectors + 1 broadcast of 16 registers
#else
#define MR 2 // 8 accumulators + 4 panel vectors + 1 broadcast of 16 registers
#endif
#define KC 256
#define MC 120 // a multiple of every MR

/* One tile of `mr` rows (a compile-time constant at every call) by 16 columns over `kc` steps. */
static inline __attribute__((always_inline)) void tile(const int mr, int kc, const float *a,
                                                       int lda, const float *b, float *c, int ldc,
                                                       int load_c, const float *bias, int gelu,
                                                       const float *next) {
    vf acc[MR][NV];
    for (int r = 0; r < mr; r++)
        for (int v = 0; v < NV; v++)
            acc[r][v] = load_c ? load_u(c + (size_t)r * ldc + v * VW) : vm_splat(0.f);
    for (int p = 0; p < kc; p++) {
        if (next) // the next panel into L2, a line per step, while this one is computed
            __builtin_prefetch(next + (size_t)p * EN_PANEL, 0, 2);
        vf bv[NV];
        for (int v = 0; v < NV; v++) {
            bv[v] = *(const vf *)(b + (size_t)p * EN_PANEL + v * VW);
            // Held in a register: for tiles of 3-4 rows GCC otherwise folds the load into each
            // row's FMA, a load per FMA, and the load ports, not the FMAs, set the pace (4-row
            // products +30%, 7-9 and 13 rows +15-40%, measured; the same FMAs, the same bits).
            if (mr < 5) __asm__("" : "+x"(bv[v]));
        }
        for (int r = 0; r < mr; r++) {
            float s = a[(size_t)r * lda + p];
            for (int v = 0; v < NV; v++)
                acc[r][v] += bv[v] * s;
        }
    }
    if (bias)
        for (int v = 0; v < NV; v++) {
            vf bb = load_u(bias + v * VW);
            for (int r = 0; r < mr; r++)
                acc[r][v] += bb;
        }
    if (gelu)
        for (int r = 0; r < mr; r++)
            for (int v = 0; v < NV; v++)
                acc[r][v] = vm_gelu(acc[r][v]);
    for (int r = 0; r < mr; r++)
        for (int v = 0; v < NV; v++)
            *(vfu *)(c + (size_t)r * ldc + v * VW) = acc[r][v];
}

/* Any row count up to MR: a switch so each count gets its own constant-size tile. */
static void tile_rows(int mr, int kc, const float *a, int lda, const float *b, float *c, int ldc,
                      int load_c, const float *bias, int gelu, const float *next) {
    switch (mr) {
#define EN_TILE_CASE_(R)                                                                           \
    case R:                                                                                        \
        tile(R, kc, a, lda, b, c, ldc, load_c, bias, gelu, next);                                  \
        break;
        EN_TILE_CASE_(1)
        EN_TILE_CASE_(2)
#if MR > 2
        EN_TILE_CASE_(3)
        EN_TILE_CASE_(4)
        EN_TILE_CASE_(5)
        EN_TILE_CASE_(6)
#endif
#if MR > 6
        EN_TILE_CASE_(7)
        EN_TILE_CASE_(8)
        EN_TILE_CASE_(9)
        EN_TILE_CASE_(10)
        EN_TILE_CASE_(11)
        EN_TILE_CASE_(12)
#endif
#undef EN_TILE_CASE_
    default:
        break;
    }
}

/* The last panel of an n that is not a multiple of 16: C and the bias go through padded copies. */
static void tile_narrow(int mr, int nc, int kc, const float *a, int lda, const float *b, float *c,
                        int ldc, int load_c, const float *bias, int gelu, const float *next) {
    float pad[MR][EN_PANEL] = {{0}}, bpad[EN_PANEL] = {0};
    for (int r = 0; r < mr && load_c; r++)
        memcpy(pad[r], c + (size_t)r * ldc, nc * sizeof(float));
    if (bias) memcpy(bpad, bias, nc * sizeof(float));
    tile_rows(mr, kc, a, lda, b, pad[0], EN_PANEL, load_c, bias ? bpad : NULL, gelu, next);
    for (int r = 0; r < mr; r++)
        memcpy(c + (size_t)r * ldc, pad[r], nc * sizeof(float));
}

/* One or two rows against `np` panels at once (`step` floats apart): a request's last layer
 * and deep pruned layers have that few rows, and one panel alone would leave too few
 * accumulators to hide the FMA latency. Each element gets the same FMAs in the same order as in
 * tile(), so the results are the same bits. */
#define NP_ROW1 (8 / NV > 0 ? 8 / NV : 1)
#define NP_ROW2 (4 / NV > 0 ? 4 / NV : 1)
static inline __attribute__((always_inline)) void
tile_panels(const int mr, const int np, int kc, const float *a, int lda, const float *b,
            size_t step, float *c, int ldc, int load_c, const float *bias, int gelu) {
    vf acc[2][NP_ROW1 * NV];
    for (int r = 0; r < mr; r++)
        for (int v = 0; v < np * NV; v++)
            acc[r][v] = load_c ? load_u(c + (size_t)r * ldc + (v / NV) * EN_PANEL + (v % NV) * VW)
                               : vm_splat(0.f);
    for (int p = 0; p < kc; p++)
        for (int r = 0; r < mr; r++) {
            float s = a[(size_t)r * lda + p];
            for (int v = 0; v < np * NV; v++)
                acc[r][v] +=
                    *(const vf *)(b + (v / NV) * step + (size_t)p * EN_PANEL + (v % NV) * VW) * s;
        }
    for (int r = 0; r < mr; r++)
        for (int v = 0; v < np * NV; v++) {
            int col = (v / NV) * EN_PANEL + (v % NV) * VW;
            if (bias) acc[r][v] += load_u(bias + col);
            if (gelu) acc[r][v] = vm_gelu(acc[r][v]);
            *(vfu *)(c + (size_t)r * ldc + col) = acc[r][v];
        }
}

/* Full panels [jp, jp1) of a block of one or two rows, np at a time; returns the first panel
 * left to the one-panel tiles (a partial group or the narrow last panel). */
static int few_rows(int mr, int n, int k, int kc, int jp, int jp1, const float *packed, int p0,
                    const float *a, int lda, const float *bias, float *c, int ldc, int load_c,
                    int gelu) {
    int np = mr == 1 ? NP_ROW1 : NP_ROW2;
    for (; jp + np <= jp1 && (jp + np) * EN_PANEL <= n; jp += np) {
        const float *b = packed + ((size_t)jp * k + p0) * EN_PANEL;
        const float *bj = bias ? bias + jp * EN_PANEL : NULL;
        float *cj = c + jp * EN_PANEL;
        size_t step = (size_t)k * EN_PANEL;
        if (mr == 1)
            tile_panels(1, NP_ROW1, kc, a, lda, b, step, cj, ldc, load_c, bj, gelu);
        else
            tile_panels(2, NP_ROW2, kc, a, lda, b, step, cj, ldc, load_c, bj, gelu);
    }
    return jp;
}

void EN_GEMM_NAME(int m, int n, int k, const float *a, int lda, const float *packed,
                  const float *bias, int flags, float *c, int ldc, int jp0, int jp1) {
    for (int p0 = 0; p0 < k; p0 += KC) {
        int kc = k - p0 < KC ? k - p0 : KC;
        int load_c = p0 > 0 || (flags & EN_GEMM_ACCUMULATE);
        int last = p0 + kc == k;
        int gelu = last && (flags & EN_GEMM_GELU);
        for (int i0 = 0; i0 < m; i0 += MC) {
            int mc = m - i0 < MC ? m - i0 : MC;
            int jp = jp0;
            if (mc <= 2)
                jp = few_rows(mc, n, k, kc, jp0, jp1, packed, p0, a + (size_t)i0 * lda + p0, lda,
                              last ? bias : NULL, c + (size_t)i0 * ldc, ldc, load_c, gelu);
            for (; jp < jp1; jp++) {
                const float *b = packed + ((size_t)jp * k + p0) * EN_PANEL;
                int j0 = jp * EN_PANEL, nc = n - j0 < EN_PANEL ? n - j0 : EN_PANEL;
                const float *bj = last && bias ? bias + j0 : NULL;
                const float *ai = a + (size_t)i0 * lda + p0;
                float *ci = c + (size_t)i0 * ldc + j0;
                /* rows split evenly over the fewest tiles: 25 rows as 5 x 5, not 4 x 6 + 1
                 * (a 1-row tile has too few accumulators to hide the FMA latency) */
                int tiles = (mc + MR - 1) / MR;
                /* the first tile of a panel also fetches the next panel's block */
                const float *next = jp + 1 < jp1 ? b + (size_t)k * EN_PANEL : NULL;
                for (int t = 0, i = 0; t < tiles; t++) {
                    int mr = mc / tiles + (t < mc % tiles);
                    const float *at = ai + (size_t)i * lda, *nt = t == 0 ? next : NULL;
                    float *ct = ci + (size_t)i * ldc;
                    if (nc < EN_PANEL)
                        tile_narrow(mr, nc, kc, at, lda, b, ct, ldc, load_c, bj, gelu, nt);
                    else if (mr == MR)
                        tile(MR, kc, at, lda, b, ct, ldc, load_c, bj, gelu, nt);
                    else
                        tile_rows(mr, kc, at, lda, b, ct, ldc, load_c, bj, gelu, nt);
                    i += mr;
                }
            }
        }
    }
}

static inline float hsum(vf v) {
    float s = 0;
    for (int i = 0; i < VW; i++)
        s += v[i];
    return s;
}

/* Softmax of each row in place: max, then exp and its sum in one pass, then the scaling. */
void EN_SOFTMAX_NAME(float *x, int rows, int cols, int ld) {
    for (int r = 0; r < rows; r++) {
        float *row = x + (size_t)r * ld;
        vf vmax = vm_splat(row[0]);
        int j = 0;
        for (; j + VW <= cols; j += VW)
            vmax = vm_max(vmax, load_u(row + j));
        float max = row[0];
        for (int i = 0; i < VW; i++)
            max = vmax[i] > max ? vmax[i] : max;
        for (; j < cols; j++)
            max = row[j] > max ? row[j] : max;
        vf vsum = vm_splat(0.f);
        for (j = 0; j + VW <= cols; j += VW) {
            vf e = vm_exp(load_u(row + j) - max);
            *(vfu *)(row + j) = e;
            vsum += e;
        }
        float sum = hsum(vsum);
        for (; j < cols; j++) {
            row[j] = vm_exp(vm_splat(row[j] - max))[0];
            sum += row[j];
        }
        float inv = 1.f / sum;
        for (j = 0; j + VW <= cols; j += VW)
            *(vfu *)(row + j) = load_u(row + j) * inv;
        for (; j < cols; j++)
            row[j] *= inv;
    }
}
