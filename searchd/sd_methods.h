#pragma once
/* The methods of the protocol, in one table (sd_methods.c): adding a method is its handler and
 * its row there. */

#include "proto/sp_msg.h"
#include "searchd/sd_daemon.h"

/// Handles one request from connection `c`; the reply (or error) is appended to c's output,
/// which the caller flushes, unless the method replies later from the pool.
void sd_dispatch(sd_daemon *d, sd_conn *c, const sp_msg *m);
