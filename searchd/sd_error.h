#pragma once
/* Error codes of the daemon (range -6000..-6099). The one map of who owns which range:
 *      -1 ..   -133  negated errno (system calls; libuv's UV_E* on Unix are the same values)
 *   -1000 ..  -1099  engine       EN_E*  engine/en_error.h
 *   -2000 ..  -2099  schedules    SC_E*  schedules/sc_error.h
 *   -3000 ..  -3099  libuv        UV_EAI_* (address lookup)
 *   -4000 ..  -4099  libuv        UV_EOF, UV_ECHARSET, UV_EFTYPE, UV_UNKNOWN ...
 *   -5000 ..  -5099  protocol     SP_E*  proto/sp_error.h
 *   -6000 ..  -6099  daemon       SD_E*  here
 * A reply's error code may come from any of them; sd_strerror() names them all. */

#include "engine/en_error.h"

#define SD_ERRORS(X)                                                                               \
    X(SD_ENOMODEL, -6000, "no such model")                                                         \
    X(SD_ENOJOB, -6001, "no such job")                                                             \
    X(SD_EBUSY, -6002, "too many jobs queued")                                                     \
    X(SD_ENOFRONTIER, -6003, "model has no schedules yet")                                         \
    X(SD_EOPTION, -6004, "bad option")                                                             \
    X(SD_ESHUTDOWN, -6005, "searchd is shutting down")                                             \
    X(SD_EJOBDONE, -6006, "job already finished")                                                  \
    X(SD_ENOPROFILE, -6007, "model has no latency profile yet")                                    \
    X(SD_ESTATE, -6008, "state directory problem")                                                 \
    X(SD_ELISTEN, -6009, "cannot listen")                                                          \
    X(SD_ECHANGED, -6010, "the model's weights changed on disk")                                   \
    X(SD_ENAME, -6011, "name used by another model")

enum {
#define SD_ENUM_(name, code, text) name = code,
    SD_ERRORS(SD_ENUM_)
#undef SD_ENUM_
};

/// Text for any code a reply may carry. Static storage.
const char *sd_strerror(int code);
