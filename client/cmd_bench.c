/* searchctl bench: latency of one sequence (batch 1) per length, its GFLOP/s, that against the
 * throughput of the engine's matrix kernel measured in the same run, the share of time spent
 * outside matrix products, the speed-up of a pruned schedule, and (--profile) the time of each
 * step of the forward pass. A random-weight checkpoint of any shape
 * (--shape) is written by mkmodel's library into a temp folder first. */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "client/offline_args.h"
#include "client/searchctl.h"
#include "engine/en_clock.h"
#include "engine/en_flops.h"
#include "engine/en_forward.h"
#include "engine/en_gemm.h"
#include "engine/en_qgemm.h"
#include "tools/mkmodel_lib.h"

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* Median over repetitions of fn(arg): at least 5 runs and about `budget_ms`, after a warm-up. */
typedef void (*bench_fn)(void *arg);
static double median_ms(bench_fn fn, void *arg, double budget_ms) {
    double t[201];
    fn(arg);
    int reps = 0;
    double start = (en_now_seconds() * 1e3);
    while (reps < 201 && (reps < 5 || (en_now_seconds() * 1e3) - start < budget_ms)) {
        double t0 = (en_now_seconds() * 1e3);
        fn(arg);
        t[reps++] = (en_now_seconds() * 1e3) - t0;
    }
    qsort(t, reps, sizeof t[0], cmp_double);
    return t[reps / 2];
}

typedef struct fwd_arg {
    en_ctx *c;
    const int32_t *ids;
    int n;
    const sc_schedule *s;
    float logits[EN_MAX_LABELS];
} fwd_arg;

static void run_forward(void *p) {
    fwd_arg *a = p;
    en_forward(a->c, a->ids, NULL, a->n, a->s->metric, a->s->ratios, a->logits, NULL, NULL);
}

/* The matrix products of one forward pass alone, same kernels, shapes and order, on scratch
 * buffers (the attention operands packed from scratch too). */
typedef struct gemm_arg {
    const en_model *m;
    int n;
    const sc_schedule *s;
    float *a, *b, *p; // scratch, large enough for any operand; p 64-byte aligned
} gemm_arg;

static void run_gemms(void *arg) {
    gemm_arg *g = arg;
    const en_config *cfg = &g->m->cfg;
    int H = cfg->hidden, F = cfg->ffn, heads = cfg->heads, d = H / heads, n = g->n;
    for (int l = 0; l < cfg->layers; l++) {
        const en_packed_layer *w = &g->m->packed[l];
        int k = en_keep_count(g->s->ratios[l], g->n, n);
        en_gemm_packed(n, 3 * H, H, g->a, H, w->wqkv, NULL, 0, g->b, 3 * H);
        for (int h = 0; h < heads; h++) {
            en_pack_rows(g->b + H + h * d, 3 * H, n, d, 1.f, g->p);
            en_gemm_packed(n, n, d, g->b + h * d, 3 * H, g->p, NULL, 0, g->a, n);
        }
        for (int h = 0; h < heads; h++) {
            en_pack_cols(g->b + 2 * H + h * d, 3 * H, n, d, g->p);
            en_gemm_packed(k, d, n, g->a, n, g->p, NULL, 0, g->b + h * d, H);
        }
        en_gemm_packed(k, H, H, g->b, H, w->wo, NULL, EN_GEMM_ACCUMULATE, g->a, H);
        en_gemm_packed(k, F, H, g->a, H, w->w1, NULL, EN_GEMM_GELU, g->b, F);
        en_gemm_packed(k, H, F, g->b, F, w->w2, NULL, EN_GEMM_ACCUMULATE, g->a, H);
        n = k;
    }
}

typedef struct kernel_arg {
    int m, n, k;
    const float *packed;
    float *a, *c;
} kernel_arg;

static void run_kernel(void *p) {
    kernel_arg *s = p;
    en_gemm_packed(s->m, s->n, s->k, s->a, s->k, s->packed, NULL, 0, s->c, s->n);
}

/* Per step of the forward pass, microseconds per sequence at each length. */
static void print_profile(en_ctx *c, const int32_t *ids, const int *lengths, int nlen,
                          const sc_schedule *s, int json, json_t *out) {
    double ns[32][EN_STEP_COUNT] = {{0}};
    int reps[32] = {0};
    if (nlen > 32) nlen = 32;
    for (int li = 0; li < nlen; li++) {
        fwd_arg fa = {.c = c, .ids = ids, .n = lengths[li], .s = s};
        run_forward(&fa); // warm-up, unprofiled
        en_ctx_profile(c, ns[li]);
        double start = (en_now_seconds() * 1e3);
        while (reps[li] < 20 || ((en_now_seconds() * 1e3) - start < 300 && reps[li] < 100000)) {
            run_forward(&fa);
            reps[li]++;
        }
        en_ctx_profile(c, NULL);
    }
    json_t *steps = json_object();
    if (!json) {
        printf("\nus per sequence by step (engine timers)\n%-10s", "step");
        for (int li = 0; li < nlen; li++)
            printf(" %9d", lengths[li]);
        printf("\n");
    }
    double total[32] = {0};
    for (int st = 0; st < EN_STEP_COUNT; st++) {
        json_t *row = json_array();
        if (!json) printf("%-10s", en_step_name((en_step)st));
        for (int li = 0; li < nlen; li++) {
            double us = ns[li][st] / reps[li] / 1e3;
            total[li] += us;
            json_array_append_new(row, json_real(us));
            if (!json) printf(" %9.1f", us);
        }
        json_object_set_new(steps, en_step_name((en_step)st), row);
        if (!json) printf("\n");
    }
    if (!json) {
        printf("%-10s", "total");
        for (int li = 0; li < nlen; li++)
            printf(" %9.1f", total[li]);
        printf("\n");
    }
    json_object_set_new(out, "profile_us", steps);
}

static int parse_shape(const char *text, mk_opts *o) {
    int L, H, heads, F;
    char tail;
    if (sscanf(text, "%d,%d,%d,%d%c", &L, &H, &heads, &F, &tail) != 4 || L < 1 || L > 64 || H < 1 ||
        heads < 1 || H % heads || F < 1)
        return -1;
    o->layers = L;
    o->hidden = H;
    o->heads = heads;
    o->ffn = F;
    return 0;
}

int cmd_bench(ctl_args *a, int argc, char **argv) {
    (void)argc, (void)argv; // no positional arguments (the table says so)
    char tmpdir[] = "/tmp/searchctl-bench-XXXXXX";
    int made_tmp = 0;
    if (a->shape) {
        mk_opts o;
        mk_opts_init(&o);
        if (parse_shape(a->shape, &o) != 0) {
            fprintf(stderr, "searchctl bench: --shape takes L,H,heads,FFN, not '%s'\n", a->shape);
            return 2;
        }
        en_diag diag = {{0}};
        if (!mkdtemp(tmpdir) || mk_write_model(tmpdir, &o, &diag) != 0) {
            fprintf(stderr, "searchctl bench: cannot write a random model: %s\n", diag.msg);
            return 1;
        }
        made_tmp = 1;
        a->model = tmpdir;
    }
    en_model *m = NULL;
    sc_schedule s, full;
    int rc = offline_load(a, &m, &s);
    if (made_tmp) {
        char cmd[128];
        snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmpdir);
        if (system(cmd) != 0) fprintf(stderr, "searchctl bench: could not remove %s\n", tmpdir);
    }
    if (rc) return 1;
    int pruned = a->schedule || a->ratios;
    sc_schedule_full(&full, s.metric, m->cfg.layers);
    int threads = a->threads > 0 ? a->threads : 1;
    en_set_blas_threads(threads);

    int lengths[32], nlen = 0;
    const char *p = a->lengths ? a->lengths : "32,64,128,256,512";
    while (*p && nlen < 32) {
        char *end;
        long v = strtol(p, &end, 10);
        if (end == p || v < 2) {
            fprintf(stderr, "searchctl bench: bad --lengths '%s'\n", a->lengths);
            en_model_free(m);
            return 2;
        }
        if (v <= m->cfg.max_pos) lengths[nlen++] = (int)v;
        p = *end == ',' ? end + 1 : end;
    }
    const en_config *cfg = &m->cfg;
    size_t big = (size_t)m->cfg.max_pos * (cfg->ffn > cfg->max_pos ? cfg->ffn : cfg->max_pos) * 4;
    gemm_arg g = {.m = m, .a = calloc(big, sizeof(float)), .b = calloc(big, sizeof(float))};
    if (posix_memalign((void **)&g.p, 64, big * sizeof(float))) g.p = NULL;
    /* the kernel's throughput on this machine: the FFN-in product at the longest length */
    int maxlen = 0;
    for (int i = 0; i < nlen; i++)
        maxlen = lengths[i] > maxlen ? lengths[i] : maxlen;
    kernel_arg kg = {maxlen > 0 ? maxlen : 128, cfg->ffn, cfg->hidden, m->packed[0].w1, g.a, g.b};
    double kg_ms = g.a && g.b ? median_ms(run_kernel, &kg, 300) : 1;
    double kernel_gflops = 2.0 * kg.m * kg.n * kg.k / (kg_ms * 1e6);

    en_ctx *c = NULL;
    int32_t *ids = malloc(sizeof(int32_t) * cfg->max_pos);
    if (!g.a || !g.b || !g.p || !ids || en_ctx_new(m, cfg->max_pos, &c) != 0) {
        fputs("searchctl bench: out of memory\n", stderr);
        en_model_free(m);
        return 1;
    }
    en_ctx_set_precision(c, s.prec); // the schedule's (--precision sets it)
    srand(1);
    for (int i = 0; i < cfg->max_pos; i++)
        ids[i] = 5 + rand() % (cfg->vocab_size - 5);
    char stext[SC_SCHEDULE_TEXT_MAX];
    sc_schedule_format(&s, stext, sizeof stext);
    json_t *rows = json_array();
    if (!a->json) {
        printf("model: %d layers, hidden %d, %d heads, FFN %d; %d thread%s; kernel %s %dx%dx%d: "
               "%.1f GFLOP/s\n",
               cfg->layers, cfg->hidden, cfg->heads, cfg->ffn, threads, threads > 1 ? "s" : "",
               en_gemm_isa(), kg.m, kg.n, kg.k, kernel_gflops);
        if (a->precision)
            printf("precision: %s (INT8 path %s; \"of kernel\" and \"matmul ms\" are F32's)\n",
                   a->precision, en_qgemm_isa());
        printf("%6s %10s %9s %9s %11s %9s", "length", "full ms", "GFLOP/s", "of kernel",
               "matmul ms", "other");
        if (pruned) printf(" %10s %8s %8s", "pruned ms", "flops", "time");
        printf("\n");
    }
    for (int li = 0; li < nlen; li++) {
        int n = lengths[li];
        ids[0] = 2;
        fwd_arg fa = {.c = c, .ids = ids, .n = n, .s = &full};
        double full_ms = median_ms(run_forward, &fa, 400);
        g.n = n;
        g.s = &full;
        double mm_ms = median_ms(run_gemms, &g, 300);
        double flops = en_flops_sequence(cfg, n, NULL);
        double gflops = flops / (full_ms * 1e6);
        double other = 1 - mm_ms / full_ms;
        json_t *row = json_pack("{s:i, s:f, s:f, s:f, s:f, s:f}", "length", n, "full_ms", full_ms,
                                "gflops", gflops, "of_kernel", gflops / kernel_gflops, "matmul_ms",
                                mm_ms, "other_fraction", other);
        if (!a->json)
            printf("%6d %10.3f %9.1f %8.0f%% %11.3f %8.1f%%", n, full_ms, gflops,
                   100 * gflops / kernel_gflops, mm_ms, 100 * other);
        if (pruned) {
            fa.s = &s;
            double pr_ms = median_ms(run_forward, &fa, 400);
            double fr = sc_schedule_flops(cfg, &s, n) / flops;
            json_object_set_new(row, "pruned_ms", json_real(pr_ms));
            json_object_set_new(row, "flops_ratio", json_real(fr));
            json_object_set_new(row, "time_ratio", json_real(pr_ms / full_ms));
            if (!a->json) printf(" %10.3f %8.3f %8.3f", pr_ms, fr, pr_ms / full_ms);
        }
        if (!a->json) printf("\n");
        json_array_append_new(rows, row);
    }
    json_t *out = json_pack(
        "{s:i, s:i, s:i, s:i, s:i, s:s, s:f, s:s, s:s, s:s, s:o}", "layers", cfg->layers, "hidden",
        cfg->hidden, "heads", cfg->heads, "ffn", cfg->ffn, "threads", threads, "kernel",
        en_gemm_isa(), "kernel_gflops", kernel_gflops, "schedule", stext, "precision",
        sc_schedule_precision_name(&s), "int8_kernel", en_qgemm_isa(), "lengths", rows);
    if (!a->json && pruned) printf("schedule: %s\n", stext);
    if (a->profile) print_profile(c, ids, lengths, nlen, &s, a->json, out);
    if (a->json)
        print_json(out);
    else
        json_decref(out);
    free(ids);
    free(g.a);
    free(g.b);
    free(g.p);
    en_ctx_free(c);
    en_model_free(m);
    return 0;
}
