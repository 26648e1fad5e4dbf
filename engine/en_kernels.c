#include "en_kernels.h"

#include <cblas.h>
#include <math.h>
#include <stdint.h>
#include <string.h>

void en_gemm(int m, int n, int k, float alpha, const float *a, int lda, const float *b, int ldb,
             int b_trans, float beta, float *c, int ldc) {
    cblas_sgemm(CblasRowMajor, CblasNoTrans, b_trans ? CblasTrans : CblasNoTrans, m, n, k, alpha, a,
                lda, b, ldb, beta, c, ldc);
}

void en_gemm_ref(int m, int n, int k, float alpha, const float *a, int lda, const float *b, int ldb,
                 int b_trans, float beta, float *c, int ldc) {
    for (int i = 0; i < m; i++)
        for (int j = 0; j < n; j++) {
            double acc = 0;
            for (int p = 0; p < k; p++)
                acc += (double)a[(size_t)i * lda + p] *
                       (b_trans ? b[(size_t)j * ldb + p] : b[(size_t)p * ldb + j]);
            float *out = &c[(size_t)i * ldc + j];
            *out = (float)(alpha * acc + (beta == 0 ? 0.0 : (double)beta * *out));
        }
}

void en_add_bias(float *x, int rows, int cols, const float *bias) {
    for (int r = 0; r < rows; r++) {
        float *row = x + (size_t)r * cols;
        for (int j = 0; j < cols; j++)
            row[j] += bias[j];
    }
}

/* Reductions kept in 16 independent lanes so they vectorize without -ffast-math (a plain
 * float sum is a serial dependency the compiler may not reorder). */
enum { LANES = 16 };

static inline float sum_lanes(const float *x, int n) {
    float acc[LANES] = {0};
    int j = 0;
    for (; j + LANES <= n; j += LANES)
        for (int t = 0; t < LANES; t++)
            acc[t] += x[j + t];
    float s = 0;
    for (int t = 0; t < LANES; t++)
        s += acc[t];
    for (; j < n; j++)
        s += x[j];
    return s;
}

static inline float sum_sq_dev_lanes(const float *x, int n, float mean) {
    float acc[LANES] = {0};
    int j = 0;
    for (; j + LANES <= n; j += LANES)
        for (int t = 0; t < LANES; t++)
            acc[t] += (x[j + t] - mean) * (x[j + t] - mean);
    float s = 0;
    for (int t = 0; t < LANES; t++)
        s += acc[t];
    for (; j < n; j++)
        s += (x[j] - mean) * (x[j] - mean);
    return s;
}

void en_layernorm(float *x, int rows, int cols, const float *g, const float *b, double eps) {
    for (int r = 0; r < rows; r++) {
        float *row = x + (size_t)r * cols;
        float mean = sum_lanes(row, cols) / (float)cols;
        float var = sum_sq_dev_lanes(row, cols, mean) / (float)cols;
        float inv = (float)(1.0 / sqrt((double)var + eps));
        for (int j = 0; j < cols; j++)
            row[j] = (row[j] - mean) * inv * g[j] + b[j];
    }
}

/* erf and GELU come from the vector math of the GEMM epilogue, on 4-lane vectors (baseline
 * x86-64), so each has one definition. */
typedef float vf __attribute__((vector_size(16)));
typedef int32_t vi __attribute__((vector_size(16)));
#define VW 4
#include "en_vmath.h"

float en_erf(float x) {
    return vm_erf(vm_splat(x))[0];
}

void en_gelu(float *x, size_t count) {
    size_t i = 0;
    for (; i + VW <= count; i += VW) {
        vf v;
        memcpy(&v, x + i, sizeof v);
        v = vm_gelu(v);
        memcpy(x + i, &v, sizeof v);
    }
    for (; i < count; i++)
        x[i] = vm_gelu(vm_splat(x[i]))[0];
}

float en_exp(float x) {
    return vm_exp(vm_splat(x))[0];
}
