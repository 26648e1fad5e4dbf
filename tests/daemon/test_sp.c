/* The wire protocol: the header scanner, envelope checks and named arguments. */
#include <string.h>

#include "proto/sp_msg.h"
#include "test_util.h"

static const sp_limits lim = {1024, 8};

static tc_msg w; // the message under test (requests built independently of proto/)

static void setup(void) {
    tc_msg_init(&w);
}

static void teardown(void) {
    tc_msg_free(&w);
}

START_TEST(scan_complete_and_partial) {
    tc_msg_head(&w, 7, "schedule.get");
    msgpack_pack_array(&w.pk, 1);
    msgpack_pack_map(&w.pk, 1);
    sp_pack_knum(&w.pk, "max_drop", 0.01);
    size_t len = 0;
    ck_assert_int_eq(sp_scan(w.sb.data, w.sb.size, &lim, &len, NULL), 1);
    ck_assert_uint_eq(len, w.sb.size);
    for (size_t cut = 0; cut < w.sb.size; cut++)
        ck_assert_int_eq(sp_scan(w.sb.data, cut, &lim, &len, NULL), 0);
    // Two messages back to back: the first one's length.
    msgpack_pack_nil(&w.pk);
    ck_assert_int_eq(sp_scan(w.sb.data, w.sb.size, &lim, &len, NULL), 1);
    ck_assert_uint_eq(len, w.sb.size - 1);
}
END_TEST

START_TEST(scan_limits) {
    sp_diag dg;
    size_t len;
    const uint8_t bad[] = {0xc1};
    ck_assert_int_eq(sp_scan(bad, 1, &lim, &len, &dg), SP_EMALFORMED);
    // A str32 declaring 1 MiB: refused from its header alone.
    const uint8_t big[] = {0x94, 0x00, 0x05, 0xdb, 0x00, 0x10, 0x00, 0x00};
    ck_assert_int_eq(sp_scan(big, sizeof big, &lim, &len, &dg), SP_ETOOBIG);
    ck_assert_ptr_nonnull(strstr(dg.msg, "1024"));
    // An array32 declaring 2^32-1 elements.
    const uint8_t many[] = {0xdd, 0xff, 0xff, 0xff, 0xff};
    ck_assert_int_eq(sp_scan(many, sizeof many, &lim, &len, &dg), SP_ETOOBIG);
    uint8_t deep[20];
    memset(deep, 0x91, sizeof deep); // [[[[...
    ck_assert_int_eq(sp_scan(deep, sizeof deep, &lim, &len, &dg), SP_ETOODEEP);
    // Exactly at the depth limit is fine.
    uint8_t ok[9];
    memset(ok, 0x91, 8);
    ok[8] = 0xc0;
    ck_assert_int_eq(sp_scan(ok, sizeof ok, &lim, &len, &dg), 1);
}
END_TEST

static int decode(sp_msg *m, int *has_id, sp_diag *dg) {
    msgpack_unpacked u;
    msgpack_unpacked_init(&u);
    size_t off = 0;
    ck_assert_int_eq(msgpack_unpack_next(&u, w.sb.data, w.sb.size, &off), MSGPACK_UNPACK_SUCCESS);
    static msgpack_unpacked keep;
    msgpack_unpacked_destroy(&keep);
    keep = u;
    return sp_msg_decode(&keep.data, m, has_id, dg);
}

START_TEST(envelope) {
    sp_msg m;
    sp_diag dg;
    int has_id;
    tc_msg_head(&w, 42, "ping");
    msgpack_pack_array(&w.pk, 0);
    ck_assert_int_eq(decode(&m, &has_id, &dg), 0);
    ck_assert_int_eq(m.type, SP_REQUEST);
    ck_assert_uint_eq(m.msgid, 42);
    ck_assert_int_eq((int)m.method_len, 4);

    w.sb.size = 0;
    tc_msg_head(&w, 43, "ping");
    msgpack_pack_map(&w.pk, 0); // params must be an array
    ck_assert_int_eq(decode(&m, &has_id, &dg), SP_EENVELOPE);
    ck_assert_int_eq(has_id, 1);
    ck_assert_uint_eq(m.msgid, 43);
    ck_assert_ptr_nonnull(strstr(dg.msg, "params"));

    w.sb.size = 0;
    msgpack_pack_array(&w.pk, 4);
    msgpack_pack_int(&w.pk, 0);
    sp_pack_str(&w.pk, "x"); // msgid not an integer
    sp_pack_str(&w.pk, "ping");
    msgpack_pack_array(&w.pk, 0);
    ck_assert_int_eq(decode(&m, &has_id, &dg), SP_EENVELOPE);
    ck_assert_int_eq(has_id, 0);

    w.sb.size = 0;
    sp_pack_notify_head(&w.pk, "job.done");
    msgpack_pack_array(&w.pk, 0);
    ck_assert_int_eq(decode(&m, &has_id, &dg), 0);
    ck_assert_int_eq(m.type, SP_NOTIFY);

    w.sb.size = 0;
    sp_pack_error(&w.pk, 9, SP_EMETHOD, "nope");
    ck_assert_int_eq(decode(&m, &has_id, &dg), 0);
    ck_assert_int_eq(m.type, SP_RESPONSE);
    ck_assert_int_eq(m.error->type, MSGPACK_OBJECT_ARRAY);

    w.sb.size = 0;
    msgpack_pack_int(&w.pk, 5);
    ck_assert_int_eq(decode(&m, &has_id, &dg), SP_EENVELOPE);
}
END_TEST

START_TEST(named_arguments) {
    msgpack_pack_array(&w.pk, 1);
    msgpack_pack_map(&w.pk, 3);
    sp_pack_kstr(&w.pk, "model", "abc");
    sp_pack_kint(&w.pk, "max_flops", 1);
    sp_pack_kbool(&w.pk, "force", 1);
    msgpack_unpacked u;
    msgpack_unpacked_init(&u);
    size_t off = 0;
    ck_assert_int_eq(msgpack_unpack_next(&u, w.sb.data, w.sb.size, &off), MSGPACK_UNPACK_SUCCESS);
    const msgpack_object *map;
    sp_diag dg;
    ck_assert_int_eq(sp_params_map(&u.data, &map, &dg), 0);
    char buf[8];
    double v;
    ck_assert_int_eq(sp_get_str(map, "model", 1, buf, sizeof buf, &dg), 0);
    ck_assert_str_eq(buf, "abc");
    ck_assert_int_eq(sp_get_num(map, "max_flops", 1, &v, &dg), 0);
    ck_assert(v == 1.0);
    ck_assert_int_eq(sp_get_num(map, "model", 1, &v, &dg), SP_ETYPE);
    ck_assert_ptr_nonnull(strstr(dg.msg, "must be a number"));
    ck_assert_int_eq(sp_get_num(map, "max_drop", 0, &v, &dg), 1);
    ck_assert_int_eq(sp_get_num(map, "max_drop", 1, &v, &dg), SP_EMISSING);
    ck_assert_int_eq(sp_get_str(map, "model", 1, buf, 3, &dg), SP_EPARAMS);
    static const char *const ok[] = {"model", "max_flops", "force", NULL};
    static const char *const few[] = {"model", NULL};
    ck_assert_int_eq(sp_check_keys(map, ok, &dg), 0);
    ck_assert_int_eq(sp_check_keys(map, few, &dg), SP_EPARAMS);
    ck_assert_ptr_nonnull(strstr(dg.msg, "max_flops"));
    msgpack_unpacked_destroy(&u);
}
END_TEST

Suite *sp_suite(void) {
    Suite *s = suite_create("sp");
    TCase *t = tcase_create("wire");
    tcase_add_checked_fixture(t, setup, teardown);
    tcase_add_test(t, scan_complete_and_partial);
    tcase_add_test(t, scan_limits);
    tcase_add_test(t, envelope);
    tcase_add_test(t, named_arguments);
    suite_add_tcase(s, t);
    return s;
}
