#pragma once
/* The model families the engine runs, one table row each (shared/spec/families.md): how
 * config.json names the dimensions, what the checkpoint calls each tensor, how the embeddings
 * are made and which classification head sits on top. The encoder layer and the token pruning
 * are the same for all of them. Adding a family is a row here plus whatever is truly new in the
 * embeddings (en_ctx_begin) or the head (en_ctx_finish). Internal to the engine: en_config.c
 * picks the row, en_model.c reads the tensors it names. Also lists the families people ask for
 * that are not supported yet, so the refusal can name them. */

#include "en_model.h"

/* What each tensor of a checkpoint is, whatever the family calls it. Per-layer roles are in
 * the order the arena stores them: query, key and value weights next to each other (one
 * [3H, H] matrix), then their biases. */
typedef enum en_role {
    EN_T_WORD,     // [V, E] word embeddings
    EN_T_POS,      // [P, E] position embeddings
    EN_T_TYPE,     // [T, E] token type embeddings (NULL name: the family has none)
    EN_T_EMB_LN_G, // [E]
    EN_T_EMB_LN_B, // [E]
    EN_T_PROJ_W,   // [H, E] embeddings projection, only when E != H (ELECTRA)
    EN_T_PROJ_B,   // [H]
    EN_T_Q_W,      // per layer from here to EN_T_LN2_B; %d is the layer index
    EN_T_K_W,
    EN_T_V_W,
    EN_T_Q_B,
    EN_T_K_B,
    EN_T_V_B,
    EN_T_O_W,
    EN_T_O_B,
    EN_T_LN1_G,
    EN_T_LN1_B,
    EN_T_W1,
    EN_T_B1,
    EN_T_W2,
    EN_T_B2,
    EN_T_LN2_G,
    EN_T_LN2_B,
    EN_T_HEAD_W, // [H, H] the head's first dense layer (BERT: the pooler)
    EN_T_HEAD_B,
    EN_T_CLS_W, // [C, H] the output layer
    EN_T_CLS_B,
    EN_T_COUNT
} en_role;

/* config.json names of the integer dimensions, in en_config's order. */
typedef enum en_key {
    EN_K_VOCAB,
    EN_K_HIDDEN,
    EN_K_LAYERS,
    EN_K_HEADS,
    EN_K_FFN,
    EN_K_MAX_POS,
    EN_K_TYPE_VOCAB, // NULL: no token types
    EN_K_EMB,        // NULL: embeddings are H wide
    EN_K_COUNT
} en_key;

typedef struct en_family_def {
    en_family family;
    const char *name;       // "DistilBERT", for messages
    const char *model_type; // config.json's model_type
    const char *arch;       // the architecture name in config.json's architectures
    const char *prefix;     // of the encoder's tensors: such names are also found without it
    const char *keys[EN_K_COUNT];
    const char *act_key;     // the activation's field ("hidden_act", "activation")
    const char *eps_key;     // layer_norm_eps's field; NULL: always 1e-12
    int positions_after_pad; // RoBERTa: token i sits at position pad_token_id + 1 + i
    en_head_act head_act;
    const char *tokenizer; // what its checkpoints ship, for messages and the README
    const char *tensor[EN_T_COUNT];
} en_family_def;

/// The row of `f`; NULL when out of range. Static storage.
const en_family_def *en_family_get(en_family f);

/// The row whose model_type is `model_type`, or NULL.
const en_family_def *en_family_find(const char *model_type);

/// A family known not to be supported yet ("ALBERT" for "albert"), or NULL. Static storage.
const char *en_family_unsupported(const char *model_type);

/// "BERT, DistilBERT, RoBERTa, ELECTRA": the supported families for messages. Static storage.
const char *en_family_list(void);
