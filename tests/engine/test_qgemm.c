/* The INT8 product: every vector path gives the scalar reference's bits (int32 sums and the
 * dequantized, biased, GELU'd or accumulated floats), and quantization checked against an
 * independent computation in double. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "engine/en_qgemm.h"
#include "test_engine.h"

/* Deterministic values in [-1, 1) with a few large ones (outliers set a row's scale). */
static void fill(float *x, size_t n, unsigned seed) {
    for (size_t i = 0; i < n; i++) {
        seed = seed * 1103515245u + 12345u;
        x[i] = (float)((seed >> 8) & 0xffff) / 32768.f - 1.f;
        if ((seed >> 3) % 97 == 0) x[i] *= 8.f;
    }
}

/* A packed quantized weight of n x k from random floats; owned by the caller (free *mem). */
static en_qmat make_qmat(int n, int k, unsigned seed, void **mem, float **wf) {
    int np = (n + EN_PANEL - 1) / EN_PANEL * EN_PANEL;
    size_t bytes = en_qpacked_bytes(n, k);
    void *p = NULL;
    ck_assert_int_eq(posix_memalign(&p, 64, bytes + np * (sizeof(float) + sizeof(int32_t))), 0);
    *wf = malloc((size_t)n * k * sizeof(float));
    fill(*wf, (size_t)n * k, seed);
    int8_t *w = p;
    float *scale = (float *)(w + bytes);
    int32_t *csum = (int32_t *)(scale + np);
    en_qpack_rows(*wf, k, n, k, w, scale, csum);
    *mem = p;
    return (en_qmat){w, scale, csum};
}

/* Every path the CPU has against the reference, bit for bit, over odd shapes and every
 * epilogue (none, bias, bias + GELU, accumulate, accumulate + bias). */
START_TEST(qgemm_paths_equal_reference) {
    static const int shapes[][2] = {{16, 4}, {17, 5}, {33, 130}, {48, 128}, {7, 3}, {100, 257}};
    static const int flags[][2] = {
        {0, 0}, {0, 1}, {EN_GEMM_GELU, 1}, {EN_GEMM_ACCUMULATE, 0}, {EN_GEMM_ACCUMULATE, 1}};
    const char *was = en_qgemm_isa();
    int ran = 0;
    for (int s = 0; s < (int)(sizeof shapes / sizeof shapes[0]); s++) {
        int n = shapes[s][0], k = shapes[s][1], kp = en_qk_round(k);
        void *mem;
        float *wf;
        en_qmat w = make_qmat(n, k, 7u + s, &mem, &wf);
        int mmax = 130;
        float *a = malloc((size_t)mmax * k * sizeof(float)), *bias = malloc(n * sizeof(float));
        fill(a, (size_t)mmax * k, 99u + s);
        fill(bias, n, 5u);
        en_qrows aq = {malloc((size_t)mmax * kp), malloc(mmax * sizeof(float)),
                       malloc(mmax * sizeof(int32_t)), kp};
        en_quantize_rows(mmax, k, a, k, &aq);
        int ldc = n + 3;
        float *c0 = malloc((size_t)mmax * ldc * sizeof(float));
        float *want = malloc((size_t)mmax * ldc * sizeof(float));
        float *got = malloc((size_t)mmax * ldc * sizeof(float));
        fill(c0, (size_t)mmax * ldc, 3u);
        for (int m = 1; m <= mmax; m += m < 20 ? 1 : 11) {
            for (int f = 0; f < 5; f++) {
                const float *b = flags[f][1] ? bias : NULL;
                memcpy(want, c0, (size_t)mmax * ldc * sizeof(float));
                en_qgemm_ref(m, n, k, &aq, &w, b, flags[f][0], want, ldc);
                for (int i = 0; en_qgemm_isa_names[i]; i++) {
                    if (en_qgemm_set_isa(en_qgemm_isa_names[i]) != 0) continue;
                    memcpy(got, c0, (size_t)mmax * ldc * sizeof(float));
                    en_qgemm_q(m, n, k, &aq, &w, b, flags[f][0], got, ldc);
                    ck_assert_msg(memcmp(got, want, (size_t)mmax * ldc * sizeof(float)) == 0,
                                  "%s differs from the reference at m %d n %d k %d flags %d%s",
                                  en_qgemm_isa_names[i], m, n, k, flags[f][0],
                                  b ? " with bias" : "");
                    ran++;
                }
            }
        }
        free(a), free(bias), free(aq.q), free(aq.scale), free(aq.zero), free(c0), free(want);
        free(got), free(wf);
        free(mem);
    }
    ck_assert_int_gt(ran, 0);
    ck_assert_int_eq(en_qgemm_set_isa(was), 0);
    ck_assert_int_eq(en_qgemm_set_isa("no-such-isa"), -1);
    ck_assert_int_eq(en_qgemm_set_isa("scalar"), 0); // every CPU runs the reference
    ck_assert_int_eq(en_qgemm_set_isa(was), 0);
}
END_TEST

/* The integer sums at their extremes (u8 255 or 0 against s7 +-63, the largest k of the
 * models), against sums in double: the dequantized output without epilogue is exactly
 * float(sum - z csum) * a_scale * w_scale on every path. */
START_TEST(qgemm_sums_are_exact) {
    int n = 32, k = 1024, kp = k;
    float *wf = malloc((size_t)n * k * sizeof(float)), *a = malloc((size_t)3 * k * sizeof(float));
    for (int j = 0; j < n; j++)
        for (int p = 0; p < k; p++)
            wf[(size_t)j * k + p] = j % 2 ? -1.f : 1.f; // every weight +-63
    for (int p = 0; p < k; p++) {
        a[p] = 1.f;                      // q 255, z 0
        a[k + p] = -1.f;                 // q 0, z 255
        a[2 * k + p] = p % 2 ? 1 : -1.f; // 255 and 0 alternating, z 128 (0 is not centred)
    }
    void *p0 = NULL;
    ck_assert_int_eq(posix_memalign(&p0, 64, en_qpacked_bytes(n, k) + n * 8), 0);
    int8_t *wq = p0;
    float *ws = (float *)(wq + en_qpacked_bytes(n, k));
    int32_t *cs = (int32_t *)(ws + n);
    en_qpack_rows(wf, k, n, k, wq, ws, cs);
    en_qmat w = {wq, ws, cs};
    uint8_t aqb[3 * 1024];
    float as[3], c[3 * 32];
    int32_t az[3];
    en_qrows aq = {aqb, as, az, kp};
    en_quantize_rows(3, k, a, k, &aq);
    ck_assert_int_eq(az[0], 0);
    ck_assert_int_eq(az[1], 255);
    const char *was = en_qgemm_isa();
    for (int i = 0; en_qgemm_isa_names[i]; i++) {
        if (en_qgemm_set_isa(en_qgemm_isa_names[i]) != 0) continue;
        en_qgemm_q(3, n, k, &aq, &w, NULL, 0, c, n);
        for (int r = 0; r < 3; r++)
            for (int j = 0; j < n; j++) {
                double sum = 0;
                for (int p = 0; p < k; p++)
                    sum += (double)aqb[r * kp + p] * (j % 2 ? -63 : 63);
                sum -= (double)az[r] * cs[j];
                ck_assert_float_eq(c[r * n + j], (float)(int32_t)sum * as[r] * ws[j]);
            }
    }
    ck_assert_int_eq(en_qgemm_set_isa(was), 0);
    free(wf), free(a), free(p0);
}
END_TEST

/* Quantization against double: a row's range (holding 0) maps onto [0, 255] with its zero
 * point, every q is within half a step of x / scale + z, the ends of the range reach 0 and 255;
 * a weight column's scale is max |w| / 63 and every q within half a step of w / scale in
 * [-63, 63]; padding is zero, and the packed bytes and csum hold each column where the layout
 * says. */
START_TEST(quantization_round_trip) {
    int m = 5, k = 37, kp = en_qk_round(k), n = 21;
    float *a = malloc((size_t)m * k * sizeof(float));
    fill(a, (size_t)m * k, 11u);
    for (int p = 0; p < k; p++) {
        a[(size_t)3 * k + p] = fabsf(a[(size_t)3 * k + p]) + 0.5f; // all positive: z = 0
        a[(size_t)4 * k + p] = 0.f;                                // all zero
    }
    en_qrows aq = {malloc((size_t)m * kp), malloc(m * sizeof(float)), malloc(m * sizeof(int32_t)),
                   kp};
    memset(aq.q, 0x55, (size_t)m * kp);
    en_quantize_rows(m, k, a, k, &aq);
    for (int i = 0; i < m; i++) {
        double lo = 0, hi = 0;
        for (int p = 0; p < k; p++) {
            lo = fmin(lo, a[(size_t)i * k + p]);
            hi = fmax(hi, a[(size_t)i * k + p]);
        }
        double step = (hi - lo) / 255;
        ck_assert_double_le(fabs(aq.scale[i] - step), step * 1e-6);
        ck_assert_int_eq(aq.zero[i], step > 0 ? (int)lrint(-lo / step) : 0);
        int qmin = 255, qmax = 0;
        for (int p = 0; p < k; p++) {
            double x = a[(size_t)i * k + p], q = aq.q[(size_t)i * kp + p];
            if (step > 0)
                ck_assert_double_le(fabs(x / step + aq.zero[i] - q), 0.5 + 1e-4);
            else
                ck_assert(q == 0);
            qmin = q < qmin ? (int)q : qmin;
            qmax = q > qmax ? (int)q : qmax;
            // the dequantized value is within half a step
            ck_assert_double_le(fabs((q - aq.zero[i]) * aq.scale[i] - x),
                                aq.scale[i] / 2 * (1 + 1e-3) + 1e-30);
        }
        /* the ends of the range: 255 (254 when the zero point rounded down), and 0 unless
         * the row is all positive (zero point 0) */
        ck_assert(step == 0 || qmax >= 254);
        ck_assert(step == 0 || aq.zero[i] == 0 || qmin == 0);
        for (int p = k; p < kp; p++)
            ck_assert_int_eq(aq.q[(size_t)i * kp + p], 0);
    }
    ck_assert_int_eq(aq.zero[3], 0);
    void *mem;
    float *wf;
    en_qmat w = make_qmat(n, k, 13u, &mem, &wf);
    for (int j = 0; j < 32; j++) {
        if (j >= n) {
            ck_assert_float_eq(w.scale[j], 0.f);
            ck_assert_int_eq(w.csum[j], 0);
            continue;
        }
        double amax = 0;
        for (int p = 0; p < k; p++)
            amax = fmax(amax, fabs(wf[(size_t)j * k + p]));
        ck_assert_float_eq_tol(w.scale[j], amax / 63, amax / 63 * 1e-6);
        long sum = 0;
        int top = 0;
        for (int p = 0; p < kp; p++) {
            int q = w.w[(size_t)(j / 16) * 16 * kp + (p / 4) * 64 + (j % 16) * 4 + p % 4];
            if (p >= k) {
                ck_assert_int_eq(q, 0);
                continue;
            }
            ck_assert(q >= -63 && q <= 63);
            ck_assert_double_le(fabs(wf[(size_t)j * k + p] * 63 / amax - q), 0.5 + 1e-4);
            top |= q == 63 || q == -63;
            sum += q;
        }
        ck_assert(top);
        ck_assert_int_eq(w.csum[j], sum);
    }
    free(a), free(aq.q), free(aq.scale), free(aq.zero), free(wf), free(mem);
}
END_TEST

/* The product with its quantization against the float product: within the error that
 * rounding both operands allows (half a step each, summed over k, in double). */
START_TEST(qgemm_close_to_float) {
    int m = 9, n = 40, k = 64;
    void *mem;
    float *wf;
    en_qmat w = make_qmat(n, k, 17u, &mem, &wf);
    float *a = malloc((size_t)m * k * sizeof(float)), c[9 * 40], as[9];
    uint8_t aqb[9 * 64];
    int32_t az[9];
    en_qrows aq = {aqb, as, az, k};
    fill(a, (size_t)m * k, 19u);
    en_qgemm(m, n, k, a, k, &w, NULL, 0, c, n, &aq);
    for (int i = 0; i < m; i++)
        for (int j = 0; j < n; j++) {
            double exact = 0, bound = 0;
            for (int p = 0; p < k; p++) {
                double x = a[(size_t)i * k + p], y = wf[(size_t)j * k + p];
                exact += x * y;
                bound += fabs(x) * w.scale[j] / 2 + fabs(y) * as[i] / 2 + as[i] * w.scale[j] / 4;
            }
            ck_assert_double_le(fabs(c[(size_t)i * n + j] - exact), bound * (1 + 1e-5) + 1e-6);
        }
    free(a), free(wf), free(mem);
}
END_TEST

/* Split over threads by panels: the same bits. */
START_TEST(qgemm_threads_agree) {
    int m = 64, n = 1024, k = 256, kp = k;
    void *mem;
    float *wf;
    en_qmat w = make_qmat(n, k, 23u, &mem, &wf);
    float *a = malloc((size_t)m * k * sizeof(float));
    en_qrows aq = {malloc((size_t)m * kp), malloc(m * sizeof(float)), malloc(m * sizeof(int32_t)),
                   kp};
    fill(a, (size_t)m * k, 29u);
    en_quantize_rows(m, k, a, k, &aq);
    float *c1 = malloc((size_t)m * n * sizeof(float)), *c2 = malloc((size_t)m * n * sizeof(float));
    en_qgemm_q(m, n, k, &aq, &w, NULL, EN_GEMM_GELU, c1, n);
    en_gemm_set_threads(2);
    en_qgemm_q(m, n, k, &aq, &w, NULL, EN_GEMM_GELU, c2, n);
    en_gemm_set_threads(1);
    ck_assert(memcmp(c1, c2, (size_t)m * n * sizeof(float)) == 0);
    free(a), free(aq.q), free(aq.scale), free(aq.zero), free(c1), free(c2), free(wf), free(mem);
}
END_TEST

Suite *qgemm_suite(void) {
    Suite *s = suite_create("qgemm");
    TCase *tc = tcase_create("qgemm");
    tcase_add_test(tc, qgemm_paths_equal_reference);
    tcase_add_test(tc, qgemm_sums_are_exact);
    tcase_add_test(tc, quantization_round_trip);
    tcase_add_test(tc, qgemm_close_to_float);
    tcase_add_test(tc, qgemm_threads_agree);
    suite_add_tcase(s, tc);
    return s;
}
