/* Issue 11, "nothing blocks, nothing is lost, nothing leaks": each defect an adversarial run
 * found against a real searchd, as a test that failed before the fix. Swapped weights, FIFOs
 * and huge files, failed saves (a full disk: RLIMIT_FSIZE set on the running searchd), names
 * and paths that are not UTF-8, recovery of an intact frontier, errors that quote no file
 * contents, idle and half-sent connections, data sets refused before anything changes, one name
 * for one model, parameter edge cases, and a kill -9 loop during tunes and writes. */
#define _GNU_SOURCE // prlimit(): a full disk simulated on the running searchd
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "schedules/sc_error.h"
#include "searchd/sd_error.h"
#include "test_util.h"

/* 1 when every byte of `s` is valid UTF-8 (what a client may be sent). */
static int utf8_ok(const char *s) {
    return sp_utf8_valid_prefix(s, strlen(s)) == strlen(s);
}

/* Sends `[0, msgid, method, []]` (method of `mlen` bytes, may hold a NUL) and waits for the
 * reply: its code, the message in `msg`. */
static int raw_call(sdc_client *c, uint32_t msgid, const char *method, size_t mlen, char *msg,
                    size_t cap) {
    tc_msg m;
    tc_msg_init(&m);
    tc_msg_head_n(&m, msgid, method, mlen);
    msgpack_pack_array(&m.pk, 0);
    td_send(c, &m);
    tc_msg_free(&m);
    sdc_reply r;
    sp_diag dg = {{0}};
    int rc = sdc_wait_reply(c, msgid, 10000, &r, &dg);
    sdc_reply_free(&r);
    snprintf(msg, cap, "%s", dg.msg);
    return rc;
}

/* Field `key` of the first model of model.list (or -1 / "" without models). */
static int model_count(sdc_client *c) {
    sdc_reply r;
    td_call_ok(c, "model.list", NULL, 0, &r);
    int n = (int)r.result->via.array.size;
    sdc_reply_free(&r);
    return n;
}

static void model_field(sdc_client *c, const char *key, char *buf, size_t cap) {
    sdc_reply r;
    td_call_ok(c, "model.list", NULL, 0, &r);
    ck_assert_int_ge(r.result->via.array.size, 1);
    const msgpack_object *v = sp_map_get(&r.result->via.array.ptr[0], key);
    ck_assert_ptr_nonnull(v);
    if (v->type == MSGPACK_OBJECT_BOOLEAN)
        snprintf(buf, cap, "%s", v->via.boolean ? "true" : "false");
    else
        td_str(&r.result->via.array.ptr[0], key, buf, cap);
    sdc_reply_free(&r);
}

/* info's state_durable and state_error. */
static int durable(sdc_client *c, char *why, size_t cap) {
    sdc_reply r;
    td_call_ok(c, "info", NULL, 0, &r);
    const msgpack_object *v = sp_map_get(r.result, "state_durable");
    ck_assert(v && v->type == MSGPACK_OBJECT_BOOLEAN);
    int ok = v->via.boolean;
    td_str(r.result, "state_error", why, cap);
    sdc_reply_free(&r);
    return ok;
}

static int damaged_count(sdc_client *c) {
    sdc_reply r;
    td_call_ok(c, "info", NULL, 0, &r);
    int n = (int)sp_map_get(r.result, "damaged")->via.array.size;
    sdc_reply_free(&r);
    return n;
}

/* Tunes `model` and waits for job.done: its status and error. */
static void tune_wait(sdc_client *c, const char *model, char *status, size_t cap, char *err,
                      size_t ecap) {
    sdc_reply r;
    sdc_arg m[] = {SDC_ARG_STR("model", model)};
    td_call_ok(c, "tune", m, 1, &r);
    sdc_reply_free(&r);
    sdc_note n;
    ck_assert_int_eq(td_wait_note(c, "job.done", 300000, &n), 0);
    td_str(n.params, "status", status, cap);
    err[0] = '\0';
    if (sp_map_get(n.params, "error")) td_str(n.params, "error", err, ecap);
    sdc_note_free(&n);
}

static double add_model(sdc_client *c, const char *path, const char *name, int replace, int code,
                        char *msg, size_t cap) {
    sdc_arg a[4] = {SDC_ARG_STR("path", path), SDC_ARG_STR("data", td_data),
                    SDC_ARG_STR("name", name), SDC_ARG_BOOL("replace", 1)};
    sdc_reply r;
    sp_diag dg = {{0}};
    int rc = sdc_call(c, "model.add", a, replace ? 4 : 3, 120000, &r, &dg);
    ck_assert_msg(rc == code, "model.add %s as %s: %d %s", path, name, rc, dg.msg);
    double schedules = rc == 0 ? td_num(r.result, "schedules") : -1;
    if (msg) snprintf(msg, cap, "%s", rc == 0 ? "" : dg.msg);
    sdc_reply_free(&r);
    return schedules;
}

/* Replaces the files of model folder `dir` with those of $SEARCHD_SHARED/models/`other`. */
static void swap_weights(const char *dir, const char *other) {
    char from[1200], rel[600];
    snprintf(rel, sizeof rel, "models/%s", other);
    ck_assert_int_eq(tc_remove_tree(dir), 0);
    ck_assert_int_eq(tc_copy_tree(tc_shared_path(from, sizeof from, rel), dir), 0);
}

/* ---- item 1: weights swapped under a registered path ---- */

START_TEST(swapped_weights_noticed) {
    char model[400], msg[1024], status[32], err[1024], buf[64];
    snprintf(model, sizeof model, "%s/m", td_cur.dir);
    td_copy_model(model);
    td_start(&td_cur, NULL);
    sdc_client *c = td_connect(&td_cur);
    add_model(c, model, "mine", 0, 0, NULL, 0);
    tune_wait(c, "mine", status, sizeof status, err, sizeof err);
    ck_assert_str_eq(status, "done");
    char *before = td_frontier_text(c, "mine");
    sdc_close(c);
    // Stopped, the folder gets another model's files (6 layers instead of 4), started again.
    ck_assert_int_eq(td_stop(&td_cur, SIGTERM), 0);
    swap_weights(model, "sst2-bert-L6-H256");
    td_start(&td_cur, NULL);
    c = td_connect(&td_cur);
    for (int i = 0; i < 200; i++) { // the start-up check runs in the pool
        model_field(c, "changed", buf, sizeof buf);
        if (strcmp(buf, "true") == 0) break;
        td_sleep_ms(50);
    }
    ck_assert_str_eq(buf, "true");
    sdc_arg m[] = {SDC_ARG_STR("model", "mine")};
    td_call_err(c, "tune", m, 1, SD_ECHANGED, msg, sizeof msg);
    ck_assert_msg(strstr(msg, "model.add again"), "%s", msg);
    char *after = td_frontier_text(c, "mine");
    ck_assert_str_eq(before, after); // the old records, untouched and unmixed
    free(after);
    sdc_close(c);
    ck_assert_int_eq(td_stop(&td_cur, SIGTERM), 0);

    // The original files back: not changed any more. Swapped while searchd runs and before the
    // weights were loaded: the tune loads them, sees the hash and fails, keeping nothing.
    swap_weights(model, "sst2-bert-L4-H128-demo");
    td_start(&td_cur, NULL);
    c = td_connect(&td_cur);
    for (int i = 0; i < 200; i++) {
        model_field(c, "changed", buf, sizeof buf);
        if (strcmp(buf, "false") == 0) break;
        td_sleep_ms(50);
    }
    ck_assert_str_eq(buf, "false");
    swap_weights(model, "sst2-bert-L6-H256");
    tune_wait(c, "mine", status, sizeof status, err, sizeof err);
    ck_assert_msg(strcmp(status, "failed") == 0 && strstr(err, "other weights") &&
                      strstr(err, "model.add again"),
                  "%s: %s", status, err);
    model_field(c, "changed", buf, sizeof buf);
    ck_assert_str_eq(buf, "true");
    after = td_frontier_text(c, "mine");
    ck_assert_str_eq(before, after);
    free(after);
    // Accepting the new weights: a new model; the name moves only when asked to.
    add_model(c, model, "mine", 0, SD_ENAME, msg, sizeof msg);
    ck_assert_msg(strstr(msg, "replace"), "%s", msg);
    ck_assert_int_eq(add_model(c, model, "mine", 1, 0, NULL, 0), 0); // no schedules yet
    ck_assert_int_eq(model_count(c), 1);
    model_field(c, "changed", buf, sizeof buf);
    ck_assert_str_eq(buf, "false");
    sdc_close(c);
    // Restarted: nothing is damaged (no frontier mixed layer counts).
    ck_assert_int_eq(td_stop(&td_cur, SIGTERM), 0);
    td_start(&td_cur, NULL);
    c = td_connect(&td_cur);
    ck_assert_int_eq(damaged_count(c), 0);
    ck_assert_int_eq(model_count(c), 1);
    sdc_close(c);
    free(before);
}
END_TEST

/* ---- item 3: a save that fails is reported, and nothing is claimed that is not on disk ---- */

static void set_fsize(pid_t pid, rlim_t bytes) { // the soft limit: the hard one is kept
    struct rlimit rl;
    ck_assert_int_eq(prlimit(pid, RLIMIT_FSIZE, NULL, &rl), 0);
    rl.rlim_cur = bytes < rl.rlim_max ? bytes : rl.rlim_max;
    ck_assert_int_eq(prlimit(pid, RLIMIT_FSIZE, &rl, NULL), 0);
}

START_TEST(failed_saves_reported) {
    td_start(&td_cur, NULL);
    sdc_client *c = td_connect(&td_cur);
    char msg[1024], why[600], status[32], err[1024], path[600], cmd[2000];
    char *before = td_frontier_text(c, td_model_id);
    // A full disk: every write of searchd fails with EFBIG ("File too large"; tests run as
    // root, whom a read-only mode would not stop).
    set_fsize(td_cur.pid, 0);
    ck_assert(durable(c, why, sizeof why));
    add_model(c, tc_demo_model(), "renamed", 0, -EFBIG, msg, sizeof msg);
    ck_assert_msg(strstr(msg, "File too large") && strstr(msg, "not updated"), "%s", msg);
    model_field(c, "name", why, sizeof why);
    ck_assert_str_eq(why, "demo"); // nothing changed
    ck_assert(!durable(c, why, sizeof why));
    ck_assert_msg(strstr(why, "File too large"), "%s", why);
    sdc_arg m[] = {SDC_ARG_STR("model", td_model_id)};
    td_call_err(c, "tune", m, 1, -EFBIG, msg, sizeof msg); // the job cannot be recorded
    ck_assert_msg(strstr(msg, "not started") && strstr(msg, "File too large"), "%s", msg);
    set_fsize(td_cur.pid, RLIM_INFINITY);
    // The frontier's save fails (its name is taken by a directory: rename() refuses, for root
    // too): the job fails with the reason and the frontier stays what it was.
    snprintf(path, sizeof path, "%s/frontier-%s.state", td_cur.state, td_model_id);
    snprintf(cmd, sizeof cmd, "mv %s %s.keep && mkdir -p %s/x", path, path, path);
    ck_assert_int_eq(system(cmd), 0);
    tune_wait(c, td_model_id, status, sizeof status, err, sizeof err);
    ck_assert_msg(strcmp(status, "failed") == 0 && strstr(err, "not kept") &&
                      strstr(err, "Is a directory"),
                  "%s: %s", status, err);
    char *after = td_frontier_text(c, td_model_id);
    ck_assert_str_eq(before, after);
    free(after);
    // model.remove when model-<id>.state cannot be deleted: refused, the model stays.
    snprintf(path, sizeof path, "%s/model-%s.state", td_cur.state, td_model_id);
    snprintf(cmd, sizeof cmd, "mv %s %s.keep && mkdir -p %s/x", path, path, path);
    ck_assert_int_eq(system(cmd), 0);
    td_call_err(c, "model.remove", m, 1, -EISDIR, msg, sizeof msg);
    ck_assert_msg(strstr(msg, "not removed") && strstr(msg, "stays registered"), "%s", msg);
    ck_assert_int_eq(model_count(c), 1);
    sdc_close(c);
    ck_assert_int_eq(td_stop(&td_cur, SIGTERM), 0);
    // Put back as it was on disk: everything the replies said is there after a restart.
    snprintf(cmd, sizeof cmd,
             "cd %s && rm -rf frontier-%s.state model-%s.state && mv frontier-%s.state.keep "
             "frontier-%s.state && mv model-%s.state.keep model-%s.state",
             td_cur.state, td_model_id, td_model_id, td_model_id, td_model_id, td_model_id,
             td_model_id);
    ck_assert_int_eq(system(cmd), 0);
    td_start(&td_cur, NULL);
    c = td_connect(&td_cur);
    model_field(c, "name", why, sizeof why);
    ck_assert_str_eq(why, "demo");
    after = td_frontier_text(c, td_model_id);
    ck_assert_str_eq(before, after);
    free(after);
    ck_assert(durable(c, why, sizeof why));
    sdc_close(c);
    free(before);
}
END_TEST

/* ---- item 5: a damaged model-<id>.state does not throw the intact frontier away ---- */

START_TEST(intact_frontier_adopted) {
    td_damage_state(td_cur.state, "model");
    td_start(&td_cur, NULL);
    sdc_client *c = td_connect(&td_cur);
    ck_assert_int_eq(damaged_count(c), 1);
    ck_assert_int_eq(model_count(c), 0);
    double n = add_model(c, tc_demo_model(), "demo", 0, 0, NULL, 0);
    ck_assert_msg(n > 0, "the frontier was not adopted: %g schedules", n);
    char *adopted = td_frontier_text(c, td_model_id);
    sdc_close(c);
    ck_assert_int_eq(td_stop(&td_cur, SIGTERM), 0);
    td_start(&td_cur, NULL);
    c = td_connect(&td_cur);
    char *after = td_frontier_text(c, td_model_id);
    ck_assert_str_eq(adopted, after);
    ck_assert_int_eq(damaged_count(c), 0);
    free(adopted);
    free(after);
    sdc_close(c);
}
END_TEST

/* ---- item 9: model.add checks the data set completely before it changes anything ---- */

START_TEST(add_validates_data_first) {
    td_start(&td_cur, NULL);
    sdc_client *c = td_connect(&td_cur);
    char data[400], msg[1024], before[1100], after[1100];
    model_field(c, "data", before, sizeof before);
    snprintf(data, sizeof data, "%s/one-class.tsv", td_cur.dir);
    tc_write_text(data, "sentence\tlabel\na good film\t1\nfine acting\t1\nlovely\t1\n");
    sdc_arg a[] = {SDC_ARG_STR("path", tc_demo_model()), SDC_ARG_STR("data", data)};
    td_call_err(c, "model.add", a, 2, SC_EONECLASS, msg, sizeof msg);
    ck_assert_msg(strstr(msg, "one-class.tsv") && strstr(msg, "two classes"), "%s", msg);
    // Two classes but too few to hold out enough for the drop bound.
    snprintf(data, sizeof data, "%s/few.tsv", td_cur.dir);
    tc_write_text(data, "sentence\tlabel\na good film\t1\na bad film\t0\ngreat\t1\nawful\t0\n");
    td_call_err(c, "model.add", a, 2, EN_EDATA, msg, sizeof msg);
    ck_assert_msg(strstr(msg, "few.tsv") && strstr(msg, "held-out"), "%s", msg);
    // The registered model kept its data set.
    model_field(c, "data", after, sizeof after);
    ck_assert_str_eq(before, after);
    ck_assert_int_eq(model_count(c), 1);
    sdc_close(c);
}
END_TEST

/* ---- item 10: one name, one model ---- */

START_TEST(one_name_one_model) {
    td_start(&td_cur, NULL);
    sdc_client *c = td_connect(&td_cur);
    char other[600], msg[1024], id[64];
    snprintf(other, sizeof other, "%s/models/sst2-bert-L6-H256", tc_shared());
    add_model(c, other, "demo", 0, SD_ENAME, msg, sizeof msg);
    ck_assert_msg(strstr(msg, td_model_id) && strstr(msg, "replace"), "%s", msg);
    add_model(c, other, "0123456789abcdef", 0, SP_EPARAMS, msg, sizeof msg);
    ck_assert_msg(strstr(msg, "looks like a model id"), "%s", msg);
    add_model(c, other, "l6", 0, 0, NULL, 0);
    ck_assert_int_eq(model_count(c), 2);
    // The same weights again under a name another model holds: refused too.
    add_model(c, tc_demo_model(), "l6", 0, SD_ENAME, msg, sizeof msg);
    // replace: the name moves to these weights and the model that held it goes.
    add_model(c, other, "demo", 1, 0, NULL, 0);
    ck_assert_int_eq(model_count(c), 1);
    model_field(c, "model", id, sizeof id);
    ck_assert_str_ne(id, td_model_id);
    // model.remove by name removes the model that has the name, and only it.
    sdc_arg m[] = {SDC_ARG_STR("model", "demo")};
    sdc_reply r;
    td_call_ok(c, "model.remove", m, 1, &r);
    ck_assert_str_eq(td_str(r.result, "model", msg, sizeof msg), id);
    sdc_reply_free(&r);
    ck_assert_int_eq(model_count(c), 0);
    sdc_close(c);
}
END_TEST

/* ---- item 8: idle and half-sent connections do not hold slots and memory ---- */

static int ping(sdc_client *c) {
    sdc_reply r;
    int rc = sdc_call(c, "ping", NULL, 0, 5000, &r, NULL);
    sdc_reply_free(&r);
    return rc;
}

/* `[0, msgid, "ping", [{"pad": <str of n bytes>}]]` into `m` (tc_msg_init'ed). */
static void padded_request(tc_msg *m, uint32_t msgid, size_t n) {
    char *pad = malloc(n + 1);
    memset(pad, 'p', n);
    pad[n] = '\0';
    const char *const kv[] = {"pad", pad, NULL};
    tc_msg_request_kv(m, msgid, "ping", kv);
    free(pad);
}

START_TEST(idle_and_half_sent_connections) {
    const char *const extra[] = {
        "--idle-timeout", "1", "--message-timeout", "1", "--max-connections", "3", NULL};
    td_start(&td_cur, extra);
    td_sleep_ms(1500); // td_start's probe connection has gone
    sdc_client *idle1 = td_connect(&td_cur), *idle2 = td_connect(&td_cur),
               *sub = td_connect(&td_cur);
    ck_assert_int_eq(ping(idle1), 0);
    ck_assert_int_eq(ping(idle2), 0);
    sdc_reply r;
    sdc_arg m[] = {SDC_ARG_STR("model", "demo")};
    td_call_ok(sub, "subscribe", m, 1, &r); // owed notifications: never idle
    sdc_reply_free(&r);
    // Full: a fourth is turned away while the idle ones hold their slots...
    sdc_client *late = td_connect(&td_cur);
    ck_assert_int_eq(ping(late), SP_ECLOSED);
    sdc_close(late);
    td_sleep_ms(2500);
    // ...and gets in once they were closed for idling; the subscriber was kept.
    ck_assert_int_eq(ping(idle1), SP_ECLOSED);
    ck_assert_int_eq(ping(idle2), SP_ECLOSED);
    ck_assert_int_eq(ping(sub), 0);
    late = td_connect(&td_cur);
    ck_assert_int_eq(ping(late), 0);
    // A client that keeps talking is never idle.
    for (int i = 0; i < 8; i++) {
        td_sleep_ms(400);
        ck_assert_int_eq(ping(late), 0);
    }
    // Half a request: an SP_ETIMEOUT error with its msgid, then the connection closes.
    tc_msg half;
    tc_msg_init(&half);
    padded_request(&half, 77, 1000);
    ck_assert_int_eq(sdc_send_raw(late, half.sb.data, half.sb.size / 2, NULL), 0);
    tc_msg_free(&half);
    sp_diag dg;
    ck_assert_int_eq(sdc_wait_reply(late, 77, 5000, &r, &dg), SP_ETIMEOUT);
    sdc_reply_free(&r);
    ck_assert_msg(strstr(dg.msg, "--message-timeout"), "%s", dg.msg);
    ck_assert_int_eq(ping(late), SP_ECLOSED);
    sdc_close(late);
    sdc_close(idle1);
    sdc_close(idle2);
    sdc_close(sub);
    ck_assert_int_eq(td_stop(&td_cur, SIGTERM), 0);

    // Memory: 800 kB beginnings of 1 MB requests from several clients; over --max-buffered
    // (2 MB here) the one that goes over is closed, the others go on.
    const char *const capped[] = {"--max-buffered", "2000000", NULL};
    td_start(&td_cur, capped);
    sdc_client *cs[3];
    tc_msg big;
    tc_msg_init(&big);
    padded_request(&big, 5, 1000000);
    for (int i = 0; i < 3; i++) {
        cs[i] = td_connect(&td_cur);
        int rc = sdc_send_raw(cs[i], big.sb.data, 800000, NULL); // the third may be cut off
        ck_assert(rc == 0 || (i == 2 && rc == SP_ECLOSED));
        td_sleep_ms(300); // read by searchd in this order
    }
    int rc = sdc_wait_reply(cs[2], 5, 5000, &r, &dg);
    sdc_reply_free(&r);
    ck_assert_msg(rc == SP_ETOOBIG || rc == SP_ECLOSED, "%d %s", rc, dg.msg);
    ck_assert(td_log_has(&td_cur, "unfinished requests and unsent replies"));
    for (int i = 0; i < 2; i++) { // the first two finish their requests and are answered
        ck_assert_int_eq(sdc_send_raw(cs[i], big.sb.data + 800000, big.sb.size - 800000, NULL), 0);
        ck_assert_int_eq(sdc_wait_reply(cs[i], 5, 5000, &r, &dg), SP_EPARAMS); // no 'pad' arg
        sdc_reply_free(&r);
        ck_assert_int_eq(ping(cs[i]), 0);
    }
    tc_msg_free(&big);
    for (int i = 0; i < 3; i++)
        sdc_close(cs[i]);
}
END_TEST

/* ---- kill -9 at random instants, during tunes and writes ---- */

/* Leftover temp files of interrupted writes in the state dir (searchd removes them at start). */
static int temp_files(const char *dir) {
    DIR *dh = opendir(dir);
    ck_assert_ptr_nonnull(dh);
    int n = 0;
    for (struct dirent *e; (e = readdir(dh)) != NULL;)
        n += strstr(e->d_name, ".tmp.") != NULL;
    closedir(dh);
    return n;
}

/* What one cycle does until searchd dies under it: 0 tunes and watches, 1 re-adds the model
 * (model and latency files written), 2 tunes and cancels (jobs.state written twice a round). */
static void busy(sdc_client *c, int kind) {
    sdc_arg m[] = {SDC_ARG_STR("model", "demo")};
    sdc_arg add[] = {SDC_ARG_STR("path", tc_demo_model()), SDC_ARG_STR("data", td_data),
                     SDC_ARG_STR("name", "demo")};
    for (int round = 0; round < 1000; round++) {
        sdc_reply r;
        int rc;
        if (kind == 1) {
            rc = sdc_call(c, "model.add", add, 3, 10000, &r, NULL);
        } else {
            rc = sdc_call(c, "tune", m, 1, 10000, &r, NULL);
            double job = rc == 0 ? td_num(r.result, "job") : 0;
            sdc_reply_free(&r);
            sdc_arg j[] = {SDC_ARG_NUM("job", job)};
            for (int i = 0; rc == 0 && i < (kind == 0 ? 200 : 1); i++)
                rc = sdc_call(c, kind == 0 ? "job.status" : "job.cancel", j, 1, 10000, &r, NULL),
                sdc_reply_free(&r);
        }
        sdc_reply_free(&r);
        if (rc == SP_ECLOSED || rc == SP_ETIMEOUT) return;
    }
}

START_TEST(kill9_loop) {
    const char *env = getenv("SD_KILL_CYCLES");
    int cycles = env ? atoi(env) : 100, interrupted = 0, kinds[3] = {0, 0, 0};
    unsigned seed = 11;
    double t0 = (double)time(NULL);
    for (int i = 0; i <= cycles; i++) {
        td_start(&td_cur, NULL);
        sdc_client *c = td_connect(&td_cur);
        // What the last kill left: every file intact, nothing half-written kept.
        ck_assert_msg(damaged_count(c) == 0, "cycle %d: a damaged state file", i);
        ck_assert_int_eq(model_count(c), 1);
        ck_assert_int_eq(temp_files(td_cur.state), 0);
        sdc_reply r;
        td_call_ok(c, "schedule.frontier", (sdc_arg[]){SDC_ARG_STR("model", "demo")}, 1, &r);
        ck_assert_int_ge(r.result->via.array.size, 1);
        sdc_reply_free(&r);
        if (i == cycles) { // the last start only checks; count the jobs the kills interrupted
            for (double job = 1, misses = 0; misses < 500; job++) { // the last 100 are kept
                sdc_arg j[] = {SDC_ARG_NUM("job", job)};
                int rc = sdc_call(c, "job.status", j, 1, 5000, &r, NULL);
                char st[32];
                if (rc == 0)
                    interrupted +=
                        strcmp(td_str(r.result, "status", st, sizeof st), "interrupted") == 0;
                misses = rc == 0 ? 0 : misses + 1;
                sdc_reply_free(&r);
            }
            sdc_close(c);
            break;
        }
        int delay = 20 + (int)(rand_r(&seed) % 300); // ms after the start
        pid_t killer = fork();
        if (killer == 0) {
            td_sleep_ms(delay);
            kill(td_cur.pid, SIGKILL);
            _exit(0);
        }
        kinds[i % 3]++;
        busy(c, i % 3);
        sdc_close(c);
        int st;
        waitpid(killer, &st, 0);
        waitpid(td_cur.pid, &st, 0);
        ck_assert_msg(WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL, "cycle %d: searchd status %d", i,
                      st);
        td_cur.pid = 0;
    }
    fprintf(stderr,
            "kill -9 loop: %d cycles in %.0f s (%d during tunes, %d during re-adds, %d during "
            "tune/cancel writes); %d jobs found interrupted; 0 damaged files, 0 temp files left\n",
            cycles, (double)time(NULL) - t0, kinds[0], kinds[1], kinds[2], interrupted);
}
END_TEST

/* ---- item 4: names and paths that are not UTF-8 are refused at the door ---- */

START_TEST(not_utf8_refused) {
    sdc_client *c = td_connect(&td_cur);
    const char *good = tc_demo_model();
    char bad_path[300], msg[512];
    snprintf(bad_path, sizeof bad_path, "%s/\xff\xfe-model", td_cur.dir);
    sdc_arg p1[] = {SDC_ARG_STR("path", bad_path), SDC_ARG_STR("data", td_data)};
    td_call_err(c, "model.add", p1, 2, SP_EPARAMS, msg, sizeof msg);
    ck_assert_msg(strstr(msg, "'path'") && strstr(msg, "UTF-8"), "%s", msg);
    sdc_arg p2[] = {SDC_ARG_STR("path", good), SDC_ARG_STR("data", td_data),
                    SDC_ARG_STR("name", "caf\xc3\x28")}; // a broken 2-byte sequence
    td_call_err(c, "model.add", p2, 3, SP_EPARAMS, msg, sizeof msg);
    ck_assert_msg(strstr(msg, "'name'") && strstr(msg, "UTF-8"), "%s", msg);
    sdc_arg p3[] = {SDC_ARG_STR("path", good), SDC_ARG_STR("data", td_data),
                    SDC_ARG_STR("name", "\xed\xa0\x80")}; // a UTF-16 surrogate
    td_call_err(c, "model.add", p3, 3, SP_EPARAMS, msg, sizeof msg);
    // Whatever a client sent is quoted back as valid UTF-8, escaped, and cut short.
    sdc_arg key[] = {SDC_ARG_STR("model", "x"), SDC_ARG_NUM("\xff\x01zz", 1)};
    td_call_err(c, "schedule.get", key, 2, SP_EPARAMS, msg, sizeof msg);
    ck_assert_msg(utf8_ok(msg) && strstr(msg, "\\xff\\x01zz"), "%s", msg);
    char method[200];
    memset(method, 'm', sizeof method);
    method[0] = (char)0xc0;
    ck_assert_int_eq(raw_call(c, 9, method, sizeof method, msg, sizeof msg), SP_EMETHOD);
    ck_assert_msg(utf8_ok(msg) && strstr(msg, "\\xc0mmm") && strstr(msg, "'...") &&
                      !strstr(msg, "mmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmm"),
                  "%s", msg);
    sdc_reply r;
    td_call_ok(c, "model.list", NULL, 0, &r); // nothing was registered
    ck_assert_int_eq(r.result->via.array.size, 0);
    sdc_reply_free(&r);
    sdc_close(c);
}
END_TEST

/* ---- items 2 and 7: FIFOs, devices and huge files never block a thread or the start ---- */

START_TEST(fifo_files_never_block) {
    char p[600], model[400], cmd[2000], out[4096];
    // A FIFO named jobs.state: start-up goes on, the file is set aside as damaged.
    ck_assert_int_eq(mkdir(td_cur.state, 0700), 0);
    snprintf(p, sizeof p, "%s/jobs.state", td_cur.state);
    ck_assert_int_eq(mkfifo(p, 0600), 0);
    td_start(&td_cur, NULL);
    sdc_client *c = td_connect(&td_cur);
    sdc_reply r;
    td_call_ok(c, "info", NULL, 0, &r);
    const msgpack_object *dmg = sp_map_get(r.result, "damaged");
    ck_assert_int_eq(dmg->via.array.size, 1);
    char buf[600];
    ck_assert_ptr_nonnull(strstr(td_str(&dmg->via.array.ptr[0], "error", buf, sizeof buf), "FIFO"));
    sdc_reply_free(&r);
    // A FIFO as data, as config.json, as model.safetensors, as vocab.txt; /dev/zero as vocab.
    snprintf(p, sizeof p, "%s/fifo.tsv", td_cur.dir);
    ck_assert_int_eq(mkfifo(p, 0600), 0);
    td_add_refused(c, tc_demo_model(), p, "FIFO");
    snprintf(model, sizeof model, "%s/m", td_cur.dir);
    td_copy_model(model);
    static const char *const files[] = {"config.json", "model.safetensors", "vocab.txt"};
    for (int i = 0; i < 3; i++) {
        snprintf(cmd, sizeof cmd, "cd %s && mv %s %s.real && mkfifo %s", model, files[i], files[i],
                 files[i]);
        ck_assert_int_eq(system(cmd), 0);
        td_add_refused(c, model, td_data, files[i]);
        snprintf(cmd, sizeof cmd, "cd %s && rm %s && mv %s.real %s", model, files[i], files[i],
                 files[i]);
        ck_assert_int_eq(system(cmd), 0);
    }
    snprintf(cmd, sizeof cmd, "cd %s && rm vocab.txt && ln -s /dev/zero vocab.txt", model);
    ck_assert_int_eq(system(cmd), 0);
    td_add_refused(c, model, td_data, "character device");
    // A data file over the cap (sparse: made at once, never read).
    snprintf(p, sizeof p, "%s/huge.tsv", td_cur.dir);
    snprintf(cmd, sizeof cmd, "truncate -s 2G %s", p);
    ck_assert_int_eq(system(cmd), 0);
    td_add_refused(c, tc_demo_model(), p, "byte limit");
    // Nothing is stuck: a good add is answered, and SIGTERM (td_teardown) exits 0.
    sdc_arg ok[] = {SDC_ARG_STR("path", tc_demo_model()), SDC_ARG_STR("data", td_data)};
    td_call_ok(c, "model.add", ok, 2, &r);
    sdc_reply_free(&r);
    sdc_close(c);
    // --config: /dev/zero, a FIFO, a huge file: refused at once.
    static const char *const configs[] = {"/dev/zero", "FIFO", "HUGE"};
    for (int i = 0; i < 3; i++) {
        const char *file = configs[i];
        if (strcmp(file, "FIFO") == 0) {
            snprintf(p, sizeof p, "%s/conf.fifo", td_cur.dir);
            ck_assert_int_eq(mkfifo(p, 0600), 0);
            file = p;
        } else if (strcmp(file, "HUGE") == 0) {
            snprintf(p, sizeof p, "%s/conf.huge", td_cur.dir);
            snprintf(cmd, sizeof cmd, "truncate -s 100M %s", p);
            ck_assert_int_eq(system(cmd), 0);
            file = p;
        }
        snprintf(cmd, sizeof cmd, "timeout 20 %s --socket %s/c.sock --state-dir %s/st2 --config %s",
                 SD_TEST_SEARCHD, td_cur.dir, td_cur.dir, file);
        int rc = td_run_output(cmd, out, sizeof out);
        ck_assert_msg(rc != 0 && rc != 124 && strstr(out, "--config") &&
                          (strstr(out, "regular file") || strstr(out, "byte limit")),
                      "--config %s: %d %s", file, rc, out);
    }
}
END_TEST

/* ---- item 6: errors name the file and the problem, never its contents ---- */

START_TEST(errors_quote_no_contents) {
    sdc_client *c = td_connect(&td_cur);
    char model[400], path[600], data[400], msg[1024];
    snprintf(model, sizeof model, "%s/m", td_cur.dir);
    td_copy_model(model);
    // A text file as weights: its first 8 bytes are not printed as a "header length".
    snprintf(path, sizeof path, "%s/model.safetensors", model);
    tc_write_text(path, "SECRET-PASSWORD-1234 and the rest of a private text file");
    sdc_arg a[] = {SDC_ARG_STR("path", model), SDC_ARG_STR("data", td_data)};
    td_call_err(c, "model.add", a, 2, EN_EFORMAT, msg, sizeof msg);
    ck_assert_msg(strstr(msg, "model.safetensors") && !strstr(msg, "SECRET") &&
                      !strstr(msg, "5777366553695831379"), // those 8 bytes as a number
                  "%s", msg);
    // Bad JSON: jansson's quote of the offending token is cut.
    snprintf(path, sizeof path, "%s/config.json", model);
    tc_write_text(path, "topsecretword {}");
    td_call_err(c, "model.add", a, 2, EN_EFORMAT, msg, sizeof msg);
    ck_assert_msg(strstr(msg, "config.json") && !strstr(msg, "topsecret"), "%s", msg);
    // A data set's label: a short escaped excerpt of what the caller wrote.
    snprintf(data, sizeof data, "%s/label.tsv", td_cur.dir);
    char text[2200] = "sentence\tlabel\ngood\t";
    memset(text + strlen(text), 'L', 1500);
    tc_write_text(data, strcat(text, "\n"));
    sdc_arg b[] = {SDC_ARG_STR("path", tc_demo_model()), SDC_ARG_STR("data", data)};
    td_call_err(c, "model.add", b, 2, EN_ELABEL, msg, sizeof msg);
    ck_assert_msg(strstr(msg, "label.tsv:2") && strstr(msg, "LLL'...") && strlen(msg) < 400, "%s",
                  msg);
    sdc_close(c);
}
END_TEST

/* ---- item 11: parameter edge cases ---- */

START_TEST(parameter_edge_cases) {
    sdc_client *c = td_connect(&td_cur);
    char msg[512];
    static const struct {
        const char *key;
        double value;
    } bad[] = {{"max_drop", -1},       {"max_drop", -0.5},   {"max_drop", 1.5},
               {"max_drop", 1},        {"max_drop", 0.5}, // "1" meant as 1%: refused (issue 10)
               {"max_flops", -1},      {"max_flops", 0},     {"max_flops", 2},
               {"max_latency_ms", -1}, {"max_latency_ms", 0}};
    // The budget is checked as given, -1 (once "not given") included.
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        sdc_arg a[] = {SDC_ARG_STR("model", "demo"), SDC_ARG_NUM(bad[i].key, bad[i].value)};
        td_call_err(c, "tune", a, 2, SP_EPARAMS, msg, sizeof msg);
        ck_assert_msg(strstr(msg, bad[i].key) && strstr(msg, "out of range"), "%s", msg);
        td_call_err(c, "schedule.get", a, 2, SP_EPARAMS, msg, sizeof msg);
    }
    // A method name holding a NUL byte is reported as such.
    ck_assert_int_eq(raw_call(c, 12, "ping\0evil", 9, msg, sizeof msg), SP_EMETHOD);
    ck_assert_msg(strstr(msg, "NUL byte at position 4") && utf8_ok(msg), "%s", msg);
    sdc_close(c);

    // searchd's options: NaN, and a socket in a directory that does not exist.
    char cmd[1200], out[4096];
    snprintf(cmd, sizeof cmd, "%s --socket %s/x.sock --state-dir %s/st2 --calib-seconds nan",
             SD_TEST_SEARCHD, td_cur.dir, td_cur.dir);
    ck_assert_int_ne(td_run_output(cmd, out, sizeof out), 0);
    ck_assert_msg(strstr(out, "--calib-seconds") && strstr(out, "nan"), "%s", out);
    snprintf(cmd, sizeof cmd, "%s --socket %s/no/such/dir/x.sock --state-dir %s/st2",
             SD_TEST_SEARCHD, td_cur.dir, td_cur.dir);
    ck_assert_int_ne(td_run_output(cmd, out, sizeof out), 0);
    ck_assert_msg(strstr(out, "/no/such/dir: No such file or directory") &&
                      !strstr(out, "ermission denied"),
                  "%s", out);

    // searchctl status: only ids it can send exactly, and nothing more.
    static const char *const ids[] = {
        "1.5", "1e3", "0x10", "-1", "0", "9007199254740993", "99999999999999999999999", "7 8", ""};
    for (size_t i = 0; i < sizeof ids / sizeof ids[0]; i++) {
        snprintf(cmd, sizeof cmd, "%s status --socket %s %s", SD_TEST_SEARCHCTL, td_cur.sock,
                 ids[i]);
        ck_assert_msg(td_run_output(cmd, out, sizeof out) == 2 && strstr(out, "job number"),
                      "status %s: %s", ids[i], out);
    }
    snprintf(cmd, sizeof cmd, "%s status --socket %s 9007199254740992", SD_TEST_SEARCHCTL,
             td_cur.sock);
    int rc = td_run_output(cmd, out, sizeof out); // representable: asked, and unknown
    ck_assert_msg(rc == 1 && strstr(out, "no job 9007199254740992"), "%d %s", rc, out);
}
END_TEST

Suite *integrity_suite(void) {
    Suite *s = suite_create("integrity");
    TCase *e = tcase_create("door");
    tcase_set_timeout(e, 120);
    tcase_add_checked_fixture(e, td_setup_empty, td_teardown);
    tcase_add_test(e, not_utf8_refused);
    tcase_add_test(e, errors_quote_no_contents);
    suite_add_tcase(s, e);
    TCase *f = tcase_create("files");
    tcase_set_timeout(f, 120);
    tcase_add_checked_fixture(f, td_setup_dir, td_teardown);
    tcase_add_test(f, fifo_files_never_block);
    suite_add_tcase(s, f);
    TCase *tu = tcase_create("tuned");
    tcase_set_timeout(tu, 300);
    tcase_add_checked_fixture(tu, td_setup_tuned, td_teardown);
    tcase_add_test(tu, parameter_edge_cases);
    suite_add_tcase(s, tu);
    TCase *st = tcase_create("state");
    tcase_set_timeout(st, 600);
    tcase_add_checked_fixture(st, td_setup_template, td_teardown);
    tcase_add_test(st, failed_saves_reported);
    tcase_add_test(st, intact_frontier_adopted);
    tcase_add_test(st, add_validates_data_first);
    tcase_add_test(st, one_name_one_model);
    suite_add_tcase(s, st);
    TCase *cn = tcase_create("connections");
    tcase_set_timeout(cn, 120);
    tcase_add_checked_fixture(cn, td_setup_template, td_teardown);
    tcase_add_test(cn, idle_and_half_sent_connections);
    suite_add_tcase(s, cn);
    TCase *k9 = tcase_create("kill9");
    tcase_set_timeout(k9, 600);
    tcase_add_checked_fixture(k9, td_setup_template, td_teardown);
    tcase_add_test(k9, kill9_loop);
    suite_add_tcase(s, k9);
    TCase *sw = tcase_create("swap");
    tcase_set_timeout(sw, 600);
    tcase_add_checked_fixture(sw, td_setup_dir, td_teardown);
    tcase_add_test(sw, swapped_weights_noticed);
    suite_add_tcase(s, sw);
    return s;
}
