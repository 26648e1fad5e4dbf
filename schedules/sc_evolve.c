#include "sc_evolve.h"

#include <math.h>
#include <string.h>

#include "sc_width.h"

static uint64_t rng_next(sc__rng *r);

void sc__rng_seed(sc__rng *r, uint64_t seed) {
    r->s = seed ^ 0x9e3779b97f4a7c15ull;
    for (int i = 0; i < 4; i++)
        rng_next(r);
}

/* splitmix64: tiny, and the same sequence on every host. */
static uint64_t rng_next(sc__rng *r) {
    uint64_t z = (r->s += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

int sc__rand_below(sc__rng *r, int n) {
    return n <= 1 ? 0 : (int)(rng_next(r) % (uint64_t)n);
}

/* Grid levels (1..SC_GRID) of a schedule's ratios, rounded to the nearest level. */
static void grid_levels(const sc_schedule *s, int *lv) {
    for (int l = 0; l < s->layers; l++)
        lv[l] = (int)lround(s->ratios[l] * SC_GRID);
}

/* The schedule with those levels (made non-increasing and clamped to 1..SC_GRID first). */
static void from_grid_levels(int *lv, int layers, en_metric metric, sc_schedule *out) {
    sc_schedule_full(out, metric, layers);
    for (int l = 0; l < layers; l++) {
        if (lv[l] > SC_GRID) lv[l] = SC_GRID;
        if (lv[l] < 1) lv[l] = 1;
        if (l > 0 && lv[l] > lv[l - 1]) lv[l] = lv[l - 1];
        out->ratios[l] = (double)lv[l] / SC_GRID;
    }
}

int sc__families(int layers, en_metric m, sc_schedule *out) {
    int n = 0, lv[EN_MAX_LAYERS];
    // One ratio for all layers: 0.2 .. 0.8.
    for (int r = 4; r <= 16; r += 2) {
        for (int l = 0; l < layers; l++)
            lv[l] = r;
        from_grid_levels(lv, layers, m, &out[n++]);
    }
    // Linear ramps: the first `whole` layers keep everything, then straight down to `end`.
    for (int whole = 1; whole <= 2 && whole < layers; whole++) {
        for (int end = 2; end <= 10; end += 4) { // 0.1, 0.3, 0.5
            for (int l = 0; l < layers; l++) {
                double t = l < whole ? 0 : (double)(l - whole + 1) / (layers - whole);
                lv[l] = (int)lround(SC_GRID - t * (SC_GRID - end));
            }
            from_grid_levels(lv, layers, m, &out[n++]);
        }
    }
    return n;
}

/* One width mutation of `s` for a model of `heads` heads: a layer's heads by one, a layer's FFN
 * level by 1 to 3, or every layer's FFN level by one. */
static void mutate_width(sc__rng *r, int heads, sc_schedule *s) {
    int L = s->layers, l = sc__rand_below(r, L), op = sc__rand_below(r, 10);
    if (op < 3) {
        int g = sc_schedule_heads(s, l, heads) + (sc__rand_below(r, 2) ? 1 : -1);
        if (g < 1) g = 1;
        if (g > heads) g = heads;
        s->heads_cut[l] = round((1 - (double)g / heads) * 10000) / 10000;
        return;
    }
    int from = op < 8 ? l : 0, to = op < 8 ? l + 1 : L;
    int step = op < 8 ? (1 + sc__rand_below(r, 3)) * (sc__rand_below(r, 3) ? -1 : 1)
                      : (sc__rand_below(r, 2) ? -1 : 1);
    for (int j = from; j < to; j++) {
        int v = sc_schedule_ffn_level(s, j, SC_WIDTH_LEVELS) + step;
        v = v < 0 ? 0 : v > SC_WIDTH_LEVELS ? SC_WIDTH_LEVELS : v;
        s->ffn_cut[j] = (double)(SC_WIDTH_LEVELS - v) / SC_WIDTH_LEVELS;
    }
}

void sc__mutate(sc__rng *r, const sc_schedule *p, const sc_schedule *q, int heads, int int8,
                sc_schedule *child) {
    int L = p->layers, lv[EN_MAX_LAYERS], lq[EN_MAX_LAYERS];
    en_metric metric = p->metric;
    grid_levels(p, lv);
    double hc[EN_MAX_LAYERS], fc[EN_MAX_LAYERS]; // the width and precision go with the child
    en_precision pc[EN_MAX_LAYERS];
    memcpy(hc, p->heads_cut, sizeof hc);
    memcpy(fc, p->ffn_cut, sizeof fc);
    memcpy(pc, p->prec, sizeof pc);
    if (int8 && sc__rand_below(r, 100) < 20) { // one layer's precision, or every layer's
        *child = *p;
        int l = sc__rand_below(r, L);
        en_precision v = child->prec[l] == EN_PREC_INT8 ? EN_PREC_F32 : EN_PREC_INT8;
        int all = sc__rand_below(r, 2);
        for (int j = all ? 0 : l; j < (all ? L : l + 1); j++)
            child->prec[j] = v;
        return;
    }
    if (heads > 0 && sc__rand_below(r, 100) < 40) {
        *child = *p;
        mutate_width(r, heads, child);
        return;
    }
    int op = sc__rand_below(r, 100), l = sc__rand_below(r, L);
    if (op < 45) { // lower one or two layers; later layers follow so ratios stay non-increasing
        int times = 1 + (op < 15);
        for (int t = 0; t < times; t++, l = sc__rand_below(r, L)) {
            lv[l] -= 1 + sc__rand_below(r, 2);
            if (lv[l] < 1) lv[l] = 1;
            for (int j = l + 1; j < L; j++)
                if (lv[j] > lv[l]) lv[j] = lv[l];
        }
    } else if (op < 60) { // raise one layer; earlier layers follow
        lv[l] += 1 + sc__rand_below(r, 2);
        if (lv[l] > SC_GRID) lv[l] = SC_GRID;
        for (int j = 0; j < l; j++)
            if (lv[j] < lv[l]) lv[j] = lv[l];
    } else if (op < 75 && L > 1) { // one-point crossover: p's first layers, q's last ones
        grid_levels(q, lq);
        int cut = 1 + sc__rand_below(r, L - 1);
        for (int j = cut; j < L; j++) {
            lv[j] = lq[j];
            hc[j] = q->heads_cut[j];
            fc[j] = q->ffn_cut[j];
            pc[j] = q->prec[j];
        }
        if (sc__rand_below(r, 2)) metric = q->metric;
    } else if (op < 85) { // another metric
        metric =
            (en_metric)((metric + 1 + sc__rand_below(r, EN_METRIC_COUNT - 1)) % EN_METRIC_COUNT);
    } else if (op < 95) { // the tail to the floor: the last layer only feeds [CLS] on
        int from = L - 1 - sc__rand_below(r, L > 2 ? 2 : 1);
        for (int j = from; j < L; j++)
            lv[j] = 1;
    } else { // everything from layer l one step down
        for (int j = l; j < L; j++)
            lv[j] = lv[j] > 1 ? lv[j] - 1 : 1;
    }
    from_grid_levels(lv, L, metric, child);
    memcpy(child->heads_cut, hc, sizeof hc);
    memcpy(child->ffn_cut, fc, sizeof fc);
    memcpy(child->prec, pc, sizeof pc);
}

int sc__width_seeds(int layers, int heads, en_metric m, sc_schedule *out) {
    static const double ffn_kept[] = {0.5, 0.3, 0.2, 0.1};
    int n = 0, lv[EN_MAX_LAYERS];
    for (int ramp = 0; ramp < 2; ramp++)
        for (int half = 0; half < 1 + (heads > 1); half++)
            for (size_t f = 0; f < sizeof ffn_kept / sizeof *ffn_kept; f++) {
                for (int l = 0; l < layers; l++) // ramp: the first layer whole, then down to 0.3
                    lv[l] =
                        ramp && l > 0 ? (int)lround(SC_GRID - 14.0 * l / (layers - 1)) : SC_GRID;
                sc_schedule *s = &out[n++];
                from_grid_levels(lv, layers, m, s);
                for (int l = 0; l < layers; l++) {
                    s->ffn_cut[l] = 1 - ffn_kept[f];
                    s->heads_cut[l] = half ? 1 - (double)((heads + 1) / 2) / heads : 0;
                    s->heads_cut[l] = round(s->heads_cut[l] * 10000) / 10000;
                }
            }
    return n;
}

int sc__cheapen(sc_schedule *s) {
    int lv[EN_MAX_LAYERS];
    grid_levels(s, lv);
    for (int l = s->layers - 1; l >= 0; l--) {
        if (lv[l] > 1) {
            lv[l]--;
            sc_schedule keep = *s;
            from_grid_levels(lv, s->layers, s->metric, s);
            memcpy(s->heads_cut, keep.heads_cut, sizeof s->heads_cut);
            memcpy(s->ffn_cut, keep.ffn_cut, sizeof s->ffn_cut);
            memcpy(s->prec, keep.prec, sizeof s->prec);
            return 1;
        }
    }
    return 0;
}
