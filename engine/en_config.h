#pragma once
/* Reads a Hugging Face config.json into an en_config, trusting nothing. Only
 * BertForSequenceClassification (model_type "bert") with absolute position embeddings and the
 * exact erf GELU is accepted; any other architecture is refused naming what was found. Every
 * dimension must be present, an integer, and within a sane range; the labels come from
 * id2label / label2id / num_labels, which must agree with each other.
 *
 * Fields HF's BertConfig has always written but old configs may lack take BertConfig's
 * defaults: layer_norm_eps 1e-12, hidden_act "gelu", position_embedding_type "absolute".
 * Internal to the engine (used by en_model.c). */

#include "en_error.h"
#include "en_model.h"

/// Parses `path` (a config.json). Errors: -ENOENT and other negated errno (message names the
/// path), EN_EFORMAT (not JSON / not an object), EN_EARCH (not BERT for sequence
/// classification, naming what was found), EN_ECONFIG (a field missing, of the wrong type or
/// out of range, naming the field). `*cfg` is caller-owned and fully written on success.
int en_config_load(const char *path, en_config *cfg, en_diag *diag);

/// Same as en_config_load() but from a JSON text of `len` bytes; `what` names it in messages.
int en_config_parse(const char *json, size_t len, const char *what, en_config *cfg, en_diag *diag);
