#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "test_engine.h"

const char *shared_path(char *buf, size_t len, const char *rel) {
    const char *root = getenv("SEARCHD_SHARED");
    ck_assert_msg(root != NULL, "SEARCHD_SHARED is not set");
    snprintf(buf, len, "%s/%s", root, rel);
    return buf;
}

int test_stride(void) {
    const char *s = getenv("SEARCHD_TEST_STRIDE");
    int v = s ? atoi(s) : 1;
    return v >= 1 ? v : 1;
}

en_model *load_model_or_fail(const char *dir) {
    en_model *m = NULL;
    en_diag diag = {{0}};
    int rc = en_model_load(dir, &m, &diag);
    ck_assert_msg(rc == 0, "loading %s: %s (%s)", dir, en_strerror(rc), diag.msg);
    return m;
}

en_model *load_with_dev_set(const char *name, en_dataset **d) {
    char dir[1024], data[1024];
    shared_path(dir, sizeof dir, "models/");
    strncat(dir, name, sizeof dir - strlen(dir) - 1);
    en_model *m = load_model_or_fail(dir);
    ck_assert_int_eq(
        en_dataset_load(shared_path(data, sizeof data, "data/sst2/test.tsv"), m, d, NULL), 0);
    return m;
}

int main(void) {
    SRunner *sr = srunner_create(kernels_suite());
    srunner_add_suite(sr, forward_suite());
    srunner_add_suite(sr, dataset_suite());
    srunner_add_suite(sr, shapes_suite());
    srunner_add_suite(sr, files_suite());
    srunner_add_suite(sr, width_suite());
    srunner_add_suite(sr, qgemm_suite());
    srunner_add_suite(sr, precision_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
