/* Kernels against independent scalar references: libm's double erf/exp and a plain-loop gemm. */
#include <math.h>
#include <stdlib.h>

#include "engine/en_kernels.h"
#include "test_engine.h"

START_TEST(erf_matches_libm) {
    double worst = 0;
    for (float x = -6.f; x <= 6.f; x += 0.0007f) {
        double err = fabs((double)en_erf(x) - erf((double)x));
        worst = err > worst ? err : worst;
    }
    ck_assert_msg(worst < 1e-6, "max |en_erf - erf| = %g", worst);
}
END_TEST

START_TEST(exp_matches_libm) {
    double worst = 0;
    for (float x = -80.f; x <= 0.f; x += 0.0013f) {
        double ref = exp((double)x);
        double err = fabs((double)en_exp(x) - ref) / ref;
        worst = err > worst ? err : worst;
    }
    ck_assert_msg(worst < 1e-6, "max relative error of en_exp = %g", worst);
    ck_assert(en_exp(-200.f) < 1e-37f);
}
END_TEST

START_TEST(gemm_matches_reference) {
    enum { M = 37, N = 29, K = 53 };
    static float a[M * K], bt[N * K], bn[K * N], c1[M * N], c2[M * N];
    srand(7);
    for (int i = 0; i < M * K; i++)
        a[i] = (float)rand() / RAND_MAX - 0.5f;
    for (int i = 0; i < N * K; i++)
        bt[i] = (float)rand() / RAND_MAX - 0.5f;
    for (int p = 0; p < K; p++)
        for (int j = 0; j < N; j++)
            bn[p * N + j] = bt[j * K + p];
    for (int trans = 0; trans < 2; trans++) {
        for (int i = 0; i < M * N; i++)
            c1[i] = c2[i] = (float)i / (M * N);
        const float *b = trans ? bt : bn;
        int ldb = trans ? K : N;
        en_gemm(M, N, K, 0.5f, a, K, b, ldb, trans, 1.f, c1, N);
        en_gemm_ref(M, N, K, 0.5f, a, K, b, ldb, trans, 1.f, c2, N);
        for (int i = 0; i < M * N; i++)
            ck_assert_msg(fabsf(c1[i] - c2[i]) < 1e-5f, "trans %d, element %d: %g vs %g", trans, i,
                          c1[i], c2[i]);
    }
}
END_TEST

START_TEST(layernorm_and_softmax_known_answers) {
    float x[4] = {1, 2, 3, 4}, g[4] = {1, 1, 1, 1}, b[4] = {0, 0, 0, 0};
    en_layernorm(x, 1, 4, g, b, 0);
    double sd = sqrt(1.25); // variance of 1..4 around 2.5
    for (int j = 0; j < 4; j++)
        ck_assert_double_eq_tol(x[j], (j + 1 - 2.5) / sd, 1e-6);
    float s[3] = {0, log(2.0), log(5.0)};
    en_softmax_rows(s, 1, 3, 3);
    ck_assert_double_eq_tol(s[0], 1.0 / 8, 1e-7);
    ck_assert_double_eq_tol(s[1], 2.0 / 8, 1e-7);
    ck_assert_double_eq_tol(s[2], 5.0 / 8, 1e-7);
    float gl[3] = {-1, 0, 2};
    en_gelu(gl, 3);
    for (int j = 0; j < 3; j++) {
        double v = (double[]){-1, 0, 2}[j];
        ck_assert_double_eq_tol(gl[j], 0.5 * v * (1 + erf(v / sqrt(2))), 1e-6);
    }
}
END_TEST

Suite *kernels_suite(void) {
    Suite *s = suite_create("kernels");
    TCase *tc = tcase_create("kernels");
    tcase_add_test(tc, erf_matches_libm);
    tcase_add_test(tc, exp_matches_libm);
    tcase_add_test(tc, gemm_matches_reference);
    tcase_add_test(tc, layernorm_and_softmax_known_answers);
    suite_add_tcase(s, tc);
    return s;
}
