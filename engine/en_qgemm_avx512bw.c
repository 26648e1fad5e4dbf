/* The INT8 product for AVX-512BW without VNNI: the AVX2 scheme (en_qgemm_avx2.c) on 512-bit
 * registers. AVX-512 has no `vpsignb`, so w takes a's sign by a masked subtraction from zero
 * under the mask of a's negative bytes (`vpmovb2m`). See en_qgemm_tile.h. */
#include <immintrin.h>

#define QW 16
#define QMR 8
#define Q_UNSIGNED 0
#define EN_QGEMM_NAME en_qgemm_avx512bw

typedef __m512i qv;
typedef struct qa {
    __m512i abs;
    __mmask64 neg;
} qa;

static inline qv q_zero(void) {
    return _mm512_setzero_si512();
}
static inline qv q_load(const int8_t *p) {
    return _mm512_load_si512((const void *)p);
}
static inline qa q_prep(const int8_t *p) {
    int32_t x;
    __builtin_memcpy(&x, p, 4);
    __m512i b = _mm512_set1_epi32(x);
    return (qa){_mm512_abs_epi8(b), _mm512_movepi8_mask(b)};
}
static inline qv q_dot(qv acc, qa a, qv w) {
    __m512i ws = _mm512_mask_sub_epi8(w, a.neg, _mm512_setzero_si512(), w);
    __m512i pairs = _mm512_maddubs_epi16(a.abs, ws);
    return _mm512_add_epi32(acc, _mm512_madd_epi16(pairs, _mm512_set1_epi16(1)));
}

#include "en_qgemm_tile.h"
