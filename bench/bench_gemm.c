/* bench_gemm: GFLOP/s of the engine's packed-panel product (every kernel path this CPU has),
 * GOP/s of its INT8 product (every INT8 path but the scalar reference; activations quantized
 * per call, as in the forward pass), against OpenBLAS's cblas_sgemm on the same operands, for the
 * weight shapes of BERT-family layers and the row counts requests have (M = 1 ... 512), with 1 and
 * 2 threads; and, single-threaded, BLIS (cblas_sgemm of libblis.so.4) and oneDNN (dnnl_sgemm of
 * libdnnl.so.2) where they are installed (loaded at run time: neither is a dependency of searchd).
 * Prints the CPU first: compare only figures from one run. Usage: bench_gemm [--threads-max N]
 * [--ms 8,25,..] [H,FFN ...] (default: 2 threads at most; the shared models' 128,512 and 256,1024,
 * and BERT-base's 768,3072). */
#include <cblas.h>
#include <dlfcn.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "engine/en_clock.h"
#include "engine/en_gemm.h"
#include "engine/en_qgemm.h"

static void cpu_name(char *out, size_t cap) {
    snprintf(out, cap, "unknown CPU");
    FILE *f = fopen("/proc/cpuinfo", "r");
    char line[512];
    while (f && fgets(line, sizeof line, f))
        if (strncmp(line, "model name", 10) == 0) {
            char *v = strchr(line, ':');
            if (v) {
                snprintf(out, cap, "%s", v + 2);
                out[strcspn(out, "\n")] = 0;
            }
            break;
        }
    if (f) fclose(f);
}

/* Median GFLOP/s of `fn` over repeats lasting about 0.15 s. */
/* The other libraries, found at run time. */
typedef void cblas_sgemm_fn(int, int, int, int, int, int, float, const float *, int, const float *,
                            int, float, float *, int);
typedef int dnnl_sgemm_fn(char, char, int64_t, int64_t, int64_t, float, const float *, int64_t,
                          const float *, int64_t, float, float *, int64_t);
static cblas_sgemm_fn *blis_sgemm;
static dnnl_sgemm_fn *dnnl_sgemm_p;

static void load_peers(void) {
    setenv("BLIS_NUM_THREADS", "1", 0);
    setenv("OMP_NUM_THREADS", "1", 0);
    /* POSIX: dlsym's object pointer converts to a function pointer; ISO C needs a memcpy */
    void *h = dlopen("libblis.so.4", RTLD_NOW | RTLD_LOCAL), *f;
    if (h && (f = dlsym(h, "cblas_sgemm"))) memcpy(&blis_sgemm, &f, sizeof f);
    h = dlopen("libdnnl.so.2", RTLD_NOW | RTLD_LOCAL);
    if (h && (f = dlsym(h, "dnnl_sgemm"))) memcpy(&dnnl_sgemm_p, &f, sizeof f);
}

enum { ENGINE, OPENBLAS, BLIS, ONEDNN, INT8 };

typedef struct run {
    int m, n, k, lib;
    const float *a, *w, *packed;
    float *c;
    const en_qmat *q; // the INT8 weight and the scratch of the activations
    const en_qrows *aq;
} run;

static void once(const run *r) {
    switch (r->lib) {
    case OPENBLAS:
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, r->m, r->n, r->k, 1.f, r->a, r->k,
                    r->w, r->k, 0.f, r->c, r->n);
        break;
    case BLIS:
        blis_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, r->m, r->n, r->k, 1.f, r->a, r->k, r->w,
                   r->k, 0.f, r->c, r->n);
        break;
    case ONEDNN:
        dnnl_sgemm_p('N', 'T', r->m, r->n, r->k, 1.f, r->a, r->k, r->w, r->k, 0.f, r->c, r->n);
        break;
    case INT8:
        en_qgemm(r->m, r->n, r->k, r->a, r->k, r->q, NULL, 0, r->c, r->n, r->aq);
        break;
    default:
        en_gemm_packed(r->m, r->n, r->k, r->a, r->k, r->packed, NULL, 0, r->c, r->n);
    }
}

static int cmp(const void *x, const void *y) {
    double a = *(const double *)x, b = *(const double *)y;
    return (a > b) - (a < b);
}

static double gflops(const run *r) {
    double t[99];
    once(r);
    int reps = 0;
    double start = en_now_seconds();
    while (reps < 99 && (reps < 5 || en_now_seconds() - start < 0.15)) {
        double t0 = en_now_seconds();
        int inner = 1 + (int)(2e6 / ((double)r->m * r->n * r->k)); // >= ~2M MACs a sample
        for (int i = 0; i < inner; i++)
            once(r);
        t[reps++] = (en_now_seconds() - t0) / inner;
    }
    qsort(t, reps, sizeof t[0], cmp);
    return 2.0 * r->m * r->n * r->k / t[reps / 2] / 1e9;
}

int main(int argc, char **argv) {
    const char *defaults[] = {"128,512", "256,1024", "768,3072"};
    int max_threads = 2;
    enum { MAX_M = 16 };
    int ms[MAX_M] = {1, 2, 4, 8, 16, 25, 32, 64, 128, 512}, NM = 10;
    for (;;) {
        if (argc > 2 && strcmp(argv[1], "--threads-max") == 0) {
            max_threads = atoi(argv[2]) >= 1 ? atoi(argv[2]) : 1;
        } else if (argc > 2 && strcmp(argv[1], "--ms") == 0) {
            NM = 0;
            for (char *p = argv[2]; *p && NM < MAX_M; p += *p == ',') {
                long v = strtol(p, &p, 10);
                if (v < 1 || v > 512 || (*p && *p != ',')) {
                    fprintf(stderr, "bench_gemm: --ms takes row counts in 1..512, like 8,25\n");
                    return 2;
                }
                ms[NM++] = (int)v;
            }
        } else
            break;
        argc -= 2, argv += 2;
    }
    const char **shapes = argc > 1 ? (const char **)argv + 1 : defaults;
    int n_shapes = argc > 1 ? argc - 1 : 3;
    /* the rows: fp32 paths, INT8 paths, then the libraries */
    enum { NF = 3, NQ = 4, NVAR = NF + NQ + 3 };
    const char *isas[NF] = {"avx512", "avx2", "sse2"};
    const char *qisas[NQ] = {"avx512vnni", "avx512bw", "avx2", "ssse3"};
    char cpu[256];
    cpu_name(cpu, sizeof cpu);
    load_peers();
    printf("CPU: %s; default kernel path: %s, INT8 %s; OpenBLAS: %s; BLIS: %s; oneDNN: %s\n", cpu,
           en_gemm_isa(), en_qgemm_isa(), openblas_get_config(),
           blis_sgemm ? "libblis.so.4" : "not installed",
           dnnl_sgemm_p ? "libdnnl.so.2 (dnnl_sgemm)" : "not installed");
    printf("GFLOP/s (GOP/s for int8), C[M,N] = A[M,K] W^T (W packed once for the engine; "
           "OpenBLAS repacks per call)\n");
    for (int s = 0; s < n_shapes; s++) {
        int H, F;
        if (sscanf(shapes[s], "%d,%d", &H, &F) != 2 || H < 1 || F < 1) {
            fprintf(stderr, "bench_gemm: shapes are H,FFN, not '%s'\n", shapes[s]);
            return 2;
        }
        int prods[4][2] = {{3 * H, H}, {H, H}, {F, H}, {H, F}}; // N, K
        const char *names[4] = {"QKV", "attn out", "FFN in", "FFN out"};
        for (int pi = 0; pi < 4; pi++) {
            int n = prods[pi][0], k = prods[pi][1];
            float *a = malloc(sizeof(float) * 512 * k), *w = malloc(sizeof(float) * n * k);
            float *c = malloc(sizeof(float) * 512 * n), *packed = NULL;
            if (!a || !w || !c ||
                posix_memalign((void **)&packed, 64, en_packed_floats(n, k) * sizeof(float)))
                return 1;
            for (int i = 0; i < 512 * k; i++)
                a[i] = (float)rand() / RAND_MAX - 0.5f;
            for (int i = 0; i < n * k; i++)
                w[i] = (float)rand() / RAND_MAX - 0.5f;
            en_pack_rows(w, k, n, k, 1.f, packed);
            int np = (n + EN_PANEL - 1) / EN_PANEL * EN_PANEL;
            int8_t *qw = NULL;
            en_qrows aq = {malloc((size_t)512 * en_qk_round(k)), malloc(512 * sizeof(float)),
                           malloc(512 * sizeof(int32_t)), en_qk_round(k)};
            float *qs = malloc(np * sizeof(float));
            int32_t *qc = malloc(np * sizeof(int32_t));
            if (!aq.q || !aq.scale || !aq.zero || !qs || !qc ||
                posix_memalign((void **)&qw, 64, en_qpacked_bytes(n, k)))
                return 1;
            en_qpack_rows(w, k, n, k, qw, qs, qc);
            en_qmat q = {qw, qs, qc};
            printf("\nH %d, FFN %d, %s: N %d, K %d\n%-16s", H, F, names[pi], n, k, "M");
            for (int i = 0; i < NM; i++)
                printf("%8d", ms[i]);
            printf("\n");
            /* Every row's figure for one M is taken in turn, three rounds, the median kept:
             * a shared host drifts, and drift then hits every row of a column alike. */
            enum { ROUNDS = 3 };
            double g[2][NVAR][MAX_M][ROUNDS];
            int have[2][NVAR] = {{0}};
            for (int i = 0; i < NM; i++)
                for (int round = 0; round < ROUNDS; round++)
                    for (int threads = 1; threads <= max_threads; threads++) {
                        en_gemm_set_threads(threads);
                        openblas_set_num_threads(threads);
                        for (int v = 0; v < NVAR; v++) {
                            if ((v < NF && en_gemm_set_isa(isas[v]) != 0) ||
                                (v >= NF && v < NF + NQ && en_qgemm_set_isa(qisas[v - NF]) != 0))
                                continue;
                            int lib = v < NF             ? ENGINE
                                      : v < NF + NQ      ? INT8
                                      : v == NF + NQ     ? OPENBLAS
                                      : v == NF + NQ + 1 ? BLIS
                                                         : ONEDNN;
                            if ((lib == BLIS && (!blis_sgemm || threads > 1)) ||
                                (lib == ONEDNN && (!dnnl_sgemm_p || threads > 1)))
                                continue;
                            run r = {ms[i], n, k, lib, a, w, packed, c, &q, &aq};
                            g[threads - 1][v][i][round] = gflops(&r);
                            have[threads - 1][v] = 1;
                        }
                    }
            static const char *libs[] = {"", "OpenBLAS", "BLIS", "oneDNN"};
            for (int threads = 1; threads <= max_threads; threads++)
                for (int v = 0; v < NVAR; v++) {
                    if (!have[threads - 1][v]) continue;
                    char label[32];
                    if (v < NF)
                        snprintf(label, sizeof label, "%s %dt", isas[v], threads);
                    else if (v < NF + NQ)
                        snprintf(label, sizeof label, "int8 %s %dt", qisas[v - NF], threads);
                    else
                        snprintf(label, sizeof label, "%s %dt", libs[v - NF - NQ + 1], threads);
                    printf("%-16s", label);
                    for (int i = 0; i < NM; i++) {
                        qsort(g[threads - 1][v][i], ROUNDS, sizeof(double), cmp);
                        printf("%8.1f", g[threads - 1][v][i][ROUNDS / 2]);
                    }
                    printf("\n");
                }
            for (int v = NF - 1; v >= 0; v--) // back to the best paths
                en_gemm_set_isa(isas[v]);
            for (int v = NQ - 1; v >= 0; v--)
                en_qgemm_set_isa(qisas[v]);
            free(a), free(w), free(c), free(packed), free(qw), free(qs), free(qc);
            free(aq.q), free(aq.scale), free(aq.zero);
        }
    }
    return 0;
}
