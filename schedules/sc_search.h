#pragma once
/* Search for per-layer keep ratios and metric: builds the Pareto frontier of held-out accuracy
 * against cost. It explores by FLOPs, which no timing noise moves (with a latency model and
 * `int8`, an INT8 layer's FLOPs weighed by its predicted time over an F32 layer's, rounded), and
 * answers by budget.minimize: the record of least predicted latency (the default, when a model
 * is given) or of least FLOPs (SC_MIN_FLOPS, or no latency model). Seeds with simple
 * families (one ratio for all layers; a linear ramp keeping the first layers whole; with width, the
 * same at a few uniform widths), then improves by evolutionary search over keep ratios, metric and
 * (with width) heads and FFN neurons per layer. Shares the hidden states of common layer prefixes,
 * evaluates on growing subsets and drops hopeless candidates early, and uses every worker thread.
 * Deterministic for a given seed. */

#include <stdatomic.h>
#include <stdint.h>

#include "engine/en_dataset.h"
#include "sc_frontier.h"
#include "sc_latency.h"
#include "sc_prefix_eval.h"

typedef struct sc_progress {
    int done, total;      // candidates evaluated / planned
    double best_accuracy; // best held-out-free (search part) accuracy meeting the budget so far
    double best_cost;     // its exploration cost: its FLOPs ratio, INT8 layers weighed (see
                          // above)
    double best_flops;    // its FLOPs ratio
    int found;            // 1 when some candidate meets the budget asked for (else the best_*
                          // fields are 0): a drop bound under max_drop on the search part (1%
                          // without one), or a cost within max_flops / max_latency_ms
} sc_progress;

typedef struct sc_search_opts {
    uint64_t seed;
    int threads;                 // worker threads (<= 0: all cores)
    double holdout_fraction;     // when no holdout set is given: seeded stratified split
                                 // (default 0.7: the drop bound's width shrinks as 1/sqrt(n),
                                 // and the search needs fewer examples to rank than the bound
                                 // needs to certify)
    sc_query budget;             // what the caller asked for; guides the search (all unset:
                                 // the whole frontier)
    const sc_latency_model *lat; // borrowed; may be NULL (latency_ms then 0)
    int generations;             // <= 0: default (SC_SEARCH_GENERATIONS)
    int children;                // candidates per generation (<= 0: SC_SEARCH_CHILDREN)
    int cache_mb;                // hidden states of the search part's examples kept across
                                 // generations (0: SC_SEARCH_CACHE_MB; < 0: none; never more
                                 // than a quarter of the host's memory)
    void (*progress)(void *ud, const sc_progress *p); // called from a search thread; may be NULL
    void *progress_ud;
    atomic_int *cancel;    // borrowed; when set non-zero the search stops with EN_ECANCELED
    sc_frontier *families; // NULL, or receives (caller frees) the simple-family schedules
                           // on the search part's frontier, measured like the records
    int width;             // also search each layer's heads and FFN neurons (sc_width.h)
    const struct sc_width_profile *width_profile; // borrowed: the profile to narrow with; NULL
                                                  // with `width`: measured on the search part.
                                                  // Either way the frontier gets its own copy.
    unsigned rescale; // SC_RESCALE_* bits for a measured profile (0: the default,
                      // SC_RESCALE_NONE: none)
    int int8;         // also search each layer's precision: F32 or INT8 products
    /// Evaluates the search part's candidates in place of sc_prefix_eval, with its contract:
    /// fills job->pred for job->index[0..n_index) x job->sched[0..count) and adds to `st`. NULL:
    /// sc_prefix_eval. Predictions are a pure function of (model, example, schedule), so who
    /// evaluates what cannot change the frontier (a daemon spreads the work over a fleet).
    /// Not called when the search narrows width (the width bank does not travel), nor for the
    /// unpruned baseline or the held-out measurement. Called from the search's thread.
    int (*evaluate)(void *ud, const sc_prefix_job *job, sc_prefix_stats *st, en_diag *diag);
    void *evaluate_ud; // borrowed: the hook's first argument
} sc_search_opts;

#define SC_SEARCH_GENERATIONS 16 // at most: with max_drop it stops once the answer stops improving
#define SC_SEARCH_CHILDREN 16
#define SC_SEARCH_CACHE_MB 1024 // 256 MB ran 15% more layers on sst2-bert-L6-H256 (docs/search.md)

void sc_search_opts_default(sc_search_opts *o);

typedef struct sc_search_stats {
    double seconds;
    int candidates;              // schedules evaluated
    long layer_evals;            // sequence-layers actually run
    long layer_evals_saved;      // sequence-layers skipped by prefix sharing and early drops
    long layer_evals_cached;     // of those, skipped by resuming from a state cached in an
                                 // earlier generation
    long layer_evals_sibling;    // of those, skipped by narrowing a sibling's wide layer (the
                                 // schedules that differ first at a layer share one run of it)
    size_t cache_bytes;          // what the state cache held at the end
    double family_best_accuracy; // best simple-family held-out accuracy at the chosen budget
    double gain_over_families;   // held-out accuracy gained over the families at equal FLOPs:
                                 // at each record's FLOPs, best record minus best family
                                 // costing no more, averaged over the frontier (>= 0)
    int dropped_early;           // candidates dropped after the first subset
    int search_examples;         // size of the search part
    int holdout_examples;        // size of the held-out part
} sc_search_stats;

#define SC_MIN_HELDOUT 30 // held-out examples the drop bound needs at the least (searchd)

/// Checks that `data` and `holdout` (NULL: `data` is split by `holdout_fraction`, as the search
/// splits it) can be searched: examples of at least two classes in each, and at least
/// `min_heldout` examples in the held-out part and 1 in the search part. EN_EDATA or
/// SC_EONECLASS with a message naming the file. Both borrowed.
int sc_search_check_data(const en_model *m, const en_dataset *data, const en_dataset *holdout,
                         double holdout_fraction, int min_heldout, en_diag *diag);

/// Runs a search of `m` on `data` (borrowed), held out on `holdout` (NULL: split `data`).
/// On success `*out` owns a new frontier (free with sc_frontier_free). SC_EONECLASS,
/// EN_EDATA (empty), EN_ECANCELED, SC_EBUDGET, SC_ENOMATCH (a cost budget below the cheapest
/// schedule on the grid; the message names it).
///
/// Candidates are ranked on the search part by a lower confidence bound on their accuracy
/// (the unpruned accuracy minus the paired drop bound), so a schedule that only looks good by
/// flipping a few wrong answers right is not preferred to one that agrees with the model. The
/// frontier is the search part's Pareto set of that bound against FLOPs (plus the simple
/// families' own Pareto set), measured on the held-out part only.
int sc_search_run(const en_model *m, const en_dataset *data, const en_dataset *holdout,
                  const sc_search_opts *opts, sc_frontier *out, sc_search_stats *stats,
                  en_diag *diag);
