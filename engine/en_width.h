#pragma once
/* Width pruning (shared/spec/width.md): a layer may keep only some of its attention heads and
 * FFN neurons, each with a factor. A narrowed model is a real, smaller network: the kept rows
 * and columns of Wq, Wk, Wv, Wo, W1, W2 are copied out once, the factors folded into the Wo and
 * W2 columns, and packed for the products, so every forward pass does less work. It is as
 * read-only and thread-safe as the model it comes from. */

#include <stdint.h>

#include "en_model.h"

/* One layer's width: what it keeps, ascending, with one factor each. A half (attention or FFN)
 * may also stay whole: then it shares the base model's weights. */
typedef struct en_layer_width {
    int n_heads;               // g in 1..cfg.heads; 0: the layer stays whole (the rest ignored);
                               // < 0: the attention stays whole, the FFN as below
    const int32_t *heads;      // [g] kept heads, ascending; borrowed
    const float *head_scale;   // [g] factor of the i-th kept head, or NULL for all 1; borrowed
    int n_neurons;             // m in 0..cfg.ffn; < 0: the FFN stays whole
    const int32_t *neurons;    // [m] kept FFN neurons, ascending; borrowed
    const float *neuron_scale; // [m] factor of the i-th kept neuron, or NULL; borrowed
} en_layer_width;

/// Makes the narrowed model: `width` has cfg.layers entries (a layer with n_heads 0 stays whole
/// and shares the base's weights). `*out` is owned by the caller (en_model_free()); it borrows
/// the tokenizer, the embeddings, the head and the whole layers from `m`, which must outlive it.
/// Each layer's width is checked first: counts in range, indices ascending and in range, factors
/// finite. Errors: EN_ESCHEDULE with a message naming the layer (counted from 0), EN_ENOMEM.
int en_model_narrow(const en_model *m, const en_layer_width *width, en_model **out, en_diag *diag);

/// Layer l of `dst` (a model of the same shape) becomes the attention part (heads, Q/K/V, Wo)
/// of layer l of `attn` and the FFN part (W1, W2) of layer l of `ffn`: the pointers are
/// borrowed, so `attn` and `ffn` must outlive `dst`'s use. Lets a search combine narrowed
/// halves without copying weights.
void en_model_compose_layer(en_model *dst, int l, const en_model *attn, const en_model *ffn);
