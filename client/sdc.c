/* Connection, calls and the notification queue of the client library. */
#include "sdc.h"

#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#define SDC_READ_CHUNK 65536
#define SDC_MAX_QUEUED 10000 // notifications kept while nobody reads them; oldest dropped

typedef struct sdc_qnote {
    sdc_note note;
    struct sdc_qnote *next;
} sdc_qnote;

struct sdc_client {
    int fd;
    int closed;
    uint32_t next_msgid;
    msgpack_unpacker unp;
    msgpack_sbuffer sb;
    sdc_qnote *head, *tail;
    int queued;
};

const char *sdc_default_socket(char *buf, size_t len) {
    const char *run = getenv("XDG_RUNTIME_DIR");
    if (run && *run)
        snprintf(buf, len, "%s/searchd.sock", run);
    else
        snprintf(buf, len, "/tmp/searchd-%u.sock", (unsigned)getuid());
    return buf;
}

static int client_new(int fd, sdc_client **out, sp_diag *diag) {
    sdc_client *c = calloc(1, sizeof *c);
    if (!c || !msgpack_unpacker_init(&c->unp, SDC_READ_CHUNK)) {
        free(c);
        close(fd);
        return sp_fail(diag, -ENOMEM, "out of memory");
    }
    c->fd = fd;
    c->next_msgid = 1;
    msgpack_sbuffer_init(&c->sb);
    *out = c;
    return 0;
}

int sdc_connect_unix(const char *path, sdc_client **out, sp_diag *diag) {
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    if (strlen(path) >= sizeof sa.sun_path)
        return sp_fail(diag, SP_EADDRESS, "socket path too long: %s", path);
    memcpy(sa.sun_path, path, strlen(path) + 1);
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) return sp_fail(diag, -errno, "socket: %s", strerror(errno));
    if (connect(fd, (struct sockaddr *)&sa, sizeof sa) != 0) {
        int rc = -errno;
        close(fd);
        return sp_fail(diag, rc, "cannot connect to searchd at %s: %s%s", path, strerror(-rc),
                       rc == -ENOENT || rc == -ECONNREFUSED ? " (is searchd running?)" : "");
    }
    return client_new(fd, out, diag);
}

int sdc_connect_tcp(const char *hostport, sdc_client **out, sp_diag *diag) {
    const char *colon = strrchr(hostport, ':');
    if (!colon || colon == hostport || !colon[1])
        return sp_fail(diag, SP_EADDRESS, "'%s': expected HOST:PORT", hostport);
    char host[256];
    snprintf(host, sizeof host, "%.*s", (int)(colon - hostport), hostport);
    if (host[0] == '[' && strlen(host) > 2 && host[strlen(host) - 1] == ']') {
        memmove(host, host + 1, strlen(host));
        host[strlen(host) - 1] = '\0';
    }
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM}, *res;
    int g = getaddrinfo(host, colon + 1, &hints, &res);
    if (g != 0) return sp_fail(diag, SP_EADDRESS, "'%s': %s", hostport, gai_strerror(g));
    int rc = -ECONNREFUSED, fd = -1;
    for (struct addrinfo *a = res; a; a = a->ai_next) {
        fd = socket(a->ai_family, a->ai_socktype | SOCK_CLOEXEC, a->ai_protocol);
        if (fd < 0) {
            rc = -errno;
            continue;
        }
        if (connect(fd, a->ai_addr, a->ai_addrlen) == 0) {
            rc = 0;
            break;
        }
        rc = -errno;
        close(fd);
        fd = -1;
    }
    freeaddrinfo(res);
    if (rc)
        return sp_fail(diag, rc, "cannot connect to searchd at %s: %s", hostport, strerror(-rc));
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    return client_new(fd, out, diag);
}

int sdc_fd(const sdc_client *c) {
    return c->fd;
}

void sdc_reply_free(sdc_reply *r) {
    if (r->msg.zone) msgpack_unpacked_destroy(&r->msg);
    memset(r, 0, sizeof *r);
}

void sdc_note_free(sdc_note *n) {
    if (n->msg.zone) msgpack_unpacked_destroy(&n->msg);
    memset(n, 0, sizeof *n);
}

void sdc_close(sdc_client *c) {
    if (!c) return;
    while (c->head) {
        sdc_qnote *q = c->head;
        c->head = q->next;
        sdc_note_free(&q->note);
        free(q);
    }
    if (c->fd >= 0) close(c->fd);
    msgpack_unpacker_destroy(&c->unp);
    msgpack_sbuffer_destroy(&c->sb);
    free(c);
}

static int send_all(sdc_client *c, const void *buf, size_t len, sp_diag *diag) {
    const char *p = buf;
    while (len > 0) {
        ssize_t n = send(c->fd, p, len, MSG_NOSIGNAL);
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) {
            c->closed = 1;
            return sp_fail(diag, SP_ECLOSED, "searchd closed the connection (%s)", strerror(errno));
        }
        p += n;
        len -= (size_t)n;
    }
    return 0;
}

int sdc_send_raw(sdc_client *c, const void *bytes, size_t len, sp_diag *diag) {
    return send_all(c, bytes, len, diag);
}

static long long now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Reads what the socket has within the time left: 0, SP_ETIMEOUT or SP_ECLOSED. */
static int fill(sdc_client *c, long long deadline, sp_diag *diag) {
    if (c->closed) return sp_fail(diag, SP_ECLOSED, "searchd closed the connection");
    for (;;) {
        int wait = -1;
        if (deadline >= 0) {
            long long left = deadline - now_ms();
            wait = left > 0 ? (int)left : 0;
        }
        struct pollfd pfd = {.fd = c->fd, .events = POLLIN};
        int pr = poll(&pfd, 1, wait);
        if (pr < 0 && errno == EINTR) continue;
        if (pr == 0) return sp_fail(diag, SP_ETIMEOUT, "no answer from searchd within the timeout");
        if (!msgpack_unpacker_reserve_buffer(&c->unp, SDC_READ_CHUNK))
            return sp_fail(diag, -ENOMEM, "out of memory");
        ssize_t n = read(c->fd, msgpack_unpacker_buffer(&c->unp),
                         msgpack_unpacker_buffer_capacity(&c->unp));
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) {
            c->closed = 1;
            return sp_fail(diag, SP_ECLOSED, "searchd closed the connection");
        }
        msgpack_unpacker_buffer_consumed(&c->unp, (size_t)n);
        return 0;
    }
}

static void enqueue(sdc_client *c, msgpack_unpacked *u, const sp_msg *m) {
    sdc_qnote *q = calloc(1, sizeof *q);
    if (!q) return;
    q->note.msg = *u;
    u->zone = NULL; // moved
    snprintf(q->note.method, sizeof q->note.method, "%.*s",
             (int)(m->method_len < 63 ? m->method_len : 63), m->method);
    const msgpack_object *p = m->params;
    q->note.params = p->via.array.size == 1 ? &p->via.array.ptr[0] : NULL;
    if (c->tail)
        c->tail->next = q;
    else
        c->head = q;
    c->tail = q;
    if (++c->queued > SDC_MAX_QUEUED) {
        sdc_qnote *old = c->head;
        c->head = old->next;
        sdc_note_free(&old->note);
        free(old);
        c->queued--;
    }
}

/* Decodes buffered messages: notifications are queued; a response with `msgid` (when
 * want_reply) is moved into `r` and 1 is returned. 0 when the buffer holds no more. */
static int drain(sdc_client *c, int want_reply, uint32_t msgid, sdc_reply *r, sp_diag *diag) {
    for (;;) {
        msgpack_unpacked u;
        msgpack_unpacked_init(&u);
        msgpack_unpack_return ur = msgpack_unpacker_next(&c->unp, &u);
        if (ur == MSGPACK_UNPACK_CONTINUE) {
            msgpack_unpacked_destroy(&u);
            return 0;
        }
        if (ur != MSGPACK_UNPACK_SUCCESS) {
            msgpack_unpacked_destroy(&u);
            c->closed = 1;
            return sp_fail(diag, SP_EMALFORMED, "searchd sent bytes that are not msgpack");
        }
        sp_msg m;
        if (sp_msg_decode(&u.data, &m, NULL, NULL) != 0) {
            msgpack_unpacked_destroy(&u);
            continue;
        }
        if (m.type == SP_NOTIFY) {
            enqueue(c, &u, &m);
            msgpack_unpacked_destroy(&u);
            continue;
        }
        if (m.type != SP_RESPONSE || !want_reply || m.msgid != msgid) {
            msgpack_unpacked_destroy(&u); // a reply to a call that timed out earlier
            continue;
        }
        r->msg = u;
        r->code = 0;
        r->result = NULL;
        if (m.error->type == MSGPACK_OBJECT_NIL) {
            r->result = m.result;
            return 1;
        }
        const msgpack_object *e = m.error->via.array.ptr;
        double code = -1;
        sp_obj_num(&e[0], &code);
        r->code = code < 0 && code > -100000 ? (int)code : SP_EENVELOPE;
        if (e[1].type == MSGPACK_OBJECT_STR)
            sp_fail(diag, r->code, "%.*s", (int)e[1].via.str.size, e[1].via.str.ptr);
        else
            sp_fail(diag, r->code, "searchd error %d", r->code);
        return 1;
    }
}

int sdc_wait_reply(sdc_client *c, uint32_t msgid, int timeout_ms, sdc_reply *r, sp_diag *diag) {
    memset(r, 0, sizeof *r);
    long long deadline = timeout_ms < 0 ? -1 : now_ms() + timeout_ms;
    for (;;) {
        int rc = drain(c, 1, msgid, r, diag);
        if (rc < 0) return rc;
        if (rc == 1) return r->code;
        if ((rc = fill(c, deadline, diag)) != 0) return rc;
    }
}

int sdc_call(sdc_client *c, const char *method, const sdc_arg *args, int nargs, int timeout_ms,
             sdc_reply *r, sp_diag *diag) {
    memset(r, 0, sizeof *r);
    uint32_t msgid = c->next_msgid++;
    if (c->next_msgid == 0)
        c->next_msgid = 1; // 0 is what searchd uses for a message it could not read
    c->sb.size = 0;
    msgpack_packer pk;
    msgpack_packer_init(&pk, &c->sb, msgpack_sbuffer_write);
    sp_pack_request_head(&pk, msgid, method);
    if (nargs == 0) {
        msgpack_pack_array(&pk, 0);
    } else {
        msgpack_pack_array(&pk, 1);
        msgpack_pack_map(&pk, (size_t)nargs);
        for (int i = 0; i < nargs; i++) {
            sp_pack_str(&pk, args[i].key);
            if (args[i].kind == SDC_STR)
                sp_pack_str(&pk, args[i].s ? args[i].s : "");
            else if (args[i].kind == SDC_BOOL && args[i].num != 0)
                msgpack_pack_true(&pk);
            else if (args[i].kind == SDC_BOOL)
                msgpack_pack_false(&pk);
            else
                msgpack_pack_double(&pk, args[i].num);
        }
    }
    int rc = send_all(c, c->sb.data, c->sb.size, diag);
    if (rc) return rc;
    return sdc_wait_reply(c, msgid, timeout_ms, r, diag);
}

int sdc_next_notification(sdc_client *c, int timeout_ms, sdc_note *n, sp_diag *diag) {
    memset(n, 0, sizeof *n);
    long long deadline = timeout_ms < 0 ? -1 : now_ms() + timeout_ms;
    for (;;) {
        if (c->head) {
            sdc_qnote *q = c->head;
            c->head = q->next;
            if (!c->head) c->tail = NULL;
            c->queued--;
            *n = q->note;
            free(q);
            return 0;
        }
        int rc = drain(c, 0, 0, NULL, diag);
        if (rc < 0) return rc;
        if (c->head) continue;
        if ((rc = fill(c, deadline, diag)) != 0) return rc;
    }
}

int sdc_parse_share(const char *text, const char *name, int drop, double *out, sp_diag *diag) {
    char *end;
    double v = strtod(text, &end);
    int percent = end != text && *end == '%';
    if (percent) {
        v /= 100;
        end++;
    }
    int number = end != text && *end == '\0' && v == v;
    if (number && drop && !percent && v >= 0.5 && v <= 100)
        return sp_fail(diag, SP_EPARAMS,
                       "%s %.32s would allow a %g%% accuracy drop; write %.32s%% for %.32s "
                       "percent, or the fraction %g",
                       name, text, 100 * v, text, text, v / 100);
    if (!number || !(v >= 0 && v <= 1))
        return sp_fail(diag, SP_EPARAMS, "%s takes 1%% or 0.01 (a share from 0 to 1), not '%.32s'",
                       name, text);
    *out = v;
    return 0;
}
