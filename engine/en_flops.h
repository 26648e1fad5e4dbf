#pragma once
/* FLOPs of one sequence under a schedule, by the formula of shared/spec/pruning.md
 * (multiply-add = 2 FLOPs; softmax, LayerNorm, GELU, scores and embeddings not counted). */

#include "en_model.h"

/// FLOPs of layer `l`'s work with n rows in and k rows kept.
double en_flops_layer(const en_config *cfg, int n, int k);
/// FLOPs of the pooler and classifier head.
double en_flops_head(const en_config *cfg);
/// FLOPs of one sequence of n0 tokens; `ratios` NULL means no pruning.
double en_flops_sequence(const en_config *cfg, int n0, const double *ratios);
