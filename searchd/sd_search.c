/* Search jobs in the pool. The search thread reports progress under the job's mutex and wakes
 * the loop with one shared uv_async; the loop forwards it to the requesting connection as
 * job.progress, and job.done when the job ends. */
#define _GNU_SOURCE // syscall(SYS_gettid) for a per-thread nice value
#include "sd_search.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "schedules/sc_schedule.h"
#include "schedules/sc_width.h"
#include "sd_conn.h"
#include "sd_dist.h"
#include "sd_error.h"
#include "sd_fleet.h"
#include "sd_log.h"
#include "sd_models.h"
#include "sd_pack.h"
#include "sd_pool.h"
#include "sd_state.h"

#define SD_SEARCH_NICE 10 // searches yield the CPU to the loop thread that answers queries

static void notify(sd_daemon *d, sd_job *j, const char *method, int progress) {
    sd_conn *c = sd_conn_find(d, j->conn_id);
    if (!c) return;
    sd_buf b;
    sd_buf_init(&b);
    if (progress)
        sd_pack_progress(&b.pk, j);
    else
        sd_pack_job(&b.pk, j);
    sd_conn_notify(c, method, &b.sb);
    sd_buf_free(&b);
}

static void progress_cb(void *ud, const sc_progress *p) {
    sd_job *j = ud;
    uv_mutex_lock(&j->lock);
    j->progress = *p;
    j->progress_new = 1;
    uv_mutex_unlock(&j->lock);
    uv_async_send(&j->d->progress_async);
}

static void work_cb(uv_work_t *req) {
    sd_job *j = req->data;
    // On Linux nice is per thread and inherited by the threads the search starts.
    setpriority(PRIO_PROCESS, (id_t)syscall(SYS_gettid), SD_SEARCH_NICE);
    sd_inputs in;
    int rc =
        sd_inputs_load(&in, j->path, j->weights_hash, j->borrowed, j->data, j->holdout, &j->wdiag);
    j->own_model = in.own;
    if (rc == 0) {
        sc_search_opts o;
        sc_search_opts_default(&o);
        o.threads = j->threads;
        o.generations = j->generations;
        o.budget = j->budget;
        o.lat = j->has_lat ? &j->lat : NULL;
        o.width = j->width;
        o.int8 = j->int8;
        o.width_profile = j->width_profile;
        o.progress = progress_cb;
        o.progress_ud = j;
        o.cancel = &j->cancel;
        // In a fleet the evaluations go to the work stream (not with width: sd_dist.h).
        sd_dist_origin *origin = NULL;
        if (j->dist_stream[0] && sd_dist_origin_new(j->d, j->dist_stream, j->id, &origin) == 0) {
            o.evaluate = sd_dist_evaluate;
            o.evaluate_ud = origin;
        }
        rc = sc_search_run(in.em, in.data, in.hold, &o, &j->result, &j->stats, &j->wdiag);
        sd_dist_origin_free(origin);
    }
    if (rc == 0) sd_inputs_lengths(&in, &j->lengths, &j->nlengths);
    sd_inputs_free(&in);
    j->rc = rc;
}

/* Merges a new frontier into the model's: the union, newest record kept for a schedule seen
 * twice, then only the non-dominated ones. The previous frontier goes to `*old` (owned by the
 * caller: freed once the new one is saved, put back when it could not be). */
static int merge(sd_model *m, sc_frontier *add, sc_frontier *old) {
    int n = m->frontier.count + add->count;
    sc_record *rec = malloc(sizeof *rec * (size_t)(n ? n : 1));
    if (!rec) return EN_ENOMEM;
    int k = 0;
    for (int i = 0; i < add->count; i++)
        rec[k++] = add->rec[i];
    for (int i = 0; i < m->frontier.count; i++) {
        uint64_t h = sc_schedule_hash(&m->frontier.rec[i].schedule);
        int dup = 0;
        for (int t = 0; t < add->count && !dup; t++)
            dup = sc_schedule_hash(&add->rec[t].schedule) == h;
        if (!dup) rec[k++] = m->frontier.rec[i];
    }
    *old = m->frontier;
    m->frontier.rec = rec;
    m->frontier.count = k;
    // One width profile per model: the old one if any (a search made with a fresh one had no
    // narrowed records to offer then, as it had the model's), else the new search's.
    if (!old->width) {
        m->frontier.width = add->width;
        add->width = NULL;
    }
    sd_model_repredict(m);
    return 0;
}

/* Installs the job's frontier in the model and saves it; on a failed save the model keeps its
 * previous frontier, in memory as on disk, and the job fails with the system's reason. */
static int install_result(sd_daemon *d, sd_job *j, sd_model *m) {
    sc_frontier old;
    en_diag why;
    int rc = merge(m, &j->result, &old);
    if (rc) // the job fails: a result that was not kept is not "done"
        return en_fail(&j->wdiag, rc,
                       "the search finished but there was no memory to merge its %d schedules "
                       "into the model's frontier, so they were not kept; run tune again",
                       j->result.count);
    if ((rc = sd_state_save_frontier(d, m, &why)) != 0) {
        if (old.width) m->frontier.width = NULL; // shared with old, which keeps it
        sc_frontier_free(&m->frontier);
        m->frontier = old;
        return en_fail(&j->wdiag, rc,
                       "the search finished but its frontier could not be saved, so it was not "
                       "kept: %s",
                       why.msg);
    }
    if (old.width) old.width = NULL; // now the model's
    free(old.rec);
    return 0;
}

static void start_queued(sd_daemon *d);

static void after_work_cb(uv_work_t *req, int status) {
    sd_job *j = req->data;
    sd_daemon *d = j->d;
    sd_model *m = j->model;
    d->jobs_running--;
    sd_dist_refresh(d); // spare cores again, perhaps
    j->finished = sd_now();
    if (j->rc == SD_ECHANGED) { // other weights under the path: keep nothing of this run
        m->changed = 1;
        en_model_free(j->own_model);
        j->own_model = NULL;
        free(j->lengths);
        j->lengths = NULL;
    }
    if (j->own_model) {
        if (!m->model && !m->removed)
            m->model = j->own_model;
        else
            en_model_free(j->own_model);
        j->own_model = NULL;
    }
    sd_model_take_lengths(m, &j->lengths, j->nlengths);
    if (status == UV_ECANCELED) j->rc = EN_ECANCELED;
    if (j->rc == 0 && !m->removed) j->rc = install_result(d, j, m);
    if (j->rc == 0 && !m->removed) {
        j->state = SD_JOB_DONE;
        sd_fleet_publish(d, m, &j->result); // the accuracy side, for the other hosts
        sd_fleet_model_added(d, m);         // and theirs, now that the weights are loaded
        sd_log("job %llu done: %d schedules in %.1f s, %d candidates", (unsigned long long)j->id,
               j->result.count, j->stats.seconds, j->stats.candidates);
    } else if (j->rc == EN_ECANCELED || m->removed) {
        j->state = SD_JOB_CANCELLED;
        snprintf(j->error, sizeof j->error, "%s",
                 j->cancel_reason[0] ? j->cancel_reason : "cancelled");
    } else {
        j->state = SD_JOB_FAILED;
        snprintf(j->error, sizeof j->error, "%s",
                 j->wdiag.msg[0] ? j->wdiag.msg : sd_strerror(j->rc));
        sd_log("job %llu failed: %s", (unsigned long long)j->id, j->error);
    }
    sc_frontier_free(&j->result);
    if (j->width_profile) sc_width_profile_free(j->width_profile);
    free(j->width_profile);
    j->width_profile = NULL;
    if (j->leased) sd_fleet_lease_release(d, m);
    j->leased = 0;
    notify(d, j, "job.done", 0);
    if (j->state == SD_JOB_DONE) sd_notify_updated(d, m->id, "tune");
    j->model = NULL;
    sd_model_unref(m);
    sd_jobs_save(d, NULL);
    start_queued(d);
    sd_pool_done(d);
}

/* A job that could not start: recorded failed with `why`, its requester told. */
static void fail_start(sd_daemon *d, sd_job *j, const char *why) {
    d->jobs_running--;
    j->state = SD_JOB_FAILED;
    j->finished = sd_now();
    snprintf(j->error, sizeof j->error, "%s", why);
    sd_log("job %llu failed: %s", (unsigned long long)j->id, j->error);
    sd_model_unref(j->model);
    j->model = NULL;
    notify(d, j, "job.done", 0);
    sd_jobs_save(d, NULL);
}

static void run(sd_daemon *d, sd_job *j);

#define LEASE_WAIT_MS 2000 // a job waiting for another host's search asks for the lease this often

/* A job starts (`holder`: the host that searches) or stops (NULL) waiting. Waiting jobs take
 * no cores: this host's worker goes on evaluating for the fleet meanwhile (sd_dist_refresh). */
static void set_waiting(sd_daemon *d, sd_job *j, const char *holder) {
    int was = j->waiting_for[0] != '\0', is = holder != NULL;
    if (is)
        snprintf(j->waiting_for, sizeof j->waiting_for, "%s", holder);
    else
        j->waiting_for[0] = '\0';
    if (was == is) return;
    d->jobs_waiting += is ? 1 : -1;
    sd_dist_refresh(d);
}

/* A job that ends without having run: cancelled while it waited, or done because the records
 * of the search it waited for arrived. Its lease (if it won one) is given back. */
static void end_unrun(sd_daemon *d, sd_job *j, sd_job_state state) {
    set_waiting(d, j, NULL);
    d->jobs_running--;
    j->state = state;
    j->finished = sd_now();
    if (state == SD_JOB_CANCELLED)
        snprintf(j->error, sizeof j->error, "%s",
                 j->cancel_reason[0] ? j->cancel_reason : "cancelled");
    if (j->leased) sd_fleet_lease_release(d, j->model);
    j->leased = 0;
    if (j->width_profile) sc_width_profile_free(j->width_profile);
    free(j->width_profile);
    j->width_profile = NULL;
    sd_log("job %llu %s without running: %s", (unsigned long long)j->id, sd_job_state_name(state),
           state == SD_JOB_DONE ? "the search it waited for arrived through the fleet" : j->error);
    sd_model_unref(j->model);
    j->model = NULL;
    notify(d, j, "job.done", 0);
    sd_jobs_save(d, NULL);
    sd_dist_refresh(d);
    start_queued(d);
}

static void leased_cb(sd_daemon *d, uint64_t job_id, const char *holder, int leased);

/* Every LEASE_WAIT_MS while jobs wait: each asks again (its records read with the lease, see
 * sd_fleet_lease), or ends when cancelled; the timer stops when none waits. */
static void lease_wait_cb(uv_timer_t *t) {
    sd_daemon *d = t->data;
    int waiting = 0;
    for (sd_job *j = d->jobs; j; j = j->next) {
        if (j->state != SD_JOB_RUNNING || !j->waiting_for[0] || !j->model) continue;
        waiting++;
        if (j->lease_asked) continue;
        if (atomic_load(&j->cancel)) {
            end_unrun(d, j, SD_JOB_CANCELLED);
            waiting--;
        } else if (sd_fleet_lease(d, j->model, j->id, 1, leased_cb) == 0) {
            j->lease_asked = 1;
        } else { // Redis is away: local state is the truth, the search runs here
            set_waiting(d, j, NULL);
            waiting--;
            run(d, j);
        }
    }
    if (!waiting) uv_timer_stop(t);
}

/* The fleet's answer to the lease: run; or wait while another host searches the model, and
 * then end with its records when they came (else run: that host went away without any). */
static void leased_cb(sd_daemon *d, uint64_t job_id, const char *holder, int leased) {
    sd_job *j = sd_job_find(d, job_id);
    if (!j || j->state != SD_JOB_RUNNING || !j->model) return; // a leasing job stays running
    j->lease_asked = 0;
    j->leased = leased;
    sd_model *m = j->model;
    if (atomic_load(&j->cancel)) {
        end_unrun(d, j, SD_JOB_CANCELLED);
        return;
    }
    if (holder) {
        if (!j->waiting_for[0]) {
            j->merges_before = m->fleet_merges;
            sd_log("job %llu waits: host %s is searching model %s", (unsigned long long)j->id,
                   holder, m->name);
        }
        set_waiting(d, j, holder);
        notify(d, j, "job.progress", 1);
        if (!uv_is_active((uv_handle_t *)&d->lease_wait))
            uv_timer_start(&d->lease_wait, lease_wait_cb, LEASE_WAIT_MS, LEASE_WAIT_MS);
        return;
    }
    if (j->waiting_for[0] && m->fleet_merges != j->merges_before) {
        snprintf(j->results_from, sizeof j->results_from, "%s", j->waiting_for);
        end_unrun(d, j, SD_JOB_DONE);
        return;
    }
    set_waiting(d, j, NULL);
    run(d, j);
}

static void start(sd_daemon *d, sd_job *j) {
    sd_model *m = j->model;
    j->state = SD_JOB_RUNNING;
    j->started = sd_now();
    d->jobs_queued--;
    d->jobs_running++;
    snprintf(j->path, sizeof j->path, "%s", m->path);
    snprintf(j->data, sizeof j->data, "%s", m->data);
    snprintf(j->holdout, sizeof j->holdout, "%s", m->holdout);
    j->weights_hash = m->weights_hash;
    j->borrowed = m->model;
    j->has_lat = m->has_lat;
    if (m->has_lat) j->lat = m->lat;
    j->threads = d->opt.search_threads;
    j->generations = d->opt.search_generations;
    j->dist_stream[0] = '\0';
    if (d->dist && !j->width && sd_dist_stream(m, j->dist_stream, sizeof j->dist_stream) != 0)
        j->dist_stream[0] = '\0'; // data unreadable: evaluated here
    sd_dist_refresh(d);           // this host's cores are taken: its worker pauses
    // A model narrows with one profile, the first a search measured: its records stay valid.
    // Without memory for the copy the job fails; a search without width would not be what
    // was asked, and one with a fresh profile would mix records of two profiles.
    if (j->width && m->frontier.width) {
        j->width_profile = calloc(1, sizeof *j->width_profile);
        if (!j->width_profile || sc_width_profile_copy(m->frontier.width, j->width_profile)) {
            free(j->width_profile);
            j->width_profile = NULL;
            fail_start(d, j, "out of memory copying the model's width profile; nothing was run");
            return;
        }
    }
    // In a fleet, the search runs once the lease is this host's (or Redis is away): run().
    if (sd_fleet_lease(d, m, j->id, 0, leased_cb))
        run(d, j);
    else
        j->lease_asked = 1;
}

/* Hands the job to the pool. */
static void run(sd_daemon *d, sd_job *j) {
    j->work.data = j;
    en_diag why;
    if (sd_pool_submit(d, &j->work, work_cb, after_work_cb, &why) < 0) {
        if (j->width_profile) sc_width_profile_free(j->width_profile);
        free(j->width_profile);
        j->width_profile = NULL;
        fail_start(d, j, why.msg);
    }
}

static void start_queued(sd_daemon *d) {
    while (!d->stopping && d->jobs_running < d->opt.jobs && d->jobs_queued > 0) {
        sd_job *oldest = NULL;
        for (sd_job *j = d->jobs; j; j = j->next)
            if (j->state == SD_JOB_QUEUED) oldest = j;
        if (!oldest) break;
        start(d, oldest);
    }
}

int sd_search_submit(sd_daemon *d, sd_model *m, const sc_query *budget, int width, int int8,
                     uint64_t conn_id, sd_job **out, en_diag *diag) {
    if (d->jobs_running >= d->opt.jobs && d->jobs_queued >= d->opt.max_queued)
        return en_fail(diag, SD_EBUSY,
                       "%d search job(s) running and %d queued, the most searchd keeps "
                       "(--max-queued); cancel one or try again later",
                       d->jobs_running, d->jobs_queued);
    sd_job *j = calloc(1, sizeof *j);
    if (!j || uv_mutex_init(&j->lock) != 0) {
        free(j);
        return en_fail(diag, EN_ENOMEM, "out of memory");
    }
    j->has_lock = 1;
    j->id = d->next_job_id++;
    j->d = d;
    memcpy(j->model_id, m->id, SD_ID_LEN);
    j->model = m;
    sd_model_ref(m);
    j->conn_id = conn_id;
    j->budget = *budget;
    j->width = width;
    j->int8 = int8;
    j->state = SD_JOB_QUEUED;
    j->created = sd_now();
    atomic_init(&j->cancel, 0);
    j->next = d->jobs;
    d->jobs = j;
    d->jobs_queued++;
    // Recorded before it starts: a job the history cannot hold is refused, not run unrecorded.
    en_diag why;
    int rc = sd_jobs_save(d, &why);
    if (rc) {
        d->jobs = j->next;
        d->jobs_queued--;
        d->next_job_id--;
        sd_model_unref(m);
        uv_mutex_destroy(&j->lock);
        free(j);
        return en_fail(diag, rc, "the job could not be recorded, so it was not started: %s",
                       why.msg);
    }
    sd_jobs_trim(d);
    start_queued(d);
    *out = j;
    return 0;
}

static void cancel(sd_daemon *d, sd_job *j, const char *reason) {
    snprintf(j->cancel_reason, sizeof j->cancel_reason, "%s", reason);
    if (j->state == SD_JOB_RUNNING) {
        // after_work_cb records it when the search stops, leased_cb when the lease answers
        atomic_store(&j->cancel, 1);
        if (j->waiting_for[0] && !j->lease_asked) end_unrun(d, j, SD_JOB_CANCELLED);
        return;
    }
    j->state = SD_JOB_CANCELLED;
    j->finished = sd_now();
    snprintf(j->error, sizeof j->error, "%s", reason);
    d->jobs_queued--;
    sd_model_unref(j->model);
    j->model = NULL;
    notify(d, j, "job.done", 0);
}

int sd_search_cancel(sd_daemon *d, sd_job *j, en_diag *diag) {
    if (!sd_job_live(j))
        return en_fail(diag, SD_EJOBDONE, "job %llu already finished: %s",
                       (unsigned long long)j->id, sd_job_state_name(j->state));
    cancel(d, j, "cancelled by job.cancel");
    sd_jobs_save(d, NULL);
    return 0;
}

void sd_search_cancel_all(sd_daemon *d) {
    int n = 0;
    for (sd_job *j = d->jobs; j; j = j->next)
        if (sd_job_live(j)) {
            cancel(d, j, "cancelled: searchd shut down");
            n++;
        }
    if (n) sd_jobs_save(d, NULL);
}

void sd_search_progress_cb(uv_async_t *a) {
    sd_daemon *d = a->data;
    for (sd_job *j = d->jobs; j; j = j->next) {
        if (j->state != SD_JOB_RUNNING) continue;
        uv_mutex_lock(&j->lock);
        int fresh = j->progress_new;
        j->progress_new = 0;
        uv_mutex_unlock(&j->lock);
        if (fresh) notify(d, j, "job.progress", 1);
    }
}
