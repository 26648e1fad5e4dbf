#pragma once
/* Taking a model out of the registry, which touches its jobs, its files and its subscribers. */

#include "engine/en_error.h"
#include "searchd/sd_daemon.h"

/// Unlinks model `m` from d->models: deletes its files first (when model-<id>.state cannot be
/// deleted nothing changes and the error is returned), cancels its jobs, tells subscribers
/// (schedule.updated, reason "removed"), and drops the registry's reference.
int sd_model_remove(sd_daemon *d, sd_model *m, en_diag *diag);
