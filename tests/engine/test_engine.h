#pragma once
/* The engine's Check suites and the helpers they share. */
#include <check.h>

#include "engine/en_dataset.h"
#include "engine/en_model.h"

Suite *kernels_suite(void);
Suite *forward_suite(void);
Suite *dataset_suite(void);
Suite *shapes_suite(void);
Suite *files_suite(void);
Suite *width_suite(void);
Suite *qgemm_suite(void);
Suite *precision_suite(void);

/// `$SEARCHD_SHARED/<rel>` into `buf`; fails the test when SEARCHD_SHARED is unset.
const char *shared_path(char *buf, size_t len, const char *rel);
/// Every how many fixture lines or examples the heavy tests check: $SEARCHD_TEST_STRIDE, 1 by
/// default (test.sh sets 4 for the sanitizer build, where a memory error shows on any input and
/// the release build has already checked every value).
int test_stride(void);
/// Loads a model or fails the test with the loader's message. Owned by the caller.
en_model *load_model_or_fail(const char *dir);
/// Loads $SEARCHD_SHARED/models/<name> and its SST-2 dev set (data/sst2/test.tsv) into `*d`,
/// or fails the test. Both owned by the caller.
en_model *load_with_dev_set(const char *name, en_dataset **d);
