/* A header walker for msgpack: finds where the first object ends and how deep it nests,
 * reading only type bytes and lengths, so limits hold before anything is allocated. */
#include "sp_msg.h"

static uint64_t be(const uint8_t *p, int bytes) {
    uint64_t v = 0;
    for (int i = 0; i < bytes; i++)
        v = v << 8 | p[i];
    return v;
}

/* Header size and what follows it for the type byte b: `*len_bytes` bytes of big-endian length
 * after the type byte (0 when fixed), `*body` fixed body bytes, `*kind` 0 scalar, 1 array,
 * 2 map, `*count` a fix container's element count. Returns -1 for 0xc1, never used. */
static int classify(uint8_t b, int *len_bytes, uint64_t *body, int *kind, uint64_t *count) {
    *len_bytes = 0;
    *body = 0;
    *kind = 0;
    *count = 0;
    if (b <= 0x7f || b >= 0xe0 || b == 0xc0 || b == 0xc2 || b == 0xc3) return 0;
    if (b >= 0x80 && b <= 0x8f) {
        *kind = 2;
        *count = b & 0x0f;
        return 0;
    }
    if (b >= 0x90 && b <= 0x9f) {
        *kind = 1;
        *count = b & 0x0f;
        return 0;
    }
    if (b >= 0xa0 && b <= 0xbf) {
        *body = b & 0x1f;
        return 0;
    }
    switch (b) {
    case 0xc4:
    case 0xd9:
        *len_bytes = 1;
        return 0; // bin8, str8
    case 0xc5:
    case 0xda:
        *len_bytes = 2;
        return 0; // bin16, str16
    case 0xc6:
    case 0xdb:
        *len_bytes = 4;
        return 0; // bin32, str32
    case 0xc7:
        *len_bytes = 1;
        *body = 1;
        return 0; // ext8: length, then type byte
    case 0xc8:
        *len_bytes = 2;
        *body = 1;
        return 0;
    case 0xc9:
        *len_bytes = 4;
        *body = 1;
        return 0;
    case 0xca:
        *body = 4;
        return 0;
    case 0xcb:
        *body = 8;
        return 0;
    case 0xcc:
    case 0xd0:
        *body = 1;
        return 0;
    case 0xcd:
    case 0xd1:
        *body = 2;
        return 0;
    case 0xce:
    case 0xd2:
        *body = 4;
        return 0;
    case 0xcf:
    case 0xd3:
        *body = 8;
        return 0;
    case 0xd4:
        *body = 2;
        return 0; // fixext1: type + 1
    case 0xd5:
        *body = 3;
        return 0;
    case 0xd6:
        *body = 5;
        return 0;
    case 0xd7:
        *body = 9;
        return 0;
    case 0xd8:
        *body = 17;
        return 0;
    case 0xdc:
        *kind = 1;
        *len_bytes = 2;
        return 0;
    case 0xdd:
        *kind = 1;
        *len_bytes = 4;
        return 0;
    case 0xde:
        *kind = 2;
        *len_bytes = 2;
        return 0;
    case 0xdf:
        *kind = 2;
        *len_bytes = 4;
        return 0;
    default:
        return -1; // 0xc1
    }
}

int sp_scan(const void *buf, size_t n, const sp_limits *lim, size_t *msg_len, sp_diag *diag) {
    const uint8_t *p = buf;
    int max_depth = lim->max_depth < SP_MAX_DEPTH_LIMIT ? lim->max_depth : SP_MAX_DEPTH_LIMIT;
    uint64_t need[SP_MAX_DEPTH_LIMIT + 1]; // objects still to read at each open level
    int depth = 0;
    need[0] = 1;
    uint64_t pos = 0;
    for (;;) {
        while (depth >= 0 && need[depth] == 0)
            depth--;
        if (depth < 0) {
            *msg_len = (size_t)pos;
            return 1;
        }
        if (pos >= n) return 0;
        need[depth]--;
        int len_bytes, kind;
        uint64_t body, count;
        if (classify(p[pos], &len_bytes, &body, &kind, &count) < 0)
            return sp_fail(diag, SP_EMALFORMED, "malformed msgpack: byte 0x%02x at offset %llu",
                           p[pos], (unsigned long long)pos);
        if (pos + 1 + (uint64_t)len_bytes > n) return 0;
        if (len_bytes) {
            uint64_t v = be(p + pos + 1, len_bytes);
            if (kind)
                count = v;
            else
                body += v;
        }
        pos += 1 + (uint64_t)len_bytes;
        if (kind) {
            uint64_t elems = kind == 2 ? 2 * count : count;
            // Every element takes at least one byte: a count beyond the cap cannot fit.
            if (pos + elems > lim->max_message)
                return sp_fail(diag, SP_ETOOBIG,
                               "message too large: a container of %llu elements exceeds the "
                               "%zu-byte limit",
                               (unsigned long long)count, lim->max_message);
            if (elems > 0) {
                if (depth + 1 > max_depth)
                    return sp_fail(diag, SP_ETOODEEP, "message nested more than %d levels deep",
                                   max_depth);
                need[++depth] = elems;
            }
        } else {
            pos += body;
        }
        if (pos > lim->max_message)
            return sp_fail(diag, SP_ETOOBIG, "message too large: over the %zu-byte limit",
                           lim->max_message);
        if (pos > n) return 0;
    }
}
