/* The fleet (docs/fleet.md): two searchd processes with different fingerprints share one
 * redis-server started by the test on a free loopback port. Skipped only when redis-server is
 * not installed (scripts/deps.sh installs it). */
#include <arpa/inet.h>
#include <errno.h>
#include <math.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "test_util.h"

static td host_a, host_b, host_c;
static pid_t redis_pid;
static int redis_port;
static char redis_log[300];

static double mono_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

static int have_redis(void) {
    return system("command -v redis-server >/dev/null 2>&1") == 0;
}

static int redis_cli(const char *args, char *out, size_t cap);
/* What job.done says of a job: status, error, the host whose records ended it (results_from,
 * "" when absent) and the candidates the job itself evaluated (total). */
typedef struct job_end {
    char status[32], error[600], from[300];
    double total;
} job_end;
static void wait_job_end(sdc_client *c, job_end *e);

/* The distributed evaluation tests look into Redis with redis-cli (redis-tools). */
static int have_redis_cli(void) {
    if (have_redis() && system("command -v redis-cli >/dev/null 2>&1") == 0) return 1;
    fprintf(stderr, "fleet: skipped, redis-server or redis-cli is not installed\n");
    return 0;
}

/* A loopback port free now: bound to port 0, read, closed. */
static int free_port(void) {
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    ck_assert_int_ge(fd, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof a;
    ck_assert_int_eq(bind(fd, (struct sockaddr *)&a, sizeof a), 0);
    ck_assert_int_eq(getsockname(fd, (struct sockaddr *)&a, &len), 0);
    close(fd);
    return ntohs(a.sin_port);
}

/* 1 when a redis-server answers PING on the port. */
static int redis_answers(void) {
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET,
                            .sin_port = htons((uint16_t)redis_port),
                            .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    char buf[16] = "";
    int ok = fd >= 0 && connect(fd, (struct sockaddr *)&a, sizeof a) == 0 &&
             write(fd, "PING\r\n", 6) == 6 && read(fd, buf, sizeof buf - 1) > 0 &&
             strncmp(buf, "+PONG", 5) == 0;
    if (fd >= 0) close(fd);
    return ok;
}

static void redis_start(void) {
    char port[16];
    snprintf(port, sizeof port, "%d", redis_port);
    redis_pid = fork();
    ck_assert_int_ge(redis_pid, 0);
    if (redis_pid == 0) {
        FILE *f = freopen(redis_log, "a", stdout);
        (void)f;
        execlp("redis-server", "redis-server", "--port", port, "--bind", "127.0.0.1", "--save", "",
               "--appendonly", "no", "--daemonize", "no", (char *)NULL);
        _exit(127);
    }
    for (int i = 0; i < 200 && !redis_answers(); i++)
        td_sleep_ms(25);
    ck_assert_msg(redis_answers(), "redis-server did not answer on port %d; see %s", redis_port,
                  redis_log);
}

static void redis_kill(void) {
    if (redis_pid <= 0) return;
    kill(redis_pid, SIGKILL);
    waitpid(redis_pid, NULL, 0);
    redis_pid = 0;
}

static void fleet_setup(void) {
    td_init(&host_a, 0);
    td_init(&host_b, 0);
    td_init(&host_c, 0);
    snprintf(redis_log, sizeof redis_log, "%s/redis.log", host_a.dir);
}

static void fleet_teardown(void) {
    // Both must still exit 0 (a clean shutdown: the fleet's handles closed too).
    if (host_a.pid > 0) ck_assert_int_eq(td_stop(&host_a, SIGTERM), 0);
    if (host_b.pid > 0) ck_assert_int_eq(td_stop(&host_b, SIGTERM), 0);
    if (host_c.pid > 0) ck_assert_int_eq(td_stop(&host_c, SIGTERM), 0);
    redis_kill();
    td_cleanup(&host_a);
    td_cleanup(&host_b);
    td_cleanup(&host_c);
}

/* Redis on a free port, then A and B (fingerprints "Fleet A CPU", "Fleet B CPU") in the fleet,
 * each with the demo model added on the small data set. */
static void start_fleet_with(const char *a_generations) {
    redis_port = free_port();
    redis_start();
    char url[64];
    snprintf(url, sizeof url, "redis://127.0.0.1:%d", redis_port);
    const char *a[] = {"--fleet",
                       url,
                       "--fingerprint-override",
                       "Fleet A CPU",
                       a_generations ? "--search-generations" : NULL,
                       a_generations,
                       NULL};
    const char *b[] = {"--fleet", url, "--fingerprint-override", "Fleet B CPU", NULL};
    td_start(&host_a, a);
    td_start(&host_b, b);
    td *hosts[] = {&host_a, &host_b};
    for (int i = 0; i < 2; i++) {
        sdc_client *c = td_connect(hosts[i]);
        sdc_arg add[] = {SDC_ARG_STR("path", tc_demo_model()), SDC_ARG_STR("data", td_data),
                         SDC_ARG_STR("name", "demo")};
        sdc_reply r;
        td_call_ok(c, "model.add", add, 3, &r);
        sdc_reply_free(&r);
        sdc_close(c);
    }
}

static void start_fleet(void) {
    start_fleet_with(NULL);
}

static sdc_client *subscribe(const td *t) {
    sdc_client *c = td_connect(t);
    sdc_arg m[] = {SDC_ARG_STR("model", "demo")};
    sdc_reply r;
    td_call_ok(c, "subscribe", m, 1, &r);
    sdc_reply_free(&r);
    return c;
}

/* Records of schedule.frontier: count, or -1 when the call failed. */
static int frontier_count(sdc_client *c) {
    sdc_reply r;
    sdc_arg m[] = {SDC_ARG_STR("model", "demo")};
    int rc = sdc_call(c, "schedule.frontier", m, 1, 5000, &r, NULL);
    int n = rc == 0 && r.result && r.result->type == MSGPACK_OBJECT_ARRAY
                ? (int)r.result->via.array.size
                : -1;
    sdc_reply_free(&r);
    return n;
}

/* The record of frontier `f` with schedule text `text`, or NULL. */
static const msgpack_object *record_of(const msgpack_object_array *f, const char *text) {
    for (uint32_t k = 0; k < f->size; k++) {
        char s[512];
        if (strcmp(td_str(&f->ptr[k], "schedule", s, sizeof s), text) == 0) return &f->ptr[k];
    }
    return NULL;
}

/* B's frontier is A's records ranked with B's own latency: each of B's records is one of A's
 * with the same accuracy figures (accuracy, baseline, drop, drop_upper, search accuracy, FLOPs),
 * B's hardware text and B's own predicted latency. B keeps the Pareto set under its own
 * latency profile, so a record of A that B does not keep must be matched on every other axis by
 * one B keeps (no more FLOPs, no less accuracy, no larger drop bound): only B's latency can have
 * ranked it out, never a loss on the way. */
static void assert_same_records(sdc_client *ca, sdc_client *cb) {
    sdc_reply ra, rb;
    sdc_arg m[] = {SDC_ARG_STR("model", "demo")};
    td_call_ok(ca, "schedule.frontier", m, 1, &ra);
    td_call_ok(cb, "schedule.frontier", m, 1, &rb);
    const msgpack_object_array *fa = &ra.result->via.array, *fb = &rb.result->via.array;
    ck_assert_uint_gt(fa->size, 0);
    ck_assert_uint_gt(fb->size, 0);
    static const char *const keys[] = {"accuracy",   "baseline_accuracy", "drop",
                                       "drop_upper", "search_accuracy",   "flops_ratio"};
    for (uint32_t i = 0; i < fb->size; i++) {
        char sb[512], hw[300];
        td_str(&fb->ptr[i], "schedule", sb, sizeof sb);
        const msgpack_object *a = record_of(fa, sb);
        ck_assert_msg(a != NULL, "B has %s, which A never found", sb);
        for (size_t k = 0; k < sizeof keys / sizeof keys[0]; k++)
            ck_assert_msg(td_num(a, keys[k]) == td_num(&fb->ptr[i], keys[k]),
                          "%s: %s %.17g on A, %.17g on B", sb, keys[k], td_num(a, keys[k]),
                          td_num(&fb->ptr[i], keys[k]));
        ck_assert_msg(strstr(td_str(&fb->ptr[i], "hardware", hw, sizeof hw), "Fleet B CPU"),
                      "B's record %s has hardware '%s', not B's", sb, hw);
        ck_assert_msg(strstr(td_str(a, "hardware", hw, sizeof hw), "Fleet A CPU"),
                      "A's record %s has hardware '%s'", sb, hw);
        double lat = td_num(&fb->ptr[i], "latency_ms");
        ck_assert_msg(lat > 0 && isfinite(lat), "%s: B's latency %g not predicted", sb, lat);
    }
    int ranked_out = 0;
    for (uint32_t i = 0; i < fa->size; i++) {
        char sa[512];
        td_str(&fa->ptr[i], "schedule", sa, sizeof sa);
        if (record_of(fb, sa)) continue;
        const msgpack_object *r = &fa->ptr[i];
        int covered = 0;
        for (uint32_t k = 0; k < fb->size && !covered; k++) {
            const msgpack_object *b = &fb->ptr[k];
            covered = td_num(b, "flops_ratio") <= td_num(r, "flops_ratio") &&
                      td_num(b, "accuracy") >= td_num(r, "accuracy") &&
                      td_num(b, "drop_upper") <= td_num(r, "drop_upper");
        }
        ck_assert_msg(covered, "B lost A's record %s: no record B keeps matches it", sa);
        ranked_out++;
    }
    if (ranked_out)
        fprintf(stderr, "fleet: B keeps %u of A's %u records (%d ranked out by B's latency)\n",
                fb->size, fa->size, ranked_out);
    sdc_reply_free(&ra);
    sdc_reply_free(&rb);
}

static void assert_fleet_note(sdc_client *sub, int timeout_ms) {
    sdc_note n;
    int rc = td_wait_note(sub, "schedule.updated", timeout_ms, &n);
    ck_assert_msg(rc == 0, "B's subscriber got no schedule.updated within %d ms", timeout_ms);
    char reason[32];
    ck_assert_str_eq(td_str(n.params, "reason", reason, sizeof reason), "fleet");
    sdc_note_free(&n);
}

/* info.fleet of a host: field `key` as a number (booleans as 0/1). */
static double fleet_info(sdc_client *c, const char *key) {
    sdc_reply r;
    td_call_ok(c, "info", NULL, 0, &r);
    const msgpack_object *f = sp_map_get(r.result, "fleet"), *v = f ? sp_map_get(f, key) : NULL;
    ck_assert_msg(v != NULL, "info has no fleet.%s", key);
    double x = v->type == MSGPACK_OBJECT_BOOLEAN ? v->via.boolean : td_num(f, key);
    sdc_reply_free(&r);
    return x;
}

START_TEST(fleet_tune_on_a_serves_on_b) {
    if (!have_redis()) {
        fprintf(stderr, "fleet: skipped, redis-server is not installed (scripts/deps.sh)\n");
        return;
    }
    start_fleet();
    sdc_client *ca = td_connect(&host_a), *cb = td_connect(&host_b), *sub = subscribe(&host_b);
    ck_assert_int_eq(frontier_count(cb), 0);
    sp_diag dg = {{0}};
    ck_assert_msg(td_tune_wait(ca, "demo", &dg) == 0, "tune on A: %s", dg.msg);
    double done = mono_ms();
    assert_fleet_note(sub, 2000);
    double lag = mono_ms() - done;
    fprintf(stderr, "fleet: B's schedule.updated %.0f ms after A's job.done\n", lag);
    ck_assert_double_lt(lag, 2000);
    assert_same_records(ca, cb);
    ck_assert_double_gt(fleet_info(ca, "records_sent"), 0);
    // Each record in Redis says which data split certified it, by which host and version.
    if (system("command -v redis-cli >/dev/null 2>&1") == 0) {
        char key[256], val[4096], args[400];
        ck_assert_int_eq(redis_cli("--scan --pattern 'searchd:frontier:*'", key, sizeof key), 0);
        snprintf(args, sizeof args, "HVALS %s", key);
        ck_assert_int_eq(redis_cli(args, val, sizeof val), 0);
        ck_assert_msg(strstr(val, "\"split\":\"seed 1, 0.70 of ") && strstr(val, "Fleet A CPU") &&
                          strstr(val, "\"version\":"),
                      "%s", val);
    }
    ck_assert_double_gt(fleet_info(cb, "records_received"), 0);
    ck_assert_double_eq(fleet_info(cb, "connected"), 1);
    // A model added after the search reads what the fleet has: removed and added again on B.
    sdc_arg m[] = {SDC_ARG_STR("model", "demo")};
    sdc_reply r;
    td_call_ok(cb, "model.remove", m, 1, &r);
    sdc_reply_free(&r);
    sdc_arg add[] = {SDC_ARG_STR("path", tc_demo_model()), SDC_ARG_STR("data", td_data),
                     SDC_ARG_STR("name", "demo")};
    td_call_ok(cb, "model.add", add, 3, &r);
    sdc_reply_free(&r);
    double added = mono_ms();
    while (frontier_count(cb) <= 0 && mono_ms() - added < 2000)
        td_sleep_ms(20);
    assert_same_records(ca, cb);
    sdc_close(sub);
    sdc_close(ca);
    sdc_close(cb);
}
END_TEST

/* B restarted: its model, registered before, has no weights or lengths loaded in the new
 * process; the fleet's records for it load them and merge, with B's own latency. */
START_TEST(fleet_records_reach_a_restarted_host) {
    if (!have_redis()) {
        fprintf(stderr, "fleet: skipped, redis-server is not installed (scripts/deps.sh)\n");
        return;
    }
    start_fleet();
    ck_assert_int_eq(td_stop(&host_b, SIGTERM), 0);
    char url[64];
    snprintf(url, sizeof url, "redis://127.0.0.1:%d", redis_port);
    const char *b[] = {"--fleet", url, "--fingerprint-override", "Fleet B CPU", NULL};
    td_start(&host_b, b);
    sdc_client *ca = td_connect(&host_a), *cb = td_connect(&host_b), *sub = subscribe(&host_b);
    ck_assert_int_eq(frontier_count(cb), 0);
    sp_diag dg = {{0}};
    ck_assert_msg(td_tune_wait(ca, "demo", &dg) == 0, "tune on A: %s", dg.msg);
    assert_fleet_note(sub, 30000); // after B loaded the weights and tokenized its data set
    assert_same_records(ca, cb);
    ck_assert(td_log_has(&host_b, "loaded for the fleet's records"));
    sdc_close(sub);
    sdc_close(ca);
    sdc_close(cb);
}
END_TEST

/* A search that narrows heads and FFN neurons on A: its width records reach B with the width
 * profile they were measured with, so B serves each one with the same heads, neurons and factors
 * as A (schedule.frontier's "width" maps are equal), at B's own latency. */
START_TEST(fleet_width_records_travel_with_their_profile) {
    if (!have_redis()) {
        fprintf(stderr, "fleet: skipped, redis-server is not installed (scripts/deps.sh)\n");
        return;
    }
    start_fleet();
    sdc_client *ca = td_connect(&host_a), *cb = td_connect(&host_b), *sub = subscribe(&host_b);
    sdc_arg tune[] = {SDC_ARG_STR("model", "demo"), SDC_ARG_BOOL("width", 1)};
    sdc_reply r;
    td_call_ok(ca, "tune", tune, 2, &r);
    sdc_reply_free(&r);
    job_end end;
    wait_job_end(ca, &end);
    ck_assert_msg(strcmp(end.status, "done") == 0, "A's width tune: %s %s", end.status, end.error);
    assert_fleet_note(sub, 5000);
    assert_same_records(ca, cb);
    sdc_reply ra, rb;
    sdc_arg m[] = {SDC_ARG_STR("model", "demo")};
    td_call_ok(ca, "schedule.frontier", m, 1, &ra);
    td_call_ok(cb, "schedule.frontier", m, 1, &rb);
    int narrowed = 0;
    for (uint32_t i = 0; i < rb.result->via.array.size; i++) {
        const msgpack_object *b = &rb.result->via.array.ptr[i], *wb = sp_map_get(b, "width");
        if (!wb) continue;
        char text[512];
        const msgpack_object *a =
            record_of(&ra.result->via.array, td_str(b, "schedule", text, sizeof text));
        const msgpack_object *wa = a ? sp_map_get(a, "width") : NULL;
        ck_assert_msg(wa && msgpack_object_equal(*wa, *wb), "%s: B narrows it unlike A", text);
        narrowed++;
    }
    fprintf(stderr, "fleet: %d width record(s) on B, served as on A\n", narrowed);
    ck_assert_int_gt(narrowed, 0);
    sdc_reply_free(&ra);
    sdc_reply_free(&rb);
    sdc_close(sub);
    sdc_close(ca);
    sdc_close(cb);
}
END_TEST

/* Every request to either host answers while Redis is away. */
static void assert_answering(sdc_client *qa, sdc_client *qb) {
    sdc_client *cs[] = {qa, qb};
    for (int i = 0; i < 2; i++) {
        const char *methods[] = {"ping", "info", "model.list"};
        for (int k = 0; k < 3; k++) {
            sdc_reply r;
            sp_diag dg = {{0}};
            double t0 = mono_ms();
            int rc = sdc_call(cs[i], methods[k], NULL, 0, 2000, &r, &dg);
            sdc_reply_free(&r);
            ck_assert_msg(rc == 0, "host %c: %s failed while Redis was away: %d %s", 'A' + i,
                          methods[k], rc, dg.msg);
            ck_assert_double_lt(mono_ms() - t0, 1000);
        }
    }
}

START_TEST(fleet_redis_restart_converges) {
    if (!have_redis()) {
        fprintf(stderr, "fleet: skipped, redis-server is not installed (scripts/deps.sh)\n");
        return;
    }
    start_fleet_with("10");
    sdc_client *ca = td_connect(&host_a), *cb = td_connect(&host_b), *sub = subscribe(&host_b);
    sdc_client *qa = td_connect(&host_a), *qb = td_connect(&host_b);
    sdc_reply r;
    sdc_arg tune[] = {SDC_ARG_STR("model", "demo")};
    td_call_ok(ca, "tune", tune, 1, &r);
    sdc_reply_free(&r);
    // During the search, whatever the machine's speed: once it reports progress (A's search is
    // 10 generations long here, so most of it is still to come).
    sdc_note first;
    ck_assert_int_eq(td_wait_note(ca, "job.progress", 60000, &first), 0);
    sdc_note_free(&first);
    redis_kill();
    // Until A's job ends, and 1 s beyond, both hosts answer every request.
    int done = 0;
    double until = 0;
    while (!done || mono_ms() < until) {
        sdc_note n;
        if (!done && sdc_next_notification(ca, 200, &n, NULL) == 0) {
            if (strcmp(n.method, "job.done") == 0) {
                char status[32];
                ck_assert_str_eq(td_str(n.params, "status", status, sizeof status), "done");
                done = 1;
                until = mono_ms() + 1000;
            }
            sdc_note_free(&n);
        } else if (done) {
            td_sleep_ms(200);
        }
        assert_answering(qa, qb);
    }
    ck_assert_double_eq(fleet_info(qa, "connected"), 0);
    ck_assert_double_gt(fleet_info(qa, "records_pending"), 0); // kept for the reconnect
    ck_assert_int_eq(frontier_count(qb), 0);                   // nothing could reach B yet
    ck_assert_int_gt(frontier_count(qa), 0);                   // A's own state has it
    // Redis back (empty: no persistence): A writes what it kept, B receives it.
    redis_start();
    double back = mono_ms();
    int n = 0;
    while ((n = frontier_count(qb)) <= 0 && mono_ms() - back < 15000) {
        assert_answering(qa, qb);
        td_sleep_ms(100);
    }
    ck_assert_msg(n > 0, "B did not receive A's records within 15 s of Redis coming back");
    fprintf(stderr, "fleet: B converged %.0f ms after Redis came back\n", mono_ms() - back);
    assert_fleet_note(sub, 2000);
    assert_same_records(qa, qb);
    ck_assert_double_eq(fleet_info(qa, "records_pending"), 0);
    ck_assert_double_gt(fleet_info(qa, "records_sent"), 0);
    ck_assert_double_eq(fleet_info(qa, "connected"), 1);
    sdc_close(sub);
    sdc_close(ca);
    sdc_close(cb);
    sdc_close(qa);
    sdc_close(qb);
}
END_TEST

/* job.done of the job just asked on `c`. */
static void wait_job_end(sdc_client *c, job_end *e) {
    sdc_note n;
    ck_assert_int_eq(td_wait_note(c, "job.done", 120000, &n), 0);
    td_str(n.params, "status", e->status, sizeof e->status);
    e->error[0] = e->from[0] = '\0';
    sp_get_str(n.params, "error", 0, e->error, sizeof e->error, NULL);
    sp_get_str(n.params, "results_from", 0, e->from, sizeof e->from, NULL);
    e->total = td_num(n.params, "total");
    sdc_note_free(&n);
}

/* The tune just asked on `c` (job `job`) waits for another host: its first job.progress names
 * that host in `waiting_for`, and so does job.status while it waits. */
static void assert_waiting_for(sdc_client *c, double job, const char *host) {
    sdc_note n;
    ck_assert_msg(td_wait_note(c, "job.progress", 10000, &n) == 0, "no job.progress in 10 s");
    char who[300] = "";
    ck_assert_msg(sp_map_get(n.params, "waiting_for") &&
                      strstr(td_str(n.params, "waiting_for", who, sizeof who), host),
                  "job %.0f's progress does not say it waits for %s ('%s')", job, host, who);
    sdc_note_free(&n);
    sdc_arg id[] = {SDC_ARG_NUM("job", job)};
    sdc_reply r;
    td_call_ok(c, "job.status", id, 1, &r);
    char status[32];
    ck_assert_str_eq(td_str(r.result, "status", status, sizeof status), "running");
    ck_assert_msg(strstr(td_str(r.result, "waiting_for", who, sizeof who), host),
                  "job.status while waiting: waiting_for '%s'", who);
    sdc_reply_free(&r);
}

/* One search of a model at a time in the fleet: B's tune while A searches waits for A (no cores
 * taken), then ends done with A's records, without a search of its own; B's next tune runs. */
START_TEST(fleet_tune_waits_for_the_searching_host) {
    if (!have_redis()) {
        fprintf(stderr, "fleet: skipped, redis-server is not installed (scripts/deps.sh)\n");
        return;
    }
    start_fleet_with("10"); // A's search lasts long enough to be found running
    sdc_client *ca = td_connect(&host_a), *cb = td_connect(&host_b);
    sdc_arg tune[] = {SDC_ARG_STR("model", "demo")};
    sdc_reply r;
    td_call_ok(ca, "tune", tune, 1, &r); // A takes the lease
    sdc_reply_free(&r);
    sdc_note first;
    ck_assert_int_eq(td_wait_note(ca, "job.progress", 60000, &first), 0);
    sdc_note_free(&first);
    td_call_ok(cb, "tune", tune, 1, &r); // B finds it taken and waits
    double job_b = td_num(r.result, "job");
    sdc_reply_free(&r);
    assert_waiting_for(cb, job_b, "Fleet A CPU");
    job_end a, b;
    wait_job_end(ca, &a);
    ck_assert_str_eq(a.status, "done");
    wait_job_end(cb, &b);
    ck_assert_str_eq(b.status, "done");
    ck_assert_msg(strstr(b.from, "Fleet A CPU"), "B's job: results_from '%s'", b.from);
    ck_assert_msg(b.total == 0, "B's job evaluated %g candidates itself", b.total);
    assert_same_records(ca, cb); // there when B's job ended, not later
    // The lease is free now: B's next tune searches here.
    td_call_ok(cb, "tune", tune, 1, &r);
    sdc_reply_free(&r);
    wait_job_end(cb, &b);
    ck_assert_msg(strcmp(b.status, "done") == 0 && !b.from[0] && b.total > 0,
                  "B's tune after A's: %s, results_from '%s', %g candidates", b.status, b.from,
                  b.total);
    sdc_close(ca);
    sdc_close(cb);
}
END_TEST

/* The host that searches dies: B's waiting tune takes the lease when it expires (deleted here,
 * as the expiry would after 60 s) and, with no records from it, searches itself. */
START_TEST(fleet_tune_runs_when_the_searching_host_is_gone) {
    if (!have_redis_cli()) return;
    start_fleet_with("10");
    sdc_client *ca = td_connect(&host_a), *cb = td_connect(&host_b);
    sdc_arg tune[] = {SDC_ARG_STR("model", "demo")};
    sdc_reply r;
    td_call_ok(ca, "tune", tune, 1, &r);
    sdc_reply_free(&r);
    sdc_note first;
    ck_assert_int_eq(td_wait_note(ca, "job.progress", 60000, &first), 0);
    sdc_note_free(&first);
    td_call_ok(cb, "tune", tune, 1, &r);
    double job_b = td_num(r.result, "job");
    sdc_reply_free(&r);
    assert_waiting_for(cb, job_b, "Fleet A CPU");
    sdc_close(ca);
    ck_assert_int_eq(td_stop(&host_a, SIGKILL), 128 + SIGKILL);
    char key[256], out[64];
    ck_assert_int_eq(redis_cli("--scan --pattern 'searchd:lease:*'", key, sizeof key), 0);
    char del[300];
    snprintf(del, sizeof del, "DEL '%s'", key);
    ck_assert_int_eq(redis_cli(del, out, sizeof out), 0);
    ck_assert_str_eq(out, "1");
    job_end b;
    wait_job_end(cb, &b);
    ck_assert_msg(strcmp(b.status, "done") == 0 && !b.from[0] && b.total > 0,
                  "B's tune once A was gone: %s, results_from '%s', %g candidates", b.status,
                  b.from, b.total);
    ck_assert_int_gt(frontier_count(cb), 0);
    sdc_close(cb);
}
END_TEST

/* The accuracy side of two frontiers is the same: schedules, accuracy, drop, drop_upper,
 * search_accuracy and FLOPs, bit for bit, and as many records. */
static void assert_same_frontier(sdc_client *ca, sdc_client *cc, const char *who) {
    sdc_reply ra, rc;
    sdc_arg m[] = {SDC_ARG_STR("model", "demo")};
    td_call_ok(ca, "schedule.frontier", m, 1, &ra);
    td_call_ok(cc, "schedule.frontier", m, 1, &rc);
    const msgpack_object_array *fa = &ra.result->via.array, *fc = &rc.result->via.array;
    ck_assert_uint_gt(fa->size, 0);
    ck_assert_msg(fa->size == fc->size, "%u records on A, %u %s", fa->size, fc->size, who);
    static const char *const keys[] = {"accuracy", "drop", "drop_upper", "search_accuracy",
                                       "flops_ratio"};
    for (uint32_t i = 0; i < fa->size; i++) {
        char sa[512];
        td_str(&fa->ptr[i], "schedule", sa, sizeof sa);
        const msgpack_object *match = NULL;
        for (uint32_t k = 0; k < fc->size && !match; k++) {
            char sc[512];
            if (strcmp(td_str(&fc->ptr[k], "schedule", sc, sizeof sc), sa) == 0)
                match = &fc->ptr[k];
        }
        ck_assert_msg(match != NULL, "A's record %s is not found %s", sa, who);
        for (size_t k = 0; k < sizeof keys / sizeof keys[0]; k++)
            ck_assert_msg(td_num(&fa->ptr[i], keys[k]) == td_num(match, keys[k]),
                          "%s: %s %.17g on A, %.17g %s", sa, keys[k], td_num(&fa->ptr[i], keys[k]),
                          td_num(match, keys[k]), who);
    }
    sdc_reply_free(&ra);
    sdc_reply_free(&rc);
}

/* C: a searchd without --fleet on a copy of A's state taken before A's search (the search
 * minimizes latency predicted by the model's profile, so the reference must have A's profile;
 * the same fingerprint keeps it from being measured again), tuned. */
static void copy_a_state(void) {
    ck_assert_msg(tc_copy_tree(host_a.state, host_c.state) == 0, "copying %s: %s", host_a.state,
                  strerror(errno));
}

static sdc_client *tune_alone(void) {
    const char *c[] = {"--fingerprint-override", "Fleet A CPU", NULL};
    td_start(&host_c, c);
    sdc_client *cc = td_connect(&host_c);
    sp_diag dg = {{0}};
    double t0 = mono_ms();
    ck_assert_msg(td_tune_wait(cc, "demo", &dg) == 0, "tune on C: %s", dg.msg);
    fprintf(stderr, "fleet: the search alone took %.1f s\n", (mono_ms() - t0) / 1e3);
    return cc;
}

/* Output of a redis-cli command on the test's Redis (first line) into `out`; 0 when it printed
 * something. */
static int redis_cli(const char *args, char *out, size_t cap) {
    char cmd[768];
    snprintf(cmd, sizeof cmd, "redis-cli -p %d %s 2>/dev/null", redis_port, args);
    FILE *p = popen(cmd, "r");
    ck_assert_ptr_nonnull(p);
    out[0] = '\0';
    int got = 0;
    for (char line[4096]; fgets(line, sizeof line, p);) {
        if (!got) snprintf(out, cap, "%.*s", (int)(cap - 1), line);
        got = 1;
    }
    pclose(p);
    out[strcspn(out, "\n")] = '\0';
    return got && out[0] ? 0 : -1;
}

/* The number a shell command prints. */
static int redis_cli_count(const char *cmd) {
    char out[64] = "";
    FILE *p = popen(cmd, "r");
    ck_assert_ptr_nonnull(p);
    int n = fgets(out, sizeof out, p) ? atoi(out) : 0;
    pclose(p);
    return n;
}

/* Waits until `n` workers (sd_dist.c names their connections searchd-worker:...) are blocked
 * on the work streams: then an item put on a stream reaches every one of them. */
static void wait_workers(int n) {
    char cmd[256];
    snprintf(cmd, sizeof cmd,
             "redis-cli -p %d CLIENT LIST | grep -c 'name=searchd-worker:.*cmd=xreadgroup'",
             redis_port);
    double t0 = mono_ms();
    int got = 0;
    while ((got = redis_cli_count(cmd)) < n && mono_ms() - t0 < 20000)
        td_sleep_ms(50);
    ck_assert_msg(got >= n, "%d of %d workers on the work streams after 20 s", got, n);
}

START_TEST(fleet_distributed_evaluation_same_frontier) {
    if (!have_redis_cli()) return;
    start_fleet();
    copy_a_state();
    wait_workers(2); // B's included: it takes items from A's first batch on
    sdc_client *ca = td_connect(&host_a), *cb = td_connect(&host_b);
    sp_diag dg = {{0}};
    double t0 = mono_ms();
    ck_assert_msg(td_tune_wait(ca, "demo", &dg) == 0, "tune on A: %s", dg.msg);
    double sent = fleet_info(ca, "items_sent"), by_b = fleet_info(cb, "items_evaluated");
    fprintf(stderr,
            "fleet: the search on A with B took %.1f s; %.0f items sent, B evaluated %.0f\n",
            (mono_ms() - t0) / 1e3, sent, by_b);
    ck_assert_double_gt(sent, 0);
    ck_assert_msg(by_b > 0, "B evaluated no item of A's search");
    sdc_client *cc = tune_alone();
    assert_same_frontier(ca, cc, "on C (no fleet)");
    sdc_close(ca);
    sdc_close(cb);
    sdc_close(cc);
}
END_TEST

/* The model's work stream in `key`: A's worker makes it, and its group, when it first sees the
 * model. */
static void work_stream(char *key, size_t cap) {
    double t0 = mono_ms();
    while (redis_cli("--scan --pattern 'searchd:work:*'", key, cap) != 0 && mono_ms() - t0 < 20000)
        td_sleep_ms(50);
    ck_assert_msg(key[0], "A made no work stream within 20 s");
}

/* A host that goes silent holding an item, as one killed mid-item: a consumer of A's work
 * stream that claims one item (blocked on the stream before A's search starts, so it gets one
 * of the first batch's) and never answers. Its pid; *key gets the stream. */
static pid_t silent_host(char *key, size_t cap) {
    work_stream(key, cap);
    double t0;
    char port[16];
    snprintf(port, sizeof port, "%d", redis_port);
    pid_t pid = fork();
    ck_assert_int_ge(pid, 0);
    if (pid == 0) {
        // One connection, named, so that CLIENT LIST tells it from A's worker.
        char script[512];
        snprintf(script, sizeof script,
                 "printf 'CLIENT SETNAME silent\\nXREADGROUP GROUP eval silent COUNT 1 BLOCK 0 "
                 "STREAMS %s >\\n' | redis-cli -p %s >/dev/null",
                 key, port);
        execl("/bin/sh", "sh", "-c", script, (char *)NULL);
        _exit(127);
    }
    // Blocked on the stream: its connection shows the command.
    char cmd[768];
    snprintf(cmd, sizeof cmd,
             "redis-cli -p %d CLIENT LIST | grep -c 'name=silent .*cmd=xreadgroup'", redis_port);
    int n = 0;
    for (t0 = mono_ms(); (n = redis_cli_count(cmd)) == 0 && mono_ms() - t0 < 20000;)
        td_sleep_ms(50);
    ck_assert_msg(n > 0, "the silent consumer did not show up in 20 s");
    return pid;
}

START_TEST(fleet_silent_host_items_reclaimed) {
    if (!have_redis_cli()) return;
    start_fleet();
    copy_a_state();
    char key[256];
    pid_t silent = silent_host(key, sizeof key);
    sdc_client *ca = td_connect(&host_a);
    sp_diag dg = {{0}};
    double t0 = mono_ms();
    ck_assert_msg(td_tune_wait(ca, "demo", &dg) == 0, "tune on A: %s", dg.msg);
    double reclaimed = fleet_info(ca, "items_reclaimed");
    fprintf(stderr,
            "fleet: the search on A with a silent host took %.1f s; %.0f item(s) taken back\n",
            (mono_ms() - t0) / 1e3, reclaimed);
    // An item A took back is one the silent consumer held (B's worker answers what it takes).
    ck_assert_double_ge(reclaimed, 1);
    kill(silent, SIGKILL); // it has its item and would have left; never wait on it
    waitpid(silent, NULL, 0);
    sdc_client *cc = tune_alone();
    assert_same_frontier(ca, cc, "on C (no fleet)");
    // A's items are gone from the stream.
    char len[64];
    char args[300];
    snprintf(args, sizeof args, "XLEN %s", key);
    ck_assert_int_eq(redis_cli(args, len, sizeof len), 0);
    ck_assert_str_eq(len, "0");
    sdc_close(ca);
    sdc_close(cc);
}
END_TEST

/* Items nobody will collect are dropped, not evaluated: one put on the stream by an originator
 * long gone (its id is from 1970, older than any live batch) and one that is not an item. Both
 * leave the stream; no host evaluates them. */
START_TEST(fleet_orphan_items_dropped) {
    if (!have_redis_cli()) return;
    start_fleet();
    char key[256], out[64], args[600];
    work_stream(key, sizeof key);
    snprintf(args, sizeof args,
             "XADD %s 1000-1 reply searchd:reply:gone chunk 0 sched 'attn:1,1,1,1' index abcd "
             "check 0",
             key);
    ck_assert_int_eq(redis_cli(args, out, sizeof out), 0);
    snprintf(args, sizeof args, "XADD %s '*' not an-item", key);
    ck_assert_int_eq(redis_cli(args, out, sizeof out), 0);
    sdc_client *ca = td_connect(&host_a), *cb = td_connect(&host_b);
    double t0 = mono_ms(), dropped = 0;
    while ((dropped = fleet_info(ca, "items_dropped") + fleet_info(cb, "items_dropped")) < 2 &&
           mono_ms() - t0 < 10000)
        td_sleep_ms(50);
    ck_assert_msg(dropped == 2, "%g item(s) dropped in 10 s, not 2", dropped);
    snprintf(args, sizeof args, "XLEN %s", key);
    ck_assert_int_eq(redis_cli(args, out, sizeof out), 0);
    ck_assert_str_eq(out, "0");
    ck_assert_double_eq(fleet_info(ca, "items_evaluated") + fleet_info(cb, "items_evaluated"), 0);
    sdc_close(ca);
    sdc_close(cb);
}
END_TEST

Suite *fleet_suite(void) {
    Suite *s = suite_create("fleet");
    TCase *tc = tcase_create("two hosts, one redis");
    tcase_set_timeout(tc, 300);
    tcase_add_checked_fixture(tc, fleet_setup, fleet_teardown);
    tcase_add_test(tc, fleet_tune_on_a_serves_on_b);
    tcase_add_test(tc, fleet_records_reach_a_restarted_host);
    tcase_add_test(tc, fleet_width_records_travel_with_their_profile);
    tcase_add_test(tc, fleet_redis_restart_converges);
    tcase_add_test(tc, fleet_tune_waits_for_the_searching_host);
    tcase_add_test(tc, fleet_tune_runs_when_the_searching_host_is_gone);
    suite_add_tcase(s, tc);
    TCase *dist = tcase_create("distributed evaluation");
    tcase_set_timeout(dist, 600); // three searchd, two of them searching: slow under ASan
    tcase_add_checked_fixture(dist, fleet_setup, fleet_teardown);
    tcase_add_test(dist, fleet_distributed_evaluation_same_frontier);
    tcase_add_test(dist, fleet_silent_host_items_reclaimed);
    tcase_add_test(dist, fleet_orphan_items_dropped);
    suite_add_tcase(s, dist);
    return s;
}
