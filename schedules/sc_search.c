#include "sc_search.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "engine/en_clock.h"
#include "engine/en_flops.h"
#include "sc_defaults.h"
#include "sc_error.h"
#include "sc_evolve.h"
#include "sc_prefix_eval.h"
#include "sc_stats.h"
#include "sc_width.h"

/* A schedule the search has looked at, with its results on the search part. */
typedef struct cand {
    sc_schedule s;
    uint64_t hash;
    double flops, lat; // on the search part (latency predicted; 0 without a model)
    double cost;       // what the search explores by: flops, with INT8 layers discounted
                       // (int8_weight)
    int family;        // a simple-family seed
    int full;          // evaluated on the whole search part
    uint8_t *ok;       // [ns]: right or wrong, in search-part order
    double acc, drop, drop_upper, score;
} cand;

typedef struct search {
    const en_model *m;
    const sc_search_opts *o;
    int threads;
    const en_dataset *sd, *hd; // where the search and held-out examples live
    int *si, ns, *hi, nh;      // their indices; the search part in a seeded random order
    int *slen, *hlen;
    double sbase, hbase;  // unpruned mean FLOPs on each part
    uint8_t *s_ok, *h_ok; // unpruned outcomes
    int n1;               // the first subset: candidates losing clearly on it stop there
    cand *c;
    int nc, cap;
    sc__rng rng;
    sc_search_stats *st;
    int done, total;
    sc_prefix_cache *cache;  // the search part's states across generations; may be NULL
    sc_width_profile *width; // owned: with opts->width, the profile the search narrows with
    sc_width_bank bank;      // its narrowed layers (bank.m is NULL without width)
    double int8_weight;      // an INT8 layer's cost relative to an F32 one in `cost`
    double anchor_cost; // the cheapest answer to max_drop so far, and generations since it fell
    int stale;
    en_diag *diag;
} search;

/* Generations without a cheaper answer before the search stops (deterministic, unlike a
 * time limit). */
#define SC_SEARCH_PATIENCE 6
#define SC_ANCHOR_Z 2.5
/* FLOPs bands: parents are the best candidate of each; with a drop bound, the bands from
 * SC_WINDOW_BELOW under the answer to SC_WINDOW_ABOVE over it. (Wider above, to improve the
 * safer schedules the held-out part falls back to when it rejects the answer, helped seed 3 but
 * stalled seed 1's descent: see "Tried and not kept" under the search's measured seeds, in
 * docs/figures.md.) */
#define SC_BAND 0.025
#define SC_WINDOW_BELOW 0.15
#define SC_WINDOW_ABOVE 0.05

static int validate(const en_model *m, const en_dataset *data, const en_dataset *holdout,
                    const sc_search_opts *o, en_diag *diag);
static int split(search *S, const en_dataset *data, const en_dataset *holdout);
static int width_setup(search *S);
static int baseline(search *S);
static int seed_families(search *S);
static int nothing_fits(search *S);
static int generation(search *S);
static int eval_batch(search *S, int first, int count);
static int finish(search *S, sc_frontier *out);
static int add_cand(search *S, const sc_schedule *s, int family);
static double best_family(const sc_record *fam, int n, double flops);
static int within_budget(const search *S, const sc_schedule *s);
static double flops_ratio(const search *S, const sc_schedule *s, const int *len, int n,
                          double base);
static double weighed_ratio(const search *S, const sc_schedule *s, const int *len, int n,
                            double base, double int8_weight);
static double precision_weight(const search *S);
static int pareto(const search *S, int families_only, int *out);
static int bucket_best(const search *S, int focus_only, int *out);
static void report(search *S);
static void search_free(search *S);

void sc_search_opts_default(sc_search_opts *o) {
    memset(o, 0, sizeof *o);
    o->seed = 1;
    o->holdout_fraction = SC_HOLDOUT_FRACTION;
    o->budget.max_drop = o->budget.max_flops = o->budget.max_latency_ms = -1;
    o->budget.minimize = SC_MIN_LATENCY; // with a latency model; FLOPs without one
}

int sc_search_run(const en_model *m, const en_dataset *data, const en_dataset *holdout,
                  const sc_search_opts *opts, sc_frontier *out, sc_search_stats *stats,
                  en_diag *diag) {
    memset(out, 0, sizeof *out);
    sc_search_stats local;
    if (!stats) stats = &local;
    memset(stats, 0, sizeof *stats);
    if (opts->families) memset(opts->families, 0, sizeof *opts->families);
    int rc = validate(m, data, holdout, opts, diag);
    if (rc != 0) return rc;
    double t0 = en_now_seconds();
    search S = {.m = m, .o = opts, .st = stats, .diag = diag};
    long cores = sysconf(_SC_NPROCESSORS_ONLN);
    S.threads = opts->threads > 0 ? opts->threads : cores > 0 ? (int)cores : 1;
    sc__rng_seed(&S.rng, opts->seed);
    en_set_blas_threads(1); // parallel sequences, never BLAS threads inside workers
    int gens = opts->generations > 0 ? opts->generations : SC_SEARCH_GENERATIONS;
    int kids = opts->children > 0 ? opts->children : SC_SEARCH_CHILDREN;
    if ((rc = split(&S, data, holdout)) == 0 && opts->cache_mb >= 0) {
        size_t mb = opts->cache_mb > 0 ? (size_t)opts->cache_mb : SC_SEARCH_CACHE_MB;
        long pages = sysconf(_SC_PHYS_PAGES), page = sysconf(_SC_PAGESIZE);
        size_t host_mb = pages > 0 && page > 0 ? (size_t)pages * (size_t)page >> 20 : 0;
        if (host_mb > 0 && mb > host_mb / 4) mb = host_mb / 4; // a cache, not the machine
        if (sc_prefix_cache_new(m, S.sd, S.si, S.ns, mb << 20, &S.cache) != 0)
            rc = en_fail(diag, EN_ENOMEM, "cannot allocate the state cache");
    }
    if (rc == 0) S.int8_weight = precision_weight(&S); // on the search part's lengths
    if (rc == 0 && opts->width) rc = width_setup(&S);
    if (rc == 0 && (rc = baseline(&S)) == 0) {
        S.total = S.nc + 0;
        rc = seed_families(&S);
        S.total = S.nc + gens * kids;
    }
    if (rc == 0 && S.nc == 0) rc = nothing_fits(&S);
    if (rc == 0) rc = eval_batch(&S, 0, S.nc);
    S.anchor_cost = 2;
    for (int g = 0; g < gens && rc == 0; g++)
        rc = generation(&S);
    if (rc == 1) rc = 0; // converged early
    if (rc == 0) rc = finish(&S, out);
    stats->seconds = en_now_seconds() - t0;
    stats->candidates = S.nc;
    stats->search_examples = S.ns;
    stats->holdout_examples = S.nh;
    stats->cache_bytes = sc_prefix_cache_bytes(S.cache);
    search_free(&S);
    return rc;
}

static int validate(const en_model *m, const en_dataset *data, const en_dataset *holdout,
                    const sc_search_opts *o, en_diag *diag) {
    const sc_query *q = &o->budget;
    int set = (q->max_drop >= 0) + (q->max_flops >= 0) + (q->max_latency_ms >= 0);
    if (set > 1)
        return en_fail(diag, SC_EBUDGET,
                       "give at most one of max_drop, max_flops and max_latency_ms");
    if (q->max_flops >= 0 && q->max_flops == 0)
        return en_fail(diag, SC_EBUDGET,
                       "max_flops must be above 0 (a share of the unpruned "
                       "model's FLOPs)");
    if (q->max_latency_ms >= 0 && !o->lat)
        return en_fail(diag, SC_EBUDGET, "a latency budget needs a latency model");
    if (!holdout && !(o->holdout_fraction > 0 && o->holdout_fraction < 1))
        return en_fail(diag, EN_ERANGE, "holdout_fraction %g is not in (0, 1)",
                       o->holdout_fraction);
    return sc_search_check_data(m, data, holdout, o->holdout_fraction, 1, diag);
}

int sc_search_check_data(const en_model *m, const en_dataset *data, const en_dataset *holdout,
                         double holdout_fraction, int min_heldout, en_diag *diag) {
    const en_dataset *sets[2] = {data, holdout};
    for (int k = 0; k < 2; k++) {
        const en_dataset *d = sets[k];
        if (!d) continue;
        if (d->count < (holdout || k ? 1 : 2))
            return en_fail(diag, EN_EDATA, "%s: %s", d->path,
                           d->count ? "too few examples to split" : "no examples");
        int first = d->ex[0].label, other = 0;
        for (int i = 1; i < d->count && !other; i++)
            other = d->ex[i].label != first;
        if (!other)
            return en_fail(diag, SC_EONECLASS,
                           "%s: every example has label %d (%s); accuracy against pruning needs "
                           "examples of at least two classes",
                           d->path, first, m->cfg.labels[first]);
    }
    // The split's sizes, as split() makes them: per label, round(fraction * count) held out.
    int nh = holdout ? holdout->count : 0, ns = holdout ? data->count : 0;
    for (int c = 0; !holdout && c < m->cfg.num_labels; c++) {
        int count = 0;
        for (int i = 0; i < data->count; i++)
            count += data->ex[i].label == c;
        int held = (int)lround(holdout_fraction * count);
        nh += held;
        ns += count - held;
    }
    if (ns < 1 || nh < min_heldout)
        return en_fail(diag, EN_EDATA,
                       "%s: %d examples make a search part of %d and a held-out part of %d; the "
                       "held-out drop bound needs at least %d held out (more data, or a holdout "
                       "file)",
                       data->path, data->count, ns, nh, min_heldout);
    return 0;
}

/* No simple family fits the cost budget: say what the cheapest possible schedule costs. */
static int nothing_fits(search *S) {
    sc_schedule floor_s;
    sc_schedule_full(&floor_s, EN_METRIC_ATTN, S->m->cfg.layers);
    for (int l = 0; l < floor_s.layers; l++)
        floor_s.ratios[l] = 1.0 / SC_GRID;
    if (within_budget(S, &floor_s)) return 0; // the evolution can still get there
    char text[SC_SCHEDULE_TEXT_MAX];
    sc_schedule_format(&floor_s, text, sizeof text);
    const sc_query *q = &S->o->budget;
    if (q->max_flops >= 0)
        return en_fail(S->diag, SC_ENOMATCH,
                       "no schedule uses <= %.3f of the unpruned FLOPs; closest: %s, the cheapest "
                       "on the grid, with %.3f",
                       q->max_flops, text, flops_ratio(S, &floor_s, S->slen, S->ns, S->sbase));
    return en_fail(S->diag, SC_ENOMATCH,
                   "no schedule runs in <= %.3f ms; closest: %s, the cheapest on the grid, with "
                   "%.3f ms",
                   q->max_latency_ms, text,
                   sc_latency_predict(S->o->lat, &S->m->cfg, &floor_s, S->slen, S->ns));
}

/* The search part: all of `data` when a holdout set is given, else a seeded split stratified by
 * label. It is shuffled, so its first examples are a fair first subset. */
static int split(search *S, const en_dataset *data, const en_dataset *holdout) {
    int n = data->count;
    S->sd = data;
    S->hd = holdout ? holdout : data;
    S->si = malloc((size_t)n * sizeof *S->si);
    S->hi = malloc((size_t)(holdout ? holdout->count : n) * sizeof *S->hi);
    int *perm = malloc((size_t)n * sizeof *perm);
    if (!S->si || !S->hi || !perm) {
        free(perm);
        return en_fail(S->diag, EN_ENOMEM, "cannot allocate the split");
    }
    for (int i = 0; i < n; i++)
        perm[i] = i;
    for (int i = n - 1; i > 0; i--) {
        int j = sc__rand_below(&S->rng, i + 1), t = perm[i];
        perm[i] = perm[j];
        perm[j] = t;
    }
    if (holdout) {
        memcpy(S->si, perm, (size_t)n * sizeof *perm);
        S->ns = n;
        for (int i = 0; i < holdout->count; i++)
            S->hi[i] = i;
        S->nh = holdout->count;
    } else {
        // Per label, the first round(fraction * count) in shuffled order are held out.
        char *held = calloc((size_t)n, 1);
        if (!held) {
            free(perm);
            return en_fail(S->diag, EN_ENOMEM, "cannot allocate the split");
        }
        for (int c = 0; c < S->m->cfg.num_labels; c++) {
            int count = 0, taken = 0;
            for (int i = 0; i < n; i++)
                count += data->ex[i].label == c;
            int want = (int)lround(S->o->holdout_fraction * count);
            for (int i = 0; i < n && taken < want; i++)
                if (data->ex[perm[i]].label == c) held[perm[i]] = 1, taken++;
        }
        for (int i = 0; i < n; i++)
            if (!held[perm[i]]) S->si[S->ns++] = perm[i];
        for (int i = 0; i < n; i++)
            if (held[i]) S->hi[S->nh++] = i;
        free(held);
    }
    free(perm);
    if (S->ns == 0 || S->nh == 0)
        return en_fail(S->diag, EN_EDATA,
                       "%s: too few examples to split into search and "
                       "held-out parts",
                       data->path);
    S->slen = malloc((size_t)S->ns * sizeof *S->slen);
    S->hlen = malloc((size_t)S->nh * sizeof *S->hlen);
    S->s_ok = malloc((size_t)S->ns);
    S->h_ok = malloc((size_t)S->nh);
    if (!S->slen || !S->hlen || !S->s_ok || !S->h_ok)
        return en_fail(S->diag, EN_ENOMEM, "cannot allocate the split");
    for (int i = 0; i < S->ns; i++)
        S->slen[i] = S->sd->ex[S->si[i]].n;
    for (int i = 0; i < S->nh; i++)
        S->hlen[i] = S->hd->ex[S->hi[i]].n;
    S->sbase = S->hbase = 0;
    for (int i = 0; i < S->ns; i++)
        S->sbase += en_flops_sequence(&S->m->cfg, S->slen[i], NULL) / S->ns;
    for (int i = 0; i < S->nh; i++)
        S->hbase += en_flops_sequence(&S->m->cfg, S->hlen[i], NULL) / S->nh;
    // A quarter, but enough examples for the paired test to mean something.
    S->n1 = S->ns / 4 < 100 ? (S->ns < 100 ? S->ns : 100) : S->ns / 4;
    return 0;
}

/* The width profile (given, or measured on the search part: at most WIDTH_EXAMPLES of it, the
 * first in its shuffled order) and the bank of narrowed layers the evaluations share. */
#define WIDTH_EXAMPLES 2000
static int width_setup(search *S) {
    S->width = calloc(1, sizeof *S->width);
    if (!S->width) return en_fail(S->diag, EN_ENOMEM, "cannot allocate the width profile");
    int rc;
    if (S->o->width_profile) {
        const sc_width_profile *p = S->o->width_profile;
        const en_config *cfg = &S->m->cfg;
        if (p->layers != cfg->layers || p->heads != cfg->heads || p->ffn != cfg->ffn)
            return en_fail(S->diag, EN_ESCHEDULE,
                           "the width profile is for %d layers, %d heads "
                           "and %d neurons; the model has %d, %d and %d",
                           p->layers, p->heads, p->ffn, cfg->layers, cfg->heads, cfg->ffn);
        if ((rc = sc_width_profile_copy(p, S->width)) != 0)
            return en_fail(S->diag, rc, "cannot copy the width profile");
    } else {
        unsigned rescale = S->o->rescale ? S->o->rescale & 3 : SC_RESCALE_DEFAULT;
        if ((rc = sc_width_profile_measure(S->m, S->sd, S->si, S->ns, WIDTH_EXAMPLES, rescale,
                                           S->width, S->diag)) != 0)
            return rc;
    }
    if ((rc = sc_width_bank_init(&S->bank, S->m, S->width)) != 0)
        return en_fail(S->diag, rc, "cannot allocate the width bank");
    return 0;
}

/* Unpruned outcomes on the search part, the reference every drop there is paired against (the
 * held-out part's come with the frontier's, in finish). */
static int baseline(search *S) {
    sc_schedule full;
    sc_schedule_full(&full, EN_METRIC_ATTN, S->m->cfg.layers);
    int *pred = malloc((size_t)(S->ns ? S->ns : 1) * sizeof *pred);
    if (!pred) return en_fail(S->diag, EN_ENOMEM, "cannot allocate predictions");
    sc_prefix_job job = {.m = S->m,
                         .bank = S->width ? &S->bank : NULL,
                         .d = S->sd,
                         .index = S->si,
                         .n_index = S->ns,
                         .sched = &full,
                         .count = 1,
                         .threads = S->threads,
                         .cancel = S->o->cancel,
                         .cache = S->cache,
                         .pred = pred};
    sc_prefix_stats ps = {0};
    int rc = sc_prefix_eval(&job, &ps, S->diag);
    for (int i = 0; rc == 0 && i < S->ns; i++)
        S->s_ok[i] = pred[i] == S->sd->ex[S->si[i]].label;
    free(pred);
    S->st->layer_evals += ps.layer_evals;
    if (rc != 0) return rc;
    // The unpruned schedule is a candidate like any other (when the budget allows it).
    if (within_budget(S, &full)) {
        int k = add_cand(S, &full, 0);
        if (k < 0) return en_fail(S->diag, EN_ENOMEM, "cannot allocate candidates");
        memcpy(S->c[k].ok, S->s_ok, (size_t)S->ns);
        S->c[k].full = 1;
        sc_paired p;
        sc_paired_compare(S->s_ok, S->c[k].ok, NULL, S->ns, &p);
        S->c[k].acc = (double)p.correct / S->ns;
        S->c[k].drop = p.drop;
        S->c[k].drop_upper = p.drop_upper;
        S->c[k].score = (double)p.base_correct / S->ns - p.drop_upper;
    }
    return 0;
}

static int seed_families(search *S) {
    sc_schedule fam[SC_FAMILY_MAX > SC_WIDTH_SEEDS_MAX ? SC_FAMILY_MAX : SC_WIDTH_SEEDS_MAX];
    for (int m = 0; m < EN_METRIC_COUNT; m++) {
        int n = sc__families(S->m->cfg.layers, (en_metric)m, fam);
        for (int i = 0; i < n; i++)
            if (within_budget(S, &fam[i]) && add_cand(S, &fam[i], 1) == -2)
                return en_fail(S->diag, EN_ENOMEM, "cannot allocate candidates");
    }
    // Width seeds are not families: the families stay the token-only baseline.
    for (int m = 0; S->width && m < EN_METRIC_COUNT; m += EN_METRIC_CONTEXT) {
        int n = sc__width_seeds(S->m->cfg.layers, S->m->cfg.heads, (en_metric)m, fam);
        for (int i = 0; i < n; i++)
            if (within_budget(S, &fam[i]) && add_cand(S, &fam[i], 0) == -2)
                return en_fail(S->diag, EN_ENOMEM, "cannot allocate candidates");
    }
    // With INT8: every seed so far once more with INT8 products in every layer.
    for (int i = 0, n = S->nc; S->o->int8 && i < n; i++) {
        sc_schedule s = S->c[i].s;
        for (int l = 0; l < s.layers; l++)
            s.prec[l] = EN_PREC_INT8;
        if (within_budget(S, &s) && add_cand(S, &s, 0) == -2)
            return en_fail(S->diag, EN_ENOMEM, "cannot allocate candidates");
    }
    return 0;
}

/* The cheapest frontier member within the drop bound on the search part (-1: none), by two
 * tests on its search-part figures:
 * - a stricter bound than the held-out one (z = SC_ANCHOR_Z): the search part's best
 *   candidates are the luckiest of hundreds, so their figures there are optimistic;
 * - certifiable on the held-out part even if it loses nothing there: its drop (a gain counts
 *   as none) plus the held-out bound's width for its disagreement rate, 1.645 * s / sqrt(nh).
 *   A schedule that disagrees with the unpruned model on many examples can look good on the
 *   search part by flipping more wrong answers right than right ones wrong, but that gain does
 *   not carry over, and with nh examples the bound can never certify it.
 * Only counts are used from the held-out part (nh), never its outcomes. */
static int drop_anchor(const search *S, const int *front, int nf) {
    double max_drop = S->o->budget.max_drop;
    for (int i = 0; i < nf; i++) {
        const cand *c = &S->c[front[i]];
        double se = (c->drop_upper - c->drop) / SC_Z95; // s / sqrt(ns) on the search part
        double se_held = se * sqrt((double)S->ns / S->nh);
        if (c->drop + SC_ANCHOR_Z * se < max_drop &&
            (c->drop > 0 ? c->drop : 0) + SC_Z95 * se_held < max_drop)
            return i;
    }
    return -1;
}

/* One generation: children of the frontier near what was asked for, evaluated together.
 * Returns 1 when the search has converged. */
static int generation(search *S) {
    int *front = malloc((size_t)S->nc * sizeof *front);
    if (!front) return en_fail(S->diag, EN_ENOMEM, "cannot allocate the frontier");
    // Parents: the best candidate of each FLOPs band, not only the Pareto set, where a lucky
    // cheap candidate would hide everything between it and the answer.
    int nf = bucket_best(S, 1, front);
    if (nf == 0) {
        free(front);
        return 0;
    }
    // The anchor is the band answering the question so far; parents come from around it, so
    // the search spends its work where the answer will be.
    const sc_query *q = &S->o->budget;
    int anchor = -1, lo = 0, hi = nf - 1;
    if (q->max_drop >= 0) {
        anchor = drop_anchor(S, front, nf);
        if (anchor < 0) anchor = nf - 1;
        double fa = S->c[front[anchor]].cost;
        for (lo = anchor; lo > 0 && S->c[front[lo - 1]].cost >= fa - SC_WINDOW_BELOW;)
            lo--;
        for (hi = anchor; hi < nf - 1 && S->c[front[hi + 1]].cost <= fa + SC_WINDOW_ABOVE;)
            hi++;
        // Converged: the answer's cost has not improved for a while.
        double cost = S->c[front[anchor]].cost;
        if (cost < S->anchor_cost - 1e-9) {
            S->anchor_cost = cost;
            S->stale = 0;
        } else if (++S->stale > SC_SEARCH_PATIENCE) {
            free(front);
            return 1;
        }
    } else if (q->max_flops >= 0 || q->max_latency_ms >= 0) {
        anchor = nf - 1; // every candidate is within the budget: the costliest bands
        lo = anchor - 4, hi = anchor;
    }

    if (lo < 0) lo = 0;
    if (hi > nf - 1) hi = nf - 1;
    // The children extend these parents' first layers: their states are the ones to keep.
    if (S->cache) {
        int from = anchor >= 0 ? lo : 0, to = anchor >= 0 ? hi : nf - 1;
        sc_schedule *par = malloc((size_t)(to - from + 1) * sizeof *par);
        if (!par) {
            free(front);
            return en_fail(S->diag, EN_ENOMEM, "cannot allocate the parents");
        }
        for (int i = from; i <= to; i++)
            par[i - from] = S->c[front[i]].s;
        int rc = sc_prefix_cache_keep(S->cache, par, to - from + 1);
        free(par);
        if (rc != 0) {
            free(front);
            return en_fail(S->diag, rc, "cannot mark the cached states");
        }
    }
    int kids = S->o->children > 0 ? S->o->children : SC_SEARCH_CHILDREN;
    int first = S->nc, made = 0;
    for (int tries = 0; made < kids && tries < kids * 50; tries++) {
        // With a question, parents come from around its answer; without, from anywhere.
        int focus = anchor >= 0;
        int pi = focus ? lo + sc__rand_below(&S->rng, hi - lo + 1) : sc__rand_below(&S->rng, nf);
        int qi = focus && sc__rand_below(&S->rng, 2) ? lo + sc__rand_below(&S->rng, hi - lo + 1)
                                                     : sc__rand_below(&S->rng, nf);
        sc_schedule child;
        sc__mutate(&S->rng, &S->c[front[pi]].s, &S->c[front[qi]].s, S->width ? S->m->cfg.heads : 0,
                   S->o->int8, &child);
        int fits = within_budget(S, &child);
        while (!fits && sc__cheapen(&child))
            fits = within_budget(S, &child);
        if (!fits) continue;
        int k = add_cand(S, &child, 0);
        if (k == -2) {
            free(front);
            return en_fail(S->diag, EN_ENOMEM, "cannot allocate candidates");
        }
        made += k >= 0;
    }
    free(front);
    return eval_batch(S, first, S->nc - first);
}

/* The search part's evaluator: the caller's hook (not with width: the bank stays here). */
static int eval_part(search *S, const sc_prefix_job *job, sc_prefix_stats *st) {
    if (S->o->evaluate && !S->width) return S->o->evaluate(S->o->evaluate_ud, job, st, S->diag);
    return sc_prefix_eval(job, st, S->diag);
}

/* Evaluates candidates first..first+count-1: all on the first subset, then only those not
 * clearly beaten there (paired, by a no costlier candidate) on the rest of the search part. */
static int eval_batch(search *S, int first, int count) {
    if (count == 0) return 0;
    int L = S->m->cfg.layers, rc = 0;
    sc_schedule *sched = malloc((size_t)count * sizeof *sched);
    int *pred = malloc((size_t)count * S->ns * sizeof *pred);
    int *alive = malloc((size_t)count * sizeof *alive);
    if (!sched || !pred || !alive) {
        rc = en_fail(S->diag, EN_ENOMEM, "cannot allocate a batch");
        goto done;
    }
    for (int j = 0; j < count; j++)
        sched[j] = S->c[first + j].s;
    sc_prefix_stats ps = {0};
    sc_prefix_job job = {.m = S->m,
                         .bank = S->width ? &S->bank : NULL,
                         .d = S->sd,
                         .index = S->si,
                         .n_index = S->n1,
                         .sched = sched,
                         .count = count,
                         .threads = S->threads,
                         .cancel = S->o->cancel,
                         .cache = S->cache,
                         .pred = pred};
    if ((rc = eval_part(S, &job, &ps)) != 0) goto done;
    for (int j = 0; j < count; j++)
        for (int i = 0; i < S->n1; i++)
            S->c[first + j].ok[i] = pred[(size_t)j * S->n1 + i] == S->sd->ex[S->si[i]].label;

    int n_alive = 0;
    for (int j = 0; j < count; j++) {
        const cand *x = &S->c[first + j];
        int beaten = 0;
        for (int y = 0; y < S->nc && !beaten && S->n1 < S->ns; y++) {
            const cand *c = &S->c[y];
            if (y == first + j || c->cost > x->cost || (!c->full && y < first)) continue;
            int diff = 0, disc = 0;
            for (int i = 0; i < S->n1; i++) {
                diff += c->ok[i] - x->ok[i];
                disc += c->ok[i] != x->ok[i];
            }
            beaten = diff > 2.0 * sqrt(disc > 0 ? disc : 1);
        }
        // Clearly over the drop bound asked for: no use measuring it further.
        if (!beaten && S->o->budget.max_drop >= 0 && S->n1 < S->ns) {
            int net = 0, disc = 0;
            for (int i = 0; i < S->n1; i++) {
                net += S->s_ok[i] - x->ok[i];
                disc += S->s_ok[i] != x->ok[i];
            }
            beaten = net - 2.0 * sqrt(disc) > S->o->budget.max_drop * S->n1;
        }
        if (beaten) {
            S->st->dropped_early++;
            S->st->layer_evals_saved += (long)(S->ns - S->n1) * L;
        } else {
            sched[n_alive] = x->s;
            alive[n_alive++] = first + j;
        }
    }
    if (n_alive > 0 && S->n1 < S->ns) {
        int rest = S->ns - S->n1;
        job.index = S->si + S->n1, job.n_index = rest;
        job.count = n_alive;
        if ((rc = eval_part(S, &job, &ps)) != 0) goto done;
        for (int j = 0; j < n_alive; j++)
            for (int i = 0; i < rest; i++)
                S->c[alive[j]].ok[S->n1 + i] =
                    pred[(size_t)j * rest + i] == S->sd->ex[S->si[S->n1 + i]].label;
    }
    for (int j = 0; j < n_alive; j++) {
        cand *x = &S->c[alive[j]];
        sc_paired p;
        sc_paired_compare(S->s_ok, x->ok, NULL, S->ns, &p);
        x->full = 1;
        x->acc = (double)p.correct / S->ns;
        x->drop = p.drop;
        x->drop_upper = p.drop_upper;
        x->score = (double)p.base_correct / S->ns - p.drop_upper;
    }
    S->st->layer_evals += ps.layer_evals;
    S->st->layer_evals_saved += ps.layer_evals_saved;
    S->st->layer_evals_cached += ps.layer_evals_cached;
    S->st->layer_evals_sibling += ps.layer_evals_sibling;
    S->done += count;
    report(S);
done:
    free(sched);
    free(pred);
    free(alive);
    return rc;
}

/* The held-out part measures the search part's frontier (and the families' own), and those
 * measurements alone go into the records. The unpruned model runs with them (first), sharing
 * their prefixes: the baseline of every held-out figure. */
static int finish(search *S, sc_frontier *out) {
    int *pick = malloc((size_t)3 * S->nc * sizeof *pick);
    if (!pick) return en_fail(S->diag, EN_ENOMEM, "cannot allocate the frontier");
    int np = pareto(S, 0, pick);
    np += pareto(S, 1, pick + np);
    np += bucket_best(S, 1, pick + np);
    int n = 0;
    for (int i = 0; i < np; i++) { // drop repeats (a family can be on both)
        int seen = 0;
        for (int j = 0; j < n && !seen; j++)
            seen = pick[j] == pick[i];
        if (!seen) pick[n++] = pick[i];
    }
    size_t cap = (size_t)n + 1;
    sc_schedule *sched = malloc(cap * sizeof *sched);
    int *pred = malloc(cap * S->nh * sizeof *pred);
    uint8_t *ok = malloc((size_t)S->nh);
    sc_record *fam = calloc(cap, sizeof *fam);
    out->rec = calloc(cap, sizeof *out->rec);
    int rc = 0, nfam = 0;
    if (!sched || !pred || !ok || !fam || !out->rec) {
        rc = en_fail(S->diag, EN_ENOMEM, "cannot allocate the frontier");
        goto done;
    }
    sc_schedule_full(&sched[0], EN_METRIC_ATTN, S->m->cfg.layers);
    for (int i = 0; i < n; i++)
        sched[i + 1] = S->c[pick[i]].s;
    sc_prefix_stats ps = {0};
    sc_prefix_job job = {.m = S->m,
                         .bank = S->width ? &S->bank : NULL,
                         .d = S->hd,
                         .index = S->hi,
                         .n_index = S->nh,
                         .sched = sched,
                         .count = n + 1,
                         .threads = S->threads,
                         .cancel = S->o->cancel,
                         .pred = pred};
    if ((rc = sc_prefix_eval(&job, &ps, S->diag)) != 0) goto done;
    for (int e = 0; e < S->nh; e++)
        S->h_ok[e] = pred[e] == S->hd->ex[S->hi[e]].label;
    S->st->layer_evals += ps.layer_evals;
    S->st->layer_evals_saved += ps.layer_evals_saved;
    S->st->layer_evals_sibling += ps.layer_evals_sibling;
    for (int i = 0; i < n; i++) {
        const sc_schedule *si = &sched[i + 1];
        for (int e = 0; e < S->nh; e++)
            ok[e] = pred[(size_t)(i + 1) * S->nh + e] == S->hd->ex[S->hi[e]].label;
        sc_paired p;
        sc_paired_compare(S->h_ok, ok, NULL, S->nh, &p);
        sc_record *r = &out->rec[out->count++];
        r->schedule = *si;
        r->flops_ratio = flops_ratio(S, si, S->hlen, S->nh, S->hbase);
        sc_schedule tokens = *si;
        memset(tokens.heads_cut, 0, sizeof tokens.heads_cut);
        memset(tokens.ffn_cut, 0, sizeof tokens.ffn_cut);
        r->tokens_flops_ratio = flops_ratio(S, &tokens, S->hlen, S->nh, S->hbase);
        r->latency_ms =
            S->o->lat ? sc_latency_predict(S->o->lat, &S->m->cfg, si, S->hlen, S->nh) : 0;
        r->accuracy = (double)p.correct / S->nh;
        r->baseline_accuracy = (double)p.base_correct / S->nh;
        r->drop = p.drop;
        r->drop_upper = p.drop_upper;
        r->search_accuracy = S->c[pick[i]].acc;
        if (S->c[pick[i]].family) fam[nfam++] = *r;
    }
    // Gain at equal FLOPs: at each record's FLOPs, the most accurate record no costlier
    // against the most accurate family no costlier (what a FLOPs budget would get).
    int gains = 0;
    for (int i = 0; i < out->count; i++) {
        double fb = best_family(fam, nfam, out->rec[i].flops_ratio);
        double rb = best_family(out->rec, out->count, out->rec[i].flops_ratio);
        if (fb >= 0) {
            S->st->gain_over_families += rb - fb;
            gains++;
        }
    }
    if (gains) S->st->gain_over_families /= gains;
    sc_frontier_normalize(out);
    sc_query q = S->o->budget;
    if (q.max_drop < 0 && q.max_flops < 0 && q.max_latency_ms < 0) q.max_drop = 0.01;
    const sc_record *chosen;
    S->st->family_best_accuracy = -1;
    if (sc_frontier_pick(out, &q, &chosen, NULL, NULL) == 0)
        S->st->family_best_accuracy = best_family(fam, nfam, chosen->flops_ratio);
    if (S->o->families) {
        S->o->families->rec = fam;
        S->o->families->count = nfam;
        fam = NULL;
    }
    out->width = S->width; // the frontier's records are narrowed with it
    S->width = NULL;
done:
    free(fam);
    free(pick);
    free(sched);
    free(pred);
    free(ok);
    if (rc != 0) sc_frontier_free(out);
    return rc;
}

/* The best held-out accuracy of a record of `fam` costing at most `flops`; -1 when none. */
static double best_family(const sc_record *fam, int n, double flops) {
    double best = -1;
    for (int j = 0; j < n; j++)
        if (fam[j].flops_ratio <= flops && fam[j].accuracy > best) best = fam[j].accuracy;
    return best;
}

/* Adds a candidate unless already known: its index, -1 for a repeat, -2 out of memory. */
static int add_cand(search *S, const sc_schedule *s, int family) {
    uint64_t h = sc_schedule_hash(s);
    for (int i = 0; i < S->nc; i++)
        if (S->c[i].hash == h) return -1;
    if (S->nc == S->cap) {
        int cap = S->cap ? 2 * S->cap : 128;
        cand *c = realloc(S->c, (size_t)cap * sizeof *c);
        if (!c) return -2;
        S->c = c;
        S->cap = cap;
    }
    cand *c = &S->c[S->nc];
    memset(c, 0, sizeof *c);
    c->ok = calloc((size_t)S->ns, 1);
    if (!c->ok) return -2;
    c->s = *s;
    c->hash = h;
    c->family = family;
    c->flops = flops_ratio(S, s, S->slen, S->ns, S->sbase);
    c->lat = S->o->lat ? sc_latency_predict(S->o->lat, &S->m->cfg, s, S->slen, S->ns) : 0;
    c->cost = S->int8_weight == 1 || !sc_schedule_has_precision(s)
                  ? c->flops
                  : weighed_ratio(S, s, S->slen, S->ns, S->sbase, S->int8_weight);
    return S->nc++;
}

/* The search explores by FLOPs, not by predicted latency: a latency model carries its
 * calibration's noise, and a noisy cost steers the evolutionary search down a different path
 * each run (five runs chose four schedules, 0.38-0.46 of the FLOPs; by FLOPs the same seed
 * reaches 0.36 every time, also the fastest in ms: docs/figures.md). Predicted latency picks
 * among the frontier's records. FLOPs cannot rank precisions, so with a latency model an INT8
 * layer counts as its predicted time over an F32 layer's (the unpruned network's, on the search
 * part's lengths), rounded to 0.05 so that calibrations of one host agree on it. */
static double precision_weight(const search *S) {
    if (!S->o->int8 || !S->o->lat || S->o->budget.minimize != SC_MIN_LATENCY) return 1;
    sc_schedule f32, int8;
    sc_schedule_full(&f32, EN_METRIC_ATTN, S->m->cfg.layers);
    int8 = f32;
    for (int l = 0; l < int8.layers; l++)
        int8.prec[l] = EN_PREC_INT8;
    double tf = sc_latency_predict(S->o->lat, &S->m->cfg, &f32, S->slen, S->ns);
    double ti = sc_latency_predict(S->o->lat, &S->m->cfg, &int8, S->slen, S->ns);
    double w = tf > 0 ? round(20 * ti / tf) / 20 : 1;
    return w < 0.05 ? 0.05 : w > 2 ? 2 : w;
}

/* Budgets hold by construction, on both parts' lengths. */
static int within_budget(const search *S, const sc_schedule *s) {
    const sc_query *q = &S->o->budget;
    if (q->max_flops >= 0)
        return flops_ratio(S, s, S->slen, S->ns, S->sbase) <= q->max_flops &&
               flops_ratio(S, s, S->hlen, S->nh, S->hbase) <= q->max_flops;
    if (q->max_latency_ms >= 0)
        return sc_latency_predict(S->o->lat, &S->m->cfg, s, S->slen, S->ns) <= q->max_latency_ms &&
               sc_latency_predict(S->o->lat, &S->m->cfg, s, S->hlen, S->nh) <= q->max_latency_ms;
    return 1;
}

static double flops_ratio(const search *S, const sc_schedule *s, const int *len, int n,
                          double base) {
    return weighed_ratio(S, s, len, n, base, 1);
}

/* Mean FLOPs over the given lengths, INT8 layers counted int8_weight times, over `base`. */
static double weighed_ratio(const search *S, const sc_schedule *s, const int *len, int n,
                            double base, double int8_weight) {
    double sum = 0;
    for (int i = 0; i < n; i++)
        sum += sc_schedule_flops_weighted(&S->m->cfg, s, len[i], int8_weight);
    return sum / n / base;
}

/* Cheapest first; equal cost: the better score first; then by identity, for determinism. */
static int before(const search *S, int a, int b) {
    const cand *x = &S->c[a], *y = &S->c[b];
    if (x->cost != y->cost) return x->cost < y->cost;
    if (x->score != y->score) return x->score > y->score;
    return x->hash < y->hash;
}

/* Indices of the fully evaluated candidates (or families only) whose search-part score no
 * cheaper candidate matches, cheapest first. */
static int pareto(const search *S, int families_only, int *out) {
    int n = 0;
    for (int i = 0; i < S->nc; i++)
        if (S->c[i].full && (!families_only || S->c[i].family)) out[n++] = i;
    // Insertion sort: a few hundred candidates, and no global context for qsort (searches
    // may run in parallel threads).
    for (int i = 1; i < n; i++) {
        int v = out[i], j = i;
        for (; j > 0 && before(S, v, out[j - 1]); j--)
            out[j] = out[j - 1];
        out[j] = v;
    }
    int kept = 0;
    double best = -1e9;
    for (int i = 0; i < n; i++)
        if (S->c[out[i]].score > best) {
            best = S->c[out[i]].score;
            out[kept++] = out[i];
        }
    return kept;
}

/* The best-scoring fully evaluated candidate of each SC_BAND-wide FLOPs band, cheapest band
 * first. With `focus_only` and a drop bound, bands whose best is clearly over the bound on the
 * search part are left out (they cannot become the answer). */
static int bucket_best(const search *S, int focus_only, int *out) {
    int n = 0;
    for (int i = 0; i < S->nc; i++) {
        const cand *c = &S->c[i];
        if (!c->full) continue;
        if (focus_only && S->o->budget.max_drop >= 0 &&
            c->drop - 2 * (c->drop_upper - c->drop) / SC_Z95 > S->o->budget.max_drop)
            continue;
        int band = (int)(c->cost / SC_BAND), j = 0;
        while (j < n && (int)(S->c[out[j]].cost / SC_BAND) != band)
            j++;
        if (j == n)
            out[n++] = i;
        else if (c->score > S->c[out[j]].score ||
                 (c->score == S->c[out[j]].score && c->hash < S->c[out[j]].hash))
            out[j] = i;
    }
    for (int i = 1; i < n; i++) {
        int v = out[i], j = i;
        for (; j > 0 && before(S, v, out[j - 1]); j--)
            out[j] = out[j - 1];
        out[j] = v;
    }
    return n;
}

/* Progress: the best search-part answer to the question so far. */
static void report(search *S) {
    if (!S->o->progress) return;
    sc_progress p = {.done = S->done, .total = S->total, .best_accuracy = 0, .best_cost = 0};
    const sc_query *q = &S->o->budget;
    double max_drop = q->max_drop >= 0 ? q->max_drop : 0.01;
    int found = 0;
    for (int i = 0; i < S->nc; i++) {
        const cand *c = &S->c[i];
        if (!c->full) continue;
        int better;
        if (q->max_flops >= 0 || q->max_latency_ms >= 0)
            better = !found || c->acc > p.best_accuracy;
        else
            better = c->drop_upper < max_drop && (!found || c->cost < p.best_cost);
        if (better && (q->max_flops >= 0 || q->max_latency_ms >= 0 || c->drop_upper < max_drop)) {
            p.best_accuracy = c->acc;
            p.best_cost = c->cost;
            p.best_flops = c->flops;
            found = 1;
        }
    }
    if (p.done > p.total) p.total = p.done;
    p.found = found;
    S->o->progress(S->o->progress_ud, &p);
}

static void search_free(search *S) {
    sc_prefix_cache_free(S->cache);
    if (S->bank.m) sc_width_bank_fini(&S->bank);
    if (S->width) sc_width_profile_free(S->width);
    free(S->width);
    for (int i = 0; i < S->nc; i++)
        free(S->c[i].ok);
    free(S->c);
    free(S->si);
    free(S->hi);
    free(S->slen);
    free(S->hlen);
    free(S->s_ok);
    free(S->h_ok);
}
