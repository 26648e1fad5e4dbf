#include <errno.h>
#include <string.h>

#include "schedules/sc_error.h"
#include "schedules/sc_schedule.h"
#include "test_schedules.h"

static void roundtrip(const char *text, int layers, const char *canonical) {
    sc_schedule s;
    en_diag diag = {{0}};
    ck_assert_msg(sc_schedule_parse(text, layers, &s, &diag) == 0, "%s: %s", text, diag.msg);
    char buf[128];
    ck_assert_int_eq(sc_schedule_format(&s, buf, sizeof buf), (int)strlen(canonical));
    ck_assert_str_eq(buf, canonical);
    sc_schedule again;
    ck_assert_int_eq(sc_schedule_parse(buf, layers, &again, NULL), 0);
    ck_assert_uint_eq(sc_schedule_hash(&again), sc_schedule_hash(&s));
}

START_TEST(canonical_form) {
    roundtrip("attn:1,1,0.9,0.7,0.5,0.35", 6, "attn:1,1,0.9,0.7,0.5,0.35");
    roundtrip("context:1.000,0.50, 0.25 ,0.1", 4, "context:1,0.5,0.25,0.1");
    roundtrip(" cls : 0.33333,0.2", 0, "cls:0.3333,0.2");
    roundtrip("1,0.8,0.6", 0, "attn:1,0.8,0.6"); // a bare list means attn
    roundtrip("power:0.05,0.05,0.05,0.05", 4, "power:0.05,0.05,0.05,0.05");
}
END_TEST

START_TEST(identity) {
    sc_schedule a, b, c;
    ck_assert_int_eq(sc_schedule_parse("attn:1,0.5", 2, &a, NULL), 0);
    ck_assert_int_eq(sc_schedule_parse("attn:1.0,0.50000", 2, &b, NULL), 0);
    ck_assert_int_eq(sc_schedule_parse("cls:1,0.5", 2, &c, NULL), 0);
    ck_assert_uint_eq(sc_schedule_hash(&a), sc_schedule_hash(&b));
    ck_assert_uint_ne(sc_schedule_hash(&a), sc_schedule_hash(&c));
    // FNV-1a 64 of the text "attn:1,0.5", computed independently.
    ck_assert_uint_eq(sc_schedule_hash(&a), 0x8ebae898fbf06786ull);
    sc_schedule full;
    sc_schedule_full(&full, EN_METRIC_POWER, 3);
    char buf[64];
    sc_schedule_format(&full, buf, sizeof buf);
    ck_assert_str_eq(buf, "power:1,1,1");
    ck_assert_int_eq(sc_schedule_format(&full, buf, 8), -ENOSPC);
}
END_TEST

static void rejected(const char *text, int layers, const char *words) {
    sc_schedule s;
    en_diag diag = {{0}};
    int rc = sc_schedule_parse(text, layers, &s, &diag);
    ck_assert_msg(rc == EN_ESCHEDULE, "%s: accepted", text);
    ck_assert_msg(strstr(diag.msg, words) != NULL, "%s: message '%s' lacks '%s'", text, diag.msg,
                  words);
}

START_TEST(bad_schedules) {
    rejected("attn:1,0.5,0.7", 3, "must not increase");
    rejected("attn:1,1.2", 2, "outside (0, 1]");
    rejected("attn:1,0", 2, "outside (0, 1]");
    rejected("attn:1,-0.5", 2, "outside (0, 1]");
    rejected("attn:1,0.00001", 2, "outside (0, 1]"); // rounds to 0
    rejected("attn:1,0.5", 6, "schedule has 2 ratios, the model has 6 layers");
    rejected("magic:1,0.5", 2, "unknown metric 'magic'");
    rejected("attn:1,,0.5", 3, "layer 2's ratio is missing");
    rejected("attn:1,abc", 2, "not a number");
    rejected("attn:1,0.5x", 2, "unexpected 'x'");
    rejected("", 0, "layer 1's ratio is missing");
    // Layers as a person counts them (issue 10): the first layer is layer 1, not ratio 0.
    rejected("attn:0,0.5", 2, "layer 1's ratio (0) is outside");
    rejected("attn:1,0.5,0.7", 3, "layer 3's ratio (0.7) is above layer 2's (0.5)");
    rejected("attn:nan", 1, "outside");
}
END_TEST

START_TEST(error_text) {
    ck_assert_str_eq(sc_strerror(SC_ENOMATCH), "no schedule meets the budget");
    ck_assert_str_eq(sc_strerror(EN_ESCHEDULE), "bad pruning schedule");
    ck_assert_str_eq(sc_strerror(-ENOENT), strerror(ENOENT));
    ck_assert_str_eq(sc_strerror(SC_EONECLASS), "data set has a single class");
}
END_TEST

Suite *schedule_suite(void) {
    Suite *s = suite_create("schedule");
    TCase *tc = tcase_create("text");
    tcase_add_test(tc, canonical_form);
    tcase_add_test(tc, identity);
    tcase_add_test(tc, bad_schedules);
    tcase_add_test(tc, error_text);
    suite_add_tcase(s, tc);
    return s;
}
