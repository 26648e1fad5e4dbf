#include <stdlib.h>
#include <string.h>

#include "engine/en_dataset.h"
#include "schedules/sc_latency.h"
#include "test_schedules.h"

START_TEST(hardware_fingerprint) {
    sc_hw a, b;
    sc_hw_detect(1, &a);
    sc_hw_detect(1, &b);
    ck_assert(sc_hw_equal(&a, &b));
    ck_assert(a.cores >= 1);
    ck_assert(a.cpu[0] != '\0');
    ck_assert(a.blas[0] != '\0');
    b.threads = 2;
    ck_assert(!sc_hw_equal(&a, &b));
    char text[512];
    sc_hw_format(&a, text, sizeof text);
    ck_assert(strstr(text, "1 thread") != NULL);
}
END_TEST

START_TEST(predicts_monotonically_and_near_measured) {
    const en_model *m = demo_model();
    sc_latency_model lm;
    en_diag diag = {{0}};
    ck_assert_msg(sc_latency_calibrate(m, 1, 0.5, &lm, &diag) == 0, "%s", diag.msg);
    ck_assert(lm.calib_seconds > 0 && lm.calib_seconds < 30);
    int L = m->cfg.layers;
    // Every coefficient of the four fits is >= 0: with terms that grow with n, k and the widths,
    // that is what keeps each prediction monotonic on any host, however noisy its timings.
    const double *sets[] = {lm.layer, lm.last, lm.layer_int8, lm.last_int8};
    for (int s = 0; s < 4; s++)
        for (int i = 0; i < SC_LAT_TERMS; i++)
            ck_assert_msg(sets[s][i] >= 0, "fit %d, term %d: %g", s, i, sets[s][i]);
    // Longer sequences cost more; smaller keep ratios cost less.
    sc_schedule full;
    sc_schedule_full(&full, EN_METRIC_ATTN, L);
    double prev = 0;
    for (int n = 4; n <= 128; n += 4) {
        double ms = sc_latency_predict(&lm, &m->cfg, &full, &n, 1);
        ck_assert_msg(ms > prev, "n=%d: %.4f ms after %.4f", n, ms, prev);
        prev = ms;
    }
    en_dataset *d = demo_slice(0, 120, 7);
    int *len = malloc(sizeof(int) * d->count);
    for (int i = 0; i < d->count; i++)
        len[i] = d->ex[i].n;
    prev = 1e9;
    for (int r = 20; r >= 2; r -= 3) {
        sc_schedule s;
        sc_schedule_full(&s, EN_METRIC_ATTN, L);
        for (int l = 1; l < L; l++)
            s.ratios[l] = r / 20.0;
        double ms = sc_latency_predict(&lm, &m->cfg, &s, len, d->count);
        ck_assert_msg(ms < prev + 1e-9, "ratio %.2f: %.4f ms after %.4f", r / 20.0, ms, prev);
        prev = ms;
    }
    // The last layer runs for the [CLS] row alone: its keep count changes nothing.
    sc_schedule a, b;
    sc_schedule_full(&a, EN_METRIC_ATTN, L);
    sc_schedule_full(&b, EN_METRIC_ATTN, L);
    b.ratios[L - 1] = 0.1;
    ck_assert_double_eq(sc_latency_predict(&lm, &m->cfg, &a, len, d->count),
                        sc_latency_predict(&lm, &m->cfg, &b, len, d->count));
    ck_assert(sc_latency_last(&lm, 64, 1, 1, EN_PREC_F32) > 0);
    // Within a loose bound of what en_eval measures (machines here are shared and noisy; the
    // 5% figure is measured by `searchctl tune`, not asserted).
    en_eval_opts eo = {.metric = EN_METRIC_ATTN, .ratios = full.ratios, .threads = 1};
    en_eval_result res = {0};
    ck_assert_int_eq(en_eval(m, d, &eo, &res, NULL), 0);
    double pred = sc_latency_predict(&lm, &m->cfg, &full, len, d->count);
    ck_assert_msg(pred > res.latency_ms / 3 && pred < res.latency_ms * 3,
                  "predicted %.4f ms, measured %.4f ms", pred, res.latency_ms);
    free(len);
    en_dataset_free_view(d);
}
END_TEST

START_TEST(probe_times_the_unpruned_forwards) {
    const en_model *m = demo_model();
    sc_latency_model lm;
    en_diag diag = {{0}};
    ck_assert_msg(sc_latency_calibrate(m, 1, 0.3, &lm, &diag) == 0, "%s", diag.msg);
    // The probe is the unpruned network on sequences of 8, 16, 24, 32, 48 and 64 tokens: the
    // model fitted on other sequences predicts about that much.
    static const int lengths[] = {8, 16, 24, 32, 48, 64};
    sc_schedule full;
    sc_schedule_full(&full, EN_METRIC_ATTN, m->cfg.layers);
    double pred = 6 * sc_latency_predict(&lm, &m->cfg, &full, lengths, 6);
    ck_assert_msg(lm.probe_ms > pred / 3 && lm.probe_ms < pred * 3,
                  "probe %.4f ms during calibration, predicted %.4f ms", lm.probe_ms, pred);
    // Timed again now, it takes about as long: the ratio is the host's drift, near 1 here.
    double now = 0, best = 1e9;
    for (int r = 0; r < 5; r++) {
        ck_assert_msg(sc_latency_probe(m, 1, &now, &diag) == 0, "%s", diag.msg);
        best = now < best ? now : best;
    }
    ck_assert_msg(best > lm.probe_ms / 3 && best < lm.probe_ms * 3,
                  "probe %.4f ms now, %.4f ms during calibration", best, lm.probe_ms);
}
END_TEST

Suite *latency_suite(void) {
    Suite *s = suite_create("latency");
    TCase *tc = tcase_create("demo");
    tcase_set_timeout(tc, 300);
    tcase_add_test(tc, hardware_fingerprint);
    tcase_add_test(tc, predicts_monotonically_and_near_measured);
    tcase_add_test(tc, probe_times_the_unpruned_forwards);
    suite_add_tcase(s, tc);
    return s;
}
