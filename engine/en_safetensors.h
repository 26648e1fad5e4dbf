#pragma once
/* Parses and validates the header of a safetensors file, trusting nothing: an 8-byte
 * little-endian header length (bounded by EN_ST_MAX_HEADER and by the file size), then a JSON
 * object mapping each tensor name to {dtype, shape, data_offsets}, with an optional
 * `__metadata__` object of strings. Every tensor must lie inside the data area
 * (begin <= end <= data size), hold exactly product(shape) * sizeof(dtype) bytes (computed with
 * overflow checks), and no two tensors may share a byte. Duplicate keys are refused.
 *
 * Internal to the engine: en_model.c reads the tensors it needs; the fuzzer drives
 * en_st_parse_mem(). Only the header is parsed here; the tensor bytes are not read. */

#include <stddef.h>
#include <stdint.h>

#include "en_error.h"

#define EN_ST_MAX_HEADER 100000000u // bytes, as the reference safetensors implementation
#define EN_ST_MAX_DIMS 8

/// Element types. The engine computes in F32 and converts F16/BF16 exactly; the other types
/// are accepted in the header only so that files carrying e.g. an I64 `position_ids` buffer
/// (saved by older transformers) can be loaded: en_model.c refuses them for any weight it uses.
typedef enum en_st_dtype {
    EN_ST_F32,
    EN_ST_F16,
    EN_ST_BF16,
    EN_ST_F64,
    EN_ST_I64,
    EN_ST_I32,
    EN_ST_I16,
    EN_ST_I8,
    EN_ST_U64,
    EN_ST_U32,
    EN_ST_U16,
    EN_ST_U8,
    EN_ST_BOOL,
    EN_ST_F8_E4M3,
    EN_ST_F8_E5M2,
} en_st_dtype;

typedef struct en_st_tensor {
    char *name; // owned by the header
    en_st_dtype dtype;
    int ndim; // 0 (a scalar) .. EN_ST_MAX_DIMS
    uint64_t shape[EN_ST_MAX_DIMS];
    uint64_t begin, end; // byte offsets relative to the start of the data area
} en_st_tensor;

typedef struct en_st_header {
    uint64_t file_size;
    uint64_t data_start; // 8 + header length: where the data area begins in the file
    size_t n;
    en_st_tensor *t; // owned: n tensors, sorted by name (see en_st_find)
} en_st_header;

/// The safetensors name of a dtype ("F32", "BF16", ...). Static storage.
const char *en_st_dtype_name(en_st_dtype d);

/// Parses a whole safetensors file held in memory (`buf`, `len` bytes; the data area is what
/// follows the header). `what` names the file in messages. On success `*out` owns its tensor
/// array: free it with en_st_header_free(). Errors: EN_EFORMAT (length, JSON, offsets, sizes,
/// overlap), EN_EDTYPE (unknown dtype, naming tensor and dtype), EN_ENOMEM. On error `*out` is
/// left empty (safe to free).
int en_st_parse_mem(const void *buf, size_t len, const char *what, en_st_header *out,
                    en_diag *diag);

/// Reads and parses the header of the open file `fd` (the file offset is not used: pread).
/// `what` names the file in messages. Same results as en_st_parse_mem(), plus negated errno
/// for read errors.
int en_st_parse_fd(int fd, const char *what, en_st_header *out, en_diag *diag);

/// The tensor called `name`, or NULL. Borrowed from `h`.
const en_st_tensor *en_st_find(const en_st_header *h, const char *name);

/// Reads exactly `len` bytes at offset `off` of `fd` into `buf`, retrying short reads and
/// EINTR. Returns 0, 1 when the file ends first, or a negated errno.
int en_st_pread_full(int fd, void *buf, size_t len, uint64_t off);

/// Frees what a header owns and empties it; an empty or zeroed header is allowed.
void en_st_header_free(en_st_header *h);
