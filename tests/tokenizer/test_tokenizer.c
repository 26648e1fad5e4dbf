/* The WordPiece tokenizer: every line of both models' tokenize.jsonl fixtures (made by an
 * independent reference of HF's BertTokenizer), hand-computed truncation and WordPiece cases
 * on small vocabularies written here, configuration options, and load errors. */
#include <check.h>
#include <errno.h>
#include <jansson.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "engine/en_tokenizer.h"
#include "tests/common/shared_models.h"
#include "tests/common/tc_env.h"
#include "tests/common/tc_files.h"
#include "tests/common/tc_temp.h"

Suite *tokenizer_suite(void);

enum { MAX_IDS = 1024 };

/* ---- Helpers ---------------------------------------------------------------------------- */

static en_tokenizer *load_or_fail(const char *dir) {
    en_tokenizer *t = NULL;
    en_diag diag = {{0}};
    int rc = en_tokenizer_load(dir, &t, &diag);
    ck_assert_msg(rc == 0, "loading %s: %s (%s)", dir, en_strerror(rc), diag.msg);
    return t;
}

// A temp folder holding vocab.txt (`vocab`, written as is) and, unless NULL,
// tokenizer_config.json. Removed by tc_remove_tree().
static const char *make_model(char *dir, size_t len, const char *vocab, const char *config) {
    tc_temp_dir_or_fail(dir, len, "tok");
    char path[512];
    snprintf(path, sizeof path, "%s/vocab.txt", dir);
    tc_write_text(path, vocab);
    if (config) {
        snprintf(path, sizeof path, "%s/tokenizer_config.json", dir);
        tc_write_text(path, config);
    }
    return dir;
}

// Tokenizes and renders the result as "piece:type piece:type ..." for readable assertions.
static const char *render(const en_tokenizer *t, const char *a, const char *b, int max_len) {
    static char out[8192]; // tests run one at a time
    int32_t ids[MAX_IDS], types[MAX_IDS];
    int n = -1;
    en_diag diag = {{0}};
    int rc = en_tokenize(t, a, b, max_len, ids, types, &n, &diag);
    ck_assert_msg(rc == 0, "en_tokenize: %s (%s)", en_strerror(rc), diag.msg);
    ck_assert_int_le(n, max_len);
    out[0] = '\0';
    for (int i = 0; i < n; i++) {
        const char *p = en_tokenizer_piece(t, ids[i]);
        ck_assert_ptr_nonnull(p);
        size_t used = strlen(out);
        snprintf(out + used, sizeof out - used, "%s%s:%d", i ? " " : "", p, (int)types[i]);
    }
    return out;
}

// Pieces only (types left out), for single-segment cases.
static const char *pieces(const en_tokenizer *t, const char *text) {
    static char out[8192];
    const char *r = render(t, text, NULL, MAX_IDS);
    size_t k = 0;
    for (const char *p = r; *p && k + 1 < sizeof out; p++) {
        if (*p == ':' && (p[1] == '0' || p[1] == '1') && (p[2] == ' ' || p[2] == '\0'))
            p++; // skip ":0"
        else
            out[k++] = *p;
    }
    out[k] = '\0';
    return out;
}

#define ASSERT_RENDER(t, a, b, max_len, want)                                                      \
    do {                                                                                           \
        const char *got_ = render(t, a, b, max_len);                                               \
        ck_assert_msg(strcmp(got_, want) == 0, "max_len %d: got \"%s\", want \"%s\"", max_len,     \
                      got_, want);                                                                 \
    } while (0)

#define ASSERT_PIECES(t, text, want)                                                               \
    do {                                                                                           \
        const char *got_ = pieces(t, text);                                                        \
        ck_assert_msg(strcmp(got_, want) == 0, "\"%s\": got \"%s\", want \"%s\"", text, got_,      \
                      want);                                                                       \
    } while (0)

/* ---- Fixtures --------------------------------------------------------------------------- */

// Checks every line of `fixture` against `t`; returns the number of mismatching lines after
// printing the first few.
static int check_fixture(const en_tokenizer *t, const char *fixture, int *lines_out) {
    FILE *f = fopen(fixture, "r");
    ck_assert_msg(f != NULL, "cannot open %s", fixture);
    char *line = NULL;
    size_t cap = 0;
    int lines = 0, bad = 0;
    int32_t ids[MAX_IDS], types[MAX_IDS], want[MAX_IDS], want_types[MAX_IDS];
    while (getline(&line, &cap, f) > 0) {
        lines++;
        json_error_t err;
        json_t *j = json_loads(line, JSON_ALLOW_NUL, &err);
        ck_assert_msg(j != NULL, "%s:%d: %s", fixture, lines, err.text);
        json_t *ja = json_object_get(j, "text"), *jb = json_object_get(j, "text_pair");
        const char *a = json_string_value(ja), *b = json_string_value(jb);
        json_t *jids = json_object_get(j, "ids"), *jtypes = json_object_get(j, "type_ids");
        ck_assert_ptr_nonnull(a);
        int nw = (int)json_array_size(jids);
        ck_assert_int_le(nw, MAX_IDS);
        ck_assert_int_eq(nw, (int)json_array_size(jtypes));
        for (int i = 0; i < nw; i++) {
            want[i] = (int32_t)json_integer_value(json_array_get(jids, i));
            want_types[i] = (int32_t)json_integer_value(json_array_get(jtypes, i));
        }
        int n = -1;
        en_diag diag = {{0}};
        int rc = en_tokenize_n(t, a, json_string_length(ja), b, b ? json_string_length(jb) : 0,
                               MAX_IDS, ids, types, &n, &diag);
        ck_assert_msg(rc == 0, "%s:%d: %s (%s)", fixture, lines, en_strerror(rc), diag.msg);
        int diff = n == nw ? -1 : (n < nw ? n : nw);
        for (int i = 0; i < n && i < nw && diff < 0; i++)
            if (ids[i] != want[i] || types[i] != want_types[i]) diff = i;
        if (diff >= 0) {
            if (++bad <= 5)
                fprintf(stderr,
                        "%s:%d: text \"%.80s\": %d ids, want %d; first difference at %d: "
                        "id %d type %d, want id %d type %d\n",
                        fixture, lines, a, n, nw, diff, diff < n ? (int)ids[diff] : -1,
                        diff < n ? (int)types[diff] : -1, diff < nw ? (int)want[diff] : -1,
                        diff < nw ? (int)want_types[diff] : -1);
        }
        json_decref(j);
    }
    free(line);
    fclose(f);
    *lines_out = lines;
    return bad;
}

// Every line of the model's tokenize.jsonl, with the tokenizer read from `which` files.
static void check_model_fixture_from(const char *model_dir, const char *model_name,
                                     en_tok_files which) {
    char fixture[1024], rel[256];
    snprintf(rel, sizeof rel, "fixtures/%s/tokenize.jsonl", model_name);
    tc_shared_path(fixture, sizeof fixture, rel);
    en_tokenizer *t = NULL;
    en_diag diag = {{0}};
    int rc = en_tokenizer_load_files(model_dir, which, &t, &diag);
    ck_assert_msg(rc == 0, "loading %s: %s (%s)", model_dir, en_strerror(rc), diag.msg);
    int lines = 0;
    int bad = check_fixture(t, fixture, &lines);
    fprintf(stderr, "%s with %s (%s, %s): %d of %d lines match\n", fixture, model_dir,
            en_tokenizer_kind(t), en_tokenizer_file(t), lines - bad, lines);
    ck_assert_int_ge(lines, 300);
    ck_assert_msg(bad == 0, "%s: %d of %d lines differ", fixture, bad, lines);
    en_tokenizer_free(t);
}

static void check_model_fixture(const char *model_dir, const char *model_name) {
    check_model_fixture_from(model_dir, model_name, EN_TOK_FILES_AUTO);
}

static bool has_file(const char *dir, const char *file) {
    char path[1200];
    snprintf(path, sizeof path, "%s/%s", dir, file);
    return access(path, R_OK) == 0;
}

// Every model of shared/models with a tokenize.jsonl, from each set of files it carries.
START_TEST(fixture_shared_models) {
    const char *const *names;
    int n = shared_models("tokenize.jsonl", &names);
    ck_assert_int_gt(n, _i);
    char dir[1024], rel[512];
    snprintf(rel, sizeof rel, "models/%s", names[_i]);
    tc_shared_path(dir, sizeof dir, rel);
    bool fast = has_file(dir, "tokenizer.json");
    bool slow = has_file(dir, "vocab.txt") || has_file(dir, "vocab.json");
    ck_assert(fast || slow);
    if (fast) check_model_fixture_from(dir, names[_i], EN_TOK_FILES_FAST);
    if (slow) check_model_fixture_from(dir, names[_i], EN_TOK_FILES_SLOW);
}
END_TEST

START_TEST(fixture_embedded_demo_model) {
    const char *dir = tc_demo_model();
    ck_assert_msg(dir != NULL, "SEARCHD_DEMO_MODEL is not set");
    check_model_fixture(dir, "sst2-bert-L4-H128-demo");
}
END_TEST

typedef struct thread_job {
    const en_tokenizer *t;
    const char *fixture;
    int bad, lines;
} thread_job;

static void *thread_main(void *arg) {
    thread_job *j = arg;
    j->bad = check_fixture(j->t, j->fixture, &j->lines);
    return NULL;
}

// One tokenizer shared by several threads gives every thread the fixture's answers.
START_TEST(shared_between_threads) {
    char dir[1024], fixture[1024];
    tc_shared_path(dir, sizeof dir, "models/sst2-bert-L6-H256");
    tc_shared_path(fixture, sizeof fixture, "fixtures/sst2-bert-L6-H256/tokenize.jsonl");
    en_tokenizer *t = load_or_fail(dir);
    pthread_t th[4];
    thread_job jobs[4];
    for (int i = 0; i < 4; i++) {
        jobs[i] = (thread_job){t, fixture, 0, 0};
        ck_assert_int_eq(pthread_create(&th[i], NULL, thread_main, &jobs[i]), 0);
    }
    for (int i = 0; i < 4; i++) {
        pthread_join(th[i], NULL);
        ck_assert_int_eq(jobs[i].bad, 0);
        ck_assert_int_ge(jobs[i].lines, 300);
    }
    en_tokenizer_free(t);
}
END_TEST

/* ---- Hand-computed cases on small vocabularies ------------------------------------------ */

// Ids: [PAD]=0 [UNK]=1 [CLS]=2 [SEP]=3, then single letters and a few pieces.
static const char *const small_vocab = "[PAD]\n[UNK]\n[CLS]\n[SEP]\na\nb\nc\nd\ne\nf\ng\nh\n"
                                       "un\n##aff\n##able\nab\n##c\n##d\n.\n,\n!\n##ς\nο\n##δ\n"
                                       "##ο\n##σ\nσ\nς\ni\nß\n";

static char small_dir[64];
static en_tokenizer *small;

static void small_setup(void) {
    make_model(small_dir, sizeof small_dir, small_vocab, NULL);
    small = load_or_fail(small_dir);
}

static void small_teardown(void) {
    en_tokenizer_free(small);
    ck_assert_int_eq(tc_remove_tree(small_dir), 0);
}

START_TEST(api_basics) {
    ck_assert_int_eq(en_tokenizer_vocab_size(small), 30);
    ck_assert_str_eq(en_tokenizer_piece(small, 2), "[CLS]");
    ck_assert_str_eq(en_tokenizer_piece(small, 13), "##aff");
    ck_assert_ptr_null(en_tokenizer_piece(small, 30));
    ck_assert_ptr_null(en_tokenizer_piece(small, -1));
    int32_t ids[4], types[4];
    int n = 0;
    ck_assert_int_eq(en_tokenize(small, "a", NULL, 1, ids, types, &n, NULL), EN_ERANGE);
    ck_assert_int_eq(en_tokenize(small, "a", "b", 2, ids, types, &n, NULL), EN_ERANGE);
    en_diag diag = {{0}};
    ck_assert_int_eq(en_tokenize(small, NULL, NULL, 4, ids, types, &n, &diag), EN_EINPUT);
    ck_assert_int_eq(en_tokenize(small, "a b", NULL, 4, ids, types, &n, NULL), 0);
    ck_assert_int_eq(n, 4);
    ck_assert_int_eq(ids[0], 2);
    ck_assert_int_eq(ids[1], 4);
    ck_assert_int_eq(ids[2], 5);
    ck_assert_int_eq(ids[3], 3);
}
END_TEST

START_TEST(empty_texts) {
    ASSERT_RENDER(small, "", NULL, 512, "[CLS]:0 [SEP]:0");
    ASSERT_RENDER(small, " \t\n\r\xc2\xa0", NULL, 512, "[CLS]:0 [SEP]:0");
    ASSERT_RENDER(small, "", "", 512, "[CLS]:0 [SEP]:0 [SEP]:1");
    ASSERT_RENDER(small, "", "a", 512, "[CLS]:0 [SEP]:0 a:1 [SEP]:1");
    ASSERT_RENDER(small, "a", "", 512, "[CLS]:0 a:0 [SEP]:0 [SEP]:1");
    // Only characters the clean-up removes: NUL-free controls, U+FFFD, ZWSP (Cf), soft hyphen.
    ASSERT_RENDER(small, "\x01\x7f\xef\xbf\xbd\xe2\x80\x8b\xc2\xad", NULL, 512, "[CLS]:0 [SEP]:0");
}
END_TEST

START_TEST(pair_types) {
    ASSERT_RENDER(small, "a b", "c d e", 512, "[CLS]:0 a:0 b:0 [SEP]:0 c:1 d:1 e:1 [SEP]:1");
}
END_TEST

// Known answers of HF's truncate_sequences(longest_first): one piece at a time from the end
// of the longer segment, from the second segment when both are as long.
START_TEST(truncation) {
    // One segment: keep the first max_len - 2 pieces.
    ASSERT_RENDER(small, "a b c d e", NULL, 5, "[CLS]:0 a:0 b:0 c:0 [SEP]:0");
    ASSERT_RENDER(small, "a b c d e", NULL, 2, "[CLS]:0 [SEP]:0");
    ASSERT_RENDER(small, "a b c d e", NULL, 7, "[CLS]:0 a:0 b:0 c:0 d:0 e:0 [SEP]:0");
    // A word cut after its first piece: unaffable = un ##aff ##able.
    ASSERT_RENDER(small, "unaffable a", NULL, 4, "[CLS]:0 un:0 ##aff:0 [SEP]:0");
    // 5 + 2 pieces, room for 5: both removals come from the first segment.
    ASSERT_RENDER(small, "a b c d e", "f g", 8, "[CLS]:0 a:0 b:0 c:0 [SEP]:0 f:1 g:1 [SEP]:1");
    // 1 + 6 pieces, room for 3: the second segment only.
    ASSERT_RENDER(small, "a", "b c d e f g", 6, "[CLS]:0 a:0 [SEP]:0 b:1 c:1 [SEP]:1");
    // 3 + 3, room for 4: (3,3) -> tie, second -> (3,2) -> first -> (2,2).
    ASSERT_RENDER(small, "a b c", "d e f", 7, "[CLS]:0 a:0 b:0 [SEP]:0 d:1 e:1 [SEP]:1");
    // 3 + 3, room for 3: (3,3) -> (3,2) -> (2,2) -> (2,1). Tie-to-the-first would give (1,2).
    ASSERT_RENDER(small, "a b c", "d e f", 6, "[CLS]:0 a:0 b:0 [SEP]:0 d:1 [SEP]:1");
    // 4 + 3, room for 2: (4,3) -> (3,3) -> (3,2) -> (2,2) -> (2,1) -> (1,1).
    ASSERT_RENDER(small, "a b c d", "e f g", 5, "[CLS]:0 a:0 [SEP]:0 e:1 [SEP]:1");
    // No room at all for a pair.
    ASSERT_RENDER(small, "a b", "c d", 3, "[CLS]:0 [SEP]:0 [SEP]:1");
    // Exactly fits: nothing removed.
    ASSERT_RENDER(small, "a b", "c d", 7, "[CLS]:0 a:0 b:0 [SEP]:0 c:1 d:1 [SEP]:1");
}
END_TEST

START_TEST(wordpiece_rules) {
    ASSERT_PIECES(small, "unaffable", "[CLS] un ##aff ##able [SEP]");
    ASSERT_PIECES(small, "abc abd", "[CLS] ab ##c ab ##d [SEP]");
    // "abx": ab matches, then nothing for x -> the whole word is [UNK].
    ASSERT_PIECES(small, "abx a", "[CLS] [UNK] a [SEP]");
    // Punctuation splits words; upper case is lowered.
    ASSERT_PIECES(small, "A,b!!", "[CLS] a , b ! ! [SEP]");
    // Words of 100 characters are split, longer ones are [UNK] whole.
    char dir[64];
    make_model(dir, sizeof dir, "[UNK]\n[CLS]\n[SEP]\na\n##a\n", NULL);
    en_tokenizer *t = load_or_fail(dir);
    char word[102];
    memset(word, 'a', 101);
    word[101] = '\0';
    const char *r = pieces(t, word);
    ck_assert_str_eq(r, "[CLS] [UNK] [SEP]");
    word[100] = '\0';
    r = pieces(t, word);
    ck_assert_int_eq((int)strlen(r), (int)strlen("[CLS] a [SEP]") + 99 * 4);
    // 100 characters counted after accent stripping: 99 x "a" + "a\u0301" is 101 code
    // points before and 100 after.
    char acc[128];
    memset(acc, 'a', 100);
    memcpy(acc + 100, "\xcc\x81", 3);
    r = pieces(t, acc);
    ck_assert_int_eq((int)strlen(r), (int)strlen("[CLS] a [SEP]") + 99 * 4);
    en_tokenizer_free(t);
    ck_assert_int_eq(tc_remove_tree(dir), 0);
}
END_TEST

// Python's str.lower() is more than a per-character map: U+0130 becomes "i" + U+0307 and a
// capital sigma at the end of a word becomes a final sigma.
START_TEST(python_lowercasing) {
    ASSERT_PIECES(small, "\xce\x9f\xce\x94\xce\x9f\xce\xa3", "[CLS] ο ##δ ##ο ##ς [SEP]"); // ΟΔΟΣ
    ASSERT_PIECES(small, "\xce\xa3\xce\x9f", "[CLS] σ ##ο [SEP]");                         // ΣΟ
    ASSERT_PIECES(small, "\xce\xa3", "[CLS] σ [SEP]");                                     // Σ
    // ΟΣ. and ΟΣ.Ο: '.' is case-ignorable, so only a cased letter after it cancels "final".
    ASSERT_PIECES(small, "\xce\x9f\xce\xa3.", "[CLS] ο ##ς . [SEP]");
    ASSERT_PIECES(small, "\xce\x9f\xce\xa3.\xce\x9f", "[CLS] ο ##σ . ο [SEP]");
    ASSERT_PIECES(small, "\xc4\xb0", "[CLS] i [SEP]");     // İ -> i + U+0307 -> i
    ASSERT_PIECES(small, "\xe1\xba\x9e", "[CLS] ß [SEP]"); // ẞ -> ß
}
END_TEST

START_TEST(invalid_utf8_dropped) {
    ASSERT_PIECES(small,
                  "a\xff"
                  "b c\xc3",
                  "[CLS] ab c [SEP]");
    ASSERT_PIECES(small,
                  "\xe0\x80\x80"
                  "a\xed\xa0\x80"
                  "b\xf4\x90\x80\x80",
                  "[CLS] ab [SEP]");
    ASSERT_PIECES(small,
                  "\xc0\xaf"
                  "a\x80\xbf",
                  "[CLS] a [SEP]");
}
END_TEST

START_TEST(config_options) {
    const char *vocab = "[UNK]\n[CLS]\n[SEP]\nHello\nhello\ncafé\ncafe\n好\n好好\nxé\n";
    char dir[64];
    struct {
        const char *config, *text, *want;
    } cases[] = {
        {NULL, "Hello Café", "[CLS] hello cafe [SEP]"},
        {"{}", "Hello Café", "[CLS] hello cafe [SEP]"},
        {"{\"do_lower_case\": false}", "Hello café", "[CLS] Hello café [SEP]"},
        // Cased: NFC first, so a decomposed é finds the precomposed piece.
        {"{\"do_lower_case\": false}", "cafe\xcc\x81", "[CLS] café [SEP]"},
        {"{\"do_lower_case\": true, \"strip_accents\": false}", "CAFÉ", "[CLS] café [SEP]"},
        {"{\"do_lower_case\": false, \"strip_accents\": true}", "Café", "[CLS] [UNK] [SEP]"},
        {"{\"do_lower_case\": false, \"strip_accents\": true}", "cafÉ", "[CLS] [UNK] [SEP]"},
        {"{\"do_lower_case\": false, \"strip_accents\": true}", "café", "[CLS] cafe [SEP]"},
        {"{\"tokenize_chinese_chars\": false}", "好好", "[CLS] 好好 [SEP]"},
        {"{\"tokenize_chinese_chars\": true}", "好好", "[CLS] 好 好 [SEP]"},
        {"{\"unk_token\": {\"content\": \"hello\"}}", "zzz", "[CLS] hello [SEP]"},
        {"{\"cls_token\": \"cafe\", \"sep_token\": \"hello\"}", "café", "cafe cafe hello"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        make_model(dir, sizeof dir, vocab, cases[i].config);
        en_tokenizer *t = load_or_fail(dir);
        const char *got = pieces(t, cases[i].text);
        ck_assert_msg(strcmp(got, cases[i].want) == 0, "config %s, \"%s\": got \"%s\", want \"%s\"",
                      cases[i].config ? cases[i].config : "(none)", cases[i].text, got,
                      cases[i].want);
        en_tokenizer_free(t);
        ck_assert_int_eq(tc_remove_tree(dir), 0);
    }
}
END_TEST

// Python's universal newlines: "\r\n" and "\r" end lines too; a last line needs no newline.
START_TEST(vocab_line_endings) {
    char dir[64];
    make_model(dir, sizeof dir, "[UNK]\r\n[CLS]\r[SEP]\n\nb\r\na", NULL);
    en_tokenizer *t = load_or_fail(dir);
    ck_assert_int_eq(en_tokenizer_vocab_size(t), 6);
    ck_assert_str_eq(en_tokenizer_piece(t, 3), ""); // an empty line is a piece, as in HF
    ck_assert_str_eq(en_tokenizer_piece(t, 4), "b");
    ck_assert_str_eq(en_tokenizer_piece(t, 5), "a");
    ASSERT_RENDER(t, "a b", NULL, 16, "[CLS]:0 a:0 b:0 [SEP]:0");
    en_tokenizer_free(t);
    ck_assert_int_eq(tc_remove_tree(dir), 0);
}
END_TEST

/* ---- Errors ----------------------------------------------------------------------------- */

static void expect_load_error(const char *vocab, const char *config, int code, const char *in_msg) {
    char dir[64];
    make_model(dir, sizeof dir, vocab, config);
    en_tokenizer *t = (en_tokenizer *)1;
    en_diag diag = {{0}};
    int rc = en_tokenizer_load(dir, &t, &diag);
    ck_assert_msg(rc == code, "got %d (%s), want %d; message: %s", rc, en_strerror(rc), code,
                  diag.msg);
    ck_assert_ptr_null(t);
    ck_assert_msg(strstr(diag.msg, dir) != NULL, "message does not name %s: %s", dir, diag.msg);
    ck_assert_msg(strstr(diag.msg, in_msg) != NULL, "message lacks \"%s\": %s", in_msg, diag.msg);
    ck_assert_int_eq(tc_remove_tree(dir), 0);
}

START_TEST(missing_vocab) {
    en_tokenizer *t = (en_tokenizer *)1;
    en_diag diag = {{0}};
    int rc = en_tokenizer_load("/nonexistent/searchd-model", &t, &diag);
    ck_assert_int_eq(rc, -ENOENT);
    ck_assert_ptr_null(t);
    ck_assert_msg(strstr(diag.msg, "/nonexistent/searchd-model/vocab.txt") != NULL, "%s", diag.msg);
}
END_TEST

START_TEST(bad_vocab) {
    expect_load_error("[UNK]\n[SEP]\na\n", NULL, EN_EVOCAB, "[CLS]");
    expect_load_error("[UNK]\n[CLS]\na\n", NULL, EN_EVOCAB, "[SEP]");
    expect_load_error("[CLS]\n[SEP]\na\n", NULL, EN_EVOCAB, "[UNK]");
    expect_load_error("", NULL, EN_EVOCAB, "empty");
    expect_load_error("[UNK]\n[CLS]\n[SEP]\na\nb\na\n", NULL, EN_EVOCAB, "line 6");
    expect_load_error("[UNK]\n[CLS]\n[SEP]\na\xff\n", NULL, EN_EVOCAB, "line 4");
    // unk_token renamed to a piece that does not exist
    expect_load_error("[UNK]\n[CLS]\n[SEP]\n", "{\"unk_token\": \"<unk>\"}", EN_EVOCAB, "<unk>");
}
END_TEST

START_TEST(bad_config) {
    const char *v = "[UNK]\n[CLS]\n[SEP]\n";
    expect_load_error(v, "{\"do_lower_case\": ", EN_EFORMAT, "tokenizer_config.json");
    expect_load_error(v, "[1, 2]", EN_EFORMAT, "not a JSON object");
    expect_load_error(v, "{\"do_lower_case\": \"yes\"}", EN_EFORMAT, "do_lower_case");
    expect_load_error(v, "{\"strip_accents\": 1}", EN_EFORMAT, "strip_accents");
    expect_load_error(v, "{\"tokenize_chinese_chars\": []}", EN_EFORMAT, "tokenize_chinese");
    expect_load_error(v, "{\"cls_token\": 5}", EN_EFORMAT, "cls_token");
    expect_load_error(v, "{\"do_basic_tokenize\": false}", EN_EFORMAT, "do_basic_tokenize");
}
END_TEST

Suite *tokenizer_suite(void) {
    Suite *s = suite_create("tokenizer");
    TCase *fx = tcase_create("fixtures");
    tcase_set_timeout(fx, 300);
    const char *const *names;
    tcase_add_loop_test(fx, fixture_shared_models, 0, shared_models("tokenize.jsonl", &names));
    tcase_add_test(fx, fixture_embedded_demo_model);
    tcase_add_test(fx, shared_between_threads);
    suite_add_tcase(s, fx);
    TCase *hand = tcase_create("hand-computed");
    tcase_add_checked_fixture(hand, small_setup, small_teardown);
    tcase_add_test(hand, api_basics);
    tcase_add_test(hand, empty_texts);
    tcase_add_test(hand, pair_types);
    tcase_add_test(hand, truncation);
    tcase_add_test(hand, wordpiece_rules);
    tcase_add_test(hand, python_lowercasing);
    tcase_add_test(hand, invalid_utf8_dropped);
    suite_add_tcase(s, hand);
    TCase *cfg = tcase_create("config and errors");
    tcase_add_test(cfg, config_options);
    tcase_add_test(cfg, vocab_line_endings);
    tcase_add_test(cfg, missing_vocab);
    tcase_add_test(cfg, bad_vocab);
    tcase_add_test(cfg, bad_config);
    suite_add_tcase(s, cfg);
    return s;
}
