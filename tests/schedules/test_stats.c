#include <math.h>

#include "schedules/sc_stats.h"
#include "test_schedules.h"

START_TEST(hand_computed_bound) {
    // 10 examples: 3 lost, 1 gained, 6 unchanged. d = (+1,+1,+1,-1,0,...): mean 0.2,
    // sample variance (4 - 10 * 0.04) / 9 = 0.4, standard error sqrt(0.4 / 10) = 0.2,
    // bound 0.2 + 1.6448536 * 0.2 = 0.52897.
    uint8_t base[10] = {1, 1, 1, 0, 1, 1, 0, 0, 1, 1};
    uint8_t cand[10] = {0, 0, 0, 1, 1, 1, 0, 0, 1, 1};
    sc_paired p;
    sc_paired_compare(base, cand, NULL, 10, &p);
    ck_assert_int_eq(p.lost, 3);
    ck_assert_int_eq(p.gained, 1);
    ck_assert_int_eq(p.base_correct, 7);
    ck_assert_int_eq(p.correct, 5);
    ck_assert_double_eq_tol(p.drop, 0.2, 1e-12);
    ck_assert_double_eq_tol(p.drop_upper, 0.528970725, 1e-6);
    ck_assert_double_eq_tol(sc_drop_upper(10, 3, 1), 0.528970725, 1e-6);
}
END_TEST

START_TEST(subset_and_edges) {
    uint8_t base[6] = {1, 1, 0, 1, 0, 1}, cand[6] = {1, 0, 0, 1, 1, 1};
    int idx[3] = {0, 2, 3}; // the examples where both agree
    sc_paired p;
    sc_paired_compare(base, cand, idx, 3, &p);
    ck_assert_int_eq(p.lost + p.gained, 0);
    ck_assert_double_eq_tol(p.drop, 0, 1e-12);
    // No disagreement: the spread of one disagreement is assumed, 1.645 * sqrt(1/2 / 3).
    ck_assert_double_eq_tol(p.drop_upper, 1.6448536 * sqrt(0.5 / 3), 1e-6);
    // 550 held-out examples, 10 lost, 4 gained: 6/550 + 1.645 * sqrt((14 - 550 d^2)/549/550).
    double d = 6.0 / 550;
    ck_assert_double_eq_tol(sc_drop_upper(550, 10, 4),
                            d + 1.6448536 * sqrt((14 - 550 * d * d) / 549 / 550), 1e-7);
    ck_assert_double_eq(sc_drop_upper(1, 0, 0), 1.0);
    ck_assert(sc_drop_upper(550, 0, 20) < 0); // a clear gain has a negative bound
}
END_TEST

Suite *stats_suite(void) {
    Suite *s = suite_create("stats");
    TCase *tc = tcase_create("paired");
    tcase_add_test(tc, hand_computed_bound);
    tcase_add_test(tc, subset_and_edges);
    suite_add_tcase(s, tc);
    return s;
}
