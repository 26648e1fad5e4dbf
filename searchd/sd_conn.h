#pragma once
/* A client connection and what goes out on it: replies, notifications, the write queue, and
 * closing. Reading and dispatching requests is sd_read.c's. Every part of the daemon that
 * answers or notifies a client does it through the functions here. */

#include <msgpack.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "searchd/sd_daemon.h"

#define SD_MAX_SUBS 32      // subscriptions per connection
#define SD_READ_CHUNK 16384 // bytes reserved in the unpacker for each read

/// A client connection. Allocated by the listener, freed in its close callback.
struct sd_conn {
    union {
        uv_pipe_t pipe;
        uv_tcp_t tcp;
        uv_stream_t stream;
        uv_handle_t handle;
    } h;
    sd_daemon *d;
    uint64_t id;
    msgpack_unpacker unp;
    msgpack_sbuffer out; // replies gathered while handling one read, written after it
    size_t queued;       // bytes given to uv_write and not yet written
    size_t partial;      // bytes of a message not complete yet
    uint64_t active_ms;  // uv_now() of the last byte read or reply sent
    uint64_t partial_ms; // uv_now() when the incomplete message began, 0 when none
    int owed;            // deferred replies (model.add, retune) still to come
    int closing;
    int close_after_flush;
    char subs[SD_MAX_SUBS][SD_ID_LEN];
    int nsubs;
    struct sd_conn *prev, *next;
};

/// A msgpack buffer with its packer, for building a result or a notification's params.
typedef struct sd_buf {
    msgpack_sbuffer sb;
    msgpack_packer pk;
} sd_buf;

void sd_buf_init(sd_buf *b);
void sd_buf_free(sd_buf *b);

/// Gives a freshly accepted connection its id and buffers and links it into d->conns: 0, or
/// UV_ENOMEM with c->d left NULL (not linked: the caller closes the bare handle and frees c).
int sd_conn_open(sd_daemon *d, sd_conn *c);
/// The connection with this id, or NULL when it has gone. d->conns keeps it: do not hold it
/// past the current callback (pool work keeps the id and looks it up again).
sd_conn *sd_conn_find(sd_daemon *d, uint64_t id);
/// Appends a reply to msgid to c's pending output: an error when code < 0 (`message` says
/// what), else `result` (NULL or empty: nil). sd_conn_flush() writes it.
void sd_conn_reply(sd_conn *c, uint32_t msgid, int code, const char *message,
                   const msgpack_sbuffer *result);
/// Sends `[2, method, [params]]` (params: one packed object) and flushes.
void sd_conn_notify(sd_conn *c, const char *method, const msgpack_sbuffer *params);
/// Writes the pending output (uv_try_write, the rest queued); closes a connection whose
/// queue passes --max-reply-queue or whose write fails.
void sd_conn_flush(sd_conn *c);
/// Unlinks the connection and closes its handle; it is freed in the close callback.
void sd_conn_close(sd_conn *c);
/// Sets the connection's count of bytes of an unfinished message, keeping the daemon's total
/// and the time the message began.
void sd_conn_account_partial(sd_conn *c, size_t partial);

/// A deferred reply (see sd_conn_reply) to connection `conn_id`, flushed, if it is still there;
/// it is no longer owed (the handler counted it in c->owed when it deferred).
void sd_reply_later(sd_daemon *d, uint64_t conn_id, uint32_t msgid, int code, const char *message,
                    const msgpack_sbuffer *result);
/// schedule.updated {model, reason} to every subscriber of `model_id`.
void sd_notify_updated(sd_daemon *d, const char *model_id, const char *reason);
