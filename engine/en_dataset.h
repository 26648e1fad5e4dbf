#pragma once
/* A labelled data set, tokenized once at load, and its batch evaluation under a schedule.
 * Formats: TSV (tab-separated, no quoting), CSV (RFC 4180 quoting) — each with a header row —
 * and JSON Lines (one object a line); a UTF-8 byte order mark is skipped. The format comes from
 * the name (.csv, .jsonl/.json/.ndjson; else TSV, or JSON Lines when the file starts with '{').
 * Text columns: `sentence` or `text`, or a pair `sentence1`/`sentence2`, `premise`/`hypothesis`,
 * `question`/`passage`, `question1`/`question2`, `question`/`sentence`; label column `label`
 * (en_dataset_opts names others). Spaces around a text are dropped. Labels are integers in
 * [0, C) or config.json's label names, matched case-insensitively. */

#include <stdint.h>

#include "en_forward.h"

typedef struct en_example {
    int32_t *ids;      // [n], owned by the data set
    int32_t *type_ids; // [n], owned by the data set
    int n;
    int label;
    int line; // line number in the file (1-based), for messages
} en_example;

typedef struct en_dataset {
    en_example *ex; // [count]
    int count;
    int max_n;      // longest example
    char path[256]; // where it was read from
} en_dataset;

/// Column names that override the usual ones (NULL: the usual). Strings are borrowed.
typedef struct en_dataset_opts {
    const char *text_column;  // the text (--text-column)
    const char *pair_column;  // its second segment, with text_column only (or NULL)
    const char *label_column; // --label-column (default "label")
} en_dataset_opts;

/// Reads and tokenizes a data file for model `m` (borrowed). A bad row (missing column, empty
/// sentence, unknown label) fails with EN_EDATA or EN_ELABEL and a message naming the file and
/// line. An empty file or one with no examples is EN_EDATA. `*out` is owned by the caller.
int en_dataset_load(const char *path, const en_model *m, en_dataset **out, en_diag *diag);
/// The same with column names from `opts` (NULL allowed).
int en_dataset_load_opts(const char *path, const en_model *m, const en_dataset_opts *opts,
                         en_dataset **out, en_diag *diag);
void en_dataset_free(en_dataset *d);

/// A subset view: `*out` holds `count` examples of `d` by index (copied structs, shared id
/// arrays: `d` must outlive it; free the view with en_dataset_free_view()).
int en_dataset_view(const en_dataset *d, const int *index, int count, en_dataset **out);
void en_dataset_free_view(en_dataset *v);

typedef struct en_eval_opts {
    en_metric metric;
    const double *ratios;          // cfg.layers entries, or NULL for no pruning; borrowed
    int threads;                   // worker threads, each BLAS single-threaded (<= 0: 1)
    int blas_threads;              // with threads == 1: BLAS threads for that one worker (<= 0: 1)
    int batch;                     // sequences per ragged batch (<= 1: one at a time, as served)
    const en_precision *precision; // cfg.layers entries, or NULL for all F32; borrowed
} en_eval_opts;

typedef struct en_eval_result {
    int n;
    int correct;
    double accuracy;
    double mean_flops;  // mean over examples of en_flops_sequence()
    double base_flops;  // the same without pruning
    double flops_ratio; // mean_flops / base_flops
    double latency_ms;  // wall time per example (total wall time / n)
    double seconds;     // total wall time
    uint8_t *outcome;   // NULL, or caller-owned [n]: 1 where the prediction was right
    int *pred;          // NULL, or caller-owned [n]: predicted label
} en_eval_result;

/// Evaluates every example of `d` under `opts`. Set `res->outcome` / `res->pred` to arrays
/// of d->count entries beforehand to get per-example results.
int en_eval(const en_model *m, const en_dataset *d, const en_eval_opts *opts, en_eval_result *res,
            en_diag *diag);
