/* The INT8 product for AVX2 (see en_qgemm_tile.h). Without VNNI the multiply is `vpmaddubsw`
 * (u8 x s8 pairs summed into saturating s16), which full 8-bit operands can saturate
 * (2 * 255 * 127 > 32767). The sign trick avoids it: |a| (<= 127, as u8) times w with a's sign
 * (`vpsignb`, in [-127, 127]), so a pair sums to at most 2 * 127 * 127 = 32258 and is exact;
 * `vpmaddwd` by ones then sums the pairs into int32. Four instructions per 32 multiply-adds,
 * with both operands at full 8 bits (a zero point on A would need 7-bit weights to stay exact). */
#include <immintrin.h>

#define QW 8
#define QMR 4 // 8 accumulators, 2 panel vectors, the broadcast, its abs and temporaries: 16
#define Q_UNSIGNED 0
#define EN_QGEMM_NAME en_qgemm_avx2

typedef __m256i qv;
typedef struct qa {
    __m256i abs, sgn;
} qa;

static inline qv q_zero(void) {
    return _mm256_setzero_si256();
}
static inline qv q_load(const int8_t *p) {
    return _mm256_load_si256((const __m256i *)p);
}
static inline qa q_prep(const int8_t *p) {
    int32_t x;
    __builtin_memcpy(&x, p, 4);
    __m256i b = _mm256_set1_epi32(x);
    return (qa){_mm256_abs_epi8(b), b};
}
static inline qv q_dot(qv acc, qa a, qv w) {
    __m256i pairs = _mm256_maddubs_epi16(a.abs, _mm256_sign_epi8(w, a.sgn));
    return _mm256_add_epi32(acc, _mm256_madd_epi16(pairs, _mm256_set1_epi16(1)));
}

#include "en_qgemm_tile.h"
