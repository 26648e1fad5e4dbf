/* The walk over a table of kernel paths, best first (en_isa.h). */
#include "en_isa.h"

#include <string.h>

static const en_isa *row(const en_isa_table *t, int i) {
    return (const en_isa *)((const char *)t->rows + (size_t)i * t->stride);
}

const void *en_isa_choose(en_isa_table *t) {
    __builtin_cpu_init();
    const en_isa *p = NULL;
    for (int i = 0; i < t->n && !p; i++)
        if (row(t, i)->supported()) p = row(t, i);
    t->current = p;
    return p;
}

int en_isa_set(en_isa_table *t, const char *name) {
    en_isa_current(t); // __builtin_cpu_init()
    for (int i = 0; i < t->n; i++)
        if (strcmp(row(t, i)->name, name) == 0 && row(t, i)->supported()) {
            t->current = row(t, i);
            return 0;
        }
    return -1;
}
