#pragma once
/* Options shared by searchctl's offline commands (classify, eval, bench) and the helpers they
 * share: loading the model and the schedule with a message on failure, JSON output. */

#include <jansson.h>

#include "engine/en_forward.h"
#include "schedules/sc_schedule.h"

typedef struct offline_args {
    const char *model;     // --model DIR (default: the embedded demo model)
    const char *data;      // --data FILE
    const char *text_column, *label_column; // --text-column A[,B], --label-column L
    const char *schedule;  // --schedule attn:1,0.9,..[;heads:..;ffn:..][;int8]
    const char *frontier;  // --frontier FILE: a frontier tune --out wrote (its width profile)
    const char *ratios;    // --ratios 1,0.9,..
    const char *metric;    // --metric attn|power|cls|context
    const char *pair;      // --pair TEXT_B
    const char *shape;     // --shape L,H,heads,FFN
    const char *lengths;   // --lengths 32,64,..
    const char *out;       // --out DIR (export)
    const char *precision; // --precision f32|int8, or one per layer: int8,int8,f32,..
    int threads;           // --threads N: worker threads, each single-threaded in BLAS
    int blas_threads;      // --blas-threads N: BLAS threads of a single worker
    int batch;             // --batch N: sequences per ragged batch (eval)
    int json;              // --json
    int profile;           // --profile (bench): time per forward step
    int help;              // --help
    const char *cmd;       // the command's name (argv[0]), for messages
} offline_args;

/// Parses argv[1..] (argv[0] is the command); stops at the first argument that is not an
/// option and stores its index in `*rest` (argc when all were options). Prints the problem and
/// returns 2 on a bad option. Strings are borrowed from argv.
int offline_args_parse(int argc, char **argv, offline_args *a, int *rest);

/// Loads the model of `a` into `*m` (caller frees with en_model_free) and its schedule into
/// `*s` (no pruning when neither --schedule nor --ratios is given). A schedule that narrows
/// layers gets the model narrowed with the width profile of --frontier (the narrowed model
/// owns the loaded one); --precision, when given, sets the schedule's precision part. Prints the
/// reason and returns 1 on failure.
int offline_load(const offline_args *a, en_model **m, sc_schedule *s);

/// The precision of each of `layers` layers from --precision (all F32 without it) into `out`.
/// Prints the problem and returns 2 when it is not one name or `layers` names.
int offline_precision(const offline_args *a, int layers, en_precision *out);

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
