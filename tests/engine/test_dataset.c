/* Data-set loading: the formats it takes and a clear error, naming file and line, for the ones it
 * doesn't. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "engine/en_dataset.h"
#include "test_engine.h"

static en_model *model;

static void setup(void) {
    model = load_model_or_fail(getenv("SEARCHD_DEMO_MODEL"));
}

static void teardown(void) {
    en_model_free(model);
}

/* Writes `text` to a fresh temp file; returns its path in `path`. */
static const char *write_tmp(char *path, size_t len, const char *text) {
    snprintf(path, len, "/tmp/searchd-test-data-XXXXXX");
    int fd = mkstemp(path);
    ck_assert_int_ge(fd, 0);
    ck_assert_int_eq(write(fd, text, strlen(text)), (ssize_t)strlen(text));
    close(fd);
    return path;
}

static int load_text(const char *text, en_dataset **d, en_diag *diag) {
    char path[64];
    int rc = en_dataset_load(write_tmp(path, sizeof path, text), model, d, diag);
    unlink(path);
    return rc;
}

START_TEST(single_and_pair_formats) {
    en_dataset *d = NULL;
    en_diag diag;
    ck_assert_int_eq(load_text("sentence\tlabel\ngood film\t1\nbad film\tnegative\n", &d, &diag), 0);
    ck_assert_int_eq(d->count, 2);
    ck_assert_int_eq(d->ex[0].label, 1);
    ck_assert_int_eq(d->ex[1].label, 0);
    ck_assert_int_eq(d->ex[1].line, 3);
    ck_assert_int_eq(d->ex[0].n, 4); // [CLS] good film [SEP]
    en_dataset_free(d);

    ck_assert_int_eq(load_text("idx\tsentence1\tsentence2\tlabel\n0\ta b\tc\t0\n", &d, &diag), 0);
    ck_assert_int_eq(d->count, 1);
    ck_assert_int_eq(d->ex[0].n, 6); // [CLS] a b [SEP] c [SEP]
    ck_assert_int_eq(d->ex[0].type_ids[4], 1);
    ck_assert_int_eq(d->ex[0].type_ids[3], 0);
    en_dataset_free(d);
}
END_TEST

START_TEST(bad_files_name_file_and_line) {
    en_dataset *d = NULL;
    en_diag diag;
    ck_assert_int_eq(load_text("", &d, &diag), EN_EDATA);
    ck_assert_int_eq(load_text("text\tlabel\nx\t1\n", &d, &diag), EN_EDATA);
    ck_assert_ptr_nonnull(strstr(diag.msg, ":1: header"));
    ck_assert_int_eq(load_text("sentence\tlabel\n", &d, &diag), EN_EDATA);
    ck_assert_ptr_nonnull(strstr(diag.msg, "no examples"));
    ck_assert_int_eq(load_text("sentence\tlabel\ngood\t1\nbad\t7\n", &d, &diag), EN_ELABEL);
    ck_assert_ptr_nonnull(strstr(diag.msg, ":3: label '7'"));
    ck_assert_int_eq(load_text("sentence\tlabel\ngood\tneutral\n", &d, &diag), EN_ELABEL);
    ck_assert_int_eq(load_text("sentence\tlabel\ngood\n", &d, &diag), EN_EDATA);
    ck_assert_ptr_nonnull(strstr(diag.msg, ":2: 1 fields"));
    ck_assert_int_eq(load_text("sentence\tlabel\n \t1\n", &d, &diag), EN_EDATA);
    ck_assert_ptr_nonnull(strstr(diag.msg, "empty sentence"));
    ck_assert_int_eq(en_dataset_load("/nonexistent/x.tsv", model, &d, &diag), -2);
    ck_assert_ptr_nonnull(strstr(diag.msg, "/nonexistent/x.tsv"));
}
END_TEST

START_TEST(long_sentences_are_truncated_to_the_model) {
    size_t len = 3 * 2000 + 64;
    char *text = malloc(len);
    strcpy(text, "sentence\tlabel\n");
    for (int i = 0; i < 2000; i++)
        strcat(text, "ok ");
    strcat(text, "\t1\n");
    en_dataset *d = NULL;
    ck_assert_int_eq(load_text(text, &d, NULL), 0);
    ck_assert_int_eq(d->ex[0].n, model->cfg.max_pos);
    en_eval_opts o = {.metric = EN_METRIC_ATTN, .threads = 1};
    en_eval_result r = {0};
    ck_assert_int_eq(en_eval(model, d, &o, &r, NULL), 0);
    ck_assert_int_eq(r.n, 1);
    en_dataset_free(d);
    free(text);
}
END_TEST

Suite *dataset_suite(void) {
    Suite *s = suite_create("dataset");
    TCase *tc = tcase_create("dataset");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, single_and_pair_formats);
    tcase_add_test(tc, bad_files_name_file_and_line);
    tcase_add_test(tc, long_sentences_are_truncated_to_the_model);
    suite_add_tcase(s, tc);
    return s;
}
