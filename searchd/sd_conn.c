/* A connection's output and lifetime: replies gathered during one read are written with one
 * uv_try_write (queued with uv_write only when the socket is full); a client that does not read
 * its replies is dropped rather than buffered without bound. */
#include "sd_conn.h"

#include <stdlib.h>
#include <string.h>

#include "sd_log.h"

typedef struct sd_write {
    uv_write_t req;
    uv_buf_t buf;
    sd_conn *c;
} sd_write;

void sd_buf_init(sd_buf *b) {
    msgpack_sbuffer_init(&b->sb);
    msgpack_packer_init(&b->pk, &b->sb, msgpack_sbuffer_write);
}

void sd_buf_free(sd_buf *b) {
    msgpack_sbuffer_destroy(&b->sb);
}

static void on_close(uv_handle_t *h) {
    sd_conn *c = h->data;
    sd_daemon *d = c->d;
    msgpack_unpacker_destroy(&c->unp);
    msgpack_sbuffer_destroy(&c->out);
    free(c);
    sd_daemon_maybe_finish(d);
}

int sd_conn_open(sd_daemon *d, sd_conn *c) {
    if (!msgpack_unpacker_init(&c->unp, SD_READ_CHUNK)) return UV_ENOMEM; // c->d stays NULL
    c->d = d;
    c->id = ++d->next_conn_id;
    c->h.handle.data = c;
    c->active_ms = uv_now(d->loop);
    msgpack_sbuffer_init(&c->out);
    c->next = d->conns;
    if (d->conns) d->conns->prev = c;
    d->conns = c;
    d->nconns++;
    return 0;
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
    sd_conn_account_partial(c, 0); // queued reply bytes come off in on_write, cancelled or not
    uv_close(&c->h.handle, on_close);
}

sd_conn *sd_conn_find(sd_daemon *d, uint64_t id) {
    for (sd_conn *c = d->conns; c; c = c->next)
        if (c->id == id) return c;
    return NULL;
}

void sd_conn_account_partial(sd_conn *c, size_t partial) {
    sd_daemon *d = c->d;
    d->buffered = d->buffered - c->partial + partial;
    if (partial && !c->partial) c->partial_ms = uv_now(d->loop);
    if (!partial) c->partial_ms = 0;
    c->partial = partial;
}

static void append(sd_conn *c, const void *bytes, size_t len) {
    if (!c->closing) msgpack_sbuffer_write(&c->out, bytes, len);
}

void sd_conn_reply(sd_conn *c, uint32_t msgid, int code, const char *message,
                   const msgpack_sbuffer *result) {
    msgpack_packer pk;
    msgpack_packer_init(&pk, &c->out, msgpack_sbuffer_write);
    if (code < 0) {
        sp_pack_error(&pk, msgid, code, message);
        return;
    }
    sp_pack_result_head(&pk, msgid);
    if (result && result->size)
        append(c, result->data, result->size);
    else
        msgpack_pack_nil(&pk);
}

void sd_conn_notify(sd_conn *c, const char *method, const msgpack_sbuffer *params) {
    msgpack_packer pk;
    msgpack_packer_init(&pk, &c->out, msgpack_sbuffer_write);
    sp_pack_notify_head(&pk, method);
    msgpack_pack_array(&pk, 1);
    append(c, params->data, params->size);
    sd_conn_flush(c);
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
            sd_log("connection %llu: over %d reply bytes queued, closing",
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

void sd_reply_later(sd_daemon *d, uint64_t conn_id, uint32_t msgid, int code, const char *message,
                    const msgpack_sbuffer *result) {
    sd_conn *c = sd_conn_find(d, conn_id);
    if (!c) return;
    if (c->owed > 0) c->owed--;
    sd_conn_reply(c, msgid, code, message, result);
    sd_conn_flush(c);
}

void sd_notify_updated(sd_daemon *d, const char *model_id, const char *reason) {
    sd_buf b;
    sd_buf_init(&b);
    msgpack_pack_map(&b.pk, 2);
    sp_pack_kstr(&b.pk, "model", model_id);
    sp_pack_kstr(&b.pk, "reason", reason);
    for (sd_conn *c = d->conns, *next; c; c = next) {
        next = c->next; // a failed write may close c
        for (int i = 0; i < c->nsubs; i++)
            if (strcmp(c->subs[i], model_id) == 0) {
                sd_conn_notify(c, "schedule.updated", &b.sb);
                break;
            }
    }
    sd_buf_free(&b);
}
