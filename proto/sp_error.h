#pragma once
/* Error codes of the wire protocol (range -5000..-5099), shared by searchd and its clients: a
 * message that is not msgpack, not msgpack-RPC, too large or too deep, or whose parameters are
 * wrong. One X-macro table makes the enum and sp_strerror(). */

#include <stddef.h>

#define SP_ERRORS(X)                                                                               \
    X(SP_EMALFORMED, -5000, "malformed msgpack")                                                   \
    X(SP_ETOOBIG, -5001, "message too large")                                                      \
    X(SP_ETOODEEP, -5002, "message nested too deeply")                                             \
    X(SP_EENVELOPE, -5003, "not a msgpack-RPC message")                                            \
    X(SP_EMETHOD, -5004, "unknown method")                                                         \
    X(SP_EPARAMS, -5005, "bad parameters")                                                         \
    X(SP_ETYPE, -5006, "parameter of the wrong type")                                              \
    X(SP_EMISSING, -5007, "missing parameter")                                                     \
    X(SP_ETIMEOUT, -5008, "timed out")                                                             \
    X(SP_ECLOSED, -5009, "connection closed")                                                      \
    X(SP_EADDRESS, -5010, "bad address")

enum {
#define SP_ENUM_(name, code, text) name = code,
    SP_ERRORS(SP_ENUM_)
#undef SP_ENUM_
};

/// Text for an SP_E* code, a negated errno, or 0; "unknown error" otherwise. Static storage.
const char *sp_strerror(int code);

/// A message a person can act on, filled by the function that failed.
typedef struct sp_diag {
    char msg[256];
} sp_diag;

/// Writes a printf-style message into `d` (no-op when NULL) and returns `code`.
int sp_fail(sp_diag *d, int code, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
