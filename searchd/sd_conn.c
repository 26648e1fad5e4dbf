/* One client connection: reads go straight into its msgpack_unpacker, each complete message is
 * checked by sp_scan() before msgpack-c decodes it, replies gathered during one read are written
 * with one uv_try_write (queued with uv_write only when the socket is full). */
#include <stdlib.h>
#include <string.h>

#include "sd_daemon.h"
#include "sd_error.h"

#define SD_READ_CHUNK 16384

typedef struct sd_write {
    uv_write_t req;
    uv_buf_t buf;
    sd_conn *c;
} sd_write;

static void account_partial(sd_conn *c, size_t partial);

static void on_close(uv_handle_t *h) {
    sd_conn *c = h->data;
    sd_daemon *d = c->d;
    msgpack_unpacker_destroy(&c->unp);
    msgpack_sbuffer_destroy(&c->out);
    free(c);
    sd_daemon_maybe_finish(d);
}

void sd_conn_close(sd_conn *c) {
    if (c->closing) return;
    c->closing = 1;
    sd_daemon *d = c->d;
    if (c->prev)
        c->prev->next = c->next;
    else
        d->conns = c->next;
    if (c->next) c->next->prev = c->prev;
    d->nconns--;
    account_partial(c, 0); // queued reply bytes come off in on_write, cancelled or not
    uv_close(&c->h.handle, on_close);
}

sd_conn *sd_conn_find(sd_daemon *d, uint64_t id) {
    for (sd_conn *c = d->conns; c; c = c->next)
        if (c->id == id) return c;
    return NULL;
}

void sd_conn_send(sd_conn *c, const void *bytes, size_t len) {
    if (!c->closing) msgpack_sbuffer_write(&c->out, bytes, len);
}

static void on_write(uv_write_t *req, int status) {
    sd_write *w = (sd_write *)req;
    sd_conn *c = w->c;
    c->queued -= w->buf.len;
    c->d->buffered -= w->buf.len;
    c->active_ms = uv_now(c->d->loop);
    free(w);
    if (status < 0)
        sd_conn_close(c);
    else if (c->close_after_flush && c->queued == 0)
        sd_conn_close(c);
}

void sd_conn_flush(sd_conn *c) {
    size_t len = c->out.size, off = 0;
    if (c->closing || len == 0) {
        c->out.size = 0;
        if (!c->closing && c->close_after_flush && c->queued == 0) sd_conn_close(c);
        return;
    }
    if (c->queued == 0) {
        uv_buf_t b = uv_buf_init(c->out.data, (unsigned)len);
        int n = uv_try_write(&c->h.stream, &b, 1);
        if (n > 0)
            off = (size_t)n;
        else if (n < 0 && n != UV_EAGAIN) {
            c->out.size = 0;
            sd_conn_close(c);
            return;
        }
    }
    if (off < len) {
        size_t rest = len - off;
        if (c->queued + rest > (size_t)c->d->opt.max_reply_queue) {
            // The client does not read its replies: drop it rather than grow without bound.
            sd_log(c->d, "connection %llu: over %d reply bytes queued, closing",
                   (unsigned long long)c->id, c->d->opt.max_reply_queue);
            c->out.size = 0;
            sd_conn_close(c);
            return;
        }
        sd_write *w = malloc(sizeof *w + rest);
        if (!w) {
            c->out.size = 0;
            sd_conn_close(c);
            return;
        }
        memcpy(w + 1, c->out.data + off, rest);
        w->buf = uv_buf_init((char *)(w + 1), (unsigned)rest);
        w->c = c;
        c->queued += rest;
        c->d->buffered += rest;
        int rc = uv_write(&w->req, &c->h.stream, &w->buf, 1, on_write);
        if (rc < 0) {
            c->queued -= rest;
            c->d->buffered -= rest;
            free(w);
            c->out.size = 0;
            sd_conn_close(c);
            return;
        }
    }
    c->out.size = 0;
    if (c->out.alloc > (1u << 20)) { // give back the memory of one big reply
        msgpack_sbuffer_destroy(&c->out);
        msgpack_sbuffer_init(&c->out);
    }
    if (c->close_after_flush && c->queued == 0) sd_conn_close(c);
}

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
    msgpack_packer pk;
    msgpack_packer_init(&pk, &c->out, msgpack_sbuffer_write);
    sp_pack_error(&pk, msgid, code, msg);
    c->close_after_flush = 1;
    uv_read_stop(&c->h.stream);
    sd_log(c->d, "connection %llu: %s; closing", (unsigned long long)c->id, msg);
}

static void handle(sd_conn *c, const msgpack_object *o) {
    sp_msg m;
    sp_diag dg;
    int has_id;
    int rc = sp_msg_decode(o, &m, &has_id, &dg);
    if (rc) {
        msgpack_packer pk;
        msgpack_packer_init(&pk, &c->out, msgpack_sbuffer_write);
        sp_pack_error(&pk, has_id ? m.msgid : 0, rc, dg.msg);
        return;
    }
    if (m.type == SP_REQUEST) sd_dispatch(c->d, c, &m);
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
        c->d->requests++;
        handle(c, &u.data);
        msgpack_unpacked_destroy(&u);
    }
    sd_daemon *d = c->d;
    c->active_ms = uv_now(d->loop);
    if (!c->closing && !c->close_after_flush) {
        // What is left is the beginning of a message: counted against the total cap.
        size_t partial = c->unp.used - c->unp.off;
        account_partial(c, partial);
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

/* Sets the connection's count of bytes of an unfinished message, keeping the daemon's total
 * and the time the message began. */
static void account_partial(sd_conn *c, size_t partial) {
    sd_daemon *d = c->d;
    d->buffered = d->buffered - c->partial + partial;
    if (partial && !c->partial) c->partial_ms = uv_now(d->loop);
    if (!partial) c->partial_ms = 0;
    c->partial = partial;
}

static int owns_live_job(sd_daemon *d, uint64_t conn_id) {
    for (sd_job *j = d->jobs; j; j = j->next)
        if (j->conn_id == conn_id && (j->state == SD_JOB_QUEUED || j->state == SD_JOB_RUNNING))
            return 1;
    return 0;
}

void sd_conn_sweep(uv_timer_t *h) {
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
            sd_log(d, "connection %llu: idle for %g s (--idle-timeout), closing",
                   (unsigned long long)c->id, d->opt.idle_timeout);
            sd_conn_close(c);
        }
    }
}

int sd_conn_start(sd_daemon *d, sd_conn *c) {
    c->d = d;
    c->id = ++d->next_conn_id;
    c->h.handle.data = c;
    c->active_ms = uv_now(d->loop);
    msgpack_sbuffer_init(&c->out);
    if (!msgpack_unpacker_init(&c->unp, SD_READ_CHUNK)) return UV_ENOMEM;
    c->next = d->conns;
    if (d->conns) d->conns->prev = c;
    d->conns = c;
    d->nconns++;
    return uv_read_start(&c->h.stream, on_alloc, on_read);
}

void sd_conn_notify(sd_conn *c, const char *method, const msgpack_sbuffer *params) {
    msgpack_packer pk;
    msgpack_packer_init(&pk, &c->out, msgpack_sbuffer_write);
    sp_pack_notify_head(&pk, method);
    msgpack_pack_array(&pk, 1);
    sd_conn_send(c, params->data, params->size);
    sd_conn_flush(c);
}

void sd_reply_later(sd_daemon *d, uint64_t conn_id, uint32_t msgid, int code, const char *message,
                    const msgpack_sbuffer *result) {
    sd_conn *c = sd_conn_find(d, conn_id);
    if (!c) return;
    msgpack_packer pk;
    msgpack_packer_init(&pk, &c->out, msgpack_sbuffer_write);
    if (code < 0) {
        sp_pack_error(&pk, msgid, code, message);
    } else {
        sp_pack_result_head(&pk, msgid);
        if (result && result->size)
            sd_conn_send(c, result->data, result->size);
        else
            msgpack_pack_nil(&pk);
    }
    sd_conn_flush(c);
}

void sd_notify_updated(sd_daemon *d, const char *model_id, const char *reason) {
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    msgpack_pack_map(&pk, 2);
    sp_pack_kstr(&pk, "model", model_id);
    sp_pack_kstr(&pk, "reason", reason);
    for (sd_conn *c = d->conns, *next; c; c = next) {
        next = c->next; // a failed write may close c
        for (int i = 0; i < c->nsubs; i++)
            if (strcmp(c->subs[i], model_id) == 0) {
                sd_conn_notify(c, "schedule.updated", &sb);
                break;
            }
    }
    msgpack_sbuffer_destroy(&sb);
}
