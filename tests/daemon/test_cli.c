/* searchctl's daemon side as a person sees it: the progress bar of `tune --daemon` on a
 * terminal (a pty of a given width) and nothing of it when stderr is not a terminal. */
#include <errno.h>
#include <pty.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "test_util.h"

static td t;

static void setup(void) {
    td_init(&t, 1);
    td_start(&t, NULL);
}

static void teardown(void) {
    if (t.pid > 0) ck_assert_int_eq(td_stop(&t, SIGTERM), 0);
    td_cleanup(&t);
}

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
    const char *const args[] = {"tune", "--daemon",    "--socket", t.sock, "--model",
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
    snprintf(err, sizeof err, "%s/stderr", t.dir);
    snprintf(outp, sizeof outp, "%s/stdout", t.dir);
    snprintf(cmd, sizeof cmd,
             "%s tune --daemon --socket %s --model demo --max-flops 0.9 >%s 2>%s </dev/null",
             SD_TEST_SEARCHCTL, t.sock, outp, err);
    ck_assert_int_eq(system(cmd), 0);
    FILE *f = fopen(err, "r");
    ck_assert_ptr_nonnull(f);
    int ch;
    long n = 0;
    while ((ch = fgetc(f)) != EOF) {
        ck_assert_msg(ch != '\r' && ch != '\033', "terminal codes in a redirected stderr");
        n++;
    }
    fclose(f);
    ck_assert_int_eq(n, 0);
    snprintf(cmd, sizeof cmd, "grep -q ' done in ' %s && grep -q '^chosen: ' %s", outp, outp);
    ck_assert_int_eq(system(cmd), 0);
}
END_TEST

Suite *cli_suite(void) {
    Suite *s = suite_create("cli");
    TCase *tc = tcase_create("cli");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, tune_bar_on_a_terminal);
    tcase_add_test(tc, tune_quiet_off_a_terminal);
    suite_add_tcase(s, tc);
    return s;
}
