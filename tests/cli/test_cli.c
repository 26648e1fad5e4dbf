/* searchctl's offline commands run as a person runs them, their output checked against the
 * reference fixtures (independent float64 results) and known answers. */
#include <check.h>
#include <jansson.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "client/cli_util.h"
#include "tests/common/tc_env.h"
#include "tests/common/tc_files.h"
#include "tests/common/tc_run.h"
#include "tests/common/tc_shell.h"
#include "tests/common/tc_temp.h"

/* Runs `searchctl ARGS` through the shell; stdout into `out` (caller frees), exit status back. */
static int run(char **out, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int run(char **out, const char *fmt, ...) {
    char args[4096], cmd[8192];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(args, sizeof args, fmt, ap);
    va_end(ap);
    // Per process: other checkouts' tests may run at the same time on this host.
    snprintf(cmd, sizeof cmd, "'%s' %s 2>/tmp/searchctl-test-stderr-%d", getenv("SEARCHCTL"), args,
             (int)getpid());
    return tc_shell(cmd, out);
}

static char *stderr_text(void) {
    static char text[4096];
    char path[64];
    snprintf(path, sizeof path, "/tmp/searchctl-test-stderr-%d", (int)getpid());
    FILE *f = fopen(path, "r");
    size_t n = f ? fread(text, 1, sizeof text - 1, f) : 0;
    text[n] = '\0';
    if (f) fclose(f);
    return text;
}

/* The header and the first `lines` sentences of the SST-2 dev set in a new temp file; its path
 * into `buf` (the caller removes it). */
static void test_head(char *buf, size_t len, const char *tag, int lines) {
    char path[1024];
    char *text = tc_read_file(tc_shared_path(path, sizeof path, "data/sst2/test.tsv"), NULL);
    char *end = text;
    for (int i = 0; i <= lines && end; i++)
        if ((end = strchr(end, '\n'))) end++;
    if (end) *end = '\0';
    tc_temp_file(buf, len, tag, ".tsv", text);
    free(text);
}

static json_t *parse(const char *text) {
    json_error_t err;
    json_t *j = json_loads(text, 0, &err);
    ck_assert_msg(j != NULL, "not JSON (%s): %s", err.text, text);
    return j;
}

/* eval --json on the GLUE dev set: accuracy and FLOPs as in the float64 reference flops.json */
START_TEST(eval_matches_reference) {
    char path[1024];
    snprintf(path, sizeof path, "%s/fixtures/sst2-bert-L4-H128-demo/flops.json", tc_shared());
    json_error_t err;
    json_t *ref = json_load_file(path, 0, &err);
    ck_assert_ptr_nonnull(ref);
    json_t *sched = json_array_get(json_object_get(ref, "schedules"), 2); // [1, 0.6, 0.4, 0.25]
    char *out;
    int rc = run(&out, "eval --data %s/data/sst2/test.tsv --schedule cls:1,0.6,0.4,0.25 --json",
                 tc_shared());
    ck_assert_msg(rc == 0, "exit %d: %s", rc, stderr_text());
    json_t *j = parse(out);
    ck_assert_int_eq(json_integer_value(json_object_get(j, "n")), 872);
    double acc = json_number_value(json_object_get(j, "accuracy"));
    double want = json_number_value(json_object_get(json_object_get(sched, "accuracy"), "cls"));
    ck_assert_msg(acc >= want - 2.0 / 872 && acc <= want + 2.0 / 872, "%g vs %g", acc, want);
    ck_assert_double_eq_tol(json_number_value(json_object_get(j, "flops")),
                            json_number_value(json_object_get(sched, "mean_flops")), 1e-3);
    ck_assert_double_eq_tol(json_number_value(json_object_get(j, "flops_ratio")),
                            json_number_value(json_object_get(sched, "flops_ratio")), 1e-9);
    ck_assert(json_number_value(json_object_get(j, "latency_ms")) > 0);
    json_decref(j);
    json_decref(ref);
    free(out);
}
END_TEST

/* classify --json of the fixtures' first sentence: the label of its reference logits */
START_TEST(classify_matches_reference) {
    char *out;
    int rc = run(&out, "classify --json \"it 's a charming and often affecting journey . \"");
    ck_assert_msg(rc == 0, "exit %d: %s", rc, stderr_text());
    json_t *j = parse(out);
    json_t *first = json_array_get(j, 0);
    /* logits_full of that line: [-2.917, 2.889] -> positive, p = 1 / (1 + e^-5.8056) */
    ck_assert_str_eq(json_string_value(json_object_get(first, "label")), "positive");
    double p =
        json_number_value(json_object_get(json_object_get(first, "probabilities"), "positive"));
    ck_assert_double_eq_tol(p, 1.0 / (1.0 + exp(-(2.8885839310370374 + 2.9170545477099017))), 1e-5);
    ck_assert_int_eq(json_integer_value(json_object_get(first, "tokens")), 12);
    json_decref(j);
    free(out);
}
END_TEST

START_TEST(bad_arguments_say_what_is_wrong) {
    char *out;
    ck_assert_int_eq(
        run(&out, "eval --data %s/data/sst2/test.tsv --schedule attn:1,0.5,0.7,0.3", tc_shared()),
        1);
    ck_assert_ptr_nonnull(strstr(stderr_text(), "must not increase"));
    free(out);
    ck_assert_int_eq(
        run(&out, "eval --data %s/data/sst2/test.tsv --schedule attn:1,0.5", tc_shared()), 1);
    ck_assert_ptr_nonnull(strstr(stderr_text(), "4 layers"));
    free(out);
    ck_assert_int_eq(run(&out, "eval --data /nonexistent.tsv"), 1);
    ck_assert_ptr_nonnull(strstr(stderr_text(), "/nonexistent.tsv"));
    free(out);
    ck_assert_int_eq(run(&out, "eval --model /nonexistent --data x"), 1);
    ck_assert_ptr_nonnull(strstr(stderr_text(), "/nonexistent/config.json"));
    free(out);
    ck_assert_int_eq(run(&out, "classify ' '"), 1);
    ck_assert_ptr_nonnull(strstr(stderr_text(), "no tokens"));
    free(out);
    ck_assert_int_eq(run(&out, "eval --threads 0 --data x"), 2);
    free(out);
    ck_assert_int_eq(run(&out, "frobnicate"), 2);
    free(out);
}
END_TEST

/* Issue 10 item 6: "--max-drop 1" meant 100%. A bare number >= 0.5 is refused, asking for 1% or
 * 0.01, offline and for the daemon (before connecting: nothing listens on the socket). */
START_TEST(max_drop_bare_number_refused) {
    static const char *const cmds[] = {
        "tune --data %s/data/sst2/test.tsv --max-drop 1",
        "tune --data %s/data/sst2/test.tsv --max-drop 0.5",
        "get --socket %s/no.sock --model demo --max-drop 1",
        "tune --daemon --socket %s/no.sock --model demo --max-drop 2",
        "classify --daemon --socket %s/no.sock --model demo --max-drop 1 text"};
    for (size_t i = 0; i < sizeof cmds / sizeof cmds[0]; i++) {
        char *out;
        char args[600];
        snprintf(args, sizeof args, cmds[i], tc_shared());
        ck_assert_int_eq(run(&out, "%s", args), 2);
        const char *err = stderr_text();
        ck_assert_msg(strstr(err, "% accuracy drop") && strstr(err, "0.0") && strstr(err, "%"),
                      "%s: %s", args, err);
        free(out);
    }
    char *out;
    ck_assert_int_eq(run(&out, "get --socket /nonexistent/no.sock --model demo --max-drop 150%%"),
                     2);
    ck_assert_ptr_nonnull(strstr(stderr_text(), "1% or 0.01"));
    free(out);
}
END_TEST

/* searchctl ARGS run in `dir` without $SEARCHD_DEMO_MODEL: stdout into `out` (caller frees). */
static int run_bare(const char *dir, char **out, const char *args) {
    char cmd[4096];
    snprintf(cmd, sizeof cmd, "cd '%s' && env -u SEARCHD_DEMO_MODEL '%s' %s", dir,
             getenv("SEARCHCTL"), args);
    return run(out, "--help >/dev/null; %s", cmd); // run() starts with searchctl: a no-op
}

/* Issue 10 item 7: no silent default model. Without --model the demo model is used only in the
 * project folder, and then named (name and path) on stderr and in --json; elsewhere the command
 * refuses, asking for --model; the binary holds no build-folder path. */
START_TEST(default_model_is_named_or_refused) {
    char *out;
    ck_assert_int_ne(run_bare("/tmp", &out, "classify 'a fine movie'"), 0);
    ck_assert_msg(strstr(stderr_text(), "--model DIR"), "%s", stderr_text());
    free(out);
    ck_assert_int_ne(run_bare("/tmp", &out, "tune --data /nonexistent.tsv"), 0);
    ck_assert_msg(strstr(stderr_text(), "--model DIR"), "%s", stderr_text());
    free(out);
    const char *root = getenv("SEARCHD_SOURCE_ROOT");
    ck_assert_ptr_nonnull(root);
    ck_assert_int_eq(run_bare(root, &out, "classify --json 'a fine movie'"), 0);
    ck_assert_msg(strstr(stderr_text(), "demo model sst2-bert-L4-H128-demo (models/"), "%s",
                  stderr_text());
    json_t *j = parse(out);
    const char *model = json_string_value(json_object_get(json_array_get(j, 0), "model"));
    ck_assert_msg(model && strstr(model, "sst2-bert-L4-H128-demo"), "%s", out);
    json_decref(j);
    free(out);
    // The executable does not carry the source folder's path.
    size_t n;
    char *bin = tc_read_file(getenv("SEARCHCTL"), &n);
    char needle[1100];
    snprintf(needle, sizeof needle, "%s/models", root);
    size_t len = strlen(needle);
    for (size_t i = 0; i + len <= n; i++)
        ck_assert_msg(memcmp(bin + i, needle, len) != 0, "searchctl holds %s", needle);
    free(bin);
}
END_TEST

/* Issue 10 item 4 from the command line: CSV and JSON Lines, other column names, --help. */
START_TEST(data_formats_from_the_command_line) {
    tc_write_text("/tmp/searchctl-test-data-cli.csv",
                  "\xEF\xBB\xBFreview,stars\r\n\"a gorgeous, witty movie\",POSITIVE\r\nthe plot is "
                  "a mess,negative\r\n");
    tc_write_text("/tmp/searchctl-test-data.jsonl",
                  "{\"text\": \"a gorgeous, witty movie\", \"label\": \"Positive\"}\n"
                  "{\"text\": \"the plot is a mess\", \"label\": 0}\n");
    char *out;
    ck_assert_int_eq(run(&out, "eval --json --data /tmp/searchctl-test-data-cli.csv --text-column "
                               "review --label-column stars"),
                     0);
    json_t *j = parse(out);
    ck_assert_int_eq(json_integer_value(json_object_get(j, "n")), 2);
    ck_assert_int_eq(json_integer_value(json_object_get(j, "correct")), 2);
    json_decref(j);
    free(out);
    ck_assert_int_eq(run(&out, "eval --json --data /tmp/searchctl-test-data.jsonl"), 0);
    j = parse(out);
    ck_assert_int_eq(json_integer_value(json_object_get(j, "correct")), 2);
    json_decref(j);
    free(out);
    ck_assert_int_eq(run(&out, "eval --data /tmp/searchctl-test-data-cli.csv"), 1);
    ck_assert_msg(strstr(stderr_text(), "'review', 'stars'") &&
                      strstr(stderr_text(), "--text-column"),
                  "%s", stderr_text());
    free(out);
    ck_assert_int_eq(run(&out, "eval --help"), 0);
    ck_assert_msg(strstr(out, "JSON Lines") && strstr(out, "premise"), "%s", out);
    free(out);
    ck_assert_int_eq(run(&out, "tune --help"), 0);
    ck_assert_msg(strstr(out, "--label-column"), "%s", out);
    free(out);
    unlink("/tmp/searchctl-test-data-cli.csv");
    unlink("/tmp/searchctl-test-data.jsonl");
}
END_TEST

/* bench on a tiny random shape: one row per length, sane figures, pruning cheaper in FLOPs */
START_TEST(bench_reports_each_length) {
    char *out;
    int rc = run(&out, "bench --shape 2,64,2,128 --lengths 16,48 --ratios 1,0.5 --json");
    ck_assert_msg(rc == 0, "exit %d: %s", rc, stderr_text());
    json_t *j = parse(out);
    json_t *rows = json_object_get(j, "lengths");
    ck_assert_int_eq(json_array_size(rows), 2);
    ck_assert_int_eq(json_integer_value(json_object_get(json_array_get(rows, 1), "length")), 48);
    for (size_t i = 0; i < 2; i++) {
        json_t *r = json_array_get(rows, i);
        ck_assert(json_number_value(json_object_get(r, "full_ms")) > 0);
        ck_assert(json_number_value(json_object_get(r, "gflops")) > 0);
        double fr = json_number_value(json_object_get(r, "flops_ratio"));
        ck_assert_msg(fr > 0.5 && fr < 1.0, "flops ratio %g", fr); // layer 0 whole, layer 1 half
    }
    ck_assert(json_number_value(json_object_get(j, "kernel_gflops")) > 0);
    json_decref(j);
    free(out);
}
END_TEST

/* tune --json on a small data set: a frontier, and the chosen record is on it and meets the bound
 */
START_TEST(tune_json_has_frontier_and_choice) {
    char data[256];
    test_head(data, sizeof data, "tune", 300);
    char *out;
    char svg[64];
    snprintf(svg, sizeof svg, "/tmp/searchctl-tune-%d.svg", (int)getpid());
    int rc = run(&out, "tune --data %s --max-drop 0.05 --threads 2 --json --svg %s", data, svg);
    unlink(data);
    ck_assert_msg(rc == 0, "exit %d: %s", rc, stderr_text());
    json_t *j = parse(out);
    json_t *frontier = json_object_get(j, "frontier"), *chosen = json_object_get(j, "chosen");
    ck_assert_int_gt(json_array_size(frontier), 1);
    // Issue 10 item 10: the picture has each frontier point (twice: latency and FLOPs panels),
    // the families, and one ring (per panel) on the chosen schedule.
    char *pic = tc_read_file(svg, NULL);
    int circles = 0, rings = 0, squares = 0;
    for (const char *q = pic; (q = strstr(q, "class='")); q++) {
        circles += strncmp(q, "class='frontier'", 16) == 0;
        rings += strncmp(q, "class='chosen'", 14) == 0;
        squares += strncmp(q, "class='family'", 14) == 0;
    }
    ck_assert_int_eq(circles, 2 * (int)json_array_size(frontier));
    ck_assert_int_eq(squares, 2 * (int)json_array_size(json_object_get(j, "families")));
    ck_assert_int_eq(rings, 2);
    ck_assert_ptr_nonnull(strstr(pic, "<svg"));
    free(pic);
    unlink(svg);
    static const char *keys[] = {"schedule",   "accuracy",    "drop",
                                 "drop_upper", "flops_ratio", "latency_ms"};
    for (size_t k = 0; k < sizeof keys / sizeof keys[0]; k++)
        ck_assert_msg(json_object_get(chosen, keys[k]) != NULL, "chosen has no '%s'", keys[k]);
    ck_assert(json_number_value(json_object_get(chosen, "drop_upper")) < 0.05);
    int found = 0;
    size_t i;
    json_t *r;
    json_array_foreach(frontier, i, r) {
        found |= strcmp(json_string_value(json_object_get(r, "schedule")),
                        json_string_value(json_object_get(chosen, "schedule"))) == 0;
        // every record was timed (in rounds over the frontier) beside its prediction
        ck_assert(json_number_value(json_object_get(r, "timed_measured_ms")) > 0);
        ck_assert(json_number_value(json_object_get(r, "timed_predicted_ms")) > 0);
        /* the fastest within the bound: nothing cheaper on the frontier meets it */
        if (json_number_value(json_object_get(r, "flops_ratio")) <
                json_number_value(json_object_get(chosen, "flops_ratio")) - 1e-12 &&
            json_number_value(json_object_get(r, "latency_ms")) <
                json_number_value(json_object_get(chosen, "latency_ms")))
            ck_assert(json_number_value(json_object_get(r, "drop_upper")) >= 0.05);
    }
    ck_assert(found);
    ck_assert(json_number_value(json_object_get(j, "latency_host_drift")) > 0);
    ck_assert(json_number_value(json_object_get(j, "latency_median_error")) >= 0);
    json_decref(j);
    free(out);
}
END_TEST

/* Labels by name: a data set whose label column holds id2label's names, eval's per-label counts
 * by name, and classify's label, for a DistilBERT and a RoBERTa model. */
START_TEST(labels_by_name) {
    char path[256];
    tc_temp_file(path, sizeof path, "named", ".tsv",
                 "sentence\tlabel\na gorgeous , witty , seductive movie .\tpositive\n"
                 "the plot is a dreadful mess .\tnegative\nit 's a charming journey .\t1\n");
    static const char *const models[] = {"sst2-distilbert-L6-H256", "tiny-roberta-random"};
    for (int i = 0; i < 2; i++) {
        char *out;
        ck_assert_int_eq(
            run(&out, "eval --model %s/models/%s --data %s --json", tc_shared(), models[i], path),
            0);
        json_t *j = parse(out);
        json_t *labels = json_object_get(j, "labels");
        ck_assert_int_eq(json_integer_value(json_object_get(j, "n")), 3);
        ck_assert_int_eq(
            json_integer_value(json_object_get(json_object_get(labels, "positive"), "n")), 2);
        ck_assert_int_eq(
            json_integer_value(json_object_get(json_object_get(labels, "negative"), "n")), 1);
        json_decref(j);
        free(out);
        ck_assert_int_eq(
            run(&out, "classify --model %s/models/%s 'a gorgeous movie'", tc_shared(), models[i]),
            0);
        ck_assert_msg(strncmp(out, "positive", 8) == 0 || strncmp(out, "negative", 8) == 0, "%s",
                      out);
        free(out);
    }
    unlink(path);
}
END_TEST

/* Issue 14 item 4: commands and options come from one table. These expectations are written
 * here, from the commands' documented behaviour, not read from that table. */

/* The options a --help lists: the first word of each line that starts with "  --". */
static void listed_options(const char *help, char (*names)[32], int *n) {
    *n = 0;
    for (const char *p = help; p && *p; p = strchr(p, '\n') ? strchr(p, '\n') + 1 : NULL) {
        if (strncmp(p, "  --", 4) != 0) continue;
        size_t len = strcspn(p + 2, " \n");
        ck_assert_int_lt(*n, 64);
        snprintf(names[(*n)++], 32, "%.*s", (int)len, p + 2);
    }
}

#define DAEMON_COMMON "--socket --connect --timeout --json --help "
#define BUDGET "--max-drop --max-flops --max-latency "
static const struct {
    const char *cmd, *options; // the command line before --help, the options it takes
} expected_options[] = {
    {"classify",
     "--model --schedule --ratios --metric --frontier --precision --pair --json --help"},
    {"eval", "--model --data --text-column --label-column --schedule --ratios --metric --frontier "
             "--precision --threads --blas-threads --batch --json --help"},
    {"bench", "--model --schedule --ratios --metric --frontier --precision --shape --lengths "
              "--threads --profile --json --help"},
    {"tune", "--model --data --text-column --label-column --holdout " BUDGET
             "--minimize --width --int8 --rescale --out --svg --seed --search-threads "
             "--search-generations --children --cache-mb --latency-examples --holdout-fraction "
             "--calib-seconds --json --help"},
    {"export", "--model --schedule --frontier --out --help"},
    {"ping", DAEMON_COMMON},
    {"info", DAEMON_COMMON},
    {"models", DAEMON_COMMON},
    {"status", DAEMON_COMMON},
    {"cancel", DAEMON_COMMON},
    {"add", DAEMON_COMMON "--path --model --data --holdout --name --replace --frontier"},
    {"remove", DAEMON_COMMON "--model"},
    {"profile", DAEMON_COMMON "--model"},
    {"tune --daemon", DAEMON_COMMON "--model " BUDGET "--width --int8 --no-wait --daemon"},
    {"get", DAEMON_COMMON "--model " BUDGET "--minimize"},
    {"frontier", DAEMON_COMMON "--model " BUDGET "--minimize --csv --svg"},
    {"watch", DAEMON_COMMON "--model --count"},
    {"retune", DAEMON_COMMON "--model --force"},
    {"classify --daemon", DAEMON_COMMON "--model " BUDGET "--minimize --watch --count --daemon"},
};

/* Every command's --help lists exactly its options, each once, and says its usage. */
START_TEST(help_lists_exactly_the_options) {
    for (size_t c = 0; c < sizeof expected_options / sizeof expected_options[0]; c++) {
        char *out, names[64][32], want[64][32];
        int n, nwant = 0;
        ck_assert_int_eq(run(&out, "%s --help", expected_options[c].cmd), 0);
        char usage[64];
        snprintf(usage, sizeof usage, "usage: searchctl %.*s",
                 (int)strcspn(expected_options[c].cmd, " "), expected_options[c].cmd);
        ck_assert_msg(strncmp(out, usage, strlen(usage)) == 0, "%s", out);
        listed_options(out, names, &n);
        for (const char *p = expected_options[c].options; *p;) {
            size_t len = strcspn(p, " ");
            if (len) snprintf(want[nwant++], 32, "%.*s", (int)len, p);
            p += len + strspn(p + len, " ");
        }
        for (int i = 0; i < nwant; i++) {
            int seen = 0;
            for (int k = 0; k < n; k++)
                seen += strcmp(names[k], want[i]) == 0;
            ck_assert_msg(seen == 1, "%s --help lists %s %d times:\n%s", expected_options[c].cmd,
                          want[i], seen, out);
        }
        ck_assert_msg(n == nwant, "%s --help lists %d options, not %d:\n%s",
                      expected_options[c].cmd, n, nwant, out);
        free(out);
    }
    // The top-level usage names every command, each form once.
    char *out;
    ck_assert_int_eq(run(&out, "--help"), 0);
    for (size_t c = 0; c < sizeof expected_options / sizeof expected_options[0]; c++) {
        char line[64];
        snprintf(line, sizeof line, "\n  %s  ", expected_options[c].cmd); // then the padding
        const char *at = strstr(out, line);
        ck_assert_msg(at && !strstr(at + 1, line), "%s in:\n%s", expected_options[c].cmd, out);
    }
    free(out);
}
END_TEST

/* An option the command does not take is refused, named, with exit status 2 and nothing on
 * stdout: a made-up one, and real options of other commands. */
START_TEST(unknown_option_refused_by_name) {
    static const char *const cases[][2] = {
        {"eval --data x --no-such-option", "--no-such-option"},
        {"eval --data x --width", "--width"},
        {"classify --data x text", "--data"},
        {"export --schedule attn:1 --out /tmp/x --json", "--json"},
        {"tune --data x --socket /tmp/s", "--socket"},
        {"tune --daemon --model m --minimize flops", "--minimize"},
        {"get --model m --max-drop 1% --calib-seconds 1", "--calib-seconds"},
        {"ping --seed 3", "--seed"},
        {"watch --bogus", "--bogus"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char *out, quoted[64];
        ck_assert_int_eq(run(&out, "%s", cases[i][0]), 2);
        snprintf(quoted, sizeof quoted, "unknown option '%s'", cases[i][1]);
        ck_assert_msg(strstr(stderr_text(), quoted), "%s: %s", cases[i][0], stderr_text());
        ck_assert_msg(out[0] == '\0', "%s printed %s", cases[i][0], out);
        free(out);
    }
    char *out; // a value out of the bounds searchd has for the same option is refused too
    ck_assert_int_eq(run(&out, "tune --data x --calib-seconds 0.01"), 2);
    ck_assert_msg(strstr(stderr_text(), "--calib-seconds") && strstr(stderr_text(), "0.05"), "%s",
                  stderr_text());
    free(out);
    ck_assert_int_eq(run(&out, "tune --data x --calibrate-seconds 0.01"), 2);
    ck_assert_msg(strstr(stderr_text(), "--calibrate-seconds") && strstr(stderr_text(), "0.05"),
                  "%s", stderr_text());
    free(out);
    ck_assert_int_eq(run(&out, "eval"), 2);
    ck_assert_msg(strstr(stderr_text(), "--data FILE is required"), "%s", stderr_text());
    free(out);
}
END_TEST

/* The search's options have the same names and defaults in searchctl tune and in searchd. */
START_TEST(search_options_same_as_searchd) {
    char *ctl, *sd, cmd[1200];
    ck_assert_int_eq(run(&ctl, "tune --help"), 0);
    snprintf(cmd, sizeof cmd, "--help >/dev/null; '%s' --help", getenv("SEARCHD"));
    ck_assert_int_eq(run(&sd, "%s", cmd), 0);
    static const char *const names[] = {"--calib-seconds", "--search-threads",
                                        "--search-generations"};
    for (size_t i = 0; i < 3; i++) {
        const char *a = strstr(ctl, names[i]), *b = strstr(sd, names[i]);
        ck_assert_msg(a && b, "%s: searchctl tune %s, searchd %s", names[i], a ? "has" : "lacks",
                      b ? "has" : "lacks");
        // The default each prints: searchctl's "(default X)", searchd's "default X]".
        const char *da = strstr(a, "default "), *db = strstr(b, "default ");
        ck_assert(da && db);
        double x = strtod(da + 8, NULL), y = strtod(db + 8, NULL);
        // searchd's 0 generations is the search's default: the count searchctl shows.
        if (i == 2)
            ck_assert_msg(y == 0 && x == 16, "%g %g", x, y);
        else
            ck_assert_msg(x == y, "%s: searchctl default %g, searchd %g", names[i], x, y);
    }
    ck_assert_msg(strstr(ctl, "--calib-seconds S") && strstr(ctl, "(default 2)"), "%s", ctl);
    ck_assert_msg(!strstr(ctl, "--calibrate-seconds") && !strstr(ctl, "--generations N"),
                  "old spellings documented:\n%s", ctl);
    free(ctl);
    free(sd);
}
END_TEST

/* The old spellings still work and give the same search as the documented ones: the same
 * frontier, schedule by schedule, with the same seed (FLOPs minimised: no timing in it). */
START_TEST(alias_gives_the_same_result) {
    char data[256];
    test_head(data, sizeof data, "alias", 200);
    static const char *const spellings[] = {
        "--calib-seconds 0.1 --search-generations 2 --search-threads 1",
        "--calibrate-seconds 0.1 --generations 2 --threads 1"};
    char *out[2];
    for (int k = 0; k < 2; k++) {
        int rc = run(&out[k],
                     "tune --data %s --minimize flops --max-flops 0.8 --seed 7 "
                     "--latency-examples 0 --json %s",
                     data, spellings[k]);
        ck_assert_msg(rc == 0, "%s: exit %d: %s", spellings[k], rc, stderr_text());
    }
    unlink(data);
    json_t *a = parse(out[0]), *b = parse(out[1]);
    json_t *fa = json_object_get(a, "frontier"), *fb = json_object_get(b, "frontier");
    ck_assert_int_gt(json_array_size(fa), 0);
    ck_assert_int_eq(json_array_size(fa), json_array_size(fb));
    for (size_t i = 0; i < json_array_size(fa); i++) {
        json_t *ra = json_array_get(fa, i), *rb = json_array_get(fb, i);
        ck_assert_str_eq(json_string_value(json_object_get(ra, "schedule")),
                         json_string_value(json_object_get(rb, "schedule")));
        ck_assert(json_number_value(json_object_get(ra, "accuracy")) ==
                  json_number_value(json_object_get(rb, "accuracy")));
    }
    // The generations asked were run: the same candidates in both.
    ck_assert_int_eq(
        json_integer_value(json_object_get(json_object_get(a, "search"), "candidates")),
        json_integer_value(json_object_get(json_object_get(b, "search"), "candidates")));
    json_decref(a);
    json_decref(b);
    free(out[0]);
    free(out[1]);
}
END_TEST

/* The speed-up `get` prints says which way it goes: a record slower than the unpruned model
 * (possible where the latency model measures overheads FLOPs do not see) is not "faster". */
START_TEST(speed_phrase_says_which_way) {
    char buf[160];
    ck_assert_str_eq(cli_speed_phrase(buf, sizeof buf, 0.620, 0.350),
                     "0.620 ms -> 0.350 ms (1.77x faster)");
    ck_assert_str_eq(cli_speed_phrase(buf, sizeof buf, 0.500, 0.650),
                     "0.500 ms -> 0.650 ms (1.30x slower)");
    ck_assert_str_eq(cli_speed_phrase(buf, sizeof buf, 0.500, 0.501),
                     "0.500 ms -> 0.501 ms (same as unpruned)");
    ck_assert_str_eq(cli_speed_phrase(buf, sizeof buf, 0, 0.350), "0.350 ms");
}
END_TEST

int main(void) {
    Suite *s = suite_create("cli");
    TCase *tc = tcase_create("offline");
    tcase_set_timeout(tc, 300);
    tcase_add_test(tc, eval_matches_reference);
    tcase_add_test(tc, classify_matches_reference);
    tcase_add_test(tc, bad_arguments_say_what_is_wrong);
    tcase_add_test(tc, bench_reports_each_length);
    tcase_add_test(tc, tune_json_has_frontier_and_choice);
    tcase_add_test(tc, labels_by_name);
    suite_add_tcase(s, tc);
    TCase *friction = tcase_create("friction"); // issue 10: answers that cannot be misread
    tcase_set_timeout(friction, 300);
    tcase_add_test(friction, max_drop_bare_number_refused);
    tcase_add_test(friction, default_model_is_named_or_refused);
    tcase_add_test(friction, data_formats_from_the_command_line);
    suite_add_tcase(s, friction);
    TCase *table = tcase_create("table"); // issue 14 item 4: one table for every list
    tcase_set_timeout(table, 300);
    tcase_add_test(table, help_lists_exactly_the_options);
    tcase_add_test(table, unknown_option_refused_by_name);
    tcase_add_test(table, search_options_same_as_searchd);
    tcase_add_test(table, alias_gives_the_same_result);
    tcase_add_test(table, speed_phrase_says_which_way);
    suite_add_tcase(s, table);
    return tc_run(s, NULL);
}
