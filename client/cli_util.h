#pragma once
/* Small helpers any searchctl command can use: loading a model or a data set with the engine's
 * message printed on failure, parsing budgets like "1%", and a progress bar on stderr. */

#include <jansson.h>

#include "engine/en_dataset.h"
#include "schedules/sc_schedule.h"

/// Loads the checkpoint folder `dir` into `*m` (owned by the caller: en_model_free). On failure
/// prints "searchctl: <what is wrong>" on stderr and returns 1; 0 on success.
int cli_load_model(const char *dir, en_model **m);

/// Loads the data file `path` (TSV, CSV, JSON Lines) for model `m` (borrowed) into `*d` (owned
/// by the caller: en_dataset_free), with the columns of --text-column A[,B] / --label-column L
/// (`text`, `label`: NULL for the usual names). On failure prints the engine's message (file and
/// line) and returns 1.
int cli_load_data(const char *path, const en_model *m, const char *text, const char *label,
                  en_dataset **d);

/// What --help says about data files: the formats and columns taken.
#define CLI_DATA_HELP                                                                              \
    "Data: TSV or CSV with a header row, or JSON Lines (by the name: .csv, .jsonl; a UTF-8 BOM\n"  \
    "is skipped; CSV quoting as RFC 4180). Text column 'sentence' or 'text', or a pair\n"          \
    "'sentence1'/'sentence2', 'premise'/'hypothesis', 'question'/'passage'; label column\n"        \
    "'label': an id or one of the model's label names (any case); --text-column and\n"             \
    "--label-column name others.\n"

/// One classified text, the same for offline classify and classify --daemon. Text (json 0):
/// prints "LABEL  name=p name=p  (N tokens, F% FLOPs)  TEXT[ | PAIR]" and returns NULL. JSON:
/// returns the object {text, pair (when given), label, label_id, probabilities by name, tokens,
/// flops_ratio, schedule} (a new reference). `logits` has cfg->num_labels entries.
json_t *cli_prediction(const en_config *cfg, const char *text, const char *pair,
                       const float *logits, int tokens, const sc_schedule *s, const char *schedule,
                       int json);

/// Prints a JSON value (stolen) as one compact line on stdout and flushes: JSON Lines, for
/// streams (tune --json's progress, watch --json).
void cli_json_line(json_t *v);

/// Parses the share of option `opt` ("--max-drop", "--max-flops"): "0.01", "1%" or "1.5%" into
/// 0.01 / 0.015, in [0, 1]; for --max-drop a bare number >= 0.5 is refused (sdc_parse_share).
/// Returns 0, or -1 after printing what to write.
int cli_parse_share(const char *opt, const char *text, double *out);

/// Writes "0.620 ms -> 0.350 ms (1.77x faster)" into `buf` (`cap` bytes): "slower" when `ms` is
/// above `base_ms`, "same as unpruned" within 0.5%, the latency alone when `base_ms` is unknown
/// (<= 0). Returns `buf`.
char *cli_speed_phrase(char *buf, size_t cap, double base_ms, double ms);

/// Draws "label [#####.....] done/total note" on stderr, in place, when stderr is a terminal;
/// does nothing otherwise. `note` (borrowed) may be NULL.
void cli_progress(const char *label, int done, int total, const char *note);

/// Whether a bar is on the current line (read by signal handlers: a plain int).
int cli_progress_drawn(void);

/// Ends a progress line (a newline when a bar was drawn).
void cli_progress_end(void);
