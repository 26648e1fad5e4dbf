#pragma once
/* A fine-tuned Hugging Face BertForSequenceClassification checkpoint held in memory: its
 * configuration, its weights as F32 (converted exactly from F32/F16/BF16 safetensors), and its
 * tokenizer. A loaded model is read-only and may serve any number of threads at once. */

#include <stdint.h>

#include "en_error.h"
#include "en_tokenizer.h"

#define EN_MAX_LAYERS 64
#define EN_MAX_LABELS 64

typedef struct en_config {
    int vocab_size;
    int hidden;      // H
    int layers;      // L
    int heads;       // h; H % h == 0
    int ffn;         // I (intermediate_size)
    int max_pos;     // max_position_embeddings: the longest sequence the model takes
    int type_vocab;  // type_vocab_size
    int num_labels;  // C
    double ln_eps;   // layer_norm_eps
    char labels[EN_MAX_LABELS][64]; // id2label names ("LABEL_i" when config.json has none)
} en_config;

/* Matrices are row-major [out, in], as PyTorch's Linear stores them. */
typedef struct en_layer_weights {
    const float *wqkv;         // [3H, H]: query, key, value weights stacked in that order
    const float *bqkv;         // [3H]
    const float *wo, *bo;      // [H, H], [H]   attention output dense
    const float *ln1_g, *ln1_b; // [H], [H]     attention output LayerNorm
    const float *w1, *b1;      // [I, H], [I]   intermediate dense
    const float *w2, *b2;      // [H, I], [H]   output dense
    const float *ln2_g, *ln2_b; // [H], [H]     output LayerNorm
} en_layer_weights;

/* The same matrices packed once at load into the panels the products read (en_gemm.h). */
typedef struct en_packed_layer {
    const float *wqkv, *wo, *w1, *w2;
} en_packed_layer;

typedef struct en_weights {
    const float *word_emb;       // [vocab, H]
    const float *pos_emb;        // [max_pos, H]
    const float *type_emb;       // [type_vocab, H]
    const float *emb_ln_g, *emb_ln_b; // [H], [H]
    en_layer_weights layer[EN_MAX_LAYERS];
    const float *pool_w, *pool_b; // [H, H], [H]
    const float *cls_w, *cls_b;   // [C, H], [C]
} en_weights;

typedef struct en_model {
    en_config cfg;
    en_weights w;          // pointers into `arena`
    en_tokenizer *tok;     // owned
    float *arena;          // owned: every weight, F32, one allocation
    size_t arena_floats;
    uint64_t weights_hash; // FNV-1a 64 of model.safetensors' bytes: identifies the weights
    char dtype[8];         // "F32", "F16" or "BF16" as stored in the file
    en_packed_layer packed[EN_MAX_LAYERS]; // pointers into `packed_arena`
    float *packed_arena;   // owned: the packed matrices of every layer, one allocation
} en_model;

/// Loads a checkpoint folder: config.json, model.safetensors, vocab.txt and
/// tokenizer_config.json. Trusts nothing: architecture (only BertForSequenceClassification /
/// model_type "bert"; others are refused naming what was found), header length, JSON, dtype,
/// offsets inside the file, overlapping tensors, shapes against config.json, missing tensors.
/// Peak memory is the F32 weights plus a small read buffer (tensors are read with pread, not
/// mapped). On success `*out` is owned by the caller: free with en_model_free().
int en_model_load(const char *dir, en_model **out, en_diag *diag);

/// Packs every layer's matrices into m->packed (called by en_model_load; exposed for models
/// whose weights were set by other means). EN_ENOMEM.
int en_model_pack(en_model *m);

/// Frees a model; NULL is allowed.
void en_model_free(en_model *m);
