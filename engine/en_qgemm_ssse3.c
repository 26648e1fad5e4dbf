/* The INT8 product for SSSE3, the portable path (x86-64 CPUs from 2006 on): the AVX2 scheme
 * (en_qgemm_avx2.c) on 128-bit registers. CPUs without SSSE3 run the scalar reference. See
 * en_qgemm_tile.h. */
#include <immintrin.h>
#include <stdint.h>

#define QW 4
#define QMR 2 // 8 accumulators, 4 panel vectors, the broadcast, ones and temporaries of 16
#define EN_QGEMM_NAME en_qgemm_ssse3

typedef __m128i qv;

static inline qv q_zero(void) {
    return _mm_setzero_si128();
}
static inline qv q_load(const int8_t *p) {
    return _mm_load_si128((const __m128i *)p);
}
static inline qv q_bcast(const uint8_t *p) {
    int32_t x;
    __builtin_memcpy(&x, p, 4);
    return _mm_set1_epi32(x);
}
static inline qv q_dot(qv acc, qv a, qv w) {
    __m128i pairs = _mm_maddubs_epi16(a, w);
    return _mm_add_epi32(acc, _mm_madd_epi16(pairs, _mm_set1_epi16(1)));
}

#include "en_qgemm_tile.h"
