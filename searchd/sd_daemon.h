#pragma once
/* The daemon's state, owned by the loop thread: listeners, connections, registered models,
 * search jobs, and the count of work handed to the thread pool. Each list's element type is
 * declared by the file that owns it (sd_conn.h, sd_models.h, sd_jobs.h); this header depends on
 * none of them, so every file may include it without a cycle.
 *
 * Threads: everything here is touched only on the loop thread, except what a pool task owns
 * (its own struct) and a job's progress block (under its mutex). A pool task never sees a
 * connection: it keeps the requester's connection id and msgid, and the after-callback looks
 * the connection up, so a client that went away simply gets no reply. */

#include <msgpack.h>
#include <stdatomic.h>
#include <stdint.h>
#include <uv.h>

#include "proto/sp_msg.h"
#include "schedules/sc_hardware.h"
#include "searchd/sd_options.h"

#define SD_ID_LEN 17 // 16 hex digits and a NUL

typedef struct sd_conn sd_conn;   // sd_conn.h
typedef struct sd_model sd_model; // sd_models.h
typedef struct sd_job sd_job;     // sd_jobs.h
struct sd_fleet;                  // sd_fleet.c

/// A state file that failed to load and was set aside (listed by `info`).
typedef struct sd_damaged {
    char file[1200];
    char error[512];
} sd_damaged;

typedef struct sd_daemon {
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
    sd_conn *conns;
    int nconns;
    uint64_t next_conn_id;
    sd_model *models;
    struct sd_fleet *fleet; // NULL without --fleet
    struct sd_dist *dist;   // owned (sd_dist_free): the distributed evaluation worker (sd_dist.c);
                            // NULL without --fleet
    // Work items (sd_dist.c): chunks this host's searches put on the stream, items it evaluated
    // for other hosts, and its own chunks it took back from a silent host. Atomic: counted by
    // search and worker threads, read by info on the loop.
    atomic_long dist_sent, dist_evaluated, dist_reclaimed, dist_dropped;
    sd_job *jobs; // newest first
    uint64_t next_job_id;
    int jobs_running, jobs_queued;
    int jobs_waiting; // of the running: waiting for a fleet host's search (no cores taken)
    int tasks;        // pool work in flight of any kind (sd_pool.h)
    int retune_running;
    sc_hw hw; // this host now (override applied)
    char hw_text[256];
    double started; // sd_mono() at start: uptime
    double last_retune_seconds;
    sd_damaged damaged[32];
    int ndamaged;
    int state_durable;     // the last save to the state dir succeeded
    char state_error[512]; // why the last failed save failed ("" when none has)
    long saves_failed;
    uv_timer_t conn_timer;   // idle and incomplete-message timeouts
    uv_timer_t lease_wait;   // asks again for the leases tune jobs wait for (sd_search.c)
    size_t buffered;         // partial-message and queued reply bytes of all connections
    msgpack_sbuffer scratch; // result of the request being handled
    msgpack_packer scratch_pk;
} sd_daemon;

/// Once shutdown has begun and no pool work or connection is left, closes the remaining
/// handles so that uv_run() returns.
void sd_daemon_maybe_finish(sd_daemon *d);
