#pragma once
/* model.add: registering (or updating) a model, its work done in the thread pool. */

#include <stdint.h>

#include "engine/en_error.h"
#include "searchd/sd_daemon.h"

/// Queues model.add: loads the weights, checks the data sets completely and calibrates in the
/// pool; then (loop) saves and only then registers, and replies to (conn_id, msgid) with
/// sd_reply_later(). `replace`: a model holding `name` with other weights is removed once the
/// new one is saved; without it that name is refused (SD_ENAME). `frontier` ("" or NULL for
/// none): an offline `searchctl tune --json` result of the same weights, whose frontier
/// replaces the model's (latencies re-predicted on this host) instead of a search.
/// 0 when queued (the reply comes later), else an error with a message and no reply.
int sd_add_model(sd_daemon *d, const char *path, const char *data, const char *holdout,
                 const char *name, int replace, const char *frontier, uint64_t conn_id,
                 uint32_t msgid, en_diag *diag);
