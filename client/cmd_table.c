/* searchctl's options and commands, each written once: the parser, every --help and the
 * top-level usage are read from these two tables (searchctl.c). */
#include <float.h>
#include <limits.h>

#include "client/cli_util.h"
#include "client/searchctl.h"
#include "schedules/sc_defaults.h"
#include "schedules/sc_search.h"
#include "schedules/sc_width.h"

#define F_(field) offsetof(ctl_args, field)

static const char *const minimize_names[] = {"latency", "flops", NULL};
static const char *const rescale_names[] = {"none", "heads", "neurons", "both", NULL};

/* The index of each row of ctl_options, for the commands' option bits. */
enum {
    O_MODEL_DIR,
    O_MODEL_ID,
    O_DATA,
    O_HOLDOUT,
    O_TEXT_COLUMN,
    O_LABEL_COLUMN,
    O_SCHEDULE,
    O_RATIOS,
    O_METRIC,
    O_FRONTIER,
    O_IMPORT,
    O_PRECISION,
    O_PAIR,
    O_SHAPE,
    O_LENGTHS,
    O_OUT_DIR,
    O_OUT_FILE,
    O_SVG,
    O_PATH,
    O_NAME,
    O_MAX_DROP,
    O_MAX_FLOPS,
    O_MAX_LATENCY,
    O_MINIMIZE,
    O_RESCALE,
    O_THREADS,
    O_BLAS_THREADS,
    O_BATCH,
    O_SEARCH_THREADS,
    O_GENERATIONS,
    O_CHILDREN,
    O_CACHE_MB,
    O_LATENCY_EXAMPLES,
    O_HOLDOUT_FRACTION,
    O_CALIB_SECONDS,
    O_SEED,
    O_SOCKET,
    O_CONNECT,
    O_TIMEOUT,
    O_COUNT,
    O_WIDTH,
    O_INT8,
    O_PROFILE,
    O_FORCE,
    O_REPLACE,
    O_WATCH,
    O_NO_WAIT,
    O_CSV,
    O_JSON,
    O_DAEMON,
    O_HELP,
    O_COUNT_OF
};
_Static_assert(O_COUNT_OF <= 64, "a command's options are bits of a uint64_t");

#define B(o) (1ull << (o))

const ctl_opt ctl_options[] = {
    [O_MODEL_DIR] = {"--model", 0, CTL_STR, F_(model), .metavar = "DIR",
                     .help = "the model folder (Hugging Face *ForSequenceClassification; default: "
                             "the demo model, in the project folder)"},
    [O_MODEL_ID] = {"--model", 0, CTL_STR, F_(model), .metavar = "MODEL",
                    .help = "a model id or the name given to add"},
    [O_DATA] = {"--data", 0, CTL_STR, F_(data), .metavar = "FILE",
                .help = "labelled data: TSV, CSV or JSON Lines"},
    [O_HOLDOUT] = {"--holdout", 0, CTL_STR, F_(holdout), .metavar = "FILE",
                   .help = "held-out data (default: a seeded stratified share of --data)"},
    [O_TEXT_COLUMN] = {"--text-column", 0, CTL_STR, F_(text_column), .metavar = "A[,B]",
                       .help = "the text column (B: the second of a pair)"},
    [O_LABEL_COLUMN] = {"--label-column", 0, CTL_STR, F_(label_column), .metavar = "L",
                        .help = "the label column"},
    [O_SCHEDULE] = {"--schedule", 0, CTL_STR, F_(schedule), .metavar = "S",
                    .help = "a schedule: METRIC:R,R,..[;heads:..;ffn:..][;int8]"},
    [O_RATIOS] = {"--ratios", 0, CTL_STR, F_(ratios), .metavar = "R,..",
                  .help = "keep ratios per layer (with --metric)"},
    [O_METRIC] = {"--metric", 0, CTL_STR, F_(metric), .metavar = "M",
                  .help = "token importance for --ratios: attn (default), power, cls, context"},
    [O_FRONTIER] = {"--frontier", 0, CTL_STR, F_(frontier), .metavar = "FILE",
                    .help = "the frontier `searchctl tune --width --out FILE` wrote: the heads "
                            "and neurons a narrowing schedule keeps"},
    [O_IMPORT] = {"--frontier", 0, CTL_STR, F_(frontier), .metavar = "FILE",
                  .help = "import an offline `searchctl tune --json` result of the same weights "
                          "instead of searching"},
    [O_PRECISION] = {"--precision", 0, CTL_STR, F_(precision), .metavar = "P",
                     .help = "f32 (default) or int8, or one per layer: int8,int8,f32,.."},
    [O_PAIR] = {"--pair", 0, CTL_STR, F_(pair), .metavar = "TEXT_B",
                .help = "the second text of a pair"},
    [O_SHAPE] = {"--shape", 0, CTL_STR, F_(shape), .metavar = "L,H,heads,FFN",
                 .help = "random weights of this shape instead of --model"},
    [O_LENGTHS] = {"--lengths", 0, CTL_STR, F_(lengths), .metavar = "N,..",
                   .help = "sequence lengths (default 32,64,128,256,512)"},
    [O_OUT_DIR] = {"--out", 0, CTL_STR, F_(out), .metavar = "DIR",
                   .help = "the folder to write the smaller checkpoint to"},
    [O_OUT_FILE] = {"--out", 0, CTL_STR, F_(out), .metavar = "FILE",
                    .help = "write the frontier (and its width profile) as JSON, for "
                            "classify/eval --frontier FILE"},
    [O_SVG] = {"--svg", 0, CTL_STR, F_(svg), .metavar = "FILE",
               .help = "the frontier as a picture: accuracy drop (95% bound) against latency and "
                       "FLOPs, the choice marked"},
    [O_PATH] = {"--path", 0, CTL_STR, F_(path), .metavar = "DIR", .help = "the model folder"},
    [O_NAME] = {"--name", 0, CTL_STR, F_(name), .metavar = "NAME",
                .help = "a name for the model (MODEL in other commands)"},
    [O_MAX_DROP] = {"--max-drop", 0, CTL_SHARE, F_(max_drop), 0, 1, -1, 0, "D",
                    "budget: the 95% bound on the accuracy drop, as 1% or 0.01"},
    [O_MAX_FLOPS] = {"--max-flops", 0, CTL_SHARE, F_(max_flops), 0, 1, -1, 1, "F",
                     "budget: FLOPs as a share of the unpruned model's, as 50% or 0.5"},
    [O_MAX_LATENCY] = {"--max-latency", 0, CTL_NUM, F_(max_latency), 0, 1e9, -1, 1, "MS",
                       "budget: predicted milliseconds per sequence on this host"},
    [O_MINIMIZE] = {"--minimize", 0, CTL_CHOICE, F_(minimize), 0, 0, -1, 0, "WHAT",
                    "what is made cheapest: the latency predicted on this host, or the FLOPs",
                    minimize_names},
    [O_RESCALE] = {"--rescale", 0, CTL_CHOICE, F_(rescale), 0, 0, SC_RESCALE_DEFAULT, 0, "WHAT",
                   "which kept units get least-squares factors", rescale_names},
    [O_THREADS] = {"--threads", 0, CTL_INT, F_(threads), 1, 64, 1, 0, "N",
                   "worker threads, each single-threaded in BLAS"},
    [O_BLAS_THREADS] = {"--blas-threads", 0, CTL_INT, F_(blas_threads), 1, 64, 1, 0, "N",
                        "BLAS threads of a single worker"},
    [O_BATCH] = {"--batch", 0, CTL_INT, F_(batch), 1, 64, 1, 0, "N",
                 "sequences per ragged batch (throughput; 1: each alone, as a request)"},
    // The search's settings: names, defaults and bounds as searchd's (sc_defaults.h).
    [O_SEARCH_THREADS] = {"--search-threads", "--threads", CTL_INT, F_(search_threads), 0,
                          SC_SEARCH_THREADS_MAX, 0, 0, "N", "threads of the search; 0: all cores"},
    [O_GENERATIONS] =
        {"--search-generations", "--generations", CTL_INT, F_(generations), 0,
         SC_SEARCH_GENERATIONS_MAX, SC_SEARCH_GENERATIONS, 0, "N",
         "generations at most; with --max-drop it stops once the answer stops improving"},
    [O_CHILDREN] = {"--children", 0, CTL_INT, F_(children), 0, 100000, SC_SEARCH_CHILDREN, 0, "N",
                    "candidates per generation"},
    [O_CACHE_MB] = {"--cache-mb", 0, CTL_INT, F_(cache_mb), 0, 1 << 20, SC_SEARCH_CACHE_MB, 0, "N",
                    "MB for hidden states kept across generations; 0: none"},
    [O_LATENCY_EXAMPLES] = {"--latency-examples", 0, CTL_INT, F_(latency_examples), 0, INT_MAX, 150,
                            0, "N",
                            "examples timed per frontier schedule to check the latency model "
                            "(0 skips)"},
    [O_HOLDOUT_FRACTION] = {"--holdout-fraction", 0, CTL_NUM, F_(holdout_fraction), 0, 1,
                            SC_HOLDOUT_FRACTION, 1, "F",
                            "share of --data held out when no --holdout"},
    [O_CALIB_SECONDS] = {"--calib-seconds", "--calibrate-seconds", CTL_NUM, F_(calib_seconds),
                         SC_CALIB_SECONDS_MIN, SC_CALIB_SECONDS_MAX, SC_CALIB_SECONDS, 0, "S",
                         "latency calibration time"},
    [O_SEED] = {"--seed", 0, CTL_U64, F_(seed), 0, 0, 1, 0, "N",
                "the seed of the split and the search"},
    [O_SOCKET] = {"--socket", 0, CTL_STR, F_(socket), .metavar = "PATH",
                  .help = "searchd's socket (default $XDG_RUNTIME_DIR/searchd.sock, else "
                          "/tmp/searchd-$UID.sock)"},
    [O_CONNECT] = {"--connect", 0, CTL_STR, F_(connect), .metavar = "HOST:PORT",
                   .help = "searchd over TCP instead"},
    [O_TIMEOUT] = {"--timeout", 0, CTL_INT, F_(timeout_ms), 0, INT_MAX, 30000, 0, "MS", "per call"},
    [O_COUNT] = {"--count", 0, CTL_INT, F_(count), 0, INT_MAX, 0, 0, "N",
                 "stop after N notifications; 0: never"},
    [O_WIDTH] = {"--width", 0, CTL_FLAG, F_(width),
                 .help = "search width too: attention heads "
                         "and FFN neurons per layer"},
    [O_INT8] = {"--int8", 0, CTL_FLAG, F_(int8),
                .help = "search each layer's precision too: F32 or INT8 products"},
    [O_PROFILE] = {"--profile", 0, CTL_FLAG, F_(profile),
                   .help = "the time of each forward step per length"},
    [O_FORCE] = {"--force", 0, CTL_FLAG, F_(force), .help = "re-profile even when unchanged"},
    [O_REPLACE] = {"--replace", 0, CTL_FLAG, F_(replace),
                   .help = "replace the model already registered under --name"},
    [O_WATCH] = {"--watch", 0, CTL_FLAG, F_(watch),
                 .help = "classify the texts again under each new schedule"},
    [O_NO_WAIT] = {"--no-wait", 0, CTL_FLAG, F_(no_wait),
                   .help = "print the job and return at once"},
    [O_CSV] = {"--csv", 0, CTL_FLAG, F_(csv), .help = "the frontier as CSV"},
    [O_JSON] = {"--json", 0, CTL_FLAG, F_(json), .help = "the answer as JSON"},
    [O_DAEMON] = {"--daemon", 0, CTL_FLAG, F_(daemon),
                  .help = "this form: the search or the schedule from searchd"},
    [O_HELP] = {"--help", "-h", CTL_FLAG, F_(help), .help = "this text"},
};
const size_t ctl_option_count = sizeof ctl_options / sizeof ctl_options[0];

#define COMMON B(O_JSON) | B(O_HELP)
#define DATA B(O_DATA) | B(O_TEXT_COLUMN) | B(O_LABEL_COLUMN)
#define LOAD                                                                                       \
    B(O_MODEL_DIR) | B(O_SCHEDULE) | B(O_RATIOS) | B(O_METRIC) | B(O_FRONTIER) | B(O_PRECISION)
#define BUDGET B(O_MAX_DROP) | B(O_MAX_FLOPS) | B(O_MAX_LATENCY)
#define DAEMON B(O_SOCKET) | B(O_CONNECT) | B(O_TIMEOUT) | COMMON

const ctl_command ctl_commands[] = {
    {"classify", 0, LOAD | B(O_PAIR) | COMMON, 0, "TEXT...", cmd_classify,
     "the label and the probability of each label for each TEXT",
     "classify [--model DIR] [--schedule S | --ratios R,.. [--metric M]]\n"
     "       [--frontier FILE] [--precision P] [--pair TEXT_B] [--json] TEXT...",
     NULL},
    {"eval", 0, LOAD | DATA | B(O_THREADS) | B(O_BLAS_THREADS) | B(O_BATCH) | COMMON, B(O_DATA),
     NULL, cmd_eval,
     "accuracy, FLOPs against the unpruned model and latency on a labelled data file",
     "eval [--model DIR] --data FILE [--schedule S | --ratios R,.. --metric M]\n"
     "       [--frontier FILE] [--threads N | --blas-threads N] [--batch N] [--precision P]\n"
     "       [--json]",
     CLI_DATA_HELP},
    {"bench", 0, LOAD | B(O_SHAPE) | B(O_LENGTHS) | B(O_THREADS) | B(O_PROFILE) | COMMON, 0, NULL,
     cmd_bench,
     "batch-1 latency per length, GFLOP/s against the matrix kernel's, and a schedule's speed-up",
     "bench [--model DIR | --shape L,H,heads,FFN] [--threads N] [--lengths 32,64,..]\n"
     "       [--schedule S | --ratios R,..] [--frontier FILE] [--precision P] [--profile] [--json]",
     NULL},
    {"tune", 0,
     B(O_MODEL_DIR) | DATA | B(O_HOLDOUT) | BUDGET | B(O_MINIMIZE) | B(O_WIDTH) | B(O_INT8) |
         B(O_RESCALE) | B(O_OUT_FILE) | B(O_SVG) | B(O_SEED) | B(O_SEARCH_THREADS) |
         B(O_GENERATIONS) | B(O_CHILDREN) | B(O_CACHE_MB) | B(O_LATENCY_EXAMPLES) |
         B(O_HOLDOUT_FRACTION) | B(O_CALIB_SECONDS) | COMMON,
     B(O_DATA), NULL, cmd_tune,
     "searches schedules here: the frontier and the schedule answering the budget",
     "tune [--model DIR] --data FILE [--holdout FILE]\n"
     "       [--max-drop 1% | --max-flops 0.5 | --max-latency MS] [--width] [--int8]\n"
     "       [--out FILE] [--svg FILE] [--json]",
     "Searches keep ratios and the importance metric (with --width the heads and FFN neurons\n"
     "each layer keeps, with --int8 its precision); the default budget is --max-drop 1%.\n"
     "'searchctl tune --daemon --help': the same search in searchd.\n" CLI_DATA_HELP},
    {"export", 0, B(O_MODEL_DIR) | B(O_SCHEDULE) | B(O_FRONTIER) | B(O_OUT_DIR) | B(O_HELP),
     B(O_SCHEDULE) | B(O_OUT_DIR), NULL, cmd_export,
     "writes the network a schedule's width part keeps as a smaller checkpoint folder",
     "export [--model DIR] --schedule S --frontier FILE --out DIR",
     "The token part of the schedule stays a run-time choice: run the exported model with\n"
     "--ratios or --schedule.\n"},
    {"ping", 1, DAEMON, 0, NULL, cmd_ping, "is searchd there?", "ping", NULL},
    {"info", 1, DAEMON, 0, NULL, cmd_info, "version, hardware, jobs, registered models", "info",
     NULL},
    {"models", 1, DAEMON, 0, NULL, cmd_models, "the registered models", "models", NULL},
    {"add", 1,
     B(O_PATH) | B(O_MODEL_DIR) | B(O_DATA) | B(O_HOLDOUT) | B(O_NAME) | B(O_REPLACE) |
         B(O_IMPORT) | DAEMON,
     B(O_DATA), "[DIR]", cmd_add, "registers a model folder with its labelled data",
     "add --path DIR --data FILE [--holdout FILE] [--name NAME [--replace]] [--frontier FILE]",
     NULL},
    {"remove", 1, B(O_MODEL_ID) | DAEMON, 0, "[MODEL]", cmd_remove,
     "forgets a model, its jobs and its schedules", "remove MODEL", NULL},
    {"tune", 1,
     B(O_MODEL_ID) | BUDGET | B(O_WIDTH) | B(O_INT8) | B(O_NO_WAIT) | B(O_DAEMON) | DAEMON,
     B(O_DAEMON), "[MODEL]", cmd_tune_daemon,
     "searches schedules in searchd; a progress bar until the job is done (--json: JSON Lines)",
     "tune --daemon --model MODEL [--max-drop 1% | --max-flops 0.5 | --max-latency MS]\n"
     "       [--width] [--int8] [--no-wait]",
     "searchd's --search-threads, --search-generations and --calib-seconds set the search.\n"},
    {"status", 1, DAEMON, 0, "JOB", cmd_status, "a job's state and progress", "status JOB", NULL},
    {"cancel", 1, DAEMON, 0, "JOB", cmd_cancel, "stops a job", "cancel JOB", NULL},
    {"get", 1, B(O_MODEL_ID) | BUDGET | B(O_MINIMIZE) | DAEMON, 0, "[MODEL]", cmd_get,
     "the cheapest schedule within --max-drop, or the most accurate within --max-flops / "
     "--max-latency, with its speed-up",
     "get --model MODEL (--max-drop 1% | --max-flops 0.5 | --max-latency MS)\n"
     "       [--minimize latency|flops]",
     NULL},
    {"frontier", 1, B(O_MODEL_ID) | BUDGET | B(O_MINIMIZE) | B(O_CSV) | B(O_SVG) | DAEMON, 0,
     "[MODEL]", cmd_frontier,
     "every schedule kept, cheapest first, after the unpruned row (a budget marks its pick)",
     "frontier --model MODEL [--csv] [--svg FILE] [--max-drop 1% | ...]", NULL},
    {"watch", 1, B(O_MODEL_ID) | B(O_COUNT) | DAEMON, 0, NULL, cmd_watch,
     "prints schedule.updated as it comes (every model, those added later too, without --model)",
     "watch [--model MODEL] [--count N]", NULL},
    {"retune", 1, B(O_MODEL_ID) | B(O_FORCE) | DAEMON, 0, NULL, cmd_retune,
     "re-checks the hardware now", "retune [--model MODEL] [--force]", NULL},
    {"profile", 1, B(O_MODEL_ID) | DAEMON, 0, "[MODEL]", cmd_profile,
     "the latency model and its fingerprint", "profile --model MODEL", NULL},
    {"classify", 1,
     B(O_MODEL_ID) | BUDGET | B(O_MINIMIZE) | B(O_WATCH) | B(O_COUNT) | B(O_DAEMON) | DAEMON,
     B(O_DAEMON), "[MODEL] [TEXT...]", cmd_classify_daemon,
     "classifies here with the schedule searchd gives for the budget (default --max-drop 1%)",
     "classify --daemon --model MODEL [budget] [--watch [--count N]] [TEXT...]",
     "No TEXT: one text per line of stdin, picking up new schedules as notified.\n"},
};
const size_t ctl_command_count = sizeof ctl_commands / sizeof ctl_commands[0];
