#pragma once
/* Error codes of the daemon (range -4000..-4099). A reply's error code may also come from the
 * wire protocol (SP_E*, -3000..), the schedules library (SC_E*, -2000..), the engine (EN_E*,
 * -1000..) or be a negated errno; sd_strerror() names them all. */

#include "engine/en_error.h"

#define SD_ERRORS(X)                                                                               \
    X(SD_ENOMODEL, -4000, "no such model")                                                         \
    X(SD_ENOJOB, -4001, "no such job")                                                             \
    X(SD_EBUSY, -4002, "too many jobs queued")                                                     \
    X(SD_ENOFRONTIER, -4003, "model has no schedules yet")                                         \
    X(SD_EOPTION, -4004, "bad option")                                                             \
    X(SD_ESHUTDOWN, -4005, "searchd is shutting down")                                             \
    X(SD_EJOBDONE, -4006, "job already finished")                                                  \
    X(SD_ENOPROFILE, -4007, "model has no latency profile yet")                                    \
    X(SD_ESTATE, -4008, "state directory problem")                                                 \
    X(SD_ELISTEN, -4009, "cannot listen")                                                          \
    X(SD_ECHANGED, -4010, "the model's weights changed on disk")                                   \
    X(SD_ENAME, -4011, "name used by another model")

enum {
#define SD_ENUM_(name, code, text) name = code,
    SD_ERRORS(SD_ENUM_)
#undef SD_ENUM_
};

/// Text for any code a reply may carry. Static storage.
const char *sd_strerror(int code);
