#pragma once
/* The wire protocol of searchd: plain msgpack-RPC. A request is `[0, msgid, method, params]`,
 * its response `[1, msgid, error, result]` with error nil or `[code, message]`, and a
 * notification `[2, method, params]`. `params` is an array holding one map of named arguments,
 * or an empty array. A reply to a message whose msgid could not be read carries msgid 0, as
 * Neovim does.
 *
 * Bytes are first checked by sp_scan(), which walks the msgpack headers without allocating, so
 * a message over the size cap or nested deeper than the cap is refused before msgpack-c
 * allocates anything for it; then msgpack-c decodes it and sp_msg_decode() checks the envelope
 * field by field, msgid first so that an error can carry it. */

#include <msgpack.h>
#include <stddef.h>
#include <stdint.h>

#include "sp_error.h"

#define SP_MAX_MESSAGE_DEFAULT (1u << 20) // bytes in one message
#define SP_MAX_DEPTH_DEFAULT 16           // nesting of arrays and maps, the envelope included
#define SP_MAX_DEPTH_LIMIT 64             // the scanner's own stack

typedef struct sp_limits {
    size_t max_message;
    int max_depth; // <= SP_MAX_DEPTH_LIMIT
} sp_limits;

/// Finds the end of the first msgpack object in `p[0..n)` (borrowed). Returns 1 and sets
/// `*msg_len` when it is complete, 0 when more bytes are needed, or SP_EMALFORMED (a byte no
/// msgpack object starts with), SP_ETOOBIG (it is, or declares itself, longer than
/// lim->max_message) or SP_ETOODEEP (arrays/maps nested deeper than lim->max_depth), each with
/// a message. An error means the stream cannot be resynchronised.
int sp_scan(const void *p, size_t n, const sp_limits *lim, size_t *msg_len, sp_diag *diag);

typedef enum sp_type { SP_REQUEST = 0, SP_RESPONSE = 1, SP_NOTIFY = 2 } sp_type;

/// One decoded message; every pointer borrows from the msgpack object it was decoded from.
typedef struct sp_msg {
    sp_type type;
    uint32_t msgid;     // request, response
    const char *method; // request, notification: not NUL-terminated
    size_t method_len;
    const msgpack_object *params; // request, notification: an array
    const msgpack_object *error;  // response: nil or [code, message]
    const msgpack_object *result; // response
} sp_msg;

/// Checks the envelope of `o` (borrowed) field by field. On failure returns SP_EENVELOPE with a
/// precise message; `*has_msgid` (may be NULL) says whether out->msgid was read before the
/// failure, so the error reply can carry it.
int sp_msg_decode(const msgpack_object *o, sp_msg *out, int *has_msgid, sp_diag *diag);

/* Packing. Each *_head packs the envelope up to its last element; the caller packs that. */
void sp_pack_request_head(msgpack_packer *pk, uint32_t msgid, const char *method);
void sp_pack_result_head(msgpack_packer *pk, uint32_t msgid);
void sp_pack_notify_head(msgpack_packer *pk, const char *method);
/// A whole error response `[1, msgid, [code, message], nil]`.
void sp_pack_error(msgpack_packer *pk, uint32_t msgid, int code, const char *message);
void sp_pack_str(msgpack_packer *pk, const char *s);
/// Map entries: a string key and a value.
void sp_pack_kstr(msgpack_packer *pk, const char *key, const char *value);
void sp_pack_knum(msgpack_packer *pk, const char *key, double value);
void sp_pack_kint(msgpack_packer *pk, const char *key, int64_t value);
void sp_pack_kbool(msgpack_packer *pk, const char *key, int value);

/* Named arguments. */

/// `params` must be `[]` or `[map]`; `*map` is that map (borrowed) or NULL for `[]`.
int sp_params_map(const msgpack_object *params, const msgpack_object **map, sp_diag *diag);
/// Value of `key` in `map` (NULL map allowed), or NULL. Borrowed.
const msgpack_object *sp_map_get(const msgpack_object *map, const char *key);
/// SP_EPARAMS naming the first key of `map` not in `allowed` (NULL-terminated), and the
/// allowed ones, so a typo like `max-drop` gets an answer that shows the fix.
int sp_check_keys(const msgpack_object *map, const char *const *allowed, sp_diag *diag);
/// A string argument copied into `buf` (`cap` bytes, NUL-terminated). Returns 0, 1 when absent
/// and not `required`, SP_EMISSING, SP_ETYPE, or SP_EPARAMS when longer than cap - 1, holding
/// a NUL byte or not valid UTF-8 (names and paths are stored as JSON text, which is UTF-8).
int sp_get_str(const msgpack_object *map, const char *key, int required, char *buf, size_t cap,
               sp_diag *diag);
/// A numeric argument (integer or float). Returns 0, 1 when absent and not `required`,
/// SP_EMISSING or SP_ETYPE.
int sp_get_num(const msgpack_object *map, const char *key, int required, double *out,
               sp_diag *diag);
/// Number value of `o` (integer or float) into `*out`: 0, or SP_ETYPE.
int sp_obj_num(const msgpack_object *o, double *out);
/// Length of the longest valid UTF-8 prefix of `p[0..n)` (n when all of it is valid): strict,
/// no overlong forms, surrogates or code points over U+10FFFF.
size_t sp_utf8_valid_prefix(const char *p, size_t n);
/// Quotes at most 32 characters of what a client sent (`p[0..n)`, borrowed) into `buf`, for an
/// error message: valid UTF-8 is kept, control characters, quotes and invalid bytes become
/// \xNN, "..." marks a cut. Returns `buf`, always NUL-terminated valid UTF-8.
const char *sp_excerpt(const char *p, size_t n, char *buf, size_t cap);
/// 1 when `o` is a string equal to `s`.
int sp_obj_streq(const msgpack_object *o, const char *s);
