/* The packed product for avx512 (compiled with its flags; see en_gemm_tile.h and meson.build). */
#define VW 16
#define EN_GEMM_NAME en_gemm_avx512
#define EN_SOFTMAX_NAME en_softmax_avx512
#include "en_gemm_tile.h"
