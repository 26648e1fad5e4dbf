#include <stdio.h>
#include <string.h>

#include "test_engine.h"
#include "tests/common/tc_run.h"

en_model *load_shared_model(const char *name, char *dir, size_t len) {
    tc_shared_path(dir, len, "models/");
    strncat(dir, name, len - strlen(dir) - 1);
    return tc_load_model(dir);
}

en_model *load_with_dev_set(const char *name, en_dataset **d) {
    char dir[1024], data[1024];
    en_model *m = load_shared_model(name, dir, sizeof dir);
    ck_assert_int_eq(
        en_dataset_load(tc_shared_path(data, sizeof data, "data/sst2/test.tsv"), m, d, NULL), 0);
    return m;
}

int main(void) {
    return tc_run(kernels_suite(), forward_suite(), dataset_suite(), shapes_suite(), files_suite(),
                  width_suite(), qgemm_suite(), precision_suite(), NULL);
}
