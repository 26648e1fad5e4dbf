#pragma once
/* The state directory: models, their profiles and frontiers, and the host's fingerprint, each
 * in its own file (sd_jobs.c keeps jobs.state with the helpers below). Every file goes through
 * sc_store (atomic, framed, checksummed); a file that fails to load is reported, set aside and
 * listed in `info`:
 *   model-<id>.state     {id, name, path, data, holdout, weights_hash, layers, added}
 *   frontier-<id>.state  {records, width, baseline_latency_ms} (sc_frontier_to_json)
 *   latency-<id>.state   the latency profile, with the fingerprint it was measured on
 *   jobs.state           {next_job, jobs: [...]}: the job history (sd_jobs.c)
 *   host.state           {fingerprint, saved}: the host as last seen */

#include <jansson.h>
#include <stddef.h>

#include "engine/en_error.h"
#include "schedules/sc_hardware.h"
#include "searchd/sd_daemon.h"

/// Creates the state dir if needed and registers the models it holds with their profiles and
/// frontiers; damaged files are set aside and listed in d->damaged. 0, or SD_ESTATE / EN_ENOMEM
/// with a message.
int sd_state_load(sd_daemon *d, en_diag *diag);
/// Each save writes one file atomically: 0, or the system's error (-ENOSPC, -EFBIG, -EROFS...)
/// with a message naming the file in `diag` (may be NULL); a failure is logged and leaves
/// d->state_durable 0 (shown by info) until a later save succeeds.
int sd_state_save_model(sd_daemon *d, const sd_model *m, en_diag *diag);
int sd_state_save_frontier(sd_daemon *d, const sd_model *m, en_diag *diag);
int sd_state_save_latency(sd_daemon *d, const sd_model *m, en_diag *diag);
int sd_state_save_host(sd_daemon *d);
/// Reads the fingerprint last stored for the host into `out`: 0 or an error.
int sd_state_load_host(sd_daemon *d, sc_hw *out);
/// Deletes the model's files, model-<id>.state first (then latency, then frontier unless
/// `keep_frontier`): 0, or -errno (with a message) when model-<id>.state could not be deleted,
/// in which case nothing was.
int sd_state_remove_model(sd_daemon *d, const char *id, int keep_frontier, en_diag *diag);
/// Adopts frontier-<id>.state for model `m` when it is intact and its schedules have m's layer
/// count (a model re-added after its model-<id>.state was damaged); a damaged one is set aside.
void sd_state_load_frontier(sd_daemon *d, sd_model *m);

/* For the files other parts keep (jobs.state). */

/// `<state dir>/<kind>-<id>.state`, or `<state dir>/<kind>.state` when id is NULL.
void sd_state_path(sd_daemon *d, char *buf, size_t len, const char *kind, const char *id);
/// Writes `j` (its reference is taken; NULL: out of memory) to `path` as one atomic save.
int sd_state_save_json(sd_daemon *d, const char *path, json_t *j, en_diag *diag);
/// Reads `path` as JSON into `*out` (a new reference): 0, -ENOENT when absent, else an error
/// after the file was reported damaged and set aside.
int sd_state_load_json(sd_daemon *d, const char *path, json_t **out);
/// Reports `path` damaged (`why`), sets it aside and lists it in d->damaged.
void sd_state_damaged(sd_daemon *d, const char *path, const char *why);
/// Copies string field `key` of `j` into buf: 0, or -1 when missing, not a string or too long.
int sd_json_str(const json_t *j, const char *key, char *buf, size_t cap);
