#include <stdio.h>
#include <stdlib.h>

#include "test_schedules.h"
#include "tests/common/tc_env.h"
#include "tests/common/tc_model.h"
#include "tests/common/tc_run.h"

static en_model *g_model;
static en_dataset *g_data;

const en_model *demo_model(void) {
    if (!g_model) g_model = tc_load_model(tc_demo_model());
    return g_model;
}

const en_dataset *demo_data(void) {
    if (!g_data) {
        char path[512];
        tc_shared_path(path, sizeof path, "data/sst2/test.tsv");
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
    // Each test runs in its own process (CK_FORK=yes) and loads the model and data it uses.
    int rc = tc_run(schedule_suite(), stats_suite(), frontier_suite(), prefix_eval_suite(),
                    latency_suite(), search_suite(), width_suite(), NULL);
    en_dataset_free(g_data);
    en_model_free(g_model);
    return rc;
}
