#pragma once
/* Writes a random-weight BertForSequenceClassification checkpoint of any shape in the exact
 * Hugging Face layout: config.json, model.safetensors (tensors in name order, header padded to
 * 8 bytes), vocab.txt and tokenizer_config.json. Weights and biases are N(0, 0.02) from a
 * seeded PRNG, LayerNorm gamma 1 and beta 0. The same seed gives the same F32 values whatever
 * the dtype: F16 and BF16 files hold those values rounded to nearest even. Used by the mkmodel
 * tool (benchmarks) and by tests that need small or corrupt checkpoints. */

#include <stdint.h>

#include "engine/en_error.h"

typedef struct mk_opts {
    int layers, hidden, heads, ffn; // required: L, H, h (H % h == 0), I
    int vocab;                      // pieces; 0: the lines of vocab_from, or 1000
    int labels;                     // C, default 2
    int max_pos;                    // max_position_embeddings, default 512
    int type_vocab;                 // type_vocab_size, default 2
    const char *dtype;              // "F32" (default), "F16" or "BF16"
    uint64_t seed;                  // default 1
    const char *vocab_from;         // a vocab.txt to copy, or NULL for synthetic pieces
    int position_ids;               // also write an unused I64 bert.embeddings.position_ids
} mk_opts;

/// Fills `o` with the defaults above and a zero shape (the caller sets the shape).
void mk_opts_init(mk_opts *o);

/// Writes the checkpoint into `dir` (created if missing; existing files are replaced:
/// model.safetensors through a temp file and rename). Returns 0, EN_ERANGE for options out of
/// range, EN_EVOCAB when vocab_from disagrees with `vocab`, or a negated errno; `diag` says
/// which.
int mk_write_model(const char *dir, const mk_opts *o, en_diag *diag);

/// Rounds an F32 value to the nearest F16 / BF16 (ties to even; NaN stays NaN), as the writer
/// stores them.
uint16_t mk_f32_to_f16(float f);
uint16_t mk_f32_to_bf16(float f);
