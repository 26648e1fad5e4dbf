#include "sc_error.h"

const char *sc_strerror(int code) {
    switch (code) {
#define SC_CASE_(name, value, text)                                                                \
    case value:                                                                                    \
        return text;
        SC_ERRORS(SC_CASE_)
#undef SC_CASE_
    default:
        break;
    }
    // Engine codes and negated errno (and 0) are named by the engine's table.
    return en_strerror(code);
}
