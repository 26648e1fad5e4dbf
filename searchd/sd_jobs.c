/* The job records: lookups, progress, the history kept in jobs.state. */
#include "sd_jobs.h"

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sd_log.h"
#include "sd_state.h"

const char *sd_job_state_name(sd_job_state s) {
    static const char *const names[] = {"queued", "running",   "done",
                                        "failed", "cancelled", "interrupted"};
    return (unsigned)s < sizeof names / sizeof names[0] ? names[s] : "unknown";
}

int sd_job_live(const sd_job *j) {
    return j->state == SD_JOB_QUEUED || j->state == SD_JOB_RUNNING;
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

void sd_job_free(sd_job *j) {
    if (j->has_lock) uv_mutex_destroy(&j->lock);
    free(j);
}

void sd_jobs_trim(sd_daemon *d) {
    int kept = 0;
    for (sd_job **pp = &d->jobs; *pp;) {
        sd_job *j = *pp;
        if (!sd_job_live(j) && ++kept > SD_JOBS_KEPT) {
            *pp = j->next;
            sd_job_free(j);
            continue;
        }
        pp = &j->next;
    }
}

int sd_jobs_save(sd_daemon *d, en_diag *diag) {
    json_t *arr = json_array();
    for (sd_job *j = d->jobs; j; j = j->next) {
        sc_progress p = sd_job_progress(j);
        json_array_append_new(
            arr, json_pack("{s:I, s:s, s:s, s:s, s:f, s:f, s:f, s:i, s:i, s:f, s:f}", "job",
                           (json_int_t)j->id, "model", j->model_id, "status",
                           sd_job_state_name(j->state), "error", j->error, "created", j->created,
                           "started", j->started, "finished", j->finished, "done", p.done, "total",
                           p.total, "best", p.best_accuracy, "best_flops_ratio", p.best_flops));
    }
    char path[1200];
    sd_state_path(d, path, sizeof path, "jobs", NULL);
    return sd_state_save_json(
        d, path, json_pack("{s:I, s:o}", "next_job", (json_int_t)d->next_job_id, "jobs", arr),
        diag);
}

/* A job's progress as saved: done, total, best, best_flops_ratio. Files written before these
 * fields existed lack them (progress 0/0); present but wrong is an error. */
static int progress_fields(const json_t *e, sc_progress *p) {
    const json_t *done = json_object_get(e, "done"), *total = json_object_get(e, "total"),
                 *best = json_object_get(e, "best"), *cost = json_object_get(e, "best_flops_ratio");
    memset(p, 0, sizeof *p);
    if (!done && !total && !best && !cost) return 0;
    if (!json_is_integer(done) || !json_is_integer(total) || !json_is_number(best) ||
        !json_is_number(cost))
        return -1;
    json_int_t dn = json_integer_value(done), tt = json_integer_value(total);
    double b = json_number_value(best), c = json_number_value(cost);
    if (dn < 0 || tt < 0 || dn > tt || tt > INT_MAX || !(b >= 0 && b <= 1) || !(c >= 0 && c < 1e6))
        return -1;
    p->done = (int)dn;
    p->total = (int)tt;
    p->best_accuracy = b;
    p->best_flops = c;
    return 0;
}

void sd_jobs_load(sd_daemon *d) {
    char path[1200];
    sd_state_path(d, path, sizeof path, "jobs", NULL);
    json_t *j;
    if (sd_state_load_json(d, path, &j)) return;
    const json_t *next = json_object_get(j, "next_job"), *arr = json_object_get(j, "jobs");
    if (!json_is_integer(next) || json_integer_value(next) < 1 || !json_is_array(arr)) {
        json_decref(j);
        sd_state_damaged(d, path, "next_job or jobs missing");
        return;
    }
    d->next_job_id = (uint64_t)json_integer_value(next);
    int interrupted = 0;
    sd_job **tail = &d->jobs;
    for (size_t i = 0; i < json_array_size(arr) && i < SD_JOBS_KEPT; i++) {
        const json_t *e = json_array_get(arr, i);
        char status[32];
        sd_job *job = calloc(1, sizeof *job);
        if (!job) break;
        const json_t *id = json_object_get(e, "job");
        if (!json_is_integer(id) || sd_json_str(e, "model", job->model_id, sizeof job->model_id) ||
            sd_json_str(e, "status", status, sizeof status) ||
            sd_json_str(e, "error", job->error, sizeof job->error)) {
            free(job);
            continue; // one bad entry of a checksummed file: skip it, keep the rest
        }
        job->id = (uint64_t)json_integer_value(id);
        job->d = d;
        if (progress_fields(e, &job->progress) != 0) {
            free(job);
            continue;
        }
        job->created = json_number_value(json_object_get(e, "created"));
        job->started = json_number_value(json_object_get(e, "started"));
        job->finished = json_number_value(json_object_get(e, "finished"));
        job->state = SD_JOB_FAILED;
        for (int s = SD_JOB_QUEUED; s <= SD_JOB_INTERRUPTED; s++)
            if (strcmp(status, sd_job_state_name((sd_job_state)s)) == 0)
                job->state = (sd_job_state)s;
        if (sd_job_live(job)) {
            // It was under way when searchd died without a clean shutdown.
            job->state = SD_JOB_INTERRUPTED;
            snprintf(job->error, sizeof job->error,
                     "searchd stopped without a clean shutdown while this job was %s; run tune "
                     "again",
                     status);
            if (job->finished <= 0) job->finished = sd_now();
            interrupted++;
        }
        *tail = job;
        tail = &job->next;
    }
    json_decref(j);
    if (interrupted) {
        sd_log("%d job(s) were interrupted by the previous searchd; recorded", interrupted);
        sd_jobs_save(d, NULL);
    }
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
    if (n) sd_jobs_save(d, NULL);
    return n;
}
