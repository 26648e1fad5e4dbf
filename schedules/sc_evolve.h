#pragma once
/* Internal to the search: schedules on the 0.05 grid, the simple families that seed the
 * search, and the monotone mutations and crossover that improve on them. Pure functions of a
 * seeded generator, so a search is deterministic for its seed. */

#include <stdint.h>

#include "sc_schedule.h"

/// Ratios are multiples of 1 / SC_GRID: short canonical forms, and nearby schedules keep the
/// same token counts on short sentences, which prefix sharing turns into saved work.
#define SC_GRID 20

typedef struct sc__rng {
    uint64_t s;
} sc__rng;

void sc__rng_seed(sc__rng *r, uint64_t seed);
/// Uniform in [0, n).
int sc__rand_below(sc__rng *r, int n);

/// Writes the simple families for `layers` layers and metric `m` into `out` (caller-owned, at
/// least SC_FAMILY_MAX entries): one ratio for every layer, and linear ramps that keep the first
/// one or two layers whole. Returns how many.
#define SC_FAMILY_MAX 32
int sc__families(int layers, en_metric m, sc_schedule *out);

/// A child of `p` (and, for crossover, `q`; borrowed, same layer count): one monotone mutation
/// (lower or raise one layer and carry the change on so ratios stay non-increasing, lower the
/// tail to the floor, change the metric), a one-point crossover, with `heads` > 0 (the
/// model's head count: width is searched) a change of one layer's heads or FFN level, or of
/// every layer's FFN level, and with `int8` a change of one layer's precision or of all.
void sc__mutate(sc__rng *r, const sc_schedule *p, const sc_schedule *q, int heads, int int8,
                sc_schedule *child);
/// Seeds with width, for a model of `heads` heads: uniform FFN levels and half the heads, with
/// every token kept and with a ramp. Writes at most SC_WIDTH_SEEDS_MAX into out.
#define SC_WIDTH_SEEDS_MAX 32
int sc__width_seeds(int layers, int heads, en_metric m, sc_schedule *out);

/// Makes `s` one grid step cheaper at its deepest layer above the floor (its width and
/// precision stay); 0 when it cannot.
int sc__cheapen(sc_schedule *s);
