/* The state directory across restarts: everything restored, damaged files set aside, kill -9
 * in the middle of a job, a clean SIGTERM, and a simulated hardware change. */
#include <dirent.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "searchd/sd_error.h"
#include "test_util.h"

static double start_tune(sdc_client *c) {
    sdc_reply r;
    sdc_arg m[] = {SDC_ARG_STR("model", td_model_id)};
    td_call_ok(c, "tune", m, 1, &r);
    double job = td_num(r.result, "job");
    sdc_reply_free(&r);
    // Wait until it is really running (first progress).
    sdc_note n;
    ck_assert_int_eq(td_wait_note(c, "job.progress", 60000, &n), 0);
    sdc_note_free(&n);
    return job;
}

static void job_status(sdc_client *c, double job, char *status, size_t cap, char *err,
                       size_t ecap) {
    sdc_reply r;
    sdc_arg j[] = {SDC_ARG_NUM("job", job)};
    td_call_ok(c, "job.status", j, 1, &r);
    td_str(r.result, "status", status, cap);
    if (err && sp_map_get(r.result, "error")) td_str(r.result, "error", err, ecap);
    sdc_reply_free(&r);
}

/* job.status as one JSON string without `seconds` of a live job (it grows): to compare. */
static char *job_text(sdc_client *c, double job) {
    sdc_reply r;
    sdc_arg j[] = {SDC_ARG_NUM("job", job)};
    td_call_ok(c, "job.status", j, 1, &r);
    json_t *o = sdc_to_json(r.result);
    char *s = json_dumps(o, JSON_COMPACT | JSON_SORT_KEYS | JSON_REAL_PRECISION(17));
    json_decref(o);
    sdc_reply_free(&r);
    return s;
}

static void job_progress(sdc_client *c, double job, double *done, double *total, double *best) {
    sdc_reply r;
    sdc_arg j[] = {SDC_ARG_NUM("job", job)};
    td_call_ok(c, "job.status", j, 1, &r);
    *done = td_num(r.result, "done");
    *total = td_num(r.result, "total");
    *best = td_num(r.result, "best");
    sdc_reply_free(&r);
}

START_TEST(restart_restores_everything) {
    td_start(&td_cur, NULL);
    sdc_client *c = td_connect(&td_cur);
    char *before = td_frontier_text(c, td_model_id);
    // The template's tune (job 1) is history already restored once: it kept its progress.
    char *job_before = job_text(c, 1);
    double done, total, best;
    job_progress(c, 1, &done, &total, &best);
    ck_assert(total > 0);
    ck_assert(done == total);
    ck_assert(best >= 0); // 0 when nothing met the default budget (1% drop) on 160 sentences
    sdc_reply r;
    sdc_arg m[] = {SDC_ARG_STR("model", td_model_id)};
    td_call_ok(c, "profile", m, 1, &r);
    double fixed = td_num(r.result, "fixed_ms");
    sdc_reply_free(&r);
    sdc_close(c);
    ck_assert_int_eq(td_stop(&td_cur, SIGTERM), 0);
    td_start(&td_cur, NULL);
    c = td_connect(&td_cur);
    char *after = td_frontier_text(c, td_model_id);
    ck_assert_str_eq(before, after);
    char *job_after = job_text(c, 1);
    ck_assert_str_eq(job_before, job_after);
    free(job_before);
    free(job_after);
    td_call_ok(c, "profile", m, 1, &r);
    ck_assert(td_num(r.result, "fixed_ms") == fixed);
    sdc_reply_free(&r);
    td_call_ok(c, "info", NULL, 0, &r);
    const msgpack_object *models = sp_map_get(r.result, "models");
    ck_assert_int_eq(models->via.array.size, 1);
    char buf[600];
    ck_assert_str_eq(td_str(&models->via.array.ptr[0], "name", buf, sizeof buf), "demo");
    ck_assert_str_eq(td_str(&models->via.array.ptr[0], "data", buf, sizeof buf), td_data);
    sdc_reply_free(&r);
    free(before);
    free(after);
    sdc_close(c);
}
END_TEST

START_TEST(damaged_file_set_aside) {
    char path[600];
    snprintf(path, sizeof path, "%s/frontier-%s.state", td_cur.state, td_model_id);
    td_damage_state(td_cur.state, "frontier");
    td_start(&td_cur, NULL);
    sdc_client *c = td_connect(&td_cur);
    sdc_reply r;
    td_call_ok(c, "info", NULL, 0, &r);
    const msgpack_object *dmg = sp_map_get(r.result, "damaged");
    ck_assert_int_eq(dmg->via.array.size, 1);
    char buf[1200];
    ck_assert_str_eq(td_str(&dmg->via.array.ptr[0], "file", buf, sizeof buf), path);
    ck_assert_ptr_nonnull(
        strstr(td_str(&dmg->via.array.ptr[0], "error", buf, sizeof buf), "checksum"));
    sdc_reply_free(&r);
    ck_assert_int_ne(access(path, F_OK), 0); // moved aside ...
    char cmd[800];
    snprintf(cmd, sizeof cmd, "ls %s | grep -q 'frontier-%s.state.damaged-'", td_cur.state,
             td_model_id);
    ck_assert_int_eq(system(cmd), 0); // ... and kept for inspection
    // The model is still there, without schedules: never the damaged ones.
    sdc_arg q[] = {SDC_ARG_STR("model", td_model_id), SDC_ARG_NUM("max_flops", 1)};
    td_call_err(c, "schedule.get", q, 2, SD_ENOFRONTIER, NULL, 0);
    sdc_close(c);
}
END_TEST

START_TEST(kill9_mid_job) {
    td_start(&td_cur, NULL);
    sdc_client *c = td_connect(&td_cur);
    char *before = td_frontier_text(c, td_model_id);
    double job = start_tune(c);
    sdc_close(c);
    ck_assert_int_eq(td_stop(&td_cur, SIGKILL), 128 + SIGKILL);
    td_start(&td_cur, NULL);
    c = td_connect(&td_cur);
    char status[32], err[600] = "";
    job_status(c, job, status, sizeof status, err, sizeof err);
    ck_assert_str_eq(status, "interrupted");
    ck_assert_ptr_nonnull(strstr(err, "tune again"));
    char *after = td_frontier_text(c, td_model_id);
    ck_assert_str_eq(before, after); // what was stored is intact
    free(before);
    free(after);
    // New jobs get new numbers.
    sdc_reply r;
    sdc_arg m[] = {SDC_ARG_STR("model", td_model_id)};
    td_call_ok(c, "tune", m, 1, &r);
    ck_assert(td_num(r.result, "job") > job);
    sdc_reply_free(&r);
    sdc_close(c);
}
END_TEST

START_TEST(sigterm_cancels_and_records) {
    td_start(&td_cur, NULL);
    sdc_client *c = td_connect(&td_cur);
    double job = start_tune(c);
    ck_assert_int_eq(td_stop(&td_cur, SIGTERM), 0); // clean: uv_loop_close() returned 0
    sdc_close(c);
    td_start(&td_cur, NULL);
    c = td_connect(&td_cur);
    char status[32], err[600] = "";
    job_status(c, job, status, sizeof status, err, sizeof err);
    ck_assert_str_eq(status, "cancelled");
    ck_assert_ptr_nonnull(strstr(err, "shut down"));
    // What the search had reached when it stopped, not 0/0.
    double done, total, best;
    job_progress(c, job, &done, &total, &best);
    ck_assert(total > 0);
    ck_assert(done > 0 && done <= total);
    sdc_close(c);
}
END_TEST

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

/* SIGINT starts a shutdown that waits for the pool; a second SIGINT exits at once, recording the
 * search if it still runs. A model.add calibrating for 30 s keeps the first shutdown waiting, so
 * exit status 130 (not 0) shows the second SIGINT ended it. */
START_TEST(second_sigint_exits_at_once) {
    const char *const extra[] = {"--calib-seconds", "30", "--search-generations", "1000", NULL};
    td_start(&td_cur, extra);
    sdc_client *c = td_connect(&td_cur);
    double job = start_tune(c);
    const char *const add[] = {"path", tc_demo_model(), "data", td_data, NULL};
    tc_msg m;
    tc_msg_init(&m);
    tc_msg_request_kv(&m, 77, "model.add", add);
    td_send(c, &m);
    tc_msg_free(&m);
    sdc_reply r;
    td_call_ok(c, "ping", NULL, 0, &r); // model.add is in the pool now
    sdc_reply_free(&r);

    kill(td_cur.pid, SIGINT);
    for (int i = 0; i < 400 && !td_log_has(&td_cur, "shutting down"); i++)
        usleep(50000);
    ck_assert(td_log_has(&td_cur, "shutting down: 1 job(s) running"));
    int st;
    ck_assert_msg(waitpid(td_cur.pid, &st, WNOHANG) == 0, "searchd exited at the first SIGINT");
    double t0 = now_s();
    ck_assert_int_eq(td_stop(&td_cur, SIGINT), 130);
    double took = now_s() - t0;
    ck_assert_msg(took < 10, "the second SIGINT took %.1f s", took); // the add has 30 s to go
    ck_assert(td_log_has(&td_cur, "second SIGINT: exiting at once"));
    sdc_close(c);

    td_start(&td_cur, NULL);
    c = td_connect(&td_cur);
    char status[32], err[600] = "";
    job_status(c, job, status, sizeof status, err, sizeof err);
    ck_assert_str_eq(status, "cancelled");
    // Usually the search still runs at the second SIGINT; when it noticed the first one in
    // between, the shutdown recorded it already.
    ck_assert_msg(strstr(err, "second SIGINT") || strstr(err, "shut down"), "error: %s", err);
    double done, total, best;
    job_progress(c, job, &done, &total, &best);
    ck_assert(done > 0 && total > 0);
    td_call_ok(c, "model.list", NULL, 0, &r); // the template's model, intact
    ck_assert_int_eq(r.result->via.array.size, 1);
    sdc_reply_free(&r);
    sdc_close(c);
}
END_TEST

/* Polls `profile` until its fingerprint's cpu is `cpu`. */
static void wait_profile_cpu(sdc_client *c, const char *cpu) {
    sdc_arg m[] = {SDC_ARG_STR("model", td_model_id)};
    for (int i = 0; i < 600; i++) {
        sdc_reply r;
        td_call_ok(c, "profile", m, 1, &r);
        char buf[200];
        int same =
            strcmp(td_str(sp_map_get(r.result, "fingerprint"), "cpu", buf, sizeof buf), cpu) == 0;
        sdc_reply_free(&r);
        if (same) return;
        td_sleep_ms(50);
    }
    ck_abort_msg("profile never moved to cpu '%s'", cpu);
}

START_TEST(hardware_change_retunes) {
    char fp[400], opt[420];
    snprintf(fp, sizeof fp, "%s/fingerprint", td_cur.dir);
    snprintf(opt, sizeof opt, "@%s", fp);
    tc_write_text(fp, "Simulated CPU A\n");
    const char *const extra[] = {"--fingerprint-override", opt, NULL};
    // The template was profiled on the real CPU: at start searchd sees a change and retunes.
    td_start(&td_cur, extra);
    sdc_client *c = td_connect(&td_cur);
    wait_profile_cpu(c, "Simulated CPU A");
    sdc_reply r;
    sdc_arg m[] = {SDC_ARG_STR("model", td_model_id)};
    td_call_ok(c, "subscribe", m, 1, &r);
    sdc_reply_free(&r);
    // Unchanged hardware: retune has nothing to do.
    td_call_ok(c, "retune", NULL, 0, &r);
    ck_assert(!sp_map_get(r.result, "changed")->via.boolean);
    ck_assert_int_eq(sp_map_get(r.result, "models")->via.array.size, 0);
    sdc_reply_free(&r);

    tc_write_text(fp, "Simulated CPU B\n");
    td_call_ok(c, "retune", NULL, 0, &r);
    ck_assert(sp_map_get(r.result, "changed")->via.boolean);
    ck_assert(td_num(r.result, "seconds") > 0);
    const msgpack_object *ms = sp_map_get(r.result, "models");
    ck_assert_int_eq(ms->via.array.size, 1);
    char buf[600];
    ck_assert_ptr_nonnull(
        strstr(td_str(&ms->via.array.ptr[0], "old_hardware", buf, sizeof buf), "Simulated CPU A"));
    ck_assert_ptr_nonnull(
        strstr(td_str(&ms->via.array.ptr[0], "hardware", buf, sizeof buf), "Simulated CPU B"));
    ck_assert(td_num(&ms->via.array.ptr[0], "schedules_repredicted") >= 1);
    sdc_reply_free(&r);
    sdc_note n;
    ck_assert_int_eq(td_wait_note(c, "schedule.updated", 10000, &n), 0);
    ck_assert_str_eq(td_str(n.params, "reason", buf, sizeof buf), "retune");
    sdc_note_free(&n);
    // Every record now carries the new host, with a re-predicted latency.
    td_call_ok(c, "schedule.frontier", m, 1, &r);
    for (uint32_t i = 0; i < r.result->via.array.size; i++) {
        const msgpack_object *e = &r.result->via.array.ptr[i];
        ck_assert_ptr_nonnull(strstr(td_str(e, "hardware", buf, sizeof buf), "Simulated CPU B"));
        ck_assert(td_num(e, "latency_ms") > 0);
    }
    sdc_reply_free(&r);

    // SIGHUP does the same.
    tc_write_text(fp, "Simulated CPU C\n");
    kill(td_cur.pid, SIGHUP);
    ck_assert_int_eq(td_wait_note(c, "schedule.updated", 60000, &n), 0);
    sdc_note_free(&n);
    wait_profile_cpu(c, "Simulated CPU C");
    td_call_ok(c, "info", NULL, 0, &r);
    ck_assert(td_num(r.result, "last_retune_seconds") > 0);
    sdc_reply_free(&r);
    sdc_close(c);
}
END_TEST

Suite *state_suite(void) {
    Suite *s = suite_create("state");
    TCase *tc = tcase_create("state");
    tcase_set_timeout(tc, 300);
    tcase_add_checked_fixture(tc, td_setup_template, td_teardown);
    tcase_add_test(tc, restart_restores_everything);
    tcase_add_test(tc, damaged_file_set_aside);
    tcase_add_test(tc, kill9_mid_job);
    tcase_add_test(tc, second_sigint_exits_at_once);
    tcase_add_test(tc, hardware_change_retunes);
    suite_add_tcase(s, tc);
    // SIGTERM while the search threads run: also under ThreadSanitizer (tag "threads",
    // tests/daemon/meson.build).
    TCase *th = tcase_create("threads");
    tcase_set_tags(th, "threads");
    tcase_set_timeout(th, 300);
    tcase_add_checked_fixture(th, td_setup_template, td_teardown);
    tcase_add_test(th, sigterm_cancels_and_records);
    suite_add_tcase(s, th);
    return s;
}
