#include "tc_model.h"

#include <check.h>

#include "engine/en_error.h"

en_model *tc_load_model(const char *dir) {
    en_model *m = NULL;
    en_diag diag = {{0}};
    int rc = en_model_load(dir, &m, &diag);
    ck_assert_msg(rc == 0, "loading %s: %s (%s)", dir, en_strerror(rc), diag.msg);
    ck_assert_ptr_nonnull(m);
    return m;
}
