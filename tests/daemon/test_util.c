#include "test_util.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

char td_template[300];
char td_model_id[32];
char td_data[300];
static char template_dir[256]; // holds td_template and td_data
td td_cur;

void td_sleep_ms(int ms) {
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000};
    nanosleep(&ts, NULL);
}

/* The paths of a test dir `t->dir` made by the caller. */
static void td_paths(td *t) {
    snprintf(t->sock, sizeof t->sock, "%s/s.sock", t->dir);
    snprintf(t->state, sizeof t->state, "%s/state", t->dir);
    snprintf(t->log, sizeof t->log, "%s/searchd.log", t->dir);
}

void td_init(td *t, int from_template) {
    memset(t, 0, sizeof *t);
    tc_temp_dir_or_fail(t->dir, sizeof t->dir, "daemon");
    td_paths(t);
    if (from_template)
        ck_assert_msg(tc_copy_tree(td_template, t->state) == 0, "copying %s: %s", td_template,
                      strerror(errno));
}

void td_setup_dir(void) {
    td_init(&td_cur, 0);
}

void td_setup_template(void) {
    td_init(&td_cur, 1);
}

void td_setup_empty(void) {
    td_init(&td_cur, 0);
    td_start(&td_cur, NULL);
}

void td_setup_tuned(void) {
    td_init(&td_cur, 1);
    td_start(&td_cur, NULL);
}

void td_teardown(void) {
    if (td_cur.pid > 0) ck_assert_int_eq(td_stop(&td_cur, SIGTERM), 0);
    td_cleanup(&td_cur);
}

static pid_t spawn(const td *t, const char *const *extra) {
    const char *argv[40] = {SD_TEST_SEARCHD,
                            "--socket",
                            t->sock,
                            "--state-dir",
                            t->state,
                            "--calib-seconds",
                            "0.2",
                            "--search-generations",
                            "2"};
    int n = 9;
    for (int i = 0; extra && extra[i] && n < 38; i++)
        argv[n++] = extra[i];
    argv[n] = NULL;
    pid_t pid = fork();
    if (pid == 0) {
        int fd = open(t->log, O_WRONLY | O_CREAT | O_APPEND, 0600);
        if (fd >= 0) {
            dup2(fd, 2);
            dup2(fd, 1);
        }
        execv(argv[0], (char *const *)argv);
        _exit(127);
    }
    return pid;
}

void td_start(td *t, const char *const *extra) {
    t->pid = spawn(t, extra);
    ck_assert_int_gt(t->pid, 0);
    for (int i = 0; i < 400; i++) { // up to 20 s (ASan is slow to start)
        sdc_client *c;
        if (sdc_connect_unix(t->sock, &c, NULL) == 0) {
            sdc_reply r;
            int rc = sdc_call(c, "ping", NULL, 0, 5000, &r, NULL);
            sdc_reply_free(&r);
            sdc_close(c);
            if (rc == 0) return;
        }
        int st;
        if (waitpid(t->pid, &st, WNOHANG) == t->pid) {
            t->pid = 0;
            ck_abort_msg("searchd exited at start (status %d); see %s", st, t->log);
        }
        td_sleep_ms(50);
    }
    ck_abort_msg("searchd did not answer within 20 s; see %s", t->log);
}

int td_stop(td *t, int sig) {
    if (t->pid <= 0) return -1;
    kill(t->pid, sig);
    int st = 0;
    for (int i = 0; i < 1200; i++) { // up to 60 s
        if (waitpid(t->pid, &st, WNOHANG) == t->pid) {
            t->pid = 0;
            return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
        }
        td_sleep_ms(50);
    }
    kill(t->pid, SIGKILL);
    waitpid(t->pid, &st, 0);
    t->pid = 0;
    return -1;
}

void td_cleanup(td *t) {
    if (t->pid > 0) td_stop(t, SIGKILL);
    tc_temp_done(t->dir);
}

int td_log_has(const td *t, const char *text) {
    char *log = tc_read_file(t->log, NULL);
    int has = strstr(log, text) != NULL;
    free(log);
    return has;
}

sdc_client *td_connect(const td *t) {
    sdc_client *c = NULL;
    sp_diag dg;
    int rc = sdc_connect_unix(t->sock, &c, &dg);
    ck_assert_msg(rc == 0, "connect: %s", dg.msg);
    return c;
}

char *td_frontier_text(sdc_client *c, const char *model) {
    sdc_reply r;
    sdc_arg m[] = {SDC_ARG_STR("model", model)};
    td_call_ok(c, "schedule.frontier", m, 1, &r);
    json_t *j = sdc_to_json(r.result);
    char *s = json_dumps(j, JSON_COMPACT);
    json_decref(j);
    sdc_reply_free(&r);
    return s;
}

void td_copy_model(const char *to) {
    ck_assert_msg(tc_copy_tree(tc_demo_model(), to) == 0, "copying the demo model to %s: %s", to,
                  strerror(errno));
}

void td_send(sdc_client *c, const tc_msg *m) {
    ck_assert_int_eq(sdc_send_raw(c, m->sb.data, m->sb.size, NULL), 0);
}

void td_add_refused(sdc_client *c, const char *path, const char *data, const char *expect) {
    sdc_arg a[] = {SDC_ARG_STR("path", path), SDC_ARG_STR("data", data)};
    sdc_reply r;
    sp_diag dg = {{0}};
    int rc = sdc_call(c, "model.add", a, 2, 60000, &r, &dg); // a blocked pool thread: timeout
    sdc_reply_free(&r);
    ck_assert_msg(rc < 0 && rc != SP_ETIMEOUT && rc != SP_ECLOSED, "model.add %s %s: %d %s", path,
                  data, rc, dg.msg);
    ck_assert_msg(strstr(dg.msg, expect) != NULL, "model.add error '%s' does not mention '%s'",
                  dg.msg, expect);
}

void td_damage_state(const char *state_dir, const char *kind) {
    char path[600];
    snprintf(path, sizeof path, "%s/%s-%s.state", state_dir, kind, td_model_id);
    int fd = open(path, O_RDWR);
    ck_assert_msg(fd >= 0, "%s", path);
    char byte;
    ck_assert_int_eq(pread(fd, &byte, 1, 40), 1);
    byte ^= 0x20;
    ck_assert_int_eq(pwrite(fd, &byte, 1, 40), 1);
    close(fd);
}

int td_run_output(const char *cmd, char *out, size_t cap) {
    char full[2000], *text;
    snprintf(full, sizeof full, "%s 2>&1", cmd);
    int rc = tc_shell(full, &text);
    snprintf(out, cap, "%s", text);
    free(text);
    return rc;
}

void td_call_ok(sdc_client *c, const char *method, const sdc_arg *args, int n, sdc_reply *r) {
    sp_diag dg = {{0}};
    int rc = sdc_call(c, method, args, n, 60000, r, &dg);
    ck_assert_msg(rc == 0, "%s failed: %d %s", method, rc, dg.msg);
    ck_assert_ptr_nonnull(r->result);
}

void td_call_err(sdc_client *c, const char *method, const sdc_arg *args, int n, int code, char *msg,
                 size_t cap) {
    sdc_reply r;
    sp_diag dg = {{0}};
    int rc = sdc_call(c, method, args, n, 60000, &r, &dg);
    sdc_reply_free(&r);
    ck_assert_msg(rc == code, "%s: expected error %d, got %d (%s)", method, code, rc, dg.msg);
    if (msg) snprintf(msg, cap, "%s", dg.msg);
}

double td_num(const msgpack_object *map, const char *key) {
    double v = -1e300;
    const msgpack_object *o = sp_map_get(map, key);
    ck_assert_msg(o != NULL, "no field '%s'", key);
    ck_assert_int_eq(sp_obj_num(o, &v), 0);
    return v;
}

const char *td_str(const msgpack_object *map, const char *key, char *buf, size_t cap) {
    int rc = sp_get_str(map, key, 1, buf, cap, NULL);
    ck_assert_msg(rc == 0, "no string field '%s'", key);
    return buf;
}

int td_wait_note(sdc_client *c, const char *method, int timeout_ms, sdc_note *n) {
    for (;;) {
        int rc = sdc_next_notification(c, timeout_ms, n, NULL);
        if (rc) return rc;
        if (strcmp(n->method, method) == 0) return 0;
        sdc_note_free(n);
    }
}

int td_tune_wait(sdc_client *c, const char *model, sp_diag *dg) {
    sdc_reply r;
    sdc_arg tune[] = {SDC_ARG_STR("model", model)};
    int rc = sdc_call(c, "tune", tune, 1, 60000, &r, dg);
    sdc_reply_free(&r);
    sdc_note n;
    while (rc == 0 && (rc = sdc_next_notification(c, 600000, &n, dg)) == 0) {
        int done = strcmp(n.method, "job.done") == 0;
        char status[32] = "";
        if (done) sp_get_str(n.params, "status", 1, status, sizeof status, NULL);
        sdc_note_free(&n);
        if (done) return strcmp(status, "done") == 0 ? 0 : -1;
    }
    return rc;
}

/* ---- the template: the demo model added and tuned once for all tests ---- */

/* The first `lines` lines of `from` into a new file `to`; 0 or -1. */
static int head(const char *from, const char *to, int lines) {
    FILE *in = fopen(from, "r"), *out = in ? fopen(to, "w") : NULL;
    int ch, rc = in && out ? 0 : -1;
    while (rc == 0 && lines > 0 && (ch = getc(in)) != EOF) {
        lines -= ch == '\n';
        if (putc(ch, out) == EOF) rc = -1;
    }
    if (out && fclose(out) != 0) rc = -1;
    if (in) fclose(in);
    return rc;
}

/* Runs outside any test (before srunner): no ck_assert here, each failure says why. */
int td_template_build(void) {
    const char *shared = getenv("SEARCHD_SHARED"), *model = getenv("SEARCHD_DEMO_MODEL");
    if (!shared || !model) {
        fprintf(stderr, "SEARCHD_SHARED and SEARCHD_DEMO_MODEL must be set (meson test does)\n");
        return 1;
    }
    td t;
    memset(&t, 0, sizeof t);
    if (!tc_temp_dir(t.dir, sizeof t.dir, "template")) return 1;
    snprintf(template_dir, sizeof template_dir, "%s", t.dir);
    td_paths(&t);
    snprintf(td_template, sizeof td_template, "%s", t.state);
    // A small data file, so a tune takes seconds: the first 160 sentences of search.tsv.
    snprintf(td_data, sizeof td_data, "%s/small.tsv", t.dir);
    char search[1024];
    snprintf(search, sizeof search, "%s/data/sst2/search.tsv", shared);
    if (head(search, td_data, 161) != 0) {
        fprintf(stderr, "template: cannot copy the head of %s to %s\n", search, td_data);
        return 1;
    }
    t.pid = spawn(&t, NULL);
    sdc_client *c = NULL;
    for (int i = 0; i < 400 && sdc_connect_unix(t.sock, &c, NULL) != 0; i++)
        td_sleep_ms(50);
    if (!c) {
        fprintf(stderr, "template: searchd did not start\n");
        return 1;
    }
    sdc_reply r;
    sp_diag dg = {{0}};
    sdc_arg add[] = {SDC_ARG_STR("path", model), SDC_ARG_STR("data", td_data),
                     SDC_ARG_STR("name", "demo")};
    int rc = sdc_call(c, "model.add", add, 3, 120000, &r, &dg);
    if (rc == 0) rc = sp_get_str(r.result, "model", 1, td_model_id, sizeof td_model_id, NULL);
    sdc_reply_free(&r);
    if (rc == 0) rc = td_tune_wait(c, "demo", &dg);
    sdc_close(c);
    kill(t.pid, SIGTERM);
    int st;
    waitpid(t.pid, &st, 0);
    if (rc) {
        fprintf(stderr, "template: %d %s (see %s)\n", rc, dg.msg, t.log);
        return 1;
    }
    return 0;
}

void td_template_remove(void) {
    tc_temp_done(template_dir);
}
