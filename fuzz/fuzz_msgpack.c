/* Fuzz target: the daemon's message decoding path on arbitrary bytes, exactly as searchd runs
 * it for one connection: bytes into a msgpack_unpacker, sp_scan() before each decode, then the
 * envelope and named-argument checks, then packing an error reply. */
#include <stdint.h>
#include <string.h>

#include "proto/sp_msg.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check_args(const sp_msg *m) {
    const msgpack_object *map;
    if (sp_params_map(m->params, &map, NULL) != 0) return;
    static const char *const allowed[] = {"model", "max_drop", "max_flops", "minimize", NULL};
    sp_check_keys(map, allowed, NULL);
    char buf[64];
    double v;
    sp_get_str(map, "model", 0, buf, sizeof buf, NULL);
    sp_get_num(map, "max_drop", 0, &v, NULL);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    const sp_limits lim = {4096, 16};
    msgpack_unpacker unp;
    if (!msgpack_unpacker_init(&unp, 256)) return 0;
    msgpack_sbuffer out;
    msgpack_sbuffer_init(&out);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &out, msgpack_sbuffer_write);
    // Feed in chunks of varying size, as reads arrive.
    size_t off = 0, chunk = 1;
    int dead = 0;
    while (off < size && !dead) {
        size_t n = size - off < chunk ? size - off : chunk;
        chunk = chunk * 3 + 1;
        if (!msgpack_unpacker_reserve_buffer(&unp, n)) break;
        memcpy(msgpack_unpacker_buffer(&unp), data + off, n);
        msgpack_unpacker_buffer_consumed(&unp, n);
        off += n;
        for (;;) {
            size_t len, avail = unp.used - unp.off;
            if (avail == 0) break;
            sp_diag dg;
            int rc = sp_scan(unp.buffer + unp.off, avail, &lim, &len, &dg);
            if (rc == 0) break;
            if (rc < 0) {
                sp_pack_error(&pk, 0, rc, dg.msg);
                dead = 1;
                break;
            }
            msgpack_unpacked u;
            msgpack_unpacked_init(&u);
            if (msgpack_unpacker_next(&unp, &u) != MSGPACK_UNPACK_SUCCESS) {
                msgpack_unpacked_destroy(&u);
                dead = 1; // the scanner let through something msgpack-c refuses: still safe
                break;
            }
            sp_msg m;
            int has_id;
            if (sp_msg_decode(&u.data, &m, &has_id, &dg) != 0)
                sp_pack_error(&pk, has_id ? m.msgid : 0, SP_EENVELOPE, dg.msg);
            else if (m.type == SP_REQUEST)
                check_args(&m);
            msgpack_unpacked_destroy(&u);
        }
    }
    msgpack_sbuffer_destroy(&out);
    msgpack_unpacker_destroy(&unp);
    return 0;
}
