/* The INT8 product for AVX-512 VNNI: `vpdpbusd` multiplies u8 by s8 and adds each group of four
 * products into int32 without an s16 step, so nothing saturates. A is made unsigned by adding
 * 128 (a xor 0x80), and the epilogue takes 128 * sum_k w[j][k] (csum, computed at load) off each
 * column: the same exact sum as the reference, in one instruction per 64 multiply-adds. See
 * en_qgemm_tile.h. */
#include <immintrin.h>

#define QW 16
#define QMR 8
#define Q_UNSIGNED 1
#define EN_QGEMM_NAME en_qgemm_avx512vnni

typedef __m512i qv;
typedef __m512i qa;

static inline qv q_zero(void) {
    return _mm512_setzero_si512();
}
static inline qv q_load(const int8_t *p) {
    return _mm512_load_si512((const void *)p);
}
static inline qa q_prep(const int8_t *p) {
    int32_t x;
    __builtin_memcpy(&x, p, 4);
    return _mm512_xor_si512(_mm512_set1_epi32(x), _mm512_set1_epi8((char)0x80));
}
static inline qv q_dot(qv acc, qa a, qv w) {
    return _mm512_dpbusd_epi32(acc, a, w);
}

#include "en_qgemm_tile.h"
