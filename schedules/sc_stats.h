#pragma once
/* Paired statistics on per-example outcomes: how much accuracy a pruned schedule loses against
 * the unpruned model on the same examples, with a one-sided 95% upper bound, so "under 1% drop"
 * can mean "the bound is under 1%" and protect against the search's own overfitting. */

#include <stdint.h>

/// z of a one-sided 95% bound.
#define SC_Z95 1.6448536269514722

typedef struct sc_paired {
    int n;             // examples
    int base_correct;  // right without pruning
    int correct;       // right under the schedule
    int lost;          // right without pruning, wrong under the schedule
    int gained;        // wrong without pruning, right under the schedule
    double drop;       // (base_correct - correct) / n
    double drop_upper; // one-sided 95% upper bound on the drop
} sc_paired;

/// Compares outcomes `cand` against `base` (both borrowed, `n` entries, 1 = right) on the
/// examples listed in `index` (borrowed, `n` indices), or on 0..n-1 when `index` is NULL.
/// The bound is the normal approximation on the paired differences d_i = base_i - cand_i:
/// mean(d) + z95 * s / sqrt(n), s the sample standard deviation (n - 1 denominator). When no
/// example disagrees, s is taken as if one did, so a small sample never gets a zero-width bound.
void sc_paired_compare(const uint8_t *base, const uint8_t *cand, const int *index, int n,
                       sc_paired *out);

/// The bound from counts alone: `n` examples, `lost` and `gained` as above.
double sc_drop_upper(int n, int lost, int gained);
