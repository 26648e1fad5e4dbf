#pragma once
/* The models of $SEARCHD_SHARED/models that have reference fixtures in
 * $SEARCHD_SHARED/fixtures/<name>/, found at run time so that a model that lands there is
 * tested without a code change. Shared by the test areas that run the fixtures. */

enum { SHARED_MODELS_MAX = 32 };

/// Fills names[0..n) with the model folder names (sorted) that have `<fixture_file>` in their
/// fixtures folder; returns n (0 when SEARCHD_SHARED is unset or holds none). Static storage.
int shared_models(const char *fixture_file, const char *const **names);
