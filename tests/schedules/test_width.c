/* Width in schedules: the text form, the width profile (ranking and factors), and the prefix
 * evaluation of narrowed schedules against en_forward() on the same narrowed model. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "engine/en_flops.h"
#include "schedules/sc_prefix_eval.h"
#include "schedules/sc_width.h"
#include "test_schedules.h"

START_TEST(text_round_trip) {
    sc_schedule s;
    en_diag d;
    const char *canon = "context:1,0.8,0.5,0.3;heads:1,0.5,0.5,0.5;ffn:1,0.3,0.1,0";
    ck_assert_int_eq(sc_schedule_parse(canon, 4, &s, &d), 0);
    char buf[SC_SCHEDULE_TEXT_MAX];
    sc_schedule_format(&s, buf, sizeof buf);
    ck_assert_str_eq(buf, canon);
    ck_assert_int_eq(sc_schedule_heads(&s, 1, 2), 1);
    ck_assert_int_eq(sc_schedule_heads(&s, 0, 2), 2);
    ck_assert_int_eq(sc_schedule_ffn_level(&s, 1, SC_WIDTH_LEVELS), 6);
    ck_assert_int_eq(sc_schedule_ffn_level(&s, 3, SC_WIDTH_LEVELS), 0);
    ck_assert(sc_schedule_has_width(&s));
    /* the parts in the other order, spaces: the same schedule */
    sc_schedule t;
    ck_assert_int_eq(
        sc_schedule_parse("context:1,0.8,0.5,0.3; ffn:1,0.3,0.1,0 ;heads:1,0.5,0.5,0.5", 4, &t, &d),
        0);
    ck_assert_uint_eq(sc_schedule_hash(&s), sc_schedule_hash(&t));
    /* whole width is the plain form */
    ck_assert_int_eq(sc_schedule_parse("attn:1,1;heads:1,1;ffn:1,1", 2, &t, &d), 0);
    sc_schedule_format(&t, buf, sizeof buf);
    ck_assert_str_eq(buf, "attn:1,1");
    ck_assert(!sc_schedule_has_width(&t));
    /* errors name what is wrong */
    ck_assert_int_eq(sc_schedule_parse("attn:1,1;heads:1", 2, &t, &d), EN_ESCHEDULE);
    ck_assert_ptr_nonnull(strstr(d.msg, "1 entries for 2 layers"));
    ck_assert_int_eq(sc_schedule_parse("attn:1,1;heads:0,1", 2, &t, &d), EN_ESCHEDULE);
    ck_assert_ptr_nonnull(strstr(d.msg, "outside (0, 1]"));
    ck_assert_int_eq(sc_schedule_parse("attn:1,1;ffn:1,1.5", 2, &t, &d), EN_ESCHEDULE);
    ck_assert_int_eq(sc_schedule_parse("attn:1,1;ffn:1,1;ffn:1,1", 2, &t, &d), EN_ESCHEDULE);
    ck_assert_int_eq(sc_schedule_parse("attn:1,1;int4", 2, &t, &d), EN_ESCHEDULE);
}
END_TEST

/* FLOPs of a narrowed schedule: the spec's formula, counted by hand for one layer. */
START_TEST(flops_by_hand) {
    const en_model *m = demo_model();
    const en_config *cfg = &m->cfg;
    sc_schedule s;
    ck_assert_int_eq(
        sc_schedule_parse("attn:1,0.5,0.5,0.5;heads:1,0.5,1,1;ffn:1,0.25,1,0", 4, &s, NULL), 0);
    double H = cfg->hidden, d = H / cfg->heads, n = 20, k = 10, I = cfg->ffn;
    double head = 2 * H * H + 2 * H * cfg->num_labels;
    double l0 = 2 * n * H * 3 * H + 2 * n * n * H + 2 * n * n * H + 2 * n * H * H + 4 * n * H * I;
    double g = 1, m1 = round(0.25 * I);
    double l1 = 2 * n * H * 3 * g * d + 2 * n * n * g * d + 2 * k * n * g * d + 2 * k * g * d * H +
                4 * k * H * m1;
    double l2 = 2 * k * H * 3 * H + 2 * k * k * H + 2 * k * k * H + 2 * k * H * H + 4 * k * H * I;
    double l3 = 2 * k * H * 3 * H + 2 * k * k * H + 2 * k * k * H + 2 * k * H * H; // no neurons
    double want = head + l0 + l1 + l2 + l3;
    ck_assert_double_eq_tol(sc_schedule_flops(cfg, &s, 20), want, 1e-6 * want);
    // Weighed: only the INT8 layers' FLOPs scale (the head stays F32).
    s.prec[1] = s.prec[3] = EN_PREC_INT8;
    ck_assert_double_eq_tol(sc_schedule_flops(cfg, &s, 20), want, 1e-6 * want);
    double weighed = head + l0 + 0.4 * l1 + l2 + 0.4 * l3;
    ck_assert_double_eq_tol(sc_schedule_flops_weighted(cfg, &s, 20, 0.4), weighed, 1e-6 * want);
    ck_assert_double_eq_tol(sc_schedule_flops_weighted(cfg, &s, 20, 1), want, 1e-6 * want);
}
END_TEST

static sc_width_profile g_prof;
static en_dataset *g_data;

static void profile_setup(void) {
    g_data = demo_slice(0, 120, 3);
    en_diag d;
    ck_assert_msg(sc_width_profile_measure(demo_model(), g_data, NULL, 0, 0,
                                           SC_RESCALE_HEADS | SC_RESCALE_NEURONS, &g_prof, &d) == 0,
                  "%s", d.msg);
}

static void profile_teardown(void) {
    sc_width_profile_free(&g_prof);
    en_dataset_free_view(g_data);
}

/* Keeping everything, the least-squares factors are 1 (the full layer reconstructs itself);
 * the orders are permutations. */
START_TEST(profile_known_answers) {
    const en_config *cfg = &demo_model()->cfg;
    int L = cfg->layers, h = cfg->heads, I = cfg->ffn;
    for (int l = 0; l < L; l++) {
        for (int i = 0; i < h; i++)
            ck_assert_float_eq_tol(g_prof.head_scale[((size_t)l * h + h - 1) * h + i], 1.f, 1e-3);
        const float *f = g_prof.neuron_scale + ((size_t)l * (SC_WIDTH_LEVELS + 1) + 20) * I;
        for (int i = 0; i < I; i++)
            ck_assert_float_eq_tol(f[i], 1.f, 2e-2);
        char *seen = calloc((size_t)I, 1);
        for (int i = 0; i < I; i++)
            seen[g_prof.neuron_order[(size_t)l * I + i]]++;
        for (int i = 0; i < I; i++)
            ck_assert_int_eq(seen[i], 1);
        free(seen);
    }
}
END_TEST

/* Layers measured a few per pass (memory-bounded, for large FFNs) give the same profile as all
 * in one pass, bit for bit. */
START_TEST(profile_in_passes_is_the_same) {
    sc_width_profile one;
    sc__width_stats_mb(1); // 1 MB: the demo model's 512 x 512 doubles (2 MB) one layer a pass
    en_diag d;
    int rc = sc_width_profile_measure(demo_model(), g_data, NULL, 0, 0,
                                      SC_RESCALE_HEADS | SC_RESCALE_NEURONS, &one, &d);
    sc__width_stats_mb(0);
    ck_assert_msg(rc == 0, "%s", d.msg);
    size_t L = (size_t)one.layers, h = (size_t)one.heads, nf = (size_t)one.ffn;
    ck_assert_mem_eq(one.neuron_order, g_prof.neuron_order, L * nf * sizeof(int32_t));
    ck_assert_mem_eq(one.head_order, g_prof.head_order, L * h * sizeof(int32_t));
    ck_assert_mem_eq(one.neuron_scale, g_prof.neuron_scale,
                     L * (SC_WIDTH_LEVELS + 1) * nf * sizeof(float));
    ck_assert_mem_eq(one.head_scale, g_prof.head_scale, L * h * h * sizeof(float));
    sc_width_profile_free(&one);
}
END_TEST

/* The ranking means something: keeping the best half of the neurons changes the logits less
 * than keeping the worst half (mean over examples, every layer narrowed alike). */
START_TEST(ranking_beats_its_reverse) {
    const en_model *m = demo_model();
    const en_config *cfg = &m->cfg;
    int L = cfg->layers, I = cfg->ffn, half = I / 2;
    double err[2] = {0, 0};
    for (int pass = 0; pass < 2; pass++) {
        int32_t *ids = malloc(sizeof(int32_t) * L * half);
        en_layer_width w[EN_MAX_LAYERS];
        for (int l = 0; l < L; l++) {
            const int32_t *order = g_prof.neuron_order + (size_t)l * I;
            int32_t *k = ids + (size_t)l * half;
            char *on = calloc((size_t)I, 1);
            for (int i = 0; i < half; i++)
                on[order[pass ? I - 1 - i : i]] = 1;
            for (int i = 0, j = 0; i < I; i++)
                if (on[i]) k[j++] = i;
            free(on);
            w[l] = (en_layer_width){-1, NULL, NULL, half, k, NULL};
        }
        en_model *nm;
        ck_assert_int_eq(en_model_narrow(m, w, &nm, NULL), 0);
        en_ctx *a, *b;
        ck_assert_int_eq(en_ctx_new(m, g_data->max_n, &a), 0);
        ck_assert_int_eq(en_ctx_new(nm, g_data->max_n, &b), 0);
        for (int e = 0; e < g_data->count; e++) {
            const en_example *ex = &g_data->ex[e];
            float x[8], y[8];
            en_forward(a, ex->ids, ex->type_ids, ex->n, EN_METRIC_ATTN, NULL, x, NULL, NULL);
            en_forward(b, ex->ids, ex->type_ids, ex->n, EN_METRIC_ATTN, NULL, y, NULL, NULL);
            for (int c = 0; c < cfg->num_labels; c++)
                err[pass] += fabs(x[c] - y[c]);
        }
        en_ctx_free(a), en_ctx_free(b);
        en_model_free(nm);
        free(ids);
    }
    ck_assert_msg(err[0] < 0.5 * err[1], "best half %g, worst half %g", err[0], err[1]);
}
END_TEST

/* Runs `text` (n schedules) through the prefix evaluation (with a bank of narrowed layers) and
 * checks each against en_forward() on the model narrowed from the profile, at the schedule's
 * precision, bit for bit; returns the logits (caller frees). */
static float *prefix_eval_equals_forward(const char *const *text, int count) {
    const en_model *m = demo_model();
    int L = m->cfg.layers, C = m->cfg.num_labels, n = g_data->count;
    sc_schedule *s = calloc((size_t)count, sizeof *s);
    for (int i = 0; i < count; i++)
        ck_assert_int_eq(sc_schedule_parse(text[i], L, &s[i], NULL), 0);
    sc_width_bank bank;
    ck_assert_int_eq(sc_width_bank_init(&bank, m, &g_prof), 0);
    int *pred = malloc(sizeof(int) * count * n);
    float *logits = malloc(sizeof(float) * count * n * C);
    sc_prefix_job job = {.m = m,
                         .bank = &bank,
                         .d = g_data,
                         .sched = s,
                         .count = count,
                         .threads = 2,
                         .pred = pred,
                         .logits = logits};
    en_diag d;
    ck_assert_msg(sc_prefix_eval(&job, NULL, &d) == 0, "%s", d.msg);
    for (int k = 0; k < count; k++) {
        en_model *nm = NULL;
        ck_assert_int_eq(sc_width_narrow(m, &g_prof, &s[k], &nm, &d), 0);
        ck_assert_int_eq(nm != NULL, sc_schedule_has_width(&s[k]));
        en_ctx *c;
        ck_assert_int_eq(en_ctx_new(nm ? nm : m, g_data->max_n, &c), 0);
        ck_assert_int_eq(en_ctx_set_precision(c, s[k].prec), 0);
        for (int e = 0; e < n; e++) {
            const en_example *ex = &g_data->ex[e];
            float ref[8];
            ck_assert_int_eq(en_forward(c, ex->ids, ex->type_ids, ex->n, s[k].metric, s[k].ratios,
                                        ref, NULL, NULL),
                             0);
            for (int j = 0; j < C; j++)
                ck_assert_msg(logits[((size_t)k * n + e) * C + j] == ref[j],
                              "%s, example %d: %.9g vs %.9g", text[k], e,
                              logits[((size_t)k * n + e) * C + j], ref[j]);
        }
        en_ctx_free(c);
        en_model_free(nm);
    }
    /* without a bank a narrowed schedule is refused */
    int narrowed = 0;
    for (int k = 0; k < count; k++)
        narrowed |= sc_schedule_has_width(&s[k]);
    job.bank = NULL;
    if (narrowed) {
        ck_assert_int_eq(sc_prefix_eval(&job, NULL, &d), EN_ESCHEDULE);
        ck_assert_ptr_nonnull(strstr(d.msg, "width profile"));
    }
    sc_width_bank_fini(&bank);
    free(pred);
    free(s);
    return logits;
}

/* Narrowed schedules through the prefix evaluation give exactly what en_forward() gives on the
 * model narrowed from the profile; and that narrowing keeps what the profile ranks first. */
START_TEST(prefix_eval_matches_narrowed_forward) {
    static const char *const text[] = {
        "attn:1,0.7,0.5,0.3;heads:1,0.5,1,0.5;ffn:1,0.5,0.1,0",
        "attn:1,0.7,0.5,0.3;heads:1,0.5,1,1;ffn:1,0.5,0.1,0",
        "attn:1,0.7,0.5,0.3;ffn:1,0.5,0.1,0.05",
        "attn:1,0.7,0.5,0.3",
        "context:1,1,0.5,0.5;heads:0.5,0.5,0.5,0.5",
        "context:1,1,0.5,0.5;heads:0.5,0.5,0.5,0.5;ffn:0.2,0.2,0.2,0.2",
    };
    free(prefix_eval_equals_forward(text, sizeof text / sizeof *text));
    /* the kept sets are the profile's best, ascending, with their factors */
    const en_config *cfg = &demo_model()->cfg;
    int32_t heads[64], *neurons = malloc(sizeof(int32_t) * cfg->ffn);
    float hs[64], *ns = malloc(sizeof(float) * cfg->ffn);
    en_layer_width w;
    sc_width_layer(&g_prof, 1, 1, 4, heads, hs, neurons, ns, &w);
    ck_assert_int_eq(w.n_heads, 1);
    ck_assert_int_eq(heads[0], g_prof.head_order[1 * cfg->heads]);
    ck_assert_int_eq(w.n_neurons, sc_width_neurons(cfg->ffn, 4));
    for (int i = 1; i < w.n_neurons; i++)
        ck_assert_int_lt(neurons[i - 1], neurons[i]);
    free(neurons);
    free(ns);
}
END_TEST

/* Precision in the schedule: the text form, and the prefix evaluation of INT8 layers against
 * en_forward() with the same per-layer precision, bit for bit (narrowed or not). */
START_TEST(precision_in_schedules) {
    sc_schedule s;
    en_diag d;
    char buf[SC_SCHEDULE_TEXT_MAX];
    ck_assert_int_eq(sc_schedule_parse("attn:1,0.5,0.5,0.5;int8", 4, &s, &d), 0);
    sc_schedule_format(&s, buf, sizeof buf);
    ck_assert_str_eq(buf, "attn:1,0.5,0.5,0.5;int8");
    ck_assert_str_eq(sc_schedule_precision_name(&s), "int8");
    ck_assert_int_eq(
        sc_schedule_parse("attn:1,0.5,0.5,0.5;prec:f32,int8,int8,f32;ffn:1,1,0.5,1", 4, &s, &d), 0);
    sc_schedule_format(&s, buf, sizeof buf);
    ck_assert_str_eq(buf, "attn:1,0.5,0.5,0.5;ffn:1,1,0.5,1;prec:f32,int8,int8,f32");
    ck_assert_str_eq(sc_schedule_precision_name(&s), "mixed");
    ck_assert_int_eq(sc_schedule_parse("attn:1,1;f32", 2, &s, &d), 0);
    sc_schedule_format(&s, buf, sizeof buf);
    ck_assert_str_eq(buf, "attn:1,1");
    ck_assert_int_eq(sc_schedule_parse("attn:1,1;prec:int8", 2, &s, &d), EN_ESCHEDULE);
    ck_assert_ptr_nonnull(strstr(d.msg, "1 entries for 2 layers"));
    ck_assert_int_eq(sc_schedule_parse("attn:1,1;int4", 2, &s, &d), EN_ESCHEDULE);
    ck_assert_int_eq(sc_schedule_parse("attn:1,1;int8;int8", 2, &s, &d), EN_ESCHEDULE);

    static const char *const text[] = {
        "attn:1,0.7,0.5,0.3;int8",
        "attn:1,0.7,0.5,0.3;prec:f32,int8,f32,int8",
        "attn:1,0.7,0.5,0.3",
        "context:1,0.7,0.5,0.3;heads:1,0.5,1,0.5;ffn:1,0.5,0.1,0;int8",
    };
    float *logits = prefix_eval_equals_forward(text, 4);
    /* INT8 layers do change the numbers: the INT8 schedule differs from its F32 twin */
    int n = g_data->count, C = demo_model()->cfg.num_labels, differ = 0;
    for (int i = 0; i < n * C; i++)
        differ += logits[i] != logits[(size_t)2 * n * C + i];
    ck_assert_int_gt(differ, 0);
    free(logits);
}
END_TEST

Suite *width_suite(void) {
    Suite *s = suite_create("width");
    TCase *tc = tcase_create("text");
    tcase_add_test(tc, text_round_trip);
    tcase_add_test(tc, flops_by_hand);
    suite_add_tcase(s, tc);
    tc = tcase_create("profile");
    tcase_set_timeout(tc, 300);
    tcase_add_unchecked_fixture(tc, profile_setup, profile_teardown);
    tcase_add_test(tc, profile_known_answers);
    tcase_add_test(tc, profile_in_passes_is_the_same);
    tcase_add_test(tc, ranking_beats_its_reverse);
    tcase_add_test(tc, prefix_eval_matches_narrowed_forward);
    tcase_add_test(tc, precision_in_schedules);
    suite_add_tcase(s, tc);
    return s;
}
