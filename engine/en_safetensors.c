#include "en_safetensors.h"

#include <errno.h>
#include <jansson.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "en_file.h"

static const struct {
    const char *name;
    size_t size;
} dtypes[] = {
    [EN_ST_F32] = {"F32", 4},   [EN_ST_F16] = {"F16", 2},         [EN_ST_BF16] = {"BF16", 2},
    [EN_ST_F64] = {"F64", 8},   [EN_ST_I64] = {"I64", 8},         [EN_ST_I32] = {"I32", 4},
    [EN_ST_I16] = {"I16", 2},   [EN_ST_I8] = {"I8", 1},           [EN_ST_U64] = {"U64", 8},
    [EN_ST_U32] = {"U32", 4},   [EN_ST_U16] = {"U16", 2},         [EN_ST_U8] = {"U8", 1},
    [EN_ST_BOOL] = {"BOOL", 1}, [EN_ST_F8_E4M3] = {"F8_E4M3", 1}, [EN_ST_F8_E5M2] = {"F8_E5M2", 1},
};
#define N_DTYPES (sizeof dtypes / sizeof dtypes[0])

static uint64_t read_le64(const uint8_t *p);
static int check_length(uint64_t header_len, uint64_t file_size, const char *what, en_diag *diag);
static int parse_json(const char *json, size_t len, uint64_t file_size, const char *what,
                      en_st_header *out, en_diag *diag);
static int parse_tensor(const char *name, json_t *v, uint64_t data_size, const char *what,
                        en_st_tensor *t, en_diag *diag);
static int check_metadata(json_t *v, const char *what, en_diag *diag);
static int check_overlap(const en_st_header *h, const char *what, en_diag *diag);
static int cmp_name(const void *a, const void *b);
static int cmp_offset(const void *a, const void *b);
static int read_fail(int rc, const char *what, en_diag *diag);

const char *en_st_dtype_name(en_st_dtype d) {
    return (size_t)d < N_DTYPES ? dtypes[d].name : "?";
}

int en_st_parse_mem(const void *buf, size_t len, const char *what, en_st_header *out,
                    en_diag *diag) {
    memset(out, 0, sizeof *out);
    if (len < 8)
        return en_fail(diag, EN_EFORMAT,
                       "%s: file is %zu bytes, too short for the 8-byte header length", what, len);
    uint64_t header_len = read_le64(buf);
    int rc = check_length(header_len, len, what, diag);
    if (rc < 0) return rc;
    return parse_json((const char *)buf + 8, (size_t)header_len, len, what, out, diag);
}

int en_st_parse_fd(int fd, const char *what, en_st_header *out, en_diag *diag) {
    memset(out, 0, sizeof *out);
    struct stat st;
    if (fstat(fd, &st) != 0) return en_fail(diag, -errno, "%s: %s", what, strerror(errno));
    if (!S_ISREG(st.st_mode)) return en_fail(diag, EN_EFORMAT, "%s: not a regular file", what);
    uint64_t file_size = (uint64_t)st.st_size;
    if (file_size < 8)
        return en_fail(diag, EN_EFORMAT,
                       "%s: file is %llu bytes, too short for the 8-byte header length", what,
                       (unsigned long long)file_size);
    uint8_t len_bytes[8];
    int rc = en_st_pread_full(fd, len_bytes, 8, 0);
    if (rc != 0) return read_fail(rc, what, diag);
    uint64_t header_len = read_le64(len_bytes);
    rc = check_length(header_len, file_size, what, diag);
    if (rc < 0) return rc;
    char *json = malloc(header_len ? (size_t)header_len : 1);
    if (!json)
        return en_fail(diag, EN_ENOMEM, "%s: no memory for a %llu-byte header", what,
                       (unsigned long long)header_len);
    rc = en_st_pread_full(fd, json, (size_t)header_len, 8);
    if (rc == 0)
        rc = parse_json(json, (size_t)header_len, file_size, what, out, diag);
    else
        rc = read_fail(rc, what, diag);
    free(json);
    return rc;
}

const en_st_tensor *en_st_find(const en_st_header *h, const char *name) {
    en_st_tensor key = {.name = (char *)name};
    if (h->n == 0) return NULL;
    return bsearch(&key, h->t, h->n, sizeof *h->t, cmp_name);
}

int en_st_pread_full(int fd, void *buf, size_t len, uint64_t off) {
    uint8_t *p = buf;
    while (len > 0) {
        ssize_t got = pread(fd, p, len, (off_t)off);
        if (got < 0 && errno == EINTR) continue;
        if (got < 0) return -errno;
        if (got == 0) return 1;
        p += got;
        len -= (size_t)got;
        off += (uint64_t)got;
    }
    return 0;
}

void en_st_header_free(en_st_header *h) {
    if (!h) return;
    for (size_t i = 0; i < h->n; i++)
        free(h->t[i].name);
    free(h->t);
    memset(h, 0, sizeof *h);
}

// --- helpers ---

static uint64_t read_le64(const uint8_t *p) {
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--)
        v = v << 8 | p[i];
    return v;
}

static int check_length(uint64_t header_len, uint64_t file_size, const char *what, en_diag *diag) {
    // The length is the file's first 8 bytes: never quoted, they may be anything.
    if (header_len > EN_ST_MAX_HEADER)
        return en_fail(diag, EN_EFORMAT,
                       "%s: not a safetensors file: its header length field is over the %u-byte "
                       "limit",
                       what, EN_ST_MAX_HEADER);
    if (header_len > file_size - 8)
        return en_fail(diag, EN_EFORMAT,
                       "%s: its header length field is larger than the file (%llu "
                       "bytes): truncated, or not a safetensors file",
                       what, (unsigned long long)file_size);
    return 0;
}

static int parse_json(const char *json, size_t len, uint64_t file_size, const char *what,
                      en_st_header *out, en_diag *diag) {
    json_error_t err;
    // Duplicate names would let two entries claim one tensor: refuse them.
    json_t *root = json_loadb(json, len, JSON_REJECT_DUPLICATES, &err);
    char why[JSON_ERROR_TEXT_LENGTH];
    if (!root)
        return en_fail(diag, EN_EFORMAT, "%s: header is not valid JSON (offset %d: %s)", what,
                       err.position, en_json_reason(err.text, why, sizeof why));
    int rc = 0;
    if (!json_is_object(root)) {
        rc = en_fail(diag, EN_EFORMAT, "%s: header is not a JSON object", what);
        goto done;
    }
    out->file_size = file_size;
    out->data_start = 8 + len;
    uint64_t data_size = file_size - out->data_start;
    size_t cap = json_object_size(root);
    out->t = calloc(cap ? cap : 1, sizeof *out->t);
    if (!out->t) {
        rc = en_fail(diag, EN_ENOMEM, "%s: no memory for %zu tensor entries", what, cap);
        goto done;
    }
    const char *key;
    json_t *v;
    json_object_foreach(root, key, v) {
        if (strcmp(key, "__metadata__") == 0) {
            rc = check_metadata(v, what, diag);
        } else {
            rc = parse_tensor(key, v, data_size, what, &out->t[out->n], diag);
            if (rc == 0) out->n++;
        }
        if (rc < 0) goto done;
    }
    rc = check_overlap(out, what, diag);
    if (rc == 0 && out->n > 1) qsort(out->t, out->n, sizeof *out->t, cmp_name);
done:
    json_decref(root);
    if (rc < 0) en_st_header_free(out);
    return rc;
}

static int parse_tensor(const char *name, json_t *v, uint64_t data_size, const char *what,
                        en_st_tensor *t, en_diag *diag) {
    if (!json_is_object(v))
        return en_fail(diag, EN_EFORMAT, "%s: entry '%.200s' is not an object", what, name);
    json_t *dt = json_object_get(v, "dtype");
    json_t *shape = json_object_get(v, "shape");
    json_t *offs = json_object_get(v, "data_offsets");
    if (!json_is_string(dt))
        return en_fail(diag, EN_EFORMAT, "%s: tensor '%.200s' has no string 'dtype'", what, name);
    const char *dts = json_string_value(dt);
    size_t d = 0;
    while (d < N_DTYPES && strcmp(dtypes[d].name, dts) != 0)
        d++;
    if (d == N_DTYPES)
        return en_fail(diag, EN_EDTYPE, "%s: tensor '%.200s' has unknown dtype '%.32s'", what, name,
                       dts);
    t->dtype = (en_st_dtype)d;
    if (!json_is_array(shape) || json_array_size(shape) > EN_ST_MAX_DIMS)
        return en_fail(diag, EN_EFORMAT,
                       "%s: tensor '%.200s': 'shape' must be an array of at most %d integers", what,
                       name, EN_ST_MAX_DIMS);
    t->ndim = (int)json_array_size(shape);
    uint64_t count = 1;
    bool overflow = false;
    for (int i = 0; i < t->ndim; i++) {
        json_t *e = json_array_get(shape, (size_t)i);
        if (!json_is_integer(e) || json_integer_value(e) < 0)
            return en_fail(diag, EN_EFORMAT,
                           "%s: tensor '%.200s': shape[%d] is not a non-negative integer", what,
                           name, i);
        t->shape[i] = (uint64_t)json_integer_value(e);
        overflow |= __builtin_mul_overflow(count, t->shape[i], &count);
    }
    uint64_t bytes;
    overflow |= __builtin_mul_overflow(count, (uint64_t)dtypes[d].size, &bytes);
    if (!json_is_array(offs) || json_array_size(offs) != 2 ||
        !json_is_integer(json_array_get(offs, 0)) || !json_is_integer(json_array_get(offs, 1)))
        return en_fail(diag, EN_EFORMAT,
                       "%s: tensor '%.200s': 'data_offsets' must be an array of 2 integers", what,
                       name);
    json_int_t b = json_integer_value(json_array_get(offs, 0));
    json_int_t e = json_integer_value(json_array_get(offs, 1));
    if (b < 0 || e < b || (uint64_t)e > data_size)
        return en_fail(diag, EN_EFORMAT,
                       "%s: tensor '%.200s': data_offsets [%lld, %lld] are not inside the "
                       "%llu-byte data area (file truncated?)",
                       what, name, (long long)b, (long long)e, (unsigned long long)data_size);
    t->begin = (uint64_t)b;
    t->end = (uint64_t)e;
    if (overflow || bytes != t->end - t->begin)
        return en_fail(
            diag, EN_EFORMAT,
            "%s: tensor '%.200s' spans %llu bytes but its shape and dtype %s need %s%llu", what,
            name, (unsigned long long)(t->end - t->begin), dtypes[d].name,
            overflow ? "more than " : "",
            overflow ? (unsigned long long)UINT64_MAX : (unsigned long long)bytes);
    t->name = strdup(name);
    if (!t->name) return en_fail(diag, EN_ENOMEM, "%s: no memory for tensor names", what);
    return 0;
}

static int check_metadata(json_t *v, const char *what, en_diag *diag) {
    if (!json_is_object(v))
        return en_fail(diag, EN_EFORMAT, "%s: '__metadata__' is not an object", what);
    const char *key;
    json_t *e;
    json_object_foreach(v, key, e) {
        if (!json_is_string(e))
            return en_fail(diag, EN_EFORMAT, "%s: '__metadata__' value '%.200s' is not a string",
                           what, key);
    }
    return 0;
}

static int check_overlap(const en_st_header *h, const char *what, en_diag *diag) {
    if (h->n < 2) return 0;
    const en_st_tensor **by_off = malloc(h->n * sizeof *by_off);
    if (!by_off) return en_fail(diag, EN_ENOMEM, "%s: no memory to check tensor overlap", what);
    for (size_t i = 0; i < h->n; i++)
        by_off[i] = &h->t[i];
    qsort(by_off, h->n, sizeof *by_off, cmp_offset);
    int rc = 0;
    const en_st_tensor *last = NULL; // the non-empty tensor that ends furthest so far
    for (size_t i = 0; i < h->n && rc == 0; i++) {
        const en_st_tensor *t = by_off[i];
        if (t->begin == t->end) continue; // an empty tensor holds no byte, so it can share none
        if (last && t->begin < last->end)
            rc =
                en_fail(diag, EN_EFORMAT,
                        "%s: tensors '%.150s' [%llu, %llu) and '%.150s' [%llu, %llu) overlap", what,
                        last->name, (unsigned long long)last->begin, (unsigned long long)last->end,
                        t->name, (unsigned long long)t->begin, (unsigned long long)t->end);
        if (!last || t->end > last->end) last = t;
    }
    free(by_off);
    return rc;
}

static int cmp_name(const void *a, const void *b) {
    return strcmp(((const en_st_tensor *)a)->name, ((const en_st_tensor *)b)->name);
}

static int cmp_offset(const void *a, const void *b) {
    const en_st_tensor *x = *(const en_st_tensor *const *)a, *y = *(const en_st_tensor *const *)b;
    if (x->begin != y->begin) return x->begin < y->begin ? -1 : 1;
    return (x->end > y->end) - (x->end < y->end);
}

static int read_fail(int rc, const char *what, en_diag *diag);

static int read_fail(int rc, const char *what, en_diag *diag) {
    if (rc == 1) // end of file before the size fstat gave: the file shrank under us
        return en_fail(diag, EN_EFORMAT, "%s: file shrank while it was read", what);
    return en_fail(diag, rc, "%s: read failed: %s", what, strerror(-rc));
}
