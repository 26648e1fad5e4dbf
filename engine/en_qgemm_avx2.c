/* The INT8 product for AVX2 (see en_qgemm_tile.h). `vpmaddubsw` multiplies the u8 activations
 * by the s7 weights and adds pairs into int16 (at most 2 * 255 * 63 = 32130: it never
 * saturates), `vpmaddwd` by ones adds the pairs into int32: three instructions per 32
 * multiply-adds. */
#include <immintrin.h>
#include <stdint.h>

#define QW 8
#define QMR 4 // 8 accumulators, 2 panel vectors, the broadcast, ones and temporaries of 16
#define EN_QGEMM_NAME en_qgemm_avx2

typedef __m256i qv;

static inline qv q_zero(void) {
    return _mm256_setzero_si256();
}
static inline qv q_load(const int8_t *p) {
    return _mm256_load_si256((const __m256i *)p);
}
static inline qv q_bcast(const uint8_t *p) {
    int32_t x;
    __builtin_memcpy(&x, p, 4);
    return _mm256_set1_epi32(x);
}
static inline qv q_dot(qv acc, qv a, qv w) {
    __m256i pairs = _mm256_maddubs_epi16(a, w);
    return _mm256_add_epi32(acc, _mm256_madd_epi16(pairs, _mm256_set1_epi16(1)));
}

#include "en_qgemm_tile.h"
