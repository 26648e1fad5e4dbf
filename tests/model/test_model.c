/* The checkpoint loader: real checkpoints (the F16 demo model and the F32 L6-H256 model) against
 * the raw file decoded here independently; F32/F16/BF16 of one random checkpoint against each
 * other; exact F16/BF16 special values; and the bad-input matrix, each case asserting the error
 * code and that the message names the problem. Corrupt checkpoints are made from mkmodel output
 * in temp dirs. */
#include <check.h>
#include <errno.h>
#include <jansson.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "engine/en_forward.h"
#include "engine/en_model.h"
#include "mkmodel_lib.h"
#include "tests/common/tc_env.h"
#include "tests/common/tc_files.h"
#include "tests/common/tc_model.h"
#include "tests/common/tc_run.h"
#include "tests/common/tc_temp.h"

Suite *model_suite(void);

// The tiny checkpoint most tests corrupt.
enum { T_L = 2, T_H = 16, T_HEADS = 2, T_FFN = 32, T_VOCAB = 60, T_LABELS = 3, T_POS = 24 };

static char tmpdir[64];

static void make_tmpdir(void) {
    tc_temp_dir_or_fail(tmpdir, sizeof tmpdir, "model");
}

static void remove_tmpdir(void) {
    ck_assert_int_eq(tc_remove_tree(tmpdir), 0);
}

// Arithmetic decoders (value = mantissa * 2^exponent), unlike the loader's bit shuffling.
static float ref_f16(uint16_t h) {
    int e = h >> 10 & 31, f = h & 1023;
    float v = e == 31  ? (f ? NAN : INFINITY)
              : e == 0 ? ldexpf((float)f, -24)
                       : ldexpf((float)(f + 1024), e - 25);
    return h & 0x8000 ? -v : v;
}

static float ref_bf16(uint16_t h) {
    int e = h >> 7 & 255, f = h & 127;
    float v = e == 255 ? (f ? NAN : INFINITY)
              : e == 0 ? ldexpf((float)f, -133)
                       : ldexpf((float)(f + 128), e - 134);
    return h & 0x8000 ? -v : v;
}

static float ref_f32(const uint8_t *p) {
    uint32_t bits =
        (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
    float v;
    memcpy(&v, &bits, sizeof v);
    return v;
}

static uint32_t bits_of(float f) {
    uint32_t b;
    memcpy(&b, &f, sizeof b);
    return b;
}

static uint64_t ref_fnv1a(const uint8_t *p, size_t n) {
    uint64_t h = 14695981039346656037ull;
    for (size_t i = 0; i < n; i++) {
        h ^= p[i];
        h *= 1099511628211ull;
    }
    return h;
}

/* Where each checkpoint tensor must land in the model, written from the HF layout. */
typedef struct expect {
    char name[128];
    const float *p;
    size_t count;
} expect;

static int expected_tensors(const en_model *m, expect *e) {
    const en_config *c = &m->cfg;
    size_t H = (size_t)c->hidden, I = (size_t)c->ffn;
    int n = 0;
#define E(ptr, cnt, ...)                                                                           \
    do {                                                                                           \
        snprintf(e[n].name, sizeof e[n].name, __VA_ARGS__);                                        \
        e[n].p = (ptr), e[n].count = (cnt), n++;                                                   \
    } while (0)
    E(m->w.word_emb, (size_t)c->vocab_size * H, "bert.embeddings.word_embeddings.weight");
    E(m->w.pos_emb, (size_t)c->max_pos * H, "bert.embeddings.position_embeddings.weight");
    E(m->w.type_emb, (size_t)c->type_vocab * H, "bert.embeddings.token_type_embeddings.weight");
    E(m->w.emb_ln_g, H, "bert.embeddings.LayerNorm.weight");
    E(m->w.emb_ln_b, H, "bert.embeddings.LayerNorm.bias");
    for (int l = 0; l < c->layers; l++) {
        const en_layer_weights *w = &m->w.layer[l];
        const char *p = "bert.encoder.layer.";
        E(w->wqkv, H * H, "%s%d.attention.self.query.weight", p, l);
        E(w->wqkv + H * H, H * H, "%s%d.attention.self.key.weight", p, l);
        E(w->wqkv + 2 * H * H, H * H, "%s%d.attention.self.value.weight", p, l);
        E(w->bqkv, H, "%s%d.attention.self.query.bias", p, l);
        E(w->bqkv + H, H, "%s%d.attention.self.key.bias", p, l);
        E(w->bqkv + 2 * H, H, "%s%d.attention.self.value.bias", p, l);
        E(w->wo, H * H, "%s%d.attention.output.dense.weight", p, l);
        E(w->bo, H, "%s%d.attention.output.dense.bias", p, l);
        E(w->ln1_g, H, "%s%d.attention.output.LayerNorm.weight", p, l);
        E(w->ln1_b, H, "%s%d.attention.output.LayerNorm.bias", p, l);
        E(w->w1, I * H, "%s%d.intermediate.dense.weight", p, l);
        E(w->b1, I, "%s%d.intermediate.dense.bias", p, l);
        E(w->w2, H * I, "%s%d.output.dense.weight", p, l);
        E(w->b2, H, "%s%d.output.dense.bias", p, l);
        E(w->ln2_g, H, "%s%d.output.LayerNorm.weight", p, l);
        E(w->ln2_b, H, "%s%d.output.LayerNorm.bias", p, l);
    }
    E(m->w.pool_w, H * H, "bert.pooler.dense.weight");
    E(m->w.pool_b, H, "bert.pooler.dense.bias");
    E(m->w.cls_w, (size_t)c->num_labels * H, "classifier.weight");
    E(m->w.cls_b, (size_t)c->num_labels, "classifier.bias");
#undef E
    return n;
}

/* Compares every weight of `m` with the file decoded here; returns how many were compared. */
static size_t check_against_file(const en_model *m, const char *dir) {
    char path[1024];
    snprintf(path, sizeof path, "%s/model.safetensors", dir);
    size_t len;
    uint8_t *file = (uint8_t *)tc_read_file(path, &len);
    ck_assert_uint_eq(m->weights_hash, ref_fnv1a(file, len));
    uint64_t hlen = 0;
    for (int i = 7; i >= 0; i--)
        hlen = hlen << 8 | file[i];
    json_t *hdr = json_loadb((const char *)file + 8, (size_t)hlen, 0, NULL);
    ck_assert_ptr_nonnull(hdr);
    const uint8_t *data = file + 8 + hlen;
    expect *e = malloc((20 + 16 * EN_MAX_LAYERS) * sizeof *e);
    int n = expected_tensors(m, e);
    size_t compared = 0;
    for (int i = 0; i < n; i++) {
        json_t *t = json_object_get(hdr, e[i].name);
        ck_assert_msg(t != NULL, "%s not in %s", e[i].name, path);
        const char *dt = json_string_value(json_object_get(t, "dtype"));
        ck_assert_str_eq(dt, m->dtype);
        size_t begin =
            (size_t)json_integer_value(json_array_get(json_object_get(t, "data_offsets"), 0));
        size_t end =
            (size_t)json_integer_value(json_array_get(json_object_get(t, "data_offsets"), 1));
        size_t es = strcmp(dt, "F32") == 0 ? 4 : 2;
        ck_assert_uint_eq(end - begin, e[i].count * es);
        size_t bad = 0;
        for (size_t k = 0; k < e[i].count; k++) {
            const uint8_t *q = data + begin + k * es;
            uint16_t h = (uint16_t)(q[0] | q[1] << 8);
            float want = es == 4 ? ref_f32(q) : strcmp(dt, "F16") == 0 ? ref_f16(h) : ref_bf16(h);
            float got = e[i].p[k];
            bad += !(bits_of(got) == bits_of(want) || (isnan(got) && isnan(want)));
        }
        ck_assert_msg(bad == 0, "%s: %zu of %zu values differ from the file", e[i].name, bad,
                      e[i].count);
        compared += e[i].count;
    }
    free(e);
    json_decref(hdr);
    free(file);
    return compared;
}

// --- helpers that make and corrupt checkpoints ---

static void make_tiny(const char *dir, const char *dtype, uint64_t seed, int position_ids) {
    mk_opts o;
    mk_opts_init(&o);
    o.layers = T_L, o.hidden = T_H, o.heads = T_HEADS, o.ffn = T_FFN;
    o.vocab = T_VOCAB, o.labels = T_LABELS, o.max_pos = T_POS;
    o.dtype = dtype, o.seed = seed, o.position_ids = position_ids;
    en_diag d = {""};
    int rc = mk_write_model(dir, &o, &d);
    ck_assert_msg(rc == 0, "mk_write_model: %s", d.msg);
}

static char *sub(const char *dir, const char *file) {
    static char buf[4][1024];
    static int next;
    char *p = buf[next++ % 4];
    snprintf(p, sizeof buf[0], "%s/%s", dir, file);
    return p;
}

/* Loading must fail with `code` and a message holding every string given (NULL-terminated). */
static void expect_fail(const char *dir, int code, ...) {
    en_model *m = (en_model *)&m; // must be reset to NULL
    en_diag d = {""};
    int rc = en_model_load(dir, &m, &d);
    ck_assert_msg(rc == code, "expected %s, got %s (%d): %s", en_strerror(code), en_strerror(rc),
                  rc, d.msg);
    ck_assert_ptr_null(m);
    va_list ap;
    va_start(ap, code);
    for (const char *s; (s = va_arg(ap, const char *)) != NULL;)
        ck_assert_msg(strstr(d.msg, s) != NULL, "message '%s' lacks '%s'", d.msg, s);
    va_end(ap);
}

/* The safetensors header as JSON, and the data area, of dir's model. */
static json_t *load_header(const char *dir, uint8_t **data, size_t *data_len) {
    size_t len;
    uint8_t *file = (uint8_t *)tc_read_file(sub(dir, "model.safetensors"), &len);
    uint64_t hlen = 0;
    for (int i = 7; i >= 0; i--)
        hlen = hlen << 8 | file[i];
    json_t *root = json_loadb((const char *)file + 8, (size_t)hlen, 0, NULL);
    ck_assert_ptr_nonnull(root);
    *data_len = len - 8 - (size_t)hlen;
    *data = malloc(*data_len + 1);
    memcpy(*data, file + 8 + hlen, *data_len);
    free(file);
    return root;
}

static void store_raw_header(const char *dir, const char *text, const uint8_t *data,
                             size_t data_len) {
    size_t len = strlen(text), padded = (len + 7) / 8 * 8, total = 8 + padded + data_len;
    uint8_t *file = malloc(total);
    for (int i = 0; i < 8; i++)
        file[i] = (uint8_t)((uint64_t)padded >> (8 * i));
    memcpy(file + 8, text, len);
    memset(file + 8 + len, ' ', padded - len);
    memcpy(file + 8 + padded, data, data_len);
    tc_write_file(sub(dir, "model.safetensors"), file, total);
    free(file);
}

static void store_header(const char *dir, json_t *root, const uint8_t *data, size_t data_len) {
    char *text = json_dumps(root, JSON_COMPACT);
    store_raw_header(dir, text, data, data_len);
    free(text);
}

/* Sets header[tensor][key] = value (steals it), or removes the tensor when key is NULL. */
static void set_tensor(const char *dir, const char *tensor, const char *key, json_t *value) {
    uint8_t *data;
    size_t dlen;
    json_t *root = load_header(dir, &data, &dlen);
    json_t *t = json_object_get(root, tensor);
    ck_assert_msg(t != NULL, "no %s", tensor);
    if (key)
        json_object_set_new(t, key, value);
    else
        json_object_del(root, tensor);
    store_header(dir, root, data, dlen);
    json_decref(root);
    free(data);
}

static json_int_t tensor_offset(const char *dir, const char *tensor, int which) {
    uint8_t *data;
    size_t dlen;
    json_t *root = load_header(dir, &data, &dlen);
    json_int_t v = json_integer_value(json_array_get(
        json_object_get(json_object_get(root, tensor), "data_offsets"), (size_t)which));
    json_decref(root);
    free(data);
    return v;
}

/* Sets config[key] = value (steals it), or removes key when value is NULL. */
static void set_config(const char *dir, const char *key, json_t *value) {
    json_t *c = json_load_file(sub(dir, "config.json"), 0, NULL);
    ck_assert_ptr_nonnull(c);
    if (value)
        json_object_set_new(c, key, value);
    else
        json_object_del(c, key);
    ck_assert_int_eq(json_dump_file(c, sub(dir, "config.json"), JSON_INDENT(2)), 0);
    json_decref(c);
}

static void set_header_length(const char *dir, uint64_t v) {
    size_t len;
    uint8_t *file = (uint8_t *)tc_read_file(sub(dir, "model.safetensors"), &len);
    for (int i = 0; i < 8; i++)
        file[i] = (uint8_t)(v >> (8 * i));
    tc_write_file(sub(dir, "model.safetensors"), file, len);
    free(file);
}

// --- real checkpoints ---

START_TEST(test_demo_model_f16) {
    en_model *m = tc_load_model(tc_demo_model());
    const en_config *c = &m->cfg;
    ck_assert_int_eq(c->vocab_size, 13486);
    ck_assert_int_eq(c->hidden, 128);
    ck_assert_int_eq(c->layers, 4);
    ck_assert_int_eq(c->heads, 2);
    ck_assert_int_eq(c->ffn, 512);
    ck_assert_int_eq(c->max_pos, 512);
    ck_assert_int_eq(c->type_vocab, 2);
    ck_assert_int_eq(c->num_labels, 2);
    ck_assert_double_eq(c->ln_eps, 1e-12);
    ck_assert_str_eq(c->labels[0], "negative");
    ck_assert_str_eq(c->labels[1], "positive");
    ck_assert_str_eq(m->dtype, "F16");
    ck_assert_ptr_nonnull(m->tok);
    ck_assert_int_eq(en_tokenizer_vocab_size(m->tok), 13486);
    // Values and hash read from the file with Python's struct ('<e') and an FNV-1a script.
    ck_assert_uint_eq(m->weights_hash, 0x4d282ee47a57ff1ull);
    ck_assert_float_eq(m->w.cls_b[0], -0.0137939453125f);
    ck_assert_float_eq(m->w.cls_b[1], 0.0137939453125f);
    ck_assert_float_eq(m->w.cls_w[5], -0.043975830078125f);
    ck_assert_float_eq(m->w.layer[2].wqkv[128 * 128 + 7], -0.0135040283203125f); // key[0][7]
    ck_assert_float_eq(m->w.word_emb[1000], 0.0021915435791015625f);
    // Every weight (6,331 of them F16 subnormals) against the independent decoder.
    size_t n = check_against_file(m, tc_demo_model());
    size_t want = 13486 * 128 + 512 * 128 + 2 * 128 + 2 * 128 +
                  4 * (4 * 128 * 128 + 2 * 128 * 512 + 4 * 128 + 512 + 128 + 4 * 128) + 128 * 128 +
                  128 + 2 * 128 + 2;
    ck_assert_uint_eq(n, want);
    ck_assert_uint_ge(m->arena_floats, want);
    ck_assert_uint_le(m->arena_floats, want + 16 * 100); // only alignment padding on top
    en_model_free(m);
}
END_TEST

START_TEST(test_l6_model_f32) {
    char dir[1024];
    tc_shared_path(dir, sizeof dir, "models/sst2-bert-L6-H256");
    en_model *m = tc_load_model(dir);
    const en_config *c = &m->cfg;
    ck_assert_int_eq(c->vocab_size, 30522);
    ck_assert_int_eq(c->hidden, 256);
    ck_assert_int_eq(c->layers, 6);
    ck_assert_int_eq(c->heads, 4);
    ck_assert_int_eq(c->ffn, 1024);
    ck_assert_int_eq(c->max_pos, 512);
    ck_assert_int_eq(c->num_labels, 2);
    ck_assert_str_eq(c->labels[1], "positive");
    ck_assert_str_eq(m->dtype, "F32");
    ck_assert_uint_eq(m->weights_hash, 0x2d16a92ca2b4b30aull);
    ck_assert_uint_eq(bits_of(m->w.cls_b[0]), 0xbba4cbcfu);
    ck_assert_uint_eq(bits_of(m->w.cls_b[1]), 0x3ba4cbcau);
    ck_assert_uint_eq(bits_of(m->w.cls_w[5]), 0x3ba6a32bu);
    ck_assert_uint_eq(bits_of(m->w.layer[2].wqkv[256 * 256 + 7]), 0x3c6878b7u);
    ck_assert_uint_eq(bits_of(m->w.word_emb[1000]), 0x3d3071d0u);
    check_against_file(m, dir);
    en_model_free(m);
}
END_TEST

// --- dtypes ---

START_TEST(test_dtypes_consistent) {
    char d32[128], d16[128], dbf[128];
    snprintf(d32, sizeof d32, "%s/f32", tmpdir);
    snprintf(d16, sizeof d16, "%s/f16", tmpdir);
    snprintf(dbf, sizeof dbf, "%s/bf16", tmpdir);
    make_tiny(d32, "F32", 7, 0);
    make_tiny(d16, "F16", 7, 0);
    make_tiny(dbf, "BF16", 7, 0);
    en_model *m32 = tc_load_model(d32), *m16 = tc_load_model(d16), *mbf = tc_load_model(dbf);
    ck_assert_str_eq(m32->dtype, "F32");
    ck_assert_str_eq(m16->dtype, "F16");
    ck_assert_str_eq(mbf->dtype, "BF16");
    check_against_file(m32, d32);
    check_against_file(m16, d16);
    check_against_file(mbf, dbf);
    ck_assert_uint_ne(m32->weights_hash, m16->weights_hash);
    ck_assert_uint_ne(m16->weights_hash, mbf->weights_hash);
    ck_assert_uint_eq(m32->arena_floats, m16->arena_floats);
    ck_assert_uint_eq(m32->arena_floats, mbf->arena_floats);
    // Same seed, same values: F16/BF16 hold the F32 values rounded to nearest.
    size_t nonzero = 0;
    for (size_t i = 0; i < m32->arena_floats; i++) {
        float x = m32->arena[i], h = m16->arena[i], b = mbf->arena[i];
        ck_assert_msg(fabsf(h - x) <= fabsf(x) * 0x1p-11f + 0x1p-25f, "F16 %zu: %g vs %g", i, h, x);
        ck_assert_msg(fabsf(b - x) <= fabsf(x) * 0x1p-8f, "BF16 %zu: %g vs %g", i, b, x);
        ck_assert_uint_eq(bits_of(h), bits_of(ref_f16(mk_f32_to_f16(x))));
        ck_assert_uint_eq(bits_of(b), bits_of(ref_bf16(mk_f32_to_bf16(x))));
        nonzero += x != 0;
    }
    ck_assert_uint_gt(nonzero, m32->arena_floats / 2);
    // The random weights look like N(0, 0.02); LayerNorm is 1 and 0.
    ck_assert_float_eq(m16->w.layer[1].ln2_g[3], 1.0f);
    ck_assert_float_eq(mbf->w.layer[1].ln1_b[3], 0.0f);
    double ss = 0;
    size_t nw = (size_t)T_VOCAB * T_H;
    for (size_t i = 0; i < nw; i++)
        ss += (double)m32->w.word_emb[i] * m32->w.word_emb[i];
    ck_assert_double_le(fabs(sqrt(ss / (double)nw) - 0.02), 0.003);
    en_model_free(m32);
    en_model_free(m16);
    en_model_free(mbf);
}
END_TEST

/* Writes `n` raw 16-bit patterns into the first elements of pooler.dense.bias of the F16 or
 * BF16 model in `dir`. */
static void poke_bits(const char *dir, const uint16_t *bits, int n) {
    json_int_t begin = tensor_offset(dir, "bert.pooler.dense.bias", 0);
    size_t len;
    uint8_t *file = (uint8_t *)tc_read_file(sub(dir, "model.safetensors"), &len);
    uint64_t hlen = 0;
    for (int i = 7; i >= 0; i--)
        hlen = hlen << 8 | file[i];
    for (int i = 0; i < n; i++) {
        file[8 + hlen + (size_t)begin + 2 * (size_t)i] = (uint8_t)bits[i];
        file[8 + hlen + (size_t)begin + 2 * (size_t)i + 1] = (uint8_t)(bits[i] >> 8);
    }
    tc_write_file(sub(dir, "model.safetensors"), file, len);
    free(file);
}

START_TEST(test_f16_special_values) {
    make_tiny(tmpdir, "F16", 1, 0);
    static const uint16_t in[] = {0x0001, 0x03ff, 0x8001, 0x0400, 0x7bff, 0x7c00,
                                  0xfc00, 0x7e00, 0x7c01, 0x8000, 0x3c00, 0x3555};
    static const uint32_t want[] = {
        0x33800000, // 2^-24, the smallest subnormal
        0x387fc000, // 1023 * 2^-24, the largest subnormal
        0xb3800000, // -2^-24
        0x38800000, // 2^-14, the smallest normal
        0x477fe000, // 65504, the largest finite
        0x7f800000, // inf
        0xff800000, // -inf
        0x7fc00000, // quiet NaN
        0x7f802000, // NaN with payload 1: stays a NaN with the payload shifted up
        0x80000000, // -0
        0x3f800000, // 1
        0x3eaaa000, // 0.333251953125
    };
    int n = (int)(sizeof in / sizeof in[0]);
    poke_bits(tmpdir, in, n);
    en_model *m = tc_load_model(tmpdir);
    for (int i = 0; i < n; i++)
        ck_assert_msg(bits_of(m->w.pool_b[i]) == want[i], "F16 %04x -> %08x, want %08x", in[i],
                      bits_of(m->w.pool_b[i]), want[i]);
    en_model_free(m);
}
END_TEST

START_TEST(test_bf16_special_values) {
    make_tiny(tmpdir, "BF16", 1, 0);
    static const uint16_t in[] = {0x0001, 0x8080, 0x7f80, 0xff80, 0x7fc1, 0x3f80, 0x8000};
    static const uint32_t want[] = {0x00010000, 0x80800000, 0x7f800000, 0xff800000,
                                    0x7fc10000, 0x3f800000, 0x80000000};
    int n = (int)(sizeof in / sizeof in[0]);
    poke_bits(tmpdir, in, n);
    en_model *m = tc_load_model(tmpdir);
    for (int i = 0; i < n; i++)
        ck_assert_msg(bits_of(m->w.pool_b[i]) == want[i], "BF16 %04x -> %08x, want %08x", in[i],
                      bits_of(m->w.pool_b[i]), want[i]);
    en_model_free(m);
}
END_TEST

// --- accepted variations ---

START_TEST(test_extra_tensor_ignored) {
    char plain[128], extra[128];
    snprintf(plain, sizeof plain, "%s/plain", tmpdir);
    snprintf(extra, sizeof extra, "%s/extra", tmpdir);
    make_tiny(plain, "F32", 3, 0);
    make_tiny(extra, "F32", 3, 1); // plus an unused I64 bert.embeddings.position_ids
    en_model *a = tc_load_model(plain), *b = tc_load_model(extra);
    ck_assert_uint_eq(a->arena_floats, b->arena_floats);
    ck_assert_mem_eq(a->arena, b->arena, a->arena_floats * sizeof(float));
    ck_assert_uint_ne(a->weights_hash, b->weights_hash); // the extra bytes are hashed too
    check_against_file(b, extra);
    en_model_free(a);
    en_model_free(b);
}
END_TEST

/* Old names: no "bert." prefix anywhere, LayerNorm gamma/beta. Same weights as the original. */
START_TEST(test_old_names) {
    make_tiny(tmpdir, "F32", 5, 0);
    en_model *a = tc_load_model(tmpdir);
    uint8_t *data;
    size_t dlen;
    json_t *root = load_header(tmpdir, &data, &dlen), *renamed = json_object();
    const char *key;
    json_t *v;
    json_object_foreach(root, key, v) {
        char name[256];
        snprintf(name, sizeof name, "%s", strncmp(key, "bert.", 5) == 0 ? key + 5 : key);
        char *ln = strstr(name, "LayerNorm.");
        if (ln && strcmp(ln, "LayerNorm.weight") == 0)
            strcpy(ln, "LayerNorm.gamma");
        else if (ln && strcmp(ln, "LayerNorm.bias") == 0)
            strcpy(ln, "LayerNorm.beta");
        json_object_set(renamed, name, v);
    }
    ck_assert_ptr_nonnull(json_object_get(renamed, "encoder.layer.1.output.LayerNorm.gamma"));
    store_header(tmpdir, renamed, data, dlen);
    en_model *b = tc_load_model(tmpdir);
    ck_assert_mem_eq(a->arena, b->arena, a->arena_floats * sizeof(float));
    // Both the old and the new name of one tensor: ambiguous (an empty tensor, so that the
    // header itself stays valid).
    json_object_set_new(renamed, "bert.embeddings.LayerNorm.weight",
                        json_pack("{s:s, s:[i], s:[I, I]}", "dtype", "F32", "shape", 0,
                                  "data_offsets", (json_int_t)dlen, (json_int_t)dlen));
    store_header(tmpdir, renamed, data, dlen);
    expect_fail(tmpdir, EN_ETENSOR, "model.safetensors", "embeddings.LayerNorm.gamma",
                "bert.embeddings.LayerNorm.weight", NULL);
    json_decref(renamed);
    json_decref(root);
    free(data);
    en_model_free(a);
    en_model_free(b);
}
END_TEST

START_TEST(test_labels_from_config) {
    make_tiny(tmpdir, "F32", 1, 0);
    set_config(tmpdir, "id2label",
               json_pack("{s:s, s:s, s:s}", "0", "neg", "2", "pos", "1", "neutral"));
    set_config(tmpdir, "label2id", json_pack("{s:i, s:i, s:i}", "neg", 0, "neutral", 1, "pos", 2));
    en_model *m = tc_load_model(tmpdir);
    ck_assert_int_eq(m->cfg.num_labels, 3);
    ck_assert_str_eq(m->cfg.labels[0], "neg");
    ck_assert_str_eq(m->cfg.labels[1], "neutral");
    ck_assert_str_eq(m->cfg.labels[2], "pos");
    en_model_free(m);
    // Only num_labels: names LABEL_i.
    set_config(tmpdir, "id2label", NULL);
    set_config(tmpdir, "label2id", NULL);
    set_config(tmpdir, "num_labels", json_integer(3));
    m = tc_load_model(tmpdir);
    ck_assert_int_eq(m->cfg.num_labels, 3);
    ck_assert_str_eq(m->cfg.labels[2], "LABEL_2");
    en_model_free(m);
    // Nothing: BertConfig's default of 2 labels, which the [3, H] classifier contradicts.
    set_config(tmpdir, "num_labels", NULL);
    expect_fail(tmpdir, EN_ESHAPE, "classifier.weight", "[3, 16]", "[2, 16]", NULL);
    // Disagreeing sources.
    set_config(tmpdir, "num_labels", json_integer(3));
    set_config(tmpdir, "id2label", json_pack("{s:s, s:s}", "0", "a", "1", "b"));
    expect_fail(tmpdir, EN_ECONFIG, "config.json", "num_labels", NULL);
    set_config(tmpdir, "num_labels", NULL);
    set_config(tmpdir, "id2label", json_pack("{s:s, s:s, s:s}", "0", "a", "1", "b", "3", "c"));
    expect_fail(tmpdir, EN_ECONFIG, "config.json", "id2label", "'3'", NULL);
    set_config(tmpdir, "id2label", json_pack("{s:s, s:s, s:s}", "0", "a", "1", "b", "2", "c"));
    set_config(tmpdir, "label2id", json_pack("{s:i, s:i, s:i}", "a", 0, "b", 2, "c", 1));
    expect_fail(tmpdir, EN_ECONFIG, "config.json", "label2id", "'b'", NULL);
}
END_TEST

/* An ELECTRA checkpoint whose embeddings (E = 8) are narrower than the encoder (H = 16):
 * written here tensor by tensor, then the embeddings after en_ctx_begin are compared with
 * LayerNorm(word + position + type) projected by electra.embeddings_project, computed here in
 * double. */
enum { E_E = 8 };

static void add_tensor(json_t *hdr, FILE *data, size_t *off, const char *name, int rows, int cols,
                       uint32_t *seed) {
    size_t count = (size_t)rows * (size_t)(cols ? cols : 1);
    for (size_t i = 0; i < count; i++) {
        *seed = *seed * 1664525u + 1013904223u; // a fixed LCG: values in [-0.5, 0.5)
        float v = (float)(*seed >> 8) / (float)(1u << 24) - 0.5f;
        fwrite(&v, sizeof v, 1, data);
    }
    json_t *shape = cols ? json_pack("[i, i]", rows, cols) : json_pack("[i]", rows);
    json_object_set_new(hdr, name,
                        json_pack("{s:s, s:o, s:[I, I]}", "dtype", "F32", "shape", shape,
                                  "data_offsets", (json_int_t)*off,
                                  (json_int_t)(*off + count * 4)));
    *off += count * 4;
}

static void make_electra_projected(const char *dir) {
    make_tiny(dir, "F32", 1, 0); // vocab.txt and tokenizer_config.json
    json_t *cfg =
        json_pack("{s:s, s:[s], s:i, s:i, s:i, s:i, s:i, s:i, s:i, s:i, s:f}", "model_type",
                  "electra", "architectures", "ElectraForSequenceClassification", "vocab_size",
                  T_VOCAB, "hidden_size", T_H, "embedding_size", E_E, "num_hidden_layers", T_L,
                  "num_attention_heads", T_HEADS, "intermediate_size", T_FFN,
                  "max_position_embeddings", T_POS, "type_vocab_size", 2, "layer_norm_eps", 1e-12);
    json_object_set_new(cfg, "num_labels", json_integer(T_LABELS));
    ck_assert_int_eq(json_dump_file(cfg, sub(dir, "config.json"), 0), 0);
    json_decref(cfg);
    json_t *hdr = json_object();
    char *buf = NULL;
    size_t len = 0, off = 0;
    FILE *data = open_memstream(&buf, &len);
    uint32_t seed = 7;
    const char *p = "electra.";
    char name[128];
#define T(rows, cols, ...)                                                                         \
    do {                                                                                           \
        snprintf(name, sizeof name, __VA_ARGS__);                                                  \
        add_tensor(hdr, data, &off, name, rows, cols, &seed);                                      \
    } while (0)
    T(T_VOCAB, E_E, "%sembeddings.word_embeddings.weight", p);
    T(T_POS, E_E, "%sembeddings.position_embeddings.weight", p);
    T(2, E_E, "%sembeddings.token_type_embeddings.weight", p);
    T(E_E, 0, "%sembeddings.LayerNorm.weight", p);
    T(E_E, 0, "%sembeddings.LayerNorm.bias", p);
    T(T_H, E_E, "%sembeddings_project.weight", p);
    T(T_H, 0, "%sembeddings_project.bias", p);
    static const char *const qkvo[] = {"self.query", "self.key", "self.value", "output.dense"};
    for (int l = 0; l < T_L; l++) {
        for (int k = 0; k < 4; k++) {
            T(T_H, T_H, "%sencoder.layer.%d.attention.%s.weight", p, l, qkvo[k]);
            T(T_H, 0, "%sencoder.layer.%d.attention.%s.bias", p, l, qkvo[k]);
        }
        T(T_H, 0, "%sencoder.layer.%d.attention.output.LayerNorm.weight", p, l);
        T(T_H, 0, "%sencoder.layer.%d.attention.output.LayerNorm.bias", p, l);
        T(T_FFN, T_H, "%sencoder.layer.%d.intermediate.dense.weight", p, l);
        T(T_FFN, 0, "%sencoder.layer.%d.intermediate.dense.bias", p, l);
        T(T_H, T_FFN, "%sencoder.layer.%d.output.dense.weight", p, l);
        T(T_H, 0, "%sencoder.layer.%d.output.dense.bias", p, l);
        T(T_H, 0, "%sencoder.layer.%d.output.LayerNorm.weight", p, l);
        T(T_H, 0, "%sencoder.layer.%d.output.LayerNorm.bias", p, l);
    }
    T(T_H, T_H, "classifier.dense.weight");
    T(T_H, 0, "classifier.dense.bias");
    T(T_LABELS, T_H, "classifier.out_proj.weight");
    T(T_LABELS, 0, "classifier.out_proj.bias");
#undef T
    fclose(data);
    store_header(dir, hdr, (const uint8_t *)buf, len);
    json_decref(hdr);
    free(buf);
}

START_TEST(test_electra_projection) {
    make_electra_projected(tmpdir);
    en_model *m = tc_load_model(tmpdir);
    ck_assert_str_eq(en_model_family(m), "ELECTRA");
    ck_assert_int_eq(m->cfg.emb, E_E);
    ck_assert_ptr_nonnull(m->w.proj_w);
    en_ctx *c = NULL;
    ck_assert_int_eq(en_ctx_new(m, 8, &c), 0);
    int32_t ids[5] = {2, 7, 11, 40, 3}, types[5] = {0, 0, 1, 1, 1};
    ck_assert_int_eq(en_ctx_begin(c, ids, types, 5), 0);
    int n0, rows;
    const float *x;
    const int32_t *pos;
    en_ctx_state(c, &n0, &rows, &x, &pos);
    ck_assert_int_eq(rows, 5);
    const en_weights *w = &m->w;
    double worst = 0;
    for (int i = 0; i < 5; i++) {
        double e[E_E], mean = 0, var = 0;
        for (int j = 0; j < E_E; j++) {
            e[j] = (double)w->word_emb[ids[i] * E_E + j] + w->pos_emb[i * E_E + j] +
                   w->type_emb[types[i] * E_E + j];
            mean += e[j] / E_E;
        }
        for (int j = 0; j < E_E; j++)
            var += (e[j] - mean) * (e[j] - mean) / E_E;
        for (int j = 0; j < E_E; j++)
            e[j] = (e[j] - mean) / sqrt(var + 1e-12) * w->emb_ln_g[j] + w->emb_ln_b[j];
        for (int o = 0; o < T_H; o++) {
            double acc = w->proj_b[o];
            for (int j = 0; j < E_E; j++)
                acc += (double)w->proj_w[o * E_E + j] * e[j];
            worst = fmax(worst, fabs(acc - x[i * T_H + o]));
        }
    }
    ck_assert_msg(worst < 1e-5, "projected embeddings differ by %g", worst);
    float logits[T_LABELS];
    ck_assert_int_eq(en_forward(c, ids, types, 5, EN_METRIC_ATTN, NULL, logits, NULL, NULL), 0);
    for (int k = 0; k < T_LABELS; k++)
        ck_assert(isfinite(logits[k]));
    en_ctx_free(c);
    en_model_free(m);
    // Without the projection the checkpoint does not match its config.
    set_tensor(tmpdir, "electra.embeddings_project.weight", NULL, NULL);
    expect_fail(tmpdir, EN_ETENSOR, "electra.embeddings_project.weight", "ELECTRA", NULL);
}
END_TEST

// --- the bad-input matrix: model.safetensors ---

START_TEST(test_truncated) {
    make_tiny(tmpdir, "F32", 1, 0);
    const char *path = sub(tmpdir, "model.safetensors");
    size_t len;
    uint8_t *file = (uint8_t *)tc_read_file(path, &len);
    uint64_t hlen = 0;
    for (int i = 7; i >= 0; i--)
        hlen = hlen << 8 | file[i];
    struct {
        size_t cut;
        const char *says;
    } cuts[] = {
        {0, "too short"},
        {5, "too short"},
        {8, "header length"},
        {8 + 30, "header length"},
        {8 + (size_t)hlen - 1, "header length"},
        {8 + (size_t)hlen, "not inside"},
        {8 + (size_t)hlen + 1000, "not inside"},
        {len - 1, "not inside"},
    };
    for (size_t i = 0; i < sizeof cuts / sizeof cuts[0]; i++) {
        tc_write_file(path, file, cuts[i].cut);
        expect_fail(tmpdir, EN_EFORMAT, "model.safetensors", cuts[i].says, NULL);
    }
    tc_write_file(path, file, len); // intact again: loads
    en_model_free(tc_load_model(tmpdir));
    free(file);
}
END_TEST

START_TEST(test_header_length) {
    make_tiny(tmpdir, "F32", 1, 0);
    size_t len;
    free(tc_read_file(sub(tmpdir, "model.safetensors"), &len));
    set_header_length(tmpdir, len); // longer than the file by 8 bytes
    expect_fail(tmpdir, EN_EFORMAT, "model.safetensors", "header length", "larger than the file",
                NULL);
    set_header_length(tmpdir, 1ull << 40);
    expect_fail(tmpdir, EN_EFORMAT, "model.safetensors", "100000000-byte limit", NULL);
    set_header_length(tmpdir, UINT64_MAX);
    expect_fail(tmpdir, EN_EFORMAT, "model.safetensors", "header length", NULL);
    set_header_length(tmpdir, 0);
    expect_fail(tmpdir, EN_EFORMAT, "model.safetensors", "not valid JSON", NULL);
}
END_TEST

START_TEST(test_garbage_json) {
    make_tiny(tmpdir, "F32", 1, 0);
    uint8_t *data;
    size_t dlen;
    json_decref(load_header(tmpdir, &data, &dlen));
    static const struct {
        const char *header, *says;
        int code;
    } cases[] = {
        {"{\"classifier.bias\": {\"dtype\": \"F32\", ", "not valid JSON", EN_EFORMAT},
        {"\x01\x02garbage\xff", "not valid JSON", EN_EFORMAT},
        {"[1, 2, 3]", "not a JSON object", EN_EFORMAT},
        {"{\"a\": {\"dtype\": \"F32\", \"shape\": [1], \"data_offsets\": [0, 4]}, "
         "\"a\": {\"dtype\": \"F32\", \"shape\": [1], \"data_offsets\": [4, 8]}}",
         "duplicate", EN_EFORMAT},
        {"{\"a\": 5}", "'a' is not an object", EN_EFORMAT},
        {"{\"a\": {\"dtype\": \"F32\", \"shape\": [-1], \"data_offsets\": [0, 4]}}", "shape[0]",
         EN_EFORMAT},
        {"{\"a\": {\"dtype\": \"F32\", \"shape\": \"4\", \"data_offsets\": [0, 4]}}", "'shape'",
         EN_EFORMAT},
        {"{\"a\": {\"dtype\": \"F32\", \"shape\": [1], \"data_offsets\": [0]}}", "data_offsets",
         EN_EFORMAT},
        {"{\"__metadata__\": {\"format\": 1}}", "__metadata__", EN_EFORMAT},
        {"{\"a\": {\"dtype\": \"Q4_K\", \"shape\": [1], \"data_offsets\": [0, 4]}}", "Q4_K",
         EN_EDTYPE},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        store_raw_header(tmpdir, cases[i].header, data, dlen);
        expect_fail(tmpdir, cases[i].code, "model.safetensors", cases[i].says, NULL);
    }
    free(data);
}
END_TEST

START_TEST(test_offsets_outside) {
    make_tiny(tmpdir, "F32", 1, 0);
    uint8_t *data;
    size_t dlen;
    json_decref(load_header(tmpdir, &data, &dlen));
    free(data);
    json_int_t d = (json_int_t)dlen, n = T_LABELS * 4;
    set_tensor(tmpdir, "classifier.bias", "data_offsets", json_pack("[I, I]", d - n + 4, d + 4));
    expect_fail(tmpdir, EN_EFORMAT, "model.safetensors", "classifier.bias", "not inside", NULL);
    set_tensor(tmpdir, "classifier.bias", "data_offsets", json_pack("[I, I]", -4, n - 4));
    expect_fail(tmpdir, EN_EFORMAT, "classifier.bias", "not inside", NULL);
    set_tensor(tmpdir, "classifier.bias", "data_offsets", json_pack("[I, I]", n, 0));
    expect_fail(tmpdir, EN_EFORMAT, "classifier.bias", "not inside", NULL);
    set_tensor(tmpdir, "classifier.bias", "data_offsets",
               json_pack("[I, I]", (json_int_t)1 << 62, ((json_int_t)1 << 62) + n));
    expect_fail(tmpdir, EN_EFORMAT, "classifier.bias", "not inside", NULL);
}
END_TEST

START_TEST(test_size_disagrees_with_shape) {
    make_tiny(tmpdir, "F32", 1, 0);
    set_tensor(tmpdir, "classifier.weight", "shape", json_pack("[i, i]", T_LABELS, T_H + 1));
    expect_fail(tmpdir, EN_EFORMAT, "classifier.weight", "spans 192 bytes", "need 204", NULL);
    // A product of dimensions that overflows 64 bits.
    set_tensor(tmpdir, "classifier.weight", "shape",
               json_pack("[I, I, I]", (json_int_t)1 << 40, (json_int_t)1 << 30, (json_int_t)4));
    expect_fail(tmpdir, EN_EFORMAT, "classifier.weight", "more than", NULL);
}
END_TEST

START_TEST(test_overlap) {
    make_tiny(tmpdir, "F32", 1, 0);
    // pooler.dense.bias ([H] floats) moved onto the start of pooler.dense.weight.
    json_int_t w = tensor_offset(tmpdir, "bert.pooler.dense.weight", 0);
    set_tensor(tmpdir, "bert.pooler.dense.bias", "data_offsets",
               json_pack("[I, I]", w + 8, w + 8 + T_H * 4));
    expect_fail(tmpdir, EN_EFORMAT, "model.safetensors", "overlap", "bert.pooler.dense.weight",
                "bert.pooler.dense.bias", NULL);
}
END_TEST

START_TEST(test_wrong_dtype) {
    make_tiny(tmpdir, "F32", 1, 0);
    set_tensor(tmpdir, "classifier.weight", "dtype", json_string("I32")); // same size as F32
    expect_fail(tmpdir, EN_EDTYPE, "model.safetensors", "classifier.weight", "I32", NULL);
    make_tiny(tmpdir, "F16", 1, 0);
    set_tensor(tmpdir, "bert.encoder.layer.1.output.dense.weight", "dtype", json_string("I16"));
    expect_fail(tmpdir, EN_EDTYPE, "bert.encoder.layer.1.output.dense.weight", "I16", NULL);
}
END_TEST

START_TEST(test_missing_tensor) {
    make_tiny(tmpdir, "F32", 1, 0);
    set_tensor(tmpdir, "bert.encoder.layer.1.attention.self.value.bias", NULL, NULL);
    expect_fail(tmpdir, EN_ETENSOR, "model.safetensors",
                "'bert.encoder.layer.1.attention.self.value.bias' is missing", NULL);
    make_tiny(tmpdir, "F32", 1, 0);
    set_tensor(tmpdir, "classifier.weight", NULL, NULL);
    expect_fail(tmpdir, EN_ETENSOR, "'classifier.weight' is missing", NULL);
}
END_TEST

START_TEST(test_wrong_shape) {
    make_tiny(tmpdir, "F32", 1, 0);
    set_tensor(tmpdir, "classifier.weight", "shape", json_pack("[i, i]", T_H, T_LABELS));
    expect_fail(tmpdir, EN_ESHAPE, "model.safetensors", "classifier.weight", "[16, 3]", "[3, 16]",
                NULL);
    make_tiny(tmpdir, "F32", 1, 0);
    set_tensor(tmpdir, "bert.encoder.layer.0.intermediate.dense.bias", "shape",
               json_pack("[i, i]", 1, T_FFN));
    expect_fail(tmpdir, EN_ESHAPE, "intermediate.dense.bias", "[1, 32]", "[32]", NULL);
    // The config's hidden size against tensors of another: the first tensor tells.
    make_tiny(tmpdir, "F32", 1, 0);
    set_config(tmpdir, "hidden_size", json_integer(32));
    set_config(tmpdir, "num_attention_heads", json_integer(4));
    expect_fail(tmpdir, EN_ESHAPE, "word_embeddings.weight", "[60, 16]", "[60, 32]", NULL);
}
END_TEST

// --- the bad-input matrix: config.json and the vocabulary ---

START_TEST(test_other_architectures) {
    make_tiny(tmpdir, "F32", 1, 0);
    set_config(tmpdir, "model_type", json_string("bert"));
    set_config(tmpdir, "architectures", json_pack("[s]", "BertForMaskedLM"));
    expect_fail(tmpdir, EN_EARCH, "config.json", "BertForMaskedLM",
                "only BertForSequenceClassification", NULL);
    // A supported family whose architecture list names another family's class.
    set_config(tmpdir, "architectures", json_pack("[s]", "RobertaForSequenceClassification"));
    expect_fail(tmpdir, EN_EARCH, "RobertaForSequenceClassification", NULL);
    set_config(tmpdir, "architectures", NULL);
    set_config(tmpdir, "model_type", NULL);
    expect_fail(tmpdir, EN_ECONFIG, "config.json", "'model_type' is missing", NULL);
    set_config(tmpdir, "model_type", json_string("gpt2"));
    expect_fail(tmpdir, EN_EARCH, "config.json", "'gpt2'",
                "supported: BERT, DistilBERT, RoBERTa, "
                "ELECTRA",
                NULL);
}
END_TEST

/* Writes `text` as <tmpdir>/<file>. */
static void put_file(const char *file, const char *text) {
    tc_write_text(sub(tmpdir, file), text);
}

/* The families people fine-tune that are not supported yet: one line naming the family and
 * what is supported, from a tiny config.json alone (nothing else is read). */
START_TEST(test_unsupported_families) {
    static const struct {
        const char *type, *arch, *name;
    } cases[] = {
        {"albert", "AlbertForSequenceClassification", "ALBERT"},
        {"deberta", "DebertaForSequenceClassification", "DeBERTa"},
        {"deberta-v2", "DebertaV2ForSequenceClassification", "DeBERTa-v2/v3"},
        {"xlnet", "XLNetForSequenceClassification", "XLNet"},
        {"modernbert", "ModernBertForSequenceClassification", "ModernBERT"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char cfg[256];
        snprintf(cfg, sizeof cfg, "{\"model_type\": \"%s\", \"architectures\": [\"%s\"]}",
                 cases[i].type, cases[i].arch);
        put_file("config.json", cfg);
        char says[64];
        snprintf(says, sizeof says, "%s model_type '%s'", cases[i].name, cases[i].type);
        expect_fail(tmpdir, EN_EARCH, "config.json", says, "is not supported",
                    "supported: BERT, DistilBERT, RoBERTa, ELECTRA", NULL);
    }
}
END_TEST

/* XLM-RoBERTa's network is RoBERTa's; its SentencePiece Unigram tokenizer is what is refused. */
START_TEST(test_sentencepiece_refused) {
    put_file("config.json",
             "{\"model_type\": \"xlm-roberta\", \"architectures\": "
             "[\"XLMRobertaForSequenceClassification\"], \"vocab_size\": 10, \"hidden_size\": 8, "
             "\"num_hidden_layers\": 1, \"num_attention_heads\": 2, \"intermediate_size\": 16, "
             "\"max_position_embeddings\": 20, \"type_vocab_size\": 1, \"pad_token_id\": 1}");
    put_file("sentencepiece.bpe.model", "not read");
    expect_fail(tmpdir, EN_EVOCAB, "SentencePiece", "not supported",
                "byte-level BPE (vocab.json + merges.txt or tokenizer.json)", NULL);
    put_file("tokenizer.json", "{\"model\": {\"type\": \"Unigram\", \"vocab\": [[\"<s>\", 0]]}}");
    expect_fail(tmpdir, EN_EVOCAB, "tokenizer.json", "Unigram", "SentencePiece",
                "supported: WordPiece and byte-level BPE", NULL);
}
END_TEST

/* A folder with only PyTorch's pickle: the message says how to convert it. */
START_TEST(test_pytorch_bin_only) {
    make_tiny(tmpdir, "F32", 1, 0);
    unlink(sub(tmpdir, "model.safetensors"));
    put_file("pytorch_model.bin", "PK not read");
    expect_fail(tmpdir, EN_EFORMAT, "pytorch_model.bin", "convert it to model.safetensors",
                "save_pretrained", "safe_serialization=True", NULL);
}
END_TEST

START_TEST(test_bad_config_fields) {
    make_tiny(tmpdir, "F32", 1, 0);
    const char *path = sub(tmpdir, "config.json");
    size_t len;
    char *orig = tc_read_file(path, &len);
    static const char *const required[] = {"vocab_size",        "hidden_size",
                                           "num_hidden_layers", "num_attention_heads",
                                           "intermediate_size", "max_position_embeddings",
                                           "type_vocab_size"};
    for (size_t i = 0; i < sizeof required / sizeof required[0]; i++) {
        tc_write_file(path, orig, len);
        set_config(tmpdir, required[i], NULL);
        char want[96];
        snprintf(want, sizeof want, "'%s' is missing", required[i]);
        expect_fail(tmpdir, EN_ECONFIG, "config.json", want, NULL);
    }
    static const struct {
        const char *key, *value_json, *says;
    } bad[] = {
        {"hidden_size", "\"16\"", "must be an integer"},
        {"hidden_size", "16.0", "must be an integer"},
        {"num_hidden_layers", "65", "between 1 and 64"},
        {"num_hidden_layers", "0", "between 1 and 64"},
        {"intermediate_size", "-5", "intermediate_size"},
        {"vocab_size", "1e9", "vocab_size"},
        {"num_attention_heads", "3", "not divisible"},
        {"hidden_act", "\"gelu_new\"", "hidden_act"},
        {"hidden_act", "\"relu\"", "'relu'"},
        {"position_embedding_type", "\"relative_key\"", "position_embedding_type"},
        {"layer_norm_eps", "0", "layer_norm_eps"},
        {"layer_norm_eps", "\"1e-12\"", "layer_norm_eps"},
        {"num_labels", "1", "num_labels"},
        {"problem_type", "\"regression\"", "problem_type"},
        {"architectures", "\"BertForSequenceClassification\"", "architectures"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        tc_write_file(path, orig, len);
        json_t *v = json_loads(bad[i].value_json, JSON_DECODE_ANY, NULL);
        ck_assert_ptr_nonnull(v);
        set_config(tmpdir, bad[i].key, v);
        expect_fail(tmpdir, EN_ECONFIG, "config.json", bad[i].says, NULL);
    }
    tc_write_file(path, "{\"model_type\": \"bert\",", 22);
    expect_fail(tmpdir, EN_EFORMAT, "config.json", "not valid JSON", NULL);
    unlink(path);
    expect_fail(tmpdir, -ENOENT, "config.json", NULL);
    free(orig);
}
END_TEST

START_TEST(test_vocab_problems) {
    make_tiny(tmpdir, "F32", 1, 0);
    FILE *f = fopen(sub(tmpdir, "vocab.txt"), "a");
    fputs("extrapiece\n", f);
    fclose(f);
    expect_fail(tmpdir, EN_EVOCAB, "vocab.txt", "61", "60", NULL);
    // config agrees with vocab.txt now, the embedding rows do not.
    set_config(tmpdir, "vocab_size", json_integer(T_VOCAB + 1));
    expect_fail(tmpdir, EN_ESHAPE, "word_embeddings.weight", "[60, 16]", "[61, 16]", NULL);
    unlink(sub(tmpdir, "vocab.txt"));
    expect_fail(tmpdir, -ENOENT, "vocab.txt", NULL);
}
END_TEST

START_TEST(test_missing_weights_file) {
    make_tiny(tmpdir, "F32", 1, 0);
    unlink(sub(tmpdir, "model.safetensors"));
    expect_fail(tmpdir, -ENOENT, "model.safetensors", NULL);
    expect_fail("/nonexistent/searchd-model", -ENOENT, "config.json", NULL);
}
END_TEST

Suite *model_suite(void) {
    Suite *s = suite_create("model");
    TCase *real = tcase_create("real");
    tcase_set_timeout(real, 300);
    tcase_add_test(real, test_demo_model_f16);
    tcase_add_test(real, test_l6_model_f32);
    suite_add_tcase(s, real);
    TCase *tiny = tcase_create("tiny");
    tcase_add_checked_fixture(tiny, make_tmpdir, remove_tmpdir);
    tcase_add_test(tiny, test_dtypes_consistent);
    tcase_add_test(tiny, test_f16_special_values);
    tcase_add_test(tiny, test_bf16_special_values);
    tcase_add_test(tiny, test_extra_tensor_ignored);
    tcase_add_test(tiny, test_old_names);
    tcase_add_test(tiny, test_labels_from_config);
    tcase_add_test(tiny, test_electra_projection);
    suite_add_tcase(s, tiny);
    TCase *bad = tcase_create("bad_input");
    tcase_add_checked_fixture(bad, make_tmpdir, remove_tmpdir);
    tcase_add_test(bad, test_truncated);
    tcase_add_test(bad, test_header_length);
    tcase_add_test(bad, test_garbage_json);
    tcase_add_test(bad, test_offsets_outside);
    tcase_add_test(bad, test_size_disagrees_with_shape);
    tcase_add_test(bad, test_overlap);
    tcase_add_test(bad, test_wrong_dtype);
    tcase_add_test(bad, test_missing_tensor);
    tcase_add_test(bad, test_wrong_shape);
    tcase_add_test(bad, test_other_architectures);
    tcase_add_test(bad, test_unsupported_families);
    tcase_add_test(bad, test_sentencepiece_refused);
    tcase_add_test(bad, test_pytorch_bin_only);
    tcase_add_test(bad, test_bad_config_fields);
    tcase_add_test(bad, test_vocab_problems);
    tcase_add_test(bad, test_missing_weights_file);
    suite_add_tcase(s, bad);
    return s;
}

int main(void) {
    return tc_run(model_suite(), NULL);
}
