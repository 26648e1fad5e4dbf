#pragma once
/* The small kernels of the forward pass: one wrapper that is the only caller of cblas_sgemm
 * (and a plain-loop reference for tests), and the element-wise steps (bias, LayerNorm, exact
 * GELU, softmax), written as branch-free loops the compiler vectorizes. Internal to the engine. */

#include <stddef.h>

/// C[m,n] = alpha * A[m,k] * op(B) + beta * C, all row-major. `b_trans` 1: B is [n,k] (a
/// PyTorch weight) and op(B) = B^T; 0: B is [k,n].
void en_gemm(int m, int n, int k, float alpha, const float *a, int lda, const float *b, int ldb,
             int b_trans, float beta, float *c, int ldc);
/// The same with plain loops in double accumulation: the reference the tests compare against.
void en_gemm_ref(int m, int n, int k, float alpha, const float *a, int lda, const float *b, int ldb,
                 int b_trans, float beta, float *c, int ldc);

/// x[r, :] += bias for each of `rows` rows of `cols`.
void en_add_bias(float *x, int rows, int cols, const float *bias);
/// Row-wise LayerNorm in place: (x - mean) / sqrt(var + eps) * g + b.
void en_layernorm(float *x, int rows, int cols, const float *g, const float *b, double eps);
/// GELU, exact erf form: x * 0.5 * (1 + erf(x / sqrt 2)), in place.
void en_gelu(float *x, size_t count);
/// Softmax of each of `rows` rows of `cols` floats (row stride `ld`) in place.
void en_softmax_rows(float *x, int rows, int cols, int ld);
/// erf with a rational approximation, |error| < 1e-6 over all floats (exposed for the tests).
float en_erf(float x);
/// exp for softmax inputs (x <= 0), relative error < 1e-6 (exposed for the tests).
float en_exp(float x);
