#pragma once
/* The search jobs the daemon remembers: their records, progress and history (jobs.state).
 * Running them is sd_search.c's. */

#include <stdatomic.h>
#include <stdint.h>
#include <uv.h>

#include "engine/en_error.h"
#include "schedules/sc_frontier.h"
#include "schedules/sc_latency.h"
#include "schedules/sc_search.h"
#include "searchd/sd_daemon.h"

#define SD_JOBS_KEPT 100 // finished jobs remembered for job.status

typedef enum sd_job_state {
    SD_JOB_QUEUED,
    SD_JOB_RUNNING,
    SD_JOB_DONE,
    SD_JOB_FAILED,
    SD_JOB_CANCELLED,
    SD_JOB_INTERRUPTED, // the daemon died while it ran (found at restart)
} sd_job_state;

/// A search job. Lives in d->jobs from tune until it is trimmed from the history.
struct sd_job {
    uint64_t id;
    sd_daemon *d;
    char model_id[SD_ID_LEN];
    sd_model *model;  // reference held while queued or running, else NULL
    uint64_t conn_id; // who asked; gets job.progress / job.done
    sc_query budget;
    int width; // the search also narrows heads and FFN neurons
    int int8;  // the search also chooses each layer's precision
    sd_job_state state;
    double created, started, finished; // sd_now(): stored in jobs.state, shown by job.status
    char error[512];
    uv_work_t work;
    atomic_int cancel;
    // Written by the search thread, read by the loop thread: under `lock` when has_lock (a job
    // restored from the state dir has no lock and no thread).
    uv_mutex_t lock;
    sc_progress progress;
    int progress_new;
    int has_lock;
    int leased;      // holds the fleet's lease of its model (sd_fleet_lease)
    int lease_asked; // a lease request is out; its answer comes within 2 s
    // Running but waiting for the fleet host that holds the lease ("" when not waiting), the
    // model's fleet merges when the wait began, and the host whose records ended the wait.
    char waiting_for[300];
    uint64_t merges_before;
    char results_from[300];
    char dist_stream[160]; // the work stream its evaluations go to (sd_dist.h), "" for none
    char cancel_reason[96];
    // The work's inputs and outputs, touched only by the work function until after-work.
    char path[1024], data[1024], holdout[1024];
    uint64_t weights_hash;    // what the weights loaded from `path` must hash to
    const en_model *borrowed; // the model's loaded weights when the job started, or NULL
    en_model *own_model;      // loaded by the work when the model was not loaded yet
    sc_latency_model lat;
    int has_lat;
    int threads, generations;
    struct sc_width_profile *width_profile; // owned copy of the model's, or NULL: measured
    sc_frontier result;
    sc_search_stats stats;
    int *lengths; // lengths of the evaluation examples, handed to the model entry
    int nlengths;
    int rc;
    en_diag wdiag;
    struct sd_job *next;
};

/// "queued", "running", "done", "failed", "cancelled", "interrupted". Static storage.
const char *sd_job_state_name(sd_job_state s);
/// Queued or running.
int sd_job_live(const sd_job *j);
/// The job with this id, or NULL; d->jobs keeps it (until trimmed from the history).
sd_job *sd_job_find(sd_daemon *d, uint64_t id);
/// The job's progress as last reported by its search (or as restored from the state dir).
sc_progress sd_job_progress(sd_job *j);
/// Frees a job already unlinked from d->jobs (its model reference already dropped).
void sd_job_free(sd_job *j);
/// Forgets the oldest finished jobs beyond SD_JOBS_KEPT.
void sd_jobs_trim(sd_daemon *d);
/// Saves the history to jobs.state, as sd_state_save_model() saves a model.
int sd_jobs_save(sd_daemon *d, en_diag *diag);
/// Restores the history from jobs.state; jobs that were live are recorded interrupted.
void sd_jobs_load(sd_daemon *d);
/// Marks every running job cancelled with `reason` and saves the history, without waiting for
/// the searches: for an exit that does not wait. Returns how many there were.
int sd_jobs_abandon(sd_daemon *d, const char *reason);
