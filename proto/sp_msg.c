/* Envelope checks, packing helpers and named-argument access for msgpack-RPC. */
#include "sp_msg.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

static const char *type_name(const msgpack_object *o) {
    switch (o->type) {
    case MSGPACK_OBJECT_NIL:
        return "nil";
    case MSGPACK_OBJECT_BOOLEAN:
        return "a boolean";
    case MSGPACK_OBJECT_POSITIVE_INTEGER:
    case MSGPACK_OBJECT_NEGATIVE_INTEGER:
        return "an integer";
    case MSGPACK_OBJECT_FLOAT32:
    case MSGPACK_OBJECT_FLOAT64:
        return "a float";
    case MSGPACK_OBJECT_STR:
        return "a string";
    case MSGPACK_OBJECT_ARRAY:
        return "an array";
    case MSGPACK_OBJECT_MAP:
        return "a map";
    case MSGPACK_OBJECT_BIN:
        return "binary";
    default:
        return "an extension";
    }
}

int sp_msg_decode(const msgpack_object *o, sp_msg *out, int *has_msgid, sp_diag *diag) {
    memset(out, 0, sizeof *out);
    if (has_msgid) *has_msgid = 0;
    if (o->type != MSGPACK_OBJECT_ARRAY)
        return sp_fail(diag, SP_EENVELOPE, "message is %s, not a msgpack-RPC array", type_name(o));
    const msgpack_object *a = o->via.array.ptr;
    uint32_t n = o->via.array.size;
    if (n < 3 || n > 4 || a[0].type != MSGPACK_OBJECT_POSITIVE_INTEGER || a[0].via.u64 > 2)
        return sp_fail(diag, SP_EENVELOPE,
                       "message must be [0, msgid, method, params], [1, msgid, error, result] "
                       "or [2, method, params]");
    out->type = (sp_type)a[0].via.u64;
    if (out->type == SP_NOTIFY) {
        if (n != 3) return sp_fail(diag, SP_EENVELOPE, "notification has %u elements, not 3", n);
    } else {
        if (n != 4)
            return sp_fail(diag, SP_EENVELOPE, "%s has %u elements, not 4",
                           out->type == SP_REQUEST ? "request" : "response", n);
        if (a[1].type != MSGPACK_OBJECT_POSITIVE_INTEGER || a[1].via.u64 > UINT32_MAX)
            return sp_fail(diag, SP_EENVELOPE, "msgid is %s, not an integer in [0, 2^32)",
                           a[1].type == MSGPACK_OBJECT_POSITIVE_INTEGER ? "too large"
                                                                        : type_name(&a[1]));
        out->msgid = (uint32_t)a[1].via.u64;
        if (has_msgid) *has_msgid = 1;
    }
    if (out->type == SP_RESPONSE) {
        out->error = &a[2];
        out->result = &a[3];
        if (a[2].type != MSGPACK_OBJECT_NIL &&
            (a[2].type != MSGPACK_OBJECT_ARRAY || a[2].via.array.size != 2))
            return sp_fail(diag, SP_EENVELOPE, "response error is %s, not nil or [code, message]",
                           type_name(&a[2]));
        return 0;
    }
    // A notification has the layout of a request without the msgid.
    const msgpack_object *method = &a[n - 2], *params = &a[n - 1];
    if (method->type != MSGPACK_OBJECT_STR)
        return sp_fail(diag, SP_EENVELOPE, "method is %s, not a string", type_name(method));
    if (params->type != MSGPACK_OBJECT_ARRAY)
        return sp_fail(diag, SP_EENVELOPE, "params is %s, not an array", type_name(params));
    out->method = method->via.str.ptr;
    out->method_len = method->via.str.size;
    out->params = params;
    return 0;
}

void sp_pack_str(msgpack_packer *pk, const char *s) {
    size_t n = strlen(s);
    msgpack_pack_str(pk, n);
    msgpack_pack_str_body(pk, s, n);
}

void sp_pack_request_head(msgpack_packer *pk, uint32_t msgid, const char *method) {
    msgpack_pack_array(pk, 4);
    msgpack_pack_uint8(pk, 0);
    msgpack_pack_uint32(pk, msgid);
    sp_pack_str(pk, method);
}

void sp_pack_result_head(msgpack_packer *pk, uint32_t msgid) {
    msgpack_pack_array(pk, 4);
    msgpack_pack_uint8(pk, 1);
    msgpack_pack_uint32(pk, msgid);
    msgpack_pack_nil(pk);
}

void sp_pack_notify_head(msgpack_packer *pk, const char *method) {
    msgpack_pack_array(pk, 3);
    msgpack_pack_uint8(pk, 2);
    sp_pack_str(pk, method);
}

void sp_pack_error(msgpack_packer *pk, uint32_t msgid, int code, const char *message) {
    msgpack_pack_array(pk, 4);
    msgpack_pack_uint8(pk, 1);
    msgpack_pack_uint32(pk, msgid);
    msgpack_pack_array(pk, 2);
    msgpack_pack_int(pk, code);
    sp_pack_str(pk, message);
    msgpack_pack_nil(pk);
}

void sp_pack_kstr(msgpack_packer *pk, const char *key, const char *value) {
    sp_pack_str(pk, key);
    sp_pack_str(pk, value);
}

void sp_pack_knum(msgpack_packer *pk, const char *key, double value) {
    sp_pack_str(pk, key);
    msgpack_pack_double(pk, value);
}

void sp_pack_kint(msgpack_packer *pk, const char *key, int64_t value) {
    sp_pack_str(pk, key);
    msgpack_pack_int64(pk, value);
}

void sp_pack_kbool(msgpack_packer *pk, const char *key, int value) {
    sp_pack_str(pk, key);
    if (value)
        msgpack_pack_true(pk);
    else
        msgpack_pack_false(pk);
}

int sp_params_map(const msgpack_object *params, const msgpack_object **map, sp_diag *diag) {
    *map = NULL;
    if (!params || params->type != MSGPACK_OBJECT_ARRAY)
        return sp_fail(diag, SP_EPARAMS, "params must be an array: [] or [{name: value, ...}]");
    if (params->via.array.size == 0) return 0;
    const msgpack_object *m = &params->via.array.ptr[0];
    if (params->via.array.size != 1 || m->type != MSGPACK_OBJECT_MAP)
        return sp_fail(diag, SP_EPARAMS,
                       "params must be [] or [{name: value, ...}], got %u element(s), the first "
                       "%s",
                       params->via.array.size, type_name(m));
    for (uint32_t i = 0; i < m->via.map.size; i++)
        if (m->via.map.ptr[i].key.type != MSGPACK_OBJECT_STR)
            return sp_fail(diag, SP_EPARAMS, "argument names must be strings, one is %s",
                           type_name(&m->via.map.ptr[i].key));
    *map = m;
    return 0;
}

int sp_obj_streq(const msgpack_object *o, const char *s) {
    size_t n = strlen(s);
    return o->type == MSGPACK_OBJECT_STR && o->via.str.size == n &&
           memcmp(o->via.str.ptr, s, n) == 0;
}

const msgpack_object *sp_map_get(const msgpack_object *map, const char *key) {
    if (!map || map->type != MSGPACK_OBJECT_MAP) return NULL;
    for (uint32_t i = 0; i < map->via.map.size; i++)
        if (sp_obj_streq(&map->via.map.ptr[i].key, key)) return &map->via.map.ptr[i].val;
    return NULL;
}

int sp_check_keys(const msgpack_object *map, const char *const *allowed, sp_diag *diag) {
    if (!map) return 0;
    for (uint32_t i = 0; i < map->via.map.size; i++) {
        const msgpack_object *k = &map->via.map.ptr[i].key;
        int ok = 0;
        for (const char *const *a = allowed; *a && !ok; a++)
            ok = sp_obj_streq(k, *a);
        if (ok) continue;
        char list[160] = "";
        size_t used = 0;
        for (const char *const *a = allowed; *a; a++) {
            int w = snprintf(list + used, sizeof list - used, "%s%s", a == allowed ? "" : ", ", *a);
            if (w < 0 || (size_t)w >= sizeof list - used) break;
            used += (size_t)w;
        }
        char ex[160];
        if (k->type == MSGPACK_OBJECT_STR)
            sp_excerpt(k->via.str.ptr, k->via.str.size, ex, sizeof ex);
        else
            snprintf(ex, sizeof ex, "(%s)", type_name(k));
        return sp_fail(diag, SP_EPARAMS, "unknown argument %s; this method takes: %s", ex,
                       used ? list : "no arguments");
    }
    return 0;
}

int sp_get_str(const msgpack_object *map, const char *key, int required, char *buf, size_t cap,
               sp_diag *diag) {
    const msgpack_object *v = sp_map_get(map, key);
    if (!v || v->type == MSGPACK_OBJECT_NIL) {
        if (required) return sp_fail(diag, SP_EMISSING, "missing argument '%s' (a string)", key);
        return 1;
    }
    if (v->type != MSGPACK_OBJECT_STR)
        return sp_fail(diag, SP_ETYPE, "argument '%s' is %s, it must be a string", key,
                       type_name(v));
    if (v->via.str.size >= cap || memchr(v->via.str.ptr, '\0', v->via.str.size))
        return sp_fail(diag, SP_EPARAMS, "argument '%s' is longer than %zu bytes or holds a NUL",
                       key, cap - 1);
    size_t ok = sp_utf8_valid_prefix(v->via.str.ptr, v->via.str.size);
    if (ok < v->via.str.size)
        return sp_fail(diag, SP_EPARAMS,
                       "argument '%s' is not valid UTF-8 (byte %zu): names and paths must be "
                       "UTF-8 text",
                       key, ok);
    memcpy(buf, v->via.str.ptr, v->via.str.size);
    buf[v->via.str.size] = '\0';
    return 0;
}

/* Length of the valid UTF-8 sequence starting at p[0..n), or 0. */
static size_t utf8_char(const unsigned char *p, size_t n) {
    if (p[0] < 0x80) return 1;
    size_t len = p[0] >= 0xc2 && p[0] <= 0xdf   ? 2
                 : p[0] >= 0xe0 && p[0] <= 0xef ? 3
                 : p[0] >= 0xf0 && p[0] <= 0xf4 ? 4
                                                : 0;
    if (len == 0 || len > n) return 0;
    for (size_t i = 1; i < len; i++)
        if ((p[i] & 0xc0) != 0x80) return 0;
    // Overlong 3- and 4-byte forms, UTF-16 surrogates, beyond U+10FFFF.
    if ((p[0] == 0xe0 && p[1] < 0xa0) || (p[0] == 0xed && p[1] >= 0xa0) ||
        (p[0] == 0xf0 && p[1] < 0x90) || (p[0] == 0xf4 && p[1] >= 0x90))
        return 0;
    return len;
}

size_t sp_utf8_valid_prefix(const char *p, size_t n) {
    const unsigned char *u = (const unsigned char *)p;
    size_t i = 0;
    for (size_t len; i < n && (len = utf8_char(u + i, n - i)) > 0; i += len) {
    }
    return i;
}

const char *sp_excerpt(const char *p, size_t n, char *buf, size_t cap) {
    const unsigned char *u = (const unsigned char *)p;
    size_t o = 0, i = 0;
    if (cap < 16) {
        if (cap) buf[0] = '\0';
        return buf;
    }
    buf[o++] = '\'';
    for (int shown = 0; i < n && shown < 32; shown++) {
        size_t len = utf8_char(u + i, n - i);
        if (o + 4 + 5 > cap) break; // room for a character or an escape, "'..." and the NUL
        if (len == 1 && u[i] >= 0x20 && u[i] != 0x7f && u[i] != '\'' && u[i] != '\\') {
            buf[o++] = (char)u[i];
        } else if (len > 1) {
            memcpy(buf + o, p + i, len);
            o += len;
        } else {
            o += (size_t)snprintf(buf + o, cap - o, "\\x%02x", u[i]);
            len = 1;
        }
        i += len;
    }
    snprintf(buf + o, cap - o, "%s", i < n ? "'..." : "'");
    return buf;
}

int sp_obj_num(const msgpack_object *o, double *out) {
    switch (o->type) {
    case MSGPACK_OBJECT_POSITIVE_INTEGER:
        *out = (double)o->via.u64;
        return 0;
    case MSGPACK_OBJECT_NEGATIVE_INTEGER:
        *out = (double)o->via.i64;
        return 0;
    case MSGPACK_OBJECT_FLOAT32:
    case MSGPACK_OBJECT_FLOAT64:
        *out = o->via.f64;
        return 0;
    default:
        return SP_ETYPE;
    }
}

int sp_get_num(const msgpack_object *map, const char *key, int required, double *out,
               sp_diag *diag) {
    const msgpack_object *v = sp_map_get(map, key);
    if (!v || v->type == MSGPACK_OBJECT_NIL) {
        if (required) return sp_fail(diag, SP_EMISSING, "missing argument '%s' (a number)", key);
        return 1;
    }
    if (sp_obj_num(v, out) != 0)
        return sp_fail(diag, SP_ETYPE, "argument '%s' is %s, it must be a number", key,
                       type_name(v));
    if (!isfinite(*out))
        return sp_fail(diag, SP_ETYPE, "argument '%s' must be a finite number", key);
    return 0;
}
