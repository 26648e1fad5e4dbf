#pragma once
/* The schedules library's Check suites and the fixtures they share: the demo model and a small
 * labelled data set, loaded on first use in each test process (tests only read them). */
#include <check.h>

#include "engine/en_dataset.h"

Suite *schedule_suite(void);
Suite *stats_suite(void);
Suite *frontier_suite(void);
Suite *prefix_eval_suite(void);
Suite *latency_suite(void);
Suite *search_suite(void);
Suite *width_suite(void);

/// The demo model ($SEARCHD_DEMO_MODEL); borrowed, loaded on first use, freed at exit.
const en_model *demo_model(void);
/// The SST-2 dev set for the demo model (shared/data/sst2/test.tsv); borrowed, like the model.
const en_dataset *demo_data(void);
/// A view of examples [from, from + count) of demo_data(), every `step`-th one; owned by the
/// caller (en_dataset_free_view).
en_dataset *demo_slice(int from, int count, int step);
