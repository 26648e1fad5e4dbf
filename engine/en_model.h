#pragma once
/* A fine-tuned Hugging Face *ForSequenceClassification checkpoint of a supported family (BERT,
 * DistilBERT, RoBERTa, ELECTRA: en_family.h) held in memory: its configuration, its weights as
 * F32 (converted exactly from F32/F16/BF16 safetensors), and its tokenizer. A loaded model is
 * read-only and may serve any number of threads at once. */

#include <stdint.h>

#include "en_error.h"
#include "en_qgemm.h"
#include "en_tokenizer.h"

#define EN_MAX_LAYERS 64
#define EN_MAX_LABELS 64

/* The supported families (one row each in en_family.c). */
typedef enum en_family {
    EN_FAMILY_BERT,
    EN_FAMILY_DISTILBERT,
    EN_FAMILY_ROBERTA,
    EN_FAMILY_XLM_ROBERTA, // RoBERTa's network; its SentencePiece tokenizer is refused
    EN_FAMILY_ELECTRA,
    EN_FAMILY_COUNT
} en_family;

/* The activation between the head's two dense layers: x = Z_last[0],
 * logits = W_cls act(W_head x + b_head) + b_cls. */
typedef enum en_head_act {
    EN_HEAD_TANH, // BERT (its pooler), RoBERTa
    EN_HEAD_RELU, // DistilBERT
    EN_HEAD_GELU, // ELECTRA (exact erf GELU)
} en_head_act;

typedef struct en_config {
    en_family family;
    en_head_act head_act;
    int vocab_size;
    int hidden;     // H
    int layers;     // L
    int heads;      // h; H % h == 0
    int ffn;        // I (intermediate_size)
    int max_pos;    // the longest sequence the model takes: pos_rows - pos_offset
    int pos_rows;   // max_position_embeddings: rows of the position table
    int pos_offset; // token i takes position row i + pos_offset (RoBERTa: pad_token_id + 1)
    int type_vocab; // type_vocab_size; 0: no token types (DistilBERT), type ids are ignored
    int emb;        // E: width of the embeddings (ELECTRA's embedding_size; else H)
    int num_labels; // C
    double ln_eps;  // layer_norm_eps
    // A checkpoint narrowed by searchctl export (config.json "searchd_width"): the heads and
    // FFN neurons each layer has; else every layer has `heads` and `ffn`.
    int layer_heads[EN_MAX_LAYERS];
    int layer_ffn[EN_MAX_LAYERS];
    char labels[EN_MAX_LABELS][64]; // id2label names ("LABEL_i" when config.json has none)
} en_config;

/* Matrices are row-major [out, in], as PyTorch's Linear stores them. A layer may keep fewer
 * heads and FFN neurons than the configuration says (width pruning, en_width.h): G = heads * d
 * (d = H / cfg.heads) and F = ffn below; a loaded model keeps them all (G = H, F = I). */
typedef struct en_layer_weights {
    int heads;                  // attention heads this layer computes, >= 1
    int ffn;                    // FFN neurons this layer computes, >= 0
    const float *wqkv;          // [3G, H]: query, key, value weights stacked in that order
    const float *bqkv;          // [3G]
    const float *wo, *bo;       // [H, G], [H]   attention output dense
    const float *ln1_g, *ln1_b; // [H], [H]     attention output LayerNorm
    const float *w1, *b1;       // [F, H], [F]   intermediate dense
    const float *w2, *b2;       // [H, F], [H]   output dense
    const float *ln2_g, *ln2_b; // [H], [H]     output LayerNorm
} en_layer_weights;

/* The same matrices packed once at load into the panels the products read (en_gemm.h). */
typedef struct en_packed_layer {
    const float *wqkv, *wo, *w1, *w2;
} en_packed_layer;

/* The same matrices quantized to int8 per output column and packed for en_qgemm (en_qgemm.h). */
typedef struct en_qlayer {
    en_qmat wqkv, wo, w1, w2;
} en_qlayer;

typedef struct en_weights {
    const float *word_emb;            // [vocab, E]
    const float *pos_emb;             // [pos_rows, E]
    const float *type_emb;            // [type_vocab, E]; NULL when type_vocab is 0
    const float *emb_ln_g, *emb_ln_b; // [E], [E]
    const float *proj_w, *proj_b;     // [H, E], [H]: embeddings projection; NULL when E == H
    en_layer_weights layer[EN_MAX_LAYERS];
    const float *pool_w, *pool_b; // [H, H], [H]  the head's dense layer (BERT's pooler)
    const float *cls_w, *cls_b;   // [C, H], [C]
} en_weights;

typedef struct en_model en_model;
struct en_model {
    en_config cfg;
    en_weights w;      // pointers into `arena`
    en_tokenizer *tok; // owned
    float *arena;      // owned: every weight, F32, one allocation
    size_t arena_floats;
    uint64_t weights_hash; // FNV-1a 64 of model.safetensors' bytes: identifies the weights
    char dtype[8];         // "F32", "F16" or "BF16" as stored in the file
    en_packed_layer packed[EN_MAX_LAYERS]; // pointers into `packed_arena`
    const float *pool_packed;              // the head's dense layer (pool_w), packed likewise
    float *packed_arena;              // owned: the packed matrices of every layer, one allocation
    en_qlayer qpacked[EN_MAX_LAYERS]; // pointers into `qpacked_arena`: a quarter of the memory
    void *qpacked_arena;              // owned: the int8 matrices, their scales and column sums
    const en_model *base; // NULL, or the model this one was narrowed from (en_width.h): then
                          // the tokenizer and every weight outside the layers are borrowed
                          // from it, and `arena` / `packed_arena` / `qpacked_arena` hold the
                          // narrowed layers
    en_model *owned_base; // NULL, or `base` when this model owns it (freed with it): a caller
                          // that only keeps the narrowed model
};

/// Loads a checkpoint folder: config.json, model.safetensors and the tokenizer's files
/// (en_tokenizer_load). Trusts nothing: architecture (the families of en_family.h, each
/// *ForSequenceClassification; others are refused naming what was found and what is supported;
/// a folder with only pytorch_model.bin is refused saying how to convert it), header length,
/// JSON, dtype, offsets inside the file, overlapping tensors, shapes against config.json,
/// missing tensors.
/// Peak memory is the F32 weights plus a small read buffer (tensors are read with pread, not
/// mapped). On success `*out` is owned by the caller: free with en_model_free().
int en_model_load(const char *dir, en_model **out, en_diag *diag);

/// Packs every layer's matrices (of the widths in m->w.layer[l]) and the head's dense layer into
/// m->packed / m->pool_packed, and the layers' quantized into m->qpacked (called by
/// en_model_load; exposed for models whose weights were set by other means). EN_ENOMEM.
int en_model_pack(en_model *m);

/// Packs one layer's attention matrices (wqkv, wo) or FFN matrices (w1, w2), at the layer's
/// widths, into `dst` (64-byte aligned, caller-owned) and points `out`'s fields into it; returns
/// the floats used (with dst NULL, only counts them). Internal to the engine (en_model_pack(),
/// en_model_narrow()).
size_t en_pack_attention(const en_config *cfg, const en_layer_weights *w, float *dst,
                         en_packed_layer *out);
size_t en_pack_ffn(const en_config *cfg, const en_layer_weights *w, float *dst,
                   en_packed_layer *out);
/// The same quantized to int8 (en_qgemm.h) into `dst` (bytes, 64-byte aligned); returns the
/// bytes used (with dst NULL, only counts them).
size_t en_qpack_attention(const en_config *cfg, const en_layer_weights *w, char *dst,
                          en_qlayer *out);
size_t en_qpack_ffn(const en_config *cfg, const en_layer_weights *w, char *dst, en_qlayer *out);

/// The model's family as people write it: "BERT", "DistilBERT", "RoBERTa", "ELECTRA", ...
/// Static storage.
const char *en_model_family(const en_model *m);

/// Frees a model; NULL is allowed.
void en_model_free(en_model *m);
