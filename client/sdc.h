#pragma once
/* The searchd client library: connect over a Unix socket or TCP, call a method with named
 * arguments and a timeout, and receive notifications (job.progress, job.done,
 * schedule.updated). Blocking and single-threaded: one sdc_client per thread. Notifications
 * that arrive while a call waits for its reply are queued for sdc_next_notification(); an
 * inference program can poll() sdc_fd() alongside its own input.
 *
 * Errors are negative codes: the daemon's own codes (SD_E*, SC_E*, EN_E*, SP_E*) as it sent
 * them, SP_ETIMEOUT, SP_ECLOSED, or a negated errno; the message is in the sp_diag.
 *
 * Installed as libsdc with include/searchd/client/sdc.h: `pkg-config --cflags --libs sdc`, then
 * `#include "client/sdc.h"` (examples/installed/). */

#include <jansson.h>
#include <msgpack.h>
#include <stddef.h>
#include <stdint.h>

#include "proto/sp_msg.h"

typedef struct sdc_client sdc_client;

/// The socket searchd listens on by default: $XDG_RUNTIME_DIR/searchd.sock, else
/// /tmp/searchd-$UID.sock. Writes into `buf` (caller-owned) and returns it.
const char *sdc_default_socket(char *buf, size_t len);

/// Connects to searchd's Unix socket at `path`. `*out` is owned by the caller (sdc_close()).
int sdc_connect_unix(const char *path, sdc_client **out, sp_diag *diag);
/// Connects to `hostport` ("127.0.0.1:7070", "[::1]:7070", "localhost:7070").
int sdc_connect_tcp(const char *hostport, sdc_client **out, sp_diag *diag);
/// Closes the connection and frees everything, queued notifications included. NULL allowed.
void sdc_close(sdc_client *c);
/// The socket, to poll() for readability before calling sdc_next_notification().
int sdc_fd(const sdc_client *c);

typedef enum sdc_kind { SDC_STR, SDC_NUM, SDC_BOOL } sdc_kind;

/// One named argument; strings are borrowed for the duration of the call.
typedef struct sdc_arg {
    const char *key;
    sdc_kind kind;
    const char *s;
    double num;
} sdc_arg;

#define SDC_ARG_STR(k, v) ((sdc_arg){(k), SDC_STR, (v), 0})
#define SDC_ARG_NUM(k, v) ((sdc_arg){(k), SDC_NUM, NULL, (v)})
#define SDC_ARG_BOOL(k, v) ((sdc_arg){(k), SDC_BOOL, NULL, (v) ? 1 : 0})

/// A response. `result` borrows from `msg`, which owns the memory: free with sdc_reply_free().
typedef struct sdc_reply {
    msgpack_unpacked msg;
    const msgpack_object *result; // NULL when the call failed
    int code;                     // 0, or the error code the daemon sent
} sdc_reply;

void sdc_reply_free(sdc_reply *r);

/// Calls `method` with `nargs` named arguments (0: params `[]`) and waits up to `timeout_ms`
/// (< 0: forever) for its reply. Returns 0 with r->result set, the daemon's error code with
/// its message in `diag`, SP_ETIMEOUT, SP_ECLOSED or -errno. Always free `r` afterwards.
int sdc_call(sdc_client *c, const char *method, const sdc_arg *args, int nargs, int timeout_ms,
             sdc_reply *r, sp_diag *diag);

/// Sends bytes as they are (tests send malformed input this way).
int sdc_send_raw(sdc_client *c, const void *bytes, size_t len, sp_diag *diag);
/// Waits for the response with `msgid` (0 matches the reply to an undecodable message).
int sdc_wait_reply(sdc_client *c, uint32_t msgid, int timeout_ms, sdc_reply *r, sp_diag *diag);

/// A notification. `params` (the map of named values, or NULL) borrows from `msg`.
typedef struct sdc_note {
    msgpack_unpacked msg;
    char method[64];
    const msgpack_object *params;
} sdc_note;

void sdc_note_free(sdc_note *n);

/// The next notification, queued or read within `timeout_ms` (< 0: forever; 0: only what is
/// already there). 0, SP_ETIMEOUT or SP_ECLOSED. Free `n` with sdc_note_free().
int sdc_next_notification(sdc_client *c, int timeout_ms, sdc_note *n, sp_diag *diag);

/// Reads a share as people write it: "1%" (a percentage) or "0.01" (a fraction), into a
/// fraction in [0, 1]. For a drop (`drop` != 0) a bare number of 0.5 or more is refused: "1"
/// means 1% to a person and 100% to searchd, so it must be written "1%" or "0.01" (searchd's
/// max_drop check applies the same rule). Returns 0, or SP_EPARAMS with what to write in `diag`
/// (`name` is the option's name in the message, e.g. "--max-drop").
int sdc_parse_share(const char *text, const char *name, int drop, double *out, sp_diag *diag);

/// A JSON form of any msgpack object (new reference): maps with string keys become objects,
/// binary data becomes a base-16 string.
json_t *sdc_to_json(const msgpack_object *o);
