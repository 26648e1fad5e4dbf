/* The forward pass with token pruning (shared/spec/pruning.md), step by step. */
#include "en_forward.h"

#include <cblas.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "en_clock.h"
#include "en_gemm.h"
#include "en_kernels.h"
#include "en_qgemm.h"

/* Run state: every buffer sized once, for sequences of up to max_len tokens and batches of up to
 * max_seq sequences holding max_rows rows in all. The rows of a batch are stacked: sequence s
 * holds rows [seq_off[s], seq_off[s] + seq_rows[s]) of x; the products run over all of them at
 * once, attention and pruning over each sequence's own. */
struct en_ctx {
    const en_model *m;
    int max_len, max_rows, max_seq;
    int nseq;         // sequences in flight
    int *seq_off;     // [max_seq] first row of each sequence
    int *seq_rows;    // [max_seq] its current rows
    int *seq_n0;      // [max_seq] its original length
    int *seq_off2;    // [max_seq] the next layer's seq_off
    float *x;         // [max_rows, H]  current hidden state
    float *qkv;       // [max_rows, 3H] queries, keys, values of all rows
    float *att;       // [heads, max_len, max_len] one sequence's attention probabilities
    float *arows;     // [max_len, max_len] one head's attention rows for the kept queries
    float *ctx;       // [max_rows, H]  context vectors of the kept rows
    float *y;         // [max_rows, H]  attention block output of the kept rows
    float *ffn;       // [max_rows, I]  FFN intermediate
    float *kp;        // one head's keys, scaled, packed as the right side of Q K^T
    float *vp;        // one head's values, packed as the right side of A V
    float *col;       // [max_len]      one head's column sums
    double *score;    // [max_len]      importance of each row of one sequence
    int *order;       // [max_len]      candidate rows sorted by importance
    int *kept;        // [max_len]      kept rows, ascending
    int *rank_of;     // [max_len]      importance rank of each row of one sequence
    int32_t *pos;     // [max_rows]     original position of each current row
    int32_t *pos2;    // [max_rows]
    int32_t *rank;    // [max_rows]     importance rank of each current row (0: [CLS]), or -1
    int32_t *rank2;   // [max_rows]
    int want_rank;    // rank rows even where a layer keeps them all (en_ctx_rank_all)
    double *prof;     // NULL, or borrowed [EN_STEP_COUNT]: ns per step (en_ctx_profile)
    en_observer *obs; // NULL, or called with each layer's context and FFN activations
    void *obs_ud;
    float *emb; // [max_len, E]  one sequence's embeddings before the projection to H; NULL
                // when E == H
    en_precision prec[EN_MAX_LAYERS]; // each layer's matrix products (en_ctx_set_precision)
    en_qrows aq; // [max_rows, round4(max(H, I))] a product's activations quantized to u8,
                 // their scales and zero points
};

static const char *precision_names[EN_PREC_COUNT] = {"f32", "int8"};

const char *en_precision_name(en_precision p) {
    return (unsigned)p < EN_PREC_COUNT ? precision_names[p] : NULL;
}

/* The index of `name` among `count` names, or -1. */
static int name_index(const char *const *names, int count, const char *name) {
    for (int i = 0; i < count; i++)
        if (strcmp(name, names[i]) == 0) return i;
    return -1;
}

int en_precision_parse(const char *name, en_precision *out) {
    int i = name_index(precision_names, EN_PREC_COUNT, name);
    if (i < 0) return EN_ESCHEDULE;
    *out = (en_precision)i;
    return 0;
}

int en_ctx_set_precision(en_ctx *c, const en_precision *per_layer) {
    int L = c->m->cfg.layers;
    for (int l = 0; per_layer && l < L; l++)
        if ((unsigned)per_layer[l] >= EN_PREC_COUNT) return EN_ESCHEDULE;
    for (int l = 0; l < L; l++)
        c->prec[l] = per_layer ? per_layer[l] : EN_PREC_F32;
    return 0;
}

/* The four matrices of a layer. */
typedef enum layer_mat { MAT_QKV, MAT_O, MAT_1, MAT_2 } layer_mat;

/* The one place a layer's matrices are multiplied, in the layer's precision: C[m, n] = A W^T
 * + bias (flags as en_gemm_packed), W being columns [j0, j0 + n) (j0 a multiple of 16) of
 * matrix `mat` of layer l over k inputs. */
static void layer_gemm(en_ctx *c, int l, layer_mat mat, int j0, int m, int n, int k, const float *a,
                       int lda, const float *bias, int flags, float *out, int ldc) {
    if (c->prec[l] == EN_PREC_INT8) {
        const en_qlayer *q = &c->m->qpacked[l];
        const en_qmat *w = mat == MAT_QKV ? &q->wqkv
                           : mat == MAT_O ? &q->wo
                           : mat == MAT_1 ? &q->w1
                                          : &q->w2;
        en_qmat cols = en_qmat_cols(w, k, j0);
        en_qgemm(m, n, k, a, lda, &cols, bias, flags, out, ldc, &c->aq);
        return;
    }
    const en_packed_layer *p = &c->m->packed[l];
    const float *w = mat == MAT_QKV ? p->wqkv : mat == MAT_O ? p->wo : mat == MAT_1 ? p->w1 : p->w2;
    en_gemm_packed(m, n, k, a, lda, w + (size_t)j0 * k, bias, flags, out, ldc);
}

static const char *step_names[EN_STEP_COUNT] = {"embed",  "qkv",     "scores",    "softmax",
                                                "select", "context", "gather",    "output",
                                                "ffn_in", "ffn_out", "layernorm", "head"};

const char *en_step_name(en_step s) {
    return (unsigned)s < EN_STEP_COUNT ? step_names[s] : NULL;
}

void en_ctx_profile(en_ctx *c, double *ns) {
    c->prof = ns;
}

/* With profiling on, adds the time since `*t` to step `s` and restarts `*t`. */
static inline void lap(en_ctx *c, double *t, en_step s) {
    if (!c->prof) return;
    double now = en_now_seconds() * 1e9;
    if (*t > 0) c->prof[s] += now - *t;
    *t = now;
}

static const char *metric_names[EN_METRIC_COUNT] = {"attn", "power", "cls", "context"};

const char *en_metric_name(en_metric m) {
    return (unsigned)m < EN_METRIC_COUNT ? metric_names[m] : NULL;
}

int en_metric_parse(const char *name, en_metric *out) {
    int i = name_index(metric_names, EN_METRIC_COUNT, name);
    if (i < 0) return EN_ESCHEDULE;
    *out = (en_metric)i;
    return 0;
}

char *en_metric_list(char *buf, size_t len) {
    size_t used = 0;
    if (len) buf[0] = '\0';
    for (int k = 0; k < EN_METRIC_COUNT && used < len; k++) {
        const char *sep = k == 0 ? "" : k + 1 < EN_METRIC_COUNT ? ", " : " or ";
        int w = snprintf(buf + used, len - used, "%s%s", sep, metric_names[k]);
        if (w < 0) break;
        used += (size_t)w;
    }
    return buf;
}

int en_keep_count(double ratio, int n0, int n_in) {
    double k = floor(ratio * n0 + 0.5);
    if (k < 1) return 1;
    if (k > n_in) return n_in;
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
    en_gemm_set_threads(n);
}

int en_ctx_new(const en_model *m, int max_len, en_ctx **out) {
    return en_ctx_new_batch(m, max_len, max_len, 1, out);
}

int en_ctx_new_batch(const en_model *m, int max_len, int max_rows, int max_seq, en_ctx **out) {
    const en_config *cfg = &m->cfg;
    if (max_len < 1 || max_len > cfg->max_pos || max_rows < max_len || max_seq < 1 ||
        max_seq > max_rows)
        return EN_ERANGE;
    size_t L = (size_t)max_len, R = (size_t)max_rows, H = (size_t)cfg->hidden;
    en_ctx *c = calloc(1, sizeof *c);
    if (!c) return EN_ENOMEM;
    c->m = m;
    c->max_len = max_len;
    c->max_rows = max_rows;
    c->max_seq = max_seq;
    c->seq_off = malloc((size_t)max_seq * sizeof(int));
    c->seq_rows = malloc((size_t)max_seq * sizeof(int));
    c->seq_n0 = malloc((size_t)max_seq * sizeof(int));
    c->seq_off2 = malloc((size_t)max_seq * sizeof(int));
    c->x = malloc(R * H * sizeof(float));
    c->qkv = malloc(R * 3 * H * sizeof(float));
    c->att = malloc((size_t)cfg->heads * L * L * sizeof(float));
    c->arows = malloc(L * L * sizeof(float));
    c->ctx = malloc(R * H * sizeof(float));
    c->y = malloc(R * H * sizeof(float));
    c->ffn = malloc(R * (size_t)cfg->ffn * sizeof(float));
    int d = cfg->hidden / cfg->heads;
    if (posix_memalign((void **)&c->kp, 64, en_packed_floats(max_len, d) * sizeof(float)))
        c->kp = NULL;
    if (posix_memalign((void **)&c->vp, 64, en_packed_floats(d, max_len) * sizeof(float)))
        c->vp = NULL;
    c->col = malloc(L * sizeof(float));
    c->score = malloc(L * sizeof(double));
    c->order = malloc(L * sizeof(int));
    c->kept = malloc(L * sizeof(int));
    c->rank_of = malloc(L * sizeof(int));
    c->pos = malloc(R * sizeof(int32_t));
    c->pos2 = malloc(R * sizeof(int32_t));
    c->rank = malloc(R * sizeof(int32_t));
    c->rank2 = malloc(R * sizeof(int32_t));
    int kmax = en_qk_round(cfg->ffn > cfg->hidden ? cfg->ffn : cfg->hidden);
    c->aq = (en_qrows){malloc(R * (size_t)kmax), malloc(R * sizeof(float)),
                       malloc(R * sizeof(int32_t)), kmax};
    if (cfg->emb != cfg->hidden && !(c->emb = malloc(L * (size_t)cfg->emb * sizeof(float)))) {
        en_ctx_free(c);
        return EN_ENOMEM;
    }
    if (!c->seq_off || !c->seq_rows || !c->seq_n0 || !c->seq_off2 || !c->x || !c->qkv || !c->att ||
        !c->arows || !c->ctx || !c->y || !c->ffn || !c->kp || !c->vp || !c->col || !c->score ||
        !c->order || !c->kept || !c->rank_of || !c->pos || !c->pos2 || !c->rank || !c->rank2 ||
        !c->aq.q || !c->aq.scale || !c->aq.zero) {
        en_ctx_free(c);
        return EN_ENOMEM;
    }
    *out = c;
    return 0;
}

void en_ctx_free(en_ctx *c) {
    if (!c) return;
    free(c->seq_off);
    free(c->aq.q);
    free(c->aq.scale);
    free(c->aq.zero);
    free(c->seq_rows);
    free(c->seq_n0);
    free(c->seq_off2);
    free(c->x);
    free(c->qkv);
    free(c->att);
    free(c->arows);
    free(c->ctx);
    free(c->y);
    free(c->ffn);
    free(c->kp);
    free(c->vp);
    free(c->col);
    free(c->score);
    free(c->order);
    free(c->kept);
    free(c->rank_of);
    free(c->pos);
    free(c->pos2);
    free(c->rank);
    free(c->rank2);
    free(c->emb);
    free(c);
}

int en_ctx_set_model(en_ctx *c, const en_model *m) {
    const en_config *a = &c->m->cfg, *b = &m->cfg;
    if (a->hidden != b->hidden || a->heads != b->heads || a->ffn != b->ffn ||
        a->layers != b->layers || a->emb != b->emb || a->max_pos != b->max_pos)
        return EN_EINPUT;
    c->m = m;
    return 0;
}

void en_ctx_observe(en_ctx *c, en_observer *fn, void *ud) {
    c->obs = fn;
    c->obs_ud = ud;
}

void en_ctx_rank_all(en_ctx *c, int on) {
    c->want_rank = on;
}

/* Embeddings of one sequence into rows [row0, row0 + n) of the state. */
static int embed(en_ctx *c, const int32_t *ids, const int32_t *type_ids, int n, int row0) {
    const en_config *cfg = &c->m->cfg;
    const en_weights *w = &c->m->w;
    int E = cfg->emb;
    if (n < 1 || n > c->max_len) return EN_EINPUT;
    /* word + position (+ token type), E wide; position rows start at pos_offset (RoBERTa) */
    float *x = c->emb ? c->emb : c->x + (size_t)row0 * cfg->hidden;
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
        c->pos[row0 + i] = i;
        c->rank[row0 + i] = -1;
    }
    en_layernorm(x, n, E, w->emb_ln_g, w->emb_ln_b, cfg->ln_eps);
    /* ELECTRA with E != H: X = emb Wp^T + bp */
    if (c->emb) {
        float *dst = c->x + (size_t)row0 * cfg->hidden;
        en_gemm(n, cfg->hidden, E, 1.f, c->emb, E, w->proj_w, E, 1, 0.f, dst, cfg->hidden);
        en_add_bias(dst, n, cfg->hidden, w->proj_b);
    }
    return 0;
}

int en_ctx_begin(en_ctx *c, const int32_t *ids, const int32_t *type_ids, int n) {
    return en_ctx_begin_batch(c, 1, &ids, type_ids ? &type_ids : NULL, &n);
}

int en_ctx_begin_batch(en_ctx *c, int nseq, const int32_t *const *ids,
                       const int32_t *const *type_ids, const int *n) {
    if (nseq < 1 || nseq > c->max_seq) return EN_EINPUT;
    double t = 0;
    lap(c, &t, EN_STEP_EMBED);
    int rows = 0;
    for (int s = 0; s < nseq; s++) {
        if (n[s] < 1 || n[s] > c->max_len || n[s] > c->max_rows - rows) return EN_EINPUT;
        int rc = embed(c, ids[s], type_ids ? type_ids[s] : NULL, n[s], rows);
        if (rc) return rc;
        c->seq_off[s] = rows;
        c->seq_rows[s] = c->seq_n0[s] = n[s];
        rows += n[s];
    }
    c->nseq = nseq;
    lap(c, &t, EN_STEP_EMBED);
    return 0;
}

/* Importance of every row j of one sequence (its Q, K, V at `qkv`) from the attention
 * probabilities (and values, for `context`). */
static void importance(en_ctx *c, const en_layer_weights *w, const float *qkv, int n,
                       en_metric metric) {
    const en_config *cfg = &c->m->cfg;
    int heads = w->heads, d = cfg->hidden / cfg->heads, G = heads * d, ld3 = 3 * G;
    for (int j = 0; j < n; j++)
        c->score[j] = 0;
    for (int h = 0; h < heads; h++) {
        const float *a = c->att + (size_t)h * n * n;
        if (metric == EN_METRIC_CLS) {
            for (int j = 0; j < n; j++)
                c->score[j] += a[j];
            continue;
        }
        /* column sums of this head */
        float *col = c->col;
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
                const float *v = qkv + (size_t)j * ld3 + 2 * G + h * d;
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
 * index), in ascending order. With `ranked` (scores computed), every row's rank goes to rank_of:
 * 0 for row 0, i + 1 for the i-th best, so the kept set of any smaller keep is the rows of rank
 * < keep. An insertion sort of the candidates: n is at most a few hundred and this runs once per
 * layer. */
static void select_rows(en_ctx *c, int n, int keep, int ranked) {
    if (!ranked) {
        for (int i = 0; i < n; i++) {
            c->kept[i] = i;
            c->rank_of[i] = -1;
        }
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
    c->rank_of[0] = 0;
    for (int i = 0; i < n - 1; i++)
        c->rank_of[order[i]] = i + 1;
    /* the keep-1 winners, then sorted ascending */
    c->kept[0] = 0;
    for (int i = 0; i < keep - 1; i++) {
        int at = i + 1, v = order[i];
        while (at > 1 && c->kept[at - 1] > v)
            c->kept[at] = c->kept[at - 1], at--;
        c->kept[at] = v;
    }
}

/* Steps 2-5 and the gathers of one sequence: its n rows of Q, K, V at `qkv`, its rows of X at
 * `x`; writes the context of its k kept rows to `ctx`, their residual to `y`, their positions
 * and ranks to `pos2`/`rank2`. */
static void attend(en_ctx *c, const en_layer_weights *w, const float *qkv, const float *x,
                   const int32_t *pos, int n, int k, en_metric metric, float *ctx, float *y,
                   int32_t *pos2, int32_t *rank2, double *t) {
    const en_config *cfg = &c->m->cfg;
    int H = cfg->hidden, heads = w->heads, d = H / cfg->heads, G = heads * d, ld3 = 3 * G;

    /* 2. attention probabilities per head: softmax(Q_h K_h^T / sqrt d), the scale folded into
     * the packed keys */
    float scale = (float)(1.0 / sqrt((double)d));
    for (int h = 0; h < heads; h++) {
        float *a = c->att + (size_t)h * n * n;
        en_pack_rows(qkv + G + h * d, ld3, n, d, scale, c->kp);
        en_gemm_packed(n, n, d, qkv + h * d, ld3, c->kp, NULL, 0, a, n);
        lap(c, t, EN_STEP_SCORES);
        en_softmax_rows(a, n, n, n);
        lap(c, t, EN_STEP_SOFTMAX);
    }

    /* 3-4. importance and the kept rows */
    int ranked = k < n || (c->want_rank && n > 1);
    if (ranked) importance(c, w, qkv, n, metric);
    select_rows(c, n, k, ranked);
    lap(c, t, EN_STEP_SELECT);

    /* 5. context of the kept queries over all keys and values */
    for (int h = 0; h < heads; h++) {
        const float *a = c->att + (size_t)h * n * n;
        if (k < n) {
            for (int i = 0; i < k; i++)
                memcpy(c->arows + (size_t)i * n, a + (size_t)c->kept[i] * n, n * sizeof(float));
            a = c->arows;
        }
        en_pack_cols(qkv + 2 * G + h * d, ld3, n, d, c->vp);
        en_gemm_packed(k, d, n, a, n, c->vp, NULL, 0, ctx + h * d, G);
    }
    lap(c, t, EN_STEP_CONTEXT);

    /* the residual of the kept rows */
    for (int i = 0; i < k; i++) {
        memcpy(y + (size_t)i * H, x + (size_t)c->kept[i] * H, H * sizeof(float));
        pos2[i] = pos[c->kept[i]];
        rank2[i] = c->rank_of[c->kept[i]];
    }
    lap(c, t, EN_STEP_GATHER);
}

/* Steps 6-8 over the `kept` rows of every sequence, their context in ctx and residual in y:
 * attention output, LayerNorm, FFN, LayerNorm into x; then the kept rows become the state. */
static void finish_rows(en_ctx *c, int l, int kept, double *t) {
    const en_config *cfg = &c->m->cfg;
    const en_layer_weights *w = &c->m->w.layer[l];
    int H = cfg->hidden, G = w->heads * (H / cfg->heads), F = w->ffn;

    /* 6. Y = LayerNorm(X[kept] + C Wo^T + bo) */
    layer_gemm(c, l, MAT_O, 0, kept, H, G, c->ctx, G, w->bo, EN_GEMM_ACCUMULATE, c->y, H);
    lap(c, t, EN_STEP_OUTPUT);
    en_layernorm(c->y, kept, H, w->ln1_g, w->ln1_b, cfg->ln_eps);
    lap(c, t, EN_STEP_LAYERNORM);

    /* 7. Z = LayerNorm(Y + GELU(Y W1^T + b1) W2^T + b2), written over X; a layer without
     * neurons adds b2 alone */
    memcpy(c->x, c->y, (size_t)kept * H * sizeof(float));
    if (F > 0) {
        layer_gemm(c, l, MAT_1, 0, kept, F, H, c->y, H, w->b1, EN_GEMM_GELU, c->ffn, F);
        lap(c, t, EN_STEP_FFN_IN);
        if (c->obs) c->obs(c->obs_ud, l, kept, c->ctx, G, c->ffn, F);
        layer_gemm(c, l, MAT_2, 0, kept, H, F, c->ffn, F, w->b2, EN_GEMM_ACCUMULATE, c->x, H);
    } else
        en_add_bias(c->x, kept, H, w->b2);
    lap(c, t, EN_STEP_FFN_OUT);
    en_layernorm(c->x, kept, H, w->ln2_g, w->ln2_b, cfg->ln_eps);
    lap(c, t, EN_STEP_LAYERNORM);

    /* 8. the layer's output is the kept rows */
    int32_t *swap = c->pos;
    c->pos = c->pos2;
    c->pos2 = swap;
    swap = c->rank;
    c->rank = c->rank2;
    c->rank2 = swap;
    int *off = c->seq_off;
    c->seq_off = c->seq_off2;
    c->seq_off2 = off;
}

int en_ctx_layer_cls(en_ctx *c, int l) {
    const en_config *cfg = &c->m->cfg;
    if (l < 0 || l >= cfg->layers) return EN_ESCHEDULE;
    const en_layer_weights *w = &c->m->w.layer[l];
    int H = cfg->hidden, heads = w->heads, d = H / cfg->heads, G = heads * d, ld3 = 3 * G;
    int rows = 0;
    for (int s = 0; s < c->nseq; s++)
        rows += c->seq_rows[s];
    double t = 0;
    lap(c, &t, EN_STEP_QKV);

    /* 1. K and V of every row, Q of the [CLS] rows only. The K and V panels are the tail of
     * the packed [3G, H] weight when G is a multiple of the panel width; else all of Q, K, V. */
    const float *q = c->ffn; // the queries, in FFN scratch until step 7 (c->y holds their X)
    int ldq = G, split = G % EN_PANEL == 0;
    if (split)
        layer_gemm(c, l, MAT_QKV, G, rows, 2 * G, H, c->x, H, w->bqkv + G, 0, c->qkv + G, ld3);
    else
        layer_gemm(c, l, MAT_QKV, 0, rows, 3 * G, H, c->x, H, w->bqkv, 0, c->qkv, ld3);
    for (int s = 0; s < c->nseq; s++) {
        int from = c->seq_off[s];
        memcpy(c->y + (size_t)s * H, c->x + (size_t)from * H, H * sizeof(float));
        c->pos2[s] = c->pos[from];
        c->rank2[s] = 0;
        c->seq_off2[s] = s;
    }
    if (split) layer_gemm(c, l, MAT_QKV, 0, c->nseq, G, H, c->y, H, w->bqkv, 0, c->ffn, G);
    lap(c, &t, EN_STEP_QKV);

    /* 2 and 5 for the one query of each sequence */
    float scale = (float)(1.0 / sqrt((double)d));
    for (int s = 0; s < c->nseq; s++) {
        int n = c->seq_rows[s];
        const float *kv = c->qkv + (size_t)c->seq_off[s] * ld3;
        const float *qs = split ? q + (size_t)s * ldq : kv;
        for (int h = 0; h < heads; h++) {
            en_pack_rows(kv + G + h * d, ld3, n, d, scale, c->kp);
            en_gemm_packed(1, n, d, qs + h * d, ld3, c->kp, NULL, 0, c->att, n);
            lap(c, &t, EN_STEP_SCORES);
            en_softmax_rows(c->att, 1, n, n);
            lap(c, &t, EN_STEP_SOFTMAX);
            en_pack_cols(kv + 2 * G + h * d, ld3, n, d, c->vp);
            en_gemm_packed(1, d, n, c->att, n, c->vp, NULL, 0, c->ctx + (size_t)s * G + h * d, G);
            lap(c, &t, EN_STEP_CONTEXT);
        }
    }
    finish_rows(c, l, c->nseq, &t);
    for (int s = 0; s < c->nseq; s++)
        c->seq_rows[s] = 1;
    return 0;
}

int en_ctx_layer(en_ctx *c, int l, int keep, en_metric metric) {
    if (c->nseq != 1) return EN_EINPUT;
    return en_ctx_layer_batch(c, l, &keep, &metric);
}

int en_ctx_layer_batch(en_ctx *c, int l, const int *keep, const en_metric *metric) {
    const en_config *cfg = &c->m->cfg;
    if (l < 0 || l >= cfg->layers) return EN_ESCHEDULE;
    int rows = 0, kept = 0;
    for (int s = 0; s < c->nseq; s++) {
        if (keep[s] < 1 || keep[s] > c->seq_rows[s] || (unsigned)metric[s] >= EN_METRIC_COUNT)
            return EN_ESCHEDULE;
        rows += c->seq_rows[s];
        kept += keep[s];
    }
    const en_layer_weights *w = &c->m->w.layer[l];
    int H = cfg->hidden, G = w->heads * (H / cfg->heads), ld3 = 3 * G;
    double t = 0;
    lap(c, &t, EN_STEP_QKV);

    /* 1. Q, K, V for all rows of all sequences (of the heads this layer keeps) */
    layer_gemm(c, l, MAT_QKV, 0, rows, 3 * G, H, c->x, H, w->bqkv, 0, c->qkv, ld3);
    lap(c, &t, EN_STEP_QKV);

    /* 2-5. attention, pruning and context, each sequence over its own rows; the kept rows
     * stacked in the same order */
    for (int s = 0, to = 0; s < c->nseq; to += keep[s], s++) {
        int from = c->seq_off[s];
        attend(c, w, c->qkv + (size_t)from * ld3, c->x + (size_t)from * H, c->pos + from,
               c->seq_rows[s], keep[s], metric[s], c->ctx + (size_t)to * G, c->y + (size_t)to * H,
               c->pos2 + to, c->rank2 + to, &t);
        c->seq_off2[s] = to;
    }

    finish_rows(c, l, kept, &t);
    for (int s = 0; s < c->nseq; s++)
        c->seq_rows[s] = keep[s];
    return 0;
}

int en_ctx_finish(en_ctx *c, float *logits) {
    const en_config *cfg = &c->m->cfg;
    const en_weights *w = &c->m->w;
    int H = cfg->hidden;
    double t = 0;
    lap(c, &t, EN_STEP_HEAD);
    /* h = act(Wh Z[0] + bh) (BERT: the pooler, tanh; RoBERTa tanh; ELECTRA GELU; DistilBERT
     * ReLU), the product on the packed kernel; logits = Wc h + bc, a few dot products in
     * double */
    float *pooled = c->ctx;
    en_gemm_packed(1, H, H, c->x, H, c->m->pool_packed, w->pool_b, 0, pooled, H);
    for (int o = 0; o < H; o++) {
        double acc = pooled[o];
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
    lap(c, &t, EN_STEP_HEAD);
    return 0;
}

int en_ctx_finish_batch(en_ctx *c, float *logits) {
    int H = c->m->cfg.hidden, C = c->m->cfg.num_labels;
    for (int s = 0; s < c->nseq; s++) {
        /* the head reads row 0; the earlier sequences are done with it */
        if (c->seq_off[s] != 0) memcpy(c->x, c->x + (size_t)c->seq_off[s] * H, H * sizeof(float));
        int rc = en_ctx_finish(c, logits + (size_t)s * C);
        if (rc) return rc;
    }
    return 0;
}

void en_ctx_state(const en_ctx *c, int *n0, int *rows, const float **x, const int32_t **pos) {
    *n0 = c->seq_n0[0];
    *rows = c->seq_rows[0];
    *x = c->x;
    *pos = c->pos;
}

const int32_t *en_ctx_rank(const en_ctx *c) {
    return c->rank;
}

void en_ctx_seq_state(const en_ctx *c, int s, int *rows, const float **x, const int32_t **pos,
                      const int32_t **rank) {
    int off = c->seq_off[s], H = c->m->cfg.hidden;
    *rows = c->seq_rows[s];
    *x = c->x + (size_t)off * H;
    *pos = c->pos + off;
    *rank = c->rank + off;
}

int en_ctx_set_state_batch(en_ctx *c, int nseq, const int *n0, const int *rows,
                           const float *const *x, const int32_t *const *pos) {
    if (nseq < 1 || nseq > c->max_seq) return EN_EINPUT;
    int H = c->m->cfg.hidden, total = 0;
    for (int s = 0; s < nseq; s++) {
        if (n0[s] < 1 || n0[s] > c->max_len || rows[s] < 1 || rows[s] > n0[s] ||
            rows[s] > c->max_rows - total)
            return EN_EINPUT;
        memcpy(c->x + (size_t)total * H, x[s], (size_t)rows[s] * H * sizeof(float));
        memcpy(c->pos + total, pos[s], (size_t)rows[s] * sizeof(int32_t));
        for (int i = 0; i < rows[s]; i++)
            c->rank[total + i] = -1;
        c->seq_off[s] = total;
        c->seq_rows[s] = rows[s];
        c->seq_n0[s] = n0[s];
        total += rows[s];
    }
    c->nseq = nseq;
    return 0;
}

int en_ctx_set_state(en_ctx *c, int n0, int rows, const float *x, const int32_t *pos) {
    if (n0 < 1 || n0 > c->max_len || rows < 1 || rows > n0) return EN_EINPUT;
    int H = c->m->cfg.hidden;
    memmove(c->x, x, (size_t)rows * H * sizeof(float));
    memmove(c->pos, pos, (size_t)rows * sizeof(int32_t));
    for (int i = 0; i < rows; i++)
        c->rank[i] = -1;
    c->nseq = 1;
    c->seq_off[0] = 0;
    c->seq_n0[0] = n0;
    c->seq_rows[0] = rows;
    return 0;
}

int en_state_keep_top(const float *x, const int32_t *pos, const int32_t *rank, int rows, int H,
                      int keep, float *x_out, int32_t *pos_out) {
    if (keep < 1 || keep > rows) return EN_ESCHEDULE;
    int k = 0;
    for (int i = 0; i < rows; i++) {
        if (rank[i] < 0 && keep < rows)
            return EN_EINPUT; // not ranked: the layer kept every row without scoring them
        if (keep == rows || rank[i] < keep) {
            memmove(x_out + (size_t)k * H, x + (size_t)i * H, (size_t)H * sizeof(float));
            pos_out[k++] = pos[i];
        }
    }
    return k == keep ? 0 : EN_EINPUT;
}

int en_forward(en_ctx *c, const int32_t *ids, const int32_t *type_ids, int n, en_metric metric,
               const double *ratios, float *logits, int32_t *kept, int *kept_n) {
    const en_config *cfg = &c->m->cfg;
    if ((unsigned)metric >= EN_METRIC_COUNT) return EN_ESCHEDULE;
    if (ratios) {
        int rc = en_ratios_check(ratios, cfg->layers, NULL);
        if (rc) return rc;
    }
    int rc = en_ctx_begin(c, ids, type_ids, n);
    if (rc) return rc;
    for (int l = 0; l < cfg->layers; l++) {
        int k = ratios ? en_keep_count(ratios[l], n, c->seq_rows[0]) : c->seq_rows[0];
        /* the last layer's kept rows other than [CLS] cannot change the logits */
        int last = l == cfg->layers - 1 && !kept && !kept_n;
        rc = last ? en_ctx_layer_cls(c, l) : en_ctx_layer(c, l, k, metric);
        if (rc) return rc;
        if (kept) memcpy(kept + (size_t)l * n, c->pos, (size_t)k * sizeof(int32_t));
        if (kept_n) kept_n[l] = k;
    }
    return en_ctx_finish(c, logits);
}
