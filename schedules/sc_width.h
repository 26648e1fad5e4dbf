#pragma once
/* What a search needs to prune width (shared/spec/width.md) without retraining: per layer, the
 * heads and FFN neurons ranked by how much they contribute to the layer's output, and the
 * factors that best make up for the ones removed.
 *
 * Measured forward only, on the search part of the data, with the unpruned model:
 *  - a neuron j's contribution to the FFN output is u_j W2[:, j]; a head h's to the attention
 *    output is O_h = C_h Wo[:, h]^T (its context times its Wo columns);
 *  - importance: the energy of that contribution over all rows (sum ||u_j W2[:,j]||^2, sum
 *    ||O_h||^2): an activation statistic times a weight norm, which needs no gradient;
 *  - rescaling (Kwon et al. 2022's layer-wise reconstruction): for a kept set N, the factors s
 *    minimizing sum_rows || sum_{j in N} s_j u_j W2[:,j] - sum_all u_j W2[:,j] ||^2. Its normal
 *    equations need only the Gram matrix P = (U^T U) o (W2^T W2) (Hadamard product):
 *    P_NN s = (P 1)_N, solved by Cholesky (LAPACK) with a small ridge. Keeping everything gives
 *    s = 1 exactly. Heads the same way with the h x h Gram of the O_h.
 * Heads are chosen by count g (the g best), neurons by level v of SC_WIDTH_LEVELS (the
 * round(v * I / SC_WIDTH_LEVELS) best), so a schedule's width is a few small integers and the
 * profile turns them into the exact kept sets and factors, deterministically. */

#include <pthread.h>
#include <stdint.h>

#include "engine/en_dataset.h"
#include "engine/en_width.h"
#include "sc_schedule.h"

#define SC_WIDTH_LEVELS 20 // FFN width levels: multiples of 1/20 of the neurons

/* Which factors are fitted. Measured on SST-2 (README): for heads the factors recover most of
 * what removing a head loses (sst2-bert-L6-H256, 2 heads of 4 in every layer: 78.6% -> 80.6%,
 * the unpruned model's accuracy); for neurons they cost a little at equal FLOPs (10% of the
 * neurons: 81.2% without, 80.4% with), so the default fits heads only. */
enum {
    SC_RESCALE_HEADS = 1,
    SC_RESCALE_NEURONS = 2,
    SC_RESCALE_DEFAULT = SC_RESCALE_HEADS,
    SC_RESCALE_NONE = 4 // for a search's options, where 0 means the default: no factors
};

typedef struct sc_width_profile {
    int layers, heads, ffn;
    unsigned rescale;      // SC_RESCALE_* bits: which factors are fitted (the others are 1)
    int32_t *head_order;   // [L][h] heads, most important first
    int32_t *neuron_order; // [L][I] neurons, most important first
    float *head_scale;     // [L][h][h]: for g kept heads, [l][g-1][i] is the factor of the
                           // i-th kept head in ascending head order
    float *neuron_scale;   // [L][SC_WIDTH_LEVELS + 1][I]: for level v, [l][v][i] likewise
    int examples;          // sequences measured
} sc_width_profile;

/// Measures `m` on examples `index[0..n)` of `d` (NULL: all; at most `max_examples` of them,
/// the first ones), fits the factors `rescale` says (SC_RESCALE_* bits) and fills `*out` (free
/// with sc_width_profile_free). EN_ENOMEM, engine errors.
int sc_width_profile_measure(const en_model *m, const en_dataset *d, const int *index, int n,
                             int max_examples, unsigned rescale, sc_width_profile *out,
                             en_diag *diag);
void sc_width_profile_free(sc_width_profile *p);

/// A deep copy of `p` into `*out` (free with sc_width_profile_free). EN_ENOMEM.
int sc_width_profile_copy(const sc_width_profile *p, sc_width_profile *out);

/// A profile that ranks heads and neurons by index with all factors 1: for what depends only on
/// how many are kept (timing). Free with sc_width_profile_free. EN_ENOMEM.
int sc_width_profile_plain(const en_config *cfg, sc_width_profile *out);

/// Internal, for tests: the memory (MB, default 256; <= 0 restores it) for the statistics of
/// one pass, which sets how many layers a pass over the examples measures.
void sc__width_stats_mb(int mb);

/// Neurons kept at level v (0..SC_WIDTH_LEVELS) of a layer with I neurons.
int sc_width_neurons(int ffn, int level);

/// Layer l's width for g heads (1..h) and neuron level v: the kept sets, ascending, into
/// heads[h] / neurons[I] and their factors into head_scale[h] / neuron_scale[I] (all
/// caller-owned), and `*out` pointing at them.
void sc_width_layer(const sc_width_profile *p, int l, int g, int level, int32_t *heads,
                    float *head_scale, int32_t *neurons, float *neuron_scale, en_layer_width *out);

/// The model `s` runs: `m` narrowed to s's widths with the kept sets and factors of `p`, into
/// `*out` (owned by the caller, borrows `m`: en_model_narrow()); NULL when s narrows nothing.
/// EN_ESCHEDULE when s narrows and `p` is NULL or of another shape; EN_ENOMEM.
int sc_width_narrow(const en_model *m, const sc_width_profile *p, const sc_schedule *s,
                    en_model **out, en_diag *diag);

/* Narrowed layers made on demand and kept, shared by every thread of a search: the attention
 * part for each (layer, head count) and the FFN part for each (layer, level). */
typedef struct sc_width_bank {
    const en_model *m;            // borrowed
    const sc_width_profile *prof; // borrowed
    pthread_mutex_t lock;
    en_model **attn; // [L][h]: index g - 1; NULL until first asked for
    en_model **ffn;  // [L][SC_WIDTH_LEVELS + 1]
} sc_width_bank;

int sc_width_bank_init(sc_width_bank *b, const en_model *m, const sc_width_profile *prof);
void sc_width_bank_fini(sc_width_bank *b);
/// Makes layer l of `dst` (a copy of the bank's model) compute g heads (0: all) and neuron
/// level v. Thread-safe. EN_ENOMEM.
int sc_width_bank_apply(sc_width_bank *b, en_model *dst, int l, int g, int level);
