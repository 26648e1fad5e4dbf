#pragma once
/* Opening the files a caller names (config, weights, vocabulary, data, state, options) without
 * trusting them: a FIFO, a device or a directory is refused before a single byte is read (so a
 * reader never blocks forever), and a size cap is checked first (so /dev/zero or a 2 GB
 * "vocab.txt" fails at once). Also the short, escaped excerpt an error message may quote of
 * data the caller supplied, never more. */

#include <stddef.h>
#include <stdint.h>

#include "en_error.h"

#define EN_EXCERPT_MAX 32 // characters of caller-supplied text an error message may quote

/* Size caps of what the engine reads (config.json has its own, 16 MiB, in en_config.c). */
#define EN_MAX_WEIGHTS_BYTES (1ull << 40)    // model.safetensors: 1 TiB, beyond any checkpoint
#define EN_MAX_VOCAB_BYTES (64ull << 20)     // vocab.txt: bert-base's is 226 kB
#define EN_MAX_TOKCONFIG_BYTES (16ull << 20) // tokenizer_config.json, tokenizer.json
#define EN_MAX_DATA_BYTES (1ull << 30)       // a TSV data set

/// Opens `path` read-only with O_NONBLOCK (opening a FIFO does not wait for a writer), then
/// fstat()s it: anything but a regular file is EN_EFORMAT, a file over `max_bytes` EN_ERANGE,
/// an open failure -errno; each message names `path`. On success `*fd` is owned by the caller
/// (close() it), in blocking mode, and `*size` is the size fstat() gave. `size` may be NULL.
int en_file_open(const char *path, uint64_t max_bytes, int *fd, uint64_t *size, en_diag *diag);

/// en_file_open() and a read of the whole file: `*data` (malloc'ed, owned by the caller,
/// NUL-terminated) holds `*len` bytes. A file that grows past `max_bytes` while read is
/// EN_ERANGE too.
int en_file_read(const char *path, uint64_t max_bytes, char **data, size_t *len, en_diag *diag);

/// FNV-1a 64 of the whole of regular file `path` (at most `max_bytes`), read 1 MiB at a time:
/// for model.safetensors, the same value as en_model_load()'s weights_hash.
int en_file_hash(const char *path, uint64_t max_bytes, uint64_t *hash, en_diag *diag);

/// Writes into `buf` at most EN_EXCERPT_MAX characters of `s` (`len` bytes), quoted, with
/// control characters, quotes, backslashes and bytes >= 0x80 as \xNN escapes and "..." when cut;
/// returns `buf`. For messages that quote what a caller sent (a label, a name).
const char *en_excerpt(const char *s, size_t len, char *buf, size_t cap);

/// Copies jansson's error text without the "near '<token>'" part that quotes the file: `buf`.
const char *en_json_reason(const char *text, char *buf, size_t cap);
