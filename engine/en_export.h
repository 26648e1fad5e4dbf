#pragma once
/* Writes a model as a Hugging Face style checkpoint folder: a narrowed model (en_width.h)
 * becomes a smaller model.safetensors (F32; the kept heads' and neurons' rows and columns,
 * factors folded in) with config.json noting each layer's heads and FFN neurons under
 * "searchd_width", which en_model_load reads back to the same network. A model a user can ship. */

#include "en_model.h"

/// Exports `m` (loaded from, or narrowed from a model loaded from, `src_dir`, whose config.json
/// and tokenizer files are copied) into `out_dir`, created if missing; an existing folder must
/// hold no config.json or model.safetensors. Files are written whole to a temp name and
/// renamed. Errors: -errno (with the path), EN_EINPUT (out_dir not empty), EN_EFORMAT (config).
int en_model_export(const en_model *m, const char *src_dir, const char *out_dir, en_diag *diag);
