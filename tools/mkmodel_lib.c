#include "mkmodel_lib.h"

#include <errno.h>
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "engine/en_model.h" // EN_MAX_LAYERS, EN_MAX_LABELS

#define CHUNK 65536 // elements generated and written at a time

enum init { INIT_NORMAL, INIT_ONE, INIT_ZERO, INIT_POS_IDS };

typedef struct mk_tensor {
    char name[96];
    int rows, cols; // cols 0: a vector
    enum init init;
    uint64_t begin; // offset in the data area
} mk_tensor;

/* xoshiro256** seeded by splitmix64; normals by Box-Muller, the second value kept. */
typedef struct rng {
    uint64_t s[4];
    int have_spare;
    double spare;
} rng;

static int check_opts(const mk_opts *o, int *vocab, en_diag *diag);
static int count_lines(const char *path, int *lines, en_diag *diag);
static int write_vocab(const char *dir, const mk_opts *o, int vocab, en_diag *diag);
static int write_config(const char *dir, const mk_opts *o, int vocab, en_diag *diag);
static int write_tokenizer_config(const char *dir, const mk_opts *o, en_diag *diag);
static int write_weights(const char *dir, const mk_opts *o, int vocab, en_diag *diag);
static int list_tensors(const mk_opts *o, int vocab, mk_tensor *t);
static int cmp_tensor(const void *a, const void *b);
static int write_tensor(FILE *f, const mk_tensor *t, int dsize, const char *dtype, rng *r,
                        uint8_t *buf);
static int dump_json(json_t *j, const char *dir, const char *file, en_diag *diag);
static int io_fail(en_diag *diag, const char *path);
static void rng_seed(rng *r, uint64_t seed);
static uint64_t rng_next(rng *r);
static double rng_normal(rng *r);

void mk_opts_init(mk_opts *o) {
    memset(o, 0, sizeof *o);
    o->labels = 2;
    o->max_pos = 512;
    o->type_vocab = 2;
    o->dtype = "F32";
    o->seed = 1;
}

int mk_write_model(const char *dir, const mk_opts *o, en_diag *diag) {
    int vocab = 0;
    int rc = check_opts(o, &vocab, diag);
    if (rc < 0) return rc;
    if (mkdir(dir, 0777) != 0 && errno != EEXIST) return io_fail(diag, dir);
    if ((rc = write_vocab(dir, o, vocab, diag)) < 0 ||
        (rc = write_config(dir, o, vocab, diag)) < 0 ||
        (rc = write_tokenizer_config(dir, o, diag)) < 0)
        return rc;
    return write_weights(dir, o, vocab, diag);
}

uint16_t mk_f32_to_f16(float f) {
    uint32_t x;
    memcpy(&x, &f, sizeof x);
    uint32_t sign = x & 0x80000000u;
    x ^= sign;
    uint16_t h;
    if (x >= 0x47800000u) { // >= 2^16, inf or NaN: all beyond F16's range
        h = x > 0x7f800000u ? 0x7e00 : 0x7c00;
    } else if (x < 0x38800000u) { // below 2^-14: F16 subnormal or zero
        // Adding 0.5 shifts the value into a float whose low mantissa bits are the F16
        // subnormal; the FPU's round-to-nearest-even does the rounding.
        uint32_t magic_bits = (uint32_t)((127 - 15) + (23 - 10) + 1) << 23;
        float magic, v;
        memcpy(&magic, &magic_bits, sizeof magic);
        memcpy(&v, &x, sizeof v);
        v += magic;
        memcpy(&x, &v, sizeof x);
        h = (uint16_t)(x - magic_bits);
    } else {
        uint32_t odd = x >> 13 & 1;
        x += ((uint32_t)(15 - 127) << 23) + 0xfff + odd; // rebias, round half to even
        h = (uint16_t)(x >> 13);
    }
    return (uint16_t)(h | sign >> 16);
}

uint16_t mk_f32_to_bf16(float f) {
    uint32_t x;
    memcpy(&x, &f, sizeof x);
    if ((x & 0x7fffffffu) > 0x7f800000u)
        return (uint16_t)(x >> 16 | 0x40); // NaN: keep it a (quiet) NaN
    x += 0x7fff + (x >> 16 & 1);
    return (uint16_t)(x >> 16);
}

// --- helpers ---

static int check_opts(const mk_opts *o, int *vocab, en_diag *diag) {
    if (o->layers < 1 || o->layers > EN_MAX_LAYERS || o->hidden < 1 || o->heads < 1 || o->ffn < 1 ||
        o->hidden % o->heads != 0)
        return en_fail(diag, EN_ERANGE,
                       "shape %d,%d,%d,%d: need 1 <= L <= %d, H, heads, FFN >= 1, H %% heads == 0",
                       o->layers, o->hidden, o->heads, o->ffn, EN_MAX_LAYERS);
    if (o->labels < 2 || o->labels > EN_MAX_LABELS || o->max_pos < 2 || o->type_vocab < 1)
        return en_fail(diag, EN_ERANGE,
                       "labels %d (2..%d), max_pos %d (>= 2), type_vocab %d (>= 1) out of range",
                       o->labels, EN_MAX_LABELS, o->max_pos, o->type_vocab);
    if (strcmp(o->dtype, "F32") && strcmp(o->dtype, "F16") && strcmp(o->dtype, "BF16"))
        return en_fail(diag, EN_ERANGE, "dtype '%s': only F32, F16 or BF16", o->dtype);
    *vocab = o->vocab ? o->vocab : 1000;
    if (o->vocab_from) {
        int lines = 0;
        int rc = count_lines(o->vocab_from, &lines, diag);
        if (rc < 0) return rc;
        if (o->vocab && o->vocab != lines)
            return en_fail(diag, EN_EVOCAB, "%s has %d lines but the vocabulary size asked is %d",
                           o->vocab_from, lines, o->vocab);
        *vocab = lines;
    }
    if (*vocab < 5)
        return en_fail(diag, EN_ERANGE, "vocabulary of %d pieces: need at least the 5 specials",
                       *vocab);
    return 0;
}

static int count_lines(const char *path, int *lines, en_diag *diag) {
    FILE *f = fopen(path, "rb");
    if (!f) return io_fail(diag, path);
    int n = 0, c, last = '\n';
    while ((c = getc(f)) != EOF) {
        n += c == '\n';
        last = c;
    }
    n += last != '\n'; // a last line without its newline
    fclose(f);
    *lines = n;
    return 0;
}

/* Synthetic pieces after the specials: single characters, their "##" continuations, then
 * letter strings of growing length alternating plain and "##". All distinct. */
static int write_vocab(const char *dir, const mk_opts *o, int vocab, en_diag *diag) {
    char path[4096];
    snprintf(path, sizeof path, "%s/vocab.txt", dir);
    FILE *out = fopen(path, "wb");
    if (!out) return io_fail(diag, path);
    if (o->vocab_from) {
        FILE *in = fopen(o->vocab_from, "rb");
        if (!in) {
            fclose(out);
            return io_fail(diag, o->vocab_from);
        }
        char buf[65536];
        size_t n;
        while ((n = fread(buf, 1, sizeof buf, in)) > 0)
            fwrite(buf, 1, n, out);
        fclose(in);
    } else {
        static const char *const specials[] = {"[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"};
        static const char singles[] = "abcdefghijklmnopqrstuvwxyz0123456789.,!?'\"-:;()";
        int written = 0;
        for (int i = 0; i < 5; i++, written++)
            fprintf(out, "%s\n", specials[i]);
        for (int cont = 0; cont < 2; cont++)
            for (const char *c = singles; *c && written < vocab; c++, written++)
                fprintf(out, "%s%c\n", cont ? "##" : "", *c);
        for (long k = 0; written < vocab; k++, written++) {
            // k -> a letter string of length >= 2 (bijective base 26 offset past one letter)
            char word[16];
            int len = 0;
            for (long v = k / 2 + 27; v > 0 && len < 15; v = (v - 1) / 26)
                word[len++] = (char)('a' + (v - 1) % 26);
            word[len] = '\0';
            fprintf(out, "%s%s\n", k % 2 ? "##" : "", word);
        }
    }
    if (fclose(out) != 0) return io_fail(diag, path);
    return 0;
}

static int write_config(const char *dir, const mk_opts *o, int vocab, en_diag *diag) {
    json_t *id2label = json_object(), *label2id = json_object();
    for (int i = 0; i < o->labels; i++) {
        char id[16], name[32];
        snprintf(id, sizeof id, "%d", i);
        snprintf(name, sizeof name, "LABEL_%d", i);
        json_object_set_new(id2label, id, json_string(name));
        json_object_set_new(label2id, name, json_integer(i));
    }
    const char *torch_dtype = strcmp(o->dtype, "F16") == 0    ? "float16"
                              : strcmp(o->dtype, "BF16") == 0 ? "bfloat16"
                                                              : "float32";
    json_t *c = json_pack(
        "{s:[s], s:s, s:i, s:i, s:i, s:i, s:i, s:s, s:f, s:f, s:i, s:i, s:f, s:f, s:i, s:s, "
        "s:n, s:o, s:o, s:s, s:s}",
        "architectures", "BertForSequenceClassification", "model_type", "bert", "vocab_size", vocab,
        "hidden_size", o->hidden, "num_hidden_layers", o->layers, "num_attention_heads", o->heads,
        "intermediate_size", o->ffn, "hidden_act", "gelu", "hidden_dropout_prob", 0.1,
        "attention_probs_dropout_prob", 0.1, "max_position_embeddings", o->max_pos,
        "type_vocab_size", o->type_vocab, "initializer_range", 0.02, "layer_norm_eps", 1e-12,
        "pad_token_id", 0, "position_embedding_type", "absolute", "classifier_dropout", "id2label",
        id2label, "label2id", label2id, "problem_type", "single_label_classification",
        "torch_dtype", torch_dtype);
    if (!c) return en_fail(diag, EN_ENOMEM, "%s: cannot build config.json", dir);
    return dump_json(c, dir, "config.json", diag);
}

static int write_tokenizer_config(const char *dir, const mk_opts *o, en_diag *diag) {
    json_t *c = json_pack("{s:b, s:s, s:i, s:s, s:s, s:s, s:s, s:s}", "do_lower_case", 1,
                          "tokenizer_class", "BertTokenizer", "model_max_length", o->max_pos,
                          "unk_token", "[UNK]", "sep_token", "[SEP]", "pad_token", "[PAD]",
                          "cls_token", "[CLS]", "mask_token", "[MASK]");
    if (!c) return en_fail(diag, EN_ENOMEM, "%s: cannot build tokenizer_config.json", dir);
    return dump_json(c, dir, "tokenizer_config.json", diag);
}

static int write_weights(const char *dir, const mk_opts *o, int vocab, en_diag *diag) {
    mk_tensor *t = calloc(16 * (size_t)o->layers + 16, sizeof *t);
    if (!t) return en_fail(diag, EN_ENOMEM, "%s: no memory for the tensor list", dir);
    int n = list_tensors(o, vocab, t);
    qsort(t, (size_t)n, sizeof *t, cmp_tensor); // HF writes tensors in name order
    int dsize = strcmp(o->dtype, "F32") == 0 ? 4 : 2;
    json_t *h = json_object();
    json_object_set_new(h, "__metadata__", json_pack("{s:s}", "format", "pt"));
    uint64_t off = 0;
    for (int i = 0; i < n; i++) {
        uint64_t count = (uint64_t)t[i].rows * (uint64_t)(t[i].cols ? t[i].cols : 1);
        uint64_t bytes = count * (t[i].init == INIT_POS_IDS ? 8 : (uint64_t)dsize);
        json_t *shape =
            t[i].cols ? json_pack("[i, i]", t[i].rows, t[i].cols) : json_pack("[i]", t[i].rows);
        json_object_set_new(h, t[i].name,
                            json_pack("{s:s, s:o, s:[I, I]}", "dtype",
                                      t[i].init == INIT_POS_IDS ? "I64" : o->dtype, "shape", shape,
                                      "data_offsets", (json_int_t)off, (json_int_t)(off + bytes)));
        t[i].begin = off;
        off += bytes;
    }
    char *text = json_dumps(h, JSON_COMPACT | JSON_SORT_KEYS);
    json_decref(h);
    char path[4096], tmp[4100];
    snprintf(path, sizeof path, "%s/model.safetensors", dir);
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    FILE *f = text ? fopen(tmp, "wb") : NULL;
    int rc = 0;
    if (!text) {
        rc = en_fail(diag, EN_ENOMEM, "%s: cannot build the header", path);
    } else if (!f) {
        rc = io_fail(diag, tmp);
    } else {
        // The header is padded with spaces so the data area starts 8-byte aligned.
        size_t len = strlen(text), padded = (len + 7) / 8 * 8;
        uint8_t len_bytes[8];
        for (int i = 0; i < 8; i++)
            len_bytes[i] = (uint8_t)((uint64_t)padded >> (8 * i));
        fwrite(len_bytes, 1, 8, f);
        fwrite(text, 1, len, f);
        for (size_t i = len; i < padded; i++)
            putc(' ', f);
        rng r;
        rng_seed(&r, o->seed);
        uint8_t *buf = malloc(CHUNK * 8);
        rc = buf ? 0 : -1;
        for (int i = 0; i < n && rc == 0; i++)
            rc = write_tensor(f, &t[i], dsize, o->dtype, &r, buf);
        free(buf);
        if (fclose(f) != 0 || rc != 0)
            rc = io_fail(diag, tmp);
        else if (rename(tmp, path) != 0)
            rc = io_fail(diag, path);
    }
    free(text);
    free(t);
    return rc;
}

static int list_tensors(const mk_opts *o, int vocab, mk_tensor *t) {
    int n = 0, H = o->hidden;
#define ADD(r, c, i, ...)                                                                          \
    do {                                                                                           \
        snprintf(t[n].name, sizeof t[n].name, __VA_ARGS__);                                        \
        t[n].rows = (r), t[n].cols = (c), t[n].init = (i);                                         \
        n++;                                                                                       \
    } while (0)
    ADD(vocab, H, INIT_NORMAL, "bert.embeddings.word_embeddings.weight");
    ADD(o->max_pos, H, INIT_NORMAL, "bert.embeddings.position_embeddings.weight");
    ADD(o->type_vocab, H, INIT_NORMAL, "bert.embeddings.token_type_embeddings.weight");
    ADD(H, 0, INIT_ONE, "bert.embeddings.LayerNorm.weight");
    ADD(H, 0, INIT_ZERO, "bert.embeddings.LayerNorm.bias");
    if (o->position_ids) ADD(1, o->max_pos, INIT_POS_IDS, "bert.embeddings.position_ids");
    for (int l = 0; l < o->layers; l++) {
        static const char *const qkv[] = {"query", "key", "value"};
        for (int k = 0; k < 3; k++) {
            ADD(H, H, INIT_NORMAL, "bert.encoder.layer.%d.attention.self.%s.weight", l, qkv[k]);
            ADD(H, 0, INIT_NORMAL, "bert.encoder.layer.%d.attention.self.%s.bias", l, qkv[k]);
        }
        ADD(H, H, INIT_NORMAL, "bert.encoder.layer.%d.attention.output.dense.weight", l);
        ADD(H, 0, INIT_NORMAL, "bert.encoder.layer.%d.attention.output.dense.bias", l);
        ADD(H, 0, INIT_ONE, "bert.encoder.layer.%d.attention.output.LayerNorm.weight", l);
        ADD(H, 0, INIT_ZERO, "bert.encoder.layer.%d.attention.output.LayerNorm.bias", l);
        ADD(o->ffn, H, INIT_NORMAL, "bert.encoder.layer.%d.intermediate.dense.weight", l);
        ADD(o->ffn, 0, INIT_NORMAL, "bert.encoder.layer.%d.intermediate.dense.bias", l);
        ADD(H, o->ffn, INIT_NORMAL, "bert.encoder.layer.%d.output.dense.weight", l);
        ADD(H, 0, INIT_NORMAL, "bert.encoder.layer.%d.output.dense.bias", l);
        ADD(H, 0, INIT_ONE, "bert.encoder.layer.%d.output.LayerNorm.weight", l);
        ADD(H, 0, INIT_ZERO, "bert.encoder.layer.%d.output.LayerNorm.bias", l);
    }
    ADD(H, H, INIT_NORMAL, "bert.pooler.dense.weight");
    ADD(H, 0, INIT_NORMAL, "bert.pooler.dense.bias");
    ADD(o->labels, H, INIT_NORMAL, "classifier.weight");
    ADD(o->labels, 0, INIT_NORMAL, "classifier.bias");
#undef ADD
    return n;
}

static int cmp_tensor(const void *a, const void *b) {
    return strcmp(((const mk_tensor *)a)->name, ((const mk_tensor *)b)->name);
}

// `buf` holds CHUNK elements of 8 bytes.
static int write_tensor(FILE *f, const mk_tensor *t, int dsize, const char *dtype, rng *r,
                        uint8_t *buf) {
    uint64_t count = (uint64_t)t->rows * (uint64_t)(t->cols ? t->cols : 1);
    int bf16 = strcmp(dtype, "BF16") == 0;
    for (uint64_t done = 0; done < count;) {
        size_t n = count - done < CHUNK ? (size_t)(count - done) : CHUNK;
        for (size_t i = 0; i < n; i++) {
            if (t->init == INIT_POS_IDS) { // little-endian int64 0, 1, 2, ...
                for (int b = 0; b < 8; b++)
                    buf[8 * i + (size_t)b] = (uint8_t)((done + i) >> (8 * b));
                continue;
            }
            float v = t->init == INIT_ONE    ? 1.0f
                      : t->init == INIT_ZERO ? 0.0f
                                             : (float)(0.02 * rng_normal(r));
            uint32_t bits;
            if (dsize == 4)
                memcpy(&bits, &v, sizeof bits);
            else
                bits = bf16 ? mk_f32_to_bf16(v) : mk_f32_to_f16(v);
            for (int b = 0; b < dsize; b++)
                buf[(size_t)dsize * i + (size_t)b] = (uint8_t)(bits >> (8 * b));
        }
        size_t elem = t->init == INIT_POS_IDS ? 8 : (size_t)dsize;
        if (fwrite(buf, elem, n, f) != n) return -1;
        done += n;
    }
    return 0;
}

static int dump_json(json_t *j, const char *dir, const char *file, en_diag *diag) {
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", dir, file);
    // 15 digits print 0.1 and 1e-12 as Python does, and read back as the same doubles.
    int rc = json_dump_file(j, path, JSON_INDENT(2) | JSON_SORT_KEYS | JSON_REAL_PRECISION(15));
    json_decref(j);
    if (rc != 0) return en_fail(diag, -EIO, "%s: cannot write it", path);
    return 0;
}

static int io_fail(en_diag *diag, const char *path) {
    int e = errno ? errno : EIO;
    return en_fail(diag, -e, "%s: %s", path, strerror(e));
}

static void rng_seed(rng *r, uint64_t seed) {
    for (int i = 0; i < 4; i++) { // splitmix64: any seed, 0 included, gives a good state
        seed += 0x9e3779b97f4a7c15ull;
        uint64_t z = seed;
        z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
        z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
        r->s[i] = z ^ (z >> 31);
    }
    r->have_spare = 0;
    r->spare = 0;
}

static uint64_t rng_next(rng *r) {
    uint64_t *s = r->s;
    uint64_t x = s[1] * 5, result = (x << 7 | x >> 57) * 9, t = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = s[3] << 45 | s[3] >> 19;
    return result;
}

static double rng_normal(rng *r) {
    if (r->have_spare) {
        r->have_spare = 0;
        return r->spare;
    }
    // u1 in (0, 1] so log(u1) is finite; 53 random bits each.
    double u1 = ((rng_next(r) >> 11) + 1) * 0x1p-53, u2 = (rng_next(r) >> 11) * 0x1p-53;
    double rad = sqrt(-2.0 * log(u1)), ang = 2.0 * M_PI * u2;
    r->spare = rad * sin(ang);
    r->have_spare = 1;
    return rad * cos(ang);
}
