#pragma once
/* Distributed evaluation (--fleet): a search's candidate evaluations split into work items on a
 * Redis stream per model and kernel path (`searchd:work:<weights>:<data>:<isa>`, group `eval`)
 * that every fleet host with spare cores consumes; results come back on a stream per batch.
 * Predictions are a pure function of (model, example, schedule), so the frontier does not
 * depend on who evaluated what. Blocking hiredis, never on the loop: the originator runs in the
 * search's pool thread, the worker in a thread of its own. docs/fleet.md, "Distributed
 * evaluation". */

#include <stddef.h>
#include <stdint.h>

#include "engine/en_error.h"
#include "schedules/sc_prefix_eval.h"
#include "searchd/sd_daemon.h"

typedef struct sd_dist_origin sd_dist_origin;

/// Starts the worker thread and the timer that hands it the models (nothing without --fleet:
/// d->dist stays NULL). Loop thread, after sd_fleet_start. 0, or an error with a message.
int sd_dist_start(sd_daemon *d, en_diag *diag);
/// Tells the worker to stop (it cancels the item it evaluates) and closes the timer: shutdown.
void sd_dist_stop(sd_daemon *d);
/// Joins the worker and frees d->dist, after the loop ended.
void sd_dist_free(sd_daemon *d);
/// Hands the worker the registered models and whether this host runs a search or retune of its
/// own (it then takes no items: no spare cores). Loop thread; also run every second.
void sd_dist_refresh(sd_daemon *d);
/// Writes model m's work stream into `key` (caller's, `cap` bytes). 0, or -1 when its data files
/// cannot be read. Loop thread (the data hash, the first time).
int sd_dist_stream(sd_model *m, char *key, size_t cap);
/// An originator for the search of job `job_id` on work stream `stream` (copied); d->dist must be
/// set. `*out` is owned by the caller (sd_dist_origin_free). EN_ENOMEM. Any thread: reads only
/// what sd_dist_start set.
int sd_dist_origin_new(const sd_daemon *d, const char *stream, uint64_t job_id,
                       sd_dist_origin **out);
/// Closes its connection (after removing its consumer from the group) and frees it.
void sd_dist_origin_free(sd_dist_origin *o);
/// sc_search_opts.evaluate, with an sd_dist_origin as `ud`: a batch of at least two chunks goes
/// on the stream, this host evaluates what nobody else claimed (with job->cache), takes back
/// what a silent host claimed, and anything Redis failed to deliver; else sc_prefix_eval. The
/// stats count only the chunks evaluated here. Search thread.
int sd_dist_evaluate(void *ud, const sc_prefix_job *job, sc_prefix_stats *st, en_diag *diag);
