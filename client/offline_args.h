#pragma once
/* What searchctl's offline commands (classify, eval, bench, export) share: loading the model
 * and the schedule their options name, with a message on failure, and JSON output. */

#include <jansson.h>

#include "client/searchctl.h"
#include "engine/en_forward.h"
#include "schedules/sc_schedule.h"

/// Loads the model of `a` into `*m` (caller frees with en_model_free) and its schedule into
/// `*s` (no pruning when neither --schedule nor --ratios is given). A schedule that narrows
/// layers gets the model narrowed with the width profile of --frontier (the narrowed model
/// owns the loaded one); --precision, when given, sets the schedule's precision part. Prints the
/// reason and returns 1 on failure.
int offline_load(const ctl_args *a, en_model **m, sc_schedule *s);

/// The precision of each of `layers` layers from --precision (all F32 without it) into `out`.
/// Prints the problem and returns 2 when it is not one name or `layers` names.
int offline_precision(const ctl_args *a, int layers, en_precision *out);

/// Prints a JSON value (stolen: its reference is released) on stdout, with a newline.
void print_json(json_t *v);

/// Softmax of `n` logits into `prob`; returns the index of the largest.
int softmax_argmax(const float *logits, int n, double *prob);

/// Where the embedded demo model is: $SEARCHD_DEMO_MODEL, else models/sst2-bert-L4-H128-demo
/// when the working directory is the project folder, else NULL. No path is compiled in.
const char *demo_model_dir(void);

/// The model folder a command runs: `given` (--model), else the demo model, saying so on stderr
/// (its name and path), else NULL after printing that --model is needed. print_json() adds the
/// folder as "model" to what it prints. `cmd` names the command in the messages.
const char *offline_model(const char *given, const char *cmd);
