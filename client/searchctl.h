#pragma once
/* searchctl's commands and options, each listed once: the option table and the command table
 * (cmd_table.c), read by one parser and one help printer (searchctl.c). A handler gets the
 * parsed options and the arguments (argv[0] is the command, argv[a->rest..] the positional
 * ones) and returns the process exit status: 0 ok, 1 failure, 2 usage error.
 *
 * Adding a command: its handler (and prototype below), its row in cmd_table.c, the README.
 * Adding an option: its field in ctl_args, its row in cmd_table.c, its bit in the rows of the
 * commands that take it, the handler that reads it, the README. */

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

typedef struct ctl_command ctl_command;

/// Every option of every command; a command reads the fields of the options it takes. Strings
/// are borrowed from argv; numbers hold their row's default until given.
typedef struct ctl_args {
    const char *model, *data, *holdout, *out;
    const char *text_column, *label_column;
    const char *schedule, *frontier, *ratios, *metric, *pair, *shape, *lengths, *precision;
    const char *svg, *socket, *connect, *path, *name;
    double max_drop, max_flops, max_latency; // budgets; < 0: not given
    int minimize, rescale;                   // index into the option's choices; < 0: not given
    int threads, blas_threads, batch;        // eval, bench
    int search_threads, generations, children, latency_examples, cache_mb; // tune
    uint64_t seed;
    double holdout_fraction, calib_seconds;
    int timeout_ms, count; // daemon commands
    int json, profile, width, int8, force, replace, watch, no_wait, csv, daemon, help;
    int rest;                   // index in argv of the first positional argument
    const ctl_command *command; // the row being run
} ctl_args;

typedef int (*ctl_handler)(ctl_args *a, int argc, char **argv);

/// Kinds of option values: what the parser checks before a handler sees them.
typedef enum ctl_kind {
    CTL_FLAG,   // no value
    CTL_STR,    // a string, kept as given
    CTL_INT,    // an integer in [min, max]
    CTL_U64,    // an unsigned 64-bit integer
    CTL_NUM,    // a number in [min, max], or in (min, max) when `open`
    CTL_SHARE,  // "0.01" or "1%" (cli_parse_share); above min
    CTL_CHOICE, // one of `choices`, stored as its index
} ctl_kind;

/// One option: its documented name, an older spelling still accepted (not documented), what
/// its value is, where it goes in ctl_args, its default (numbers and choices), its help line.
typedef struct ctl_opt {
    const char *name, *alias;
    ctl_kind kind;
    size_t offset;
    double min, max, def;
    int open;
    const char *metavar, *help;
    const char *const *choices; // CTL_CHOICE: NULL-terminated
} ctl_opt;

/// One command: its name, whether it is the `--daemon` form, the options it takes (bits by
/// index in ctl_options) and those it requires, the positional arguments it takes (NULL:
/// none), its handler, its one-line help, its synopsis and more text for --help (may be NULL).
struct ctl_command {
    const char *name;
    int daemon;
    uint64_t options, required;
    const char *args;
    ctl_handler run;
    const char *what, *synopsis, *more;
};

extern const ctl_opt ctl_options[];
extern const size_t ctl_option_count;
extern const ctl_command ctl_commands[];
extern const size_t ctl_command_count;

/// Prints a command's usage: its synopsis, what it does, each option it takes with its help
/// and default, and its more text.
void ctl_usage(const ctl_command *c, FILE *to);

/* The handlers. cmd_offline.c: classify, eval, export; cmd_bench.c; cmd_tune.c: offline tune;
 * cmd_daemon.c: the commands that talk to a running searchd. */
int cmd_classify(ctl_args *a, int argc, char **argv);
int cmd_eval(ctl_args *a, int argc, char **argv);
int cmd_bench(ctl_args *a, int argc, char **argv);
int cmd_tune(ctl_args *a, int argc, char **argv);
int cmd_export(ctl_args *a, int argc, char **argv);
int cmd_ping(ctl_args *a, int argc, char **argv);
int cmd_info(ctl_args *a, int argc, char **argv);
int cmd_models(ctl_args *a, int argc, char **argv);
int cmd_add(ctl_args *a, int argc, char **argv);
int cmd_remove(ctl_args *a, int argc, char **argv);
int cmd_tune_daemon(ctl_args *a, int argc, char **argv);
int cmd_status(ctl_args *a, int argc, char **argv);
int cmd_cancel(ctl_args *a, int argc, char **argv);
int cmd_get(ctl_args *a, int argc, char **argv);
int cmd_frontier(ctl_args *a, int argc, char **argv);
int cmd_watch(ctl_args *a, int argc, char **argv);
int cmd_retune(ctl_args *a, int argc, char **argv);
int cmd_profile(ctl_args *a, int argc, char **argv);
int cmd_classify_daemon(ctl_args *a, int argc, char **argv);
