#pragma once
/* Fleet records for a model registered before this process started: its weights and the lengths
 * latency is predicted over load at its first add, tune or retune, and without them a record
 * gets no latency. So the fleet's first records for it load them in the pool, and the model's key
 * is read again once they are in. */

#include "searchd/sd_daemon.h"

/// Loads model m's weights and lengths in the pool (a reference held meanwhile), then calls
/// `loaded` (the fleet reads the model's records again). Nothing when a load is already under way
/// or m was removed; a failure is logged, and the records merge at the model's next add, tune or
/// retune. Loop thread.
void sd_fleet_load(sd_daemon *d, sd_model *m, void (*loaded)(sd_daemon *d, sd_model *m));
