#pragma once
/* Error codes of the schedules library (range -2000..-2099). Functions here may also return
 * engine codes (EN_E*, -1000..) and negated errno; sc_strerror() names them all. */

#include "engine/en_error.h"

#define SC_ERRORS(X)                                                                               \
    X(SC_ENOMATCH, -2000, "no schedule meets the budget")                                          \
    X(SC_EBUDGET, -2001, "bad budget")                                                             \
    X(SC_EMAGIC, -2002, "not a searchd state file")                                                \
    X(SC_EVERSION, -2003, "state file version not supported")                                      \
    X(SC_ECHECKSUM, -2004, "state file checksum mismatch")                                         \
    X(SC_ECORRUPT, -2005, "state file content is inconsistent")                                    \
    X(SC_EEMPTY, -2006, "empty frontier")                                                          \
    X(SC_EONECLASS, -2007, "data set has a single class")

enum {
#define SC_ENUM_(name, code, text) name = code,
    SC_ERRORS(SC_ENUM_)
#undef SC_ENUM_
};

/// Text for any code of this library, of the engine, or a negated errno. Static storage.
const char *sc_strerror(int code);
