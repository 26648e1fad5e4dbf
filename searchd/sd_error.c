#include "sd_error.h"

#include "schedules/sc_error.h"
#include "searchd/sp_error.h"

const char *sd_strerror(int code) {
    switch (code) {
#define SD_CASE_(name, value, text)                                                                \
    case value:                                                                                    \
        return text;
        SD_ERRORS(SD_CASE_)
#undef SD_CASE_
    default:
        break;
    }
    if (code <= -3000 && code > -4000) return sp_strerror(code);
    return sc_strerror(code);
}
