#pragma once
/* Applying a schedule fetched from searchd (schedule.get, schedule.frontier, job results) to a
 * model in this process: a record that narrows layers carries, under "width", the heads and
 * FFN neurons each layer keeps and their factors (shared/spec/width.md); this builds that exact
 * network. Links the engine, so it is installed in libsearchd-engine (`pkg-config --cflags --libs
 * searchd-engine`) beside it; the RPC library (sdc.h, libsdc) does not need it. */

#include <msgpack.h>
#include <stddef.h>

#include "engine/en_model.h"

/// The network `record` (a record map as searchd sends it; borrowed) runs for `m` (borrowed,
/// must outlive the result): `*out` is a narrowed model owned by the caller (en_model_free), or
/// NULL when the record narrows nothing (run `m` itself). Returns 0, or EN_ESCHEDULE with the
/// reason in `err` (`cap` bytes) when the width is malformed or does not fit `m`, EN_ENOMEM.
int sdc_apply_width(const msgpack_object *record, const en_model *m, en_model **out, char *err,
                    size_t cap);
