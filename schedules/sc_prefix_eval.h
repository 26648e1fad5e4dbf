#pragma once
/* Evaluates many schedules on a data set at once, running each distinct layer prefix only once
 * per example. Per example, the schedules' per-layer keep counts (and the metric, from the first
 * layer that really prunes) form a trie, walked breadth first: at each depth, the children of a
 * node (schedules that first differ at that layer's keep count) are served by one run of the
 * layer per ranking metric, with the largest of their counts, narrowed to each child's count
 * (en_state_keep_top: the same bits as running each count); and all the runs of a depth go
 * through the layer as ragged batches, so the products run over hundreds of rows. The last
 * layer runs for the [CLS] row alone, and its keep count is not part of the path (it never
 * reaches the logits). A layer's width (heads and FFN neurons kept, sc_width.h) and precision
 * are part of its key: runs share a layer only when they share both, and a batch runs one. The
 * results are exactly those of en_forward() on the narrowed model.
 *
 * Across calls, an optional sc_prefix_cache keeps, per example, the output of each layer run
 * already, with its rows' ranks (and the logits of whole paths), within a fixed memory budget, so
 * a schedule of a later call (a child in the next generation of a search) resumes where an
 * earlier one sharing its first layers' keep counts left off, or kept more rows of the same
 * layer with the same metric (by the sibling rule above). Each example's share of the budget is
 * its own, and an example is run by one worker at a time, so what the cache holds, and the
 * counters, depend only on the sequence of calls, never on the thread count. */

#include <stdatomic.h>

#include "engine/en_dataset.h"
#include "sc_schedule.h"

typedef struct sc_prefix_stats {
    long layer_evals;         // sequence-layers run (one per run of a layer, batched or not)
    long layer_evals_saved;   // sequence-layers a schedule-at-a-time evaluation would have added
    long layer_evals_sibling; // of those saved, the ones a sibling's wide layer saved: schedules
                              // that differ first at layer l share one run of it
    long layer_evals_cached;  // of those saved, the ones the cache (earlier calls) saved: what
                              // the same call without a cache would have run in addition
} sc_prefix_stats;

typedef struct sc_prefix_cache sc_prefix_cache;

/// Makes a cache for examples `index[0..n_index)` of `d` (NULL: all), holding at most
/// `budget_bytes` of states in all (each example gets a share proportional to its length).
/// `m` and `d` are borrowed and must outlive it; `*out` is owned by the caller (free with
/// sc_prefix_cache_free). EN_ENOMEM.
int sc_prefix_cache_new(const en_model *m, const en_dataset *d, const int *index, int n_index,
                        size_t budget_bytes, sc_prefix_cache **out);
void sc_prefix_cache_free(sc_prefix_cache *c);
/// Marks what the cache holds on the paths of `sched[0..count)` (borrowed) to be evicted last,
/// and the rest first, least recently used first: say which schedules the next calls will
/// extend (a search's next parents). Not during a call on the cache. EN_ENOMEM.
int sc_prefix_cache_keep(sc_prefix_cache *c, const sc_schedule *sched, int count);
/// Bytes of states and logits held now (never above the budget).
size_t sc_prefix_cache_bytes(const sc_prefix_cache *c);

typedef struct sc_prefix_job {
    const en_model *m;          // borrowed
    struct sc_width_bank *bank; // borrowed, may be NULL: the narrowed layers of schedules with a
                                // width (without it such a schedule is EN_ESCHEDULE)
    const en_dataset *d;        // borrowed
    const int *index;           // borrowed: the examples of d to run, or NULL for all
    int n_index;                // entries of index (ignored when index is NULL)
    const sc_schedule *sched;   // borrowed: [count] schedules for m's layer count
    int count;
    int threads;            // worker threads, each with its own en_ctx (<= 0: 1)
    atomic_int *cancel;     // borrowed, may be NULL: non-zero stops with EN_ECANCELED
    sc_prefix_cache *cache; // borrowed, may be NULL: made for this m and d; examples it does
                            // not cover run without it
    int *pred;              // caller-owned [count * n]: pred[s * n + i], n examples run
    float *logits;          // NULL, or caller-owned [count * n * num_labels]
} sc_prefix_job;

/// Runs `job`; on success fills job->pred (and job->logits) and adds to `*st` (may be NULL).
/// Errors: engine codes (EN_EINPUT, EN_ESCHEDULE for a schedule of the wrong layer count),
/// EN_ENOMEM, EN_ECANCELED.
int sc_prefix_eval(const sc_prefix_job *job, sc_prefix_stats *st, en_diag *diag);
