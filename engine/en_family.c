/* The family table: one row per supported family (shared/spec/families.md). */
#include "en_family.h"

#include <stddef.h>
#include <string.h>

/* BERT's config names, shared by RoBERTa and ELECTRA. */
#define BERT_KEYS                                                                                  \
    [EN_K_VOCAB] = "vocab_size", [EN_K_HIDDEN] = "hidden_size",                                    \
    [EN_K_LAYERS] = "num_hidden_layers", [EN_K_HEADS] = "num_attention_heads",                     \
    [EN_K_FFN] = "intermediate_size", [EN_K_MAX_POS] = "max_position_embeddings",                  \
    [EN_K_TYPE_VOCAB] = "type_vocab_size"

/* BERT's embeddings and encoder layer under prefix P ("bert.", "roberta.", "electra."). */
#define BERT_ENCODER(P)                                                                            \
    [EN_T_WORD] = P "embeddings.word_embeddings.weight",                                           \
    [EN_T_POS] = P "embeddings.position_embeddings.weight",                                        \
    [EN_T_TYPE] = P "embeddings.token_type_embeddings.weight",                                     \
    [EN_T_EMB_LN_G] = P "embeddings.LayerNorm.weight",                                             \
    [EN_T_EMB_LN_B] = P "embeddings.LayerNorm.bias",                                               \
    [EN_T_Q_W] = P "encoder.layer.%d.attention.self.query.weight",                                 \
    [EN_T_K_W] = P "encoder.layer.%d.attention.self.key.weight",                                   \
    [EN_T_V_W] = P "encoder.layer.%d.attention.self.value.weight",                                 \
    [EN_T_Q_B] = P "encoder.layer.%d.attention.self.query.bias",                                   \
    [EN_T_K_B] = P "encoder.layer.%d.attention.self.key.bias",                                     \
    [EN_T_V_B] = P "encoder.layer.%d.attention.self.value.bias",                                   \
    [EN_T_O_W] = P "encoder.layer.%d.attention.output.dense.weight",                               \
    [EN_T_O_B] = P "encoder.layer.%d.attention.output.dense.bias",                                 \
    [EN_T_LN1_G] = P "encoder.layer.%d.attention.output.LayerNorm.weight",                         \
    [EN_T_LN1_B] = P "encoder.layer.%d.attention.output.LayerNorm.bias",                           \
    [EN_T_W1] = P "encoder.layer.%d.intermediate.dense.weight",                                    \
    [EN_T_B1] = P "encoder.layer.%d.intermediate.dense.bias",                                      \
    [EN_T_W2] = P "encoder.layer.%d.output.dense.weight",                                          \
    [EN_T_B2] = P "encoder.layer.%d.output.dense.bias",                                            \
    [EN_T_LN2_G] = P "encoder.layer.%d.output.LayerNorm.weight",                                   \
    [EN_T_LN2_B] = P "encoder.layer.%d.output.LayerNorm.bias"

/* RobertaClassificationHead / ElectraClassificationHead: dense, activation, out_proj. */
#define DENSE_OUT_HEAD                                                                             \
    [EN_T_HEAD_W] = "classifier.dense.weight", [EN_T_HEAD_B] = "classifier.dense.bias",            \
    [EN_T_CLS_W] = "classifier.out_proj.weight", [EN_T_CLS_B] = "classifier.out_proj.bias"

/* RoBERTa's network, also XLM-RoBERTa's (whose tokenizer differs). */
#define ROBERTA_ROW(FAMILY, NAME, TYPE, ARCH, TOKENIZER)                                           \
    {                                                                                              \
        .family = FAMILY, .name = NAME, .model_type = TYPE, .arch = ARCH, .prefix = "roberta.",    \
        .keys = {BERT_KEYS}, .act_key = "hidden_act", .eps_key = "layer_norm_eps",                 \
        .positions_after_pad = 1, .head_act = EN_HEAD_TANH, .tokenizer = TOKENIZER,                \
        .tensor = {BERT_ENCODER("roberta."), DENSE_OUT_HEAD},                                      \
    }

static const en_family_def families[] = {
    {
        .family = EN_FAMILY_BERT,
        .name = "BERT",
        .model_type = "bert",
        .arch = "BertForSequenceClassification",
        .prefix = "bert.",
        .keys = {BERT_KEYS},
        .act_key = "hidden_act",
        .eps_key = "layer_norm_eps",
        .head_act = EN_HEAD_TANH,
        .tokenizer = "WordPiece",
        .tensor = {BERT_ENCODER("bert."), [EN_T_HEAD_W] = "bert.pooler.dense.weight",
                   [EN_T_HEAD_B] = "bert.pooler.dense.bias", [EN_T_CLS_W] = "classifier.weight",
                   [EN_T_CLS_B] = "classifier.bias"},
    },
    {
        .family = EN_FAMILY_DISTILBERT,
        .name = "DistilBERT",
        .model_type = "distilbert",
        .arch = "DistilBertForSequenceClassification",
        .prefix = "distilbert.",
        .keys = {[EN_K_VOCAB] = "vocab_size",
                 [EN_K_HIDDEN] = "dim",
                 [EN_K_LAYERS] = "n_layers",
                 [EN_K_HEADS] = "n_heads",
                 [EN_K_FFN] = "hidden_dim",
                 [EN_K_MAX_POS] = "max_position_embeddings"},
        .act_key = "activation",
        .head_act = EN_HEAD_RELU,
        .tokenizer = "WordPiece",
        .tensor =
            {
                [EN_T_WORD] = "distilbert.embeddings.word_embeddings.weight",
                [EN_T_POS] = "distilbert.embeddings.position_embeddings.weight",
                [EN_T_EMB_LN_G] = "distilbert.embeddings.LayerNorm.weight",
                [EN_T_EMB_LN_B] = "distilbert.embeddings.LayerNorm.bias",
                [EN_T_Q_W] = "distilbert.transformer.layer.%d.attention.q_lin.weight",
                [EN_T_K_W] = "distilbert.transformer.layer.%d.attention.k_lin.weight",
                [EN_T_V_W] = "distilbert.transformer.layer.%d.attention.v_lin.weight",
                [EN_T_Q_B] = "distilbert.transformer.layer.%d.attention.q_lin.bias",
                [EN_T_K_B] = "distilbert.transformer.layer.%d.attention.k_lin.bias",
                [EN_T_V_B] = "distilbert.transformer.layer.%d.attention.v_lin.bias",
                [EN_T_O_W] = "distilbert.transformer.layer.%d.attention.out_lin.weight",
                [EN_T_O_B] = "distilbert.transformer.layer.%d.attention.out_lin.bias",
                [EN_T_LN1_G] = "distilbert.transformer.layer.%d.sa_layer_norm.weight",
                [EN_T_LN1_B] = "distilbert.transformer.layer.%d.sa_layer_norm.bias",
                [EN_T_W1] = "distilbert.transformer.layer.%d.ffn.lin1.weight",
                [EN_T_B1] = "distilbert.transformer.layer.%d.ffn.lin1.bias",
                [EN_T_W2] = "distilbert.transformer.layer.%d.ffn.lin2.weight",
                [EN_T_B2] = "distilbert.transformer.layer.%d.ffn.lin2.bias",
                [EN_T_LN2_G] = "distilbert.transformer.layer.%d.output_layer_norm.weight",
                [EN_T_LN2_B] = "distilbert.transformer.layer.%d.output_layer_norm.bias",
                [EN_T_HEAD_W] = "pre_classifier.weight",
                [EN_T_HEAD_B] = "pre_classifier.bias",
                [EN_T_CLS_W] = "classifier.weight",
                [EN_T_CLS_B] = "classifier.bias",
            },
    },
    ROBERTA_ROW(EN_FAMILY_ROBERTA, "RoBERTa", "roberta", "RobertaForSequenceClassification",
                "byte-level BPE"),
    ROBERTA_ROW(EN_FAMILY_XLM_ROBERTA, "XLM-RoBERTa", "xlm-roberta",
                "XLMRobertaForSequenceClassification", "SentencePiece Unigram (not supported)"),
    {
        .family = EN_FAMILY_ELECTRA,
        .name = "ELECTRA",
        .model_type = "electra",
        .arch = "ElectraForSequenceClassification",
        .prefix = "electra.",
        .keys = {BERT_KEYS, [EN_K_EMB] = "embedding_size"},
        .act_key = "hidden_act",
        .eps_key = "layer_norm_eps",
        .head_act = EN_HEAD_GELU,
        .tokenizer = "WordPiece",
        .tensor = {BERT_ENCODER("electra."), [EN_T_PROJ_W] = "electra.embeddings_project.weight",
                   [EN_T_PROJ_B] = "electra.embeddings_project.bias", DENSE_OUT_HEAD},
    },
};

/* Families people fine-tune that the engine does not run yet. */
static const struct {
    const char *model_type, *name;
} unsupported[] = {
    {"albert", "ALBERT"},
    {"deberta", "DeBERTa"},
    {"deberta-v2", "DeBERTa-v2/v3"},
    {"xlnet", "XLNet"},
    {"modernbert", "ModernBERT"},
    {"mpnet", "MPNet"},
    {"camembert", "CamemBERT"},
    {"xlm", "XLM"},
    {"funnel", "Funnel Transformer"},
    {"longformer", "Longformer"},
    {"bart", "BART"},
    {"t5", "T5"},
};

const en_family_def *en_family_get(en_family f) {
    for (size_t i = 0; i < sizeof families / sizeof families[0]; i++)
        if (families[i].family == f) return &families[i];
    return NULL;
}

const en_family_def *en_family_find(const char *model_type) {
    for (size_t i = 0; i < sizeof families / sizeof families[0]; i++)
        if (strcmp(families[i].model_type, model_type) == 0) return &families[i];
    return NULL;
}

const char *en_family_unsupported(const char *model_type) {
    for (size_t i = 0; i < sizeof unsupported / sizeof unsupported[0]; i++)
        if (strcmp(unsupported[i].model_type, model_type) == 0) return unsupported[i].name;
    return NULL;
}

const char *en_family_list(void) {
    return "BERT, DistilBERT, RoBERTa, ELECTRA (each *ForSequenceClassification)";
}
