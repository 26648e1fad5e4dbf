/* Labelled TSV data sets and their evaluation over worker threads. */
#include "en_dataset.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "en_file.h"
#include "en_flops.h"

#define EN_MAX_LINE (1 << 20) // a longer row is refused, not truncated

/* Splits `line` in place at tabs; returns the field count (at most `max`). */
static int split_tabs(char *line, char **fields, int max) {
    int n = 0;
    char *p = line;
    while (n < max) {
        fields[n++] = p;
        char *tab = strchr(p, '\t');
        if (!tab)
            break;
        *tab = '\0';
        p = tab + 1;
    }
    return n;
}

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

static int parse_label(const en_config *cfg, const char *text, int *out) {
    char *end;
    errno = 0;
    long v = strtol(text, &end, 10);
    if (end != text && *end == '\0' && errno == 0) {
        if (v < 0 || v >= cfg->num_labels)
            return EN_ELABEL;
        *out = (int)v;
        return 0;
    }
    for (int i = 0; i < cfg->num_labels; i++)
        if (strcmp(cfg->labels[i], text) == 0) {
            *out = i;
            return 0;
        }
    return EN_ELABEL;
}

static int find_column(char **names, int count, const char *want) {
    for (int i = 0; i < count; i++)
        if (strcmp(names[i], want) == 0)
            return i;
    return -1;
}

/* Appends one tokenized example; grows the array geometrically. */
static int push_example(en_dataset *d, int *cap, const int32_t *ids, const int32_t *types, int n,
                        int label, int line) {
    if (d->count == *cap) {
        int ncap = *cap ? *cap * 2 : 256;
        en_example *grown = realloc(d->ex, (size_t)ncap * sizeof *grown);
        if (!grown)
            return EN_ENOMEM;
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
    if (n > d->max_n)
        d->max_n = n;
    return 0;
}

int en_dataset_load(const char *path, const en_model *m, en_dataset **out, en_diag *diag) {
    const en_config *cfg = &m->cfg;
    int fd;
    int rc = en_file_open(path, EN_MAX_DATA_BYTES, &fd, NULL, diag); // no FIFO, size capped
    if (rc) return rc;
    FILE *f = fdopen(fd, "r");
    if (!f) {
        close(fd);
        return en_fail(diag, -errno, "%s: cannot open data set: %s", path, strerror(errno));
    }
    en_dataset *d = calloc(1, sizeof *d);
    char *line = malloc(EN_MAX_LINE);
    int32_t *ids = malloc((size_t)cfg->max_pos * sizeof(int32_t));
    int32_t *types = malloc((size_t)cfg->max_pos * sizeof(int32_t));
    int cap = 0, lineno = 0, col_a = -1, col_b = -1, col_label = -1, ncols = 0;
    if (!d || !line || !ids || !types) {
        rc = en_fail(diag, EN_ENOMEM, "%s: out of memory", path);
        goto done;
    }
    snprintf(d->path, sizeof d->path, "%s", path);
    while (fgets(line, EN_MAX_LINE, f)) {
        lineno++;
        size_t len = strlen(line);
        if (len == EN_MAX_LINE - 1 && line[len - 1] != '\n') {
            rc = en_fail(diag, EN_EDATA, "%s:%d: line longer than %d bytes", path, lineno,
                         EN_MAX_LINE);
            goto done;
        }
        chomp(line);
        char *fields[16];
        int nf = split_tabs(line, fields, 16);
        if (lineno == 1) {
            ncols = nf;
            col_label = find_column(fields, nf, "label");
            col_a = find_column(fields, nf, "sentence");
            if (col_a < 0) {
                col_a = find_column(fields, nf, "sentence1");
                col_b = find_column(fields, nf, "sentence2");
            }
            if (col_a < 0 || col_label < 0 || (col_b < 0 && find_column(fields, nf, "sentence1") >= 0)) {
                rc = en_fail(diag, EN_EDATA,
                             "%s:1: header must name the columns 'sentence' and 'label', or "
                             "'sentence1', 'sentence2' and 'label' (tab-separated)",
                             path);
                goto done;
            }
            continue;
        }
        if (nf == 1 && fields[0][0] == '\0')
            continue; // blank line
        if (nf < ncols) {
            rc = en_fail(diag, EN_EDATA, "%s:%d: %d fields, the header has %d", path, lineno, nf,
                         ncols);
            goto done;
        }
        int label;
        if (parse_label(cfg, fields[col_label], &label) != 0) {
            char ex[4 * EN_EXCERPT_MAX + 8];
            rc = en_fail(diag, EN_ELABEL,
                         "%s:%d: label %s is not one of the model's %d labels (0..%d or a "
                         "name from config.json's label2id)",
                         path, lineno,
                         en_excerpt(fields[col_label], strlen(fields[col_label]), ex, sizeof ex),
                         cfg->num_labels, cfg->num_labels - 1);
            goto done;
        }
        int n = 0;
        en_diag tdiag;
        rc = en_tokenize(m->tok, trim(fields[col_a]), col_b >= 0 ? trim(fields[col_b]) : NULL,
                         cfg->max_pos, ids, types, &n, &tdiag);
        if (rc) {
            rc = en_fail(diag, rc, "%s:%d: %s", path, lineno, tdiag.msg);
            goto done;
        }
        if (n <= en_tokenizer_specials(m->tok, col_b >= 0)) {
            rc = en_fail(diag, EN_EDATA, "%s:%d: empty sentence", path, lineno);
            goto done;
        }
        rc = push_example(d, &cap, ids, types, n, label, lineno);
        if (rc) {
            en_fail(diag, rc, "%s: out of memory", path);
            goto done;
        }
    }
    if (ferror(f)) {
        rc = en_fail(diag, -EIO, "%s: read error", path);
        goto done;
    }
    if (lineno == 0 || d->count == 0)
        rc = en_fail(diag, EN_EDATA, "%s: no examples (a header row then one example a line)",
                     path);
done:
    fclose(f);
    free(line);
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
    if (!d)
        return;
    for (int i = 0; i < d->count; i++) {
        free(d->ex[i].ids);
        free(d->ex[i].type_ids);
    }
    free(d->ex);
    free(d);
}

int en_dataset_view(const en_dataset *d, const int *index, int count, en_dataset **out) {
    en_dataset *v = calloc(1, sizeof *v);
    if (!v)
        return EN_ENOMEM;
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
        if (v->ex[i].n > v->max_n)
            v->max_n = v->ex[i].n;
    }
    v->count = count;
    snprintf(v->path, sizeof v->path, "%s", d->path);
    *out = v;
    return 0;
}

void en_dataset_free_view(en_dataset *v) {
    if (!v)
        return;
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
    if (rc == 0)
        rc = en_ctx_finish_batch(c, logits);
    for (int s = 0; s < count && rc == 0; s++) {
        const float *lg = logits + (size_t)s * cfg->num_labels;
        int best = 0, i = first + s;
        for (int j = 1; j < cfg->num_labels; j++)
            if (lg[j] > lg[best])
                best = j;
        *correct += best == job->d->ex[i].label;
        if (job->res->outcome)
            job->res->outcome[i] = best == job->d->ex[i].label;
        if (job->res->pred)
            job->res->pred[i] = best;
    }
    return rc;
}

static void *eval_worker(void *arg) {
    eval_job *job = arg;
    const en_dataset *d = job->d;
    int batch = job->opts->batch > 1 ? job->opts->batch : 1;
    if (batch > 64)
        batch = 64;
    int max_rows = batch == 1 ? d->max_n : d->max_n > EVAL_BATCH_ROWS ? d->max_n : EVAL_BATCH_ROWS;
    en_ctx *c = NULL;
    int rc = en_ctx_new_batch(job->m, d->max_n, max_rows, batch, &c);
    if (rc == 0 && (rc = en_ctx_set_precision(c, job->opts->precision)) != 0)
        en_ctx_free(c);
    if (rc) {
        atomic_store(&job->error, rc);
        return NULL;
    }
    int correct = 0;
    for (;;) {
        int i = atomic_fetch_add(&job->next, batch);
        if (i >= d->count || atomic_load(&job->error))
            break;
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

static double now_seconds(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

int en_eval(const en_model *m, const en_dataset *d, const en_eval_opts *opts, en_eval_result *res,
            en_diag *diag) {
    if (d->count < 1)
        return en_fail(diag, EN_EDATA, "%s: empty data set", d->path);
    if (opts->ratios) {
        int rc = en_ratios_check(opts->ratios, m->cfg.layers, diag);
        if (rc)
            return rc;
    }
    int threads = opts->threads > 0 ? opts->threads : 1;
    if (threads > d->count)
        threads = d->count;
    en_set_blas_threads(threads == 1 && opts->blas_threads > 0 ? opts->blas_threads : 1);
    eval_job job = {.m = m, .d = d, .opts = opts, .res = res};
    atomic_init(&job.next, 0);
    atomic_init(&job.correct, 0);
    atomic_init(&job.error, 0);

    double t0 = now_seconds();
    pthread_t tid[64];
    int started = 0;
    for (int t = 1; t < threads && t < 64; t++)
        if (pthread_create(&tid[started], NULL, eval_worker, &job) == 0)
            started++;
    eval_worker(&job); // the calling thread works too
    for (int t = 0; t < started; t++)
        pthread_join(tid[t], NULL);
    double seconds = now_seconds() - t0;
    en_set_blas_threads(1);

    int err = atomic_load(&job.error);
    if (err)
        return en_fail(diag, err, "%s: evaluation failed: %s", d->path, en_strerror(err));
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
