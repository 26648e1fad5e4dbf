#pragma once
/* A schedule: an importance metric plus one keep ratio per layer, in (0, 1], non-increasing
 * (shared/spec/pruning.md). Canonical text form `attn:1,1,0.9,0.7,0.5,0.35`: the metric name,
 * a colon, the ratios printed with at most 4 decimals and no trailing zeros. Its identity is
 * the 64-bit FNV-1a hash of that text. */

#include <stddef.h>
#include <stdint.h>

#include "engine/en_forward.h"

typedef struct sc_schedule {
    en_metric metric;
    int layers;
    double ratios[EN_MAX_LAYERS]; // ratios[0 .. layers-1]
} sc_schedule;

/// Parses the canonical form (also accepts a bare ratio list, metric `attn`). `layers` > 0
/// demands that many ratios (EN_ESCHEDULE "schedule has 4 ratios, the model has 6 layers");
/// 0 accepts any count. Ratios are rounded to 4 decimals, checked in (0, 1] and non-increasing.
int sc_schedule_parse(const char *text, int layers, sc_schedule *out, en_diag *diag);

/// Writes the canonical form into `buf` (caller-owned, `len` bytes; 16 + 8 * layers suffice).
/// Returns the length written, or -ENOSPC when it does not fit.
int sc_schedule_format(const sc_schedule *s, char *buf, size_t len);

/// Identity of a schedule: FNV-1a 64 of its canonical form.
uint64_t sc_schedule_hash(const sc_schedule *s);

/// A schedule keeping every token (all ratios 1) with the given metric.
void sc_schedule_full(sc_schedule *s, en_metric metric, int layers);
