#pragma once
/* Work handed to libuv's thread pool, counted so that shutdown waits for it: every kind of pool
 * work (search jobs, model.add, retune, the start-up weights check) goes through these two. */

#include <uv.h>

#include "engine/en_error.h"
#include "searchd/sd_daemon.h"

/// Queues `w` (its `data` set by the caller) and counts it in d->tasks: 0, SD_ESHUTDOWN once
/// shutdown has begun, or the libuv error; a message in `diag` either way. `after` must call
/// sd_pool_done() last.
int sd_pool_submit(sd_daemon *d, uv_work_t *w, uv_work_cb work, uv_after_work_cb after,
                   en_diag *diag);

/// Ends one piece of pool work (in its after-callback, after its results are installed and
/// its reply sent): uncounts it, and finishes a shutdown that waited for it.
void sd_pool_done(sd_daemon *d);
