#pragma once
/* The models' latency profiles against this host, and the start-up check of their weights. */

#include <stdint.h>

#include "engine/en_error.h"
#include "searchd/sd_daemon.h"

/// Re-detects the host's fingerprint, compares it with each model's profile and re-measures
/// those that differ (all of them when `force`) in the pool; `only` (a model id, or NULL)
/// limits it to one model. Replies to (conn_id, msgid) when conn_id != 0, at once when there is
/// nothing to re-measure. SD_EBUSY while another retune runs. `reason` is logged.
int sd_retune(sd_daemon *d, const char *only, int force, uint64_t conn_id, uint32_t msgid,
              const char *reason, en_diag *diag);
/// Hashes every registered model's weights file in the pool and marks those that changed
/// (start-up: searchd does not load weights until a job needs them).
int sd_verify(sd_daemon *d, en_diag *diag);
