#pragma once
/* The daemon's state, owned by the loop thread: listeners, connections, registered models with
 * their frontiers and latency profiles, search jobs, and the work handed to the thread pool.
 *
 * Threads: everything here is touched only on the loop thread, except what a pool task owns
 * (its own struct) and a job's progress block (under its mutex). A pool task never sees a
 * connection: it keeps the requester's connection id and msgid, and the after-callback looks
 * the connection up, so a client that went away simply gets no reply. */

#include <msgpack.h>
#include <stdatomic.h>
#include <stdint.h>
#include <uv.h>

#include "engine/en_model.h"
#include "schedules/sc_frontier.h"
#include "schedules/sc_hardware.h"
#include "schedules/sc_latency.h"
#include "schedules/sc_search.h"
#include "searchd/sd_options.h"
#include "proto/sp_msg.h"

#define SD_ID_LEN 17     // 16 hex digits and a NUL
#define SD_MAX_SUBS 32   // subscriptions per connection
#define SD_JOBS_KEPT 100 // finished jobs remembered for job.status

typedef struct sd_daemon sd_daemon;

/// A registered model. Reference counted: pool tasks hold a reference, so model.remove only
/// unlinks it and the last holder frees it.
typedef struct sd_model {
    char id[SD_ID_LEN]; // hex of the weights' FNV-1a hash
    char name[128];
    char path[1024], data[1024], holdout[1024]; // holdout may be ""
    uint64_t weights_hash;
    int layers;
    double added;         // unix time
    en_model *model;      // owned, NULL until a task loaded it
    sc_frontier frontier; // owned; count 0 until a search finished
    sc_latency_model lat; // valid when has_lat
    int has_lat;
    char hw_text[256]; // sc_hw_format(&lat.hw)
    int *lengths;      // owned: lengths of the examples latency is predicted over, or NULL
    int nlengths;
    double base_latency_ms; // the unpruned model's predicted latency over `lengths`; 0: unknown
    int refs;
    int removed;
    int changed; // the weights under `path` are no longer the ones registered (see model.add)
    struct sd_model *next;
} sd_model;

typedef enum sd_job_state {
    SD_JOB_QUEUED,
    SD_JOB_RUNNING,
    SD_JOB_DONE,
    SD_JOB_FAILED,
    SD_JOB_CANCELLED,
    SD_JOB_INTERRUPTED, // the daemon died while it ran (found at restart)
} sd_job_state;

const char *sd_job_state_name(sd_job_state s);

/// A search job. Lives in d->jobs from tune until it is trimmed from the history.
typedef struct sd_job {
    uint64_t id;
    sd_daemon *d;
    char model_id[SD_ID_LEN];
    sd_model *model;  // reference held while queued or running, else NULL
    uint64_t conn_id; // who asked; gets job.progress / job.done
    sc_query budget;
    int width;        // the search also narrows heads and FFN neurons
    int int8;         // the search also chooses each layer's precision
    sd_job_state state;
    double created, started, finished;
    char error[512];
    uv_work_t work;
    atomic_int cancel;
    // Written by the search thread, read by the loop thread: under `lock` when has_lock (a job
    // restored from the state dir has no lock and no thread).
    uv_mutex_t lock;
    sc_progress progress;
    int progress_new;
    int has_lock;
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
} sd_job;

/// A client connection. Freed in its close callback.
typedef struct sd_conn {
    union {
        uv_pipe_t pipe;
        uv_tcp_t tcp;
        uv_stream_t stream;
        uv_handle_t handle;
    } h;
    sd_daemon *d;
    uint64_t id;
    msgpack_unpacker unp;
    msgpack_sbuffer out; // replies gathered while handling one read, written after it
    size_t queued;       // bytes given to uv_write and not yet written
    size_t partial;      // bytes of a message not complete yet
    uint64_t active_ms;  // uv_now() of the last byte read or reply sent
    uint64_t partial_ms; // uv_now() when the incomplete message began, 0 when none
    int owed;            // deferred replies (model.add, retune) still to come
    int closing;
    int close_after_flush;
    char subs[SD_MAX_SUBS][SD_ID_LEN];
    int nsubs;
    struct sd_conn *prev, *next;
} sd_conn;

typedef struct sd_damaged {
    char file[1200];
    char error[512];
} sd_damaged;

struct sd_daemon {
    uv_loop_t *loop;
    sd_options opt;
    sp_limits limits;
    uv_pipe_t unix_srv;
    uv_tcp_t tcp_srv;
    int has_unix, has_tcp;
    int tcp_port;      // the port bound (--listen HOST:0 takes one the kernel picks), or 0
    char tcp_addr[96]; // HOST:PORT as bound, "" without TCP
    uv_signal_t sigint, sigterm, sighup;
    uv_async_t progress_async;
    int stopping;
    int finished; // the last handles are closing
    int sigints;
    sd_conn *conns;
    int nconns;
    uint64_t next_conn_id;
    sd_model *models;
    sd_job *jobs; // newest first
    uint64_t next_job_id;
    int jobs_running, jobs_queued;
    int tasks; // pool tasks in flight of any kind
    int retune_running;
    sc_hw hw; // this host now (override applied)
    char hw_text[256];
    double started;
    double last_retune_seconds;
    sd_damaged damaged[32];
    int ndamaged;
    int state_durable;     // the last save to the state dir succeeded
    char state_error[512]; // why the last failed save failed ("" when none has)
    long saves_failed;
    uv_timer_t conn_timer;   // idle and incomplete-message timeouts
    size_t buffered;         // partial-message and queued reply bytes of all connections
    msgpack_sbuffer scratch; // result of the request being handled
    msgpack_packer scratch_pk;
    long requests;
};

/* sd_main.c */
double sd_now(void);
void sd_log(sd_daemon *d, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/// Starts a clean shutdown: listeners and connections close, jobs are cancelled and recorded.
void sd_daemon_stop(sd_daemon *d);
/// Closes the remaining handles once nothing runs in the pool any more.
void sd_daemon_maybe_finish(sd_daemon *d);

/* sd_server.c: listeners */
int sd_server_listen(sd_daemon *d, en_diag *diag);
void sd_server_close(sd_daemon *d);

/* sd_conn.c: connections */
/// The connection with this id, or NULL when it has gone.
sd_conn *sd_conn_find(sd_daemon *d, uint64_t id);
/// Starts reading a freshly accepted stream (c is zeroed and its handle initialised).
int sd_conn_start(sd_daemon *d, sd_conn *c);
/// Appends bytes to the connection's pending output; sd_conn_flush() writes them.
void sd_conn_send(sd_conn *c, const void *bytes, size_t len);
void sd_conn_flush(sd_conn *c);
void sd_conn_close(sd_conn *c);
/// The timer's callback: closes connections idle beyond --idle-timeout (those owed nothing: no
/// deferred reply, live job or subscription) and those whose request stayed incomplete beyond
/// --message-timeout (with an SP_ETIMEOUT error).
void sd_conn_sweep(uv_timer_t *h);
/// Sends `[2, method, [params]]`, params packed from d->scratch, and flushes.
void sd_conn_notify(sd_conn *c, const char *method, const msgpack_sbuffer *params);
/// Sends a deferred reply (result in `result`, or an error when code < 0) to connection
/// `conn_id` if it is still there.
void sd_reply_later(sd_daemon *d, uint64_t conn_id, uint32_t msgid, int code, const char *message,
                    const msgpack_sbuffer *result);
/// schedule.updated {model} to every subscriber of `model_id`.
void sd_notify_updated(sd_daemon *d, const char *model_id, const char *reason);

/* sd_methods.c: the method table */
/// Handles one request; the reply goes to c->out.
void sd_dispatch(sd_daemon *d, sd_conn *c, const sp_msg *m);

/* sd_models.c: registry and state directory */
sd_model *sd_model_find(sd_daemon *d, const char *key);
/// The model other than `except` registered under `name`, or NULL.
sd_model *sd_model_named(sd_daemon *d, const char *name, const sd_model *except);
void sd_model_ref(sd_model *m);
void sd_model_unref(sd_model *m);
/// Restores models, profiles, frontiers and jobs from the state dir; damaged files are set
/// aside and listed in d->damaged.
int sd_state_load(sd_daemon *d, en_diag *diag);
/// Each save writes one file atomically: 0, or the system's error (-ENOSPC, -EFBIG, -EROFS...)
/// with a message naming the file in `diag` (may be NULL); a failure is logged and leaves
/// d->state_durable 0 (shown by info) until a later save succeeds.
int sd_state_save_model(sd_daemon *d, const sd_model *m, en_diag *diag);
int sd_state_save_frontier(sd_daemon *d, const sd_model *m, en_diag *diag);
int sd_state_save_latency(sd_daemon *d, const sd_model *m, en_diag *diag);
int sd_state_save_jobs(sd_daemon *d, en_diag *diag);
int sd_state_save_host(sd_daemon *d);
/// Deletes the model's files, model-<id>.state first (then latency, then frontier unless
/// `keep_frontier`): 0, or -errno (with a message) when model-<id>.state could not be deleted,
/// in which case nothing was.
int sd_state_remove_model(sd_daemon *d, const char *id, int keep_frontier, en_diag *diag);
/// Adopts frontier-<id>.state for model `m` when it is intact and its schedules have m's layer
/// count (a model re-added after its model-<id>.state was damaged); a damaged one is set aside.
void sd_state_load_frontier(sd_daemon *d, sd_model *m);
/// Unlinks model `m` from the registry: cancels its jobs, deletes its files (SD_ESTATE-style
/// failure: nothing changes), tells subscribers. Drops the registry's reference.
int sd_model_remove(sd_daemon *d, sd_model *m, en_diag *diag);
/// The model whose id or name is `key`, or NULL.
/// Reads the fingerprint last stored for the host into `out`: 0 or an error.
int sd_state_load_host(sd_daemon *d, sc_hw *out);
void sd_model_set_lat(sd_model *m, const sc_latency_model *lat);

/* sd_jobs.c: search jobs */
int sd_job_submit(sd_daemon *d, sd_model *m, const sc_query *budget, int width, int int8,
                  uint64_t conn_id, sd_job **out,
                  en_diag *diag);
sd_job *sd_job_find(sd_daemon *d, uint64_t id);
/// The job's progress as last reported by its search (or as restored from the state dir).
sc_progress sd_job_progress(sd_job *j);
int sd_job_cancel(sd_daemon *d, sd_job *j, en_diag *diag);
void sd_jobs_cancel_all(sd_daemon *d);
/// Marks every running job cancelled with `reason` and saves the history, without waiting for
/// the searches: for an exit that does not wait. Returns how many there were.
int sd_jobs_abandon(sd_daemon *d, const char *reason);
void sd_jobs_progress_cb(uv_async_t *a);
/// Lengths of the examples of data set `path` as model `em` tokenizes them: `*lengths` is
/// malloc'ed and owned by the caller. Runs in the pool.
int sd_lengths_load(const char *path, const en_model *em, int **lengths, int *count, en_diag *diag);
/// Re-predicts every record's latency with the model's profile over its lengths (when it has
/// both) and re-ranks the frontier. Loop thread.
void sd_model_repredict(sd_model *m);
/// Gives `*lengths` (malloc'ed) to the model unless it has some already; frees it otherwise.
void sd_model_take_lengths(sd_model *m, int **lengths, int n);

/* sd_tasks.c: model.add and retune in the pool */
/// model.add in the pool: loads, checks the data sets completely, calibrates; then (loop)
/// saves and only then registers. `replace`: a model holding `name` with other weights is
/// removed once the new one is saved; without it that name is refused (SD_ENAME). `frontier`
/// ("" for none): an offline `searchctl tune --json` result of the same weights, whose frontier
/// replaces the model's (latencies re-predicted on this host) instead of a search.
int sd_task_add_model(sd_daemon *d, const char *path, const char *data, const char *holdout,
                      const char *name, int replace, const char *frontier, uint64_t conn_id,
                      uint32_t msgid, en_diag *diag);
/// SD_ECHANGED, with a message saying what to do, when the weights loaded from `path` hash to
/// `found` instead of the `registered` hash; else 0.
int sd_weights_check(const char *path, uint64_t registered, uint64_t found, en_diag *diag);
/// Hashes every registered model's weights file in the pool and marks those that changed
/// (start-up: searchd does not load weights until a job needs them).
int sd_task_verify(sd_daemon *d, en_diag *diag);
/// Compares the fingerprint with each model's profile and re-measures those that differ (all
/// of them when `force`); `only` limits it to one model. Replies to (conn_id, msgid) when
/// conn_id != 0.
int sd_task_retune(sd_daemon *d, const char *only, int force, uint64_t conn_id, uint32_t msgid,
                   const char *reason, en_diag *diag);
/// Detects this host's fingerprint with the override applied.
void sd_hw_detect(sd_daemon *d, sc_hw *out);

/* sd_pack.c: msgpack forms */
void sd_pack_record(msgpack_packer *pk, const sd_model *m, const sc_record *r);
void sd_pack_model(msgpack_packer *pk, const sd_model *m);
void sd_pack_hw(msgpack_packer *pk, const sc_hw *hw);
void sd_pack_job(msgpack_packer *pk, sd_job *j);
