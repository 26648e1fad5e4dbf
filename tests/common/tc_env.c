#include "tc_env.h"

#include <check.h>
#include <stdio.h>
#include <stdlib.h>

static const char *must_get(const char *name) {
    const char *v = getenv(name);
    ck_assert_msg(v != NULL && v[0], "%s is not set (meson test sets it)", name);
    return v;
}

const char *tc_shared(void) {
    return must_get("SEARCHD_SHARED");
}

const char *tc_demo_model(void) {
    return must_get("SEARCHD_DEMO_MODEL");
}

const char *tc_source_root(void) {
    return must_get("SEARCHD_SOURCE_ROOT");
}

const char *tc_shared_path(char *buf, size_t len, const char *rel) {
    snprintf(buf, len, "%s/%s", tc_shared(), rel);
    return buf;
}

int tc_stride(void) {
    const char *s = getenv("SEARCHD_TEST_STRIDE");
    int v = s ? atoi(s) : 1;
    return v >= 1 ? v : 1;
}
