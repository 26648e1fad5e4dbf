/* The width profile: statistics of heads and neurons on data, their ranking and the
 * least-squares factors; and the bank of narrowed layers a search runs. */
#include "sc_width.h"

#include <cblas.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "engine/en_forward.h"

/* LAPACK (it comes with OpenBLAS): solves A x = b for a symmetric positive definite A. */
void dposv_(const char *uplo, const int *n, const int *nrhs, double *a, const int *lda, double *b,
            const int *ldb, int *info);

static int profile_alloc(const en_config *cfg, sc_width_profile *out);

#define RIDGE 1e-2 // of the mean diagonal: keeps the solve stable when contributions are alike
/* The U^T U of as many layers as fit in this many MB go in one pass over the examples
 * (BERT-base's are 75 MB each: four passes at 256). */
static int stats_mb = 256;

void sc__width_stats_mb(int mb) {
    stats_mb = mb > 0 ? mb : 256;
}

/* The statistics of the layers [l0, l0 + nl), accumulated over rows. `nf` is the FFN width
 * (`I` is complex.h's, which cblas.h brings in). */
typedef struct stats {
    const en_model *m;
    int L, h, d, nf, H;
    int l0, nl;
    double *uu; // [nl][nf][nf] U^T U (upper triangle)
    double *hh; // [L][h][h] sum over rows of O_h . O_h'
    float *tmp; // [nf][nf] one batch's U^T U
    float *o;   // [h][rows][H] one batch's head outputs
    int max_rows;
    int failed;
} stats;

static void observe(void *ud, int l, int rows, const float *ctx, int G, const float *u, int F) {
    stats *st = ud;
    if (st->failed || G != st->h * st->d || F != st->nf || l < st->l0 || l >= st->l0 + st->nl)
        return;
    if (rows > st->max_rows) {
        float *o = realloc(st->o, (size_t)st->h * rows * st->H * sizeof(float));
        if (!o) {
            st->failed = 1;
            return;
        }
        st->o = o;
        st->max_rows = rows;
    }
    int nf = st->nf, H = st->H, h = st->h, d = st->d;
    cblas_ssyrk(CblasRowMajor, CblasUpper, CblasTrans, nf, rows, 1.f, u, nf, 0.f, st->tmp, nf);
    double *uu = st->uu + (size_t)(l - st->l0) * nf * nf;
    for (int i = 0; i < nf; i++)
        for (int j = i; j < nf; j++)
            uu[(size_t)i * nf + j] += st->tmp[(size_t)i * nf + j];
    /* O_h = C_h Wo[:, h]^T: rows x H per head */
    const float *wo = st->m->w.layer[l].wo;
    for (int k = 0; k < h; k++)
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, rows, H, d, 1.f, ctx + k * d, G,
                    wo + k * d, H, 0.f, st->o + (size_t)k * rows * H, H);
    double *hh = st->hh + (size_t)l * h * h;
    size_t len = (size_t)rows * H;
    for (int a = 0; a < h; a++)
        for (int b = a; b < h; b++) {
            double s = 0;
            const float *x = st->o + a * len, *y = st->o + b * len;
            for (size_t t = 0; t < len; t++)
                s += (double)x[t] * y[t];
            hh[a * h + b] += s;
            hh[b * h + a] = hh[a * h + b];
        }
}

/* Indices 0..n-1 by score, highest first (ties to the lower index). */
static void order_by(const double *score, int n, int32_t *out) {
    for (int i = 0; i < n; i++) {
        int at = i;
        while (at > 0 && score[out[at - 1]] < score[i])
            out[at] = out[at - 1], at--;
        out[at] = i;
    }
}

static int cmp_i32(const void *a, const void *b) {
    int32_t x = *(const int32_t *)a, y = *(const int32_t *)b;
    return (x > y) - (x < y);
}

/* Factors for the kept set `keep` (k entries, ascending) from the Gram P (n x n, full
 * symmetric): P_KK s = (P 1)_K with a ridge; all 1 when the solve fails. `a` holds k*k
 * doubles, `s` k. */
static void solve_factors(const double *P, int n, const int32_t *keep, int k, double *a, double *s,
                          float *out) {
    double mean_diag = 0;
    for (int i = 0; i < k; i++)
        mean_diag += P[(size_t)keep[i] * n + keep[i]];
    mean_diag = k ? mean_diag / k : 0;
    for (int i = 0; i < k; i++) {
        const double *row = P + (size_t)keep[i] * n;
        double b = 0;
        for (int j = 0; j < n; j++)
            b += row[j];
        s[i] = b + RIDGE * mean_diag; // the ridge pulls towards 1
        for (int j = 0; j < k; j++)
            a[(size_t)i * k + j] = row[keep[j]] + (i == j ? RIDGE * mean_diag : 0);
    }
    int info = 0, one = 1;
    if (k > 0) dposv_("U", &k, &one, a, &k, s, &k, &info);
    for (int i = 0; i < k; i++)
        out[i] = info == 0 && isfinite(s[i]) ? (float)s[i] : 1.f;
}

int sc_width_neurons(int ffn, int level) {
    return (int)(((long)level * ffn + SC_WIDTH_LEVELS / 2) / SC_WIDTH_LEVELS);
}

/* Ranking and factors of layer l from its statistics. */
static int fit_layer(sc_width_profile *p, const en_model *m, int l, double *uu, const double *hh) {
    int nf = p->ffn, h = p->heads, H = m->cfg.hidden;
    /* P = (U^T U) o (W2^T W2), full symmetric, in place of uu */
    float *ww = malloc((size_t)nf * nf * sizeof(float));
    double *a = malloc((size_t)nf * nf * sizeof(double)), *s = malloc((size_t)nf * sizeof(double));
    double *score = malloc((size_t)nf * sizeof(double));
    int32_t *keep = malloc((size_t)nf * sizeof(int32_t));
    if (!ww || !a || !s || !score || !keep) {
        free(ww), free(a), free(s), free(score), free(keep);
        return EN_ENOMEM;
    }
    cblas_ssyrk(CblasRowMajor, CblasUpper, CblasTrans, nf, H, 1.f, m->w.layer[l].w2, nf, 0.f, ww,
                nf);
    for (int i = 0; i < nf; i++)
        for (int j = i; j < nf; j++) {
            double v = uu[(size_t)i * nf + j] * ww[(size_t)i * nf + j];
            uu[(size_t)i * nf + j] = uu[(size_t)j * nf + i] = v;
        }
    for (int i = 0; i < nf; i++)
        score[i] = uu[(size_t)i * nf + i];
    int32_t *norder = p->neuron_order + (size_t)l * nf;
    order_by(score, nf, norder);
    for (int v = 0; v <= SC_WIDTH_LEVELS; v++) {
        int k = sc_width_neurons(nf, v);
        memcpy(keep, norder, (size_t)k * sizeof *keep);
        qsort(keep, (size_t)k, sizeof *keep, cmp_i32);
        float *f = p->neuron_scale + ((size_t)l * (SC_WIDTH_LEVELS + 1) + v) * nf;
        if (p->rescale & SC_RESCALE_NEURONS)
            solve_factors(uu, nf, keep, k, a, s, f);
        else
            for (int i = 0; i < k; i++)
                f[i] = 1.f;
    }
    for (int i = 0; i < h; i++)
        score[i] = hh[i * h + i];
    int32_t *horder = p->head_order + (size_t)l * h;
    order_by(score, h, horder);
    for (int g = 1; g <= h; g++) {
        memcpy(keep, horder, (size_t)g * sizeof *keep);
        qsort(keep, (size_t)g, sizeof *keep, cmp_i32);
        float *f = p->head_scale + ((size_t)l * h + g - 1) * h;
        if (p->rescale & SC_RESCALE_HEADS)
            solve_factors(hh, h, keep, g, a, s, f);
        else
            for (int i = 0; i < g; i++)
                f[i] = 1.f;
    }
    free(ww), free(a), free(s), free(score), free(keep);
    return 0;
}

enum { BATCH = 32 };

/* The unpruned model over the examples, in ragged batches, up to the group's last layer (only
 * the layers' insides are wanted: no pruning, no head). */
static int run_examples(stats *st, en_ctx *c, const en_dataset *d, const int *index, int count,
                        en_diag *diag) {
    int rc = 0;
    for (int e0 = 0; rc == 0 && e0 < count; e0 += BATCH) {
        int nb = count - e0 < BATCH ? count - e0 : BATCH, lens[BATCH], keep[BATCH];
        const int32_t *ids[BATCH], *types[BATCH];
        en_metric metric[BATCH];
        for (int i = 0; i < nb; i++) {
            const en_example *ex = &d->ex[index ? index[e0 + i] : e0 + i];
            ids[i] = ex->ids, types[i] = ex->type_ids, lens[i] = ex->n;
            metric[i] = EN_METRIC_ATTN;
        }
        rc = en_ctx_begin_batch(c, nb, ids, types, lens);
        for (int l = 0; rc == 0 && l < st->l0 + st->nl; l++) {
            for (int i = 0; i < nb; i++)
                keep[i] = lens[i];
            rc = en_ctx_layer_batch(c, l, keep, metric);
        }
        if (rc == 0 && st->failed) rc = EN_ENOMEM;
        if (rc) en_fail(diag, rc, "width statistics: %s", en_strerror(rc));
    }
    return rc;
}

int sc_width_profile_measure(const en_model *m, const en_dataset *d, const int *index, int n,
                             int max_examples, unsigned rescale, sc_width_profile *out,
                             en_diag *diag) {
    const en_config *cfg = &m->cfg;
    int L = cfg->layers, h = cfg->heads, nf = cfg->ffn, H = cfg->hidden;
    int count = index ? n : d->count;
    if (max_examples > 0 && count > max_examples) count = max_examples;
    int rc = profile_alloc(cfg, out);
    if (rc) return en_fail(diag, rc, "no memory for the width profile");
    out->rescale = rescale, out->examples = count;
    stats st = {.m = m, .L = L, .h = h, .d = H / h, .nf = nf, .H = H};
    size_t one = (size_t)nf * nf * sizeof(double);
    int group = (size_t)stats_mb << 20 > one ? (int)(((size_t)stats_mb << 20) / one) : 1;
    group = group < L ? group : L;
    st.uu = calloc((size_t)group * nf * nf, sizeof(double));
    st.hh = calloc((size_t)L * h * h, sizeof(double));
    st.tmp = malloc((size_t)nf * nf * sizeof(float));
    en_ctx *c = NULL;
    if (!st.uu || !st.hh || !st.tmp)
        rc = en_fail(diag, EN_ENOMEM, "no memory for the width statistics (%d layers of %d x %d)",
                     L, nf, nf);
    if (rc == 0 && (rc = en_ctx_new_batch(m, d->max_n, d->max_n * BATCH, BATCH, &c)) < 0)
        en_fail(diag, rc, "cannot make a run state for the width statistics");
    if (rc == 0) en_ctx_observe(c, observe, &st);
    /* once per group of layers: the examples through the unpruned model, then the fits */
    for (st.l0 = 0; rc == 0 && st.l0 < L; st.l0 += group) {
        st.nl = L - st.l0 < group ? L - st.l0 : group;
        memset(st.uu, 0, (size_t)group * nf * nf * sizeof(double));
        rc = run_examples(&st, c, d, index, count, diag);
        for (int l = st.l0; rc == 0 && l < st.l0 + st.nl; l++)
            if ((rc = fit_layer(out, m, l, st.uu + (size_t)(l - st.l0) * nf * nf,
                                st.hh + (size_t)l * h * h)))
                en_fail(diag, rc, "no memory to fit the width factors");
    }
    en_ctx_free(c);
    free(st.uu), free(st.hh), free(st.tmp), free(st.o);
    if (rc) sc_width_profile_free(out);
    return rc;
}

/* Allocates the arrays of a profile for cfg. */
static int profile_alloc(const en_config *cfg, sc_width_profile *out) {
    int L = cfg->layers, h = cfg->heads, nf = cfg->ffn;
    memset(out, 0, sizeof *out);
    out->layers = L, out->heads = h, out->ffn = nf;
    out->head_order = malloc((size_t)L * h * sizeof(int32_t));
    out->neuron_order = malloc((size_t)L * nf * sizeof(int32_t) + 1);
    out->head_scale = calloc((size_t)L * h * h, sizeof(float));
    out->neuron_scale = calloc((size_t)L * (SC_WIDTH_LEVELS + 1) * nf + 1, sizeof(float));
    if (out->head_order && out->neuron_order && out->head_scale && out->neuron_scale) return 0;
    sc_width_profile_free(out);
    return EN_ENOMEM;
}

int sc_width_profile_copy(const sc_width_profile *p, sc_width_profile *out) {
    en_config cfg = {.layers = p->layers, .heads = p->heads, .ffn = p->ffn};
    if (profile_alloc(&cfg, out)) return EN_ENOMEM;
    size_t L = (size_t)p->layers, h = (size_t)p->heads, nf = (size_t)p->ffn;
    memcpy(out->head_order, p->head_order, L * h * sizeof(int32_t));
    memcpy(out->neuron_order, p->neuron_order, L * nf * sizeof(int32_t));
    memcpy(out->head_scale, p->head_scale, L * h * h * sizeof(float));
    memcpy(out->neuron_scale, p->neuron_scale, L * (SC_WIDTH_LEVELS + 1) * nf * sizeof(float));
    out->rescale = p->rescale;
    out->examples = p->examples;
    return 0;
}

int sc_width_profile_plain(const en_config *cfg, sc_width_profile *out) {
    if (profile_alloc(cfg, out)) return EN_ENOMEM;
    int L = cfg->layers, h = cfg->heads, nf = cfg->ffn;
    for (int l = 0; l < L; l++) {
        for (int i = 0; i < h; i++)
            out->head_order[(size_t)l * h + i] = i;
        for (int i = 0; i < nf; i++)
            out->neuron_order[(size_t)l * nf + i] = i;
    }
    for (size_t i = 0; i < (size_t)L * h * h; i++)
        out->head_scale[i] = 1;
    for (size_t i = 0; i < (size_t)L * (SC_WIDTH_LEVELS + 1) * nf; i++)
        out->neuron_scale[i] = 1;
    return 0;
}

void sc_width_profile_free(sc_width_profile *p) {
    free(p->head_order);
    free(p->neuron_order);
    free(p->head_scale);
    free(p->neuron_scale);
    memset(p, 0, sizeof *p);
}

void sc_width_layer(const sc_width_profile *p, int l, int g, int level, int32_t *heads,
                    float *head_scale, int32_t *neurons, float *neuron_scale, en_layer_width *out) {
    int h = p->heads, nf = p->ffn, k = sc_width_neurons(nf, level);
    memcpy(heads, p->head_order + (size_t)l * h, (size_t)g * sizeof *heads);
    qsort(heads, (size_t)g, sizeof *heads, cmp_i32);
    memcpy(head_scale, p->head_scale + ((size_t)l * h + g - 1) * h, (size_t)g * sizeof(float));
    memcpy(neurons, p->neuron_order + (size_t)l * nf, (size_t)k * sizeof *neurons);
    qsort(neurons, (size_t)k, sizeof *neurons, cmp_i32);
    memcpy(neuron_scale, p->neuron_scale + ((size_t)l * (SC_WIDTH_LEVELS + 1) + level) * nf,
           (size_t)k * sizeof(float));
    *out = (en_layer_width){g, heads, head_scale, k, neurons, neuron_scale};
}

int sc_width_bank_init(sc_width_bank *b, const en_model *m, const sc_width_profile *prof) {
    int L = m->cfg.layers;
    b->m = m;
    b->prof = prof;
    b->attn = calloc((size_t)L * m->cfg.heads, sizeof *b->attn);
    b->ffn = calloc((size_t)L * (SC_WIDTH_LEVELS + 1), sizeof *b->ffn);
    if (!b->attn || !b->ffn) {
        free(b->attn), free(b->ffn);
        return EN_ENOMEM;
    }
    pthread_mutex_init(&b->lock, NULL);
    return 0;
}

void sc_width_bank_fini(sc_width_bank *b) {
    int L = b->m->cfg.layers;
    for (int i = 0; i < L * b->m->cfg.heads; i++)
        en_model_free(b->attn[i]);
    for (int i = 0; i < L * (SC_WIDTH_LEVELS + 1); i++)
        en_model_free(b->ffn[i]);
    free(b->attn), free(b->ffn);
    pthread_mutex_destroy(&b->lock);
}

/* The narrowed model for one half of layer l: attention with g heads (level < 0) or the FFN
 * at `level` (g < 0); the other half stays whole, shared. Called with the lock held. */
static int bank_make(sc_width_bank *b, int l, int g, int level, en_model **slot) {
    const en_config *cfg = &b->m->cfg;
    int h = cfg->heads, nf = cfg->ffn;
    int32_t *ids = malloc((size_t)(h + nf) * sizeof(int32_t));
    float *scale = malloc((size_t)(h + nf) * sizeof(float));
    en_layer_width w[EN_MAX_LAYERS];
    for (int i = 0; i < cfg->layers; i++)
        w[i] = (en_layer_width){.n_heads = 0};
    int rc = EN_ENOMEM;
    if (ids && scale) {
        en_layer_width lw;
        sc_width_layer(b->prof, l, g > 0 ? g : h, level >= 0 ? level : SC_WIDTH_LEVELS, ids, scale,
                       ids + h, scale + h, &lw);
        if (g < 0) lw.n_heads = -1;
        if (level < 0) lw.n_neurons = -1;
        w[l] = lw;
        rc = en_model_narrow(b->m, w, slot, NULL);
    }
    free(ids), free(scale);
    return rc;
}

int sc_width_bank_apply(sc_width_bank *b, en_model *dst, int l, int g, int level) {
    int h = b->m->cfg.heads;
    const en_model *attn = b->m, *ffn = b->m;
    int rc = 0;
    pthread_mutex_lock(&b->lock);
    if (g > 0 && g < h) {
        en_model **slot = &b->attn[(size_t)l * h + g - 1];
        if (!*slot) rc = bank_make(b, l, g, -1, slot);
        attn = *slot;
    }
    if (rc == 0 && level < SC_WIDTH_LEVELS) {
        en_model **slot = &b->ffn[(size_t)l * (SC_WIDTH_LEVELS + 1) + level];
        if (!*slot) rc = bank_make(b, l, -1, level, slot);
        ffn = *slot;
    }
    pthread_mutex_unlock(&b->lock);
    if (rc == 0) en_model_compose_layer(dst, l, attn, ffn);
    return rc;
}

int sc_width_narrow(const en_model *m, const sc_width_profile *p, const sc_schedule *s,
                    en_model **out, en_diag *diag) {
    *out = NULL;
    if (!sc_schedule_has_width(s)) return 0;
    const en_config *cfg = &m->cfg;
    if (!p)
        return en_fail(diag, EN_ESCHEDULE,
                       "the schedule narrows layers (heads:/ffn:), which "
                       "needs the width profile its search measured (a frontier file or the "
                       "daemon's record)");
    if (p->layers != cfg->layers || p->heads != cfg->heads || p->ffn != cfg->ffn)
        return en_fail(diag, EN_ESCHEDULE,
                       "the width profile is for %d layers, %d heads and %d "
                       "neurons; the model has %d, %d and %d",
                       p->layers, p->heads, p->ffn, cfg->layers, cfg->heads, cfg->ffn);
    size_t per = (size_t)cfg->heads + cfg->ffn;
    int32_t *ids = malloc(per * cfg->layers * sizeof *ids);
    float *scale = malloc(per * cfg->layers * sizeof *scale);
    int rc = EN_ENOMEM;
    if (ids && scale) {
        en_layer_width w[EN_MAX_LAYERS];
        for (int l = 0; l < cfg->layers; l++)
            sc_width_layer(p, l, sc_schedule_heads(s, l, cfg->heads),
                           sc_schedule_ffn_level(s, l, SC_WIDTH_LEVELS), ids + per * l,
                           scale + per * l, ids + per * l + cfg->heads,
                           scale + per * l + cfg->heads, &w[l]);
        rc = en_model_narrow(m, w, out, diag);
    } else {
        en_fail(diag, rc, "no memory to narrow the model");
    }
    free(ids);
    free(scale);
    return rc;
}
