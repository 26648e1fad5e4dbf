#pragma once
/* Models loaded for a test. */
#include "engine/en_model.h"

/// Loads the model in `dir`, or fails the running test with the loader's code and message.
/// Owned by the caller (en_model_free).
en_model *tc_load_model(const char *dir);
