#pragma once
/* hiredis's async contexts on a libuv loop, with the connect errors hiredis 0.14's own adapter
 * drops (see sd_redis_uv.c). */

#include <hiredis/async.h>
#include <uv.h>

/// Attaches `ac` (borrowed; hiredis frees the glue through its cleanup hook when `ac` goes) to
/// `loop`. 0, or -1 when out of memory or the socket cannot be polled.
int sd_redis_attach(redisAsyncContext *ac, uv_loop_t *loop);
