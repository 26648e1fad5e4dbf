#pragma once
/* The forward pass with token pruning, exactly as shared/spec/pruning.md says: after each
 * layer's attention only the k_l most important tokens go on ([CLS] always kept, ties to the
 * lower index, kept rows in original order); the rows are physically removed, so the FFN and
 * the next layers run on fewer rows.
 *
 * An en_ctx is one caller's run state: every buffer is allocated once, for the longest input,
 * and nothing is allocated inside a forward call. Many contexts may share one model. */

#include <stdint.h>

#include "en_model.h"

typedef enum en_metric {
    EN_METRIC_ATTN = 0, // s_j = sum_h sum_i A_h[i][j]
    EN_METRIC_POWER,    // s_j = sum_h sum_{i != j} A_h[i][j]
    EN_METRIC_CLS,      // s_j = sum_h A_h[0][j]
    EN_METRIC_CONTEXT,  // s_j = sum_h ||V_h[j]|| * sum_i A_h[i][j]
    EN_METRIC_COUNT
} en_metric;

/// "attn", "power", "cls", "context"; NULL for an out-of-range value. Static storage.
const char *en_metric_name(en_metric m);
/// Parses a metric name into `*out`; EN_ESCHEDULE when unknown.
int en_metric_parse(const char *name, en_metric *out);
/// The metric names for a message, "attn, power, cls or context", into `buf` (NUL-terminated,
/// cut to `len`); returns `buf`. The one list every message takes its names from.
char *en_metric_list(char *buf, size_t len);

/// k_l = clamp(floor(r * n0 + 0.5), 1, n_in): the rows a layer keeps.
int en_keep_count(double ratio, int n0, int n_in);

/// Checks a schedule: `layers` ratios in (0, 1], non-increasing. EN_ESCHEDULE with a message
/// naming the offending layer otherwise.
int en_ratios_check(const double *ratios, int layers, en_diag *diag);

/* The precision of a layer's four matrix products (QKV, attention output, FFN in and out).
 * Attention, softmax, LayerNorm and the head stay F32. INT8: weights quantized per output column
 * at load, activations per row at each product, int32 sums, dequantized in the product's
 * epilogue (en_qgemm.h); the same bits on every CPU path. Per-row activation scales keep every
 * row independent of the others, so batches, the [CLS]-only last layer and sibling states give
 * the same bits as one sequence at a time, as in F32. */
typedef enum en_precision { EN_PREC_F32 = 0, EN_PREC_INT8, EN_PREC_COUNT } en_precision;

/// "f32", "int8"; NULL for an out-of-range value. Static storage.
const char *en_precision_name(en_precision p);
/// Parses a precision name into `*out`; EN_ESCHEDULE when unknown.
int en_precision_parse(const char *name, en_precision *out);

typedef struct en_ctx en_ctx;

/// Makes a run state for sequences of up to `max_len` tokens (<= the model's max_pos), BLAS
/// single-threaded unless en_set_blas_threads() says otherwise. `*out` is owned by the caller
/// (free with en_ctx_free()); `m` is borrowed and must outlive it.
int en_ctx_new(const en_model *m, int max_len, en_ctx **out);
void en_ctx_free(en_ctx *c);
/// Sets the precision of each layer's products for the following calls on `c`: `per_layer` has
/// cfg.layers entries (borrowed, copied), or is NULL for all F32 (the default). EN_ESCHEDULE for
/// a value out of range (nothing changes then).
int en_ctx_set_precision(en_ctx *c, const en_precision *per_layer);

/// Runs the following calls with `m` (borrowed, must outlive its use): a model of the same
/// shape, e.g. one narrowed from the context's model (en_width.h); the state is kept, so a
/// caller may change models between layers. EN_EINPUT when the shapes differ.
int en_ctx_set_model(en_ctx *c, const en_model *m);

/// Whole forward pass of one unpadded sequence. `ratios` has cfg.layers entries, or is NULL for
/// no pruning. `logits` receives cfg.num_labels floats. Without `kept` and `kept_n`, the last
/// layer runs for the [CLS] row only (en_ctx_layer_cls): the same logits, less work. `kept`,
/// when not NULL, receives for each layer l the kept positions as indices into the original
/// sequence: kept[l * n + i] for i < k_l (caller-owned, cfg.layers * n entries); `kept_n`, when not
/// NULL, receives k_l. Errors: EN_EINPUT (n < 1, n > max_len, id or type out of range),
/// EN_ESCHEDULE.
int en_forward(en_ctx *c, const int32_t *ids, const int32_t *type_ids, int n, en_metric metric,
               const double *ratios, float *logits, int32_t *kept, int *kept_n);

/* Step by step, so a caller (the schedule search) can cache the hidden state after a prefix
 * of layers and resume from it with another schedule for the remaining layers. */

/// Embeddings of the sequence: the state becomes layer 0's input, n0 = n rows.
int en_ctx_begin(en_ctx *c, const int32_t *ids, const int32_t *type_ids, int n);
/// Runs layer `l` on the current state of a single sequence and keeps `keep` rows
/// (1 <= keep <= current rows).
int en_ctx_layer(en_ctx *c, int l, int keep, en_metric metric);
/// Runs layer `l` for the logits only: each sequence's [CLS] row (row 0), the one row the
/// pooler reads. Its output equals row 0 of en_ctx_layer() with any keep count, bit for bit,
/// so the last layer of a schedule costs one row instead of k (K and V of every row are still
/// needed). The state has one row per sequence after it.
int en_ctx_layer_cls(en_ctx *c, int l);
/// Pooler and classifier on row 0 of the current state; writes cfg.num_labels logits.
int en_ctx_finish(en_ctx *c, float *logits);
/// The current state of a single sequence: `*rows` rows of H floats at `*x` and their original
/// positions at `*pos`, plus the original length `*n0`. Pointers are borrowed, valid until the
/// next call on `c`.
void en_ctx_state(const en_ctx *c, int *n0, int *rows, const float **x, const int32_t **pos);
/// Replaces the current state with a copy of one saved by the caller from en_ctx_state().
int en_ctx_set_state(en_ctx *c, int n0, int rows, const float *x, const int32_t *pos);

/* Sibling states. The rows a layer keeps are ranked by importance, so the kept set of a smaller
 * keep count is a subset of a larger one's, and every step after the selection works row by row
 * (the context row of a query reads all keys, whatever is kept). A layer run once with the
 * largest keep count of several schedules therefore yields each of their states exactly (bit
 * for bit): keep the rows of rank below the smaller count. The search uses this to run a layer
 * once for all the schedules that differ only in that layer's count. */

/// With `on`, later layers rank their rows even when they keep them all (scores cost a little).
void en_ctx_rank_all(en_ctx *c, int on);
/// The importance rank of each current row from the last layer (0: [CLS], 1: the best, ...),
/// or -1 where that layer did not rank. Borrowed, valid until the next call on `c`.
const int32_t *en_ctx_rank(const en_ctx *c);
/// From a saved state of `rows` rows (x [rows, H], pos and rank from en_ctx_state() and
/// en_ctx_rank()), the state the same layer gives with `keep` rows: the rows of rank < keep,
/// in order, into x_out / pos_out (which may be x / pos). EN_EINPUT when the rows were not
/// ranked, EN_ESCHEDULE for keep outside [1, rows].
int en_state_keep_top(const float *x, const int32_t *pos, const int32_t *rank, int rows, int H,
                      int keep, float *x_out, int32_t *pos_out);

/* Ragged batches: several sequences at once, their rows stacked, so the products run over all
 * of them (each weight read once per batch) while attention and pruning stay each sequence's
 * own. The results equal those of one sequence at a time, bit for bit. */

/// A run state for batches of up to `max_seq` sequences of up to `max_len` tokens holding up
/// to `max_rows` tokens in all (max_rows >= max_len). Ownership as en_ctx_new().
int en_ctx_new_batch(const en_model *m, int max_len, int max_rows, int max_seq, en_ctx **out);
/// Embeddings of `nseq` sequences: ids[s], type_ids[s] (type_ids or an entry may be NULL), n[s].
/// All borrowed. EN_EINPUT when a sequence or the total does not fit the state.
int en_ctx_begin_batch(en_ctx *c, int nseq, const int32_t *const *ids,
                       const int32_t *const *type_ids, const int *n);
/// Runs layer `l` on every sequence of the batch, sequence s keeping keep[s] rows ranked by
/// metric[s].
int en_ctx_layer_batch(en_ctx *c, int l, const int *keep, const en_metric *metric);
/// Loads `nseq` saved states as a batch: x[s] holds rows[s] rows of H floats, pos[s] their
/// original positions, n0[s] the original length (all borrowed). EN_EINPUT when they do not fit.
int en_ctx_set_state_batch(en_ctx *c, int nseq, const int *n0, const int *rows,
                           const float *const *x, const int32_t *const *pos);
/// Sequence s's current rows, positions and ranks (en_ctx_rank); borrowed until the next call.
void en_ctx_seq_state(const en_ctx *c, int s, int *rows, const float **x, const int32_t **pos,
                      const int32_t **rank);
/// Pooler and classifier of every sequence: logits[s * num_labels + j].
int en_ctx_finish_batch(en_ctx *c, float *logits);

/* What a layer computes inside, for a caller that studies it (the width profile measures how
 * much each head and neuron contributes): called once per layer run, after the FFN's GELU,
 * with the `rows` kept rows' attention context C (rows x G, the heads side by side) and GELU
 * output U (rows x F). Borrowed for the call. Not called for a layer without neurons. */
typedef void en_observer(void *ud, int layer, int rows, const float *ctx, int G, const float *u,
                         int F);

/// Calls `fn` (NULL: off) in every later layer run on `c`.
void en_ctx_observe(en_ctx *c, en_observer *fn, void *ud);

/* Where a forward pass spends its time, step by step (the engine's own timers). */
typedef enum en_step {
    EN_STEP_EMBED = 0, // embeddings and their LayerNorm
    EN_STEP_QKV,       // Q, K, V product with bias
    EN_STEP_SCORES,    // per head: pack the keys, Q K^T
    EN_STEP_SOFTMAX,   // per head: softmax of the score rows
    EN_STEP_SELECT,    // importance scores and the kept set
    EN_STEP_CONTEXT,   // per head: kept attention rows, pack the values, A V
    EN_STEP_GATHER,    // kept rows of the residual and their positions
    EN_STEP_OUTPUT,    // attention output product with bias and residual
    EN_STEP_FFN_IN,    // intermediate product with bias and GELU
    EN_STEP_FFN_OUT,   // output product with bias and residual
    EN_STEP_LAYERNORM, // the two LayerNorms of a layer
    EN_STEP_HEAD,      // pooler and classifier
    EN_STEP_COUNT
} en_step;

/// "embed", "qkv", ...; NULL for an out-of-range value. Static storage.
const char *en_step_name(en_step s);

/// Times every step of the following calls on `c`, adding nanoseconds into `ns` (EN_STEP_COUNT
/// entries, caller-owned, borrowed until profiling is turned off with NULL). Off by default.
void en_ctx_profile(en_ctx *c, double *ns);

/// Sets the number of BLAS threads for this process (OpenBLAS is process-wide). Workers that
/// run sequences in parallel keep it at 1.
void en_set_blas_threads(int n);
