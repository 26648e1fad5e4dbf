#include "sd_redis_uv.h"

#include <hiredis/async.h>
#include <stdlib.h>

/* hiredis on the daemon's libuv loop. hiredis 0.14's adapters/libuv.h drops a poll error (status <
 * 0), so a refused connect is never reported and the context waits forever. This glue hands an
 * error to hiredis, which then fails the connect (or reads the closed socket) and calls on_connect
 * / on_disconnect. */

typedef struct glue {
    redisAsyncContext *ac;
    uv_poll_t poll;
    int events;
} glue;

static void glue_cb(uv_poll_t *h, int status, int events) {
    glue *g = h->data;
    if (!g->ac) return;
    if (status < 0) {
        if (g->ac->c.flags & REDIS_CONNECTED)
            redisAsyncHandleRead(g->ac);
        else
            redisAsyncHandleWrite(g->ac); // checks the socket's error: the connect fails
        return;
    }
    if (g->ac && (events & UV_READABLE)) redisAsyncHandleRead(g->ac);
    if (g->ac && (events & UV_WRITABLE)) redisAsyncHandleWrite(g->ac);
}

static void glue_set(glue *g, int events) {
    g->events = events;
    if (events)
        uv_poll_start(&g->poll, events, glue_cb);
    else
        uv_poll_stop(&g->poll);
}

static void glue_add_read(void *p) {
    glue_set(p, ((glue *)p)->events | UV_READABLE);
}
static void glue_del_read(void *p) {
    glue_set(p, ((glue *)p)->events & ~UV_READABLE);
}
static void glue_add_write(void *p) {
    glue_set(p, ((glue *)p)->events | UV_WRITABLE);
}
static void glue_del_write(void *p) {
    glue_set(p, ((glue *)p)->events & ~UV_WRITABLE);
}
static void glue_closed(uv_handle_t *h) {
    free(h->data);
}
static void glue_cleanup(void *p) {
    glue *g = p;
    g->ac = NULL;
    uv_close((uv_handle_t *)&g->poll, glue_closed);
}

int sd_redis_attach(redisAsyncContext *ac, uv_loop_t *loop) {
    glue *g = calloc(1, sizeof *g);
    if (!g) return -1;
    if (uv_poll_init(loop, &g->poll, ac->c.fd) != 0) {
        free(g);
        return -1;
    }
    g->ac = ac;
    g->poll.data = g;
    ac->ev.data = g;
    ac->ev.addRead = glue_add_read;
    ac->ev.delRead = glue_del_read;
    ac->ev.addWrite = glue_add_write;
    ac->ev.delWrite = glue_del_write;
    ac->ev.cleanup = glue_cleanup;
    return 0;
}
