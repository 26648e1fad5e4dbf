/* The INT8 product for AVX-512 VNNI: `vpdpbusd` multiplies u8 by s8 and adds each group of four
 * products into int32 with no int16 step, so nothing can saturate: one instruction per 64
 * multiply-adds, the same sums as the reference. See en_qgemm_tile.h. */
#include <immintrin.h>
#include <stdint.h>

#define QW 16
#define QMR 8
#define EN_QGEMM_NAME en_qgemm_avx512vnni

typedef __m512i qv;

static inline qv q_zero(void) {
    return _mm512_setzero_si512();
}
static inline qv q_load(const int8_t *p) {
    return _mm512_load_si512((const void *)p);
}
static inline qv q_bcast(const uint8_t *p) {
    int32_t x;
    __builtin_memcpy(&x, p, 4);
    return _mm512_set1_epi32(x);
}
static inline qv q_dot(qv acc, qv a, qv w) {
    return _mm512_dpbusd_epi32(acc, a, w);
}

#include "en_qgemm_tile.h"
