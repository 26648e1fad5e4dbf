/* Reading a connection: reads go straight into its msgpack_unpacker, each complete message is
 * checked by sp_scan() before msgpack-c decodes it, and each request goes to sd_dispatch(). What
 * the handlers answer is gathered in c->out and flushed once per read. */
#include "sd_read.h"

#include <stdio.h>
#include <string.h>

#include "sd_jobs.h"
#include "sd_log.h"
#include "sd_methods.h"

/* The msgid of a request whose body could not be decoded, when its first bytes show it:
 * 0x94 (array of 4), 0x00 (request), then an unsigned integer. */
static uint32_t peek_msgid(const uint8_t *p, size_t n) {
    if (n < 3 || p[0] != 0x94 || p[1] != 0x00) return 0;
    if (p[2] <= 0x7f) return p[2];
    if (p[2] == 0xcc && n >= 4) return p[3];
    if (p[2] == 0xcd && n >= 5) return (uint32_t)p[3] << 8 | p[4];
    if (p[2] == 0xce && n >= 7)
        return (uint32_t)p[3] << 24 | (uint32_t)p[4] << 16 | (uint32_t)p[5] << 8 | p[6];
    return 0;
}

/* A stream error: the bytes cannot be resynchronised, so reply and close. */
static void fatal(sd_conn *c, uint32_t msgid, int code, const char *msg) {
    sd_conn_reply(c, msgid, code, msg, NULL);
    c->close_after_flush = 1;
    uv_read_stop(&c->h.stream);
    sd_log("connection %llu: %s; closing", (unsigned long long)c->id, msg);
}

static void handle(sd_conn *c, const msgpack_object *o) {
    sp_msg m;
    sp_diag dg;
    int has_id;
    int rc = sp_msg_decode(o, &m, &has_id, &dg);
    if (rc)
        sd_conn_reply(c, has_id ? m.msgid : 0, rc, dg.msg, NULL);
    else if (m.type == SP_REQUEST)
        sd_dispatch(c->d, c, &m);
    // Notifications and responses from a client need no answer.
}

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf) {
    (void)suggested;
    sd_conn *c = h->data;
    if (!msgpack_unpacker_reserve_buffer(&c->unp, SD_READ_CHUNK)) {
        *buf = uv_buf_init(NULL, 0); // read_cb gets UV_ENOBUFS
        return;
    }
    *buf = uv_buf_init(msgpack_unpacker_buffer(&c->unp),
                       (unsigned)msgpack_unpacker_buffer_capacity(&c->unp));
}

static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf) {
    (void)buf;
    sd_conn *c = s->data;
    if (nread < 0) {
        sd_conn_close(c);
        return;
    }
    if (nread == 0) return;
    msgpack_unpacker_buffer_consumed(&c->unp, (size_t)nread);
    while (!c->closing && !c->close_after_flush) {
        const char *p = c->unp.buffer + c->unp.off;
        size_t n = c->unp.used - c->unp.off, len;
        if (n == 0) break;
        sp_diag dg;
        int rc = sp_scan(p, n, &c->d->limits, &len, &dg);
        if (rc == 0) break;
        if (rc < 0) {
            fatal(c, peek_msgid((const uint8_t *)p, n), rc, dg.msg);
            break;
        }
        msgpack_unpacked u;
        msgpack_unpacked_init(&u);
        if (msgpack_unpacker_next(&c->unp, &u) != MSGPACK_UNPACK_SUCCESS) {
            msgpack_unpacked_destroy(&u);
            fatal(c, peek_msgid((const uint8_t *)p, n), SP_EMALFORMED,
                  "malformed msgpack: the decoder refused the message");
            break;
        }
        handle(c, &u.data);
        msgpack_unpacked_destroy(&u);
    }
    sd_daemon *d = c->d;
    c->active_ms = uv_now(d->loop);
    if (!c->closing && !c->close_after_flush) {
        // What is left is the beginning of a message: counted against the total cap.
        size_t partial = c->unp.used - c->unp.off;
        sd_conn_account_partial(c, partial);
        if (partial && d->buffered > (size_t)d->opt.max_buffered) {
            char msg[200];
            snprintf(msg, sizeof msg,
                     "searchd holds over %lld bytes of unfinished requests and unsent replies "
                     "(--max-buffered); this connection's %zu-byte beginning of a request is "
                     "dropped",
                     d->opt.max_buffered, partial);
            fatal(c, peek_msgid((const uint8_t *)c->unp.buffer + c->unp.off, partial), SP_ETOOBIG,
                  msg);
        }
    }
    sd_conn_flush(c);
}

static int owns_live_job(sd_daemon *d, uint64_t conn_id) {
    for (sd_job *j = d->jobs; j; j = j->next)
        if (j->conn_id == conn_id && sd_job_live(j)) return 1;
    return 0;
}

void sd_read_sweep(uv_timer_t *h) {
    sd_daemon *d = h->data;
    uint64_t now = uv_now(d->loop);
    double idle = d->opt.idle_timeout * 1000, slow = d->opt.message_timeout * 1000;
    for (sd_conn *c = d->conns, *next; c; c = next) {
        next = c->next;
        if (c->closing || c->close_after_flush) continue;
        if (c->partial_ms && slow > 0 && (double)(now - c->partial_ms) > slow) {
            char msg[160];
            snprintf(msg, sizeof msg,
                     "a request stayed incomplete for more than %g s (--message-timeout)",
                     d->opt.message_timeout);
            fatal(c, peek_msgid((const uint8_t *)c->unp.buffer + c->unp.off, c->partial),
                  SP_ETIMEOUT, msg);
            sd_conn_flush(c);
        } else if (idle > 0 && (double)(now - c->active_ms) > idle && !c->partial && !c->owed &&
                   !c->nsubs && !c->queued && !owns_live_job(d, c->id)) {
            // Nothing is owed to it, and it asks nothing: its slot goes to someone else.
            sd_log("connection %llu: idle for %g s (--idle-timeout), closing",
                   (unsigned long long)c->id, d->opt.idle_timeout);
            sd_conn_close(c);
        }
    }
}

int sd_read_start(sd_daemon *d, sd_conn *c) {
    int rc = sd_conn_open(d, c);
    return rc < 0 ? rc : uv_read_start(&c->h.stream, on_alloc, on_read);
}
