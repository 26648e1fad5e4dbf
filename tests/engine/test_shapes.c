/* Shapes the shared models do not have (hidden sizes and FFN widths that are not multiples of
 * the kernel's 16-column panels, a head size of 20): random-weight checkpoints written by
 * mkmodel, the unpruned forward pass against a plain double-precision reference written here
 * from the BERT equations, on every kernel path this CPU has; and the [CLS]-only last layer and
 * ragged batches against the full pass, bit for bit. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "engine/en_forward.h"
#include "engine/en_gemm.h"
#include "test_engine.h"
#include "tests/common/tc_temp.h"
#include "tools/mkmodel_lib.h"

static const int shapes[][4] = {{3, 40, 2, 72}, {2, 48, 3, 100}, {2, 64, 4, 128}};

static void ref_layernorm(double *x, int H, const float *g, const float *b, double eps) {
    double mean = 0, var = 0;
    for (int j = 0; j < H; j++)
        mean += x[j] / H;
    for (int j = 0; j < H; j++)
        var += (x[j] - mean) * (x[j] - mean) / H;
    for (int j = 0; j < H; j++)
        x[j] = (x[j] - mean) / sqrt(var + eps) * g[j] + b[j];
}

/* y[o] = b[o] + sum_i W[o][i] x[i] */
static void ref_linear(const float *w, const float *b, const double *x, int out, int in,
                       double *y) {
    for (int o = 0; o < out; o++) {
        double acc = b[o];
        for (int i = 0; i < in; i++)
            acc += (double)w[(size_t)o * in + i] * x[i];
        y[o] = acc;
    }
}

/* The unpruned BERT classifier in double, token by token. */
static void ref_forward(const en_model *m, const int32_t *ids, int n, double *logits) {
    const en_config *c = &m->cfg;
    int H = c->hidden, F = c->ffn, heads = c->heads, d = H / heads;
    double *x = calloc((size_t)n * H, sizeof *x), *qkv = calloc((size_t)n * 3 * H, sizeof *qkv);
    double *ctx = calloc(H, sizeof *ctx), *y = calloc((size_t)n * H, sizeof *y);
    double *f = calloc(F, sizeof *f), *z = calloc(H, sizeof *z), *a = calloc(n, sizeof *a);
    for (int i = 0; i < n; i++) {
        for (int j = 0; j < H; j++)
            x[i * H + j] = (double)m->w.word_emb[(size_t)ids[i] * H + j] +
                           m->w.pos_emb[(size_t)i * H + j] + m->w.type_emb[j];
        ref_layernorm(&x[i * H], H, m->w.emb_ln_g, m->w.emb_ln_b, c->ln_eps);
    }
    for (int l = 0; l < c->layers; l++) {
        const en_layer_weights *w = &m->w.layer[l];
        for (int i = 0; i < n; i++)
            ref_linear(w->wqkv, w->bqkv, &x[i * H], 3 * H, H, &qkv[i * 3 * H]);
        for (int i = 0; i < n; i++) {
            for (int h = 0; h < heads; h++) {
                double max = -1e300, sum = 0;
                for (int j = 0; j < n; j++) {
                    double s = 0;
                    for (int t = 0; t < d; t++)
                        s += qkv[i * 3 * H + h * d + t] * qkv[j * 3 * H + H + h * d + t];
                    a[j] = s / sqrt(d);
                    max = a[j] > max ? a[j] : max;
                }
                for (int j = 0; j < n; j++)
                    sum += a[j] = exp(a[j] - max);
                for (int t = 0; t < d; t++) {
                    double acc = 0;
                    for (int j = 0; j < n; j++)
                        acc += a[j] / sum * qkv[j * 3 * H + 2 * H + h * d + t];
                    ctx[h * d + t] = acc;
                }
            }
            ref_linear(w->wo, w->bo, ctx, H, H, &y[i * H]);
            for (int j = 0; j < H; j++)
                y[i * H + j] += x[i * H + j];
            ref_layernorm(&y[i * H], H, w->ln1_g, w->ln1_b, c->ln_eps);
        }
        for (int i = 0; i < n; i++) {
            ref_linear(w->w1, w->b1, &y[i * H], F, H, f);
            for (int j = 0; j < F; j++)
                f[j] = 0.5 * f[j] * (1 + erf(f[j] / sqrt(2)));
            ref_linear(w->w2, w->b2, f, H, F, z);
            for (int j = 0; j < H; j++)
                x[i * H + j] = z[j] + y[i * H + j];
            ref_layernorm(&x[i * H], H, w->ln2_g, w->ln2_b, c->ln_eps);
        }
    }
    ref_linear(m->w.pool_w, m->w.pool_b, x, H, H, z);
    for (int j = 0; j < H; j++)
        z[j] = tanh(z[j]);
    ref_linear(m->w.cls_w, m->w.cls_b, z, c->num_labels, H, logits);
    free(x), free(qkv), free(ctx), free(y), free(f), free(z), free(a);
}

static en_model *random_model(int s, char *dir) {
    mk_opts o;
    mk_opts_init(&o);
    o.layers = shapes[s][0], o.hidden = shapes[s][1], o.heads = shapes[s][2];
    o.ffn = shapes[s][3], o.seed = 17 + s;
    tc_temp_dir_or_fail(dir, 64, "shapes");
    en_diag diag = {{0}};
    ck_assert_msg(mk_write_model(dir, &o, &diag) == 0, "%s", diag.msg);
    return tc_load_model(dir);
}

START_TEST(odd_shapes_match_a_double_reference_on_every_path) {
    char dir[64];
    en_model *m = random_model(_i, dir);
    en_ctx *c = NULL;
    ck_assert_int_eq(en_ctx_new(m, 64, &c), 0);
    const char *was = en_gemm_isa(), *isas[] = {"avx512", "avx2", "sse2"};
    int32_t ids[40];
    double worst = 0;
    for (int isa = 0; isa < 3; isa++) {
        if (en_gemm_set_isa(isas[isa]) != 0) continue;
        for (int n = 1; n <= 40; n += 3 * tc_stride()) {
            for (int i = 0; i < n; i++)
                ids[i] = (int32_t)((i * 37 + n * 11) % m->cfg.vocab_size);
            double want[EN_MAX_LABELS];
            float got[EN_MAX_LABELS];
            ref_forward(m, ids, n, want);
            ck_assert_int_eq(en_forward(c, ids, NULL, n, EN_METRIC_ATTN, NULL, got, NULL, NULL), 0);
            for (int j = 0; j < m->cfg.num_labels; j++) {
                double err = fabs(got[j] - want[j]);
                worst = err > worst ? err : worst;
                ck_assert_msg(err < 1e-4, "%s, shape %d, n %d, logit %d: %.7f vs %.7f", isas[isa],
                              _i, n, j, got[j], want[j]);
            }
        }
    }
    ck_assert_int_eq(en_gemm_set_isa(was), 0);
    ck_assert_double_lt(worst, 1e-4);
    en_ctx_free(c);
    en_model_free(m);
    ck_assert_int_eq(tc_remove_tree(dir), 0);
}
END_TEST

START_TEST(odd_shapes_cls_layer_and_batches_are_exact) {
    char dir[64];
    en_model *m = random_model(_i, dir);
    int L = m->cfg.layers, C = m->cfg.num_labels;
    enum { B = 5 };
    /* each sequence its own metric: what a batch of schedules does */
    const en_metric metrics[B] = {EN_METRIC_CONTEXT, EN_METRIC_ATTN, EN_METRIC_POWER, EN_METRIC_CLS,
                                  EN_METRIC_CONTEXT};
    en_ctx *one = NULL, *batch = NULL;
    ck_assert_int_eq(en_ctx_new(m, 40, &one), 0);
    ck_assert_int_eq(en_ctx_new_batch(m, 40, B * 40, B, &batch), 0);
    int32_t ids[B][40], kept[EN_MAX_LAYERS * 40];
    const int32_t *idp[B];
    int n[B], rows[B];
    float full[B][EN_MAX_LABELS], fast[EN_MAX_LABELS], got[B * EN_MAX_LABELS];
    double ratios[EN_MAX_LAYERS];
    for (int l = 0; l < L; l++)
        ratios[l] = 0.8 - 0.3 * l / L;
    for (int s = 0; s < B; s++) {
        n[s] = rows[s] = 3 + 8 * s;
        for (int i = 0; i < n[s]; i++)
            ids[s][i] = (int32_t)((i * 31 + s * 7) % m->cfg.vocab_size);
        idp[s] = ids[s];
        ck_assert_int_eq(
            en_forward(one, ids[s], NULL, n[s], metrics[s], ratios, full[s], kept, NULL), 0);
        ck_assert_int_eq(en_forward(one, ids[s], NULL, n[s], metrics[s], ratios, fast, NULL, NULL),
                         0);
        ck_assert_mem_eq(full[s], fast, sizeof(float) * C);
    }
    ck_assert_int_eq(en_ctx_begin_batch(batch, B, idp, NULL, n), 0);
    for (int l = 0; l < L - 1; l++) {
        for (int s = 0; s < B; s++)
            rows[s] = en_keep_count(ratios[l], n[s], rows[s]);
        ck_assert_int_eq(en_ctx_layer_batch(batch, l, rows, metrics), 0);
    }
    ck_assert_int_eq(en_ctx_layer_cls(batch, L - 1), 0);
    ck_assert_int_eq(en_ctx_finish_batch(batch, got), 0);
    for (int s = 0; s < B; s++)
        ck_assert_mem_eq(full[s], got + s * C, sizeof(float) * C);
    en_ctx_free(one);
    en_ctx_free(batch);
    en_model_free(m);
    ck_assert_int_eq(tc_remove_tree(dir), 0);
}
END_TEST

Suite *shapes_suite(void) {
    Suite *s = suite_create("shapes");
    TCase *tc = tcase_create("random");
    tcase_set_timeout(tc, 300);
    tcase_add_loop_test(tc, odd_shapes_match_a_double_reference_on_every_path, 0, 3);
    tcase_add_loop_test(tc, odd_shapes_cls_layer_and_batches_are_exact, 0, 3);
    suite_add_tcase(s, tc);
    return s;
}
