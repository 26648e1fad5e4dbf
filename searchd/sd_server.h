#pragma once
/* The listeners: a Unix socket (mode 0600) and, when asked, a loopback TCP port. */

#include "engine/en_error.h"
#include "searchd/sd_daemon.h"

/// Listens on --socket and, when given, --listen: 0, or an error with a message in `diag`.
int sd_server_listen(sd_daemon *d, en_diag *diag);
/// Closes the listeners (the socket file is removed); connections stay.
void sd_server_close(sd_daemon *d);
