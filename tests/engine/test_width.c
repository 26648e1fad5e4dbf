/* Width pruning against the float64 reference fixtures (shared/fixtures/<model>/width.jsonl):
 * every run narrows the model to its heads and neurons (factors folded in) and must give the
 * reference logits within 1e-4 and the same kept sets; FLOPs over the test set equal
 * width_flops.json's. A narrowed model keeping everything equals the model bit for bit. */
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "engine/en_dataset.h"
#include "engine/en_export.h"
#include "engine/en_flops.h"
#include "engine/en_forward.h"
#include "engine/en_width.h"
#include "test_engine.h"
#include "tests/common/shared_models.h"
#include "tests/common/tc_temp.h"

static const char *const *models;

/* One layer's width read from a fixture run: owned arrays behind an en_layer_width. */
typedef struct width_buf {
    int32_t heads[EN_MAX_LAYERS][64], *neurons[EN_MAX_LAYERS];
    float head_scale[EN_MAX_LAYERS][64], *neuron_scale[EN_MAX_LAYERS];
    en_layer_width w[EN_MAX_LAYERS];
} width_buf;

static void width_from_json(width_buf *b, const json_t *run, int L) {
    const json_t *jh = json_object_get(run, "heads"), *jn = json_object_get(run, "neurons");
    const json_t *jhs = json_object_get(run, "head_scale");
    const json_t *jns = json_object_get(run, "neuron_scale");
    for (int l = 0; l < L; l++) {
        const json_t *h = json_array_get(jh, l), *n = json_array_get(jn, l);
        int g = (int)json_array_size(h), m = (int)json_array_size(n);
        ck_assert_int_le(g, 64);
        b->neurons[l] = malloc(sizeof(int32_t) * (m + 1));
        b->neuron_scale[l] = malloc(sizeof(float) * (m + 1));
        for (int i = 0; i < g; i++) {
            b->heads[l][i] = (int32_t)json_integer_value(json_array_get(h, i));
            b->head_scale[l][i] =
                (float)json_number_value(json_array_get(json_array_get(jhs, l), i));
        }
        for (int i = 0; i < m; i++) {
            b->neurons[l][i] = (int32_t)json_integer_value(json_array_get(n, i));
            b->neuron_scale[l][i] =
                (float)json_number_value(json_array_get(json_array_get(jns, l), i));
        }
        b->w[l] = (en_layer_width){g, b->heads[l],   b->head_scale[l],
                                   m, b->neurons[l], b->neuron_scale[l]};
    }
}

static void width_buf_free(width_buf *b, int L) {
    for (int l = 0; l < L; l++) {
        free(b->neurons[l]);
        free(b->neuron_scale[l]);
    }
}

START_TEST(width_fixtures_match) {
    char dir[1024], path[2200];
    en_model *m = load_shared_model(models[_i], dir, sizeof dir);
    snprintf(path, sizeof path, "%s/../../fixtures/%s/width.jsonl", dir, models[_i]);
    FILE *f = fopen(path, "r");
    ck_assert_msg(f != NULL, "cannot open %s", path);
    en_ctx *c = NULL;
    ck_assert_int_eq(en_ctx_new(m, m->cfg.max_pos, &c), 0);
    int L = m->cfg.layers, C = m->cfg.num_labels;
    int32_t ids[512], types[512], *kept = malloc(sizeof(int32_t) * L * 512);
    int kept_n[EN_MAX_LAYERS], runs = 0, kept_bad = 0, logit_bad = 0, line_no = 0;
    float logits[EN_MAX_LABELS];
    double worst = 0;
    size_t cap = 1 << 24;
    char *buf = malloc(cap);
    while (fgets(buf, (int)cap, f)) {
        if (line_no++ % tc_stride()) continue;
        json_error_t err;
        json_t *j = json_loads(buf, 0, &err);
        ck_assert_msg(j != NULL, "%s:%d: %s", path, line_no, err.text);
        const json_t *ji = json_object_get(j, "ids"), *jt = json_object_get(j, "type_ids");
        int n = (int)json_array_size(ji);
        for (int i = 0; i < n; i++) {
            ids[i] = (int32_t)json_integer_value(json_array_get(ji, i));
            types[i] = (int32_t)json_integer_value(json_array_get(jt, i));
        }
        size_t ri;
        json_t *run;
        json_array_foreach(json_object_get(j, "runs"), ri, run) {
            width_buf *b = calloc(1, sizeof *b);
            width_from_json(b, run, L);
            en_model *nm = NULL;
            en_diag diag;
            int rc = en_model_narrow(m, b->w, &nm, &diag);
            ck_assert_msg(rc == 0, "%s", diag.msg);
            ck_assert_int_eq(en_ctx_set_model(c, nm), 0);
            en_metric metric;
            ck_assert_int_eq(
                en_metric_parse(json_string_value(json_object_get(run, "metric")), &metric), 0);
            double ratios[EN_MAX_LAYERS];
            for (int l = 0; l < L; l++)
                ratios[l] = json_number_value(json_array_get(json_object_get(run, "ratios"), l));
            ck_assert_int_eq(en_forward(c, ids, types, n, metric, ratios, logits, kept, kept_n), 0);
            const json_t *jk = json_object_get(run, "kept");
            for (int l = 0; l < L; l++) {
                const json_t *kl = json_array_get(jk, l);
                int bad = (int)json_array_size(kl) != kept_n[l];
                for (int i = 0; !bad && i < kept_n[l]; i++)
                    bad = kept[(size_t)l * n + i] != json_integer_value(json_array_get(kl, i));
                kept_bad += bad;
            }
            const json_t *jl = json_object_get(run, "logits");
            for (int k = 0; k < C; k++) {
                double d = fabs(logits[k] - json_number_value(json_array_get(jl, k)));
                worst = d > worst ? d : worst;
                if (d > 1e-4 && logit_bad++ < 5)
                    fprintf(stderr, "%s line %d run %zu (%s): logit %d off by %g\n", models[_i],
                            line_no, ri, json_string_value(json_object_get(run, "kind")), k, d);
            }
            /* the logits-only path (last layer on [CLS] alone) gives the same logits */
            float quick[EN_MAX_LABELS];
            ck_assert_int_eq(en_forward(c, ids, types, n, metric, ratios, quick, NULL, NULL), 0);
            ck_assert_mem_eq(quick, logits, sizeof(float) * C);
            ck_assert_int_eq(en_ctx_set_model(c, m), 0);
            en_model_free(nm);
            width_buf_free(b, L);
            free(b);
            runs++;
        }
        json_decref(j);
    }
    fclose(f);
    fprintf(stderr, "%s: %d width runs, max |dlogit| %.3g\n", models[_i], runs, worst);
    ck_assert_int_gt(runs, 10);
    ck_assert_int_eq(kept_bad, 0);
    ck_assert_int_eq(logit_bad, 0);
    free(buf);
    free(kept);
    en_ctx_free(c);
    en_model_free(m);
}
END_TEST

START_TEST(width_flops_match) {
    char dir[1024], path[2200], data[1024];
    en_model *m = load_shared_model(models[_i], dir, sizeof dir);
    snprintf(path, sizeof path, "%s/../../fixtures/%s/width_flops.json", dir, models[_i]);
    json_error_t err;
    json_t *j = json_load_file(path, 0, &err);
    ck_assert_msg(j != NULL, "%s: %s", path, err.text);
    en_dataset *d = NULL;
    en_diag diag;
    int rc = en_dataset_load(tc_shared_path(data, sizeof data, "data/sst2/test.tsv"), m, &d, &diag);
    ck_assert_msg(rc == 0, "%s", diag.msg);
    int L = m->cfg.layers;
    size_t si;
    json_t *s;
    json_array_foreach(json_object_get(j, "schedules"), si, s) {
        width_buf *b = calloc(1, sizeof *b);
        width_from_json(b, s, L);
        en_model *nm = NULL;
        ck_assert_int_eq(en_model_narrow(m, b->w, &nm, &diag), 0);
        double ratios[EN_MAX_LAYERS];
        for (int l = 0; l < L; l++)
            ratios[l] = json_number_value(json_array_get(json_object_get(s, "ratios"), l));
        en_eval_opts o = {.metric = EN_METRIC_ATTN, .ratios = ratios, .threads = 2, .batch = 16};
        en_eval_result r = {0};
        ck_assert_int_eq(en_eval(nm, d, &o, &r, &diag), 0);
        double want = json_number_value(json_object_get(s, "mean_flops"));
        ck_assert_msg(fabs(r.mean_flops - want) <= 1e-6 * want,
                      "schedule %zu: FLOPs %.10g, "
                      "reference %.10g",
                      si, r.mean_flops, want);
        ck_assert_double_eq_tol(r.flops_ratio, json_number_value(json_object_get(s, "flops_ratio")),
                                1e-6);
        /* near-ties are not skipped in the reference's accuracies: allow two sequences */
        double acc = json_number_value(json_object_get(json_object_get(s, "accuracy"), "attn"));
        ck_assert_msg(fabs(r.accuracy - acc) <= 2.0 / d->count + 1e-12,
                      "schedule %zu: accuracy %g, reference %g", si, r.accuracy, acc);
        en_model_free(nm);
        width_buf_free(b, L);
        free(b);
    }
    json_decref(j);
    en_dataset_free(d);
    en_model_free(m);
}
END_TEST

/* Keeping every head and neuron with factors 1 is the model itself, bit for bit; and a bad
 * width is refused with a message naming the layer. */
START_TEST(width_identity_and_checks) {
    en_model *m = tc_load_model(tc_demo_model());
    const en_config *cfg = &m->cfg;
    int L = cfg->layers;
    int32_t heads[64], *neurons = malloc(sizeof(int32_t) * cfg->ffn);
    for (int i = 0; i < cfg->heads; i++)
        heads[i] = i;
    for (int i = 0; i < cfg->ffn; i++)
        neurons[i] = i;
    en_layer_width w[EN_MAX_LAYERS];
    for (int l = 0; l < L; l++)
        w[l] = (en_layer_width){cfg->heads, heads, NULL, cfg->ffn, neurons, NULL};
    en_model *nm = NULL;
    en_diag diag;
    ck_assert_int_eq(en_model_narrow(m, w, &nm, &diag), 0);
    en_ctx *c = NULL;
    ck_assert_int_eq(en_ctx_new(m, 64, &c), 0);
    int32_t ids[] = {2, 1015, 11, 61, 43, 7330, 1004, 1391, 3};
    float a[EN_MAX_LABELS], b[EN_MAX_LABELS];
    double ratios[EN_MAX_LAYERS];
    for (int l = 0; l < L; l++)
        ratios[l] = 1.0 - 0.15 * l;
    ck_assert_int_eq(en_forward(c, ids, NULL, 9, EN_METRIC_CONTEXT, ratios, a, NULL, NULL), 0);
    ck_assert_int_eq(en_ctx_set_model(c, nm), 0);
    ck_assert_int_eq(en_forward(c, ids, NULL, 9, EN_METRIC_CONTEXT, ratios, b, NULL, NULL), 0);
    ck_assert_mem_eq(a, b, sizeof(float) * cfg->num_labels);
    en_model_free(nm);

    int32_t bad_heads[2] = {1, 0}; // not ascending
    w[1] = (en_layer_width){2, bad_heads, NULL, 0, neurons, NULL};
    ck_assert_int_eq(en_model_narrow(m, w, &nm, &diag), EN_ESCHEDULE);
    ck_assert_ptr_nonnull(strstr(diag.msg, "layer 1"));
    w[1] = (en_layer_width){cfg->heads + 1, heads, NULL, 0, neurons, NULL};
    ck_assert_int_eq(en_model_narrow(m, w, &nm, &diag), EN_ESCHEDULE);
    ck_assert_ptr_nonnull(strstr(diag.msg, "heads"));
    en_ctx_free(c);
    free(neurons);
    en_model_free(m);
}
END_TEST

/* A narrowed model exported as a checkpoint folder loads back to the same network: the same
 * logits, bit for bit (F32 weights written as they are), and the same FLOPs. */
START_TEST(export_round_trip) {
    const char *demo = tc_demo_model();
    en_model *m = tc_load_model(demo);
    const en_config *cfg = &m->cfg;
    int L = cfg->layers;
    int32_t heads[EN_MAX_LAYERS][1], *neurons = malloc(sizeof(int32_t) * cfg->ffn);
    float hs[EN_MAX_LAYERS][1], *ns = malloc(sizeof(float) * cfg->ffn);
    for (int i = 0; i < cfg->ffn; i++)
        neurons[i] = 3 * i, ns[i] = 0.5f + 0.01f * (i % 50);
    en_layer_width w[EN_MAX_LAYERS];
    for (int l = 0; l < L; l++) {
        heads[l][0] = l % cfg->heads, hs[l][0] = 1.25f;
        int k = l == 1 ? 0 : cfg->ffn / 3 - l; // layer 1 keeps no neuron
        w[l] = (en_layer_width){1, heads[l], hs[l], k, neurons, ns};
    }
    en_model *nm = NULL;
    en_diag d;
    ck_assert_int_eq(en_model_narrow(m, w, &nm, &d), 0);
    char dir[64], out[96];
    tc_temp_dir_or_fail(dir, sizeof dir, "export");
    snprintf(out, sizeof out, "%s/m", dir);
    ck_assert_msg(en_model_export(nm, demo, out, &d) == 0, "%s", d.msg);
    ck_assert_int_eq(en_model_export(nm, demo, out, &d), EN_EINPUT); // never over a model
    en_model *back = tc_load_model(out);
    en_ctx *a, *b;
    ck_assert_int_eq(en_ctx_new(nm, 64, &a), 0);
    ck_assert_int_eq(en_ctx_new(back, 64, &b), 0);
    int32_t ids[] = {2, 1015, 11, 61, 43, 7330, 1004, 1391, 7565, 3467, 18, 3};
    double ratios[EN_MAX_LAYERS];
    for (int l = 0; l < L; l++)
        ratios[l] = 1.0 - 0.2 * l;
    float x[EN_MAX_LABELS], y[EN_MAX_LABELS];
    ck_assert_int_eq(en_forward(a, ids, NULL, 12, EN_METRIC_CONTEXT, ratios, x, NULL, NULL), 0);
    ck_assert_int_eq(en_forward(b, ids, NULL, 12, EN_METRIC_CONTEXT, ratios, y, NULL, NULL), 0);
    ck_assert_mem_eq(x, y, sizeof(float) * cfg->num_labels);
    ck_assert_double_eq(en_flops_model_sequence(nm, 12, ratios),
                        en_flops_model_sequence(back, 12, ratios));
    en_ctx_free(a), en_ctx_free(b);
    en_model_free(back);
    ck_assert_int_eq(tc_remove_tree(dir), 0);
    en_model_free(nm);
    en_model_free(m);
    free(neurons), free(ns);
}
END_TEST

Suite *width_suite(void) {
    Suite *s = suite_create("width");
    TCase *tc = tcase_create("fixtures");
    tcase_set_timeout(tc, 1200);
    int n = shared_models("width.jsonl", &models);
    tcase_add_loop_test(tc, width_fixtures_match, 0, n);
    tcase_add_loop_test(tc, width_flops_match, 0, n);
    tcase_add_test(tc, width_identity_and_checks);
    tcase_add_test(tc, export_round_trip);
    suite_add_tcase(s, tc);
    return s;
}
