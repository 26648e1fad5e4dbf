#pragma once
/* A schedule: an importance metric plus one keep ratio per layer, in (0, 1], non-increasing
 * (shared/spec/pruning.md), and optionally a width per layer (shared/spec/width.md): the
 * fraction of attention heads and of FFN neurons it keeps (which ones, and their factors, come
 * from the model's width profile: sc_width.h).
 *
 * Canonical text form `attn:1,1,0.9,0.7,0.5,0.35`: the metric name, a colon, the ratios printed
 * with at most 4 decimals and no trailing zeros; then, when some layer is narrowed,
 * `;heads:1,1,0.5,0.5,0.5,0.25` and `;ffn:1,0.5,0.1,0.1,0.05,0` (kept fractions, same
 * printing; a list where every layer is whole is left out); then the precision of the layers'
 * matrix products when some layer is not f32: `;int8` when every layer is INT8, else
 * `;prec:f32,int8,...` per layer. Its identity is the 64-bit FNV-1a hash of that text. */

#include <stddef.h>
#include <stdint.h>

#include "engine/en_forward.h"

typedef struct sc_schedule {
    en_metric metric;
    int layers;
    double ratios[EN_MAX_LAYERS];     // ratios[0 .. layers-1]
    double heads_cut[EN_MAX_LAYERS];  // fraction of heads removed, [0, 1); 0: all kept
    double ffn_cut[EN_MAX_LAYERS];    // fraction of FFN neurons removed, [0, 1]; 0: all kept
    en_precision prec[EN_MAX_LAYERS]; // each layer's matrix products; 0 (EN_PREC_F32) by default
} sc_schedule;

/// Longest canonical text, with its NUL.
#define SC_SCHEDULE_TEXT_MAX (64 + 29 * EN_MAX_LAYERS)

/// Parses the canonical form (also accepts a bare ratio list, metric `attn`; the `heads:` and
/// `ffn:` parts in any order). `layers` > 0 demands that many ratios (EN_ESCHEDULE "schedule
/// has 4 ratios, the model has 6 layers"); 0 accepts any count; the width lists have as many
/// entries as the ratios. Numbers are rounded to 4 decimals; ratios checked in (0, 1] and
/// non-increasing, head fractions in (0, 1], FFN fractions in [0, 1].
int sc_schedule_parse(const char *text, int layers, sc_schedule *out, en_diag *diag);

/// Writes the canonical form into `buf` (caller-owned, `len` bytes; SC_SCHEDULE_TEXT_MAX suffice).
/// Returns the length written, or -ENOSPC when it does not fit.
int sc_schedule_format(const sc_schedule *s, char *buf, size_t len);

/// Identity of a schedule: FNV-1a 64 of its canonical form.
uint64_t sc_schedule_hash(const sc_schedule *s);

/// A schedule keeping every token (all ratios 1) with the given metric.
void sc_schedule_full(sc_schedule *s, en_metric metric, int layers);

/// 1 when some layer keeps fewer than all its heads or neurons.
int sc_schedule_has_width(const sc_schedule *s);
/// 1 when some layer's products are not F32.
int sc_schedule_has_precision(const sc_schedule *s);
/// "f32" or "int8" when every layer has that precision, else "mixed". Static storage.
const char *sc_schedule_precision_name(const sc_schedule *s);

/// Heads layer l keeps in a model of `heads` heads (at least 1), and neurons it keeps at the
/// width profile's level grid of `levels` steps (the level, 0..levels).
int sc_schedule_heads(const sc_schedule *s, int l, int heads);
int sc_schedule_ffn_level(const sc_schedule *s, int l, int levels);

/// FLOPs of one sequence of n0 tokens under `s` (shared/spec/width.md), with the neurons a
/// width profile keeps at each layer's FFN level (sc_width_neurons).
double sc_schedule_flops(const en_config *cfg, const sc_schedule *s, int n0);
/// The same with each INT8 layer's FLOPs counted `int8_weight` times (its time relative to an
/// F32 layer's): a cost that ranks precisions, where plain FLOPs cannot.
double sc_schedule_flops_weighted(const en_config *cfg, const sc_schedule *s, int n0,
                                  double int8_weight);
