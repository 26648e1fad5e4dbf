#pragma once
/* The fleet (--fleet redis://HOST:PORT[/DB]): accuracy records shared between searchd hosts
 * through Redis, on the daemon's own loop (hiredis async, one connection for commands and one
 * for SUBSCRIBE). Redis down or slow never blocks a request or a search: every call is async,
 * the connections come back with backoff and catch up. docs/fleet.md has the key format. */

#include <msgpack.h>

#include "engine/en_error.h"
#include "schedules/sc_frontier.h"
#include "searchd/sd_daemon.h"

/// Splits a --fleet URL redis://HOST:PORT[/DB] into `host` (caller's, `cap` bytes), `port` and
/// `db`. 0, or SD_EOPTION with a message.
int sd_fleet_parse_url(const char *url, char *host, size_t cap, int *port, int *db, en_diag *diag);
/// Parses --fleet and starts connecting (nothing happens when it is ""). 0, or SD_EOPTION with
/// a message for a URL it cannot use.
int sd_fleet_start(sd_daemon *d, en_diag *diag);
/// Closes the connections and the retry timer (shutdown); the loop then ends without them.
void sd_fleet_stop(sd_daemon *d);
/// Frees what is left after the loop ended.
void sd_fleet_free(sd_daemon *d);
/// Shares the records of model `m` that a finished search found (`found`): written to the
/// model's hash and announced; kept and written again after a reconnect when Redis is away.
void sd_fleet_publish(sd_daemon *d, sd_model *m, const sc_frontier *found);
/// Reads the fleet's records of model m, just added or loaded (merged when they arrive).
void sd_fleet_model_added(sd_daemon *d, sd_model *m);
/// Called when a job may run (`holder` NULL: the lease is this host's, or Redis did not answer
/// within 2 s / is down and the search runs locally) or may not (`holder`: the host id that holds
/// the lease). `leased` says whether sd_fleet_lease_release() must be called at the job's end.
typedef void (*sd_fleet_lease_cb)(sd_daemon *d, uint64_t job_id, const char *holder, int leased);
/// Takes the lease of model m's key (SET NX PX 60000, refreshed every 20 s) for job `job_id`.
/// With `sync`, a lease won is answered only after the model's records in Redis were read and
/// merged (a job that waited for another host: what it published is here by then). Returns 1
/// when the job may run now without a lease (no fleet, or Redis is down), else 0 and `cb` is
/// called later on the loop.
int sd_fleet_lease(sd_daemon *d, sd_model *m, uint64_t job_id, int sync, sd_fleet_lease_cb cb);
/// Gives back the lease of model m's key taken for a job (deleted in Redis if still ours).
void sd_fleet_lease_release(sd_daemon *d, sd_model *m);
/// info's `fleet` map.
void sd_fleet_pack_info(msgpack_packer *pk, const sd_daemon *d);
