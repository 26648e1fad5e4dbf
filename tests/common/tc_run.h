#pragma once
/* The one way a suite's main() runs its Check suites: output as $CK_VERBOSITY says (CK_ENV),
 * fork mode as $CK_FORK says (each test in its own process; the meson test env sets "yes"),
 * and $CK_RUN_SUITE, $CK_RUN_CASE or $CK_INCLUDE_TAGS to run a part (test.sh's ThreadSanitizer
 * run: the cases tagged "threads"). */
#include <check.h>

/// Runs the suites (a NULL-terminated list, the runner owns them); EXIT_SUCCESS when every
/// test passed, else EXIT_FAILURE.
int tc_run(Suite *first, ...);
