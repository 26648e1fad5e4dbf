#pragma once
/* Reading requests from a connection and handing each to the method table. */

#include <uv.h>

#include "searchd/sd_conn.h"
#include "searchd/sd_daemon.h"

/// Opens a freshly accepted connection (c zeroed, its handle initialised, h.handle.data = c)
/// and starts reading it: 0, or a libuv error. On error the caller closes it with
/// sd_conn_close() when c->d is set (it was opened), else closes the bare handle and frees c.
int sd_read_start(sd_daemon *d, sd_conn *c);

/// The timer's callback: closes connections idle beyond --idle-timeout (those owed nothing: no
/// deferred reply, live job or subscription) and those whose request stayed incomplete beyond
/// --message-timeout (with an SP_ETIMEOUT error).
void sd_read_sweep(uv_timer_t *h);
