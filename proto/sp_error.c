#include "sp_error.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

const char *sp_strerror(int code) {
    switch (code) {
    case 0:
        return "success";
#define SP_CASE_(name, value, text)                                                                \
    case value:                                                                                    \
        return text;
        SP_ERRORS(SP_CASE_)
#undef SP_CASE_
    default:
        break;
    }
    if (code < 0 && code > -1000) return strerror(-code);
    return "unknown error";
}

int sp_fail(sp_diag *d, int code, const char *fmt, ...) {
    if (d) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(d->msg, sizeof d->msg, fmt, ap);
        va_end(ap);
    }
    return code;
}
