/* Data-set loading: the formats it takes and a clear error, naming file and line, for the ones it
 * doesn't. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "engine/en_dataset.h"
#include "test_engine.h"
#include "tests/common/tc_temp.h"

static en_model *model;

static void setup(void) {
    model = tc_load_model(tc_demo_model());
}

static void teardown(void) {
    en_model_free(model);
}

static int load_text(const char *text, en_dataset **d, en_diag *diag) {
    char path[64];
    int rc = en_dataset_load(tc_temp_file(path, sizeof path, "data", "", text), model, d, diag);
    unlink(path);
    return rc;
}

START_TEST(single_and_pair_formats) {
    en_dataset *d = NULL;
    en_diag diag;
    ck_assert_int_eq(load_text("sentence\tlabel\ngood film\t1\nbad film\tnegative\n", &d, &diag),
                     0);
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
    ck_assert_int_eq(load_text("txt\tlabel\nx\t1\n", &d, &diag), EN_EDATA);
    ck_assert_msg(strstr(diag.msg, ":1: no text column: the header has 'txt', 'label'"), "%s",
                  diag.msg);
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

/* Writes `text` to a temp file named with `suffix` (".csv", ".jsonl") and loads it. */
static int load_as(const char *suffix, const char *text, const en_dataset_opts *o, en_dataset **d,
                   en_diag *diag) {
    char path[80];
    tc_temp_file(path, sizeof path, "data", suffix, text);
    int rc = en_dataset_load_opts(path, model, o, d, diag);
    unlink(path);
    return rc;
}

/* The tokens of `a` (and `b`) as the model makes them, to compare a loaded example with. */
static void assert_example(const en_example *e, const char *a, const char *b, int label) {
    int32_t ids[512], types[512];
    int n;
    ck_assert_int_eq(en_tokenize(model->tok, a, b, 512, ids, types, &n, NULL), 0);
    ck_assert_int_eq(e->n, n);
    ck_assert_int_eq(e->label, label);
    for (int i = 0; i < n; i++) {
        ck_assert_int_eq(e->ids[i], ids[i]);
        ck_assert_int_eq(e->type_ids[i], types[i]);
    }
}

/* load_as() that must succeed with `count` examples. */
static en_dataset *load_ok(const char *suffix, const char *text, int count) {
    en_dataset *d = NULL;
    en_diag diag = {{0}};
    ck_assert_msg(load_as(suffix, text, NULL, &d, &diag) == 0, "%s", diag.msg);
    ck_assert_int_eq(d->count, count);
    return d;
}

/* Issue 10 item 4: the data people have. CSV with RFC 4180 quoting, JSON Lines, a UTF-8 byte
 * order mark, the usual column names of text pairs, label names in any case (the error lists
 * them), and column names given by the caller. */
START_TEST(the_formats_people_have) {
    en_dataset *d = NULL;
    en_diag diag = {{0}};
    // CSV: a BOM, CRLF, a quoted field holding a comma, a doubled quote and a line break.
    d = load_ok(".csv",
                "\xEF\xBB\xBFid,text,label\r\n1,\"good, \"\"witty\"\" film\",Positive\r\n"
                "2,\"bad\nfilm\",0\r\n3,plain,NEGATIVE\r\n",
                3);
    assert_example(&d->ex[0], "good, \"witty\" film", NULL, 1);
    assert_example(&d->ex[1], "bad\nfilm", NULL, 0);
    assert_example(&d->ex[2], "plain", NULL, 0);
    ck_assert_int_eq(d->ex[2].line, 5); // the quoted line break counts
    en_dataset_free(d);
    // JSON Lines: pairs by their usual names, labels as integers or names.
    d = load_ok(".jsonl",
                "{\"premise\": \"a man sleeps\", \"hypothesis\": \"a man rests\", "
                "\"label\": 1}\n\n{\"premise\": \"it rains\", \"hypothesis\": \"dry\", "
                "\"label\": \"negative\"}\n",
                2);
    assert_example(&d->ex[0], "a man sleeps", "a man rests", 1);
    assert_example(&d->ex[1], "it rains", "dry", 0);
    ck_assert_int_eq(d->ex[1].line, 3);
    en_dataset_free(d);
    // TSV with a BOM: question/passage.
    ck_assert_int_eq(load_as(".tsv", "\xEF\xBB\xBFquestion\tpassage\tlabel\nis it?\tit is.\t1\n",
                             NULL, &d, &diag),
                     0);
    assert_example(&d->ex[0], "is it?", "it is.", 1);
    en_dataset_free(d);
    // Names given by the caller.
    en_dataset_opts o = {.text_column = "review", .label_column = "sentiment"};
    ck_assert_int_eq(load_as(".csv", "sentiment,review\npositive,fine\n", &o, &d, &diag), 0);
    assert_example(&d->ex[0], "fine", NULL, 1);
    en_dataset_free(d);
    ck_assert_int_eq(load_as(".csv", "sentiment,review\npositive,fine\n", NULL, &d, &diag),
                     EN_EDATA);
    ck_assert_msg(strstr(diag.msg, "'sentiment', 'review'") && strstr(diag.msg, "--text-column"),
                  "%s", diag.msg);
    // An unknown label: the error lists the model's names.
    ck_assert_int_eq(
        load_as(".jsonl", "{\"text\": \"x\", \"label\": \"neutral\"}\n", NULL, &d, &diag),
        EN_ELABEL);
    ck_assert_msg(strstr(diag.msg, ":1: label 'neutral'") && strstr(diag.msg, "negative, positive"),
                  "%s", diag.msg);
    // Broken rows say where.
    ck_assert_int_eq(load_as(".csv", "text,label\n\"open,1\n", NULL, &d, &diag), EN_EDATA);
    ck_assert_msg(strstr(diag.msg, ":2: a quoted field is not closed"), "%s", diag.msg);
    ck_assert_int_eq(load_as(".jsonl", "{\"text\": \"a\", \"label\": 1}\n[1]\n", NULL, &d, &diag),
                     EN_EDATA);
    ck_assert_msg(strstr(diag.msg, ":2: not a JSON object"), "%s", diag.msg);
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
    tcase_add_test(tc, the_formats_people_have);
    suite_add_tcase(s, tc);
    return s;
}
