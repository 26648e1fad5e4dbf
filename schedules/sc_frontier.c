#include "sc_frontier.h"

#include <stdlib.h>
#include <string.h>

#include "sc_error.h"
#include "sc_width.h"

static int query_kind(const sc_query *q);
static double cost_of(const sc_record *r, sc_minimize m);
static int cheaper(const sc_record *a, const sc_record *b, sc_minimize m);
static int better_within(const sc_record *a, const sc_record *b, int by_latency);
static int dominates(const sc_record *a, const sc_record *b);
static int by_flops(const void *a, const void *b);

void sc_frontier_free(sc_frontier *f) {
    if (!f) return;
    free(f->rec);
    if (f->width) sc_width_profile_free(f->width);
    free(f->width);
    memset(f, 0, sizeof *f);
}

int sc_frontier_pick(const sc_frontier *f, const sc_query *q, const sc_record **best,
                     const sc_record **closest, en_diag *diag) {
    *best = NULL;
    if (closest) *closest = NULL;
    int kind = query_kind(q);
    if (kind < 0)
        return en_fail(diag, SC_EBUDGET,
                       "give exactly one of max_drop, max_flops and max_latency_ms");
    if (!f || f->count == 0)
        return en_fail(diag, SC_EEMPTY, "the frontier is empty: run a search first");

    const sc_record *pick = NULL, *near = NULL;
    for (int i = 0; i < f->count; i++) {
        const sc_record *r = &f->rec[i];
        switch (kind) {
        case 0: // the cheapest within the drop bound; nearest: the smallest bound
            if (r->drop_upper < q->max_drop && (!pick || cheaper(r, pick, q->minimize))) pick = r;
            if (!near || r->drop_upper < near->drop_upper) near = r;
            break;
        case 1: // the most accurate within the FLOPs budget; nearest: the cheapest
            if (r->flops_ratio <= q->max_flops && (!pick || better_within(r, pick, 0))) pick = r;
            if (!near || r->flops_ratio < near->flops_ratio) near = r;
            break;
        default:
            if (r->latency_ms <= q->max_latency_ms && (!pick || better_within(r, pick, 1)))
                pick = r;
            if (!near || r->latency_ms < near->latency_ms) near = r;
            break;
        }
    }
    if (pick) {
        *best = pick;
        return 0;
    }
    if (closest) *closest = near;
    char text[SC_SCHEDULE_TEXT_MAX];
    if (sc_schedule_format(&near->schedule, text, sizeof text) < 0) text[0] = '\0';
    if (kind == 0)
        return en_fail(diag, SC_ENOMATCH,
                       "no schedule has drop_upper < %.2f%%; closest: %s with drop_upper "
                       "%.2f%% (drop %.2f%%, %.3f of the unpruned FLOPs)",
                       100 * q->max_drop, text, 100 * near->drop_upper, 100 * near->drop,
                       near->flops_ratio);
    if (kind == 1)
        return en_fail(diag, SC_ENOMATCH,
                       "no schedule uses <= %.3f of the unpruned FLOPs; closest: %s with %.3f "
                       "(accuracy %.2f%%)",
                       q->max_flops, text, near->flops_ratio, 100 * near->accuracy);
    return en_fail(diag, SC_ENOMATCH,
                   "no schedule runs in <= %.3f ms; closest: %s with %.3f ms (accuracy %.2f%%)",
                   q->max_latency_ms, text, near->latency_ms, 100 * near->accuracy);
}

/* In place, without allocating (so it cannot fail): the records kept so far sit in rec[0, kept),
 * those not looked at yet in rec(i, count). A record dominated by one already dropped is also
 * dominated by whatever dropped that one (dominance is transitive), so only those two ranges
 * need looking at; the result is the same set as comparing against every record. */
void sc_frontier_normalize(sc_frontier *f) {
    if (!f || f->count == 0) return;
    qsort(f->rec, (size_t)f->count, sizeof *f->rec, by_flops);
    int kept = 0;
    for (int i = 0; i < f->count; i++) {
        const sc_record *r = &f->rec[i];
        int drop = 0;
        for (int j = 0; j < kept && !drop; j++)
            // Exact duplicates dominate neither: keep the first.
            drop = dominates(&f->rec[j], r) ||
                   sc_schedule_hash(&f->rec[j].schedule) == sc_schedule_hash(&r->schedule);
        for (int j = i + 1; j < f->count && !drop; j++)
            drop = dominates(&f->rec[j], r);
        if (!drop) f->rec[kept++] = *r;
    }
    f->count = kept;
}

/* 0 max_drop, 1 max_flops, 2 max_latency_ms, -1 not exactly one. */
static int query_kind(const sc_query *q) {
    int set = (q->max_drop >= 0) + (q->max_flops >= 0) + (q->max_latency_ms >= 0);
    if (set != 1) return -1;
    return q->max_drop >= 0 ? 0 : q->max_flops >= 0 ? 1 : 2;
}

static double cost_of(const sc_record *r, sc_minimize m) {
    return m == SC_MIN_FLOPS ? r->flops_ratio : r->latency_ms;
}

/* Cheaper by the chosen cost; ties (e.g. no latency model) by FLOPs, then accuracy. */
static int cheaper(const sc_record *a, const sc_record *b, sc_minimize m) {
    if (cost_of(a, m) != cost_of(b, m)) return cost_of(a, m) < cost_of(b, m);
    if (a->flops_ratio != b->flops_ratio) return a->flops_ratio < b->flops_ratio;
    return a->accuracy > b->accuracy;
}

/* More accurate; ties go to the cheaper, then the safer (lower bound). */
static int better_within(const sc_record *a, const sc_record *b, int by_latency) {
    if (a->accuracy != b->accuracy) return a->accuracy > b->accuracy;
    double ca = by_latency ? a->latency_ms : a->flops_ratio;
    double cb = by_latency ? b->latency_ms : b->flops_ratio;
    if (ca != cb) return ca < cb;
    return a->drop_upper < b->drop_upper;
}

/* `a` dominates `b` when no query could prefer `b`: no costlier in FLOPs or latency, no less
 * accurate, no larger drop bound, and strictly better in one of them. */
static int dominates(const sc_record *a, const sc_record *b) {
    if (a->flops_ratio > b->flops_ratio || a->latency_ms > b->latency_ms ||
        a->accuracy < b->accuracy || a->drop_upper > b->drop_upper)
        return 0;
    return a->flops_ratio < b->flops_ratio || a->latency_ms < b->latency_ms ||
           a->accuracy > b->accuracy || a->drop_upper < b->drop_upper;
}

static int by_flops(const void *a, const void *b) {
    const sc_record *x = a, *y = b;
    if (x->flops_ratio != y->flops_ratio) return x->flops_ratio < y->flops_ratio ? -1 : 1;
    if (x->accuracy != y->accuracy) return x->accuracy > y->accuracy ? -1 : 1;
    return 0;
}
