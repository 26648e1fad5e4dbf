/* Labelled data sets (TSV, CSV, JSON Lines) and their evaluation over worker threads. */
#include "en_dataset.h"

#include <errno.h>
#include <jansson.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include "en_clock.h"
#include "en_file.h"
#include "en_flops.h"

#define EN_MAX_LINE (1 << 20) // a longer row is refused, not truncated
#define EN_MAX_COLS 64

typedef enum row_format { FMT_TSV, FMT_CSV, FMT_JSONL } row_format;

static const char *const format_name[] = {"TSV", "CSV", "JSON Lines"};

/* One row source: TSV (tab-separated, no quoting: GLUE's files hold bare quotes), CSV (RFC 4180:
 * quoted fields with "" for a quote, commas and line breaks inside quotes) or JSON Lines (one
 * object a line; the first object's keys are the header). */
typedef struct reader {
    FILE *f;
    const char *path;
    row_format fmt;
    int line;      // the line the current row starts on (1-based)
    int next_line; // the line the next row starts on
    char *buf;     // EN_MAX_LINE bytes: the row, its fields point into it
    char *fields[EN_MAX_COLS];
    int nf;
    json_t *obj;               // JSON Lines: the current row
    char num[EN_MAX_COLS][32]; // JSON numbers as text
} reader;

static void chomp(char *s) {
    size_t len = strlen(s);
    while (len > 0 && (s[len - 1] == '\n' || s[len - 1] == '\r'))
        s[--len] = '\0';
}

/* The text without its leading and trailing spaces and tabs (TSV exports pad sentences, and
 * byte-level BPE would make the padding a token), in place. */
static char *trim(char *s) {
    while (*s == ' ' || *s == '\t')
        s++;
    size_t len = strlen(s);
    while (len > 0 && (s[len - 1] == ' ' || s[len - 1] == '\t'))
        s[--len] = '\0';
    return s;
}

/* Reads one physical line into r->buf; 1, 0 at the end, or a negative code. */
static int read_line(reader *r, en_diag *diag) {
    if (!fgets(r->buf, EN_MAX_LINE, r->f))
        return ferror(r->f) ? en_fail(diag, -EIO, "%s: read error", r->path) : 0;
    size_t len = strlen(r->buf);
    if (len == EN_MAX_LINE - 1 && r->buf[len - 1] != '\n')
        return en_fail(diag, EN_EDATA, "%s:%d: line longer than %d bytes", r->path, r->next_line,
                       EN_MAX_LINE);
    r->line = r->next_line++;
    if (r->line == 1 && (unsigned char)r->buf[0] == 0xEF && (unsigned char)r->buf[1] == 0xBB &&
        (unsigned char)r->buf[2] == 0xBF)
        memmove(r->buf, r->buf + 3, len - 2); // a UTF-8 byte order mark
    chomp(r->buf);
    return 1;
}

/* One CSV record (RFC 4180) into r->buf and r->fields; 1, 0 at the end, or a negative code. */
static int read_csv(reader *r, en_diag *diag) {
    size_t len = 0;
    int c, quoted = 0, any = 0, field_start = 1;
    r->nf = 0;
    r->line = r->next_line;
    r->fields[r->nf++] = r->buf;
    while ((c = getc(r->f)) != EOF) {
        any = 1;
        if (r->line == 1 && len == 0 && r->nf == 1 && c == 0xEF) { // a byte order mark
            int c2 = getc(r->f), c3 = getc(r->f);
            if (c2 == 0xBB && c3 == 0xBF) continue;
            return en_fail(diag, EN_EDATA, "%s:1: not UTF-8 text", r->path);
        }
        if (len + 2 >= EN_MAX_LINE)
            return en_fail(diag, EN_EDATA, "%s:%d: row longer than %d bytes", r->path, r->line,
                           EN_MAX_LINE);
        if (quoted) {
            if (c == '"') {
                int d = getc(r->f);
                if (d == '"') {
                    r->buf[len++] = '"';
                    continue;
                }
                quoted = 0;
                if (d == EOF) break;
                c = d; // the character after a closing quote
            } else {
                if (c == '\n') r->next_line++;
                r->buf[len++] = (char)c;
                continue;
            }
        }
        if (c == '"' && field_start) {
            quoted = 1;
            field_start = 0;
        } else if (c == ',') {
            r->buf[len++] = '\0';
            if (r->nf == EN_MAX_COLS)
                return en_fail(diag, EN_EDATA, "%s:%d: more than %d columns", r->path, r->line,
                               EN_MAX_COLS);
            r->fields[r->nf++] = r->buf + len;
            field_start = 1;
        } else if (c == '\n') {
            r->next_line++;
            break;
        } else if (c != '\r') {
            r->buf[len++] = (char)c;
            field_start = 0;
        }
    }
    if (quoted)
        return en_fail(diag, EN_EDATA, "%s:%d: a quoted field is not closed", r->path, r->line);
    if (c == EOF && ferror(r->f)) return en_fail(diag, -EIO, "%s: read error", r->path);
    r->buf[len] = '\0';
    if (c == EOF && !any) return 0;
    if (c != '\n') r->next_line++;
    return 1;
}

/* The next row, fields in r->fields (JSON Lines: r->obj); 1, 0 at the end, or a code. Blank
 * rows are skipped. */
static int next_row(reader *r, en_diag *diag) {
    for (;;) {
        int rc = r->fmt == FMT_CSV ? read_csv(r, diag) : read_line(r, diag);
        if (rc <= 0) return rc;
        if (r->fmt == FMT_CSV) {
            if (r->nf == 1 && r->fields[0][0] == '\0') continue;
            return 1;
        }
        if (r->buf[strspn(r->buf, " \t")] == '\0') continue;
        if (r->fmt == FMT_TSV) {
            r->nf = 0;
            for (char *p = r->buf; r->nf < EN_MAX_COLS;) {
                r->fields[r->nf++] = p;
                char *tab = strchr(p, '\t');
                if (!tab) break;
                *tab = '\0';
                p = tab + 1;
            }
            return 1;
        }
        json_decref(r->obj);
        json_error_t e;
        r->obj = json_loads(r->buf, JSON_REJECT_DUPLICATES, &e);
        if (!json_is_object(r->obj))
            return en_fail(diag, EN_EDATA, "%s:%d: not a JSON object (%s)", r->path, r->line,
                           r->obj ? "another JSON value" : e.text);
        return 1;
    }
}

/* Column `name` of the current row: its text (a JSON number as text), or NULL when absent. */
static const char *field(reader *r, int col, const char *name) {
    if (r->fmt != FMT_JSONL) return col >= 0 && col < r->nf ? r->fields[col] : NULL;
    json_t *v = json_object_get(r->obj, name);
    if (json_is_string(v)) return json_string_value(v);
    if (json_is_integer(v) && col >= 0 && col < EN_MAX_COLS) {
        snprintf(r->num[col], sizeof r->num[col], "%lld", (long long)json_integer_value(v));
        return r->num[col];
    }
    return NULL;
}

/* The header's column names: the first row (JSON Lines: the first object's keys). */
static int header_names(reader *r, const char **names, int *count) {
    *count = 0;
    if (r->fmt != FMT_JSONL) {
        for (int i = 0; i < r->nf; i++)
            names[(*count)++] = trim(r->fields[i]);
        return 0;
    }
    const char *key;
    json_t *v;
    json_object_foreach(r->obj, key, v) {
        if (*count == EN_MAX_COLS) break;
        names[(*count)++] = key;
    }
    return 0;
}

static int find_column(const char *const *names, int count, const char *want) {
    for (int i = 0; want && i < count; i++)
        if (strcmp(names[i], want) == 0) return i;
    return -1;
}

/* Which columns hold the text (or the pair) and the label: the options' names, else the usual
 * names of GLUE / Hugging Face data sets. */
static int pick_columns(reader *r, const en_dataset_opts *o, const char **names, int n, int col[3],
                        const char *name[3], en_diag *diag) {
    static const char *const pairs[][2] = {{"sentence1", "sentence2"},
                                           {"premise", "hypothesis"},
                                           {"question", "passage"},
                                           {"question1", "question2"},
                                           {"question", "sentence"}};
    static const char *const singles[] = {"sentence", "text"};
    name[0] = o && o->text_column ? o->text_column : NULL;
    name[1] = o && o->text_column ? o->pair_column : NULL;
    name[2] = o && o->label_column ? o->label_column : "label";
    for (size_t i = 0; !name[0] && i < sizeof pairs / sizeof pairs[0]; i++)
        if (find_column(names, n, pairs[i][0]) >= 0 && find_column(names, n, pairs[i][1]) >= 0) {
            name[0] = pairs[i][0];
            name[1] = pairs[i][1];
        }
    for (size_t i = 0; !name[0] && i < sizeof singles / sizeof singles[0]; i++)
        if (find_column(names, n, singles[i]) >= 0) name[0] = singles[i];
    char have[512] = "";
    for (int i = 0; i < n; i++) {
        size_t len = strlen(have);
        snprintf(have + len, sizeof have - len, "%s'%.32s'", i ? ", " : "", names[i]);
    }
    if (!name[0])
        return en_fail(diag, EN_EDATA,
                       "%s:%d: no text column: the header has %s; expected 'sentence' or 'text', "
                       "a pair 'sentence1'/'sentence2', 'premise'/'hypothesis' or "
                       "'question'/'passage', and 'label' (or --text-column, --label-column)",
                       r->path, r->line, have);
    for (int k = 0; k < 3; k++) {
        col[k] = name[k] ? find_column(names, n, name[k]) : -1;
        if (name[k] && col[k] < 0)
            return en_fail(diag, EN_EDATA, "%s:%d: no column '%.64s' (the header has %s)", r->path,
                           r->line, name[k], have);
    }
    return 0;
}

static int parse_label(const en_config *cfg, const char *text, int *out) {
    char *end;
    errno = 0;
    long v = strtol(text, &end, 10);
    if (end != text && *end == '\0' && errno == 0) {
        if (v < 0 || v >= cfg->num_labels) return EN_ELABEL;
        *out = (int)v;
        return 0;
    }
    for (int i = 0; i < cfg->num_labels; i++) // label2id's names, case-insensitive
        if (strcasecmp(cfg->labels[i], text) == 0) {
            *out = i;
            return 0;
        }
    return EN_ELABEL;
}

/* Appends one tokenized example; grows the array geometrically. */
static int push_example(en_dataset *d, int *cap, const int32_t *ids, const int32_t *types, int n,
                        int label, int line) {
    if (d->count == *cap) {
        int ncap = *cap ? *cap * 2 : 256;
        en_example *grown = realloc(d->ex, (size_t)ncap * sizeof *grown);
        if (!grown) return EN_ENOMEM;
        d->ex = grown;
        *cap = ncap;
    }
    en_example *e = &d->ex[d->count];
    e->ids = malloc((size_t)n * sizeof(int32_t));
    e->type_ids = malloc((size_t)n * sizeof(int32_t));
    if (!e->ids || !e->type_ids) {
        free(e->ids);
        free(e->type_ids);
        return EN_ENOMEM;
    }
    memcpy(e->ids, ids, (size_t)n * sizeof(int32_t));
    memcpy(e->type_ids, types, (size_t)n * sizeof(int32_t));
    e->n = n;
    e->label = label;
    e->line = line;
    d->count++;
    if (n > d->max_n) d->max_n = n;
    return 0;
}

/* The format from the name (.csv, .jsonl / .json), else from the first bytes ('{': JSON Lines). */
static row_format guess_format(const char *path, FILE *f) {
    const char *dot = strrchr(path, '.');
    if (dot && strcasecmp(dot, ".csv") == 0) return FMT_CSV;
    if (dot && (strcasecmp(dot, ".jsonl") == 0 || strcasecmp(dot, ".json") == 0 ||
                strcasecmp(dot, ".ndjson") == 0))
        return FMT_JSONL;
    unsigned char head[4] = {0};
    size_t n = fread(head, 1, sizeof head, f);
    rewind(f);
    size_t at = n >= 3 && head[0] == 0xEF && head[1] == 0xBB && head[2] == 0xBF ? 3 : 0;
    return at < n && head[at] == '{' ? FMT_JSONL : FMT_TSV;
}

int en_dataset_load(const char *path, const en_model *m, en_dataset **out, en_diag *diag) {
    return en_dataset_load_opts(path, m, NULL, out, diag);
}

int en_dataset_load_opts(const char *path, const en_model *m, const en_dataset_opts *opts,
                         en_dataset **out, en_diag *diag) {
    const en_config *cfg = &m->cfg;
    int fd;
    int rc = en_file_open(path, EN_MAX_DATA_BYTES, &fd, NULL, diag); // no FIFO, size capped
    if (rc) return rc;
    FILE *f = fdopen(fd, "r");
    if (!f) {
        close(fd);
        return en_fail(diag, -errno, "%s: cannot open data set: %s", path, strerror(errno));
    }
    reader r = {.f = f, .path = path, .next_line = 1, .buf = malloc(EN_MAX_LINE)};
    r.fmt = guess_format(path, f);
    en_dataset *d = calloc(1, sizeof *d);
    int32_t *ids = malloc((size_t)cfg->max_pos * sizeof(int32_t));
    int32_t *types = malloc((size_t)cfg->max_pos * sizeof(int32_t));
    int cap = 0, col[3], ncols = 0;
    const char *name[3];
    if (!d || !r.buf || !ids || !types) {
        rc = en_fail(diag, EN_ENOMEM, "%s: out of memory", path);
        goto done;
    }
    snprintf(d->path, sizeof d->path, "%s", path);
    rc = next_row(&r, diag);
    if (rc > 0) {
        const char *names[EN_MAX_COLS];
        header_names(&r, names, &ncols);
        rc = pick_columns(&r, opts, names, ncols, col, name, diag);
        if (rc == 0 && r.fmt != FMT_JSONL)
            rc = 1; // the header row is not an example
        else if (rc == 0)
            rc = 2; // a JSON Lines header is the first example
    }
    while (rc > 0) {
        if (rc == 1 && (rc = next_row(&r, diag)) <= 0) break;
        rc = 1;
        if (r.fmt != FMT_JSONL && r.nf < ncols) {
            rc = en_fail(diag, EN_EDATA, "%s:%d: %d fields, the header has %d (%s)", path, r.line,
                         r.nf, ncols, format_name[r.fmt]);
            break;
        }
        const char *texts[3] = {NULL, NULL, NULL};
        for (int k = 0; k < 3; k++) {
            texts[k] =
                col[k] >= 0 || (r.fmt == FMT_JSONL && name[k]) ? field(&r, col[k], name[k]) : NULL;
            if (name[k] && !texts[k]) {
                rc = en_fail(diag, EN_EDATA, "%s:%d: no string or integer '%.64s'", path, r.line,
                             name[k]);
                break;
            }
        }
        if (rc <= 0) break;
        int label;
        char tmp[EN_MAX_LINE > 4096 ? 4096 : EN_MAX_LINE];
        snprintf(tmp, sizeof tmp, "%s", texts[2]);
        if (parse_label(cfg, trim(tmp), &label) != 0) {
            char ex[4 * EN_EXCERPT_MAX + 8], list[1024] = "";
            for (int i = 0; i < cfg->num_labels; i++) {
                size_t len = strlen(list);
                snprintf(list + len, sizeof list - len, "%s%s", i ? ", " : "", cfg->labels[i]);
            }
            rc = en_fail(diag, EN_ELABEL,
                         "%s:%d: label %s is not one of the model's labels: %s (any case), or an "
                         "id 0..%d",
                         path, r.line, en_excerpt(texts[2], strlen(texts[2]), ex, sizeof ex), list,
                         cfg->num_labels - 1);
            break;
        }
        // Trimmed copies: JSON strings are not ours to change.
        char *a = strdup(texts[0]), *b = texts[1] ? strdup(texts[1]) : NULL;
        int n = 0;
        en_diag tdiag;
        rc = !a || (texts[1] && !b) ? EN_ENOMEM
                                    : en_tokenize(m->tok, trim(a), b ? trim(b) : NULL, cfg->max_pos,
                                                  ids, types, &n, &tdiag);
        free(a);
        free(b);
        if (rc) {
            rc = en_fail(diag, rc, "%s:%d: %s", path, r.line,
                         rc == EN_ENOMEM ? "out of memory" : tdiag.msg);
            break;
        }
        if (n <= en_tokenizer_specials(m->tok, texts[1] != NULL)) {
            rc = en_fail(diag, EN_EDATA, "%s:%d: empty sentence", path, r.line);
            break;
        }
        rc = push_example(d, &cap, ids, types, n, label, r.line);
        if (rc) {
            en_fail(diag, rc, "%s: out of memory", path);
            break;
        }
        rc = 1;
    }
    if (rc == 0 && d->count == 0)
        rc = en_fail(diag, EN_EDATA, "%s: no examples (%s: a header row, then one example a row)",
                     path, format_name[r.fmt]);
done:
    fclose(f);
    json_decref(r.obj);
    free(r.buf);
    free(ids);
    free(types);
    if (rc) {
        en_dataset_free(d);
        return rc;
    }
    *out = d;
    return 0;
}

void en_dataset_free(en_dataset *d) {
    if (!d) return;
    for (int i = 0; i < d->count; i++) {
        free(d->ex[i].ids);
        free(d->ex[i].type_ids);
    }
    free(d->ex);
    free(d);
}

int en_dataset_view(const en_dataset *d, const int *index, int count, en_dataset **out) {
    en_dataset *v = calloc(1, sizeof *v);
    if (!v) return EN_ENOMEM;
    v->ex = malloc((size_t)(count > 0 ? count : 1) * sizeof *v->ex);
    if (!v->ex) {
        free(v);
        return EN_ENOMEM;
    }
    for (int i = 0; i < count; i++) {
        if (index[i] < 0 || index[i] >= d->count) {
            free(v->ex);
            free(v);
            return EN_ERANGE;
        }
        v->ex[i] = d->ex[index[i]];
        if (v->ex[i].n > v->max_n) v->max_n = v->ex[i].n;
    }
    v->count = count;
    snprintf(v->path, sizeof v->path, "%s", d->path);
    *out = v;
    return 0;
}

void en_dataset_free_view(en_dataset *v) {
    if (!v) return;
    free(v->ex);
    free(v);
}

/* ---- evaluation ---- */

typedef struct eval_job {
    const en_model *m;
    const en_dataset *d;
    const en_eval_opts *opts;
    en_eval_result *res;
    atomic_int next;
    atomic_int correct;
    atomic_int error;
} eval_job;

/* Rows a worker's batch may hold in all: enough for a full batch of typical sentences, bounded
 * so the buffers stay small next to the weights. */
#define EVAL_BATCH_ROWS 1024

/* Runs examples [first, first + count) as one ragged batch (the caller made sure they fit). */
static int eval_batch(eval_job *job, en_ctx *c, int first, int count, int *correct) {
    const en_config *cfg = &job->m->cfg;
    const double *ratios = job->opts->ratios;
    enum { MAX_BATCH = 64 };
    const int32_t *ids[MAX_BATCH], *types[MAX_BATCH];
    int n[MAX_BATCH], rows[MAX_BATCH];
    en_metric metric[MAX_BATCH];
    float logits[MAX_BATCH * EN_MAX_LABELS];
    for (int s = 0; s < count; s++) {
        metric[s] = job->opts->metric;
        const en_example *e = &job->d->ex[first + s];
        ids[s] = e->ids;
        types[s] = e->type_ids;
        n[s] = rows[s] = e->n;
    }
    int rc = en_ctx_begin_batch(c, count, ids, types, n);
    for (int l = 0; l < cfg->layers - 1 && rc == 0; l++) {
        for (int s = 0; s < count; s++)
            rows[s] = ratios ? en_keep_count(ratios[l], n[s], rows[s]) : rows[s];
        rc = en_ctx_layer_batch(c, l, rows, metric);
    }
    if (rc == 0) // the last layer's other rows cannot change the logits
        rc = en_ctx_layer_cls(c, cfg->layers - 1);
    if (rc == 0) rc = en_ctx_finish_batch(c, logits);
    for (int s = 0; s < count && rc == 0; s++) {
        const float *lg = logits + (size_t)s * cfg->num_labels;
        int best = 0, i = first + s;
        for (int j = 1; j < cfg->num_labels; j++)
            if (lg[j] > lg[best]) best = j;
        *correct += best == job->d->ex[i].label;
        if (job->res->outcome) job->res->outcome[i] = best == job->d->ex[i].label;
        if (job->res->pred) job->res->pred[i] = best;
    }
    return rc;
}

static void *eval_worker(void *arg) {
    eval_job *job = arg;
    const en_dataset *d = job->d;
    int batch = job->opts->batch > 1 ? job->opts->batch : 1;
    if (batch > 64) batch = 64;
    int max_rows = batch == 1 ? d->max_n : d->max_n > EVAL_BATCH_ROWS ? d->max_n : EVAL_BATCH_ROWS;
    en_ctx *c = NULL;
    int rc = en_ctx_new_batch(job->m, d->max_n, max_rows, batch, &c);
    if (rc == 0 && (rc = en_ctx_set_precision(c, job->opts->precision)) != 0) en_ctx_free(c);
    if (rc) {
        atomic_store(&job->error, rc);
        return NULL;
    }
    int correct = 0;
    for (;;) {
        int i = atomic_fetch_add(&job->next, batch);
        if (i >= d->count || atomic_load(&job->error)) break;
        int end = i + batch < d->count ? i + batch : d->count;
        /* as many of them per batch as the rows allow */
        while (i < end && rc == 0) {
            int count = 0, rows = 0;
            while (i + count < end && rows + d->ex[i + count].n <= max_rows)
                rows += d->ex[i + count++].n;
            rc = eval_batch(job, c, i, count, &correct);
            i += count;
        }
        if (rc) {
            atomic_store(&job->error, rc);
            break;
        }
    }
    atomic_fetch_add(&job->correct, correct);
    en_ctx_free(c);
    return NULL;
}

int en_eval(const en_model *m, const en_dataset *d, const en_eval_opts *opts, en_eval_result *res,
            en_diag *diag) {
    if (d->count < 1) return en_fail(diag, EN_EDATA, "%s: empty data set", d->path);
    if (opts->ratios) {
        int rc = en_ratios_check(opts->ratios, m->cfg.layers, diag);
        if (rc) return rc;
    }
    int threads = opts->threads > 0 ? opts->threads : 1;
    if (threads > d->count) threads = d->count;
    en_set_blas_threads(threads == 1 && opts->blas_threads > 0 ? opts->blas_threads : 1);
    eval_job job = {.m = m, .d = d, .opts = opts, .res = res};
    atomic_init(&job.next, 0);
    atomic_init(&job.correct, 0);
    atomic_init(&job.error, 0);

    double t0 = en_now_seconds();
    pthread_t tid[64];
    int started = 0;
    for (int t = 1; t < threads && t < 64; t++)
        if (pthread_create(&tid[started], NULL, eval_worker, &job) == 0) started++;
    eval_worker(&job); // the calling thread works too
    for (int t = 0; t < started; t++)
        pthread_join(tid[t], NULL);
    double seconds = en_now_seconds() - t0;
    en_set_blas_threads(1);

    int err = atomic_load(&job.error);
    if (err) return en_fail(diag, err, "%s: evaluation failed: %s", d->path, en_strerror(err));
    double flops = 0, base = 0;
    for (int i = 0; i < d->count; i++) {
        flops += en_flops_model_sequence(m, d->ex[i].n, opts->ratios);
        base += en_flops_sequence(&m->cfg, d->ex[i].n, NULL);
    }
    res->n = d->count;
    res->correct = atomic_load(&job.correct);
    res->accuracy = (double)res->correct / d->count;
    res->mean_flops = flops / d->count;
    res->base_flops = base / d->count;
    res->flops_ratio = flops / base;
    res->seconds = seconds;
    res->latency_ms = seconds * 1000.0 / d->count;
    return 0;
}
