/* sc_store: atomic framed files, damage detection, full disk, and the JSON forms. */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include "schedules/sc_error.h"
#include "schedules/sc_store.h"
#include "test_util.h"

static char path[400];

static void setup(void) {
    td_init(&td_cur, 0);
    snprintf(path, sizeof path, "%s/x.state", td_cur.dir);
}

static void patch(long off, int whence, const void *bytes, size_t n) {
    int fd = open(path, O_RDWR);
    ck_assert_int_ge(fd, 0);
    ck_assert_int_ge(lseek(fd, off, whence), 0);
    ck_assert_int_eq(write(fd, bytes, n), (ssize_t)n);
    close(fd);
}

static int read_back(en_diag *diag) {
    void *data = NULL;
    size_t len = 0;
    int rc = sc_store_read(path, &data, &len, diag);
    free(data);
    return rc;
}

START_TEST(round_trip) {
    const char *text = "{\"hello\": 1}";
    ck_assert_int_eq(sc_store_write(path, text, strlen(text), NULL), 0);
    void *data;
    size_t len;
    ck_assert_int_eq(sc_store_read(path, &data, &len, NULL), 0);
    ck_assert_uint_eq(len, strlen(text));
    ck_assert_str_eq(data, text);
    free(data);
    // Overwrite with a shorter payload: no temp file left behind.
    ck_assert_int_eq(sc_store_write(path, "{}", 2, NULL), 0);
    char cmd[500];
    snprintf(cmd, sizeof cmd, "test $(ls %s | wc -l) -eq 1", td_cur.dir);
    ck_assert_int_eq(system(cmd), 0);
}
END_TEST

START_TEST(damage_detected) {
    en_diag d;
    const char *text = "{\"frontier\": [1, 2, 3]}";
    ck_assert_int_eq(sc_store_write(path, text, strlen(text), NULL), 0);
    patch(-3, SEEK_END, "X", 1); // one flipped byte in the payload
    ck_assert_int_eq(read_back(&d), SC_ECHECKSUM);
    ck_assert_ptr_nonnull(strstr(d.msg, path));

    ck_assert_int_eq(sc_store_write(path, text, strlen(text), NULL), 0);
    ck_assert_int_eq(truncate(path, 40), 0);
    ck_assert_int_eq(read_back(&d), SC_ECHECKSUM);
    ck_assert_ptr_nonnull(strstr(d.msg, "truncated"));
    ck_assert_int_eq(truncate(path, 5), 0);
    ck_assert_int_eq(read_back(&d), SC_ECHECKSUM);

    ck_assert_int_eq(sc_store_write(path, text, strlen(text), NULL), 0);
    patch(0, SEEK_SET, "X", 1);
    ck_assert_int_eq(read_back(&d), SC_EMAGIC);

    ck_assert_int_eq(sc_store_write(path, text, strlen(text), NULL), 0);
    patch(8, SEEK_SET, "\x09", 1); // version 9
    ck_assert_int_eq(read_back(&d), SC_EVERSION);
    ck_assert_ptr_nonnull(strstr(d.msg, "version 9"));

    ck_assert_int_eq(read_back(&d), SC_EVERSION);
    ck_assert_int_eq(sc_store_set_aside(path, &d), 0);
    ck_assert_int_eq(access(path, F_OK), -1);
    ck_assert_ptr_nonnull(strstr(d.msg, ".damaged-"));
    ck_assert_int_eq(read_back(&d), -ENOENT);
}
END_TEST

START_TEST(full_disk_keeps_old_file) {
    const char *old = "the old contents";
    ck_assert_int_eq(sc_store_write(path, old, strlen(old), NULL), 0);
    // RLIMIT_FSIZE makes write() fail with EFBIG, as a full disk fails with ENOSPC.
    signal(SIGXFSZ, SIG_IGN);
    struct rlimit saved, small;
    getrlimit(RLIMIT_FSIZE, &saved);
    small = saved;
    small.rlim_cur = 4096;
    ck_assert_int_eq(setrlimit(RLIMIT_FSIZE, &small), 0);
    char *big = calloc(1, 100000);
    memset(big, 'a', 99999);
    en_diag d;
    int rc = sc_store_write(path, big, 99999, &d);
    setrlimit(RLIMIT_FSIZE, &saved);
    free(big);
    ck_assert_int_eq(rc, -EFBIG);
    ck_assert_ptr_nonnull(strstr(d.msg, "previous version is kept"));
    void *data;
    size_t len;
    ck_assert_int_eq(sc_store_read(path, &data, &len, NULL), 0);
    ck_assert_str_eq(data, old);
    free(data);
    char cmd[500];
    snprintf(cmd, sizeof cmd, "test $(ls %s | wc -l) -eq 1", td_cur.dir); // temp file removed
    ck_assert_int_eq(system(cmd), 0);
}
END_TEST

static void make_frontier(sc_frontier *f) {
    f->count = 2;
    f->rec = calloc(2, sizeof *f->rec);
    ck_assert_int_eq(sc_schedule_parse("attn:1,0.8,0.5,0.3", 4, &f->rec[0].schedule, NULL), 0);
    ck_assert_int_eq(sc_schedule_parse("cls:1,1,0.9,0.9", 4, &f->rec[1].schedule, NULL), 0);
    double flops[] = {0.4, 0.9}, acc[] = {0.8, 0.84};
    for (int i = 0; i < 2; i++) {
        sc_record *r = &f->rec[i];
        r->flops_ratio = flops[i];
        r->latency_ms = 1.5 + i;
        r->accuracy = acc[i];
        r->baseline_accuracy = 0.85;
        r->drop = r->baseline_accuracy - r->accuracy;
        r->drop_upper = r->drop + 0.02;
        r->search_accuracy = 0.86;
    }
}

START_TEST(frontier_json) {
    sc_frontier f = {0}, g = {0};
    make_frontier(&f);
    json_t *j = sc_frontier_to_json(&f);
    en_diag d;
    ck_assert_int_eq(sc_frontier_from_json(j, &g, &d), 0);
    ck_assert_int_eq(g.count, 2);
    ck_assert(g.rec[1].schedule.metric == EN_METRIC_CLS);
    ck_assert(g.rec[0].latency_ms == 1.5);
    sc_frontier_free(&g);
    // Each inconsistency is refused with the field named.
    json_t *bad = json_deep_copy(j);
    json_object_set_new(json_array_get(bad, 0), "accuracy", json_real(1.5));
    ck_assert_int_eq(sc_frontier_from_json(bad, &g, &d), SC_ECORRUPT);
    ck_assert_ptr_nonnull(strstr(d.msg, "accuracy"));
    json_decref(bad);
    bad = json_deep_copy(j);
    json_object_set_new(json_array_get(bad, 1), "metric", json_string("attn"));
    ck_assert_int_eq(sc_frontier_from_json(bad, &g, &d), SC_ECORRUPT);
    json_decref(bad);
    bad = json_deep_copy(j);
    json_object_set_new(json_array_get(bad, 0), "schedule", json_string("attn:0.5,1"));
    ck_assert_int_eq(sc_frontier_from_json(bad, &g, &d), SC_ECORRUPT);
    json_decref(bad);
    bad = json_deep_copy(j);
    json_array_append(bad, json_array_get(bad, 0)); // not sorted cheapest first
    ck_assert_int_eq(sc_frontier_from_json(bad, &g, &d), SC_ECORRUPT);
    json_decref(bad);
    json_decref(j);
    sc_frontier_free(&f);
}
END_TEST

START_TEST(latency_json) {
    sc_latency_model lm = {0}, back;
    snprintf(lm.hw.cpu, sizeof lm.hw.cpu, "Test CPU");
    snprintf(lm.hw.simd, sizeof lm.hw.simd, "avx2");
    snprintf(lm.hw.blas, sizeof lm.hw.blas, "OpenBLAS");
    lm.hw.cores = 2;
    lm.hw.threads = 1;
    lm.layer[1] = 0.01;
    lm.last[1] = 0.004;
    lm.fixed_ms = 0.2;
    lm.probe_ms = 3.5;
    json_t *j = sc_latency_to_json(&lm);
    ck_assert_int_eq(sc_latency_from_json(j, &back, NULL), 0);
    ck_assert(sc_hw_equal(&lm.hw, &back.hw));
    ck_assert(back.layer[1] == 0.01);
    ck_assert(back.last[1] == 0.004);
    ck_assert(back.probe_ms == 3.5);
    // a model saved before the probe: its drift is unknown, not an error
    json_object_del(j, "probe_ms");
    ck_assert_int_eq(sc_latency_from_json(j, &back, NULL), 0);
    ck_assert(back.probe_ms == 0);
    json_object_set_new(j, "probe_ms", json_string("fast"));
    ck_assert_int_eq(sc_latency_from_json(j, &back, NULL), SC_ECORRUPT);
    json_object_del(j, "probe_ms");
    // a model saved before the last layer had its own terms: it costs what the others do
    json_object_del(j, "last");
    ck_assert_int_eq(sc_latency_from_json(j, &back, NULL), 0);
    ck_assert(back.last[1] == 0.01);
    json_object_del(j, "layer");
    en_diag d;
    ck_assert_int_eq(sc_latency_from_json(j, &back, &d), SC_ECORRUPT);
    ck_assert_ptr_nonnull(strstr(d.msg, "layer"));
    json_decref(j);
}
END_TEST

Suite *store_suite(void) {
    Suite *s = suite_create("store");
    TCase *t1 = tcase_create("store");
    tcase_add_checked_fixture(t1, setup, td_teardown);
    tcase_add_test(t1, round_trip);
    tcase_add_test(t1, damage_detected);
    tcase_add_test(t1, full_disk_keeps_old_file);
    tcase_add_test(t1, frontier_json);
    tcase_add_test(t1, latency_json);
    suite_add_tcase(s, t1);
    return s;
}
