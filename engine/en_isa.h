#pragma once
/* The choice of a kernel family's path by CPU, shared by the float products (en_gemm.c) and the
 * INT8 products (en_qgemm.c): a table of paths, best first, each row starting with an en_isa
 * (its name and whether this CPU runs it); the first supported row is chosen on first use, and
 * en_isa_set() picks another by name (tests, benchmarks). Internal to the engine. */

#include <stddef.h>

typedef struct en_isa {
    const char *name;       // "avx512", "avx2", ...: what en_gemm_isa() and en_qgemm_isa() say
    int (*supported)(void); // 1 when this CPU runs the path (__builtin_cpu_supports)
} en_isa;

typedef struct en_isa_table {
    const void *rows;              // n rows of `stride` bytes, best first, each led by an en_isa
    size_t stride;                 // sizeof a row
    int n;                         // rows; the last must be supported everywhere
    _Atomic(const void *) current; // the row in use: NULL until chosen
} en_isa_table;

/// Chooses the first supported row (after __builtin_cpu_init()) and returns it.
const void *en_isa_choose(en_isa_table *t);

/// The row in use, chosen on first use.
static inline const void *en_isa_current(en_isa_table *t) {
    const void *p = t->current;
    return p ? p : en_isa_choose(t);
}

/// Uses the row named `name` from now on: 0, or -1 when there is none or this CPU cannot run it.
int en_isa_set(en_isa_table *t, const char *name);
