#pragma once
/* Clocks and the log: the one leaf of the daemon, depending on nothing else of it. */

/// Wall-clock time in seconds since the epoch: for timestamps that are stored or shown
/// (a model's `added`, a job's `created`/`started`/`finished`), which must survive a restart.
double sd_now(void);

/// Seconds on CLOCK_MONOTONIC: for durations and uptime, which a clock step must not bend.
double sd_mono(void);

/// One line to stderr (the journal under systemd), prefixed with searchd and the pid.
void sd_log(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
