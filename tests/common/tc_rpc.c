#include "tc_rpc.h"

#include <string.h>

void tc_msg_init(tc_msg *m) {
    msgpack_sbuffer_init(&m->sb);
    msgpack_packer_init(&m->pk, &m->sb, msgpack_sbuffer_write);
}

void tc_msg_free(tc_msg *m) {
    msgpack_sbuffer_destroy(&m->sb);
}

void tc_msg_head_n(tc_msg *m, uint32_t msgid, const char *method, size_t mlen) {
    msgpack_pack_array(&m->pk, 4);
    msgpack_pack_uint32(&m->pk, 0);
    msgpack_pack_uint32(&m->pk, msgid);
    msgpack_pack_str_with_body(&m->pk, method, mlen);
}

void tc_msg_head(tc_msg *m, uint32_t msgid, const char *method) {
    tc_msg_head_n(m, msgid, method, strlen(method));
}

void tc_msg_request(tc_msg *m, uint32_t msgid, const char *method, uint32_t nparams) {
    tc_msg_head(m, msgid, method);
    msgpack_pack_array(&m->pk, nparams);
}

void tc_msg_request_kv(tc_msg *m, uint32_t msgid, const char *method, const char *const *kv) {
    uint32_t n = 0;
    while (kv[2 * n])
        n++;
    tc_msg_request(m, msgid, method, 1);
    msgpack_pack_map(&m->pk, n);
    for (const char *const *p = kv; *p; p++)
        msgpack_pack_str_with_body(&m->pk, *p, strlen(*p));
}

void tc_msg_bytes(tc_msg *m, const void *bytes, size_t n) {
    msgpack_sbuffer_write(&m->sb, bytes, n);
}
