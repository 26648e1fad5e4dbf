/* The INT8 product for AVX-512BW without VNNI: the AVX2 scheme (en_qgemm_avx2.c) on 512-bit
 * registers. See en_qgemm_tile.h. */
#include <immintrin.h>
#include <stdint.h>

#define QW 16
#define QMR 8
#define EN_QGEMM_NAME en_qgemm_avx512bw

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
    __m512i pairs = _mm512_maddubs_epi16(a, w);
    return _mm512_add_epi32(acc, _mm512_madd_epi16(pairs, _mm512_set1_epi16(1)));
}

#include "en_qgemm_tile.h"
