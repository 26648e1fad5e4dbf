#pragma once
/* The one clock for durations everywhere (timers, latency, search time, benchmarks): monotonic,
 * so a change of the wall clock never makes a duration negative or huge. */

#include <time.h>

/// Seconds on CLOCK_MONOTONIC, from an arbitrary start: only differences mean anything.
static inline double en_now_seconds(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}
