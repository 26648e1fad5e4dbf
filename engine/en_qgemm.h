#pragma once
/* INT8 products for the layer matrices: C = dequant(Aq Wq^T) + bias, then GELU or the residual
 * add, like en_gemm_packed().
 *
 * Weights are quantized once, at load: symmetric, one scale per output column,
 * w_scale[j] = max_k |W[j][k]| / 127, Wq = round(W / w_scale) in [-127, 127]. They are packed
 * into panels of 16 columns, 4 consecutive k per column (the operand order of `vpmaddubsw` and
 * `vpdpbusd`): panel jp holds [kp / 4][16][4] bytes, kp = k rounded up to 4, zero-padded.
 * Activations are quantized per call, one scale per row the same way (a_scale[i] =
 * max |A[i]| / 127). The products accumulate in int32 (no overflow for k < 2^31 / 127^2 =
 * 133,000), and the dequantization is fused into the epilogue, in this order and without FMA:
 *
 *     v = ((float)acc * a_scale[i]) * w_scale[j];  v = v + bias[j];  v = gelu(v)  (EN_GEMM_GELU)
 *     C[i][j] = v, or C[i][j] + v                                    (EN_GEMM_ACCUMULATE)
 *
 * Exact by construction: the integer sums are defined by en_qgemm_ref(), a plain C loop, and
 * every vector path computes them exactly (no saturating step can be reached; see
 * en_qgemm_tile.h), then applies the same float operations in the same order, so every path
 * gives the same bits as the reference, and a result does not depend on the CPU it ran on.
 * Internal to the engine. */

#include <stddef.h>
#include <stdint.h>

#include "en_gemm.h"

#define EN_QK 4 // consecutive k per column in a packed int8 panel

/// One packed int8 matrix of n output columns over k inputs. Pointers into the model's arena.
typedef struct en_qmat {
    const int8_t *w;      // [ceil(n/16)][kp/4][16][4] packed, quantized weights
    const float *scale;   // [ceil(n/16)*16] w_scale per column (0 in the padding)
    const int32_t *csum;  // [ceil(n/16)*16] sum over k of Wq[j][k] (for the unsigned-operand paths)
} en_qmat;

/// k rounded up to a multiple of 4: the bytes of one packed column and of one quantized row.
static inline int en_qk_round(int k) {
    return (k + EN_QK - 1) / EN_QK * EN_QK;
}

/// Bytes a packed [n, k] int8 weight takes: ceil(n / 16) * 16 * en_qk_round(k).
size_t en_qpacked_bytes(int n, int k);

/// Quantizes W [n, k] (row stride `ldw`, row j = output column j) per column and packs it:
/// `w` gets en_qpacked_bytes(n, k) bytes (64-byte aligned), `scale` and `csum`
/// ceil(n / 16) * 16 entries each. All caller-owned.
void en_qpack_rows(const float *src, int ldw, int n, int k, int8_t *w, float *scale,
                   int32_t *csum);

/// Quantizes A [m, k] per row: aq[i * ldq + p] (ldq >= en_qk_round(k); the bytes from k to
/// en_qk_round(k) are set to 0) and a_scale[i]. All caller-owned.
void en_quantize_rows(int m, int k, const float *a, int lda, int8_t *aq, int ldq, float *a_scale);

/// The reference: C from quantized rows (aq, a_scale as en_quantize_rows) and a packed weight,
/// by plain loops over the definition above. Pointers borrowed.
void en_qgemm_ref(int m, int n, int k, const int8_t *aq, int ldq, const float *a_scale,
                  const en_qmat *w, const float *bias, int flags, float *c, int ldc);

/// The same product on the chosen vector path (en_qgemm_isa()), split over en_gemm_set_threads()
/// threads by panels when it is large enough. Gives the same bits as en_qgemm_ref().
void en_qgemm_q(int m, int n, int k, const int8_t *aq, int ldq, const float *a_scale,
                const en_qmat *w, const float *bias, int flags, float *c, int ldc);

/// Quantizes A into `aq` / `a_scale` (scratch of m * en_qk_round(k) bytes and m floats,
/// caller-owned) and runs en_qgemm_q(): the INT8 counterpart of en_gemm_packed().
void en_qgemm(int m, int n, int k, const float *a, int lda, const en_qmat *w, const float *bias,
              int flags, float *c, int ldc, int8_t *aq, float *a_scale);

/// Columns [j0, j0 + n) of a packed matrix over k inputs (j0 a multiple of 16), as a matrix.
en_qmat en_qmat_cols(const en_qmat *w, int k, int j0);

/// The INT8 path in use: "avx512vnni", "avx512bw", "avx2", "ssse3" or "scalar". Static storage.
const char *en_qgemm_isa(void);

/// Chooses a path by name (tests and benchmarks run every path the CPU has). Returns 0, or -1
/// when the name is unknown or this CPU cannot run it (the path in use stays).
int en_qgemm_set_isa(const char *name);

/// The names of every path, best first, NULL-terminated; en_qgemm_set_isa() says which run here.
extern const char *const en_qgemm_isa_names[];

/* One compiled path: panels [jp0, jp1) of the product. Defined per ISA (en_qgemm_tile.h). */
typedef void en_qgemm_fn(int m, int n, int k, const int8_t *aq, int ldq, const float *a_scale,
                         const en_qmat *w, const float *bias, int flags, float *c, int ldc,
                         int jp0, int jp1);
en_qgemm_fn en_qgemm_avx512vnni, en_qgemm_avx512bw, en_qgemm_avx2, en_qgemm_ssse3;

