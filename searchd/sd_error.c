#include "sd_error.h"

#include "proto/sp_error.h"
#include "schedules/sc_error.h"

#include <uv.h>

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
    if (code <= -5000 && code > -5100) return sp_strerror(code);
    // libuv's own codes (UV_EAI_* -3000.., UV_EOF and friends -4000..) pass through from I/O.
    if ((code <= -3000 && code > -3100) || (code <= -4000 && code > -4100))
        return uv_strerror(code);
    return sc_strerror(code);
}
