#pragma once
/* Running search jobs: at most --jobs run in the thread pool at once, up to --max-queued wait
 * in order; a finished search's frontier is merged into its model's and saved. */

#include <stdint.h>
#include <uv.h>

#include "engine/en_error.h"
#include "schedules/sc_frontier.h"
#include "searchd/sd_daemon.h"
#include "searchd/sd_jobs.h"

/// Queues a search of model `m` within `budget` (width, int8: also narrow / choose precision)
/// for connection `conn_id`; `*out` is the job (owned by d->jobs). SD_EBUSY when the queue is
/// full; an error when the job could not be recorded in jobs.state (then nothing was queued).
int sd_search_submit(sd_daemon *d, sd_model *m, const sc_query *budget, int width, int int8,
                     uint64_t conn_id, sd_job **out, en_diag *diag);
/// Cancels a live job (SD_EJOBDONE for a finished one); a running search stops at its next
/// check and is recorded cancelled then.
int sd_search_cancel(sd_daemon *d, sd_job *j, en_diag *diag);
/// Cancels every live job (shutdown) and saves the history.
void sd_search_cancel_all(sd_daemon *d);
/// progress_async's callback: forwards new progress as job.progress to each job's requester.
void sd_search_progress_cb(uv_async_t *a);
