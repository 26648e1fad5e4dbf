#include <stdio.h>
#include <stdlib.h>

#include "test_schedules.h"

static en_model *g_model;
static en_dataset *g_data;

const en_model *demo_model(void) {
    if (!g_model) {
        const char *dir = getenv("SEARCHD_DEMO_MODEL");
        ck_assert_msg(dir != NULL, "SEARCHD_DEMO_MODEL is not set");
        en_diag diag = {{0}};
        int rc = en_model_load(dir, &g_model, &diag);
        ck_assert_msg(rc == 0, "loading %s: %s", dir, diag.msg);
    }
    return g_model;
}

const en_dataset *demo_data(void) {
    if (!g_data) {
        const char *root = getenv("SEARCHD_SHARED");
        ck_assert_msg(root != NULL, "SEARCHD_SHARED is not set");
        char path[512];
        snprintf(path, sizeof path, "%s/data/sst2/test.tsv", root);
        en_diag diag = {{0}};
        int rc = en_dataset_load(path, demo_model(), &g_data, &diag);
        ck_assert_msg(rc == 0, "loading %s: %s", path, diag.msg);
    }
    return g_data;
}

en_dataset *demo_slice(int from, int count, int step) {
    const en_dataset *d = demo_data();
    int idx[1024];
    ck_assert_int_le(count, 1024);
    for (int i = 0; i < count; i++) {
        idx[i] = from + i * step;
        ck_assert_int_lt(idx[i], d->count);
    }
    en_dataset *v = NULL;
    ck_assert_int_eq(en_dataset_view(d, idx, count, &v), 0);
    return v;
}

int main(void) {
    SRunner *sr = srunner_create(schedule_suite());
    srunner_add_suite(sr, stats_suite());
    srunner_add_suite(sr, frontier_suite());
    srunner_add_suite(sr, prefix_eval_suite());
    srunner_add_suite(sr, latency_suite());
    srunner_add_suite(sr, search_suite());
    srunner_add_suite(sr, width_suite());
    // One process for all tests: the model and data are loaded once (tests only read them).
    srunner_set_fork_status(sr, CK_NOFORK);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    en_dataset_free(g_data);
    en_model_free(g_model);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
