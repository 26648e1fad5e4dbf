#include "en_error.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

const char *en_strerror(int code) {
    switch (code) {
    case 0:
        return "success";
#define EN_CASE_(name, value, text)                                                                \
    case value:                                                                                    \
        return text;
        EN_ERRORS(EN_CASE_)
#undef EN_CASE_
    default:
        break;
    }
    if (code < 0 && code > -1000) return strerror(-code);
    return "unknown error";
}

int en_fail(en_diag *d, int code, const char *fmt, ...) {
    if (d) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(d->msg, sizeof d->msg, fmt, ap);
        va_end(ap);
    }
    return code;
}
