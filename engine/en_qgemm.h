#pragma once
/* INT8 products for the layer matrices: C = dequant(Aq Wq^T) + bias, then GELU or the residual
 * add, like en_gemm_packed().
 *
 * Weights are quantized once, at load: symmetric, one scale per output column, on 7 bits:
 * w_scale[j] = max_k |W[j][k]| / 63, Wq = round(W / w_scale) in [-63, 63]. They are packed
 * into panels of 16 columns, 4 consecutive k per column (the operand order of `vpmaddubsw` and
 * `vpdpbusd`): panel jp holds [kp / 4][16][4] bytes, kp = k rounded up to 4, zero-padded.
 * Activations are quantized per call, per row, asymmetric on 8 bits: the row's range [lo, hi]
 * (widened to hold 0) maps to [0, 255], a_scale[i] = (hi - lo) / 255, a zero point
 * z[i] = round(-lo / a_scale[i]), Aq = clamp(round(A / a_scale) + z, 0, 255). The sums are int32,
 *
 *     acc = sum_k Aq[i][k] Wq[j][k] - z[i] csum[j],   csum[j] = sum_k Wq[j][k] (at load),
 *
 * and the dequantization is fused into the epilogue, in this order and without FMA:
 *
 *     v = ((float)acc * a_scale[i]) * w_scale[j];  v = v + bias[j];  v = gelu(v)  (EN_GEMM_GELU)
 *     C[i][j] = v, or C[i][j] + v                                    (EN_GEMM_ACCUMULATE)
 *
 * Why u8 x s7: the instruction every x86 vector set has for 8-bit products, `vpmaddubsw`,
 * multiplies u8 by s8 and adds pairs into a saturating int16. With 7-bit weights a pair is at
 * most 2 * 255 * 63 = 32130 < 32767, so it never saturates: three instructions per 32
 * multiply-adds (`vpmaddubsw`, `vpmaddwd` by ones, `vpaddd`). Full 8-bit operands need a sign
 * trick (|a| times w with a's sign: one more instruction, measured 1.4-1.5x slower on Zen 3);
 * activations keep 8 bits (their range is what costs accuracy: hidden states have outlier
 * features), weights give one (per-column scales follow each column's range).
 *
 * Exact by construction: the integer sums are defined by en_qgemm_ref(), a plain C loop, and
 * every vector path computes them exactly (no saturating step is reachable; VNNI's `vpdpbusd`
 * has none), then applies the same float operations in the same order, so every path gives
 * the reference's bits, and a result does not depend on the CPU it ran on. int32 holds the sums
 * for k < 2^31 / (255 * 63) = 133,000. Internal to the engine. */

#include <stddef.h>
#include <stdint.h>

#include "en_gemm.h"

#define EN_QK 4 // consecutive k per column in a packed int8 panel

/// One packed int8 matrix of n output columns over k inputs. Pointers into the model's arena.
typedef struct en_qmat {
    const int8_t *w;     // [ceil(n/16)][kp/4][16][4] packed, quantized weights
    const float *scale;  // [ceil(n/16)*16] w_scale per column (0 in the padding)
    const int32_t *csum; // [ceil(n/16)*16] sum over k of Wq[j][k] (for the zero points)
} en_qmat;

/// Rows of activations quantized to u8: row i is q[i * ld ...], with scale[i] and zero[i].
/// Buffers owned by whoever made them (en_ctx: scratch sized for its largest product).
typedef struct en_qrows {
    uint8_t *q;    // [m][ld], ld >= en_qk_round(k)
    float *scale;  // [m]
    int32_t *zero; // [m]
    int ld;
} en_qrows;

/// k rounded up to a multiple of 4: the bytes of one packed column and of one quantized row.
static inline int en_qk_round(int k) {
    return (k + EN_QK - 1) / EN_QK * EN_QK;
}

/// Bytes a packed [n, k] int8 weight takes: ceil(n / 16) * 16 * en_qk_round(k).
size_t en_qpacked_bytes(int n, int k);

/// Quantizes W [n, k] (row stride `ldw`, row j = output column j) per column and packs it:
/// `w` gets en_qpacked_bytes(n, k) bytes (64-byte aligned), `scale` and `csum`
/// ceil(n / 16) * 16 entries each. All caller-owned.
void en_qpack_rows(const float *src, int ldw, int n, int k, int8_t *w, float *scale, int32_t *csum);

/// Quantizes A [m, k] per row into `out` (its buffers hold m rows of out->ld bytes; the bytes
/// from k to en_qk_round(k) are set to 0).
void en_quantize_rows(int m, int k, const float *a, int lda, const en_qrows *out);

/// The reference: C from quantized rows (en_quantize_rows) and a packed weight, by plain loops
/// over the definition above. Pointers borrowed.
void en_qgemm_ref(int m, int n, int k, const en_qrows *a, const en_qmat *w, const float *bias,
                  int flags, float *c, int ldc);

/// The same product on the chosen vector path (en_qgemm_isa()), split over en_gemm_set_threads()
/// threads by panels when it is large enough. Gives the same bits as en_qgemm_ref().
void en_qgemm_q(int m, int n, int k, const en_qrows *a, const en_qmat *w, const float *bias,
                int flags, float *c, int ldc);

/// Quantizes A into `scratch` (room for m rows, caller-owned) and runs en_qgemm_q(): the INT8
/// counterpart of en_gemm_packed().
void en_qgemm(int m, int n, int k, const float *a, int lda, const en_qmat *w, const float *bias,
              int flags, float *c, int ldc, const en_qrows *scratch);

/// The columns from j0 on (a multiple of 16) of a packed matrix over k inputs, as a matrix.
en_qmat en_qmat_cols(const en_qmat *w, int k, int j0);

/// The INT8 path in use: "avx512vnni", "avx512bw", "avx2", "ssse3" or "scalar". Static storage.
const char *en_qgemm_isa(void);

/// Chooses a path by name (tests and benchmarks run every path the CPU has). Returns 0, or -1
/// when the name is unknown or this CPU cannot run it (the path in use stays).
int en_qgemm_set_isa(const char *name);

/// The names of every path, best first, NULL-terminated; en_qgemm_set_isa() says which run here.
extern const char *const en_qgemm_isa_names[];

/* One compiled path: panels [jp0, jp1) of the product. Defined per ISA (en_qgemm_tile.h). */
typedef void en_qgemm_fn(int m, int n, int k, const en_qrows *a, const en_qmat *w,
                         const float *bias, int flags, float *c, int ldc, int jp0, int jp1);
en_qgemm_fn en_qgemm_avx512vnni, en_qgemm_avx512bw, en_qgemm_avx2, en_qgemm_ssse3;
