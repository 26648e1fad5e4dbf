#pragma once
/* Evaluates many schedules on a data set at once, running each distinct layer prefix only once
 * per example. Per example, the schedules' per-layer keep counts (and the metric, from the first
 * layer that really prunes) form a trie; a depth-first walk of it in sorted order reuses the
 * hidden state saved at the deepest common prefix, so memory stays at one state per depth per
 * worker. Schedules whose whole path coincides on an example (common for short sentences, where
 * nearby ratios keep the same number of tokens) share the prediction outright. The results are
 * exactly those of en_forward(): the same layers run on the same rows. */

#include <stdatomic.h>

#include "engine/en_dataset.h"
#include "sc_schedule.h"

typedef struct sc_prefix_stats {
    long layer_evals;       // sequence-layers run (en_ctx_layer calls)
    long layer_evals_saved; // sequence-layers a schedule-at-a-time evaluation would have added
} sc_prefix_stats;

typedef struct sc_prefix_job {
    const en_model *m;        // borrowed
    const en_dataset *d;      // borrowed
    const int *index;         // borrowed: the examples of d to run, or NULL for all
    int n_index;              // entries of index (ignored when index is NULL)
    const sc_schedule *sched; // borrowed: [count] schedules for m's layer count
    int count;
    int threads;        // worker threads, each with its own en_ctx (<= 0: 1)
    atomic_int *cancel; // borrowed, may be NULL: non-zero stops with EN_ECANCELED
    int *pred;          // caller-owned [count * n]: pred[s * n + i], n examples run
    float *logits;      // NULL, or caller-owned [count * n * num_labels]
} sc_prefix_job;

/// Runs `job`; on success fills job->pred (and job->logits) and adds to `*st` (may be NULL).
/// Errors: engine codes (EN_EINPUT, EN_ESCHEDULE for a schedule of the wrong layer count),
/// EN_ENOMEM, EN_ECANCELED.
int sc_prefix_eval(const sc_prefix_job *job, sc_prefix_stats *st, en_diag *diag);
