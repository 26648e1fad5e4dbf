#pragma once
/* Defaults and bounds of the search settings that both searchd (sd_options.c) and
 * `searchctl tune` take, written once so that the daemon and the offline command agree. The
 * option names are the same in both: --calib-seconds, --search-threads, --search-generations. */

#define SC_CALIB_SECONDS 2.0       // latency calibration time per model
#define SC_CALIB_SECONDS_MIN 0.05  // shorter fits are noise
#define SC_CALIB_SECONDS_MAX 600.0 // ten minutes
#define SC_SEARCH_THREADS_MAX 256  // threads of one search; 0 means all cores
#define SC_SEARCH_GENERATIONS_MAX 100000
#define SC_HOLDOUT_FRACTION 0.7  // share of the data held out when no held-out file is given
#define SC_DEFAULT_MAX_DROP 0.01 // the budget when none is asked: a 1% accuracy drop
