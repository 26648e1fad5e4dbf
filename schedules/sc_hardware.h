#pragma once
/* The hardware fingerprint latency figures are tied to: CPU model, the vector extensions the
 * kernels use, cores, threads used, BLAS core type and version. Accuracy is not tied to it. */

#include <stddef.h>

typedef struct sc_hw {
    char cpu[128];  // /proc/cpuinfo "model name"
    char simd[96];  // e.g. "avx512f,avx2,fma" as the build and CPU both support
    int cores;      // online CPUs
    int threads;    // threads the engine uses for a sequence
    char blas[128]; // openblas_get_config() plus OPENBLAS_CORETYPE when set
} sc_hw;

/// Fingerprint of this host for an engine using `threads` threads.
void sc_hw_detect(int threads, sc_hw *out);
/// 1 when two fingerprints describe the same hardware and setting.
int sc_hw_equal(const sc_hw *a, const sc_hw *b);
/// One line for people: "AMD EPYC, avx512f,fma, 2 cores, 1 thread, OpenBLAS 0.3.21 Haswell".
void sc_hw_format(const sc_hw *hw, char *buf, size_t len);
