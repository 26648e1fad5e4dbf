#pragma once
/* Durable files for searchd's state: written atomically (temp file, fsync, rename, fsync the
 * directory) with a magic, a version and a checksum, so a crash at any instant leaves the old
 * or the new file, never half of one, and a damaged file is detected, never silently used.
 * Also the JSON form of frontiers and latency models kept in those files. */

#include <jansson.h>
#include <stddef.h>

#include "engine/en_error.h"
#include "sc_frontier.h"
#include "sc_latency.h"

/// Writes `len` bytes of `data` to `path` atomically, framed by magic, version and checksum.
/// Errors are negated errno (-ENOSPC on a full disk, the old file left intact).
int sc_store_write(const char *path, const void *data, size_t len, en_diag *diag);

/// Reads a file written by sc_store_write(). On success `*data` (malloc'ed, owned by the
/// caller, NUL-terminated for convenience) and `*len` hold the payload. SC_EMAGIC,
/// SC_EVERSION, SC_ECHECKSUM or -errno otherwise, with a message naming the file.
int sc_store_read(const char *path, void **data, size_t *len, en_diag *diag);

/// sc_store_read() on a whole file already in memory: `buf` (borrowed, `size` bytes); `name`
/// names it in messages. Same results and ownership as sc_store_read().
int sc_store_decode(const void *buf, size_t size, const char *name, void **data, size_t *len,
                    en_diag *diag);

/// Moves a damaged file aside to `<path>.damaged-<unix time>` so it is kept for inspection.
int sc_store_set_aside(const char *path, en_diag *diag);

/// JSON forms (new references owned by the caller) and their inverses (which validate every
/// field: SC_ECORRUPT with a message naming the field). A frontier is an array of records, or,
/// when it has a width profile, {"records": [...], "width": {...}} (read also without "width"
/// when no record narrows layers; other keys are the caller's).
json_t *sc_frontier_to_json(const sc_frontier *f);
int sc_frontier_from_json(const json_t *j, sc_frontier *out, en_diag *diag);
json_t *sc_latency_to_json(const sc_latency_model *lm);
struct sc_width_profile;
json_t *sc_width_to_json(const struct sc_width_profile *p);
int sc_width_from_json(const json_t *j, struct sc_width_profile *out, en_diag *diag);
int sc_latency_from_json(const json_t *j, sc_latency_model *out, en_diag *diag);
