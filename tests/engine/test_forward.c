/* The forward pass against the float64 reference fixtures: full and pruned logits within 1e-4,
 * kept indices identical, for every metric and schedule; data-set FLOPs as in flops.json. */
#include <jansson.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "engine/en_dataset.h"
#include "engine/en_flops.h"
#include "engine/en_forward.h"
#include "engine/en_gemm.h"
#include "test_engine.h"
#include "tests/common/shared_models.h"

/* Every model of shared/models with reference fixtures (tests/common/shared_models.h). */
static const char *const *models;

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
    en_model *m = load_shared_model(model_name, dir, sizeof dir);
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
    int stride = tc_stride(), line_no = 0;
    while (fgets(buf, 1 << 20, f)) {
        if (line_no++ % stride) continue;
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
            ck_assert_int_eq(
                en_metric_parse(json_string_value(json_object_get(run, "metric")), &metric), 0);
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
    ck_assert_int_ge(line_no, 200);
    ck_assert_int_ge(lines, 200 / stride);
    ck_assert_int_gt(runs, 2500 / stride);
    ck_assert_int_eq(kept_bad, 0);
    ck_assert_msg(logit_bad == 0, "%d logits differ by more than 1e-4 (max %g)", logit_bad, worst);
    return worst;
}

START_TEST(fixture_logits_match) {
    check_logits(models[_i]);
}
END_TEST

/* Every kernel path this CPU has (AVX-512, AVX2, SSE2) meets the fixtures, not only the one
 * chosen by default: the demo model, all its runs. */
START_TEST(fixture_logits_match_on_every_kernel_path) {
    const char *was = en_gemm_isa(), *isas[] = {"avx512", "avx2", "sse2"};
    int ran = 0;
    for (int i = 0; i < 3; i++)
        if (strcmp(isas[i], was) != 0 && en_gemm_set_isa(isas[i]) == 0) {
            check_logits(models[0]);
            ran++;
        }
    ck_assert_int_eq(en_gemm_set_isa(was), 0);
    ck_assert_int_ge(ran, 1); // sse2 at least, where the default is better
}
END_TEST

/* The engine's step timers account for the time of a forward pass: each step of a pruned pass
 * has time, and together they stay within the wall time around the calls. */
START_TEST(profile_accounts_for_the_pass) {
    en_model *m = tc_load_model(tc_demo_model());
    en_ctx *c = NULL;
    ck_assert_int_eq(en_ctx_new(m, 64, &c), 0);
    int32_t ids[64];
    for (int i = 0; i < 64; i++)
        ids[i] = 100 + i;
    double ratios[EN_MAX_LAYERS], ns[EN_STEP_COUNT] = {0};
    for (int l = 0; l < m->cfg.layers; l++)
        ratios[l] = 0.5;
    float logits[EN_MAX_LABELS];
    struct timespec t0, t1;
    en_ctx_profile(c, ns);
    clock_gettime(CLOCK_MONOTONIC, &t0);
    for (int r = 0; r < 20; r++)
        ck_assert_int_eq(en_forward(c, ids, NULL, 64, EN_METRIC_ATTN, ratios, logits, NULL, NULL),
                         0);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    en_ctx_profile(c, NULL);
    double wall = (t1.tv_sec - t0.tv_sec) * 1e9 + (t1.tv_nsec - t0.tv_nsec), sum = 0;
    for (int s = 0; s < EN_STEP_COUNT; s++) {
        ck_assert_msg(ns[s] > 0, "step %s has no time", en_step_name((en_step)s));
        sum += ns[s];
    }
    ck_assert_double_le(sum, wall);
    ck_assert_double_ge(sum, 0.5 * wall); // the gaps between steps are small
    ck_assert_ptr_null(en_step_name(EN_STEP_COUNT));
    en_ctx_free(c);
    en_model_free(m);
}
END_TEST

/* A shared model by name and the SST-2 dev set tokenized for it; both owned by the caller. */
/* Runs example `e` layer by layer with keep counts keep[l], from the start; logits out. */
static void run_keeps(en_ctx *c, const en_example *e, const int *keep, int layers, float *logits) {
    ck_assert_int_eq(en_ctx_begin(c, e->ids, e->type_ids, e->n), 0);
    for (int l = 0; l < layers; l++)
        ck_assert_int_eq(en_ctx_layer(c, l, keep[l], EN_METRIC_CONTEXT), 0);
    ck_assert_int_eq(en_ctx_finish(c, logits), 0);
}

/* The last layer run for the [CLS] row alone gives the logits of the whole layer, bit for bit,
 * with and without pruning (en_forward takes that path when no kept sets are asked for). */
START_TEST(cls_only_last_layer_equals_full) {
    en_dataset *d = NULL;
    en_model *m = load_with_dev_set(models[_i], &d);
    int L = m->cfg.layers, C = m->cfg.num_labels;
    int32_t *kept = malloc(sizeof(int32_t) * L * d->max_n);
    double ratios[EN_MAX_LAYERS];
    for (int l = 0; l < L; l++)
        ratios[l] = 1.0 - 0.7 * (l + 1) / L;
    en_ctx *c = NULL;
    ck_assert_int_eq(en_ctx_new(m, d->max_n, &c), 0);
    for (int e = 0; e < 100; e += tc_stride())
        for (int pruned = 0; pruned < 2; pruned++) {
            const en_example *ex = &d->ex[e];
            float full[EN_MAX_LABELS], fast[EN_MAX_LABELS];
            const double *r = pruned ? ratios : NULL;
            ck_assert_int_eq(
                en_forward(c, ex->ids, ex->type_ids, ex->n, EN_METRIC_POWER, r, full, kept, NULL),
                0);
            ck_assert_int_eq(
                en_forward(c, ex->ids, ex->type_ids, ex->n, EN_METRIC_POWER, r, fast, NULL, NULL),
                0);
            ck_assert_msg(memcmp(full, fast, sizeof(float) * C) == 0, "example %d differs", e);
        }
    free(kept);
    en_ctx_free(c);
    en_dataset_free(d);
    en_model_free(m);
}
END_TEST

/* A ragged batch gives every sequence exactly (bit for bit) what it gets alone, pruned or not,
 * and en_eval's batches the same predictions as one sequence at a time. */
START_TEST(ragged_batch_equals_one_at_a_time) {
    en_dataset *d = NULL;
    en_model *m = load_with_dev_set(models[_i], &d);
    int L = m->cfg.layers, C = m->cfg.num_labels;
    double ratios[EN_MAX_LAYERS];
    for (int l = 0; l < L; l++)
        ratios[l] = 1.0 - 0.8 * (l + 1) / L;
    enum { N = 60, B = 7 };
    const en_metric metrics[B] = {EN_METRIC_CONTEXT, EN_METRIC_CONTEXT, EN_METRIC_CONTEXT,
                                  EN_METRIC_CONTEXT, EN_METRIC_CONTEXT, EN_METRIC_CONTEXT,
                                  EN_METRIC_CONTEXT};
    en_ctx *one = NULL, *batch = NULL;
    ck_assert_int_eq(en_ctx_new(m, d->max_n, &one), 0);
    ck_assert_int_eq(en_ctx_new_batch(m, d->max_n, B * d->max_n, B, &batch), 0);
    for (int pruned = 0; pruned < 2; pruned++)
        for (int first = 0; first < N; first += B) {
            const int32_t *ids[B], *types[B];
            int n[B], rows[B], count = first + B <= N ? B : N - first;
            float want[B][EN_MAX_LABELS], got[B * EN_MAX_LABELS];
            for (int s = 0; s < count; s++) {
                const en_example *e = &d->ex[first + s];
                ids[s] = e->ids, types[s] = e->type_ids, n[s] = rows[s] = e->n;
                ck_assert_int_eq(en_forward(one, e->ids, e->type_ids, e->n, EN_METRIC_CONTEXT,
                                            pruned ? ratios : NULL, want[s], NULL, NULL),
                                 0);
            }
            ck_assert_int_eq(en_ctx_begin_batch(batch, count, ids, types, n), 0);
            for (int l = 0; l < L; l++) {
                for (int s = 0; s < count; s++)
                    rows[s] = pruned ? en_keep_count(ratios[l], n[s], rows[s]) : rows[s];
                ck_assert_int_eq(en_ctx_layer_batch(batch, l, rows, metrics), 0);
            }
            ck_assert_int_eq(en_ctx_finish_batch(batch, got), 0);
            for (int s = 0; s < count; s++)
                ck_assert_msg(memcmp(want[s], got + s * C, sizeof(float) * C) == 0,
                              "example %d (pruned %d) differs in a batch", first + s, pruned);
        }
    /* en_eval: batches of 16 predict what one at a time does */
    int *p1 = malloc(sizeof(int) * d->count), *p16 = malloc(sizeof(int) * d->count);
    en_eval_opts o = {.metric = EN_METRIC_ATTN, .ratios = ratios, .threads = 2};
    en_eval_result r1 = {.pred = p1}, r16 = {.pred = p16};
    ck_assert_int_eq(en_eval(m, d, &o, &r1, NULL), 0);
    o.batch = 16;
    ck_assert_int_eq(en_eval(m, d, &o, &r16, NULL), 0);
    ck_assert_mem_eq(p1, p16, sizeof(int) * d->count);
    ck_assert_int_eq(r1.correct, r16.correct);
    /* a batch larger than the state is refused, not overrun */
    const int32_t *ids9[B + 1];
    int n9[B + 1];
    for (int s = 0; s <= B; s++)
        ids9[s] = d->ex[s].ids, n9[s] = d->ex[s].n;
    ck_assert_int_eq(en_ctx_begin_batch(batch, B + 1, ids9, NULL, n9), EN_EINPUT);
    free(p1), free(p16);
    en_ctx_free(one);
    en_ctx_free(batch);
    en_dataset_free(d);
    en_model_free(m);
}
END_TEST

/* A layer run once with the largest keep count yields, by en_state_keep_top(), exactly the state
 * (and so the logits) of every smaller count at that layer, for every layer of a schedule. */
START_TEST(keep_top_equals_running_the_smaller_count) {
    en_dataset *d = NULL;
    en_model *m = load_with_dev_set(models[_i], &d);
    int L = m->cfg.layers, C = m->cfg.num_labels, H = m->cfg.hidden;
    en_ctx *c = NULL;
    ck_assert_int_eq(en_ctx_new(m, d->max_n, &c), 0);
    float *x = malloc(sizeof(float) * d->max_n * H);
    int32_t *pos = malloc(sizeof(int32_t) * d->max_n), *rank = malloc(sizeof(int32_t) * d->max_n);
    int checked = 0, stride = tc_stride();
    for (int e = 0; e < 12 * stride; e += stride) {
        const en_example *ex = &d->ex[e];
        for (int at = 0; at < L; at++) {
            int keep[EN_MAX_LAYERS], rows = ex->n;
            for (int l = 0; l < L; l++) // a schedule: full up to `at`, then halving
                keep[l] = rows = l < at ? rows : (rows + 1) / 2;
            int wide = at == 0 ? ex->n : keep[at - 1]; // every row the layer gets
            /* run to the wide state at `at` */
            en_ctx_rank_all(c, 1);
            ck_assert_int_eq(en_ctx_begin(c, ex->ids, ex->type_ids, ex->n), 0);
            for (int l = 0; l < at; l++)
                ck_assert_int_eq(en_ctx_layer(c, l, keep[l], EN_METRIC_CONTEXT), 0);
            ck_assert_int_eq(en_ctx_layer(c, at, wide, EN_METRIC_CONTEXT), 0);
            en_ctx_rank_all(c, 0);
            int n0, rw;
            const float *sx;
            const int32_t *sp;
            en_ctx_state(c, &n0, &rw, &sx, &sp);
            ck_assert_int_eq(rw, wide);
            memcpy(x, sx, sizeof(float) * rw * H);
            memcpy(pos, sp, sizeof(int32_t) * rw);
            memcpy(rank, en_ctx_rank(c), sizeof(int32_t) * rw);
            for (int k = 1; k <= wide; k++) {
                float want[EN_MAX_LABELS], got[EN_MAX_LABELS];
                int sched[EN_MAX_LAYERS];
                for (int l = 0; l < L; l++)
                    sched[l] = l < at ? keep[l] : l == at ? k : (keep[l] < k ? keep[l] : k);
                run_keeps(c, ex, sched, L, want);
                float *kx = malloc(sizeof(float) * wide * H);
                int32_t kp[512];
                ck_assert_int_eq(en_state_keep_top(x, pos, rank, wide, H, k, kx, kp), 0);
                ck_assert_int_eq(en_ctx_set_state(c, ex->n, k, kx, kp), 0);
                for (int l = at + 1; l < L; l++)
                    ck_assert_int_eq(en_ctx_layer(c, l, sched[l], EN_METRIC_CONTEXT), 0);
                ck_assert_int_eq(en_ctx_finish(c, got), 0);
                ck_assert_msg(memcmp(want, got, sizeof(float) * C) == 0,
                              "example %d, layer %d, keep %d of %d: logits differ", e, at, k, wide);
                free(kx);
                checked++;
            }
        }
    }
    ck_assert_int_gt(checked, 300);
    /* unranked rows cannot be narrowed */
    int32_t unranked[3] = {-1, -1, -1}, p3[3] = {0, 1, 2};
    float x3[3 * 4] = {0}, o3[3 * 4];
    ck_assert_int_eq(en_state_keep_top(x3, p3, unranked, 3, 4, 2, o3, p3), EN_EINPUT);
    ck_assert_int_eq(en_state_keep_top(x3, p3, unranked, 3, 4, 3, o3, p3), 0);
    ck_assert_int_eq(en_state_keep_top(x3, p3, unranked, 3, 4, 4, o3, p3), EN_ESCHEDULE);
    free(x), free(pos), free(rank);
    en_ctx_free(c);
    en_dataset_free(d);
    en_model_free(m);
}
END_TEST

START_TEST(dataset_flops_match) {
    char dir[1024], path[2200], data[1024];
    en_model *m = load_shared_model(models[_i], dir, sizeof dir);
    snprintf(path, sizeof path, "%s/../../fixtures/%s/flops.json", dir, models[_i]);
    en_dataset *d = NULL;
    en_diag diag;
    int rc = en_dataset_load(tc_shared_path(data, sizeof data, "data/sst2/test.tsv"), m, &d, &diag);
    ck_assert_msg(rc == 0, "%s", diag.msg);
    json_error_t err;
    json_t *j = json_load_file(path, 0, &err);
    ck_assert_msg(j != NULL, "%s: %s", path, err.text);
    ck_assert_int_eq(d->count, json_integer_value(json_object_get(j, "n_sequences")));

    json_t *base = json_object_get(j, "baseline");
    en_eval_opts o = {.metric = EN_METRIC_ATTN, .threads = 2, .batch = 16};
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
            if ((int)(si * EN_METRIC_COUNT + mt) % tc_stride())
                continue; // sanitizer builds: a share of the (schedule, metric) pairs
            en_eval_opts po = {
                .metric = (en_metric)mt, .ratios = ratios, .threads = 2, .batch = 16};
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
    if (en_ctx_new(a->m, a->d->max_n, &c)) return p;
    double ratios[EN_MAX_LAYERS] = {1, 0.6, 0.4, 0.25};
    for (int i = 0; i < a->d->count; i++)
        en_forward(c, a->d->ex[i].ids, a->d->ex[i].type_ids, a->d->ex[i].n, EN_METRIC_CONTEXT,
                   ratios, a->out + i * a->m->cfg.num_labels, NULL, NULL);
    en_ctx_free(c);
    return NULL;
}

START_TEST(concurrent_contexts_agree) {
    en_model *m = tc_load_model(tc_demo_model());
    char data[1024];
    en_dataset *full = NULL, *d = NULL;
    ck_assert_int_eq(
        en_dataset_load(tc_shared_path(data, sizeof data, "data/sst2/test.tsv"), m, &full, NULL),
        0);
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
    en_model *m = tc_load_model(tc_demo_model());
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
    ck_assert_int_eq(en_keep_count(0.5, 9, 9), 5);    // 4.5 + .5 -> 5
    ck_assert_int_eq(en_keep_count(0.25, 2, 2), 1);   // 0.5 + .5 -> 1
    ck_assert_int_eq(en_keep_count(0.01, 10, 10), 1); // never below 1
    ck_assert_int_eq(en_keep_count(0.9, 10, 7), 7);   // never above the rows coming in
    ck_assert_int_eq(en_keep_count(0.7, 10, 10), 7);
}
END_TEST

Suite *forward_suite(void) {
    Suite *s = suite_create("forward");
    TCase *tc = tcase_create("fixtures");
    tcase_set_timeout(tc, 900);
    /* every model with fixtures (the flops.json set is the same) */
    int n = shared_models("logits.jsonl", &models);
    tcase_add_loop_test(tc, fixture_logits_match, 0, n);
    tcase_add_test(tc, fixture_logits_match_on_every_kernel_path);
    tcase_add_test(tc, profile_accounts_for_the_pass);
    tcase_add_loop_test(tc, ragged_batch_equals_one_at_a_time, 0, n);
    tcase_add_loop_test(tc, cls_only_last_layer_equals_full, 0, n);
    tcase_add_loop_test(tc, keep_top_equals_running_the_smaller_count, 0, n);
    tcase_add_loop_test(tc, dataset_flops_match, 0, shared_models("flops.json", &models));
    tcase_add_test(tc, concurrent_contexts_agree);
    tcase_add_test(tc, bad_inputs_are_refused);
    tcase_add_test(tc, keep_count_follows_spec);
    suite_add_tcase(s, tc);
    return s;
}
