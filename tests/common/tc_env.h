#pragma once
/* Where the tests find what they need, from the environment the meson test env sets (root
 * meson.build, test_env): $SEARCHD_SHARED (fixtures, models, data), $SEARCHD_DEMO_MODEL and
 * $SEARCHD_SOURCE_ROOT; and $SEARCHD_TEST_STRIDE. Each fails the running test when its variable
 * is unset. */
#include <stddef.h>

/// $SEARCHD_SHARED: the shared fixtures, models and data.
const char *tc_shared(void);
/// $SEARCHD_DEMO_MODEL: the demo model's folder.
const char *tc_demo_model(void);
/// $SEARCHD_SOURCE_ROOT: the project's source tree.
const char *tc_source_root(void);
/// `$SEARCHD_SHARED/<rel>` into `buf`; returns `buf`.
const char *tc_shared_path(char *buf, size_t len, const char *rel);
/// Every how many fixture lines or examples the heavy tests check: $SEARCHD_TEST_STRIDE, 1 by
/// default (test.sh sets 4 for the sanitizer builds, where a memory error shows on any input and
/// the release build has already checked every value).
int tc_stride(void);
