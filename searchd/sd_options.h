#pragma once
/* searchd's options: one table with each option's type, bounds, default and help, applied in
 * order from the defaults, then a config file (`--config FILE`, lines `key = value`, `#`
 * comments; keys are the long option names without the dashes), then the command line. */

#include <stddef.h>

#include "engine/en_error.h"

typedef struct sd_options {
    char socket[108]; // Unix socket path (sun_path holds 108 bytes)
    char listen[128]; // "" or HOST:PORT for TCP
    int listen_any;   // allow a non-loopback --listen address
    char state_dir[1024];
    char config[1024];
    int jobs;               // search jobs in flight
    int max_queued;         // search jobs waiting beyond those
    int search_threads;     // worker threads of one search (0: all cores)
    int search_generations; // 0: the search's default
    double calib_seconds;   // latency calibration time per model
    int max_message;        // bytes in one request
    int max_depth;          // nesting of a request
    int max_reply_queue;    // reply bytes queued per connection before it is dropped
    int max_connections;
    double idle_timeout;    // seconds a connection that is owed nothing may stay silent (0: off)
    double message_timeout; // seconds a message may stay incomplete (0: off)
    long long max_buffered; // bytes of incomplete messages and queued replies, all connections
    char fingerprint_override[256]; // replaces the CPU model in the fingerprint; "@FILE" reads it
    char fleet[512];                // "" or redis://HOST:PORT[/DB] (sd_fleet.c)
    char fleet_password[256];       // AUTH for the fleet's Redis, "" for none
    int verbose;
} sd_options;

/// Fills `o` from the defaults, the config file and `argv`. Returns 0, 1 when --help was
/// printed (exit 0), or SD_EOPTION with a message naming the option and what it takes.
/// `--fingerprint-override` defaults to $SEARCHD_FINGERPRINT; the socket to
/// $XDG_RUNTIME_DIR/searchd.sock else /tmp/searchd-$UID.sock; the state dir to
/// $XDG_STATE_HOME/searchd else ~/.local/state/searchd; --fleet to $SEARCHD_FLEET and
/// --fleet-password to $SEARCHD_FLEET_PASSWORD.
int sd_options_load(sd_options *o, int argc, char **argv, en_diag *diag);

/// Prints the option table with defaults and bounds.
void sd_options_usage(void *file);
