/* The packed product for avx2 (compiled with its flags; see en_gemm_tile.h and meson.build). */
#define VW 8
#define EN_GEMM_NAME en_gemm_avx2
#define EN_SOFTMAX_NAME en_softmax_avx2
#include "en_gemm_tile.h"
