#pragma once
/* Error codes of the engine (range -1000..-1099) and the diagnostic buffer that carries a
 * message a person can act on (which file, which tensor, which line, what is wrong).
 *
 * Every fallible en_ function returns 0 or a negative code: an EN_E* code below, or a negated
 * errno for system errors (so -ENOENT passes through unchanged). One X-macro table makes both the
 * enum and en_strerror(). */

#include <stddef.h>

#define EN_ERRORS(X)                                                                               \
    X(EN_EFORMAT, -1000, "malformed file")                                                         \
    X(EN_EARCH, -1001, "unsupported model architecture")                                           \
    X(EN_ECONFIG, -1002, "bad model configuration")                                                \
    X(EN_ETENSOR, -1003, "missing or unexpected tensor")                                           \
    X(EN_ESHAPE, -1004, "tensor shape disagrees with the configuration")                           \
    X(EN_EDTYPE, -1005, "unsupported tensor dtype")                                                \
    X(EN_EVOCAB, -1006, "bad vocabulary")                                                          \
    X(EN_EINPUT, -1007, "bad input sequence")                                                      \
    X(EN_ESCHEDULE, -1008, "bad pruning schedule")                                                 \
    X(EN_EDATA, -1009, "bad data set")                                                             \
    X(EN_ELABEL, -1010, "label unknown to the model")                                              \
    X(EN_ENOMEM, -1011, "out of memory")                                                           \
    X(EN_ERANGE, -1012, "value out of range")                                                      \
    X(EN_ECANCELED, -1013, "canceled")

enum {
#define EN_ENUM_(name, code, text) name = code,
    EN_ERRORS(EN_ENUM_)
#undef EN_ENUM_
};

/// Human text for any code: an EN_E* code, a negated errno, or 0. Never NULL; static storage.
const char *en_strerror(int code);

/// A message that says what went wrong, filled by the function that failed. Callers may pass
/// NULL wherever an `en_diag *` is taken when they don't want the text.
typedef struct en_diag {
    char msg[512];
} en_diag;

/// Writes a printf-style message into `d` (no-op when `d` is NULL) and returns `code`, so a
/// failure reads `return en_fail(d, EN_EFORMAT, "%s: header length %llu ...", path, len);`.
int en_fail(en_diag *d, int code, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
