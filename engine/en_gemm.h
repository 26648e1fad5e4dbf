#pragma once
/* The matrix products of the forward pass, built for the shapes a served request has: few rows
 * (a sentence is ~25 tokens) against a large weight. The weight side is packed once, at model
 * load, into panels of 16 output columns ([ceil(n/16)][k][16], zero-padded), so a product streams
 * each panel once, from contiguous memory, with no repacking per call (what OpenBLAS does on
 * every call, and what dominated short requests). The small per-head products of attention pack
 * their right-hand side on the fly into the same layout.
 *
 * One register-blocked micro-kernel, written once with GCC vector types, is compiled per
 * instruction set (AVX-512, AVX2+FMA, SSE2) and chosen at run time from the CPU; the panel layout
 * is the same for all of them. The row softmax of attention is compiled the same way. Bias, GELU
 * and the residual add happen in the micro-kernel while the tile is in registers. Internal to the
 * engine. */

#include <stddef.h>

#define EN_PANEL 16 // output columns per packed panel

enum {
    EN_GEMM_ACCUMULATE = 1, // C += A W^T (the residual is already in C); else C = A W^T
    EN_GEMM_GELU = 2,       // exact-erf GELU after the bias
};

/// Memory for packed weights, `bytes` of it, 64-byte aligned; from 2 MB upwards rounded up to
/// whole 2 MB pages and asked for on transparent huge pages (madvise): a product streams its
/// weight from memory, and 4 KB pages cost a TLB miss and a restart of the hardware prefetcher
/// every 4 KB (measured: 2-8% off every product of a 19 MB model). Owned by the caller: free().
/// NULL when out of memory.
void *en_weights_alloc(size_t bytes);

/// Floats a packed [n, k] weight takes: ceil(n / 16) * 16 * k.
size_t en_packed_floats(int n, int k);

/// Packs W [n, k] (row stride `ldw`; a PyTorch Linear weight, row j = output column j), times
/// `scale`, into `dst` (en_packed_floats(n, k) floats, caller-owned, 64-byte aligned).
void en_pack_rows(const float *w, int ldw, int n, int k, float scale, float *dst);

/// Packs B [k, n] (row stride `ldb`: row p holds the n outputs' p-th inputs) into `dst`, the
/// same layout as en_pack_rows() of B^T.
void en_pack_cols(const float *b, int ldb, int k, int n, float *dst);

/// C[m, n] = (flags & EN_GEMM_ACCUMULATE ? C : 0) + A[m, k] W^T + bias, then GELU when
/// flags & EN_GEMM_GELU. `packed` is W from en_pack_*(); `bias` has n floats or is NULL. All
/// pointers borrowed. Uses en_gemm_set_threads() threads when the product is large enough to
/// pay for them.
void en_gemm_packed(int m, int n, int k, const float *a, int lda, const float *packed,
                    const float *bias, int flags, float *c, int ldc);

/// The kernel path in use: "avx512", "avx2" or "sse2". Static storage.
const char *en_gemm_isa(void);

/// Chooses a kernel path by name (tests and benchmarks run every path the CPU has). Returns 0,
/// or -1 when the name is unknown or this CPU cannot run it (the path in use stays).
int en_gemm_set_isa(const char *name);

/// Threads a large product is split over (by panels), process-wide like OpenBLAS's setting;
/// 1 by default. Workers that run sequences in parallel keep it at 1.
void en_gemm_set_threads(int n);

/* One compiled path: columns [jp0 * 16, jp1 * 16) of the product, and the row softmax
 * (en_softmax_rows() in en_kernels.h dispatches to it). Defined per ISA. */
typedef void en_gemm_fn(int m, int n, int k, const float *a, int lda, const float *packed,
                        const float *bias, int flags, float *c, int ldc, int jp0, int jp1);
typedef void en_softmax_fn(float *x, int rows, int cols, int ld);
en_gemm_fn en_gemm_avx512, en_gemm_avx2, en_gemm_sse2;
en_softmax_fn en_softmax_avx512, en_softmax_avx2, en_softmax_sse2;

/* Runs fn(arg, jp0, jp1) over panels [0, panels), split over en_gemm_set_threads() threads when
 * the product has enough multiply-adds (`macs`) to pay for them; each precision's product uses
 * it. */
void en__gemm_split(int panels, long macs, void (*fn)(void *arg, int jp0, int jp1), void *arg);
