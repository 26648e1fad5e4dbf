#pragma once
/* FLOPs of one sequence under a schedule, by the formula of shared/spec/pruning.md
 * (multiply-add = 2 FLOPs; softmax, LayerNorm, GELU, scores and embeddings not counted). */

#include "en_model.h"

/// FLOPs of a whole layer's work with n rows in and k rows kept, computing g heads and m FFN
/// neurons (shared/spec/width.md; cfg's heads and ffn for a whole layer).
double en_flops_layer_width(const en_config *cfg, int n, int k, int g, int m);
/// FLOPs of the pooler and classifier head.
double en_flops_head(const en_config *cfg);
/// FLOPs of one sequence of n0 tokens; `ratios` NULL means no pruning.
double en_flops_sequence(const en_config *cfg, int n0, const double *ratios);
/// The same at the widths of m's layers (a narrowed model, en_width.h, counts what it keeps).
double en_flops_model_sequence(const en_model *m, int n0, const double *ratios);
