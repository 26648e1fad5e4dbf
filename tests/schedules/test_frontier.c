#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "schedules/sc_error.h"
#include "schedules/sc_frontier.h"
#include "test_schedules.h"

/* A hand-built frontier; F is cheaper than C in latency but not in FLOPs. */
static sc_record rec(const char *sched, double flops, double ms, double acc, double upper) {
    sc_record r;
    memset(&r, 0, sizeof r);
    ck_assert_int_eq(sc_schedule_parse(sched, 4, &r.schedule, NULL), 0);
    r.flops_ratio = flops;
    r.latency_ms = ms;
    r.accuracy = acc;
    r.baseline_accuracy = 0.80;
    r.drop = 0.80 - acc;
    r.drop_upper = upper;
    return r;
}

static sc_record g_rec[8];
static sc_frontier g_f;

static void setup(void) {
    g_rec[0] = rec("attn:0.2,0.2,0.2,0.2", 0.20, 1.0, 0.700, 0.130); // A
    g_rec[1] = rec("attn:1,0.3,0.3,0.3", 0.35, 1.5, 0.780, 0.040);   // B
    g_rec[2] = rec("cls:1,0.5,0.5,0.3", 0.50, 2.0, 0.795, 0.009);    // C
    g_rec[3] = rec("attn:1,1,0.5,0.5", 0.70, 2.2, 0.800, 0.004);     // D
    g_rec[4] = rec("attn:1,1,1,1", 1.00, 3.0, 0.800, 0.003);         // E
    g_rec[5] = rec("power:1,0.6,0.4,0.4", 0.60, 1.8, 0.790, 0.008);  // F
    g_f.rec = g_rec;
    g_f.count = 6;
}

static sc_query query(double drop, double flops, double ms, sc_minimize by) {
    sc_query q = {.max_drop = drop, .max_flops = flops, .max_latency_ms = ms, .minimize = by};
    return q;
}

static const sc_record *pick_ok(sc_query q) {
    const sc_record *best = NULL;
    en_diag diag = {{0}};
    int rc = sc_frontier_pick(&g_f, &q, &best, NULL, &diag);
    ck_assert_msg(rc == 0, "pick failed: %s", diag.msg);
    return best;
}

START_TEST(fastest_within_drop) {
    ck_assert_ptr_eq(pick_ok(query(0.01, -1, -1, SC_MIN_FLOPS)), &g_rec[2]);   // C
    ck_assert_ptr_eq(pick_ok(query(0.01, -1, -1, SC_MIN_LATENCY)), &g_rec[5]); // F
    ck_assert_ptr_eq(pick_ok(query(0.05, -1, -1, SC_MIN_FLOPS)), &g_rec[1]);   // B
    ck_assert_ptr_eq(pick_ok(query(0.005, -1, -1, SC_MIN_FLOPS)), &g_rec[3]);  // D
}
END_TEST

START_TEST(most_accurate_within_cost) {
    ck_assert_ptr_eq(pick_ok(query(-1, 0.6, -1, SC_MIN_FLOPS)), &g_rec[2]);  // C beats F
    ck_assert_ptr_eq(pick_ok(query(-1, 0.49, -1, SC_MIN_FLOPS)), &g_rec[1]); // B
    ck_assert_ptr_eq(pick_ok(query(-1, 1.0, -1, SC_MIN_FLOPS)),
                     &g_rec[3]); // D: as accurate as E, cheaper
    ck_assert_ptr_eq(pick_ok(query(-1, -1, 1.9, SC_MIN_LATENCY)), &g_rec[5]); // F
}
END_TEST

START_TEST(no_match_names_closest) {
    sc_query q = query(0.001, -1, -1, SC_MIN_FLOPS);
    const sc_record *best = &g_rec[0], *closest = NULL;
    en_diag diag = {{0}};
    ck_assert_int_eq(sc_frontier_pick(&g_f, &q, &best, &closest, &diag), SC_ENOMATCH);
    ck_assert_ptr_null(best);
    ck_assert_ptr_eq(closest, &g_rec[4]);
    ck_assert_msg(strstr(diag.msg, "attn:1,1,1,1") && strstr(diag.msg, "0.30%") &&
                      strstr(diag.msg, "0.10%"),
                  "%s", diag.msg);
    q = query(-1, 0.1, -1, SC_MIN_FLOPS);
    ck_assert_int_eq(sc_frontier_pick(&g_f, &q, &best, &closest, &diag), SC_ENOMATCH);
    ck_assert_ptr_eq(closest, &g_rec[0]);
    ck_assert_msg(strstr(diag.msg, "attn:0.2,0.2,0.2,0.2"), "%s", diag.msg);
    q = query(-1, -1, 0.5, SC_MIN_LATENCY);
    ck_assert_int_eq(sc_frontier_pick(&g_f, &q, &best, &closest, &diag), SC_ENOMATCH);
    ck_assert_ptr_eq(closest, &g_rec[0]);
}
END_TEST

START_TEST(bad_questions) {
    const sc_record *best;
    sc_query q = query(0.01, 0.5, -1, SC_MIN_FLOPS);
    ck_assert_int_eq(sc_frontier_pick(&g_f, &q, &best, NULL, NULL), SC_EBUDGET);
    q = query(-1, -1, -1, SC_MIN_FLOPS);
    ck_assert_int_eq(sc_frontier_pick(&g_f, &q, &best, NULL, NULL), SC_EBUDGET);
    sc_frontier empty = {0};
    q = query(0.01, -1, -1, SC_MIN_FLOPS);
    ck_assert_int_eq(sc_frontier_pick(&empty, &q, &best, NULL, NULL), SC_EEMPTY);
}
END_TEST

START_TEST(normalize_keeps_every_answer) {
    g_rec[6] = rec("attn:1,1,0.6,0.6", 0.80, 2.5, 0.790, 0.010); // dominated by D
    g_rec[7] = g_rec[1];                                         // a repeat of B
    g_f.count = 8;
    sc_frontier_normalize(&g_f);
    ck_assert_int_eq(g_f.count, 6);
    for (int i = 1; i < g_f.count; i++)
        ck_assert(g_f.rec[i - 1].flops_ratio <= g_f.rec[i].flops_ratio);
    char buf[64];
    sc_schedule_format(&g_f.rec[3].schedule, buf, sizeof buf);
    ck_assert_str_eq(buf, "power:1,0.6,0.4,0.4"); // F, kept for its latency
    ck_assert_ptr_eq(pick_ok(query(0.01, -1, -1, SC_MIN_LATENCY)), &g_f.rec[3]);
}
END_TEST

/* The definition in sc_frontier.h, written again: a is no worse in FLOPs, latency, accuracy and
 * drop bound, and better in one. */
static int dominates_by_doc(const sc_record *a, const sc_record *b) {
    int no_worse = a->flops_ratio <= b->flops_ratio && a->latency_ms <= b->latency_ms &&
                   a->accuracy >= b->accuracy && a->drop_upper <= b->drop_upper;
    int better = a->flops_ratio < b->flops_ratio || a->latency_ms < b->latency_ms ||
                 a->accuracy > b->accuracy || a->drop_upper < b->drop_upper;
    return no_worse && better;
}

/* Random frontiers on a coarse grid (ties, chains of dominance, exact repeats) against the
 * definition checked pair by pair: the kept records are exactly the undominated schedules, each
 * once. */
START_TEST(normalize_equals_the_definition) {
    enum { N = 120 };
    static sc_record all[N], work[N];
    int grid[165][3], g = 0; // every non-increasing triple of tenths: 165 schedules
    for (int a = 9; a >= 1; a--)
        for (int b = a; b >= 1; b--)
            for (int c = b; c >= 1; c--)
                grid[g][0] = a, grid[g][1] = b, grid[g][2] = c, g++;
    unsigned seed = 7;
    for (int round = 0; round < 20; round++) {
        int n = 0;
        while (n < N) {
            if (n > 4 && rand_r(&seed) % 5 == 0) { // an exact repeat of an earlier record
                all[n] = all[rand_r(&seed) % n];
                n++;
                continue;
            }
            char text[64]; // one schedule per record (a schedule's figures are its own)
            snprintf(text, sizeof text, "attn:1,0.%d,0.%d,0.%d", grid[n][0], grid[n][1],
                     grid[n][2]);
            all[n++] = rec(text, 0.1 * (1 + rand_r(&seed) % 10), 0.5 * (1 + rand_r(&seed) % 6),
                           0.70 + 0.02 * (rand_r(&seed) % 6), 0.01 * (rand_r(&seed) % 5));
        }
        memcpy(work, all, sizeof all);
        sc_frontier f = {.rec = work, .count = N};
        sc_frontier_normalize(&f);
        int expected = 0;
        for (int i = 0; i < N; i++) {
            int kept = 1, first = 1;
            for (int j = 0; j < N && kept; j++)
                kept = !dominates_by_doc(&all[j], &all[i]);
            for (int j = 0; j < i && first; j++)
                first = sc_schedule_hash(&all[j].schedule) != sc_schedule_hash(&all[i].schedule);
            if (!kept || !first) continue;
            expected++;
            int found = 0;
            for (int k = 0; k < f.count; k++)
                found += sc_schedule_hash(&f.rec[k].schedule) == sc_schedule_hash(&all[i].schedule);
            ck_assert_int_eq(found, 1);
        }
        ck_assert_int_eq(f.count, expected);
        for (int k = 1; k < f.count; k++)
            ck_assert(f.rec[k - 1].flops_ratio <= f.rec[k].flops_ratio);
    }
}
END_TEST

Suite *frontier_suite(void) {
    Suite *s = suite_create("frontier");
    TCase *tc = tcase_create("pick");
    tcase_add_checked_fixture(tc, setup, NULL);
    tcase_add_test(tc, fastest_within_drop);
    tcase_add_test(tc, most_accurate_within_cost);
    tcase_add_test(tc, no_match_names_closest);
    tcase_add_test(tc, bad_questions);
    tcase_add_test(tc, normalize_keeps_every_answer);
    tcase_add_test(tc, normalize_equals_the_definition);
    suite_add_tcase(s, tc);
    return s;
}
