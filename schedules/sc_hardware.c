#include "sc_hardware.h"

#include <cblas.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static void cpu_model(char *buf, size_t len);
static void simd_list(char *buf, size_t len);
static void append(char *buf, size_t len, const char *word);

void sc_hw_detect(int threads, sc_hw *out) {
    memset(out, 0, sizeof *out);
    cpu_model(out->cpu, sizeof out->cpu);
    simd_list(out->simd, sizeof out->simd);
    long cores = sysconf(_SC_NPROCESSORS_ONLN);
    out->cores = cores > 0 ? (int)cores : 1;
    out->threads = threads > 0 ? threads : 1;
    // The BLAS kernel is chosen at run time; OPENBLAS_CORETYPE overrides it (and halves sgemm
    // on some hosts), so it is part of what latency figures are tied to.
    const char *config = openblas_get_config();
    const char *core = openblas_get_corename();
    const char *forced = getenv("OPENBLAS_CORETYPE");
    snprintf(out->blas, sizeof out->blas, "%s; core %s%s%s", config ? config : "unknown BLAS",
             core ? core : "?", forced && *forced ? "; OPENBLAS_CORETYPE=" : "",
             forced && *forced ? forced : "");
}

int sc_hw_equal(const sc_hw *a, const sc_hw *b) {
    return strcmp(a->cpu, b->cpu) == 0 && strcmp(a->simd, b->simd) == 0 && a->cores == b->cores &&
           a->threads == b->threads && strcmp(a->blas, b->blas) == 0;
}

void sc_hw_format(const sc_hw *hw, char *buf, size_t len) {
    snprintf(buf, len, "%s, %s, %d core%s, %d thread%s, %s", hw->cpu,
             hw->simd[0] ? hw->simd : "no SIMD extensions", hw->cores, hw->cores == 1 ? "" : "s",
             hw->threads, hw->threads == 1 ? "" : "s", hw->blas);
}

static void cpu_model(char *buf, size_t len) {
    snprintf(buf, len, "unknown CPU");
    FILE *f = fopen("/proc/cpuinfo", "r");
    if (!f) return;
    char line[512];
    while (fgets(line, sizeof line, f)) {
        if (strncmp(line, "model name", 10) != 0) continue;
        const char *v = strchr(line, ':');
        if (!v) continue;
        v++;
        while (*v == ' ' || *v == '\t')
            v++;
        snprintf(buf, len, "%s", v);
        buf[strcspn(buf, "\n")] = '\0';
        break;
    }
    fclose(f);
}

/* The extensions both this build's kernels were compiled for and the CPU has. */
static void simd_list(char *buf, size_t len) {
    buf[0] = '\0';
    __builtin_cpu_init();
#ifdef __AVX512F__
    if (__builtin_cpu_supports("avx512f")) append(buf, len, "avx512f");
#endif
#ifdef __AVX2__
    if (__builtin_cpu_supports("avx2")) append(buf, len, "avx2");
#endif
#ifdef __FMA__
    if (__builtin_cpu_supports("fma")) append(buf, len, "fma");
#endif
#ifdef __F16C__
    append(buf, len, "f16c");
#endif
#if !defined(__AVX2__) && defined(__SSE2__)
    append(buf, len, "sse2");
#endif
}

static void append(char *buf, size_t len, const char *word) {
    size_t used = strlen(buf);
    snprintf(buf + used, len - used, "%s%s", used ? "," : "", word);
}
