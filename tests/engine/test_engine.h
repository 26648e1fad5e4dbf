#pragma once
/* The engine's Check suites and the helpers they share (paths, temp folders, files and model
 * loading are in tests/common). */
#include <check.h>

#include "engine/en_dataset.h"
#include "engine/en_model.h"
#include "tests/common/tc_env.h"
#include "tests/common/tc_model.h"

Suite *kernels_suite(void);
Suite *forward_suite(void);
Suite *dataset_suite(void);
Suite *shapes_suite(void);
Suite *files_suite(void);
Suite *width_suite(void);
Suite *qgemm_suite(void);
Suite *precision_suite(void);

/// Loads $SEARCHD_SHARED/models/<name> (its folder into `dir`), or fails the test.
en_model *load_shared_model(const char *name, char *dir, size_t len);
/// Loads $SEARCHD_SHARED/models/<name> and its SST-2 dev set (data/sst2/test.tsv) into `*d`,
/// or fails the test. Both owned by the caller.
en_model *load_with_dev_set(const char *name, en_dataset **d);
