#pragma once
/* Reads a Hugging Face config.json into an en_config, trusting nothing. The family comes from
 * model_type (en_family.h: BERT, DistilBERT, RoBERTa, ELECTRA, each *ForSequenceClassification),
 * which also says what config.json calls each dimension (DistilBERT: dim, n_layers, ...). Only
 * absolute position embeddings and the exact erf GELU are accepted; any other architecture is
 * refused naming what was found and what is supported. Every dimension must be present, an
 * integer, and within a sane range; the labels come from id2label / label2id / num_labels, which
 * must agree with each other.
 *
 * Fields HF's configs have always written but old configs may lack take the defaults:
 * layer_norm_eps 1e-12 (always 1e-12 for DistilBERT), hidden_act "gelu",
 * position_embedding_type "absolute", RoBERTa's pad_token_id 1.
 * Internal to the engine (used by en_model.c). */

#include "en_error.h"
#include "en_model.h"

/// Parses `path` (a config.json). Errors: -ENOENT and other negated errno (message names the
/// path), EN_EFORMAT (not JSON / not an object), EN_EARCH (not a supported family for
/// sequence classification, naming what was found), EN_ECONFIG (a field missing, of the wrong type
/// or out of range, naming the field). `*cfg` is caller-owned and fully written on success.
int en_config_load(const char *path, en_config *cfg, en_diag *diag);
