#include "sc_prefix_eval.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Shared between the workers of one call. */
typedef struct shared {
    const sc_prefix_job *job;
    int n;                // examples to run
    atomic_int next;      // next example to take
    atomic_int failed;    // first error code, 0 while none
    pthread_mutex_t lock; // guards diag and the counters below
    en_diag diag;
    long evals, saved;
} shared;

/* One worker's buffers, allocated once for the longest example. */
typedef struct worker {
    shared *sh;
    en_ctx *ctx;
    int *key;     // [count * L]: per-layer path key of each schedule on this example
    int *order;   // [count]: schedules sorted by key
    int *lcp;     // [count + 1]: common prefix of order[i-1] and order[i]; 0 at the ends
    float *state; // [(L + 1) * max_n * H]: saved hidden state after each depth
    int32_t *pos; // [(L + 1) * max_n]
    int *rows;    // [L + 1]
    float *logit; // [num_labels]
    long evals, saved;
} worker;

static void *worker_main(void *arg);
static int run_example(worker *w, int e, int slot);
static void path_keys(const sc_schedule *s, int n0, int layers, int *key);
static int worker_init(worker *w, shared *sh);
static void worker_fini(worker *w);
static void fail(shared *sh, int code, const char *msg);

int sc_prefix_eval(const sc_prefix_job *job, sc_prefix_stats *st, en_diag *diag) {
    int layers = job->m->cfg.layers;
    for (int s = 0; s < job->count; s++)
        if (job->sched[s].layers != layers)
            return en_fail(diag, EN_ESCHEDULE, "schedule %d has %d ratios, the model has %d layers",
                           s, job->sched[s].layers, layers);
    shared sh = {.job = job, .n = job->index ? job->n_index : job->d->count};
    atomic_init(&sh.next, 0);
    atomic_init(&sh.failed, 0);
    pthread_mutex_init(&sh.lock, NULL);
    if (sh.n == 0 || job->count == 0) {
        pthread_mutex_destroy(&sh.lock);
        return 0;
    }
    int threads = job->threads > 0 ? job->threads : 1;
    if (threads > sh.n) threads = sh.n;
    worker *w = calloc((size_t)threads, sizeof *w);
    pthread_t *tid = calloc((size_t)threads, sizeof *tid);
    int started = 0, rc = 0;
    if (!w || !tid) rc = EN_ENOMEM;
    for (int t = 0; t < threads && rc == 0; t++)
        rc = worker_init(&w[t], &sh);
    if (rc == 0) {
        // Worker 0 runs on the calling thread; the others on their own.
        for (int t = 1; t < threads; t++, started++)
            if (pthread_create(&tid[t], NULL, worker_main, &w[t]) != 0) break;
        worker_main(&w[0]);
        for (int t = 1; t <= started; t++)
            pthread_join(tid[t], NULL);
        rc = atomic_load(&sh.failed);
        if (rc != 0 && diag) *diag = sh.diag;
    } else {
        rc = en_fail(diag, rc, "cannot allocate the evaluation buffers");
    }
    for (int t = 0; w && t < threads; t++)
        worker_fini(&w[t]);
    free(w);
    free(tid);
    if (rc == 0 && st) {
        st->layer_evals += sh.evals;
        st->layer_evals_saved += sh.saved;
    }
    pthread_mutex_destroy(&sh.lock);
    return rc;
}

static void *worker_main(void *arg) {
    worker *w = arg;
    shared *sh = w->sh;
    const sc_prefix_job *job = sh->job;
    for (;;) {
        if (atomic_load(&sh->failed)) break;
        if (job->cancel && atomic_load(job->cancel)) {
            fail(sh, EN_ECANCELED, "canceled");
            break;
        }
        int slot = atomic_fetch_add(&sh->next, 1);
        if (slot >= sh->n) break;
        int e = job->index ? job->index[slot] : slot;
        int rc = run_example(w, e, slot);
        if (rc != 0) {
            char msg[300];
            snprintf(msg, sizeof msg, "%s:%d: %s", job->d->path, job->d->ex[e].line,
                     en_strerror(rc));
            fail(sh, rc, msg);
            break;
        }
    }
    pthread_mutex_lock(&sh->lock);
    sh->evals += w->evals;
    sh->saved += w->saved;
    pthread_mutex_unlock(&sh->lock);
    return NULL;
}

/* Compares two schedules' paths on the current example, layer by layer. */
static int key_cmp(const int *a, const int *b, int layers) {
    for (int l = 0; l < layers; l++)
        if (a[l] != b[l]) return a[l] < b[l] ? -1 : 1;
    return 0;
}

static int common_prefix(const int *a, const int *b, int layers) {
    int l = 0;
    while (l < layers && a[l] == b[l])
        l++;
    return l;
}

static int run_example(worker *w, int e, int slot) {
    const sc_prefix_job *job = w->sh->job;
    const en_example *ex = &job->d->ex[e];
    int L = job->m->cfg.layers, H = job->m->cfg.hidden, C = job->m->cfg.num_labels;
    int count = job->count, n = w->sh->n;
    int max_n = job->d->max_n;

    for (int s = 0; s < count; s++)
        path_keys(&job->sched[s], ex->n, L, &w->key[s * L]);
    // Insertion sort: count is small next to the cost of one layer.
    for (int i = 0; i < count; i++) {
        int s = i, j = i;
        while (j > 0 && key_cmp(&w->key[w->order[j - 1] * L], &w->key[s * L], L) > 0) {
            w->order[j] = w->order[j - 1];
            j--;
        }
        w->order[j] = s;
    }
    w->lcp[0] = 0;
    w->lcp[count] = 0;
    for (int i = 1; i < count; i++)
        w->lcp[i] = common_prefix(&w->key[w->order[i - 1] * L], &w->key[w->order[i] * L], L);

    int prev_pred = -1;
    for (int i = 0; i < count; i++) {
        int s = w->order[i];
        const sc_schedule *sc = &job->sched[s];
        int from = w->lcp[i], keep_to = w->lcp[i + 1];
        int *out_pred = &job->pred[(size_t)s * n + slot];
        float *out_logits = job->logits ? &job->logits[((size_t)s * n + slot) * C] : NULL;
        if (i > 0 && from == L) {
            // Same path on every layer: the same computation, so the same result.
            *out_pred = prev_pred;
            if (out_logits) memcpy(out_logits, w->logit, (size_t)C * sizeof *out_logits);
            w->saved += L;
            continue;
        }
        int rc;
        if (i == 0) {
            rc = en_ctx_begin(w->ctx, ex->ids, ex->type_ids, ex->n);
        } else {
            rc = en_ctx_set_state(w->ctx, ex->n, w->rows[from], &w->state[(size_t)from * max_n * H],
                                  &w->pos[(size_t)from * max_n]);
        }
        if (rc != 0) return rc;
        w->saved += from;
        for (int l = from; l <= L; l++) {
            // Save the state at depth l only when the next schedule in order resumes from it
            // or deeper: in sorted order nobody else needs it.
            if (l <= keep_to && l < L && (l > from || i == 0)) {
                int n0, rows;
                const float *x;
                const int32_t *pos;
                en_ctx_state(w->ctx, &n0, &rows, &x, &pos);
                memcpy(&w->state[(size_t)l * max_n * H], x, (size_t)rows * H * sizeof *x);
                memcpy(&w->pos[(size_t)l * max_n], pos, (size_t)rows * sizeof *pos);
                w->rows[l] = rows;
            }
            if (l == L) break;
            int keep = w->key[s * L + l] >> 3;
            rc = en_ctx_layer(w->ctx, l, keep, sc->metric);
            if (rc != 0) return rc;
            w->evals++;
        }
        rc = en_ctx_finish(w->ctx, w->logit);
        if (rc != 0) return rc;
        int best = 0;
        for (int c = 1; c < C; c++)
            if (w->logit[c] > w->logit[best]) best = c;
        *out_pred = prev_pred = best;
        if (out_logits) memcpy(out_logits, w->logit, (size_t)C * sizeof *out_logits);
    }
    return 0;
}

/* Key of layer l: k_l * 8, plus metric + 1 when the layer really prunes (k_l < rows in). A
 * layer that keeps every row computes the same thing under any metric. */
static void path_keys(const sc_schedule *s, int n0, int layers, int *key) {
    int n_in = n0;
    for (int l = 0; l < layers; l++) {
        int k = en_keep_count(s->ratios[l], n0, n_in);
        key[l] = k * 8 + (k < n_in ? (int)s->metric + 1 : 0);
        n_in = k;
    }
}

static int worker_init(worker *w, shared *sh) {
    const sc_prefix_job *job = sh->job;
    const en_config *cfg = &job->m->cfg;
    int L = cfg->layers, count = job->count, max_n = job->d->max_n;
    w->sh = sh;
    int rc = en_ctx_new(job->m, max_n, &w->ctx);
    if (rc != 0) return rc;
    w->key = malloc((size_t)count * L * sizeof *w->key);
    w->order = malloc((size_t)count * sizeof *w->order);
    w->lcp = malloc((size_t)(count + 1) * sizeof *w->lcp);
    w->state = malloc((size_t)(L + 1) * max_n * cfg->hidden * sizeof *w->state);
    w->pos = malloc((size_t)(L + 1) * max_n * sizeof *w->pos);
    w->rows = calloc((size_t)L + 1, sizeof *w->rows);
    w->logit = malloc((size_t)cfg->num_labels * sizeof *w->logit);
    if (!w->key || !w->order || !w->lcp || !w->state || !w->pos || !w->rows || !w->logit)
        return EN_ENOMEM;
    return 0;
}

static void worker_fini(worker *w) {
    en_ctx_free(w->ctx);
    free(w->key);
    free(w->order);
    free(w->lcp);
    free(w->state);
    free(w->pos);
    free(w->rows);
    free(w->logit);
    memset(w, 0, sizeof *w);
}

static void fail(shared *sh, int code, const char *msg) {
    int zero = 0;
    if (atomic_compare_exchange_strong(&sh->failed, &zero, code)) {
        pthread_mutex_lock(&sh->lock);
        snprintf(sh->diag.msg, sizeof sh->diag.msg, "%s", msg && *msg ? msg : en_strerror(code));
        pthread_mutex_unlock(&sh->lock);
    }
}
