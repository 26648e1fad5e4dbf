/* mkmodel: writes a random-weight BertForSequenceClassification checkpoint of any shape (for
 * benchmarks and tests). See usage() and tools/mkmodel_lib.h. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mkmodel_lib.h"

static void usage(FILE *f);
static int parse_int(const char *s, long min, long max, long *out);

int main(int argc, char **argv) {
    mk_opts o;
    mk_opts_init(&o);
    const char *dir = NULL;
    int have_shape = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        long x;
        int ok = 1;
        if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) {
            usage(stdout);
            return 0;
        } else if (strcmp(a, "--position-ids") == 0) {
            o.position_ids = 1;
            continue;
        } else if (a[0] != '-') {
            ok = dir == NULL;
            dir = a;
            if (ok) continue;
        } else if (!v) {
            ok = 0;
        } else if (strcmp(a, "--shape") == 0) {
            int n = 0;
            ok = sscanf(v, "%d,%d,%d,%d%n", &o.layers, &o.hidden, &o.heads, &o.ffn, &n) == 4 &&
                 v[n] == '\0';
            have_shape = ok;
        } else if (strcmp(a, "--vocab") == 0 && (ok = parse_int(v, 5, 1 << 22, &x))) {
            o.vocab = (int)x;
        } else if (strcmp(a, "--labels") == 0 && (ok = parse_int(v, 2, 64, &x))) {
            o.labels = (int)x;
        } else if (strcmp(a, "--max-pos") == 0 && (ok = parse_int(v, 2, 1 << 16, &x))) {
            o.max_pos = (int)x;
        } else if (strcmp(a, "--seed") == 0) {
            char *end;
            errno = 0;
            o.seed = strtoull(v, &end, 0);
            ok = errno == 0 && *v && *end == '\0';
        } else if (strcmp(a, "--dtype") == 0) {
            o.dtype = v;
        } else if (strcmp(a, "--vocab-from") == 0) {
            o.vocab_from = v;
        } else {
            ok = 0;
        }
        if (!ok) {
            fprintf(stderr, "mkmodel: bad argument '%s%s%s'\n", a, v ? " " : "", v ? v : "");
            usage(stderr);
            return 2;
        }
        i++; // the option's value
    }
    if (!dir || !have_shape) {
        usage(stderr);
        return 2;
    }
    en_diag diag = {""};
    int rc = mk_write_model(dir, &o, &diag);
    if (rc < 0) {
        fprintf(stderr, "mkmodel: %s\n", diag.msg);
        return 1;
    }
    return 0;
}

static void usage(FILE *f) {
    fputs("usage: mkmodel OUTDIR --shape L,H,heads,FFN [--vocab N] [--labels C]\n"
          "               [--dtype F32|F16|BF16] [--seed S] [--max-pos 512] [--vocab-from FILE]\n"
          "               [--position-ids]\n"
          "Writes config.json, model.safetensors, vocab.txt and tokenizer_config.json of a\n"
          "BertForSequenceClassification with weights ~N(0, 0.02) (LayerNorm 1, 0) from the\n"
          "seed. The vocabulary is synthetic (N pieces, default 1000, with [PAD] [UNK] [CLS]\n"
          "[SEP] [MASK]) or copied from --vocab-from. --position-ids adds the unused I64\n"
          "buffer older transformers versions saved.\n",
          f);
}

static int parse_int(const char *s, long min, long max, long *out) {
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno || !*s || *end || v < min || v > max) return 0;
    *out = v;
    return 1;
}
