/* The packed product for sse2 (compiled with its flags; see en_gemm_tile.h and meson.build). */
#define VW 4
#define EN_GEMM_NAME en_gemm_sse2
#define EN_SOFTMAX_NAME en_softmax_sse2
#include "en_gemm_tile.h"
