#pragma once
/* Raw msgpack-RPC messages, built byte for byte with msgpack-c (not with proto/, the code under
 * test): for tests that send what a client library would not, or not that way: malformed,
 * oversized, half-sent, pipelined or never-read requests. */
#include <msgpack.h>
#include <stdint.h>

typedef struct tc_msg {
    msgpack_sbuffer sb; // the bytes so far: sb.data, sb.size
    msgpack_packer pk;  // packs onto sb (for params a test builds itself)
} tc_msg;

void tc_msg_init(tc_msg *m);
void tc_msg_free(tc_msg *m);
/// Appends the head of a request, `[0, msgid, method` (an array of four elements): the caller
/// packs the fourth, the params (an array, or anything else for a malformed request).
void tc_msg_head(tc_msg *m, uint32_t msgid, const char *method);
/// tc_msg_head with a method of `mlen` bytes, which may hold any byte (a NUL, bad UTF-8).
void tc_msg_head_n(tc_msg *m, uint32_t msgid, const char *method, size_t mlen);
/// tc_msg_head and the header of a params array of `nparams` elements, packed next by the caller.
void tc_msg_request(tc_msg *m, uint32_t msgid, const char *method, uint32_t nparams);
/// Appends a whole request whose one param is a map of string pairs, `kv` = {"key", "value",
/// ..., NULL}.
void tc_msg_request_kv(tc_msg *m, uint32_t msgid, const char *method, const char *const *kv);
/// Appends `n` bytes as they are.
void tc_msg_bytes(tc_msg *m, const void *bytes, size_t n);
