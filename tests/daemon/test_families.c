/* Other families side by side with BERT in one searchd: the DistilBERT and ELECTRA models of
 * shared/ registered next to the tuned demo BERT, each tuned (a short search) and served, and
 * `searchctl classify --daemon` printing label names for each. */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "test_util.h"

static const struct {
    const char *dir, *name, *family;
    int layers;
} models[] = {
    {"sst2-distilbert-L6-H256", "distil", "DistilBERT", 6},
    {"sst2-electra-L4-H128", "electra", "ELECTRA", 4},
    {NULL, "demo", "BERT", 4},
};
#define N_MODELS (sizeof models / sizeof models[0])

START_TEST(distilbert_electra_beside_bert) {
    const char *shared = tc_shared();
    sdc_client *c = td_connect(&td_cur);
    sdc_reply r;
    for (size_t i = 0; models[i].dir; i++) {
        char path[600];
        snprintf(path, sizeof path, "%s/models/%s", shared, models[i].dir);
        sdc_arg add[] = {SDC_ARG_STR("path", path), SDC_ARG_STR("data", td_data),
                         SDC_ARG_STR("name", models[i].name)};
        td_call_ok(c, "model.add", add, 3, &r);
        char buf[64];
        ck_assert_str_eq(td_str(r.result, "family", buf, sizeof buf), models[i].family);
        const msgpack_object *labels = sp_map_get(r.result, "labels");
        ck_assert(labels && labels->via.array.size == 2);
        ck_assert(sp_obj_streq(&labels->via.array.ptr[0], "negative"));
        ck_assert(sp_obj_streq(&labels->via.array.ptr[1], "positive"));
        sdc_reply_free(&r);
        sp_diag dg = {{0}};
        ck_assert_msg(td_tune_wait(c, models[i].name, &dg) == 0, "tune %s: %s (see %s)",
                      models[i].name, dg.msg, td_cur.log);
    }
    td_call_ok(c, "model.list", NULL, 0, &r);
    ck_assert_int_eq(r.result->via.array.size, N_MODELS);
    sdc_reply_free(&r);
    for (size_t i = 0; i < N_MODELS; i++) {
        sdc_arg get[] = {SDC_ARG_STR("model", models[i].name), SDC_ARG_NUM("max_flops", 1)};
        td_call_ok(c, "schedule.get", get, 2, &r);
        ck_assert_int_eq(sp_map_get(r.result, "ratios")->via.array.size, models[i].layers);
        ck_assert(td_num(r.result, "flops_ratio") <= 1);
        sdc_reply_free(&r);
        // classify --daemon: one line per text, starting with the label's name.
        char out[400], cmd[1600];
        snprintf(out, sizeof out, "%s/classify-%s", td_cur.dir, models[i].name);
        snprintf(cmd, sizeof cmd,
                 "%s classify --daemon --socket %s --model %s --max-flops 1 "
                 "'a gorgeous, witty, seductive movie.' 'the plot is a dreadful mess.' "
                 ">%s 2>/dev/null",
                 SD_TEST_SEARCHCTL, td_cur.sock, models[i].name, out);
        ck_assert_int_eq(system(cmd), 0);
        FILE *f = fopen(out, "r");
        ck_assert_ptr_nonnull(f);
        char line[512];
        int lines = 0;
        while (fgets(line, sizeof line, f)) {
            ck_assert_msg(strncmp(line, "positive ", 9) == 0 || strncmp(line, "negative ", 9) == 0,
                          "%s: '%s' does not start with a label name", models[i].name, line);
            lines++;
        }
        fclose(f);
        ck_assert_int_eq(lines, 2);
    }
    sdc_close(c);
}
END_TEST

Suite *families_suite(void) {
    Suite *s = suite_create("families");
    TCase *tc = tcase_create("side by side");
    tcase_set_timeout(tc, 900);
    tcase_add_checked_fixture(tc, td_setup_tuned, td_teardown); // the demo BERT, tuned
    tcase_add_test(tc, distilbert_electra_beside_bert);
    suite_add_tcase(s, tc);
    return s;
}
