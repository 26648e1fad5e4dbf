#include "sc_latency.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "engine/en_clock.h"
#include "engine/en_forward.h"
#include "sc_width.h"

#define MAX_PASSES 15
#define SCHEDS_PER_LENGTH 5
/* Sequences run in a row under one schedule, after one untimed: a data set runs one network
 * sentence after sentence, so its weights, not a mix of F32, INT8 and narrowed copies, are what
 * the caches hold. Timed in a mix, layers of a few rows (which mostly stream weights) came out
 * 15-35% slower than they run for a data set. */
#define BLOCK 4

static const int k_lengths[] = {2, 3, 4, 6, 8, 12, 16, 20, 24, 32, 40, 48, 64, 80, 96, 128};
#define N_LENGTHS ((int)(sizeof k_lengths / sizeof k_lengths[0]))

/* The probe's sequences: SST-2-like lengths, the whole network, F32. */
static const int k_probe_lengths[] = {8, 16, 24, 32, 48, 64};
#define N_PROBE ((int)(sizeof k_probe_lengths / sizeof k_probe_lengths[0]))

static uint64_t random_ids(int32_t *ids, int n, int vocab);
static int probe_pass(en_ctx *ctx, const en_model *m, const int32_t *ids, const int32_t *types,
                      int max_len, float *logits, double *ms);
static void terms(int n, int k, double a, double f, double *t);
static double head_frac(const sc_schedule *s, int l, int heads);
static double ffn_frac(const sc_schedule *s, int l, int ffn);
static double median(double *v, int n);
static int fit(const double *x, const double *y, int rows, double *coef);
static void random_schedule(uint64_t *rng, int layers, int full, int narrow, sc_schedule *s);
static double layer_ms(const sc_latency_model *lm, int n, int k, double a, double f,
                       en_precision p);

int sc_latency_calibrate(const en_model *m, int threads, double seconds, sc_latency_model *out,
                         en_diag *diag) {
    const en_config *cfg = &m->cfg;
    int L = cfg->layers;
    int max_len = cfg->max_pos < 128 ? cfg->max_pos : 128;
    memset(out, 0, sizeof *out);
    sc_hw_detect(threads, &out->hw);

    int n_len = 0;
    while (n_len < N_LENGTHS && k_lengths[n_len] <= max_len)
        n_len++;
    int seqs = n_len * SCHEDS_PER_LENGTH, points = seqs * L;
    // The design is fixed (same sequences and schedules every pass) so each point's repeats
    // can be averaged.
    sc_schedule *sched = calloc((size_t)seqs, sizeof *sched);
    int32_t *ids = malloc((size_t)max_len * sizeof *ids), *types = calloc((size_t)max_len, 4);
    double *t_layer = malloc((size_t)MAX_PASSES * points * sizeof *t_layer);
    double *t_fixed = malloc((size_t)MAX_PASSES * seqs * sizeof *t_fixed);
    int *pn = malloc((size_t)points * sizeof *pn), *pk = malloc((size_t)points * sizeof *pk);
    double *pa = malloc((size_t)points * sizeof *pa), *pf = malloc((size_t)points * sizeof *pf);
    uint8_t *pq = malloc((size_t)points); // INT8 layer
    // Narrowed layers of the right sizes (which heads and neurons does not change the time)
    sc_width_profile plain = {0};
    sc_width_bank bank = {0};
    en_model *wm = malloc(sizeof *wm);
    int bank_ok = 0;
    float *logits = malloc((size_t)cfg->num_labels * sizeof *logits);
    en_ctx *ctx = NULL;
    int rc = 0;
    if (!sched || !ids || !types || !t_layer || !t_fixed || !pn || !pk || !pa || !pf || !pq ||
        !logits || !wm || sc_width_profile_plain(cfg, &plain) != 0 ||
        (bank_ok = sc_width_bank_init(&bank, m, &plain) == 0) == 0) {
        rc = en_fail(diag, EN_ENOMEM, "cannot allocate the calibration buffers");
        goto done;
    }
    if ((rc = en_ctx_new(m, max_len, &ctx)) != 0) {
        en_fail(diag, rc, "cannot make a run state for calibration: %s", en_strerror(rc));
        goto done;
    }
    uint64_t rng = random_ids(ids, max_len, cfg->vocab_size);
    for (int q = 0; q < seqs; q++) {
        int b = q / BLOCK;
        if (q % BLOCK == 0)
            random_schedule(&rng, L, b % SCHEDS_PER_LENGTH == 0, b % 2, &sched[q]);
        else
            sched[q] = sched[q - 1];
    }
    // Each length SCHEDS_PER_LENGTH times, spread so a block mixes short and long sequences.
    int stride = n_len % 7 ? 7 : 5;
    *wm = *m;
    wm->arena = wm->packed_arena = NULL;
    wm->base = m;

    en_set_blas_threads(threads > 0 ? threads : 1);
    double t_start = (en_now_seconds() * 1e3), probe_sum = 0;
    int passes = 0;
    while (passes < MAX_PASSES) {
        // One probe per pass: its mean spans the calibration as the points do.
        double probe = 0;
        if ((rc = probe_pass(ctx, m, ids, types, max_len, logits, &probe)) != 0) {
            en_fail(diag, rc, "calibration probe failed: %s", en_strerror(rc));
            break;
        }
        probe_sum += probe;
        for (int q = 0; q < seqs && rc == 0; q++)
            // a block's first sequence runs twice, the first time untimed
            for (int warm = q % BLOCK == 0; warm >= 0 && rc == 0; warm--) {
                int n0 = k_lengths[q * stride % n_len], n_in = n0;
                double t0 = (en_now_seconds() * 1e3);
                rc = en_ctx_begin(ctx, ids, types, n0);
                double fixed = (en_now_seconds() * 1e3) - t0;
                for (int l = 0; l < L && rc == 0; l++) {
                    int k = en_keep_count(sched[q].ratios[l], n0, n_in);
                    rc = sc_width_bank_apply(&bank, wm, l,
                                             sc_schedule_heads(&sched[q], l, cfg->heads),
                                             sc_schedule_ffn_level(&sched[q], l, SC_WIDTH_LEVELS));
                    if (rc == 0) rc = en_ctx_set_model(ctx, wm);
                    if (rc == 0) rc = en_ctx_set_precision(ctx, sched[q].prec);
                    if (rc) break;
                    double a = (en_now_seconds() * 1e3);
                    // as en_forward runs it: the last layer for the [CLS] row alone
                    rc = l == L - 1 ? en_ctx_layer_cls(ctx, l)
                                    : en_ctx_layer(ctx, l, k, sched[q].metric);
                    if (!warm)
                        t_layer[(size_t)passes * points + q * L + l] = (en_now_seconds() * 1e3) - a;
                    pn[q * L + l] = n_in;
                    pk[q * L + l] = k;
                    pa[q * L + l] = head_frac(&sched[q], l, cfg->heads);
                    pf[q * L + l] = ffn_frac(&sched[q], l, cfg->ffn);
                    pq[q * L + l] = sched[q].prec[l] == EN_PREC_INT8;
                    n_in = k;
                }
                double b = (en_now_seconds() * 1e3);
                if (rc == 0) rc = en_ctx_finish(ctx, logits);
                if (!warm)
                    t_fixed[(size_t)passes * seqs + q] = fixed + (en_now_seconds() * 1e3) - b;
            }
        if (rc != 0) {
            en_fail(diag, rc, "calibration run failed: %s", en_strerror(rc));
            break;
        }
        passes++;
        double elapsed = ((en_now_seconds() * 1e3) - t_start) / 1000.0;
        // At least 3 passes to average, unless one pass alone outlasts the whole budget.
        if (elapsed >= seconds && (passes >= 3 || elapsed >= 2 * seconds)) break;
    }
    en_set_blas_threads(1);
    if (rc != 0) goto done;
    out->probe_ms = probe_sum / passes;
    out->calib_seconds = ((en_now_seconds() * 1e3) - t_start) / 1000.0;

    double *x = malloc((size_t)points * SC_LAT_TERMS * sizeof *x);
    double *y = malloc((size_t)points * sizeof *y), *err = malloc((size_t)points * sizeof *err);
    if (!x || !y || !err) {
        free(x), free(y), free(err);
        rc = en_fail(diag, EN_ENOMEM, "cannot allocate the calibration fit");
        goto done;
    }
    for (int i = 0; i < passes * seqs; i++)
        out->fixed_ms += t_fixed[i] / (passes * seqs);
    // Four fits: the layers before the last and the last (its own points, every L-th), each
    // at F32 and at INT8.
    for (int set = 0; set < 4 && rc == 0; set++) {
        int last = set & 1, int8 = set >> 1, rows = 0;
        for (int p = 0; p < points; p++) {
            if ((p % L == L - 1) != last || pq[p] != int8) continue;
            // The mean, not the median: en_eval() measures wall time, which includes the moments
            // another process holds the core, and a mean over repeats sees those too.
            y[rows] = 0;
            for (int r = 0; r < passes; r++)
                y[rows] += t_layer[(size_t)r * points + p] / passes;
            terms(pn[p], pk[p], pa[p], pf[p], &x[rows * SC_LAT_TERMS]);
            rows++;
        }
        rc =
            fit(x, y, rows,
                int8 ? (last ? out->last_int8 : out->layer_int8) : (last ? out->last : out->layer));
    }
    if (rc != 0) {
        en_fail(diag, rc, "latency fit failed (singular calibration design)");
    } else {
        for (int p = 0; p < points; p++) {
            double want = 0;
            for (int r = 0; r < passes; r++)
                want += t_layer[(size_t)r * points + p] / passes;
            en_precision pp = pq[p] ? EN_PREC_INT8 : EN_PREC_F32;
            double got = p % L == L - 1 ? sc_latency_last(out, pn[p], pa[p], pf[p], pp)
                                        : layer_ms(out, pn[p], pk[p], pa[p], pf[p], pp);
            err[p] = fabs(got - want) / want;
        }
        out->fit_error = median(err, points);
    }
    free(x), free(y), free(err);
done:
    en_ctx_free(ctx);
    if (bank_ok) sc_width_bank_fini(&bank);
    sc_width_profile_free(&plain);
    free(sched), free(ids), free(types), free(t_layer), free(t_fixed), free(pn), free(pk);
    free(pa), free(pf), free(pq), free(logits), free(wm);
    return rc;
}

int sc_latency_probe(const en_model *m, int threads, double *ms, en_diag *diag) {
    int max_len = m->cfg.max_pos < 128 ? m->cfg.max_pos : 128;
    int32_t *ids = malloc((size_t)max_len * sizeof *ids), *types = calloc((size_t)max_len, 4);
    float *logits = malloc((size_t)m->cfg.num_labels * sizeof *logits);
    en_ctx *ctx = NULL;
    int rc = 0;
    if (!ids || !types || !logits) {
        rc = en_fail(diag, EN_ENOMEM, "no memory for the probe");
    } else if ((rc = en_ctx_new(m, max_len, &ctx)) != 0) {
        en_fail(diag, rc, "cannot make a run state for the probe: %s", en_strerror(rc));
    } else {
        random_ids(ids, max_len, m->cfg.vocab_size);
        en_set_blas_threads(threads > 0 ? threads : 1);
        rc = probe_pass(ctx, m, ids, types, max_len, logits, ms);
        en_set_blas_threads(1);
        if (rc != 0) en_fail(diag, rc, "latency probe failed: %s", en_strerror(rc));
    }
    en_ctx_free(ctx);
    free(ids), free(types), free(logits);
    return rc;
}

/* The same pseudo-random word pieces every time (the probe relies on it); returns the generator's
 * state for what follows. [CLS]/[SEP] are not needed to time the arithmetic. */
static uint64_t random_ids(int32_t *ids, int n, int vocab) {
    uint64_t rng = 0x9e3779b97f4a7c15ull;
    for (int i = 0; i < n; i++) {
        rng ^= rng << 13, rng ^= rng >> 7, rng ^= rng << 17;
        ids[i] = (int32_t)(rng % (uint64_t)vocab);
    }
    return rng;
}

/* One pass of the probe on `ctx` (switched to `m` at F32): ms of the whole pass. */
static int probe_pass(en_ctx *ctx, const en_model *m, const int32_t *ids, const int32_t *types,
                      int max_len, float *logits, double *ms) {
    en_precision f32[EN_MAX_LAYERS] = {EN_PREC_F32};
    int L = m->cfg.layers, rc = en_ctx_set_model(ctx, m);
    if (rc == 0) rc = en_ctx_set_precision(ctx, f32);
    double t0 = en_now_seconds();
    for (int i = 0; i < N_PROBE && rc == 0; i++) {
        int n = k_probe_lengths[i] < max_len ? k_probe_lengths[i] : max_len;
        rc = en_ctx_begin(ctx, ids, types, n);
        for (int l = 0; l < L && rc == 0; l++)
            rc = l == L - 1 ? en_ctx_layer_cls(ctx, l) : en_ctx_layer(ctx, l, n, EN_METRIC_ATTN);
        if (rc == 0) rc = en_ctx_finish(ctx, logits);
    }
    *ms = (en_now_seconds() - t0) * 1e3;
    return rc;
}

static double apply(const double *coef, int n, int k, double a, double f) {
    double t[SC_LAT_TERMS], ms = 0;
    terms(n, k, a, f, t);
    for (int i = 0; i < SC_LAT_TERMS; i++)
        ms += coef[i] * t[i];
    return ms;
}

/* Predicted ms of one layer (not the last) with n rows in and k kept, computing a fraction `a`
 * of its heads and `f` of its FFN neurons (1, 1: the whole layer), at precision `p`. */
static double layer_ms(const sc_latency_model *lm, int n, int k, double a, double f,
                       en_precision p) {
    return apply(p == EN_PREC_INT8 ? lm->layer_int8 : lm->layer, n, k, a, f);
}

double sc_latency_last(const sc_latency_model *lm, int n, double a, double f, en_precision p) {
    return apply(p == EN_PREC_INT8 ? lm->last_int8 : lm->last, n, 1, a, f);
}

static double head_frac(const sc_schedule *s, int l, int heads) {
    return (double)sc_schedule_heads(s, l, heads) / heads;
}

static double ffn_frac(const sc_schedule *s, int l, int ffn) {
    return ffn > 0
               ? (double)sc_width_neurons(ffn, sc_schedule_ffn_level(s, l, SC_WIDTH_LEVELS)) / ffn
               : 0;
}

double sc_latency_predict(const sc_latency_model *lm, const en_config *cfg, const sc_schedule *s,
                          const int *lengths, int count) {
    if (count <= 0) return 0;
    double total = 0;
    for (int i = 0; i < count; i++) {
        int n0 = lengths[i], n_in = n0;
        double ms = lm->fixed_ms;
        for (int l = 0; l < cfg->layers && l < s->layers; l++) {
            int k = en_keep_count(s->ratios[l], n0, n_in);
            double a = head_frac(s, l, cfg->heads), f = ffn_frac(s, l, cfg->ffn);
            ms += l == cfg->layers - 1 ? sc_latency_last(lm, n_in, a, f, s->prec[l])
                                       : layer_ms(lm, n_in, k, a, f, s->prec[l]);
            n_in = k;
        }
        total += ms;
    }
    return total / count;
}

static void terms(int n, int k, double a, double f, double *t) {
    t[0] = 1;
    t[1] = a;
    t[2] = f;
    t[3] = n * a;
    t[4] = k;
    t[5] = k * a;
    t[6] = k * f;
    t[7] = (double)n * n * a;
    t[8] = (double)k * n * a;
    t[9] = k < n ? 1 : 0;
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

/* Median of v (reordered in place). */
static double median(double *v, int n) {
    if (n <= 0) return 0;
    qsort(v, (size_t)n, sizeof *v, cmp_double);
    return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

/* Solves g[P][P] z = h[P] for the indices in P (np of them) by Gaussian elimination with
 * partial pivoting; z is written at those indices. -1 when the block is singular. */
static int solve_passive(double g[SC_LAT_TERMS][SC_LAT_TERMS], const double *h, const int *P,
                         int np, double *z) {
    enum { T = SC_LAT_TERMS };
    double a[T][T + 1];
    for (int i = 0; i < np; i++) {
        for (int j = 0; j < np; j++)
            a[i][j] = g[P[i]][P[j]];
        a[i][np] = h[P[i]];
    }
    for (int c = 0; c < np; c++) {
        int piv = c;
        for (int r = c + 1; r < np; r++)
            if (fabs(a[r][c]) > fabs(a[piv][c])) piv = r;
        if (fabs(a[piv][c]) < 1e-300) return -1;
        for (int j = 0; j <= np; j++) {
            double t = a[c][j];
            a[c][j] = a[piv][j];
            a[piv][j] = t;
        }
        for (int r = 0; r < np; r++) {
            if (r == c) continue;
            double f = a[r][c] / a[c][c];
            for (int j = c; j <= np; j++)
                a[r][j] -= f * a[c][j];
        }
    }
    for (int i = 0; i < np; i++)
        z[P[i]] = a[i][np] / a[i][i];
    return 0;
}

/* Least squares on relative error with every coefficient >= 0: minimises
 * sum ((x_p . c) / y_p - 1)^2 over c >= 0, by Lawson and Hanson's active-set method on the
 * normal equations, columns scaled to unit maximum (n*n reaches 16384; 1 stays 1). Every term
 * grows with n, k and the widths, so nonnegative coefficients make the prediction grow with them
 * too: a longer sequence or a wider layer is never predicted faster, however noisy the host. */
static int fit(const double *x, const double *y, int rows, double *coef) {
    enum { T = SC_LAT_TERMS };
    double scale[T] = {0}, g[T][T], h[T] = {0};
    memset(g, 0, sizeof g);
    for (int p = 0; p < rows; p++)
        for (int i = 0; i < T; i++)
            if (fabs(x[p * T + i]) > scale[i]) scale[i] = fabs(x[p * T + i]);
    for (int i = 0; i < T; i++)
        if (scale[i] == 0) scale[i] = 1;
    for (int p = 0; p < rows; p++) {
        if (!(y[p] > 0)) continue;
        double r[T];
        for (int i = 0; i < T; i++)
            r[i] = x[p * T + i] / scale[i] / y[p];
        for (int i = 0; i < T; i++) {
            for (int j = 0; j < T; j++)
                g[i][j] += r[i] * r[j];
            h[i] += r[i];
        }
    }
    for (int i = 0; i < T; i++)
        g[i][i] += 1e-9 * (g[i][i] + 1); // keeps an unused term from making it singular
    double c[T] = {0}, z[T], hmax = 0;
    int in[T] = {0}; // 1: in the passive set (free), 0: held at zero
    for (int i = 0; i < T; i++)
        hmax = fmax(hmax, fabs(h[i]));
    if (!(hmax > 0)) return EN_ERANGE;
    for (int iter = 0; iter < 3 * T; iter++) {
        // The gradient of the objective's negative: a held term with w > 0 would lower it.
        int best = -1;
        double wbest = 1e-12 * hmax;
        for (int j = 0; j < T; j++) {
            double w = h[j];
            for (int k = 0; k < T; k++)
                w -= g[j][k] * c[k];
            if (!in[j] && w > wbest) best = j, wbest = w;
        }
        if (best < 0) break;
        in[best] = 1;
        for (;;) { // solve on the passive set; step back while a coefficient would go negative
            int P[T], np = 0;
            for (int j = 0; j < T; j++)
                if (in[j]) P[np++] = j;
            memset(z, 0, sizeof z);
            if (solve_passive(g, h, P, np, z) != 0) return EN_ERANGE;
            double alpha = 1;
            for (int i = 0; i < np; i++)
                if (z[P[i]] <= 0) alpha = fmin(alpha, c[P[i]] / (c[P[i]] - z[P[i]]));
            for (int j = 0; j < T; j++)
                c[j] += alpha * (z[j] - c[j]);
            if (alpha >= 1) break;
            for (int i = 0; i < np; i++)
                if (c[P[i]] <= 1e-15) in[P[i]] = 0, c[P[i]] = 0;
        }
    }
    for (int i = 0; i < T; i++)
        coef[i] = c[i] / scale[i];
    return 0;
}

/* A random non-increasing schedule on the 0.05 grid (all ones when `full`), at random widths
 * when `narrow`. */
static void random_schedule(uint64_t *rng, int layers, int full, int narrow, sc_schedule *s) {
    sc_schedule_full(s, EN_METRIC_ATTN, layers);
    for (int l = 0; l < layers; l++) { // about half the layers INT8
        *rng ^= *rng << 13, *rng ^= *rng >> 7, *rng ^= *rng << 17;
        s->prec[l] = *rng >> 20 & 1 ? EN_PREC_INT8 : EN_PREC_F32;
    }
    for (int l = 0; narrow && l < layers; l++) {
        *rng ^= *rng << 13, *rng ^= *rng >> 7, *rng ^= *rng << 17;
        s->heads_cut[l] = (double)(*rng % 4) / 4 * 0.75;
        s->ffn_cut[l] = (double)((*rng >> 8) % (SC_WIDTH_LEVELS + 1)) / SC_WIDTH_LEVELS;
    }
    if (full) return;
    *rng ^= *rng << 13, *rng ^= *rng >> 7, *rng ^= *rng << 17;
    s->metric = (en_metric)(*rng % EN_METRIC_COUNT);
    int step = 20; // ratio = step / 20
    for (int l = 0; l < layers; l++) {
        *rng ^= *rng << 13, *rng ^= *rng >> 7, *rng ^= *rng << 17;
        step -= (int)(*rng % 7);
        if (step < 1) step = 1;
        s->ratios[l] = step / 20.0;
    }
}
