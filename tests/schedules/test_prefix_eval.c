#include <stdlib.h>
#include <string.h>

#include "schedules/sc_prefix_eval.h"
#include "test_schedules.h"

static const char *k_sched[] = {
    "attn:1,1,1,1",          "attn:1,0.7,0.5,0.3",    "attn:1,0.7,0.5,0.05",
    "attn:1,0.7,0.4,0.3",    "cls:1,0.7,0.5,0.3",     "context:0.5,0.5,0.5,0.5",
    "power:0.9,0.6,0.6,0.2", "attn:0.95,0.7,0.5,0.3",
    "attn:1,0.7,0.5,0.3", // a repeat: its own output, the same values
    "cls:1,1,0.35,0.35",     "context:1,1,0.35,0.35",
};
#define N_SCHED ((int)(sizeof k_sched / sizeof k_sched[0]))
#define N_EX 36

START_TEST(same_as_plain_forward) {
    const en_model *m = demo_model();
    en_dataset *d = demo_slice(0, N_EX, 7);
    int L = m->cfg.layers, C = m->cfg.num_labels;
    sc_schedule s[N_SCHED];
    for (int i = 0; i < N_SCHED; i++)
        ck_assert_int_eq(sc_schedule_parse(k_sched[i], L, &s[i], NULL), 0);
    int *pred = malloc(sizeof(int) * N_SCHED * N_EX);
    float *logits = malloc(sizeof(float) * N_SCHED * N_EX * C);
    en_ctx *ctx;
    ck_assert_int_eq(en_ctx_new(m, d->max_n, &ctx), 0);
    for (int threads = 1; threads <= 2; threads++) {
        memset(pred, 0xff, sizeof(int) * N_SCHED * N_EX);
        sc_prefix_job job = {.m = m,
                             .d = d,
                             .sched = s,
                             .count = N_SCHED,
                             .threads = threads,
                             .pred = pred,
                             .logits = logits};
        sc_prefix_stats st = {0};
        en_diag diag = {{0}};
        ck_assert_msg(sc_prefix_eval(&job, &st, &diag) == 0, "%s", diag.msg);
        for (int k = 0; k < N_SCHED; k++) {
            for (int e = 0; e < N_EX; e++) {
                const en_example *ex = &d->ex[e];
                float ref[8];
                ck_assert_int_eq(en_forward(ctx, ex->ids, ex->type_ids, ex->n, s[k].metric,
                                            s[k].ratios, ref, NULL, NULL),
                                 0);
                int best = ref[1] > ref[0];
                ck_assert_msg(pred[k * N_EX + e] == best, "%s, example %d: %d vs %d", k_sched[k], e,
                              pred[k * N_EX + e], best);
                for (int c = 0; c < C; c++)
                    ck_assert_msg(logits[(k * N_EX + e) * C + c] == ref[c],
                                  "%s, example %d, logit %d: %.9g vs %.9g", k_sched[k], e, c,
                                  logits[(k * N_EX + e) * C + c], ref[c]);
            }
        }
        long plain = (long)N_SCHED * N_EX * L;
        ck_assert_int_eq(st.layer_evals + st.layer_evals_saved, plain);
        // Shared prefixes (and the repeat) must save a good share of the work.
        ck_assert_msg(st.layer_evals_saved > plain / 4, "saved %ld of %ld", st.layer_evals_saved,
                      plain);
        // Schedules that first differ at a layer's keep count share one (wide) run of it.
        ck_assert_int_gt(st.layer_evals_sibling, 0);
        ck_assert_int_le(st.layer_evals_sibling, st.layer_evals_saved);
    }
    en_ctx_free(ctx);
    free(pred);
    free(logits);
    en_dataset_free_view(d);
}
END_TEST

/* With a state cache, across calls: still exactly en_forward; later calls resume from states
 * earlier ones left; the counters do not depend on the thread count; the budget holds. */
START_TEST(cache_across_calls) {
    const en_model *m = demo_model();
    en_dataset *d = demo_slice(0, N_EX, 5);
    int L = m->cfg.layers, C = m->cfg.num_labels;
    sc_schedule s[N_SCHED];
    for (int i = 0; i < N_SCHED; i++)
        ck_assert_int_eq(sc_schedule_parse(k_sched[i], L, &s[i], NULL), 0);
    int *pred = malloc(sizeof(int) * N_SCHED * N_EX);
    float *logits = malloc(sizeof(float) * N_SCHED * N_EX * C);
    en_ctx *ctx;
    ck_assert_int_eq(en_ctx_new(m, d->max_n, &ctx), 0);
    // Two "generations": the first half of the schedules, then the second half, twice over
    // (the repeat must come entirely from the cache). Examples 1..N_EX-1 only are cached.
    int idx[N_EX - 1];
    for (int i = 0; i < N_EX - 1; i++)
        idx[i] = i + 1;
    size_t budgets[2] = {(size_t)4 << 20, (size_t)24 << 10};
    long runs[2][2] = {{0}};
    for (int b = 0; b < 2; b++) {
        for (int threads = 1; threads <= 2; threads++) {
            sc_prefix_cache *cache;
            ck_assert_int_eq(sc_prefix_cache_new(m, d, idx, N_EX - 1, budgets[b], &cache), 0);
            int parts[4][2] = {
                {0, N_SCHED / 2}, {N_SCHED / 2, N_SCHED}, {N_SCHED / 2, N_SCHED}, {0, N_SCHED}};
            sc_prefix_stats total = {0};
            for (int p = 0; p < 4; p++) {
                int count = parts[p][1] - parts[p][0];
                // Before the last call: keep what lies on the first schedules' paths.
                if (p == 3) ck_assert_int_eq(sc_prefix_cache_keep(cache, s, 3), 0);
                sc_prefix_job job = {.m = m,
                                     .d = d,
                                     .sched = &s[parts[p][0]],
                                     .count = count,
                                     .threads = threads,
                                     .cache = cache,
                                     .pred = pred,
                                     .logits = logits};
                sc_prefix_stats st = {0};
                en_diag diag = {{0}};
                ck_assert_msg(sc_prefix_eval(&job, &st, &diag) == 0, "%s", diag.msg);
                ck_assert_int_eq(st.layer_evals + st.layer_evals_saved, (long)count * N_EX * L);
                ck_assert(st.layer_evals_cached <= st.layer_evals_saved);
                if (p == 2 && b == 0) { // the same call again: only example 0 runs
                    sc_prefix_job one = job;
                    int zero = 0;
                    one.index = &zero;
                    one.n_index = 1;
                    one.cache = NULL;
                    int pred0[N_SCHED];
                    one.pred = pred0;
                    one.logits = NULL;
                    sc_prefix_stats st0 = {0};
                    ck_assert_int_eq(sc_prefix_eval(&one, &st0, NULL), 0);
                    ck_assert_int_eq(st.layer_evals, st0.layer_evals);
                }
                // With room, later calls resume from what earlier ones left (with 24 KB, sibling
                // layers may serve before the few cached states do).
                if (p == 1 && b == 0) ck_assert_int_gt(st.layer_evals_cached, 0);
                total.layer_evals += st.layer_evals;
                total.layer_evals_cached += st.layer_evals_cached;
                ck_assert(sc_prefix_cache_bytes(cache) <= budgets[b]);
                for (int k = 0; k < count; k++) {
                    for (int e = 0; e < N_EX; e++) {
                        const sc_schedule *sk = &s[parts[p][0] + k];
                        const en_example *ex = &d->ex[e];
                        float ref[8];
                        ck_assert_int_eq(en_forward(ctx, ex->ids, ex->type_ids, ex->n, sk->metric,
                                                    sk->ratios, ref, NULL, NULL),
                                         0);
                        for (int c = 0; c < C; c++)
                            ck_assert_msg(logits[(k * N_EX + e) * C + c] == ref[c],
                                          "call %d, schedule %d, example %d: %.9g vs %.9g", p, k, e,
                                          logits[(k * N_EX + e) * C + c], ref[c]);
                        ck_assert_int_eq(pred[k * N_EX + e], ref[1] > ref[0]);
                    }
                }
            }
            if (threads == 1) {
                runs[b][0] = total.layer_evals;
                runs[b][1] = total.layer_evals_cached;
            } else {
                ck_assert_int_eq(total.layer_evals, runs[b][0]);
                ck_assert_int_eq(total.layer_evals_cached, runs[b][1]);
            }
            sc_prefix_cache_free(cache);
        }
    }
    // A small budget keeps less, so it saves less.
    ck_assert_int_lt(runs[1][1], runs[0][1]);
    en_ctx_free(ctx);
    free(pred);
    free(logits);
    en_dataset_free_view(d);
}
END_TEST

/* A cached run of a layer serves a later schedule that keeps fewer of its rows at that layer
 * with the same metric (the rows of rank below its count), and only such a schedule. Expected
 * counts from the keep counts alone: each example runs on its own, so its counters are its. */
START_TEST(cache_narrows_a_wider_run) {
    const en_model *m = demo_model();
    en_dataset *d = demo_slice(0, N_EX, 5);
    int L = m->cfg.layers, C = m->cfg.num_labels;
    const char *text[3] = {"attn:1,0.7,0.5,0.3", "attn:1,0.6,0.5,0.3", "cls:1,0.6,0.5,0.3"};
    sc_schedule s[3];
    for (int i = 0; i < 3; i++)
        ck_assert_int_eq(sc_schedule_parse(text[i], L, &s[i], NULL), 0);
    sc_prefix_cache *cache;
    ck_assert_int_eq(sc_prefix_cache_new(m, d, NULL, 0, (size_t)8 << 20, &cache), 0);
    en_ctx *ctx;
    ck_assert_int_eq(en_ctx_new(m, d->max_n, &ctx), 0);
    int narrowed = 0;
    for (int e = 0; e < N_EX; e++) {
        const en_example *ex = &d->ex[e];
        int n0 = ex->n, wide = en_keep_count(0.7, n0, n0), narrow = en_keep_count(0.6, n0, n0);
        // Layer 0 keeps every row (any metric); then A's layer-1 run serves B when B keeps fewer
        // rows, and the whole path when it keeps as many; C ranks layer 1 by another metric.
        long want[3] = {0, narrow < wide ? 2 : L, narrow < n0 ? 1 : -1};
        narrowed += narrow < wide;
        for (int k = 0; k < 3; k++) {
            int pred;
            float logits[8], ref[8];
            sc_prefix_job job = {.m = m,
                                 .d = d,
                                 .index = &e,
                                 .n_index = 1,
                                 .sched = &s[k],
                                 .count = 1,
                                 .threads = 1,
                                 .cache = cache,
                                 .pred = &pred,
                                 .logits = logits};
            sc_prefix_stats st = {0};
            en_diag diag = {{0}};
            ck_assert_msg(sc_prefix_eval(&job, &st, &diag) == 0, "%s", diag.msg);
            if (want[k] >= 0)
                ck_assert_msg(st.layer_evals_cached == want[k],
                              "%s, example %d (%d tokens): %ld "
                              "layers from the cache, expected %ld",
                              text[k], e, n0, st.layer_evals_cached, want[k]);
            ck_assert_int_eq(en_forward(ctx, ex->ids, ex->type_ids, n0, s[k].metric, s[k].ratios,
                                        ref, NULL, NULL),
                             0);
            for (int c = 0; c < C; c++)
                ck_assert_msg(logits[c] == ref[c], "%s, example %d, logit %d: %.9g vs %.9g",
                              text[k], e, c, logits[c], ref[c]);
        }
    }
    ck_assert_int_gt(narrowed, N_EX / 2); // the case under test is the common one
    en_ctx_free(ctx);
    sc_prefix_cache_free(cache);
    en_dataset_free_view(d);
}
END_TEST

START_TEST(subset_cancel_and_bad_schedule) {
    const en_model *m = demo_model();
    const en_dataset *d = demo_data();
    sc_schedule s[2];
    ck_assert_int_eq(sc_schedule_parse("attn:1,1,1,1", 4, &s[0], NULL), 0);
    ck_assert_int_eq(sc_schedule_parse("attn:1,0.5,0.5,0.5", 4, &s[1], NULL), 0);
    int idx[3] = {5, 100, 7}, pred[6], full[6];
    sc_prefix_job job = {.m = m,
                         .d = d,
                         .index = idx,
                         .n_index = 3,
                         .sched = s,
                         .count = 2,
                         .threads = 2,
                         .pred = pred};
    ck_assert_int_eq(sc_prefix_eval(&job, NULL, NULL), 0);
    // The same examples one at a time give the same answers in the same slots.
    for (int i = 0; i < 3; i++) {
        sc_prefix_job one = job;
        one.index = &idx[i];
        one.n_index = 1;
        one.pred = &full[2 * i];
        ck_assert_int_eq(sc_prefix_eval(&one, NULL, NULL), 0);
        ck_assert_int_eq(pred[i], full[2 * i]);
        ck_assert_int_eq(pred[3 + i], full[2 * i + 1]);
    }
    atomic_int cancel;
    atomic_init(&cancel, 1);
    job.cancel = &cancel;
    ck_assert_int_eq(sc_prefix_eval(&job, NULL, NULL), EN_ECANCELED);
    job.cancel = NULL;
    s[1].layers = 3;
    en_diag diag = {{0}};
    ck_assert_int_eq(sc_prefix_eval(&job, NULL, &diag), EN_ESCHEDULE);
    ck_assert_msg(strstr(diag.msg, "3 ratios, the model has 4 layers"), "%s", diag.msg);
}
END_TEST

Suite *prefix_eval_suite(void) {
    Suite *s = suite_create("prefix_eval");
    TCase *tc = tcase_create("demo");
    tcase_set_timeout(tc, 300);
    tcase_add_test(tc, same_as_plain_forward);
    tcase_add_test(tc, cache_across_calls);
    tcase_add_test(tc, cache_narrows_a_wider_run);
    tcase_add_test(tc, subset_cancel_and_bad_schedule);
    suite_add_tcase(s, tc);
    return s;
}
