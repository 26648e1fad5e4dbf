/* searchctl's daemon side as a person sees it: the progress bar of `tune --daemon` on a
 * terminal (a pty of a given width) and nothing of it when stderr is not a terminal. */
#include <errno.h>
#include <jansson.h>
#include <pty.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "test_util.h"

/* Runs searchctl with `args` (NULL-terminated) on a pty `cols` wide; returns everything it wrote
 * (malloc'ed) and its exit status in *status. */
static char *run_on_pty(const char *const *args, int cols, int *status) {
    const char *argv[32] = {SD_TEST_SEARCHCTL};
    int n = 1;
    for (int i = 0; args[i] && n < 31; i++)
        argv[n++] = args[i];
    argv[n] = NULL;
    struct winsize ws = {.ws_row = 24, .ws_col = (unsigned short)cols};
    int master;
    pid_t pid = forkpty(&master, NULL, NULL, &ws);
    ck_assert_int_ge(pid, 0);
    if (pid == 0) {
        setenv("TERM", "xterm", 1);
        execv(argv[0], (char *const *)argv);
        _exit(127);
    }
    size_t cap = 1 << 16, len = 0;
    char *out = malloc(cap);
    for (;;) {
        if (len + 4096 > cap) out = realloc(out, cap *= 2);
        ssize_t r = read(master, out + len, 4096);
        if (r < 0 && errno == EINTR) continue;
        if (r <= 0) break; // EIO once the child's side is closed
        len += (size_t)r;
    }
    out[len] = '\0';
    close(master);
    int st;
    waitpid(pid, &st, 0);
    *status = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
    return out;
}

START_TEST(tune_bar_on_a_terminal) {
    enum { COLS = 45 };
    const char *const args[] = {"tune", "--daemon",    "--socket", td_cur.sock, "--model",
                                "demo", "--max-flops", "0.9",      NULL};
    int status;
    char *out = run_on_pty(args, COLS, &status);
    ck_assert_msg(status == 0, "searchctl exited %d:\n%s", status, out);
    // Drop the erase-to-end-of-line codes, then look at it row by row ("\r\n" on a pty) and
    // each row piece by piece (what one \r-started redraw wrote).
    for (char *p; (p = strstr(out, "\033[K"));)
        memmove(p, p + 3, strlen(p + 3) + 1);
    int bar_rows = 0, redraws = 0, done_after_bar = 0, prev_was_bar = 0;
    for (char *row = out, *next; row && *row; row = next) {
        next = strchr(row, '\n');
        if (next) *next++ = '\0';
        int is_bar = 0, other = 0;
        for (char *piece = row, *pn; piece; piece = pn) {
            pn = strchr(piece, '\r');
            if (pn) *pn++ = '\0';
            if (!*piece) continue;
            if (strncmp(piece, "tune ", 5) == 0) {
                // Each redraw fits the width: a wrapped line cannot be redrawn in place.
                ck_assert_msg(strlen(piece) < COLS, "bar wider than %d columns: '%s'", COLS, piece);
                is_bar = 1;
                redraws++;
            } else {
                other = 1;
            }
        }
        if (is_bar) {
            ck_assert_msg(!other, "the bar shares its row with other output");
            bar_rows++;
        }
        if (prev_was_bar && strstr(row, " done in ")) done_after_bar = 1;
        prev_was_bar = is_bar;
    }
    ck_assert_int_eq(bar_rows, 1); // every update redrawn in place
    ck_assert_int_ge(redraws, 2);
    ck_assert_msg(done_after_bar, "the bar is not ended by a newline before the result");
    free(out);
}
END_TEST

START_TEST(tune_quiet_off_a_terminal) {
    char err[400], outp[400], cmd[1400];
    snprintf(err, sizeof err, "%s/stderr", td_cur.dir);
    snprintf(outp, sizeof outp, "%s/stdout", td_cur.dir);
    snprintf(cmd, sizeof cmd,
             "%s tune --daemon --socket %s --model demo --max-flops 0.9 >%s 2>%s </dev/null",
             SD_TEST_SEARCHCTL, td_cur.sock, outp, err);
    ck_assert_int_eq(system(cmd), 0);
    size_t n;
    char *text = tc_read_file(err, &n);
    ck_assert_msg(n == 0, "a redirected stderr holds: %s", text); // no bar, no terminal codes
    free(text);
    snprintf(cmd, sizeof cmd, "grep -q ' done in ' %s && grep -q '^chosen: ' %s", outp, outp);
    ck_assert_int_eq(system(cmd), 0);
}
END_TEST

/* Every line of `path` is one JSON object (JSON Lines); returns how many there are. */
static int json_lines(const char *path, const char *must_have) {
    FILE *f = fopen(path, "r");
    ck_assert_ptr_nonnull(f);
    char line[8192];
    int n = 0, found = must_have == NULL;
    while (fgets(line, sizeof line, f)) {
        json_error_t e;
        json_t *j = json_loads(line, 0, &e);
        ck_assert_msg(json_is_object(j), "not one JSON object a line: %s", line);
        json_decref(j);
        found |= must_have && strstr(line, must_have) != NULL;
        n++;
    }
    fclose(f);
    ck_assert_msg(found, "no line of %s has %s", path, must_have);
    return n;
}

/* Issue 10 item 8: tune --json and watch --json print JSON Lines; watch without a model follows
 * a model added later; frontier of an untuned model says so and fails; status rounds. */
START_TEST(answers_that_cannot_be_misread) {
    char outp[400], watchp[400], cmd[2400], out[8192];
    snprintf(outp, sizeof outp, "%s/tune.jsonl", td_cur.dir);
    snprintf(cmd, sizeof cmd,
             "%s tune --daemon --json --socket %s --model demo --max-flops 0.9 >%s",
             SD_TEST_SEARCHCTL, td_cur.sock, outp);
    ck_assert_int_eq(system(cmd), 0);
    ck_assert_int_ge(json_lines(outp, "\"status\":\"done\""), 2);

    // watch, all models: a model added after it started is followed (its removal is seen).
    snprintf(watchp, sizeof watchp, "%s/watch.jsonl", td_cur.dir);
    snprintf(cmd, sizeof cmd, "%s watch --json --count 1 --socket %s >%s 2>&1 &", SD_TEST_SEARCHCTL,
             td_cur.sock, watchp);
    ck_assert_int_eq(system(cmd), 0);
    usleep(500 * 1000);
    const char *shared = tc_shared();
    snprintf(cmd, sizeof cmd,
             "%s add --socket %s --path %s/models/sst2-distilbert-L6-H256 --data %s --name fresh",
             SD_TEST_SEARCHCTL, td_cur.sock, shared, td_data);
    ck_assert_msg(td_run_output(cmd, out, sizeof out) == 0, "%s", out);
    // A model never tuned: frontier says so and exits non-zero.
    snprintf(cmd, sizeof cmd, "%s frontier --socket %s --model fresh 2>&1", SD_TEST_SEARCHCTL,
             td_cur.sock);
    ck_assert_int_ne(td_run_output(cmd, out, sizeof out), 0);
    ck_assert_msg(strstr(out, "not tuned") && strstr(out, "tune --daemon"), "%s", out);
    usleep(2500 * 1000); // watch looks at the model list every second
    snprintf(cmd, sizeof cmd, "%s remove --socket %s fresh", SD_TEST_SEARCHCTL, td_cur.sock);
    ck_assert_msg(td_run_output(cmd, out, sizeof out) == 0, "%s", out);
    for (int i = 0; i < 100; i++) { // watch ends after the one notification
        snprintf(cmd, sizeof cmd, "grep -q schedule.updated %s", watchp);
        if (system(cmd) == 0) break;
        usleep(100 * 1000);
    }
    ck_assert_int_eq(json_lines(watchp, "\"reason\":\"removed\""), 2); // model.added, updated
    json_lines(watchp, "model.added");

    // Item 9: get and frontier show the unpruned model and the speed-up; the hardware once.
    snprintf(cmd, sizeof cmd, "%s get --socket %s --model demo --max-flops 0.9", SD_TEST_SEARCHCTL,
             td_cur.sock);
    ck_assert_int_eq(td_run_output(cmd, out, sizeof out), 0);
    ck_assert_msg(strstr(out, " ms -> ") && strstr(out, "x faster)") && strstr(out, "hardware: "),
                  "%s", out);
    snprintf(cmd, sizeof cmd, "%s frontier --socket %s --model demo", SD_TEST_SEARCHCTL,
             td_cur.sock);
    ck_assert_int_eq(td_run_output(cmd, out, sizeof out), 0);
    ck_assert_msg(strstr(out, "(unpruned)") && strstr(out, "1.00x"), "%s", out);
    int hw_lines = 0;
    for (const char *p = out; (p = strstr(p, "OpenBLAS")); p++)
        hw_lines++;
    ck_assert_msg(hw_lines == 1, "the hardware %d times: %s", hw_lines, out);
    snprintf(cmd, sizeof cmd, "%s get --json --socket %s --model demo --max-flops 0.9",
             SD_TEST_SEARCHCTL, td_cur.sock);
    ck_assert_int_eq(td_run_output(cmd, out, sizeof out), 0);
    json_t *rec = json_loads(out, 0, NULL);
    ck_assert_msg(json_number_value(json_object_get(rec, "speedup")) > 0 &&
                      json_number_value(json_object_get(rec, "baseline_latency_ms")) > 0,
                  "%s", out);
    json_decref(rec);

    // Item 10: frontier --csv and --svg, the budget's pick marked.
    snprintf(cmd, sizeof cmd, "%s frontier --socket %s --model demo --csv --max-flops 0.9",
             SD_TEST_SEARCHCTL, td_cur.sock);
    ck_assert_int_eq(td_run_output(cmd, out, sizeof out), 0);
    ck_assert_msg(strncmp(out, "schedule,kind,chosen,flops_ratio,", 33) == 0 &&
                      strstr(out, ",frontier,1,"),
                  "%s", out);
    char svgp[400];
    snprintf(svgp, sizeof svgp, "%s/frontier.svg", td_cur.dir);
    snprintf(cmd, sizeof cmd, "%s frontier --socket %s --model demo --svg %s --max-flops 0.9",
             SD_TEST_SEARCHCTL, td_cur.sock, svgp);
    ck_assert_int_eq(td_run_output(cmd, out, sizeof out), 0);
    snprintf(cmd, sizeof cmd, "grep -c \"class='chosen'\" %s", svgp);
    ck_assert_int_eq(td_run_output(cmd, out, sizeof out), 0);
    ck_assert_int_eq(atoi(out), 2); // one ring in each panel

    // status: figures for people (4 significant digits), not 0.123456789.
    snprintf(cmd, sizeof cmd, "%s status --socket %s 1", SD_TEST_SEARCHCTL, td_cur.sock);
    ck_assert_int_eq(td_run_output(cmd, out, sizeof out), 0);
    const char *sec = strstr(out, "seconds: ");
    ck_assert_msg(sec && strcspn(sec + 9, "\n") <= 6, "%s", out);
}
END_TEST

/* Issue 10 item 11: `searchctl CMD --help` shows that command's options (not every command's);
 * searchd --help prints bounds a person reads (64 MiB, not 6.71089e+07). */
START_TEST(help_per_command_and_readable_bounds) {
    char cmd[1200], out[16384];
    snprintf(cmd, sizeof cmd, "%s get --help", SD_TEST_SEARCHCTL);
    ck_assert_int_eq(td_run_output(cmd, out, sizeof out), 0);
    ck_assert_msg(strstr(out, "usage: searchctl get --model MODEL") && strstr(out, "--max-drop") &&
                      strstr(out, "--socket") && !strstr(out, "profile --model") &&
                      !strstr(out, "retune"),
                  "%s", out);
    snprintf(cmd, sizeof cmd, "%s watch --bogus", SD_TEST_SEARCHCTL);
    ck_assert_int_ne(td_run_output(cmd, out, sizeof out), 0);
    ck_assert_msg(strstr(out, "usage: searchctl watch [--model MODEL]"), "%s", out);
    // classify: one output format offline and with --daemon, for the same schedule.
    snprintf(cmd, sizeof cmd,
             "%s classify --daemon --socket %s --model demo --max-flops 0.9 'a fine movie'",
             SD_TEST_SEARCHCTL, td_cur.sock);
    char daemon_out[2048], sched[600];
    ck_assert_int_eq(td_run_output(cmd, daemon_out, sizeof daemon_out), 0);
    snprintf(cmd, sizeof cmd, "%s get --json --socket %s --model demo --max-flops 0.9",
             SD_TEST_SEARCHCTL, td_cur.sock);
    ck_assert_int_eq(td_run_output(cmd, out, sizeof out), 0);
    json_t *rec = json_loads(out, 0, NULL);
    snprintf(sched, sizeof sched, "%s", json_string_value(json_object_get(rec, "schedule")));
    json_decref(rec);
    snprintf(cmd, sizeof cmd, "%s classify --model %s --schedule %s 'a fine movie'",
             SD_TEST_SEARCHCTL, tc_demo_model(), sched);
    ck_assert_int_eq(td_run_output(cmd, out, sizeof out), 0);
    ck_assert_msg(strstr(daemon_out, out) != NULL, "daemon: %s\noffline: %s", daemon_out, out);
    snprintf(cmd, sizeof cmd, "%s classify --pair 'it is' 'is it good' 2>/dev/null",
             SD_TEST_SEARCHCTL);
    ck_assert_int_eq(td_run_output(cmd, out, sizeof out), 0);
    ck_assert_msg(strstr(out, "is it good | it is"), "%s", out);

    snprintf(cmd, sizeof cmd, "%s --help", SD_TEST_SEARCHD);
    ck_assert_int_eq(td_run_output(cmd, out, sizeof out), 0);
    ck_assert_msg(!strstr(out, "e+") && strstr(out, "64..64 MiB, default 1 MiB"), "%s", out);
}
END_TEST

/* Issue 10 item 10: an offline `tune --json` result imported with `add --frontier FILE`: the
 * daemon serves its schedules without searching; another model's file is refused. */
START_TEST(offline_frontier_imported) {
    char tj[400], cmd[2400], out[16384];
    snprintf(tj, sizeof tj, "%s/tune.json", td_cur.dir);
    snprintf(cmd, sizeof cmd,
             "%s tune --model %s --data %s --max-flops 0.9 --generations 2 --latency-examples 0 "
             "--calibrate-seconds 0.3 --json >%s 2>/dev/null",
             SD_TEST_SEARCHCTL, tc_demo_model(), td_data, tj);
    ck_assert_int_eq(system(cmd), 0);
    json_t *offline = json_load_file(tj, 0, NULL);
    ck_assert_ptr_nonnull(offline);
    snprintf(cmd, sizeof cmd, "%s add --socket %s --path %s --data %s --name demo --frontier %s",
             SD_TEST_SEARCHCTL, td_cur.sock, tc_demo_model(), td_data, tj);
    ck_assert_msg(td_run_output(cmd, out, sizeof out) == 0, "%s", out);
    snprintf(cmd, sizeof cmd, "%s frontier --json --socket %s --model demo 2>/dev/null",
             SD_TEST_SEARCHCTL, td_cur.sock);
    ck_assert_int_eq(td_run_output(cmd, out, sizeof out), 0);
    // The daemon re-predicts latency on its own profile and keeps the records no other beats
    // there: every schedule it serves is one of the file's.
    json_t *served = json_loads(out, 0, NULL), *front = json_object_get(offline, "frontier");
    ck_assert_int_gt(json_array_size(served), 0);
    ck_assert_int_le(json_array_size(served), json_array_size(front));
    for (size_t i = 0; i < json_array_size(served); i++) {
        const char *s = json_string_value(json_object_get(json_array_get(served, i), "schedule"));
        int found = 0;
        for (size_t k = 0; k < json_array_size(front) && !found; k++)
            found = strcmp(s, json_string_value(
                                  json_object_get(json_array_get(front, k), "schedule"))) == 0;
        ck_assert_msg(found, "served %s, which the file does not hold", s);
    }
    json_decref(served);
    // Another model's result: refused, naming both hashes.
    json_object_set_new(offline, "weights_hash", json_string("0000000000000001"));
    ck_assert_int_eq(json_dump_file(offline, tj, 0), 0);
    json_decref(offline);
    snprintf(cmd, sizeof cmd, "%s add --socket %s --path %s --data %s --name demo --frontier %s",
             SD_TEST_SEARCHCTL, td_cur.sock, tc_demo_model(), td_data, tj);
    ck_assert_int_ne(td_run_output(cmd, out, sizeof out), 0);
    ck_assert_msg(strstr(out, "other weights (0000000000000001)"), "%s", out);
}
END_TEST

Suite *cli_suite(void) {
    Suite *s = suite_create("cli");
    TCase *tc = tcase_create("cli");
    tcase_add_checked_fixture(tc, td_setup_tuned, td_teardown);
    tcase_add_test(tc, tune_bar_on_a_terminal);
    tcase_add_test(tc, tune_quiet_off_a_terminal);
    tcase_add_test(tc, answers_that_cannot_be_misread);
    tcase_add_test(tc, help_per_command_and_readable_bounds);
    tcase_add_test(tc, offline_frontier_imported);
    suite_add_tcase(s, tc);
    return s;
}
