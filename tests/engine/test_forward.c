/* The forward pass against the float64 reference fixtures: full and pruned logits within 1e-4,
 * kept indices identical, for every metric and schedule; data-set FLOPs as in flops.json. */
#include <jansson.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/en_dataset.h"
#include "engine/en_flops.h"
#include "engine/en_forward.h"
#include "test_engine.h"

static const char *const models[] = {"sst2-bert-L4-H128-demo", "sst2-bert-L6-H256"};

static int json_ints(const json_t *arr, int32_t *out, int max) {
    int n = (int)json_array_size(arr);
    ck_assert_int_le(n, max);
    for (int i = 0; i < n; i++)
        out[i] = (int32_t)json_integer_value(json_array_get(arr, i));
    return n;
}

/* Checks every line of logits.jsonl; returns the largest logit difference seen. */
static double check_logits(const char *model_name) {
    char path[2200], dir[1024];
    shared_path(dir, sizeof dir, "models/");
    strncat(dir, model_name, sizeof dir - strlen(dir) - 1);
    en_model *m = load_model_or_fail(dir);
    snprintf(path, sizeof path, "%s/../../fixtures/%s/logits.jsonl", dir, model_name);
    FILE *f = fopen(path, "r");
    ck_assert_msg(f != NULL, "cannot open %s", path);
    en_ctx *c = NULL;
    ck_assert_int_eq(en_ctx_new(m, m->cfg.max_pos, &c), 0);
    int L = m->cfg.layers, C = m->cfg.num_labels;
    int32_t ids[512], types[512], *kept = malloc(sizeof(int32_t) * L * 512), want_kept[512];
    int kept_n[EN_MAX_LAYERS];
    float logits[EN_MAX_LABELS];
    double worst = 0;
    int lines = 0, runs = 0, kept_bad = 0, logit_bad = 0;
    char *buf = malloc(1 << 20);
    while (fgets(buf, 1 << 20, f)) {
        json_error_t err;
        json_t *j = json_loads(buf, 0, &err);
        ck_assert_msg(j != NULL, "%s:%d: %s", path, lines + 1, err.text);
        int n = json_ints(json_object_get(j, "ids"), ids, 512);
        json_ints(json_object_get(j, "type_ids"), types, 512);
        ck_assert_int_eq(en_forward(c, ids, types, n, EN_METRIC_ATTN, NULL, logits, NULL, NULL), 0);
        json_t *full = json_object_get(j, "logits_full");
        for (int k = 0; k < C; k++) {
            double d = fabs(logits[k] - json_real_value(json_array_get(full, k)));
            worst = d > worst ? d : worst;
            logit_bad += d > 1e-4;
        }
        size_t ri;
        json_t *run;
        json_array_foreach(json_object_get(j, "runs"), ri, run) {
            en_metric metric;
            ck_assert_int_eq(en_metric_parse(json_string_value(json_object_get(run, "metric")),
                                             &metric), 0);
            double ratios[EN_MAX_LAYERS];
            json_t *jr = json_object_get(run, "ratios");
            ck_assert_int_eq((int)json_array_size(jr), L);
            for (int l = 0; l < L; l++)
                ratios[l] = json_number_value(json_array_get(jr, l));
            ck_assert_int_eq(en_forward(c, ids, types, n, metric, ratios, logits, kept, kept_n), 0);
            json_t *jk = json_object_get(run, "kept");
            for (int l = 0; l < L; l++) {
                int kn = json_ints(json_array_get(jk, l), want_kept, 512);
                if (kn != kept_n[l] || memcmp(want_kept, kept + l * n, sizeof(int32_t) * kn)) {
                    if (kept_bad++ < 5)
                        fprintf(stderr, "%s line %d run %zu layer %d: kept differs\n", model_name,
                                lines + 1, ri, l);
                }
            }
            json_t *jl = json_object_get(run, "logits");
            for (int k = 0; k < C; k++) {
                double d = fabs(logits[k] - json_real_value(json_array_get(jl, k)));
                worst = d > worst ? d : worst;
                logit_bad += d > 1e-4;
            }
            runs++;
        }
        json_decref(j);
        lines++;
    }
    fclose(f);
    free(buf);
    free(kept);
    en_ctx_free(c);
    en_model_free(m);
    printf("%s: %d lines, %d pruned runs, max |dlogit| %.3g, kept mismatches %d\n", model_name,
           lines, runs, worst, kept_bad);
    ck_assert_int_eq(lines, 220);
    ck_assert_int_gt(runs, 2500);
    ck_assert_int_eq(kept_bad, 0);
    ck_assert_msg(logit_bad == 0, "%d logits differ by more than 1e-4 (max %g)", logit_bad, worst);
    return worst;
}

START_TEST(fixture_logits_match) {
    check_logits(models[_i]);
}
END_TEST

START_TEST(dataset_flops_match) {
    char dir[1024], path[2200], data[1024];
    shared_path(dir, sizeof dir, "models/");
    strncat(dir, models[_i], sizeof dir - strlen(dir) - 1);
    snprintf(path, sizeof path, "%s/../../fixtures/%s/flops.json", dir, models[_i]);
    en_model *m = load_model_or_fail(dir);
    en_dataset *d = NULL;
    en_diag diag;
    int rc = en_dataset_load(shared_path(data, sizeof data, "data/sst2/test.tsv"), m, &d, &diag);
    ck_assert_msg(rc == 0, "%s", diag.msg);
    json_error_t err;
    json_t *j = json_load_file(path, 0, &err);
    ck_assert_msg(j != NULL, "%s: %s", path, err.text);
    ck_assert_int_eq(d->count, json_integer_value(json_object_get(j, "n_sequences")));

    json_t *base = json_object_get(j, "baseline");
    en_eval_opts o = {.metric = EN_METRIC_ATTN, .threads = 2};
    en_eval_result r = {0};
    ck_assert_int_eq(en_eval(m, d, &o, &r, &diag), 0);
    ck_assert_double_eq_tol(r.base_flops, json_number_value(json_object_get(base, "mean_flops")),
                            1e-6);
    ck_assert_double_eq_tol(r.mean_flops, r.base_flops, 1e-6);
    /* near-ties are not skipped in flops.json's accuracies: allow two sequences */
    double want = json_number_value(json_object_get(base, "accuracy"));
    ck_assert_msg(fabs(r.accuracy - want) <= 2.0 / d->count + 1e-12, "accuracy %g, reference %g",
                  r.accuracy, want);

    size_t si;
    json_t *s;
    json_array_foreach(json_object_get(j, "schedules"), si, s) {
        double ratios[EN_MAX_LAYERS];
        json_t *jr = json_object_get(s, "ratios");
        for (int l = 0; l < m->cfg.layers; l++)
            ratios[l] = json_number_value(json_array_get(jr, l));
        double sum = 0;
        for (int i = 0; i < d->count; i++)
            sum += en_flops_sequence(&m->cfg, d->ex[i].n, ratios);
        double want_flops = json_number_value(json_object_get(s, "mean_flops"));
        ck_assert_double_eq_tol(sum / d->count, want_flops, 1e-6);
        for (int mt = 0; mt < EN_METRIC_COUNT; mt++) {
            en_eval_opts po = {.metric = (en_metric)mt, .ratios = ratios, .threads = 2};
            ck_assert_int_eq(en_eval(m, d, &po, &r, &diag), 0);
            ck_assert_double_eq_tol(r.flops_ratio,
                                    json_number_value(json_object_get(s, "flops_ratio")), 1e-9);
            double acc = json_number_value(
                json_object_get(json_object_get(s, "accuracy"), en_metric_name((en_metric)mt)));
            ck_assert_msg(fabs(r.accuracy - acc) <= 2.0 / d->count + 1e-12,
                          "%s schedule %zu: accuracy %g, reference %g",
                          en_metric_name((en_metric)mt), si, r.accuracy, acc);
        }
    }
    json_decref(j);
    en_dataset_free(d);
    en_model_free(m);
}
END_TEST

/* Many contexts on one model at once compute exactly what one context computes alone. */
typedef struct conc_arg {
    const en_model *m;
    const en_dataset *d;
    float *out; // [count * C]
} conc_arg;

static void *conc_worker(void *p) {
    conc_arg *a = p;
    en_ctx *c = NULL;
    if (en_ctx_new(a->m, a->d->max_n, &c))
        return p;
    double ratios[EN_MAX_LAYERS] = {1, 0.6, 0.4, 0.25};
    for (int i = 0; i < a->d->count; i++)
        en_forward(c, a->d->ex[i].ids, a->d->ex[i].type_ids, a->d->ex[i].n, EN_METRIC_CONTEXT,
                   ratios, a->out + i * a->m->cfg.num_labels, NULL, NULL);
    en_ctx_free(c);
    return NULL;
}

START_TEST(concurrent_contexts_agree) {
    en_model *m = load_model_or_fail(getenv("SEARCHD_DEMO_MODEL"));
    char data[1024];
    en_dataset *full = NULL, *d = NULL;
    ck_assert_int_eq(en_dataset_load(shared_path(data, sizeof data, "data/sst2/test.tsv"), m,
                                     &full, NULL), 0);
    int idx[100];
    for (int i = 0; i < 100; i++)
        idx[i] = i;
    ck_assert_int_eq(en_dataset_view(full, idx, 100, &d), 0);
    enum { T = 4 };
    pthread_t tid[T];
    conc_arg args[T];
    for (int t = 0; t < T; t++) {
        args[t] = (conc_arg){m, d, malloc(sizeof(float) * 100 * m->cfg.num_labels)};
        ck_assert_int_eq(pthread_create(&tid[t], NULL, conc_worker, &args[t]), 0);
    }
    for (int t = 0; t < T; t++) {
        void *ret;
        pthread_join(tid[t], &ret);
        ck_assert_ptr_null(ret);
    }
    for (int t = 1; t < T; t++)
        ck_assert_mem_eq(args[t].out, args[0].out, sizeof(float) * 100 * m->cfg.num_labels);
    for (int t = 0; t < T; t++)
        free(args[t].out);
    en_dataset_free_view(d);
    en_dataset_free(full);
    en_model_free(m);
}
END_TEST

START_TEST(bad_inputs_are_refused) {
    en_model *m = load_model_or_fail(getenv("SEARCHD_DEMO_MODEL"));
    en_ctx *c = NULL;
    ck_assert_int_eq(en_ctx_new(m, m->cfg.max_pos + 1, &c), EN_ERANGE);
    ck_assert_int_eq(en_ctx_new(m, 16, &c), 0);
    int32_t ids[20] = {2, 100, 3}, types[20] = {0};
    float logits[2];
    ck_assert_int_eq(en_forward(c, ids, types, 0, EN_METRIC_ATTN, NULL, logits, NULL, NULL),
                     EN_EINPUT);
    ck_assert_int_eq(en_forward(c, ids, types, 17, EN_METRIC_ATTN, NULL, logits, NULL, NULL),
                     EN_EINPUT);
    ids[1] = m->cfg.vocab_size;
    ck_assert_int_eq(en_forward(c, ids, types, 3, EN_METRIC_ATTN, NULL, logits, NULL, NULL),
                     EN_EINPUT);
    ids[1] = 100;
    double increasing[4] = {0.5, 0.6, 0.4, 0.3}, zero[4] = {1, 1, 0, 0};
    ck_assert_int_eq(en_forward(c, ids, types, 3, EN_METRIC_ATTN, increasing, logits, NULL, NULL),
                     EN_ESCHEDULE);
    ck_assert_int_eq(en_forward(c, ids, types, 3, EN_METRIC_ATTN, zero, logits, NULL, NULL),
                     EN_ESCHEDULE);
    en_diag diag;
    ck_assert_int_eq(en_ratios_check(increasing, 4, &diag), EN_ESCHEDULE);
    ck_assert_ptr_nonnull(strstr(diag.msg, "layer 1"));
    en_ctx_free(c);
    en_model_free(m);
}
END_TEST

START_TEST(keep_count_follows_spec) {
    /* k = clamp(floor(r * n0 + 0.5), 1, n_in) */
    ck_assert_int_eq(en_keep_count(0.5, 9, 9), 5);   // 4.5 + .5 -> 5
    ck_assert_int_eq(en_keep_count(0.25, 2, 2), 1);  // 0.5 + .5 -> 1
    ck_assert_int_eq(en_keep_count(0.01, 10, 10), 1); // never below 1
    ck_assert_int_eq(en_keep_count(0.9, 10, 7), 7);  // never above the rows coming in
    ck_assert_int_eq(en_keep_count(0.7, 10, 10), 7);
}
END_TEST

Suite *forward_suite(void) {
    Suite *s = suite_create("forward");
    TCase *tc = tcase_create("fixtures");
    tcase_set_timeout(tc, 900);
    tcase_add_loop_test(tc, fixture_logits_match, 0, 2);
    tcase_add_loop_test(tc, dataset_flops_match, 0, 2);
    tcase_add_test(tc, concurrent_contexts_agree);
    tcase_add_test(tc, bad_inputs_are_refused);
    tcase_add_test(tc, keep_count_follows_spec);
    suite_add_tcase(s, tc);
    return s;
}
