#include <stdlib.h>
#include <string.h>

#include "schedules/sc_error.h"
#include "schedules/sc_search.h"
#include "schedules/sc_stats.h"
#include "schedules/sc_store.h"
#include "schedules/sc_width.h"
#include "test_schedules.h"

/* Search part and held-out part: interleaved slices of the SST-2 dev set. */
static en_dataset *g_search, *g_hold;

static void setup(void) {
    g_search = demo_slice(0, 120, 3);
    g_hold = demo_slice(1, 120, 3);
}

static void teardown(void) {
    en_dataset_free_view(g_search);
    en_dataset_free_view(g_hold);
}

static sc_search_opts small_opts(uint64_t seed) {
    sc_search_opts o;
    sc_search_opts_default(&o);
    o.seed = seed;
    o.threads = 2;
    o.generations = 2;
    o.children = 8;
    return o;
}

static void run_ok(sc_search_opts *o, sc_frontier *f, sc_search_stats *st) {
    en_diag diag = {{0}};
    int rc = sc_search_run(demo_model(), g_search, g_hold, o, f, st, &diag);
    ck_assert_msg(rc == 0, "search: %s (%s)", sc_strerror(rc), diag.msg);
    ck_assert_int_gt(f->count, 0);
}

/* Held-out accuracy and FLOPs of a record, measured independently by en_eval. */
static void check_record(const sc_record *r) {
    en_eval_opts eo = {.metric = r->schedule.metric, .ratios = r->schedule.ratios, .threads = 1};
    en_eval_result res = {0};
    ck_assert_int_eq(en_eval(demo_model(), g_hold, &eo, &res, NULL), 0);
    ck_assert_double_eq_tol(r->accuracy, res.accuracy, 1e-12);
    ck_assert_double_eq_tol(r->flops_ratio, res.flops_ratio, 1e-9);
    ck_assert_double_eq_tol(r->drop, r->baseline_accuracy - r->accuracy, 1e-12);
    ck_assert(r->drop_upper >= r->drop);
}

START_TEST(deterministic_and_honest) {
    sc_search_opts o = small_opts(7);
    sc_frontier a, b;
    sc_search_stats sa, sb;
    run_ok(&o, &a, &sa);
    run_ok(&o, &b, &sb);
    ck_assert_int_eq(a.count, b.count);
    ck_assert_int_eq(sa.candidates, sb.candidates);
    ck_assert_int_eq(sa.layer_evals, sb.layer_evals);
    for (int i = 0; i < a.count; i++) {
        ck_assert_uint_eq(sc_schedule_hash(&a.rec[i].schedule),
                          sc_schedule_hash(&b.rec[i].schedule));
        ck_assert_double_eq(a.rec[i].accuracy, b.rec[i].accuracy);
        if (i > 0) ck_assert(a.rec[i - 1].flops_ratio <= a.rec[i].flops_ratio);
    }
    ck_assert_int_eq(sa.search_examples, 120);
    ck_assert_int_eq(sa.holdout_examples, 120);
    ck_assert(sa.layer_evals_saved > 0);
    check_record(&a.rec[0]);
    check_record(&a.rec[a.count / 2]);
    check_record(&a.rec[a.count - 1]);
    sc_frontier_free(&a);
    sc_frontier_free(&b);
}
END_TEST

/* A schedule measured on the search part by en_eval: its FLOPs ratio and the search's
 * objective there, the unpruned accuracy minus the paired drop bound (sc_drop_upper, checked
 * against hand-computed values in test_stats.c). */
typedef struct on_search {
    double flops, score;
} on_search;

static on_search measure_on_search(const sc_schedule *s, const uint8_t *base_ok) {
    int n = g_search->count;
    uint8_t *ok = malloc((size_t)n);
    en_eval_opts eo = {.metric = s->metric, .ratios = s->ratios, .threads = 1};
    en_eval_result res = {.outcome = ok};
    ck_assert_int_eq(en_eval(demo_model(), g_search, &eo, &res, NULL), 0);
    int base = 0, lost = 0, gained = 0;
    for (int i = 0; i < n; i++) {
        base += base_ok[i];
        lost += base_ok[i] && !ok[i];
        gained += !base_ok[i] && ok[i];
    }
    free(ok);
    return (on_search){res.flops_ratio, (double)base / n - sc_drop_upper(n, lost, gained)};
}

/* The best score on the search part among `m[0..n)` costing at most `flops` (-1e9: none). */
static double best_within(const on_search *m, int n, double flops) {
    double best = -1e9;
    for (int i = 0; i < n; i++)
        if (m[i].flops <= flops && m[i].score > best) best = m[i].score;
    return best;
}

/* What the search adds to its seeds, on the search part (where it ranks candidates): at each
 * family's cost, the best record of `f` that is not a family and costs no more scores at least
 * as well as the best family costing no more, and strictly better at one of them at least.
 * Else the evolutionary steps found nothing the families had not. */
static void assert_search_beats_families(const sc_frontier *f, const sc_frontier *fam) {
    int n = g_search->count, ns = 0;
    uint8_t *base_ok = malloc((size_t)n);
    en_eval_opts eo = {.threads = 1};
    en_eval_result res = {.outcome = base_ok};
    ck_assert_int_eq(en_eval(demo_model(), g_search, &eo, &res, NULL), 0);
    on_search *fm = malloc(sizeof *fm * (size_t)fam->count);
    on_search *sm = malloc(sizeof *sm * (size_t)f->count);
    for (int j = 0; j < fam->count; j++)
        fm[j] = measure_on_search(&fam->rec[j].schedule, base_ok);
    for (int i = 0; i < f->count; i++) {
        uint64_t h = sc_schedule_hash(&f->rec[i].schedule);
        int is_family = 0;
        for (int j = 0; j < fam->count; j++)
            is_family |= sc_schedule_hash(&fam->rec[j].schedule) == h;
        if (!is_family) sm[ns++] = measure_on_search(&f->rec[i].schedule, base_ok);
    }
    ck_assert_int_gt(ns, 0);
    int strictly = 0;
    for (int j = 0; j < fam->count; j++) {
        double s = best_within(sm, ns, fm[j].flops), b = best_within(fm, fam->count, fm[j].flops);
        ck_assert_msg(s >= b, "at the FLOPs of family %d (%.4f) the search scores %.4f < %.4f", j,
                      fm[j].flops, s, b);
        strictly += s > b;
    }
    ck_assert_msg(strictly > 0, "the search scores no better than the families at any budget");
    free(sm);
    free(fm);
    free(base_ok);
}

START_TEST(flops_budget_and_families) {
    sc_search_opts o = small_opts(3);
    o.budget.max_flops = 0.4;
    sc_frontier f, fam;
    o.families = &fam;
    sc_search_stats st;
    run_ok(&o, &f, &st);
    for (int i = 0; i < f.count; i++)
        ck_assert_msg(f.rec[i].flops_ratio <= 0.4, "record %d uses %.3f", i, f.rec[i].flops_ratio);
    check_record(&f.rec[f.count - 1]);
    // On held-out data, at every family's FLOPs the frontier is at least as accurate.
    ck_assert_int_gt(fam.count, 0);
    for (int i = 0; i < fam.count; i++) {
        check_record(&fam.rec[i]);
        sc_query q = {.max_drop = -1, .max_flops = fam.rec[i].flops_ratio, .max_latency_ms = -1};
        const sc_record *best;
        ck_assert_int_eq(sc_frontier_pick(&f, &q, &best, NULL, NULL), 0);
        ck_assert_msg(best->accuracy >= fam.rec[i].accuracy, "family %d: %.4f > frontier %.4f", i,
                      fam.rec[i].accuracy, best->accuracy);
    }
    // What the search adds over its seeds, measured here by en_eval on the search part.
    assert_search_beats_families(&f, &fam);
    sc_frontier_free(&f);
    sc_frontier_free(&fam);
}
END_TEST

/* A drop bound: the same frontier and counters for 1 and 2 threads, and without the state cache
 * the same frontier with the cached layer-evaluations run instead. */
START_TEST(drop_bound_threads_and_cache) {
    sc_frontier f[3];
    sc_search_stats st[3];
    for (int k = 0; k < 3; k++) {
        sc_search_opts o = small_opts(5);
        o.generations = 3;
        o.budget.max_drop = 0.01;
        o.threads = k == 1 ? 1 : 2;
        o.cache_mb = k == 2 ? -1 : 0;
        run_ok(&o, &f[k], &st[k]);
    }
    for (int k = 1; k < 3; k++) {
        ck_assert_int_eq(f[k].count, f[0].count);
        ck_assert_int_eq(st[k].candidates, st[0].candidates);
        for (int i = 0; i < f[0].count; i++) {
            ck_assert_uint_eq(sc_schedule_hash(&f[k].rec[i].schedule),
                              sc_schedule_hash(&f[0].rec[i].schedule));
            ck_assert_double_eq(f[k].rec[i].accuracy, f[0].rec[i].accuracy);
            ck_assert_double_eq(f[k].rec[i].drop_upper, f[0].rec[i].drop_upper);
        }
    }
    ck_assert_int_eq(st[1].layer_evals, st[0].layer_evals);
    ck_assert_int_eq(st[1].layer_evals_cached, st[0].layer_evals_cached);
    ck_assert_int_gt(st[0].layer_evals_cached, 0);
    ck_assert_int_eq(st[2].layer_evals_cached, 0);
    ck_assert_int_eq(st[2].cache_bytes, 0);
    /* without the cache, more layers run, but no more than the cache said it saved (a
     * schedule resumed from the cache leaves its siblings fewer wide layers to share) */
    ck_assert_int_gt(st[2].layer_evals, st[0].layer_evals);
    ck_assert_int_le(st[2].layer_evals, st[0].layer_evals + st[0].layer_evals_cached);
    ck_assert_int_gt(st[0].layer_evals_sibling, 0);
    for (int k = 0; k < 3; k++)
        sc_frontier_free(&f[k]);
}
END_TEST

/* An evaluator hook that splits the examples into 3 uneven chunks and runs them in reverse
 * order, without the cache, as a fleet of hosts would: the same frontier as the plain search. */
typedef struct split_eval {
    int calls;
} split_eval;

static int split_evaluate(void *ud, const sc_prefix_job *job, sc_prefix_stats *st, en_diag *diag) {
    split_eval *se = ud;
    se->calls++;
    int n = job->n_index, cut[4] = {0, n / 5, n / 5 + n / 2, n};
    int *part = malloc(sizeof *part * (size_t)(n ? n : 1) * (size_t)job->count);
    ck_assert_ptr_nonnull(part);
    for (int k = 2; k >= 0; k--) {
        int len = cut[k + 1] - cut[k];
        if (len == 0) continue;
        sc_prefix_job sub = *job;
        sub.index = job->index + cut[k];
        sub.n_index = len;
        sub.cache = NULL;
        sub.pred = part;
        int rc = sc_prefix_eval(&sub, st, diag);
        if (rc) {
            free(part);
            return rc;
        }
        for (int s = 0; s < job->count; s++)
            memcpy(job->pred + (size_t)s * n + cut[k], part + (size_t)s * len,
                   sizeof *part * (size_t)len);
    }
    free(part);
    return 0;
}

START_TEST(evaluator_hook_same_frontier) {
    sc_frontier f[2];
    sc_search_stats st[2];
    split_eval se = {0};
    for (int k = 0; k < 2; k++) {
        sc_search_opts o = small_opts(9);
        o.budget.max_drop = 0.01;
        if (k == 1) o.evaluate = split_evaluate, o.evaluate_ud = &se;
        run_ok(&o, &f[k], &st[k]);
    }
    ck_assert_int_gt(se.calls, 1); // the seeds' batch and each generation's
    ck_assert_int_eq(f[1].count, f[0].count);
    ck_assert_int_eq(st[1].candidates, st[0].candidates);
    for (int i = 0; i < f[0].count; i++) {
        const sc_record *a = &f[0].rec[i], *b = &f[1].rec[i];
        ck_assert_uint_eq(sc_schedule_hash(&b->schedule), sc_schedule_hash(&a->schedule));
        ck_assert_double_eq(b->accuracy, a->accuracy);
        ck_assert_double_eq(b->drop, a->drop);
        ck_assert_double_eq(b->drop_upper, a->drop_upper);
        ck_assert_double_eq(b->search_accuracy, a->search_accuracy);
        ck_assert_double_eq(b->flops_ratio, a->flops_ratio);
    }
    for (int k = 0; k < 2; k++)
        sc_frontier_free(&f[k]);
}
END_TEST

/* The objective follows the latency model: under a synthetic model in which a layer's cost is
 * mostly fixed (weights streamed whatever the rows), the answer to "under 5%" is the fastest
 * qualifying record by predicted latency, and every record's latency is the model's prediction
 * on the held-out lengths. */
START_TEST(latency_objective) {
    sc_latency_model lm;
    memset(&lm, 0, sizeof lm);
    lm.layer[0] = 0.2;   // per layer: fixed
    lm.layer[2] = 0.001; // per kept row
    lm.fixed_ms = 0.05;
    for (int k = 0; k < 2; k++) {
        sc_search_opts o = small_opts(9);
        o.lat = &lm;
        o.budget.max_drop = 0.05; // 120 held-out examples: a 1% bound is out of reach
        o.budget.minimize = k == 0 ? SC_MIN_LATENCY : SC_MIN_FLOPS;
        sc_frontier f;
        sc_search_stats st;
        run_ok(&o, &f, &st);
        sc_query q = o.budget;
        const sc_record *best;
        ck_assert_int_eq(sc_frontier_pick(&f, &q, &best, NULL, NULL), 0);
        int *len = malloc(sizeof(int) * g_hold->count);
        for (int i = 0; i < g_hold->count; i++)
            len[i] = g_hold->ex[i].n;
        for (int i = 0; i < f.count; i++) {
            if (f.rec[i].drop_upper < 0.05 && k == 0)
                ck_assert_double_ge(f.rec[i].latency_ms, best->latency_ms);
            ck_assert_double_eq_tol(
                f.rec[i].latency_ms,
                sc_latency_predict(&lm, &demo_model()->cfg, &f.rec[i].schedule, len, g_hold->count),
                1e-9);
        }
        free(len);
        sc_frontier_free(&f);
    }
    sc_search_opts d;
    sc_search_opts_default(&d);
    ck_assert_int_eq(d.budget.minimize, SC_MIN_LATENCY); // the default objective
}
END_TEST

/* The search explores by FLOPs (INT8 layers weighed by their predicted time, rounded), so two
 * calibrations of one host that differ by noise explore the same candidates and measure the
 * same frontier; only the records' predicted latency, and so maybe the pick, follows each model.
 * The second model is the first with its terms moved 10-20% either way, INT8 at about half of
 * F32 in both. */
START_TEST(noise_does_not_steer_the_search) {
    sc_latency_model lm[2];
    memset(lm, 0, sizeof lm);
    const double noise[SC_LAT_TERMS] = {1.1, 1, 0.85, 1, 1.2, 1, 1, 0.9, 1.15, 1};
    for (int k = 0; k < 2; k++) {
        lm[k].layer[0] = 0.05, lm[k].layer[2] = 0.01, lm[k].layer[4] = 0.01;
        lm[k].layer[7] = 0.0002, lm[k].layer[9] = 0.01;
        lm[k].fixed_ms = 0.05;
        for (int t = 0; t < SC_LAT_TERMS; t++) {
            if (k == 1) lm[k].layer[t] *= noise[t];
            lm[k].last[t] = lm[k].layer[t];
            lm[k].layer_int8[t] = lm[k].last_int8[t] = 0.5 * lm[k].layer[t];
        }
    }
    for (int int8 = 0; int8 < 2; int8++) {
        sc_frontier f[2];
        sc_search_stats st[2];
        for (int k = 0; k < 2; k++) {
            sc_search_opts o = small_opts(9);
            o.lat = &lm[k];
            o.int8 = int8;
            o.budget.max_drop = 0.05;
            run_ok(&o, &f[k], &st[k]);
        }
        ck_assert_int_eq(st[1].candidates, st[0].candidates);
        ck_assert_int_eq(st[1].layer_evals, st[0].layer_evals);
        ck_assert_int_eq(st[1].dropped_early, st[0].dropped_early);
        // The records (measured on the held-out part) are the same schedules, each kept unless
        // the other model's latency lets another record dominate it.
        int with_int8 = 0, same = 0;
        for (int i = 0; i < f[0].count; i++) {
            for (int j = 0; j < f[1].count; j++)
                if (sc_schedule_hash(&f[1].rec[j].schedule) ==
                    sc_schedule_hash(&f[0].rec[i].schedule)) {
                    ck_assert_double_eq(f[1].rec[j].accuracy, f[0].rec[i].accuracy);
                    same++;
                }
            with_int8 += sc_schedule_has_precision(&f[0].rec[i].schedule);
        }
        ck_assert_int_ge(2 * same, f[0].count);
        // With --int8 at half the time, INT8 layers reach the frontier; without, none.
        if (int8)
            ck_assert_int_gt(with_int8, 0);
        else
            ck_assert_int_eq(with_int8, 0);
        for (int k = 0; k < 2; k++)
            sc_frontier_free(&f[k]);
    }
}
END_TEST

static void cancel_on_progress(void *ud, const sc_progress *p) {
    ck_assert(p->done <= p->total);
    atomic_store((atomic_int *)ud, 1);
}

/* With width, records narrow layers, and each reproduces: the model narrowed with the
 * frontier's own profile gives the record's held-out accuracy and FLOPs under en_eval; the
 * frontier (with its profile) survives its JSON form; and at equal FLOPs the width search
 * finds at least as good a search-part score as the token-only search of the same budget. */
START_TEST(width_records_reproduce) {
    sc_search_opts o = small_opts(3);
    o.width = 1;
    o.budget.max_flops = 0.5;
    sc_frontier f;
    sc_search_stats st;
    run_ok(&o, &f, &st);
    ck_assert_ptr_nonnull(f.width);
    int narrowed = 0;
    for (int i = 0; i < f.count; i++) {
        const sc_record *r = &f.rec[i];
        ck_assert(r->flops_ratio <= 0.5 + 1e-12);
        en_model *nm = NULL;
        en_diag d;
        ck_assert_int_eq(sc_width_narrow(demo_model(), f.width, &r->schedule, &nm, &d), 0);
        narrowed += nm != NULL;
        en_eval_opts eo = {
            .metric = r->schedule.metric, .ratios = r->schedule.ratios, .threads = 1};
        en_eval_result res = {0};
        ck_assert_int_eq(en_eval(nm ? nm : demo_model(), g_hold, &eo, &res, NULL), 0);
        ck_assert_double_eq_tol(r->accuracy, res.accuracy, 1e-12);
        ck_assert_double_eq_tol(r->flops_ratio, res.flops_ratio, 1e-9);
        ck_assert(r->tokens_flops_ratio >= r->flops_ratio - 1e-12);
        ck_assert_int_eq(r->tokens_flops_ratio > r->flops_ratio + 1e-12, nm != NULL);
        en_model_free(nm);
    }
    ck_assert_int_gt(narrowed, 0);
    /* the JSON form keeps the profile, and a damaged profile is refused by name */
    json_t *j = sc_frontier_to_json(&f);
    sc_frontier g;
    en_diag d;
    ck_assert_int_eq(sc_frontier_from_json(j, &g, &d), 0);
    ck_assert_ptr_nonnull(g.width);
    ck_assert_int_eq(g.count, f.count);
    size_t n = (size_t)f.width->layers * f.width->ffn;
    ck_assert_mem_eq(g.width->neuron_order, f.width->neuron_order, n * sizeof(int32_t));
    json_array_set_new(json_object_get(json_object_get(j, "width"), "neuron_order"), 1,
                       json_integer(f.width->neuron_order[0]));
    sc_frontier_free(&g);
    ck_assert_int_eq(sc_frontier_from_json(j, &g, &d), SC_ECORRUPT);
    ck_assert_ptr_nonnull(strstr(d.msg, "neuron_order"));
    json_decref(j);
    sc_frontier_free(&f);
}
END_TEST

/* The progress reports the best candidate that meets the budget asked, never one outside it:
 * under a FLOPs budget every reported best is within it; under a drop bound nothing meets,
 * "nothing yet" is reported (found 0), not the most accurate seen. */
typedef struct progress_log {
    int reports, found;
    double worst_flops;
} progress_log;

static void log_progress(void *ud, const sc_progress *p) {
    progress_log *l = ud;
    l->reports++;
    l->found += p->found;
    if (p->found && p->best_flops > l->worst_flops) l->worst_flops = p->best_flops;
    if (!p->found) ck_assert(p->best_accuracy == 0 && p->best_flops == 0);
}

START_TEST(progress_within_budget) {
    sc_search_opts o = small_opts(5);
    o.budget.max_flops = 0.4;
    progress_log l = {0};
    o.progress = log_progress;
    o.progress_ud = &l;
    sc_frontier f;
    sc_search_stats st;
    run_ok(&o, &f, &st);
    ck_assert_int_gt(l.found, 0);
    ck_assert_msg(l.worst_flops <= 0.4 + 1e-12, "reported %g FLOPs under a 0.4 budget",
                  l.worst_flops);
    sc_frontier_free(&f);
    o = small_opts(5);
    o.budget.max_drop = 0; // drop_upper < 0: no candidate can meet it
    progress_log none = {0};
    o.progress = log_progress;
    o.progress_ud = &none;
    en_diag diag;
    sc_search_run(demo_model(), g_search, g_hold, &o, &f, &st, &diag);
    sc_frontier_free(&f);
    ck_assert_int_gt(none.reports, 0);
    ck_assert_int_eq(none.found, 0);
}
END_TEST

START_TEST(cancellation) {
    sc_search_opts o = small_opts(1);
    atomic_int cancel;
    atomic_init(&cancel, 0);
    o.cancel = &cancel;
    o.progress = cancel_on_progress;
    o.progress_ud = &cancel;
    sc_frontier f;
    int rc = sc_search_run(demo_model(), g_search, g_hold, &o, &f, NULL, NULL);
    ck_assert_int_eq(rc, EN_ECANCELED);
    ck_assert_int_eq(f.count, 0);
    ck_assert_ptr_null(f.rec);
}
END_TEST

START_TEST(bad_input) {
    sc_frontier f;
    en_diag diag = {{0}};
    sc_search_opts o = small_opts(1);
    // One class only: the first examples with label 1.
    const en_dataset *d = demo_data();
    int idx[40], n = 0;
    for (int i = 0; i < d->count && n < 40; i++)
        if (d->ex[i].label == 1) idx[n++] = i;
    en_dataset *one;
    ck_assert_int_eq(en_dataset_view(d, idx, n, &one), 0);
    ck_assert_int_eq(sc_search_run(demo_model(), one, NULL, &o, &f, NULL, &diag), SC_EONECLASS);
    ck_assert_msg(strstr(diag.msg, "label 1"), "%s", diag.msg);
    en_dataset_free_view(one);
    en_dataset *empty;
    ck_assert_int_eq(en_dataset_view(d, idx, 0, &empty), 0);
    ck_assert_int_eq(sc_search_run(demo_model(), empty, NULL, &o, &f, NULL, &diag), EN_EDATA);
    en_dataset_free_view(empty);
    o.budget.max_drop = 0.01;
    o.budget.max_flops = 0.5;
    ck_assert_int_eq(sc_search_run(demo_model(), g_search, NULL, &o, &f, NULL, &diag), SC_EBUDGET);
    o.budget.max_drop = o.budget.max_flops = -1;
    o.budget.max_latency_ms = 1;
    ck_assert_int_eq(sc_search_run(demo_model(), g_search, NULL, &o, &f, NULL, &diag), SC_EBUDGET);
    ck_assert_msg(strstr(diag.msg, "latency model"), "%s", diag.msg);
}
END_TEST

Suite *search_suite(void) {
    Suite *s = suite_create("search");
    TCase *tc = tcase_create("demo");
    tcase_set_timeout(tc, 600);
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, deterministic_and_honest);
    tcase_add_test(tc, flops_budget_and_families);
    tcase_add_test(tc, drop_bound_threads_and_cache);
    tcase_add_test(tc, evaluator_hook_same_frontier);
    tcase_add_test(tc, latency_objective);
    tcase_add_test(tc, noise_does_not_steer_the_search);
    tcase_add_test(tc, width_records_reproduce);
    tcase_add_test(tc, progress_within_budget);
    tcase_add_test(tc, bad_input);
    suite_add_tcase(s, tc);
    // Two search threads stopped from the progress callback: also run under ThreadSanitizer
    // (tag "threads", tests/schedules/meson.build; the other searches take too long there).
    TCase *th = tcase_create("threads");
    tcase_set_tags(th, "threads");
    tcase_set_timeout(th, 600);
    tcase_add_checked_fixture(th, setup, teardown);
    tcase_add_test(th, cancellation);
    suite_add_tcase(s, th);
    return s;
}
