#pragma once
/* A latency model measured on this CPU with the engine's own kernels: per layer, the cost as a
 * function of the rows coming in (n) and going out (k), fitted from a short calibration, plus
 * embeddings and head. Predicts a schedule's mean latency on a data set from its lengths. */

#include "engine/en_model.h"
#include "sc_hardware.h"
#include "sc_schedule.h"

#define SC_LAT_TERMS 10
#define SC_LAT_TERMS_V1 6 // models saved before width: 1, n, k, n*n, k*n, [k < n]

typedef struct sc_latency_model {
    sc_hw hw; // the host it was measured on
    // One layer with n rows in, k kept, a fraction a of its heads and f of its FFN neurons:
    // ms = sum layer[t] * term_t, terms 1, a, f, n*a, k, k*a, k*f, n*n*a, k*n*a and [k < n]
    // (selection and gather run only when the layer prunes); the structure of the FLOPs
    // formula (QKV ~ n*a, scores ~ n*n*a, context ~ k*n*a, output ~ k*a, FFN ~ k*f) plus the
    // cost of streaming the weights once per product, which at a few rows does not depend on
    // the rows (~ a, f).
    double layer[SC_LAT_TERMS];
    double last[SC_LAT_TERMS];       // the last layer, same terms: it runs for the [CLS] row alone
                                     // (en_ctx_layer_cls), so its cost follows n, not k
    double layer_int8[SC_LAT_TERMS]; // the same two for a layer whose products are INT8
    double last_int8[SC_LAT_TERMS];
    double fixed_ms;      // embeddings + head, per sequence
    double calib_seconds; // how long the calibration took
    double fit_error;     // median relative error on the calibration points
    double probe_ms;      // sc_latency_probe() during the calibration (0: not measured)
} sc_latency_model;

/// Measures `m` on this host with `threads` BLAS threads for about `seconds` seconds: random
/// sequences of 2 to 128 tokens under random schedules (half of them narrowed to random
/// widths, layers at random precisions), a few sequences in a row per schedule as a data set
/// runs, each en_ctx_layer() call timed, the mean of repeats fitted by least squares on relative
/// error; and the probe (sc_latency_probe) once per pass. Leaves BLAS at 1 thread.
int sc_latency_calibrate(const en_model *m, int threads, double seconds, sc_latency_model *out,
                         en_diag *diag);

/// Times the probe on `m` now: unpruned F32 forwards of a fixed set of sequences (the same
/// every call, and inside the calibration). Its time over lm->probe_ms is how much slower the
/// host runs now than when `lm` was measured (other tenants, clocks), which no schedule causes.
/// *ms: ms per probe pass. Leaves BLAS at 1 thread.
int sc_latency_probe(const en_model *m, int threads, double *ms, en_diag *diag);

/// Predicted mean latency (ms) per sequence of `s` over sequences of the given lengths
/// (borrowed, `count` entries): what en_eval() measures with one worker of the same threads.
double sc_latency_predict(const sc_latency_model *lm, const en_config *cfg, const sc_schedule *s,
                          const int *lengths, int count);

/// Predicted ms of the last layer with n rows in, computing a fraction `a` of its heads and `f`
/// of its FFN neurons (1, 1: the whole layer), at precision `p`.
double sc_latency_last(const sc_latency_model *lm, int n, double a, double f, en_precision p);
