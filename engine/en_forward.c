/* The forward pass with token pruning (shared/spec/pruning.md), step by step. */
#include "en_forward.h"

#include <cblas.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "en_kernels.h"

/* Run state: every buffer sized once for max_len rows. */
struct en_ctx {
    const en_model *m;
    int max_len;
    int n0;       // original length of the sequence in flight
    int rows;     // rows of the current state
    float *x;     // [max_len, H]  current hidden state
    float *qkv;   // [max_len, 3H] queries, keys, values of all rows
    float *att;   // [heads, max_len, max_len] attention probabilities
    float *arows; // [max_len, max_len] one head's attention rows for the kept queries
    float *ctx;   // [max_len, H]  context vectors of the kept rows
    float *y;     // [max_len, H]  attention block output of the kept rows
    float *ffn;   // [max_len, I]  FFN intermediate
    double *score; // [max_len]    importance of each row
    int *order;    // [max_len]    candidate rows sorted by importance
    int *kept;     // [max_len]    kept rows, ascending
    int32_t *pos;  // [max_len]    original position of each current row
    int32_t *pos2; // [max_len]
    float *emb;    // [max_len, E] embeddings before the projection to H; NULL when E == H
};

static const char *metric_names[EN_METRIC_COUNT] = {"attn", "power", "cls", "context"};

const char *en_metric_name(en_metric m) {
    return (unsigned)m < EN_METRIC_COUNT ? metric_names[m] : NULL;
}

int en_metric_parse(const char *name, en_metric *out) {
    for (int i = 0; i < EN_METRIC_COUNT; i++)
        if (strcmp(name, metric_names[i]) == 0) {
            *out = (en_metric)i;
            return 0;
        }
    return EN_ESCHEDULE;
}

int en_keep_count(double ratio, int n0, int n_in) {
    double k = floor(ratio * n0 + 0.5);
    if (k < 1)
        return 1;
    if (k > n_in)
        return n_in;
    return (int)k;
}

int en_ratios_check(const double *ratios, int layers, en_diag *diag) {
    for (int l = 0; l < layers; l++) {
        if (!(ratios[l] > 0 && ratios[l] <= 1))
            return en_fail(diag, EN_ESCHEDULE, "ratio %g of layer %d is outside (0, 1]", ratios[l],
                           l);
        if (l > 0 && ratios[l] > ratios[l - 1])
            return en_fail(diag, EN_ESCHEDULE,
                           "ratio %g of layer %d is above layer %d's %g: ratios must not increase",
                           ratios[l], l, l - 1, ratios[l - 1]);
    }
    return 0;
}

void en_set_blas_threads(int n) {
    openblas_set_num_threads(n < 1 ? 1 : n);
}

int en_ctx_new(const en_model *m, int max_len, en_ctx **out) {
    const en_config *cfg = &m->cfg;
    if (max_len < 1 || max_len > cfg->max_pos)
        return EN_ERANGE;
    size_t L = (size_t)max_len, H = (size_t)cfg->hidden;
    en_ctx *c = calloc(1, sizeof *c);
    if (!c)
        return EN_ENOMEM;
    c->m = m;
    c->max_len = max_len;
    c->x = malloc(L * H * sizeof(float));
    c->qkv = malloc(L * 3 * H * sizeof(float));
    c->att = malloc((size_t)cfg->heads * L * L * sizeof(float));
    c->arows = malloc(L * L * sizeof(float));
    c->ctx = malloc(L * H * sizeof(float));
    c->y = malloc(L * H * sizeof(float));
    c->ffn = malloc(L * (size_t)cfg->ffn * sizeof(float));
    c->score = malloc(L * sizeof(double));
    c->order = malloc(L * sizeof(int));
    c->kept = malloc(L * sizeof(int));
    c->pos = malloc(L * sizeof(int32_t));
    c->pos2 = malloc(L * sizeof(int32_t));
    if (cfg->emb != cfg->hidden && !(c->emb = malloc(L * (size_t)cfg->emb * sizeof(float)))) {
        en_ctx_free(c);
        return EN_ENOMEM;
    }
    if (!c->x || !c->qkv || !c->att || !c->arows || !c->ctx || !c->y || !c->ffn || !c->score ||
        !c->order || !c->kept || !c->pos || !c->pos2) {
        en_ctx_free(c);
        return EN_ENOMEM;
    }
    *out = c;
    return 0;
}

void en_ctx_free(en_ctx *c) {
    if (!c)
        return;
    free(c->x);
    free(c->qkv);
    free(c->att);
    free(c->arows);
    free(c->ctx);
    free(c->y);
    free(c->ffn);
    free(c->score);
    free(c->order);
    free(c->kept);
    free(c->pos);
    free(c->pos2);
    free(c->emb);
    free(c);
}

int en_ctx_begin(en_ctx *c, const int32_t *ids, const int32_t *type_ids, int n) {
    const en_config *cfg = &c->m->cfg;
    const en_weights *w = &c->m->w;
    int E = cfg->emb;
    if (n < 1 || n > c->max_len)
        return EN_EINPUT;
    /* word + position (+ token type), E wide; position rows start at pos_offset (RoBERTa) */
    float *x = c->emb ? c->emb : c->x;
    for (int i = 0; i < n; i++) {
        int32_t type = type_ids && w->type_emb ? type_ids[i] : 0; // no types: ignored
        if (ids[i] < 0 || ids[i] >= cfg->vocab_size || type < 0 ||
            (w->type_emb && type >= cfg->type_vocab))
            return EN_EINPUT;
        const float *we = w->word_emb + (size_t)ids[i] * E;
        const float *pe = w->pos_emb + (size_t)(i + cfg->pos_offset) * E;
        float *row = x + (size_t)i * E;
        for (int j = 0; j < E; j++)
            row[j] = we[j] + pe[j];
        if (w->type_emb) {
            const float *te = w->type_emb + (size_t)type * E;
            for (int j = 0; j < E; j++)
                row[j] += te[j];
        }
        c->pos[i] = i;
    }
    en_layernorm(x, n, E, w->emb_ln_g, w->emb_ln_b, cfg->ln_eps);
    /* ELECTRA with E != H: X = emb Wp^T + bp */
    if (c->emb) {
        en_gemm(n, cfg->hidden, E, 1.f, c->emb, E, w->proj_w, E, 1, 0.f, c->x, cfg->hidden);
        en_add_bias(c->x, n, cfg->hidden, w->proj_b);
    }
    c->n0 = n;
    c->rows = n;
    return 0;
}

/* Importance of every row j from the attention probabilities (and values, for `context`). */
static void importance(en_ctx *c, int n, en_metric metric) {
    const en_config *cfg = &c->m->cfg;
    int heads = cfg->heads, d = cfg->hidden / heads, ld3 = 3 * cfg->hidden;
    for (int j = 0; j < n; j++)
        c->score[j] = 0;
    for (int h = 0; h < heads; h++) {
        const float *a = c->att + (size_t)h * n * n;
        if (metric == EN_METRIC_CLS) {
            for (int j = 0; j < n; j++)
                c->score[j] += a[j];
            continue;
        }
        /* column sums of this head, into ctx as scratch (n <= max_len floats) */
        float *col = c->ctx;
        for (int j = 0; j < n; j++)
            col[j] = 0;
        for (int i = 0; i < n; i++) {
            const float *row = a + (size_t)i * n;
            for (int j = 0; j < n; j++)
                col[j] += row[j];
        }
        for (int j = 0; j < n; j++) {
            double s = col[j];
            if (metric == EN_METRIC_POWER)
                s -= a[(size_t)j * n + j];
            else if (metric == EN_METRIC_CONTEXT) {
                const float *v = c->qkv + (size_t)j * ld3 + 2 * cfg->hidden + h * d;
                double norm = 0;
                for (int t = 0; t < d; t++)
                    norm += (double)v[t] * v[t];
                s *= sqrt(norm);
            }
            c->score[j] += s;
        }
    }
}

/* Kept rows: all when keep == n; else row 0 plus the keep-1 best of 1..n-1 (ties to the lower
 * index), in ascending order. An insertion sort of the candidates: n is at most a few hundred
 * and this runs once per layer. */
static void select_rows(en_ctx *c, int n, int keep) {
    if (keep >= n) {
        for (int i = 0; i < n; i++)
            c->kept[i] = i;
        return;
    }
    int *order = c->order;
    int m = 0;
    for (int j = 1; j < n; j++) {
        int at = m++;
        while (at > 0 && c->score[order[at - 1]] < c->score[j])
            order[at] = order[at - 1], at--;
        order[at] = j;
    }
    /* the keep-1 winners, then sorted ascending */
    c->kept[0] = 0;
    for (int i = 0; i < keep - 1; i++) {
        int at = i + 1, v = order[i];
        while (at > 1 && c->kept[at - 1] > v)
            c->kept[at] = c->kept[at - 1], at--;
        c->kept[at] = v;
    }
}

int en_ctx_layer(en_ctx *c, int l, int keep, en_metric metric) {
    const en_config *cfg = &c->m->cfg;
    if (l < 0 || l >= cfg->layers || keep < 1 || keep > c->rows || (unsigned)metric >= EN_METRIC_COUNT)
        return EN_ESCHEDULE;
    const en_layer_weights *w = &c->m->w.layer[l];
    int n = c->rows, H = cfg->hidden, F = cfg->ffn, heads = cfg->heads, d = H / heads;
    int ld3 = 3 * H;

    /* 1. Q, K, V for all n rows */
    en_gemm(n, 3 * H, H, 1.f, c->x, H, w->wqkv, H, 1, 0.f, c->qkv, ld3);
    en_add_bias(c->qkv, n, 3 * H, w->bqkv);

    /* 2. attention probabilities per head: softmax(Q_h K_h^T / sqrt d) */
    float scale = (float)(1.0 / sqrt((double)d));
    for (int h = 0; h < heads; h++) {
        float *a = c->att + (size_t)h * n * n;
        en_gemm(n, n, d, scale, c->qkv + h * d, ld3, c->qkv + H + h * d, ld3, 1, 0.f, a, n);
        en_softmax_rows(a, n, n, n);
    }

    /* 3-4. importance and the kept rows */
    if (keep < n)
        importance(c, n, metric);
    select_rows(c, n, keep);
    int k = keep;

    /* 5. context of the kept queries over all keys and values */
    for (int h = 0; h < heads; h++) {
        const float *a = c->att + (size_t)h * n * n;
        if (k < n) {
            for (int i = 0; i < k; i++)
                memcpy(c->arows + (size_t)i * n, a + (size_t)c->kept[i] * n, n * sizeof(float));
            a = c->arows;
        }
        en_gemm(k, d, n, 1.f, a, n, c->qkv + 2 * H + h * d, ld3, 0, 0.f, c->ctx + h * d, H);
    }

    /* 6. Y = LayerNorm(C Wo^T + bo + X[kept]) */
    for (int i = 0; i < k; i++) {
        memcpy(c->y + (size_t)i * H, c->x + (size_t)c->kept[i] * H, H * sizeof(float));
        c->pos2[i] = c->pos[c->kept[i]];
    }
    en_gemm(k, H, H, 1.f, c->ctx, H, w->wo, H, 1, 1.f, c->y, H);
    en_add_bias(c->y, k, H, w->bo);
    en_layernorm(c->y, k, H, w->ln1_g, w->ln1_b, cfg->ln_eps);

    /* 7. Z = LayerNorm(GELU(Y W1^T + b1) W2^T + b2 + Y), written over X */
    en_gemm(k, F, H, 1.f, c->y, H, w->w1, H, 1, 0.f, c->ffn, F);
    en_add_bias(c->ffn, k, F, w->b1);
    en_gelu(c->ffn, (size_t)k * F);
    memcpy(c->x, c->y, (size_t)k * H * sizeof(float));
    en_gemm(k, H, F, 1.f, c->ffn, F, w->w2, F, 1, 1.f, c->x, H);
    en_add_bias(c->x, k, H, w->b2);
    en_layernorm(c->x, k, H, w->ln2_g, w->ln2_b, cfg->ln_eps);

    /* 8. the layer's output is k rows */
    int32_t *t = c->pos;
    c->pos = c->pos2;
    c->pos2 = t;
    c->rows = k;
    return 0;
}

int en_ctx_finish(en_ctx *c, float *logits) {
    const en_config *cfg = &c->m->cfg;
    const en_weights *w = &c->m->w;
    int H = cfg->hidden;
    /* h = act(Wh Z[0] + bh) (BERT: the pooler, tanh; RoBERTa tanh; ELECTRA GELU; DistilBERT
     * ReLU); logits = Wc h + bc: matrix-vector, done in double */
    float *pooled = c->ctx;
    for (int o = 0; o < H; o++) {
        double acc = w->pool_b[o];
        const float *row = w->pool_w + (size_t)o * H;
        for (int j = 0; j < H; j++)
            acc += (double)row[j] * c->x[j];
        switch (cfg->head_act) {
        case EN_HEAD_TANH:
            acc = tanh(acc);
            break;
        case EN_HEAD_RELU:
            acc = acc > 0 ? acc : 0;
            break;
        case EN_HEAD_GELU:
            acc = 0.5 * acc * (1 + erf(acc / sqrt(2.0)));
            break;
        }
        pooled[o] = (float)acc;
    }
    for (int o = 0; o < cfg->num_labels; o++) {
        double acc = w->cls_b[o];
        const float *row = w->cls_w + (size_t)o * H;
        for (int j = 0; j < H; j++)
            acc += (double)row[j] * pooled[j];
        logits[o] = (float)acc;
    }
    return 0;
}

void en_ctx_state(const en_ctx *c, int *n0, int *rows, const float **x, const int32_t **pos) {
    *n0 = c->n0;
    *rows = c->rows;
    *x = c->x;
    *pos = c->pos;
}

int en_ctx_set_state(en_ctx *c, int n0, int rows, const float *x, const int32_t *pos) {
    if (n0 < 1 || n0 > c->max_len || rows < 1 || rows > n0)
        return EN_EINPUT;
    int H = c->m->cfg.hidden;
    memmove(c->x, x, (size_t)rows * H * sizeof(float));
    memmove(c->pos, pos, (size_t)rows * sizeof(int32_t));
    c->n0 = n0;
    c->rows = rows;
    return 0;
}

int en_forward(en_ctx *c, const int32_t *ids, const int32_t *type_ids, int n, en_metric metric,
               const double *ratios, float *logits, int32_t *kept, int *kept_n) {
    const en_config *cfg = &c->m->cfg;
    if ((unsigned)metric >= EN_METRIC_COUNT)
        return EN_ESCHEDULE;
    if (ratios) {
        int rc = en_ratios_check(ratios, cfg->layers, NULL);
        if (rc)
            return rc;
    }
    int rc = en_ctx_begin(c, ids, type_ids, n);
    if (rc)
        return rc;
    for (int l = 0; l < cfg->layers; l++) {
        int k = ratios ? en_keep_count(ratios[l], n, c->rows) : c->rows;
        rc = en_ctx_layer(c, l, k, metric);
        if (rc)
            return rc;
        if (kept)
            memcpy(kept + (size_t)l * n, c->pos, (size_t)k * sizeof(int32_t));
        if (kept_n)
            kept_n[l] = k;
    }
    return en_ctx_finish(c, logits);
}
