/* Search jobs: at most --jobs run in the thread pool at once, up to --max-queued wait in order.
 * The search thread reports progress under the job's mutex and wakes the loop with one shared
 * uv_async; the loop forwards it to the requesting connection as job.progress. */
#define _GNU_SOURCE // syscall(SYS_gettid) for a per-thread nice value
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "engine/en_dataset.h"
#include "schedules/sc_schedule.h"
#include "schedules/sc_width.h"
#include "sd_daemon.h"
#include "sd_error.h"

#define SD_SEARCH_NICE 10 // searches yield the CPU to the loop thread that answers queries

const char *sd_job_state_name(sd_job_state s) {
    static const char *const names[] = {"queued", "running",   "done",
                                        "failed", "cancelled", "interrupted"};
    return (unsigned)s < sizeof names / sizeof names[0] ? names[s] : "unknown";
}

sd_job *sd_job_find(sd_daemon *d, uint64_t id) {
    for (sd_job *j = d->jobs; j; j = j->next)
        if (j->id == id) return j;
    return NULL;
}

sc_progress sd_job_progress(sd_job *j) {
    if (!j->has_lock) return j->progress;
    uv_mutex_lock(&j->lock);
    sc_progress p = j->progress;
    uv_mutex_unlock(&j->lock);
    return p;
}

int sd_lengths_load(const char *path, const en_model *em, int **lengths, int *count,
                    en_diag *diag) {
    en_dataset *ds;
    int rc = en_dataset_load(path, em, &ds, diag);
    if (rc) return rc;
    int *l = malloc(sizeof *l * (size_t)ds->count);
    if (!l) {
        en_dataset_free(ds);
        return en_fail(diag, EN_ENOMEM, "out of memory");
    }
    for (int i = 0; i < ds->count; i++)
        l[i] = ds->ex[i].n;
    *lengths = l;
    *count = ds->count;
    en_dataset_free(ds);
    return 0;
}

void sd_model_take_lengths(sd_model *m, int **lengths, int n) {
    if (!*lengths) return;
    if (!m->lengths && n > 0) {
        m->lengths = *lengths;
        m->nlengths = n;
    } else {
        free(*lengths);
    }
    *lengths = NULL;
}

void sd_model_repredict(sd_model *m) {
    if (m->has_lat && m->lengths && m->model) {
        for (int i = 0; i < m->frontier.count; i++)
            m->frontier.rec[i].latency_ms = sc_latency_predict(
                &m->lat, &m->model->cfg, &m->frontier.rec[i].schedule, m->lengths, m->nlengths);
        sc_schedule full; // the "before" of every record's speed-up
        sc_schedule_full(&full, EN_METRIC_ATTN, m->model->cfg.layers);
        m->base_latency_ms =
            sc_latency_predict(&m->lat, &m->model->cfg, &full, m->lengths, m->nlengths);
    }
    sc_frontier_normalize(&m->frontier);
}

static void job_done_notify(sd_daemon *d, sd_job *j) {
    sd_conn *c = sd_conn_find(d, j->conn_id);
    if (!c) return;
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    sd_pack_job(&pk, j);
    sd_conn_notify(c, "job.done", &sb);
    msgpack_sbuffer_destroy(&sb);
}

/* Forgets the oldest finished jobs beyond SD_JOBS_KEPT. */
static void trim(sd_daemon *d) {
    int kept = 0;
    for (sd_job **pp = &d->jobs; *pp;) {
        sd_job *j = *pp;
        int live = j->state == SD_JOB_QUEUED || j->state == SD_JOB_RUNNING;
        if (!live && ++kept > SD_JOBS_KEPT) {
            *pp = j->next;
            if (j->has_lock) uv_mutex_destroy(&j->lock);
            free(j);
            continue;
        }
        pp = &j->next;
    }
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
    en_diag *diag = &j->wdiag;
    const en_model *em = j->borrowed;
    int rc = 0;
    if (!em && (rc = en_model_load(j->path, &j->own_model, diag)) == 0) {
        em = j->own_model;
        rc = sd_weights_check(j->path, j->weights_hash, em->weights_hash, diag);
    }
    en_dataset *data = NULL, *hold = NULL;
    if (rc == 0) rc = en_dataset_load(j->data, em, &data, diag);
    if (rc == 0 && j->holdout[0]) rc = en_dataset_load(j->holdout, em, &hold, diag);
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
        rc = sc_search_run(em, data, hold, &o, &j->result, &j->stats, diag);
    }
    const en_dataset *eval = hold ? hold : data;
    if (rc == 0 && eval) {
        j->lengths = malloc(sizeof *j->lengths * (size_t)eval->count);
        for (int i = 0; j->lengths && i < eval->count; i++)
            j->lengths[i] = eval->ex[i].n;
        j->nlengths = j->lengths ? eval->count : 0;
    }
    en_dataset_free(data);
    en_dataset_free(hold);
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
    if (rc) return en_fail(&j->wdiag, rc, "out of memory merging the frontier");
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
    d->tasks--;
    d->jobs_running--;
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
        sd_log(d, "job %llu done: %d schedules in %.1f s, %d candidates", (unsigned long long)j->id,
               j->result.count, j->stats.seconds, j->stats.candidates);
    } else if (j->rc == EN_ECANCELED || m->removed) {
        j->state = SD_JOB_CANCELLED;
        snprintf(j->error, sizeof j->error, "%s",
                 j->cancel_reason[0] ? j->cancel_reason : "cancelled");
    } else {
        j->state = SD_JOB_FAILED;
        snprintf(j->error, sizeof j->error, "%s",
                 j->wdiag.msg[0] ? j->wdiag.msg : sd_strerror(j->rc));
        sd_log(d, "job %llu failed: %s", (unsigned long long)j->id, j->error);
    }
    sc_frontier_free(&j->result);
    if (j->width_profile) sc_width_profile_free(j->width_profile);
    free(j->width_profile);
    j->width_profile = NULL;
    job_done_notify(d, j);
    if (j->state == SD_JOB_DONE) sd_notify_updated(d, m->id, "tune");
    j->model = NULL;
    sd_model_unref(m);
    sd_state_save_jobs(d, NULL);
    start_queued(d);
    sd_daemon_maybe_finish(d);
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
    // A model narrows with one profile, the first a search measured: its records stay valid.
    if (j->width && m->frontier.width && (j->width_profile = calloc(1, sizeof *j->width_profile)) &&
        sc_width_profile_copy(m->frontier.width, j->width_profile) != 0) {
        free(j->width_profile);
        j->width_profile = NULL;
        j->width = 0; // out of memory: tokens only, never records of another profile
    }
    j->work.data = j;
    d->tasks++;
    int rc = uv_queue_work(d->loop, &j->work, work_cb, after_work_cb);
    if (rc < 0) { // cannot happen with a live loop; keep the books straight anyway
        d->tasks--;
        d->jobs_running--;
        j->state = SD_JOB_FAILED;
        j->finished = sd_now();
        snprintf(j->error, sizeof j->error, "uv_queue_work: %s", uv_strerror(rc));
        j->model = NULL;
        sd_model_unref(m);
        job_done_notify(d, j);
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

int sd_job_submit(sd_daemon *d, sd_model *m, const sc_query *budget, int width, int int8,
                  uint64_t conn_id, sd_job **out,
                  en_diag *diag) {
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
    int rc = sd_state_save_jobs(d, &why);
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
    trim(d);
    start_queued(d);
    *out = j;
    return 0;
}

static void cancel(sd_daemon *d, sd_job *j, const char *reason) {
    snprintf(j->cancel_reason, sizeof j->cancel_reason, "%s", reason);
    if (j->state == SD_JOB_RUNNING) {
        atomic_store(&j->cancel, 1); // after_work_cb records it when the search stops
        return;
    }
    j->state = SD_JOB_CANCELLED;
    j->finished = sd_now();
    snprintf(j->error, sizeof j->error, "%s", reason);
    d->jobs_queued--;
    sd_model_unref(j->model);
    j->model = NULL;
    job_done_notify(d, j);
}

int sd_job_cancel(sd_daemon *d, sd_job *j, en_diag *diag) {
    if (j->state != SD_JOB_QUEUED && j->state != SD_JOB_RUNNING)
        return en_fail(diag, SD_EJOBDONE, "job %llu already finished: %s",
                       (unsigned long long)j->id, sd_job_state_name(j->state));
    cancel(d, j, "cancelled by job.cancel");
    sd_state_save_jobs(d, NULL);
    return 0;
}

void sd_jobs_cancel_all(sd_daemon *d) {
    int n = 0;
    for (sd_job *j = d->jobs; j; j = j->next)
        if (j->state == SD_JOB_QUEUED || j->state == SD_JOB_RUNNING) {
            cancel(d, j, "cancelled: searchd shut down");
            n++;
        }
    if (n) sd_state_save_jobs(d, NULL);
}

int sd_jobs_abandon(sd_daemon *d, const char *reason) {
    int n = 0;
    for (sd_job *j = d->jobs; j; j = j->next)
        if (j->state == SD_JOB_RUNNING) {
            j->state = SD_JOB_CANCELLED;
            j->finished = sd_now();
            snprintf(j->error, sizeof j->error, "%s", reason);
            n++;
        }
    if (n) sd_state_save_jobs(d, NULL);
    return n;
}

void sd_jobs_progress_cb(uv_async_t *a) {
    sd_daemon *d = a->data;
    for (sd_job *j = d->jobs; j; j = j->next) {
        if (j->state != SD_JOB_RUNNING) continue;
        uv_mutex_lock(&j->lock);
        int fresh = j->progress_new;
        sc_progress p = j->progress;
        j->progress_new = 0;
        uv_mutex_unlock(&j->lock);
        sd_conn *c = fresh ? sd_conn_find(d, j->conn_id) : NULL;
        if (!c) continue;
        msgpack_sbuffer sb;
        msgpack_sbuffer_init(&sb);
        msgpack_packer pk;
        msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
        msgpack_pack_map(&pk, 6);
        sp_pack_kint(&pk, "job", (int64_t)j->id);
        sp_pack_kint(&pk, "done", p.done);
        sp_pack_kint(&pk, "total", p.total);
        sp_pack_knum(&pk, "best", p.best_accuracy);
        sp_pack_knum(&pk, "best_flops_ratio", p.best_flops);
        sp_pack_kbool(&pk, "within_budget", p.found); // best_* are the budget's best, or 0
        sd_conn_notify(c, "job.progress", &sb);
        msgpack_sbuffer_destroy(&sb);
    }
}
