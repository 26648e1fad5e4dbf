/* The listeners: a Unix socket (mode 0600) and, when asked, a loopback TCP port. */
#include "sd_server.h"

#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "sd_conn.h"
#include "sd_error.h"
#include "sd_log.h"
#include "sd_read.h"

static void on_reject_close(uv_handle_t *h) {
    free(h->data);
}

static void on_connection(uv_stream_t *server, int status) {
    sd_daemon *d = server->data;
    if (status < 0) {
        sd_log("accept: %s", uv_strerror(status));
        return;
    }
    sd_conn *c = calloc(1, sizeof *c);
    if (!c) return;
    int is_tcp = server == (uv_stream_t *)&d->tcp_srv;
    int rc = is_tcp ? uv_tcp_init(d->loop, &c->h.tcp) : uv_pipe_init(d->loop, &c->h.pipe, 0);
    if (rc < 0) {
        free(c);
        return;
    }
    c->h.handle.data = c;
    rc = uv_accept(server, &c->h.stream);
    if (rc == 0 && is_tcp) uv_tcp_nodelay(&c->h.tcp, 1);
    if (rc < 0 || d->stopping || d->nconns >= d->opt.max_connections) {
        if (rc == 0)
            sd_log("refusing a connection: %s", d->stopping ? "shutting down" : "too many");
        uv_close(&c->h.handle, on_reject_close);
        return;
    }
    rc = sd_read_start(d, c);
    if (rc < 0 && c->d)
        sd_conn_close(c);
    else if (rc < 0)
        uv_close(&c->h.handle, on_reject_close);
}

static int listen_unix(sd_daemon *d, en_diag *diag) {
    const char *path = d->opt.socket;
    // A socket left by a daemon that died is removed; a live one is not stolen.
    struct stat st;
    if (lstat(path, &st) == 0) {
        if (!S_ISSOCK(st.st_mode))
            return en_fail(diag, SD_ELISTEN, "%s exists and is not a socket", path);
        int fd = socket(AF_UNIX, SOCK_STREAM, 0);
        struct sockaddr_un sa = {.sun_family = AF_UNIX};
        snprintf(sa.sun_path, sizeof sa.sun_path, "%s", path);
        int alive = fd >= 0 && connect(fd, (struct sockaddr *)&sa, sizeof sa) == 0;
        if (fd >= 0) close(fd);
        if (alive) return en_fail(diag, SD_ELISTEN, "%s: another searchd is listening there", path);
        unlink(path);
    }
    // Say which part is wrong: a missing directory, not "permission denied".
    char dir[sizeof d->opt.socket];
    snprintf(dir, sizeof dir, "%s", path);
    char *slash = strrchr(dir, '/');
    if (slash) *(slash == dir ? slash + 1 : slash) = '\0';
    if (slash && stat(dir, &st) != 0)
        return en_fail(diag, SD_ELISTEN, "cannot listen on %s: directory %s: %s", path, dir,
                       strerror(errno));
    if (slash && !S_ISDIR(st.st_mode))
        return en_fail(diag, SD_ELISTEN, "cannot listen on %s: %s is not a directory", path, dir);
    int rc = uv_pipe_init(d->loop, &d->unix_srv, 0);
    if (rc < 0) return en_fail(diag, rc, "uv_pipe_init: %s", uv_strerror(rc));
    d->unix_srv.data = d;
    d->has_unix = 1;
    mode_t old = umask(0177); // the socket is created 0600: only this user may talk to us
    rc = uv_pipe_bind(&d->unix_srv, path);
    umask(old);
    if (rc == 0) rc = chmod(path, 0600) == 0 ? 0 : -errno;
    if (rc == 0) rc = uv_listen((uv_stream_t *)&d->unix_srv, 511, on_connection);
    if (rc < 0) return en_fail(diag, rc, "cannot listen on %s: %s", path, uv_strerror(rc));
    return 0;
}

static int listen_tcp(sd_daemon *d, en_diag *diag) {
    const char *spec = d->opt.listen;
    const char *colon = strrchr(spec, ':');
    if (!colon || colon == spec || !colon[1])
        return en_fail(diag, SD_EOPTION, "--listen %s: expected HOST:PORT, e.g. 127.0.0.1:7070",
                       spec);
    char host[64];
    snprintf(host, sizeof host, "%.*s", (int)(colon - spec), spec);
    if (host[0] == '[' && host[strlen(host) - 1] == ']') {
        memmove(host, host + 1, strlen(host));
        host[strlen(host) - 1] = '\0';
    }
    char *end;
    long port = strtol(colon + 1, &end, 10);
    if (*end || port < 0 || port > 65535)
        return en_fail(diag, SD_EOPTION, "--listen %s: bad port", spec);
    struct sockaddr_storage ss;
    memset(&ss, 0, sizeof ss);
    int loopback;
    if (uv_ip4_addr(host, (int)port, (struct sockaddr_in *)&ss) == 0) {
        loopback = (ntohl(((struct sockaddr_in *)&ss)->sin_addr.s_addr) >> 24) == 127;
    } else if (uv_ip6_addr(host, (int)port, (struct sockaddr_in6 *)&ss) == 0) {
        loopback = IN6_IS_ADDR_LOOPBACK(&((struct sockaddr_in6 *)&ss)->sin6_addr);
    } else {
        return en_fail(diag, SD_EOPTION, "--listen %s: '%s' is not an IP address", spec, host);
    }
    if (!loopback && !d->opt.listen_any)
        return en_fail(diag, SD_EOPTION,
                       "--listen %s is not a loopback address; the protocol has no "
                       "authentication, add --listen-any to expose it anyway",
                       spec);
    int rc = uv_tcp_init(d->loop, &d->tcp_srv);
    if (rc < 0) return en_fail(diag, rc, "uv_tcp_init: %s", uv_strerror(rc));
    d->tcp_srv.data = d;
    d->has_tcp = 1;
    rc = uv_tcp_bind(&d->tcp_srv, (struct sockaddr *)&ss, 0);
    if (rc == 0) rc = uv_listen((uv_stream_t *)&d->tcp_srv, 511, on_connection);
    if (rc < 0) return en_fail(diag, rc, "cannot listen on %s: %s", spec, uv_strerror(rc));
    // Port 0 lets the kernel pick a free one (tests, several daemons): report which.
    struct sockaddr_storage bound;
    int len = sizeof bound;
    rc = uv_tcp_getsockname(&d->tcp_srv, (struct sockaddr *)&bound, &len);
    if (rc < 0) return en_fail(diag, rc, "getsockname on %s: %s", spec, uv_strerror(rc));
    d->tcp_port = ntohs(bound.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&bound)->sin6_port
                                                    : ((struct sockaddr_in *)&bound)->sin_port);
    int v6 = strchr(host, ':') != NULL;
    snprintf(d->tcp_addr, sizeof d->tcp_addr, "%s%s%s:%d", v6 ? "[" : "", host, v6 ? "]" : "",
             d->tcp_port);
    return 0;
}

int sd_server_listen(sd_daemon *d, en_diag *diag) {
    int rc = listen_unix(d, diag);
    if (rc == 0 && d->opt.listen[0]) rc = listen_tcp(d, diag);
    return rc;
}

void sd_server_close(sd_daemon *d) {
    if (d->has_unix && !uv_is_closing((uv_handle_t *)&d->unix_srv)) {
        uv_close((uv_handle_t *)&d->unix_srv, NULL);
        unlink(d->opt.socket);
    }
    if (d->has_tcp && !uv_is_closing((uv_handle_t *)&d->tcp_srv))
        uv_close((uv_handle_t *)&d->tcp_srv, NULL);
}
