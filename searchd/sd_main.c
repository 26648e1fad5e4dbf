/* searchd: options, state, listeners, signals, and a clean shutdown proven by uv_loop_close()
 * returning 0. Runs in the foreground, as systemd expects. The one file that sees every part. */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "sd_conn.h"
#include "sd_daemon.h"
#include "sd_dist.h"
#include "sd_fleet.h"
#include "sd_jobs.h"
#include "sd_log.h"
#include "sd_models.h"
#include "sd_read.h"
#include "sd_retune.h"
#include "sd_search.h"
#include "sd_server.h"
#include "sd_state.h"

static sd_daemon the_daemon; // large; one per process

/* Starts a clean shutdown: listeners and connections close, jobs are cancelled and recorded;
 * the loop ends when the pool work still running has finished (sd_daemon_maybe_finish). */
static void stop(sd_daemon *d) {
    if (d->stopping) return;
    d->stopping = 1;
    sd_log("shutting down: %d job(s) running, %d queued, %d connection(s)", d->jobs_running,
           d->jobs_queued, d->nconns);
    sd_server_close(d);
    for (sd_conn *c = d->conns, *next; c; c = next) {
        next = c->next;
        sd_conn_close(c);
    }
    sd_search_cancel_all(d);
    sd_fleet_stop(d);
    sd_dist_stop(d);
    sd_daemon_maybe_finish(d);
}

/* libuv's pool has 4 threads unless UV_THREADPOOL_SIZE says otherwise, read once at its first
 * use. A search holds a pool thread for its whole run (it starts its own workers), and at most
 * --jobs run at once; the other pool work is short and bounded: one retune at a time, the
 * weights check at start, and model.add loads. So --jobs + 4 threads leave 4 that searches never
 * take, and a model load or a retune never waits behind a search (one behind another at worst
 * when more than 3 model.add arrive together). An explicit larger value is kept. */
static void size_pool(const sd_options *o) {
    int want = o->jobs + 4;
    const char *env = getenv("UV_THREADPOOL_SIZE");
    if (env && atoi(env) >= want) return;
    char v[16];
    snprintf(v, sizeof v, "%d", want);
    setenv("UV_THREADPOOL_SIZE", v, 1);
}

static void on_signal(uv_signal_t *h, int signum) {
    sd_daemon *d = h->data;
    if (signum == SIGHUP) {
        en_diag diag;
        if (!d->stopping && sd_retune(d, NULL, 0, 0, 0, "SIGHUP", &diag) != 0)
            sd_log("SIGHUP: %s", diag.msg);
        return;
    }
    if (signum == SIGINT && d->stopping) {
        // Do not wait for the pool: record the searches still running as cancelled (one small
        // atomic write, so job.status after a restart says what happened), then leave.
        int n = sd_jobs_abandon(d, "cancelled: searchd exited at a second SIGINT");
        sd_log("second SIGINT: exiting at once, %d job(s) still running recorded cancelled", n);
        _exit(130);
    }
    stop(d);
}

static void free_all(sd_daemon *d) {
    while (d->models) {
        sd_model *m = d->models;
        d->models = m->next;
        sd_model_unref(m);
    }
    while (d->jobs) {
        sd_job *j = d->jobs;
        d->jobs = j->next;
        sd_job_free(j);
    }
    sd_dist_free(d); // joins the worker thread
    sd_fleet_free(d);
    msgpack_sbuffer_destroy(&d->scratch);
}

int main(int argc, char **argv) {
    sd_daemon *d = &the_daemon;
    en_diag diag = {{0}};
    int rc = sd_options_load(&d->opt, argc, argv, &diag);
    if (rc == 1) {
        sd_options_usage(stdout);
        return 0;
    }
    if (rc) {
        fprintf(stderr, "searchd: %s\n", diag.msg);
        return 2;
    }
    size_pool(&d->opt);
    signal(SIGPIPE, SIG_IGN);
    signal(SIGXFSZ, SIG_IGN); // a file over RLIMIT_FSIZE: the write fails with EFBIG, reported
    d->state_durable = 1;
    uv_loop_t loop;
    if ((rc = uv_loop_init(&loop)) < 0) {
        fprintf(stderr, "searchd: uv_loop_init: %s\n", uv_strerror(rc));
        return 1;
    }
    d->loop = &loop;
    d->started = sd_mono();
    d->limits.max_message = (size_t)d->opt.max_message;
    d->limits.max_depth = d->opt.max_depth;
    msgpack_sbuffer_init(&d->scratch);
    msgpack_packer_init(&d->scratch_pk, &d->scratch, msgpack_sbuffer_write);

    sd_hw_detect(d->opt.fingerprint_override, &d->hw);
    sc_hw_format(&d->hw, d->hw_text, sizeof d->hw_text);
    if ((rc = sd_state_load(d, &diag)) != 0) {
        fprintf(stderr, "searchd: %s\n", diag.msg);
        free_all(d);
        uv_loop_close(&loop);
        return 1;
    }
    sd_jobs_load(d);
    sc_hw last;
    if (sd_state_load_host(d, &last) == 0 && !sc_hw_equal(&last, &d->hw)) {
        char was[256];
        sc_hw_format(&last, was, sizeof was);
        sd_log("hardware changed since the last run: was %s, now %s", was, d->hw_text);
    }
    sd_state_save_host(d);

    if ((rc = sd_server_listen(d, &diag)) != 0) {
        fprintf(stderr, "searchd: %s\n", diag.msg);
        d->stopping = 1;
        sd_server_close(d);
        uv_run(&loop, UV_RUN_DEFAULT);
        free_all(d);
        uv_loop_close(&loop);
        return 1;
    }
    uv_async_init(&loop, &d->progress_async, sd_search_progress_cb);
    d->progress_async.data = d;
    uv_timer_init(&loop, &d->conn_timer);
    d->conn_timer.data = d;
    uv_timer_init(&loop, &d->lease_wait);
    d->lease_wait.data = d;
    if (d->opt.idle_timeout > 0 || d->opt.message_timeout > 0)
        uv_timer_start(&d->conn_timer, sd_read_sweep, 250, 250);
    uv_signal_t *sigs[] = {&d->sigint, &d->sigterm, &d->sighup};
    int signums[] = {SIGINT, SIGTERM, SIGHUP};
    for (int i = 0; i < 3; i++) {
        uv_signal_init(&loop, sigs[i]);
        sigs[i]->data = d;
        uv_signal_start(sigs[i], on_signal, signums[i]);
    }
    // After the models are known: both read their keys.
    if (sd_fleet_start(d, &diag) != 0 || sd_dist_start(d, &diag) != 0) {
        fprintf(stderr, "searchd: %s\n", diag.msg);
        stop(d);
        uv_run(&loop, UV_RUN_DEFAULT);
        free_all(d);
        uv_loop_close(&loop);
        return 2;
    }
    int nmodels = 0;
    for (sd_model *m = d->models; m; m = m->next)
        nmodels++;
    // Models profiled on other hardware (or not at all) are re-measured in the background.
    if (sd_retune(d, NULL, 0, 0, 0, "start", &diag) != 0) sd_log("start: %s", diag.msg);
    // Weights swapped under a registered path are noticed now, not at the next tune.
    if (sd_verify(d, &diag) != 0) sd_log("start: %s", diag.msg);
    sd_log("searchd %s on %s%s%s; state in %s; %d model(s); hardware %s", SEARCHD_VERSION,
           d->opt.socket, d->tcp_addr[0] ? " and tcp " : "", d->tcp_addr, d->opt.state_dir, nmodels,
           d->hw_text);

    uv_run(&loop, UV_RUN_DEFAULT);
    free_all(d);
    rc = uv_loop_close(&loop);
    if (rc != 0) {
        sd_log("uv_loop_close: %s (a handle was left open)", uv_strerror(rc));
        return 1;
    }
    sd_log("stopped cleanly");
    return 0;
}
