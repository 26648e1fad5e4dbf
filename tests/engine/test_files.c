/* Files the engine is given that are not what they claim (issue 11): a FIFO, a device or a
 * huge file in place of config.json, model.safetensors, vocab.txt, tokenizer_config.json or a
 * data set is refused at once, before any read; and errors quote no file contents, at most a
 * short escaped excerpt of what the caller wrote (a label). */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "engine/en_dataset.h"
#include "engine/en_file.h"
#include "engine/en_layout.h"
#include "test_engine.h"
#include "tests/common/tc_files.h"
#include "tests/common/tc_temp.h"

static char dir[64];

static void setup(void) {
    tc_temp_dir_or_fail(dir, sizeof dir, "files");
}

static void teardown(void) {
    ck_assert_int_eq(tc_remove_tree(dir), 0);
}

static const char *in_dir(char *buf, size_t len, const char *name) {
    snprintf(buf, len, "%s/%s", dir, name);
    return buf;
}

/* A copy of the demo model in dir/m: symlinks to its files, except `special` (see make). */
static const char *model_with(const char *special, const char *kind) {
    static char m[128];
    snprintf(m, sizeof m, "%s/m", dir);
    mkdir(m, 0700);
    static const char *const files[] = {"config.json", "model.safetensors", "vocab.txt",
                                        "tokenizer_config.json"};
    for (int i = 0; i < 4; i++) {
        char from[1200], to[200];
        snprintf(from, sizeof from, "%s/%s", tc_demo_model(), files[i]);
        snprintf(to, sizeof to, "%s/%s", m, files[i]);
        unlink(to);
        if (strcmp(files[i], special) != 0) {
            ck_assert_int_eq(symlink(from, to), 0);
        } else if (strcmp(kind, "fifo") == 0) {
            ck_assert_int_eq(mkfifo(to, 0600), 0);
        } else if (strcmp(kind, "zero") == 0) {
            ck_assert_int_eq(symlink("/dev/zero", to), 0);
        } else { // "huge": a sparse file of the given size, made at once
            int fd = open(to, O_WRONLY | O_CREAT | O_TRUNC, 0600);
            ck_assert_int_ge(fd, 0);
            ck_assert_int_eq(ftruncate(fd, (off_t)strtoll(kind, NULL, 10)), 0);
            close(fd);
        }
    }
    return m;
}

START_TEST(open_refuses_non_regular) {
    char p[128];
    int fd = -1;
    en_diag diag;
    ck_assert_int_eq(mkfifo(in_dir(p, sizeof p, "fifo"), 0600), 0);
    ck_assert_int_eq(en_file_open(p, 100, &fd, NULL, &diag), EN_EFORMAT); // does not block
    ck_assert_ptr_nonnull(strstr(diag.msg, "a FIFO"));
    ck_assert_ptr_nonnull(strstr(diag.msg, p));
    ck_assert_int_eq(fd, -1);
    ck_assert_int_eq(en_file_open("/dev/zero", 100, &fd, NULL, &diag), EN_EFORMAT);
    ck_assert_ptr_nonnull(strstr(diag.msg, "character device"));
    ck_assert_int_eq(en_file_open(dir, 100, &fd, NULL, &diag), EN_EFORMAT);
    ck_assert_int_eq(en_file_open("/nonexistent/x", 100, &fd, NULL, &diag), -ENOENT);
    char *data;
    size_t len;
    tc_write_text(in_dir(p, sizeof p, "small"), "0123456789");
    ck_assert_int_eq(en_file_read(p, 9, &data, &len, &diag), EN_ERANGE);
    ck_assert_ptr_nonnull(strstr(diag.msg, "9-byte limit"));
    ck_assert_int_eq(en_file_read(p, 10, &data, &len, &diag), 0);
    ck_assert_uint_eq(len, 10);
    ck_assert_str_eq(data, "0123456789");
    free(data);
}
END_TEST

START_TEST(model_files_fifo_device_huge) {
    static const struct {
        const char *file, *kind;
        int code;
        const char *says;
    } cases[] = {
        {"config.json", "fifo", EN_EFORMAT, "a FIFO"},
        {"model.safetensors", "fifo", EN_EFORMAT, "a FIFO"},
        {"vocab.txt", "fifo", EN_EFORMAT, "a FIFO"},
        {"tokenizer_config.json", "fifo", EN_EFORMAT, "a FIFO"},
        {"vocab.txt", "zero", EN_EFORMAT, "character device"},
        {"config.json", "zero", EN_EFORMAT, "character device"},
        {"vocab.txt", "67108865", EN_ERANGE, "byte limit"},             // 64 MiB + 1
        {"config.json", "16777217", EN_ERANGE, "byte limit"},           // 16 MiB + 1
        {"tokenizer_config.json", "16777217", EN_ERANGE, "byte limit"}, // 16 MiB + 1
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        en_model *m = NULL;
        en_diag diag = {{0}};
        int rc = en_model_load(model_with(cases[i].file, cases[i].kind), &m, &diag);
        ck_assert_msg(rc == cases[i].code && strstr(diag.msg, cases[i].file) &&
                          strstr(diag.msg, cases[i].says),
                      "%s as %s: %d %s", cases[i].file, cases[i].kind, rc, diag.msg);
    }
}
END_TEST

START_TEST(data_set_fifo_and_huge) {
    en_model *m = tc_load_model(tc_demo_model());
    char p[128];
    en_dataset *d = NULL;
    en_diag diag;
    ck_assert_int_eq(mkfifo(in_dir(p, sizeof p, "data.tsv"), 0600), 0);
    ck_assert_int_eq(en_dataset_load(p, m, &d, &diag), EN_EFORMAT);
    ck_assert_ptr_nonnull(strstr(diag.msg, "a FIFO"));
    int fd = open(in_dir(p, sizeof p, "huge.tsv"), O_WRONLY | O_CREAT, 0600);
    ck_assert_int_eq(ftruncate(fd, (off_t)EN_MAX_DATA_BYTES + 1), 0); // sparse
    close(fd);
    ck_assert_int_eq(en_dataset_load(p, m, &d, &diag), EN_ERANGE);
    ck_assert_ptr_nonnull(strstr(diag.msg, "byte limit"));
    en_model_free(m);
}
END_TEST

/* Writes `len` bytes to dir/name. */
static const char *put(const char *name, const void *bytes, size_t len) {
    static char p[128];
    tc_write_file(in_dir(p, sizeof p, name), bytes, len);
    return p;
}

START_TEST(errors_quote_no_file_contents) {
    // A text file as weights: its first 8 bytes must not come back as a "header length".
    const char *m = model_with("model.safetensors", "0");
    char p[128], text[] = "SECRET-PASSWORD-1234 and more secret text after it";
    snprintf(p, sizeof p, "%s/model.safetensors", m);
    unlink(p); // a symlink to the demo model's file
    tc_write_text(p, text);
    uint64_t le = 0;
    for (int i = 7; i >= 0; i--)
        le = le << 8 | (uint8_t)text[i];
    char num[32];
    snprintf(num, sizeof num, "%" PRIu64, le);
    en_model *model = NULL;
    en_diag diag;
    ck_assert_int_eq(en_model_load(m, &model, &diag), EN_EFORMAT);
    ck_assert_msg(!strstr(diag.msg, num) && !strstr(diag.msg, "SECRET"), "%s", diag.msg);
    ck_assert_ptr_nonnull(strstr(diag.msg, "model.safetensors"));
    // Bad JSON: jansson's "near 'token'" quote is cut.
    m = model_with("config.json", "0");
    snprintf(p, sizeof p, "%s/config.json", m);
    unlink(p);
    tc_write_text(p, "topsecretword {\"a\": 1}");
    ck_assert_int_eq(en_model_load(m, &model, &diag), EN_EFORMAT);
    ck_assert_msg(!strstr(diag.msg, "topsecret") && strstr(diag.msg, "not valid JSON"), "%s",
                  diag.msg);
    // A data set's label: a short escaped excerpt of what the caller wrote, no more.
    en_model *em = tc_load_model(tc_demo_model());
    char row[3000] = "sentence\tlabel\ngood film\t";
    size_t n = strlen(row);
    memset(row + n, 'x', 2000);
    memcpy(row + n, "\x1b[31m", 5);
    row[n + 2000] = '\n';
    en_dataset *d = NULL;
    ck_assert_int_eq(en_dataset_load(put("label.tsv", row, n + 2001), em, &d, &diag), EN_ELABEL);
    ck_assert_msg(strlen(diag.msg) < 300 && strstr(diag.msg, "\\x1b[31m") &&
                      strstr(diag.msg, "'...") && !strchr(diag.msg, '\x1b'),
                  "%s", diag.msg);
    en_model_free(em);
}
END_TEST

/* Issue 10 item 5: checkpoint layouts. PyTorch, TensorFlow or sharded weights without
 * model.safetensors: the message says what was found and how to write model.safetensors; a
 * folder with no weights lists what it has. */
START_TEST(checkpoint_layouts_say_what_they_have) {
    en_diag diag = {{0}};
    put("config.json", "{}", 2);
    put("vocab.txt", "[CLS]\n", 6);
    ck_assert_int_eq(en_checkpoint_check(dir, &diag), -ENOENT);
    ck_assert_msg(strstr(diag.msg, "no model.safetensors") && strstr(diag.msg, "config.json") &&
                      strstr(diag.msg, "vocab.txt"),
                  "%s", diag.msg);
    static const struct {
        const char *file, *says;
    } layouts[] = {{"flax_model.msgpack", "from_flax=True"},
                   {"tf_model.h5", "from_tf=True"},
                   {"pytorch_model.bin.index.json", "sharded PyTorch"},
                   {"pytorch_model.bin", "pytorch_model.bin (a PyTorch pickle)"},
                   {"model.safetensors.index.json", "sharded safetensors"}};
    for (size_t i = 0; i < sizeof layouts / sizeof layouts[0]; i++) {
        put(layouts[i].file, "x", 1); // each found before the ones above it in the table
        ck_assert_int_eq(en_checkpoint_check(dir, &diag), EN_EFORMAT);
        ck_assert_msg(strstr(diag.msg, layouts[i].says) && strstr(diag.msg, "safe_serialization"),
                      "%s: %s", layouts[i].file, diag.msg);
    }
    put("model.safetensors", "x", 1);
    ck_assert_int_eq(en_checkpoint_check(dir, &diag), 0);
    ck_assert_int_eq(en_checkpoint_check("/nonexistent/model", &diag), 0); // the loader says
}
END_TEST

START_TEST(excerpt_is_short_and_escaped) {
    char buf[4 * EN_EXCERPT_MAX + 8];
    ck_assert_str_eq(en_excerpt("neutral", 7, buf, sizeof buf), "'neutral'");
    ck_assert_str_eq(en_excerpt("a'b\\\n\xff", 6, buf, sizeof buf), "'a\\x27b\\x5c\\x0a\\xff'");
    char long_text[100];
    memset(long_text, 'y', sizeof long_text);
    en_excerpt(long_text, sizeof long_text, buf, sizeof buf);
    ck_assert_uint_eq(strlen(buf), 1 + EN_EXCERPT_MAX + 4);
    ck_assert_str_eq(buf + 1 + EN_EXCERPT_MAX, "'...");
    char small[16];
    en_excerpt(long_text, sizeof long_text, small, sizeof small);
    ck_assert_uint_lt(strlen(small), sizeof small);
    char why[64];
    ck_assert_str_eq(en_json_reason("invalid token near 'secret'", why, sizeof why),
                     "invalid token");
}
END_TEST

Suite *files_suite(void) {
    Suite *s = suite_create("files");
    TCase *tc = tcase_create("files");
    tcase_set_timeout(tc, 60); // a FIFO that blocked would hang here
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, open_refuses_non_regular);
    tcase_add_test(tc, model_files_fifo_device_huge);
    tcase_add_test(tc, data_set_fifo_and_huge);
    tcase_add_test(tc, errors_quote_no_file_contents);
    tcase_add_test(tc, excerpt_is_short_and_escaped);
    tcase_add_test(tc, checkpoint_layouts_say_what_they_have);
    suite_add_tcase(s, tc);
    return s;
}
