#pragma once
/* What a checkpoint folder holds, checked before anything is parsed: the engine reads
 * `model.safetensors` (one file). A folder with PyTorch, TensorFlow or Flax weights only, or
 * with sharded safetensors, is refused with a message that says what was found and how to write
 * model.safetensors; a folder with no weights at all lists what it has. */

#include "en_error.h"

/// 0 when `dir` holds model.safetensors (or cannot be opened: en_model_load() then names the
/// missing file); else EN_EFORMAT (weights in a form not read) or -ENOENT (no weights; the
/// message lists the folder's files).
int en_checkpoint_check(const char *dir, en_diag *diag);
