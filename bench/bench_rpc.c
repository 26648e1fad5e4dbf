/* bench_rpc: schedule.get over the Unix socket with N concurrent clients (16 by default),
 * requests/s and latency percentiles, first with searchd idle, then while a search runs.
 *
 * It starts its own searchd in a temp dir (or uses --socket/--model of a running one), adds
 * the demo model, tunes it once so there is a frontier, measures, starts a second tune and
 * measures again while it runs. One client thread drives all connections with poll(), each
 * with one request in flight, so the figures are the daemon's, not a thread scheduler's. */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "client/sdc.h"
#include "engine/en_clock.h"
#include "proto/sp_msg.h"

typedef struct bconn {
    sdc_client *c;
    int fd;
    char buf[65536];
    size_t have;
    double sent;
} bconn;

static int cmp(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static int write_all(int fd, const char *p, size_t n) {
    while (n > 0) {
        ssize_t w = write(fd, p, n);
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0) return -1;
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

/* Runs for `seconds`; prints and returns requests/s. */
static double measure(const char *label, const char *sock, const char *model, int clients,
                      double seconds) {
    bconn *cs = calloc((size_t)clients, sizeof *cs);
    struct pollfd *pf = calloc((size_t)clients, sizeof *pf);
    size_t cap = 20000000, n = 0;
    double *lat = malloc(sizeof *lat * cap);
    msgpack_sbuffer req;
    msgpack_sbuffer_init(&req);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &req, msgpack_sbuffer_write);
    sp_pack_request_head(&pk, 1, "schedule.get");
    msgpack_pack_array(&pk, 1);
    msgpack_pack_map(&pk, 2);
    sp_pack_kstr(&pk, "model", model);
    sp_pack_knum(&pk, "max_flops", 1.0);
    const sp_limits lim = {1 << 20, 16};
    for (int i = 0; i < clients; i++) {
        sp_diag dg;
        if (sdc_connect_unix(sock, &cs[i].c, &dg) != 0) {
            fprintf(stderr, "bench_rpc: %s\n", dg.msg);
            exit(1);
        }
        cs[i].fd = sdc_fd(cs[i].c);
        pf[i].fd = cs[i].fd;
        pf[i].events = POLLIN;
    }
    double t0 = en_now_seconds(), end = t0 + seconds;
    long errors = 0;
    for (int i = 0; i < clients; i++) {
        cs[i].sent = en_now_seconds();
        write_all(cs[i].fd, req.data, req.size);
    }
    while (en_now_seconds() < end) {
        if (poll(pf, (nfds_t)clients, 100) <= 0) continue;
        for (int i = 0; i < clients; i++) {
            if (!(pf[i].revents & POLLIN)) continue;
            bconn *b = &cs[i];
            ssize_t r = read(b->fd, b->buf + b->have, sizeof b->buf - b->have);
            if (r <= 0) {
                fprintf(stderr, "bench_rpc: connection lost\n");
                exit(1);
            }
            b->have += (size_t)r;
            size_t len;
            if (sp_scan(b->buf, b->have, &lim, &len, NULL) != 1) continue;
            double t = en_now_seconds();
            if (n < cap) lat[n++] = t - b->sent;
            // Replies are [1, id, nil, result]: byte 3 is nil (0xc0) when it succeeded.
            if (b->buf[3] != (char)0xc0) errors++;
            memmove(b->buf, b->buf + len, b->have - len);
            b->have -= len;
            b->sent = t;
            write_all(b->fd, req.data, req.size);
        }
    }
    double elapsed = en_now_seconds() - t0;
    qsort(lat, n, sizeof *lat, cmp);
    double rps = (double)n / elapsed;
    printf("%-22s %2d clients  %9.0f req/s  p50 %7.3f ms  p99 %7.3f ms  p99.9 %7.3f ms  "
           "(%zu requests%s)\n",
           label, clients, rps, n ? lat[n / 2] * 1e3 : 0, n ? lat[(size_t)(n * 0.99)] * 1e3 : 0,
           n ? lat[(size_t)(n * 0.999)] * 1e3 : 0, n, errors ? ", SOME FAILED" : "");
    fflush(stdout);
    for (int i = 0; i < clients; i++)
        sdc_close(cs[i].c);
    msgpack_sbuffer_destroy(&req);
    free(lat);
    free(pf);
    free(cs);
    return errors ? -1 : rps;
}

static int call(sdc_client *c, const char *method, const sdc_arg *args, int n, sdc_reply *r) {
    sp_diag dg;
    int rc = sdc_call(c, method, args, n, 600000, r, &dg);
    if (rc) fprintf(stderr, "bench_rpc: %s: %s\n", method, dg.msg);
    return rc;
}

/* Starts a tune and waits for its first progress (so the search is really running), or for
 * its end when `finish`. Returns the job number. */
static double tune(sdc_client *c, const char *model, int finish) {
    sdc_arg a[] = {SDC_ARG_STR("model", model)};
    sdc_reply r;
    if (call(c, "tune", a, 1, &r)) exit(1);
    double job = 0;
    sp_obj_num(sp_map_get(r.result, "job"), &job);
    sdc_reply_free(&r);
    for (;;) {
        sdc_note nt;
        if (sdc_next_notification(c, 600000, &nt, NULL) != 0) exit(1);
        int done = strcmp(nt.method, "job.done") == 0;
        int prog = strcmp(nt.method, "job.progress") == 0;
        sdc_note_free(&nt);
        if (done || (prog && !finish)) return job;
    }
}

int main(int argc, char **argv) {
    const char *searchd = SD_BENCH_SEARCHD, *model_dir = SD_BENCH_MODEL, *data = NULL;
    const char *sock = NULL, *model = NULL;
    int clients = 16;
    double seconds = 3;
    for (int i = 1; i + 1 < argc; i += 2) {
        if (strcmp(argv[i], "--searchd") == 0)
            searchd = argv[i + 1];
        else if (strcmp(argv[i], "--model-dir") == 0)
            model_dir = argv[i + 1];
        else if (strcmp(argv[i], "--data") == 0)
            data = argv[i + 1];
        else if (strcmp(argv[i], "--socket") == 0)
            sock = argv[i + 1];
        else if (strcmp(argv[i], "--model") == 0)
            model = argv[i + 1];
        else if (strcmp(argv[i], "--clients") == 0)
            clients = atoi(argv[i + 1]);
        else if (strcmp(argv[i], "--seconds") == 0)
            seconds = atof(argv[i + 1]);
        else {
            fprintf(stderr, "usage: bench_rpc [--clients 16] [--seconds 3] [--searchd PATH] "
                            "[--model-dir DIR] [--data FILE.tsv] | [--socket PATH --model ID]\n");
            return 2;
        }
    }
    if (clients < 1 || clients > 1000 || !(seconds > 0)) return 2;
    char dir[] = "/tmp/bench_rpc-XXXXXX", path[256], state[256], dpath[256];
    pid_t pid = 0;
    if (!sock) { // our own daemon in a temp dir
        if (!mkdtemp(dir)) return 1;
        snprintf(path, sizeof path, "%s/s.sock", dir);
        snprintf(state, sizeof state, "%s/state", dir);
        if (!data) {
            const char *shared = getenv("SEARCHD_SHARED");
            snprintf(dpath, sizeof dpath, "%s/small.tsv", dir);
            char cmd[800];
            snprintf(cmd, sizeof cmd, "head -401 %s/data/sst2/search.tsv > %s",
                     shared ? shared : SD_BENCH_SHARED, dpath);
            if (system(cmd) != 0) return 1;
            data = dpath;
        }
        sock = path;
        pid = fork();
        if (pid == 0) {
            char log[300];
            snprintf(log, sizeof log, "%s/searchd.log", dir);
            int fd = open(log, O_WRONLY | O_CREAT | O_TRUNC, 0600);
            dup2(fd, 2);
            execl(searchd, searchd, "--socket", path, "--state-dir", state, "--search-generations",
                  "3", "--calib-seconds", "0.5", (char *)NULL);
            _exit(127);
        }
    }
    sdc_client *c = NULL;
    for (int i = 0; i < 200 && sdc_connect_unix(sock, &c, NULL) != 0; i++)
        usleep(50000);
    if (!c) {
        fprintf(stderr, "bench_rpc: cannot reach searchd at %s\n", sock);
        return 1;
    }
    char id[32];
    if (!model) {
        sdc_arg a[] = {SDC_ARG_STR("path", model_dir), SDC_ARG_STR("data", data)};
        sdc_reply r;
        if (call(c, "model.add", a, 2, &r)) return 1;
        sp_get_str(r.result, "model", 1, id, sizeof id, NULL);
        sdc_reply_free(&r);
        model = id;
        printf("bench_rpc: tuning %s on %s once so there is a frontier...\n", model, data);
        fflush(stdout);
        tune(c, model, 1);
    }
    double idle = measure("schedule.get idle", sock, model, clients, seconds);
    double job = tune(c, model, 0);
    double busy = measure("schedule.get + search", sock, model, clients, seconds);
    sdc_arg j[] = {SDC_ARG_NUM("job", job)};
    sdc_reply r;
    sdc_call(c, "job.cancel", j, 1, 10000, &r, NULL);
    sdc_reply_free(&r);
    sdc_close(c);
    if (pid > 0) {
        kill(pid, SIGTERM);
        int st;
        waitpid(pid, &st, 0);
        char cmd[300];
        snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
        if (system(cmd) != 0) fprintf(stderr, "bench_rpc: could not remove %s\n", dir);
    }
    return idle > 0 && busy > 0 ? 0 : 1;
}
