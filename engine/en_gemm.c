/* Packing, the choice of kernel path by CPU, and splitting a large product over threads. */
#include "en_gemm.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "en_isa.h"
#include "en_kernels.h"

typedef struct isa_path {
    en_isa isa; // name, supported(): first, for en_isa_table
    en_gemm_fn *fn;
    en_softmax_fn *softmax;
} isa_path;

static int has_avx512(void) {
    return __builtin_cpu_supports("avx512f");
}
static int has_avx2(void) {
    return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
}
static int has_sse2(void) {
    return 1; // baseline x86-64
}

/* Best first. */
static const isa_path paths[] = {
    {{"avx512", has_avx512}, en_gemm_avx512, en_softmax_avx512},
    {{"avx2", has_avx2}, en_gemm_avx2, en_softmax_avx2},
    {{"sse2", has_sse2}, en_gemm_sse2, en_softmax_sse2},
};

/* The path in use: chosen once, on first use (or by en_gemm_set_isa). */
static en_isa_table table = {paths, sizeof paths[0], sizeof paths / sizeof paths[0], NULL};
static _Atomic int gemm_threads = 1;

static const isa_path *path(void) {
    return en_isa_current(&table);
}

const char *en_gemm_isa(void) {
    return path()->isa.name;
}

int en_gemm_set_isa(const char *name) {
    return en_isa_set(&table, name);
}

void en_gemm_set_threads(int n) {
    gemm_threads = n < 1 ? 1 : n;
}

void en_softmax_rows(float *x, int rows, int cols, int ld) {
    path()->softmax(x, rows, cols, ld);
}

void *en_weights_alloc(size_t bytes) {
    enum { HUGE_PAGE = 2 << 20 };
    void *p = NULL;
    if (bytes < HUGE_PAGE) return posix_memalign(&p, 64, bytes ? bytes : 64) ? NULL : p;
    size_t whole = (bytes + HUGE_PAGE - 1) / HUGE_PAGE * HUGE_PAGE; // the advice covers only ours
    if (posix_memalign(&p, HUGE_PAGE, whole)) return NULL;
#ifdef MADV_HUGEPAGE
    madvise(p, whole, MADV_HUGEPAGE); // advice: without THP the pages stay 4 KB
#endif
    return p;
}

size_t en_packed_floats(int n, int k) {
    return (size_t)(n + EN_PANEL - 1) / EN_PANEL * EN_PANEL * (size_t)k;
}

void en_pack_rows(const float *w, int ldw, int n, int k, float scale, float *dst) {
    for (int j0 = 0; j0 < n; j0 += EN_PANEL) {
        float *panel = dst + (size_t)j0 * k;
        for (int p = 0; p < k; p++)
            for (int j = 0; j < EN_PANEL; j++)
                panel[(size_t)p * EN_PANEL + j] =
                    j0 + j < n ? w[(size_t)(j0 + j) * ldw + p] * scale : 0.f;
    }
}

void en_pack_cols(const float *b, int ldb, int k, int n, float *dst) {
    for (int j0 = 0; j0 < n; j0 += EN_PANEL) {
        float *panel = dst + (size_t)j0 * k;
        int nc = n - j0 < EN_PANEL ? n - j0 : EN_PANEL;
        for (int p = 0; p < k; p++) {
            float *row = panel + (size_t)p * EN_PANEL;
            memcpy(row, b + (size_t)p * ldb + j0, nc * sizeof(float));
            memset(row + nc, 0, (EN_PANEL - nc) * sizeof(float));
        }
    }
}

/* One product's operands, for the split over threads. */
typedef struct gemm_args {
    en_gemm_fn *fn;
    int m, n, k, lda, flags, ldc;
    const float *a, *packed, *bias;
    float *c;
} gemm_args;

static void run_panels(void *arg, int jp0, int jp1) {
    gemm_args *g = arg;
    g->fn(g->m, g->n, g->k, g->a, g->lda, g->packed, g->bias, g->flags, g->c, g->ldc, jp0, jp1);
}

void en_gemm_packed(int m, int n, int k, const float *a, int lda, const float *packed,
                    const float *bias, int flags, float *c, int ldc) {
    gemm_args g = {path()->fn, m, n, k, lda, flags, ldc, a, packed, bias, c};
    en__gemm_split((n + EN_PANEL - 1) / EN_PANEL, (long)m * n * k, run_panels, &g);
}

/* A share of the panels for one thread. */
typedef struct split_part {
    void (*fn)(void *arg, int jp0, int jp1);
    void *arg;
    int jp0, jp1;
} split_part;

static void *run_part(void *arg) {
    split_part *s = arg;
    s->fn(s->arg, s->jp0, s->jp1);
    return NULL;
}

/* Below this many multiply-adds a thread costs more than it saves (thread start ~20 us). */
#define PARALLEL_MIN_MACS (4L << 20)

void en__gemm_split(int panels, long macs, void (*fn)(void *arg, int jp0, int jp1), void *arg) {
    int threads = gemm_threads;
    if (threads > panels) threads = panels;
    if (threads <= 1 || macs < PARALLEL_MIN_MACS) {
        fn(arg, 0, panels);
        return;
    }
    enum { MAX_THREADS = 64 };
    if (threads > MAX_THREADS) threads = MAX_THREADS;
    split_part part[MAX_THREADS];
    pthread_t tid[MAX_THREADS];
    int started[MAX_THREADS] = {0};
    for (int t = 0; t < threads; t++) {
        part[t] = (split_part){fn, arg, panels * t / threads, panels * (t + 1) / threads};
        /* part 0 runs here; a thread that cannot start runs here too */
        if (t > 0) started[t] = pthread_create(&tid[t], NULL, run_part, &part[t]) == 0;
    }
    for (int t = 0; t < threads; t++)
        if (!started[t]) run_part(&part[t]);
    for (int t = 1; t < threads; t++)
        if (started[t]) pthread_join(tid[t], NULL);
}
