/* Kernels against independent scalar references: libm's double erf/exp and a plain-loop gemm. */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/en_gemm.h"
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

/* The packed product on every kernel path this CPU has, against a double-precision loop: shapes
 * with a partial last panel (n % 16), k across the k-blocking (> 256), m across the row
 * blocking (> 120) and below one tile, each with and without bias, residual and GELU. */
static void check_packed(int m, int n, int k, int flags, int with_bias, int trans_b) {
    float *a = malloc(sizeof(float) * m * k), *w = malloc(sizeof(float) * n * k);
    float *bias = malloc(sizeof(float) * n), *c = malloc(sizeof(float) * m * n);
    double *ref = malloc(sizeof(double) * m * n);
    float *packed = NULL;
    ck_assert_int_eq(posix_memalign((void **)&packed, 64, en_packed_floats(n, k) * sizeof(float)),
                     0);
    for (int i = 0; i < m * k; i++)
        a[i] = (float)rand() / RAND_MAX - 0.5f;
    for (int i = 0; i < n * k; i++)
        w[i] = (float)rand() / RAND_MAX - 0.5f;
    for (int j = 0; j < n; j++)
        bias[j] = (float)rand() / RAND_MAX - 0.5f;
    if (trans_b) { // w holds B [k, n]
        en_pack_cols(w, n, k, n, packed);
    } else { // w holds W [n, k]
        en_pack_rows(w, k, n, k, 2.f, packed);
    }
    double worst = 0;
    for (int i = 0; i < m; i++)
        for (int j = 0; j < n; j++) {
            c[i * n + j] = (float)(i - j) / 8;
            double acc = flags & EN_GEMM_ACCUMULATE ? c[i * n + j] : 0;
            for (int p = 0; p < k; p++) {
                double wv = trans_b ? w[p * n + j] : 2.0 * w[j * k + p];
                acc += (double)a[i * k + p] * wv;
            }
            if (with_bias) acc += bias[j];
            if (flags & EN_GEMM_GELU) acc = 0.5 * acc * (1 + erf(acc / sqrt(2)));
            ref[i * n + j] = acc;
        }
    en_gemm_packed(m, n, k, a, k, packed, with_bias ? bias : NULL, flags, c, n);
    for (int i = 0; i < m * n; i++) {
        double err = fabs(c[i] - ref[i]) / (1 + fabs(ref[i]));
        worst = err > worst ? err : worst;
    }
    ck_assert_msg(worst < 2e-5, "%s m %d n %d k %d flags %d bias %d trans %d: max rel error %g",
                  en_gemm_isa(), m, n, k, flags, with_bias, trans_b, worst);
    free(a), free(w), free(bias), free(c), free(ref), free(packed);
}

START_TEST(packed_gemm_matches_reference_on_every_path) {
    static const int shapes[][3] = {{1, 16, 8},    {5, 29, 53},  {25, 96, 64},  {7, 100, 300},
                                    {130, 40, 17}, {13, 3, 520}, {12, 33, 33},  {6, 16, 1},
                                    {1, 100, 300}, {2, 130, 40}, {1, 256, 600}, {2, 64, 9}};
    const char *isas[] = {"avx512", "avx2", "sse2"};
    const char *was = en_gemm_isa();
    int ran = 0;
    srand(11);
    for (int i = 0; i < 3; i++) {
        if (en_gemm_set_isa(isas[i]) != 0) continue; // this CPU lacks it
        ran++;
        for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++)
            for (int variant = 0; variant < 5; variant++) {
                int flags =
                    (int[]){0, EN_GEMM_ACCUMULATE, EN_GEMM_GELU, 0, EN_GEMM_ACCUMULATE}[variant];
                check_packed(shapes[s][0], shapes[s][1], shapes[s][2], flags, variant >= 1,
                             variant == 3);
            }
    }
    ck_assert_int_ge(ran, 1); // sse2 at least: every x86-64 has it
    ck_assert_int_eq(en_gemm_set_isa(was), 0);
    ck_assert_int_eq(en_gemm_set_isa("no-such-isa"), -1);
}
END_TEST

START_TEST(packed_gemm_threads_agree) {
    enum { M = 64, N = 512, K = 256 };
    float *a = malloc(sizeof(float) * M * K), *w = malloc(sizeof(float) * N * K);
    float *c1 = malloc(sizeof(float) * M * N), *c2 = malloc(sizeof(float) * M * N), *packed = NULL;
    ck_assert_int_eq(posix_memalign((void **)&packed, 64, en_packed_floats(N, K) * sizeof(float)),
                     0);
    srand(5);
    for (int i = 0; i < M * K; i++)
        a[i] = (float)rand() / RAND_MAX - 0.5f;
    for (int i = 0; i < N * K; i++)
        w[i] = (float)rand() / RAND_MAX - 0.5f;
    en_pack_rows(w, K, N, K, 1.f, packed);
    en_gemm_packed(M, N, K, a, K, packed, NULL, 0, c1, N);
    en_gemm_set_threads(3);
    en_gemm_packed(M, N, K, a, K, packed, NULL, 0, c2, N);
    en_gemm_set_threads(1);
    ck_assert_int_eq(memcmp(c1, c2, sizeof(float) * M * N), 0); // same kernel, same sums
    free(a), free(w), free(c1), free(c2), free(packed);
}
END_TEST

/* THPeligible of the mapping that holds `p` in /proc/self/smaps: 1 or 0, -1 when not found. */
static int thp_eligible(const void *p) {
    FILE *f = fopen("/proc/self/smaps", "r");
    if (!f) return -1;
    char line[512];
    int inside = 0, found = -1;
    while (fgets(line, sizeof line, f)) {
        unsigned long lo, hi;
        if (sscanf(line, "%lx-%lx", &lo, &hi) == 2) // a mapping's first line: "lo-hi perms ..."
            inside = (uintptr_t)p >= lo && (uintptr_t)p < hi;
        else if (inside && sscanf(line, "THPeligible: %d", &found) == 1)
            break;
    }
    fclose(f);
    return found;
}

/* Packed weights: 64-byte aligned, from 2 MB on aligned to 2 MB, and asked for on huge pages,
 * which the kernel grants (the mapping becomes eligible) wherever THP is not off. */
START_TEST(weights_alloc_on_huge_pages) {
    float *small = en_weights_alloc(100);
    ck_assert_ptr_nonnull(small);
    ck_assert_uint_eq((uintptr_t)small % 64, 0);
    small[24] = 1.f;
    free(small);

    size_t bytes = (5u << 20) + 12;
    char *big = en_weights_alloc(bytes);
    ck_assert_ptr_nonnull(big);
    ck_assert_uint_eq((uintptr_t)big % (2u << 20), 0);
    memset(big, 1, bytes);
    char mode[128] = "";
    FILE *f = fopen("/sys/kernel/mm/transparent_hugepage/enabled", "r");
    if (f) {
        if (!fgets(mode, sizeof mode, f)) mode[0] = '\0';
        fclose(f);
    }
    if (strstr(mode, "[madvise]") || strstr(mode, "[always]"))
        ck_assert_msg(thp_eligible(big) == 1, "THP is '%s' but the weights are not eligible", mode);
    free(big);
}
END_TEST

Suite *kernels_suite(void) {
    Suite *s = suite_create("kernels");
    TCase *tc = tcase_create("kernels");
    tcase_add_test(tc, erf_matches_libm);
    tcase_add_test(tc, exp_matches_libm);
    tcase_add_test(tc, gemm_matches_reference);
    tcase_add_test(tc, packed_gemm_matches_reference_on_every_path);
    tcase_add_test(tc, packed_gemm_threads_agree);
    tcase_add_test(tc, layernorm_and_softmax_known_answers);
    tcase_add_test(tc, weights_alloc_on_huge_pages);
    suite_add_tcase(s, tc);
    return s;
}
