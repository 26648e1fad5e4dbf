/* Every method against a real searchd, and bad input: malformed, oversized and too deep
 * messages, wrong methods and arguments, bad model and data files, vanishing clients, hundreds
 * of connections, and the caps on queued jobs, queued reply bytes and connections. */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "client/sdc_apply.h"
#include "engine/en_flops.h"
#include "schedules/sc_error.h"
#include "schedules/sc_latency.h"
#include "schedules/sc_schedule.h"
#include "searchd/sd_error.h"
#include "test_util.h"

START_TEST(ping_info_and_errors) {
    sdc_client *c = td_connect(&td_cur);
    sdc_reply r;
    td_call_ok(c, "ping", NULL, 0, &r);
    ck_assert(sp_obj_streq(r.result, "pong"));
    sdc_reply_free(&r);
    td_call_ok(c, "info", NULL, 0, &r);
    char buf[300];
    ck_assert_str_eq(td_str(r.result, "version", buf, sizeof buf), SEARCHD_VERSION);
    ck_assert_ptr_nonnull(sp_map_get(r.result, "fingerprint"));
    ck_assert_int_eq(sp_map_get(r.result, "models")->via.array.size, 0);
    sdc_reply_free(&r);
    td_call_ok(c, "model.list", NULL, 0, &r);
    ck_assert_int_eq(r.result->via.array.size, 0);
    sdc_reply_free(&r);

    char msg[512];
    td_call_err(c, "no.such.method", NULL, 0, SP_EMETHOD, msg, sizeof msg);
    ck_assert_ptr_nonnull(strstr(msg, "schedule.get")); // lists what exists
    sdc_arg num_model[] = {SDC_ARG_NUM("model", 5)};
    td_call_err(c, "schedule.get", num_model, 1, SP_ETYPE, msg, sizeof msg);
    ck_assert_ptr_nonnull(strstr(msg, "model"));
    sdc_arg typo[] = {SDC_ARG_STR("model", "x"), SDC_ARG_NUM("max-drop", 0.01)};
    td_call_err(c, "schedule.get", typo, 2, SP_EPARAMS, msg, sizeof msg);
    ck_assert_ptr_nonnull(strstr(msg, "max_drop"));
    sdc_arg nomodel[] = {SDC_ARG_STR("model", "nope"), SDC_ARG_NUM("max_drop", 0.01)};
    td_call_err(c, "schedule.get", nomodel, 2, SD_ENOMODEL, NULL, 0);
    sdc_arg job[] = {SDC_ARG_NUM("job", 999)};
    td_call_err(c, "job.status", job, 1, SD_ENOJOB, NULL, 0);
    sdc_arg rel[] = {SDC_ARG_STR("path", "models/x"), SDC_ARG_STR("data", "/x.tsv")};
    td_call_err(c, "model.add", rel, 2, SP_EPARAMS, msg, sizeof msg);
    ck_assert_ptr_nonnull(strstr(msg, "absolute"));
    sdc_arg missing[] = {SDC_ARG_STR("path", "/nonexistent/model"), SDC_ARG_STR("data", "/x")};
    sdc_reply e;
    sp_diag dg;
    ck_assert_int_lt(sdc_call(c, "model.add", missing, 2, 30000, &e, &dg), 0);
    ck_assert_ptr_nonnull(strstr(dg.msg, "/nonexistent/model"));
    sdc_reply_free(&e);
    // params that are not an array: an error with the msgid, and the connection stays.
    tc_msg m;
    tc_msg_init(&m);
    tc_msg_head(&m, 0x33, "ping");
    msgpack_pack_map(&m.pk, 0);
    td_send(c, &m);
    tc_msg_free(&m);
    ck_assert_int_eq(sdc_wait_reply(c, 0x33, 5000, &e, &dg), SP_EENVELOPE);
    sdc_reply_free(&e);
    td_call_ok(c, "ping", NULL, 0, &r);
    sdc_reply_free(&r);
    sdc_close(c);
}
END_TEST

START_TEST(malformed_closes) {
    sdc_client *c = td_connect(&td_cur);
    const uint8_t bad[] = {0xc1};
    sdc_reply r;
    sp_diag dg;
    ck_assert_int_eq(sdc_send_raw(c, bad, 1, NULL), 0);
    ck_assert_int_eq(sdc_wait_reply(c, 0, 5000, &r, &dg), SP_EMALFORMED);
    sdc_reply_free(&r);
    ck_assert_int_eq(sdc_call(c, "ping", NULL, 0, 5000, &r, &dg), SP_ECLOSED);
    sdc_reply_free(&r);
    sdc_close(c);

    // Over the 1 MiB cap: refused from the header, with the msgid, then closed.
    c = td_connect(&td_cur);
    tc_msg big;
    tc_msg_init(&big);
    tc_msg_request(&big, 7, "ping", 1);
    const uint8_t str32_2mib[] = {0xdb, 0x00, 0x20, 0x00, 0x00}; // a str32 header: 2 MiB follow
    tc_msg_bytes(&big, str32_2mib, sizeof str32_2mib);
    td_send(c, &big);
    ck_assert_int_eq(sdc_wait_reply(c, 7, 5000, &r, &dg), SP_ETOOBIG);
    sdc_reply_free(&r);
    ck_assert_int_eq(sdc_call(c, "ping", NULL, 0, 5000, &r, &dg), SP_ECLOSED);
    sdc_reply_free(&r);
    sdc_close(c);

    // Nested 40 deep.
    c = td_connect(&td_cur);
    tc_msg deep;
    tc_msg_init(&deep);
    tc_msg_request(&deep, 8, "ping", 1); // [[[...[nil]...]]], 40 arrays in all
    for (int i = 1; i < 40; i++)
        msgpack_pack_array(&deep.pk, 1);
    msgpack_pack_nil(&deep.pk);
    td_send(c, &deep);
    tc_msg_free(&deep);
    ck_assert_int_eq(sdc_wait_reply(c, 8, 5000, &r, &dg), SP_ETOODEEP);
    sdc_reply_free(&r);
    sdc_close(c);

    // Clients that vanish: half a message, and a slow request whose reply has nowhere to go.
    c = td_connect(&td_cur);
    ck_assert_int_eq(sdc_send_raw(c, big.sb.data, 5, NULL), 0);
    tc_msg_free(&big);
    sdc_close(c);
    c = td_connect(&td_cur);
    const char *const add[] = {"path", tc_demo_model(), "data", td_data, NULL};
    tc_msg m;
    tc_msg_init(&m);
    tc_msg_request_kv(&m, 1, "model.add", add);
    td_send(c, &m);
    tc_msg_free(&m);
    // A ping on the same connection is answered after model.add was dispatched to the pool:
    // the client then leaves while the model loads.
    td_call_ok(c, "ping", NULL, 0, &r);
    sdc_reply_free(&r);
    sdc_close(c);

    // The daemon keeps serving while the model loads, and the add completes for nobody.
    c = td_connect(&td_cur);
    int models = 0;
    for (int i = 0; i < 600 && models == 0; i++) {
        td_call_ok(c, "ping", NULL, 0, &r);
        sdc_reply_free(&r);
        td_call_ok(c, "model.list", NULL, 0, &r);
        models = (int)r.result->via.array.size;
        sdc_reply_free(&r);
        if (!models) usleep(50000);
    }
    ck_assert_int_eq(models, 1);
    sdc_close(c);
}
END_TEST

/* model.add that fails in the pool: an error that names the file and says what is wrong, no
 * model registered, and the daemon keeps serving. */
static void add_fails(sdc_client *c, const char *path, const char *data, const char *expect) {
    td_add_refused(c, path, data, expect);
    sdc_reply r;
    td_call_ok(c, "ping", NULL, 0, &r);
    sdc_reply_free(&r);
    td_call_ok(c, "model.list", NULL, 0, &r);
    ck_assert_int_eq(r.result->via.array.size, 0);
    sdc_reply_free(&r);
}

START_TEST(bad_model_files) {
    sdc_client *c = td_connect(&td_cur);
    const char *good = tc_demo_model();
    char model[400], weights[500], cmd[1200], data[400];
    // Weights cut in the middle: the loader checks the tensors' offsets against the file size.
    snprintf(model, sizeof model, "%s/truncated", td_cur.dir);
    td_copy_model(model);
    snprintf(weights, sizeof weights, "%s/model.safetensors", model);
    snprintf(cmd, sizeof cmd, "truncate -s 2000000 %s", weights);
    ck_assert_int_eq(system(cmd), 0);
    add_fails(c, model, td_data, "model.safetensors");
    // Only the header: 8 bytes of length and a few of JSON.
    snprintf(cmd, sizeof cmd, "truncate -s 20 %s", weights);
    ck_assert_int_eq(system(cmd), 0);
    add_fails(c, model, td_data, "model.safetensors");
    // Empty.
    snprintf(cmd, sizeof cmd, "truncate -s 0 %s", weights);
    ck_assert_int_eq(system(cmd), 0);
    add_fails(c, model, td_data, "model.safetensors");
    // Data files that are not data sets: a good model, each names the file and the line.
    snprintf(data, sizeof data, "%s/bad.tsv", td_cur.dir);
    tc_write_text(data, "this is not a data set\n");
    add_fails(c, good, data, "bad.tsv");
    tc_write_text(data, "sentence\tlabel\na fine film\t7\n");
    add_fails(c, good, data, "bad.tsv:2");
    tc_write_text(data, "sentence\tlabel\n");
    add_fails(c, good, data, "no examples");
    tc_write_text(data, "");
    add_fails(c, good, data, "bad.tsv");
    snprintf(data, sizeof data, "%s/absent.tsv", td_cur.dir);
    add_fails(c, good, data, "absent.tsv");
    // A good add still works afterwards.
    sdc_arg ok[] = {SDC_ARG_STR("path", good), SDC_ARG_STR("data", td_data)};
    sdc_reply r;
    td_call_ok(c, "model.add", ok, 2, &r);
    sdc_reply_free(&r);
    sdc_close(c);
}
END_TEST

START_TEST(many_connections) {
    enum { N = 300 };
    sdc_client **cs = calloc(N, sizeof *cs);
    for (int i = 0; i < N; i++)
        cs[i] = td_connect(&td_cur);
    // All send first, then all read: the daemon serves them concurrently.
    tc_msg ping;
    tc_msg_init(&ping);
    tc_msg_request(&ping, 5, "ping", 0);
    for (int i = 0; i < N; i++)
        td_send(cs[i], &ping);
    tc_msg_free(&ping);
    for (int i = 0; i < N; i++) {
        sdc_reply r;
        ck_assert_int_eq(sdc_wait_reply(cs[i], 5, 10000, &r, NULL), 0);
        ck_assert(sp_obj_streq(r.result, "pong"));
        sdc_reply_free(&r);
    }
    sdc_reply r;
    td_call_ok(cs[0], "info", NULL, 0, &r);
    ck_assert_int_ge((int)td_num(r.result, "connections"), N);
    sdc_reply_free(&r);
    for (int i = 0; i < N; i++)
        sdc_close(cs[i]);
    free(cs);
}
END_TEST

START_TEST(queries_on_a_tuned_model) {
    sdc_client *c = td_connect(&td_cur);
    sdc_reply r;
    sdc_arg m[] = {SDC_ARG_STR("model", td_model_id)};
    td_call_ok(c, "schedule.frontier", m, 1, &r);
    int n = (int)r.result->via.array.size;
    ck_assert_int_ge(n, 1);
    double min_upper = 1e9, min_flops = 1e9, prev = -1;
    for (int i = 0; i < n; i++) {
        const msgpack_object *e = &r.result->via.array.ptr[i];
        double f = td_num(e, "flops_ratio");
        ck_assert(f >= prev); // cheapest first
        prev = f;
        if (td_num(e, "drop_upper") < min_upper) min_upper = td_num(e, "drop_upper");
        if (f < min_flops) min_flops = f;
        char buf[600];
        td_str(e, "schedule", buf, sizeof buf);
        td_str(e, "hardware", buf, sizeof buf);
        ck_assert_str_eq(td_str(e, "model", buf, sizeof buf), td_model_id);
        ck_assert(td_num(e, "latency_ms") > 0);
        td_num(e, "accuracy");
        td_num(e, "baseline_accuracy");
        td_num(e, "drop");
        ck_assert_int_eq(sp_map_get(e, "ratios")->via.array.size, 4);
    }
    sdc_reply_free(&r);

    sdc_arg by_drop[] = {SDC_ARG_STR("model", "demo"), SDC_ARG_NUM("max_drop", min_upper + 1e-6)};
    td_call_ok(c, "schedule.get", by_drop, 2, &r);
    ck_assert(td_num(r.result, "drop_upper") < min_upper + 1e-6);
    sdc_reply_free(&r);
    sdc_arg by_drop_flops[] = {SDC_ARG_STR("model", "demo"),
                               SDC_ARG_NUM("max_drop", min_upper + 1e-6),
                               SDC_ARG_STR("minimize", "flops")};
    td_call_ok(c, "schedule.get", by_drop_flops, 3, &r);
    sdc_reply_free(&r);
    sdc_arg by_flops[] = {SDC_ARG_STR("model", td_model_id), SDC_ARG_NUM("max_flops", 1)};
    td_call_ok(c, "schedule.get", by_flops, 2, &r);
    ck_assert(td_num(r.result, "flops_ratio") <= 1);
    sdc_reply_free(&r);
    sdc_arg by_lat[] = {SDC_ARG_STR("model", td_model_id), SDC_ARG_NUM("max_latency_ms", 1000)};
    td_call_ok(c, "schedule.get", by_lat, 2, &r);
    sdc_reply_free(&r);

    char msg[512];
    sdc_arg none[] = {SDC_ARG_STR("model", td_model_id), SDC_ARG_NUM("max_flops", min_flops * 0.5)};
    td_call_err(c, "schedule.get", none, 2, SC_ENOMATCH, msg, sizeof msg);
    ck_assert_ptr_nonnull(strstr(msg, "closest"));
    sdc_arg two[] = {SDC_ARG_STR("model", td_model_id), SDC_ARG_NUM("max_flops", 0.5),
                     SDC_ARG_NUM("max_drop", 0.01)};
    td_call_err(c, "schedule.get", two, 3, SP_EPARAMS, NULL, 0);
    sdc_arg pct[] = {SDC_ARG_STR("model", td_model_id), SDC_ARG_NUM("max_drop", 5)};
    td_call_err(c, "schedule.get", pct, 2, SP_EPARAMS, msg, sizeof msg);
    ck_assert_ptr_nonnull(strstr(msg, "0.01"));

    td_call_ok(c, "profile", m, 1, &r);
    ck_assert_ptr_nonnull(sp_map_get(r.result, "fingerprint"));
    ck_assert_int_eq(sp_map_get(r.result, "layer")->via.array.size, SC_LAT_TERMS);
    ck_assert(sp_map_get(r.result, "current")->via.boolean);
    sdc_reply_free(&r);
    sdc_close(c);
}
END_TEST

/* tune with width: narrowed records carry their kept heads and neurons, the client library
 * builds that network (its FLOPs are the schedule's), and it all survives a restart. */
START_TEST(width_travels) {
    sdc_client *c = td_connect(&td_cur);
    sdc_reply r;
    sp_diag dg;
    sdc_arg tune[] = {SDC_ARG_STR("model", td_model_id), SDC_ARG_BOOL("width", 1)};
    td_call_ok(c, "tune", tune, 2, &r);
    sdc_reply_free(&r);
    sdc_note n;
    for (int done = 0; !done;) {
        ck_assert_int_eq(td_wait_note(c, "job.done", 600000, &n), 0);
        char status[32];
        ck_assert_str_eq(td_str(n.params, "status", status, sizeof status), "done");
        sdc_note_free(&n);
        done = 1;
    }
    (void)dg;
    en_model *m = NULL;
    ck_assert_int_eq(en_model_load(tc_demo_model(), &m, NULL), 0);
    sdc_arg mm[] = {SDC_ARG_STR("model", td_model_id)};
    td_call_ok(c, "schedule.frontier", mm, 1, &r);
    int narrowed = 0;
    for (uint32_t i = 0; i < r.result->via.array.size; i++) {
        const msgpack_object *e = &r.result->via.array.ptr[i];
        char text[SC_SCHEDULE_TEXT_MAX], err[300];
        sc_schedule s;
        ck_assert_int_eq(
            sc_schedule_parse(td_str(e, "schedule", text, sizeof text), m->cfg.layers, &s, NULL),
            0);
        en_model *nm = NULL;
        ck_assert_msg(sdc_apply_width(e, m, &nm, err, sizeof err) == 0, "%s", err);
        ck_assert_int_eq(nm != NULL, sc_schedule_has_width(&s));
        ck_assert(td_num(e, "tokens_flops_ratio") >= td_num(e, "flops_ratio") - 1e-12);
        if (!nm) continue;
        narrowed++;
        for (int len = 5; len <= 40; len += 7) // the network built has the schedule's FLOPs
            ck_assert_double_eq_tol(en_flops_model_sequence(nm, len, s.ratios),
                                    sc_schedule_flops(&m->cfg, &s, len), 1e-6);
        en_model_free(nm);
    }
    sdc_reply_free(&r);
    ck_assert_int_gt(narrowed, 0);
    /* a width that does not fit the model is refused with a reason */
    tc_msg w;
    tc_msg_init(&w);
    msgpack_pack_map(&w.pk, 1);
    msgpack_pack_str_with_body(&w.pk, "width", 5);
    msgpack_pack_map(&w.pk, 1);
    msgpack_pack_str_with_body(&w.pk, "heads", 5);
    msgpack_pack_array(&w.pk, 0);
    msgpack_unpacked up;
    msgpack_unpacked_init(&up);
    ck_assert_int_eq(msgpack_unpack_next(&up, w.sb.data, w.sb.size, NULL), MSGPACK_UNPACK_SUCCESS);
    en_model *nm = NULL;
    char err[300];
    ck_assert_int_eq(sdc_apply_width(&up.data, m, &nm, err, sizeof err), EN_ESCHEDULE);
    ck_assert_ptr_nonnull(strstr(err, "layer 0"));
    msgpack_unpacked_destroy(&up);
    tc_msg_free(&w);
    /* the frontier and its width profile survive a restart */
    char *before = td_frontier_text(c, td_model_id);
    sdc_close(c);
    ck_assert_int_eq(td_stop(&td_cur, SIGTERM), 0);
    td_start(&td_cur, NULL);
    c = td_connect(&td_cur);
    char *after = td_frontier_text(c, td_model_id);
    size_t at = 0; // where they part (the texts are too long for Check's message)
    while (before[at] && before[at] == after[at])
        at++;
    ck_assert_msg(before[at] == after[at],
                  "frontiers differ after a restart at byte %zu: '%.80s' "
                  "vs '%.80s'",
                  at, before + (at > 40 ? at - 40 : 0), after + (at > 40 ? at - 40 : 0));
    ck_assert_ptr_nonnull(strstr(after, "neuron_scale"));
    free(before);
    free(after);
    sdc_close(c);
    en_model_free(m);
}
END_TEST

START_TEST(tune_progress_subscribe_cancel) {
    sdc_client *c = td_connect(&td_cur), *w = td_connect(&td_cur);
    sdc_reply r;
    sdc_arg m[] = {SDC_ARG_STR("model", td_model_id)};
    td_call_ok(w, "subscribe", m, 1, &r);
    sdc_reply_free(&r);
    sdc_arg tune[] = {SDC_ARG_STR("model", td_model_id), SDC_ARG_NUM("max_flops", 0.5)};
    td_call_ok(c, "tune", tune, 2, &r);
    double job = td_num(r.result, "job");
    sdc_reply_free(&r);
    // A second job waits behind the first (--jobs 1) and is cancelled before it starts.
    td_call_ok(c, "tune", m, 1, &r);
    double job2 = td_num(r.result, "job");
    sdc_reply_free(&r);
    sdc_arg j2[] = {SDC_ARG_NUM("job", job2)};
    td_call_ok(c, "job.status", j2, 1, &r);
    char buf[64];
    ck_assert_str_eq(td_str(r.result, "status", buf, sizeof buf), "queued");
    sdc_reply_free(&r);
    td_call_ok(c, "job.cancel", j2, 1, &r);
    ck_assert_str_eq(td_str(r.result, "status", buf, sizeof buf), "cancelled");
    sdc_reply_free(&r);

    sdc_note n;
    int progress = 0;
    for (;;) {
        ck_assert_int_eq(sdc_next_notification(c, 120000, &n, NULL), 0);
        if (strcmp(n.method, "job.progress") == 0 && td_num(n.params, "job") == job) {
            ck_assert(td_num(n.params, "done") <= td_num(n.params, "total"));
            td_num(n.params, "best");
            progress++;
        }
        int done = strcmp(n.method, "job.done") == 0 && td_num(n.params, "job") == job;
        if (done) ck_assert_str_eq(td_str(n.params, "status", buf, sizeof buf), "done");
        sdc_note_free(&n);
        if (done) break;
    }
    ck_assert_int_gt(progress, 0);
    ck_assert_int_eq(td_wait_note(w, "schedule.updated", 10000, &n), 0);
    ck_assert_str_eq(td_str(n.params, "model", buf, sizeof buf), td_model_id);
    sdc_note_free(&n);
    sdc_arg j1[] = {SDC_ARG_NUM("job", job)};
    td_call_ok(c, "job.status", j1, 1, &r);
    ck_assert_str_eq(td_str(r.result, "status", buf, sizeof buf), "done");
    sdc_reply_free(&r);
    td_call_err(c, "job.cancel", j1, 1, SD_EJOBDONE, NULL, 0);
    // Queries are answered while a search runs.
    td_call_ok(c, "tune", m, 1, &r);
    double job3 = td_num(r.result, "job");
    sdc_reply_free(&r);
    td_call_ok(w, "info", NULL, 0, &r); // info too, with the job counted
    ck_assert_int_eq((int)td_num(r.result, "jobs_running"), 1);
    ck_assert_int_eq((int)td_num(r.result, "jobs_queued"), 0);
    ck_assert_int_eq(sp_map_get(r.result, "models")->via.array.size, 1);
    sdc_reply_free(&r);
    sdc_arg q[] = {SDC_ARG_STR("model", td_model_id), SDC_ARG_NUM("max_flops", 1)};
    for (int i = 0; i < 100; i++) {
        td_call_ok(w, "schedule.get", q, 2, &r);
        sdc_reply_free(&r);
    }
    sdc_arg j3[] = {SDC_ARG_NUM("job", job3)};
    td_call_ok(c, "job.cancel", j3, 1, &r);
    sdc_reply_free(&r);
    ck_assert_int_eq(td_wait_note(c, "job.done", 60000, &n), 0);
    ck_assert_str_eq(td_str(n.params, "status", buf, sizeof buf), "cancelled");
    sdc_note_free(&n);
    td_call_ok(w, "unsubscribe", m, 1, &r);
    sdc_reply_free(&r);
    sdc_close(w);
    sdc_close(c);
}
END_TEST

START_TEST(tcp_loopback_only) {
    // Port 0: the kernel picks a free port, searchd reports it in info and its start-up line.
    const char *const extra[] = {"--listen", "127.0.0.1:0", NULL};
    td_start(&td_cur, extra);
    sdc_client *u = td_connect(&td_cur);
    sdc_reply r;
    td_call_ok(u, "info", NULL, 0, &r);
    int port = (int)td_num(r.result, "tcp_port");
    sdc_reply_free(&r);
    sdc_close(u);
    ck_assert_int_gt(port, 0);
    ck_assert_int_le(port, 65535);
    char listen[64], bad[64], cmd[1200];
    snprintf(listen, sizeof listen, "127.0.0.1:%d", port);
    snprintf(cmd, sizeof cmd, "grep -q 'and tcp %s;' %s", listen, td_cur.log);
    ck_assert_msg(system(cmd) == 0, "the start-up line does not name %s (see %s)", listen,
                  td_cur.log);
    sdc_client *c;
    sp_diag dg;
    ck_assert_msg(sdc_connect_tcp(listen, &c, &dg) == 0, "%s", dg.msg);
    td_call_ok(c, "info", NULL, 0, &r);
    ck_assert_int_eq((int)td_num(r.result, "tcp_port"), port);
    sdc_reply_free(&r);
    sdc_close(c);
    ck_assert_int_eq(td_stop(&td_cur, SIGTERM), 0);
    // Without --listen there is no port.
    td_start(&td_cur, NULL);
    u = td_connect(&td_cur);
    td_call_ok(u, "info", NULL, 0, &r);
    ck_assert_int_eq((int)td_num(r.result, "tcp_port"), 0);
    sdc_reply_free(&r);
    sdc_close(u);
    ck_assert_int_eq(td_stop(&td_cur, SIGTERM), 0);
    // Not loopback: refused unless --listen-any (refused before anything is bound).
    snprintf(bad, sizeof bad, "0.0.0.0:0");
    snprintf(cmd, sizeof cmd, "%s --socket %s --state-dir %s --listen %s 2>%s.any", SD_TEST_SEARCHD,
             td_cur.sock, td_cur.state, bad, td_cur.log);
    ck_assert_int_ne(system(cmd), 0);
    snprintf(cmd, sizeof cmd, "grep -q 'listen-any' %s.any", td_cur.log);
    ck_assert_int_eq(system(cmd), 0);
}
END_TEST

/* The requester of a tune leaves mid-job: the job goes on and its result is stored. */
START_TEST(requester_leaves_mid_job) {
    sdc_client *c = td_connect(&td_cur), *w = td_connect(&td_cur);
    sdc_reply r;
    sdc_arg m[] = {SDC_ARG_STR("model", td_model_id)};
    td_call_ok(w, "subscribe", m, 1, &r);
    sdc_reply_free(&r);
    sdc_arg tune[] = {SDC_ARG_STR("model", td_model_id), SDC_ARG_NUM("max_flops", 0.7)};
    td_call_ok(c, "tune", tune, 2, &r);
    double job = td_num(r.result, "job");
    sdc_reply_free(&r);
    sdc_note n;
    ck_assert_int_eq(td_wait_note(c, "job.progress", 60000, &n), 0);
    sdc_note_free(&n);
    sdc_close(c); // progress and job.done now have nowhere to go
    ck_assert_int_eq(td_wait_note(w, "schedule.updated", 120000, &n), 0);
    sdc_note_free(&n);
    sdc_arg j[] = {SDC_ARG_NUM("job", job)};
    td_call_ok(w, "job.status", j, 1, &r);
    char buf[32];
    ck_assert_str_eq(td_str(r.result, "status", buf, sizeof buf), "done");
    ck_assert(td_num(r.result, "done") == td_num(r.result, "total"));
    sdc_reply_free(&r);
    sdc_close(w);
}
END_TEST

START_TEST(remove_model) {
    sdc_client *c = td_connect(&td_cur);
    sdc_reply r;
    sdc_arg m[] = {SDC_ARG_STR("model", td_model_id)};
    td_call_ok(c, "model.remove", m, 1, &r);
    sdc_reply_free(&r);
    td_call_ok(c, "model.list", NULL, 0, &r);
    ck_assert_int_eq(r.result->via.array.size, 0);
    sdc_reply_free(&r);
    td_call_err(c, "profile", m, 1, SD_ENOMODEL, NULL, 0);
    char cmd[400];
    snprintf(cmd, sizeof cmd, "ls %s | grep -q %s", td_cur.state, td_model_id);
    ck_assert_int_ne(system(cmd), 0); // its files are gone
    sdc_close(c);
}
END_TEST

START_TEST(queue_cap) {
    // A long search, so the first job is still running when the third tune arrives.
    const char *const extra[] = {"--max-queued", "1", "--search-generations", "1000", NULL};
    td_start(&td_cur, extra);
    sdc_client *c = td_connect(&td_cur);
    sdc_reply r;
    sdc_arg m[] = {SDC_ARG_STR("model", td_model_id)};
    double jobs[2];
    for (int i = 0; i < 2; i++) { // one runs (--jobs 1), one waits
        td_call_ok(c, "tune", m, 1, &r);
        jobs[i] = td_num(r.result, "job");
        sdc_reply_free(&r);
    }
    char msg[512];
    td_call_err(c, "tune", m, 1, SD_EBUSY, msg, sizeof msg);
    ck_assert_ptr_nonnull(strstr(msg, "--max-queued"));
    td_call_ok(c, "info", NULL, 0, &r);
    ck_assert_int_eq((int)td_num(r.result, "jobs_queued"), 1);
    sdc_reply_free(&r);
    for (int i = 1; i >= 0; i--) {
        sdc_arg j[] = {SDC_ARG_NUM("job", jobs[i])};
        sdc_reply x;
        sp_diag dg;
        int rc = sdc_call(c, "job.cancel", j, 1, 30000, &x, &dg); // the first may have finished
        ck_assert_msg(rc == 0 || rc == SD_EJOBDONE, "job.cancel: %d %s", rc, dg.msg);
        sdc_reply_free(&x);
    }
    sdc_close(c);
}
END_TEST

/* A client that sends requests and never reads the replies is dropped at --max-reply-queue;
 * the others are not disturbed. */
START_TEST(reply_queue_cap) {
    const char *const extra[] = {"--max-reply-queue", "4096", NULL};
    td_start(&td_cur, extra);
    sdc_client *c = td_connect(&td_cur), *other = td_connect(&td_cur);
    tc_msg m;
    tc_msg_init(&m);
    const char *const model[] = {"model", td_model_id, NULL};
    for (uint32_t id = 1; id <= 4000; id++) // ~100 bytes of request, kilobytes of reply each
        tc_msg_request_kv(&m, id, "schedule.frontier", model);
    sp_diag dg;
    int rc = sdc_send_raw(c, m.sb.data, m.sb.size, &dg); // may fail once searchd has hung up
    ck_assert(rc == 0 || rc == SP_ECLOSED);
    tc_msg_free(&m);
    // Reading now: whatever was sent before the drop, then the end of the stream.
    sdc_reply r;
    ck_assert_int_eq(sdc_wait_reply(c, 999999, 30000, &r, &dg), SP_ECLOSED);
    sdc_reply_free(&r);
    sdc_close(c);
    ck_assert(td_log_has(&td_cur, "reply bytes queued, closing"));
    td_call_ok(other, "ping", NULL, 0, &r);
    sdc_reply_free(&r);
    sdc_close(other);
}
END_TEST

/* A connection searchd accepted and answered, retried while it is at --max-connections. */
static sdc_client *connect_when_room(void) {
    for (int i = 0; i < 200; i++) {
        sdc_client *c = td_connect(&td_cur);
        sdc_reply r;
        int rc = sdc_call(c, "ping", NULL, 0, 10000, &r, NULL);
        sdc_reply_free(&r);
        if (rc == 0) return c;
        sdc_close(c);
        usleep(50000);
    }
    ck_abort_msg("searchd never had room for a connection");
    return NULL;
}

START_TEST(connection_cap) {
    const char *const extra[] = {"--max-connections", "4", NULL};
    td_start(&td_cur, extra);
    sdc_client *cs[4];
    sdc_reply r;
    for (int i = 0; i < 4; i++)
        cs[i] = connect_when_room(); // td_start's probe may not be counted out yet
    td_call_ok(cs[0], "info", NULL, 0, &r);
    ck_assert_int_eq((int)td_num(r.result, "connections"), 4);
    sdc_reply_free(&r);
    // The fifth is accepted by the kernel and closed by searchd at once.
    sdc_client *extra_c = td_connect(&td_cur);
    sp_diag dg;
    ck_assert_int_eq(sdc_call(extra_c, "ping", NULL, 0, 10000, &r, &dg), SP_ECLOSED);
    sdc_reply_free(&r);
    sdc_close(extra_c);
    td_call_ok(cs[0], "ping", NULL, 0, &r); // the others are untouched
    sdc_reply_free(&r);
    sdc_close(cs[3]);
    cs[3] = connect_when_room(); // once one leaves, a new one gets in
    for (int i = 0; i < 4; i++)
        sdc_close(cs[i]);
}
END_TEST

Suite *rpc_suite(void) {
    Suite *s = suite_create("rpc");
    TCase *e = tcase_create("empty");
    tcase_add_checked_fixture(e, td_setup_empty, td_teardown);
    tcase_add_test(e, ping_info_and_errors);
    tcase_add_test(e, malformed_closes);
    tcase_add_test(e, many_connections);
    tcase_add_test(e, bad_model_files);
    suite_add_tcase(s, e);
    // A tune's progress from the search threads, subscribe, cancel, and the requester leaving
    // mid-job: also run under ThreadSanitizer (tag "threads", tests/daemon/meson.build).
    TCase *th = tcase_create("threads");
    tcase_set_tags(th, "threads");
    tcase_add_checked_fixture(th, td_setup_tuned, td_teardown);
    tcase_add_test(th, tune_progress_subscribe_cancel);
    tcase_add_test(th, requester_leaves_mid_job);
    suite_add_tcase(s, th);

    TCase *tu = tcase_create("tuned");
    tcase_add_checked_fixture(tu, td_setup_tuned, td_teardown);
    tcase_add_test(tu, queries_on_a_tuned_model);
    tcase_add_test(tu, width_travels);
    tcase_add_test(tu, remove_model);
    suite_add_tcase(s, tu);
    TCase *tcp = tcase_create("tcp");
    tcase_add_checked_fixture(tcp, td_setup_dir, td_teardown);
    tcase_add_test(tcp, tcp_loopback_only);
    suite_add_tcase(s, tcp);
    TCase *lim = tcase_create("limits");
    tcase_add_checked_fixture(lim, td_setup_template, td_teardown);
    tcase_add_test(lim, queue_cap);
    tcase_add_test(lim, reply_queue_cap);
    tcase_add_test(lim, connection_cap);
    suite_add_tcase(s, lim);
    return s;
}
