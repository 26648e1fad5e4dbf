#pragma once
/* The Pareto frontier of accuracy against cost that a search builds, and the queries answered
 * from it: the fastest schedule within an accuracy-drop bound, or the most accurate within a
 * FLOPs or latency budget. Accuracy figures are from the held-out part only. */

#include "sc_schedule.h"

typedef struct sc_record {
    sc_schedule schedule;
    double flops_ratio;        // mean FLOPs / unpruned mean FLOPs (held-out part)
    double tokens_flops_ratio; // the same schedule's FLOPs at full width: 1 - this is the saving
                               // tokens make, this - flops_ratio the saving width makes
    double latency_ms;         // mean latency per sequence predicted on this host
    double accuracy;           // held-out accuracy under this schedule
    double baseline_accuracy;  // held-out accuracy without pruning
    double drop;               // baseline_accuracy - accuracy
    double drop_upper;         // one-sided 95% upper bound on drop, from paired outcomes
    double search_accuracy;    // accuracy on the search part (what the search optimised)
} sc_record;

struct sc_width_profile;
typedef struct sc_frontier {
    sc_record *rec; // owned: [count], cheapest (lowest flops_ratio) first
    int count;
    struct sc_width_profile *width; // owned, NULL when no record narrows a layer: the heads and
                                    // neurons each width keeps, and their factors (sc_width.h)
} sc_frontier;

void sc_frontier_free(sc_frontier *f); // frees rec and width, zeroes the struct; NULL allowed

typedef enum sc_minimize { SC_MIN_LATENCY = 0, SC_MIN_FLOPS } sc_minimize;

/// A question put to a frontier. Exactly one of the three limits is set (>= 0); the others
/// are negative. max_drop: the cheapest (by `minimize`) record whose drop_upper < max_drop.
/// max_flops (a ratio) / max_latency_ms: the most accurate record within that cost.
typedef struct sc_query {
    double max_drop;
    double max_flops;
    double max_latency_ms;
    sc_minimize minimize;
} sc_query;

/// Answers `q` from `f`. On success `*best` points into f->rec. When nothing qualifies returns
/// SC_ENOMATCH, sets `*closest` (if not NULL) to the record nearest to qualifying, and writes a
/// message naming it ("no schedule has drop_upper < 0.5%; closest: attn:... with 0.8%").
/// SC_EBUDGET when not exactly one limit is set; SC_EEMPTY for an empty frontier.
int sc_frontier_pick(const sc_frontier *f, const sc_query *q, const sc_record **best,
                     const sc_record **closest, en_diag *diag);

/// Sorts by flops_ratio and keeps only the non-dominated records: a record goes when another is
/// no costlier in FLOPs and latency, no less accurate (held-out) and has no larger drop_upper,
/// and is strictly better in one of them — so every answer sc_frontier_pick() can give survives.
/// Used after re-ranking, e.g. when latencies were re-predicted. Allocates nothing: cannot fail.
void sc_frontier_normalize(sc_frontier *f);
