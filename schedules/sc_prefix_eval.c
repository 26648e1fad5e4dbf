#include "sc_prefix_eval.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* One cached prefix of one example: the hidden state after `depth` layers (depth < L), or the
 * logits of a whole path (depth == L, rows == 0). One allocation holds x, pos and key. */
typedef struct centry {
    int depth, rows;
    int kept;            // on the path of a schedule the caller said to keep: goes last
    unsigned long stamp; // last use: the least recently used goes first
    size_t bytes;        // counted against the budget, this struct included
    float *x;            // [rows * H] state, or [num_labels] logits; owns the allocation
    int32_t *pos;        // [rows]
    int *key;            // [depth]: the path keys of layers 0 .. depth - 1
} centry;

/* One example's share of the cache; only the worker running the example touches it. */
typedef struct cslot {
    centry *e;
    int n, cap;
    size_t bytes, budget;
    unsigned long clock;
    atomic_flag busy; // an example listed twice in one job runs without the cache the 2nd time
} cslot;

struct sc_prefix_cache {
    const en_model *m;
    const en_dataset *d;
    int *slot_of; // [d->count]: each example's slot, -1 when not covered
    cslot *slot;
    int nslots;
};

/* Shared between the workers of one call. */
typedef struct shared {
    const sc_prefix_job *job;
    int n;                // examples to run
    atomic_int next;      // next example to take
    atomic_int failed;    // first error code, 0 while none
    pthread_mutex_t lock; // guards diag and the counters below
    en_diag diag;
    long evals, saved, cached, sibling;
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
    char *have;   // [L + 1]: the state at that depth is saved and on the current path
    /* Sibling states: layer l run once with the largest keep count of the schedules that share
     * the path before it, its rows ranked; each of them narrows it to its own count. */
    float *wide;     // [L * max_n * H]: output of layer l with wide_rows[l] rows
    int32_t *wpos;   // [L * max_n]
    int32_t *wrank;  // [L * max_n]
    int *wide_rows;  // [L]
    int *wide_code;  // [L]: the metric code of the ranking (key & 7)
    char *wide_have; // [L]: valid for the current path's first l layers
    float *tmp;      // [max_n * H]: a narrowed state on its way into the context
    int32_t *tpos;   // [max_n]
    long evals, saved, cached, shared;
} worker;

static void *worker_main(void *arg);
static int run_example(worker *w, int e, int slot);
static int narrow_wide(worker *w, int l, int keep, int n0);
static void path_keys(const sc_schedule *s, int n0, int layers, int *key);
static int worker_init(worker *w, shared *sh);
static void worker_fini(worker *w);
static void fail(shared *sh, int code, const char *msg);
static int cache_find(const cslot *cs, const int *key, int layers);
static void cache_touch(cslot *cs, const int *key, int depth);
static void cache_put(cslot *cs, const int *key, int depth, int rows, const float *x,
                      const int32_t *pos, int width);

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
        st->layer_evals_cached += sh.cached;
        st->layer_evals_sibling += sh.sibling;
    }
    pthread_mutex_destroy(&sh.lock);
    return rc;
}

int sc_prefix_cache_new(const en_model *m, const en_dataset *d, const int *index, int n_index,
                        size_t budget_bytes, sc_prefix_cache **out) {
    *out = NULL;
    int n = index ? n_index : d->count;
    sc_prefix_cache *c = calloc(1, sizeof *c);
    if (!c) return EN_ENOMEM;
    c->m = m;
    c->d = d;
    c->slot_of = malloc((size_t)(d->count ? d->count : 1) * sizeof *c->slot_of);
    c->slot = calloc((size_t)(n ? n : 1), sizeof *c->slot);
    if (!c->slot_of || !c->slot) {
        sc_prefix_cache_free(c);
        return EN_ENOMEM;
    }
    for (int i = 0; i < d->count; i++)
        c->slot_of[i] = -1;
    double tokens = 0;
    for (int i = 0; i < n; i++)
        tokens += d->ex[index ? index[i] : i].n;
    for (int i = 0; i < n; i++) {
        int e = index ? index[i] : i;
        if (e < 0 || e >= d->count || c->slot_of[e] >= 0) continue;
        cslot *cs = &c->slot[c->nslots];
        // A longer sentence has bigger states: its share grows with its length.
        cs->budget = (size_t)((double)budget_bytes * d->ex[e].n / tokens);
        atomic_flag_clear(&cs->busy);
        c->slot_of[e] = c->nslots++;
    }
    *out = c;
    return 0;
}

void sc_prefix_cache_free(sc_prefix_cache *c) {
    if (!c) return;
    for (int i = 0; i < c->nslots; i++) {
        for (int j = 0; j < c->slot[i].n; j++)
            free(c->slot[i].e[j].x);
        free(c->slot[i].e);
    }
    free(c->slot);
    free(c->slot_of);
    free(c);
}

int sc_prefix_cache_keep(sc_prefix_cache *c, const sc_schedule *sched, int count) {
    int L = c->m->cfg.layers;
    int *key = malloc((size_t)(count ? count : 1) * L * sizeof *key);
    if (!key) return EN_ENOMEM;
    for (int e = 0; e < c->d->count; e++) {
        if (c->slot_of[e] < 0) continue;
        cslot *cs = &c->slot[c->slot_of[e]];
        for (int s = 0; s < count; s++)
            path_keys(&sched[s], c->d->ex[e].n, L, &key[s * L]);
        for (int j = 0; j < cs->n; j++) {
            centry *en = &cs->e[j];
            en->kept = 0;
            for (int s = 0; s < count && !en->kept; s++)
                en->kept = memcmp(en->key, &key[s * L], (size_t)en->depth * sizeof *key) == 0;
        }
    }
    free(key);
    return 0;
}

size_t sc_prefix_cache_bytes(const sc_prefix_cache *c) {
    size_t b = 0;
    for (int i = 0; c && i < c->nslots; i++)
        b += c->slot[i].bytes;
    return b;
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
    sh->cached += w->cached;
    sh->sibling += w->shared;
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

/* Layer l of schedule order[i] (its key there `key_l`): run once with the largest keep count
 * of the schedules after it in the walk that share its first l layers and rank as it does;
 * saved as wide[l] when that is more than its own count, then narrowed to its own. The last
 * layer runs for the [CLS] row alone. */
static int run_layer(worker *w, int i, int l, int key_l, en_metric metric, int n0) {
    const sc_prefix_job *job = w->sh->job;
    int L = job->m->cfg.layers, count = job->count;
    if (l == L - 1) // only the [CLS] row reaches the logits
        return en_ctx_layer_cls(w->ctx, l);
    int k = key_l >> 3, code = key_l & 7, wide = k;
    for (int j = i + 1; code != 0 && j < count && w->lcp[j] >= l; j++) {
        int kj = w->key[w->order[j] * L + l];
        if (((kj & 7) == code || (kj & 7) == 0) && kj >> 3 > wide)
            wide = kj >> 3;
    }
    if (wide == k)
        return en_ctx_layer(w->ctx, l, k, metric);
    en_ctx_rank_all(w->ctx, 1); // a wide count of every row still ranks them
    int rc = en_ctx_layer(w->ctx, l, wide, metric);
    en_ctx_rank_all(w->ctx, 0);
    if (rc != 0)
        return rc;
    int H = job->m->cfg.hidden, max_n = job->d->max_n, n, rows;
    const float *x;
    const int32_t *pos;
    en_ctx_state(w->ctx, &n, &rows, &x, &pos);
    memcpy(&w->wide[(size_t)l * max_n * H], x, (size_t)rows * H * sizeof *x);
    memcpy(&w->wpos[(size_t)l * max_n], pos, (size_t)rows * sizeof *pos);
    memcpy(&w->wrank[(size_t)l * max_n], en_ctx_rank(w->ctx), (size_t)rows * sizeof *pos);
    w->wide_rows[l] = rows;
    w->wide_code[l] = code;
    w->wide_have[l] = 1;
    return narrow_wide(w, l, k, n0);
}

/* The state after layer l with `keep` rows, from wide[l], into the context. */
static int narrow_wide(worker *w, int l, int keep, int n0) {
    const sc_prefix_job *job = w->sh->job;
    int H = job->m->cfg.hidden, max_n = job->d->max_n;
    int rc = en_state_keep_top(&w->wide[(size_t)l * max_n * H], &w->wpos[(size_t)l * max_n],
                               &w->wrank[(size_t)l * max_n], w->wide_rows[l], H, keep, w->tmp,
                               w->tpos);
    if (rc == 0)
        rc = en_ctx_set_state(w->ctx, n0, keep, w->tmp, w->tpos);
    return rc;
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

    // The example's share of the cache, unless another worker has it (a repeated example).
    cslot *cs = NULL;
    if (job->cache && job->cache->d == job->d && job->cache->slot_of[e] >= 0) {
        cs = &job->cache->slot[job->cache->slot_of[e]];
        if (atomic_flag_test_and_set(&cs->busy)) cs = NULL;
    }
    memset(w->have, 0, (size_t)L + 1);
    memset(w->wide_have, 0, (size_t)L);
    int prev_pred = -1, rc = 0;
    for (int i = 0; i < count && rc == 0; i++) {
        int s = w->order[i];
        const sc_schedule *sc = &job->sched[s];
        const int *key = &w->key[s * L];
        int from = w->lcp[i], keep_to = w->lcp[i + 1];
        int *out_pred = &job->pred[(size_t)s * n + slot];
        float *out_logits = job->logits ? &job->logits[((size_t)s * n + slot) * C] : NULL;
        if (i > 0 && from >= L - 1) {
            // Same path on every layer before the last: the same result (the last layer's
            // kept rows other than [CLS] never reach the logits).
            *out_pred = prev_pred;
            if (out_logits) memcpy(out_logits, w->logit, (size_t)C * sizeof *out_logits);
            w->saved += L;
            continue;
        }
        // Saved states deeper than the common prefix belong to another path; so do the wide
        // outputs of layers after it (wide[l] is layer l run on the state at depth l).
        for (int l = from + 1; l <= L; l++)
            w->have[l] = 0;
        for (int l = from + 1; l < L; l++)
            w->wide_have[l] = 0;
        // Resume from the deepest state on this path: saved by this walk, or cached earlier.
        int ds = from;
        while (ds >= 0 && !w->have[ds])
            ds--;
        int ce = cs ? cache_find(cs, key, L) : -1;
        int dc = ce >= 0 ? cs->e[ce].depth : -1;
        if (ce >= 0 && dc > ds) cache_touch(cs, key, dc);
        if (dc == L) { // the whole path ran before: its logits
            memcpy(w->logit, cs->e[ce].x, (size_t)C * sizeof *w->logit);
            w->saved += L;
            w->cached += L - from;
        } else {
            int resume, fresh = 0;
            // A sibling ran layer `from` wide, ranked as this schedule ranks: narrow it.
            int dsib = -1;
            if (from < L && w->wide_have[from]) {
                int kf = key[from] >> 3, cf = key[from] & 7;
                if ((cf == w->wide_code[from] || cf == 0) && kf <= w->wide_rows[from])
                    dsib = from + 1;
            }
            if (dsib > ds && dsib > dc) {
                resume = dsib;
                fresh = 1;
                rc = narrow_wide(w, from, key[from] >> 3, ex->n);
            } else if (ds < 0 && dc < 0) {
                resume = 0;
                rc = en_ctx_begin(w->ctx, ex->ids, ex->type_ids, ex->n);
            } else if (ds >= dc) {
                resume = ds;
                rc = en_ctx_set_state(w->ctx, ex->n, w->rows[ds], &w->state[(size_t)ds * max_n * H],
                                      &w->pos[(size_t)ds * max_n]);
            } else {
                resume = dc;
                rc = en_ctx_set_state(w->ctx, ex->n, cs->e[ce].rows, cs->e[ce].x, cs->e[ce].pos);
            }
            if (rc != 0) break;
            w->saved += resume;
            if (fresh) {
                w->shared += resume - from;
            } else {
                // Against a walk without the cache, which resumes at the common prefix: what the
                // cache saved, less any state it made this walk skip saving (rarely negative).
                w->cached += resume - from;
            }
            for (int l = resume; l <= L; l++) {
                int n0, rows;
                const float *x;
                const int32_t *pos;
                en_ctx_state(w->ctx, &n0, &rows, &x, &pos);
                // Save the state at depth l only when the next schedule in order resumes from
                // it or deeper: in sorted order nobody else in this walk needs it.
                if (l <= keep_to && l < L && !w->have[l]) {
                    memcpy(&w->state[(size_t)l * max_n * H], x, (size_t)rows * H * sizeof *x);
                    memcpy(&w->pos[(size_t)l * max_n], pos, (size_t)rows * sizeof *pos);
                    w->rows[l] = rows;
                    w->have[l] = 1;
                }
                // Deeper than the deepest cached match, so not cached yet.
                if (cs && (l > resume || fresh) && l < L) cache_put(cs, key, l, rows, x, pos, H);
                if (l == L) break;
                rc = run_layer(w, i, l, key[l], sc->metric, ex->n);
                if (rc != 0) break;
                w->evals++;
            }
            if (rc == 0) rc = en_ctx_finish(w->ctx, w->logit);
            if (rc != 0) break;
            if (cs) cache_put(cs, key, L, 0, w->logit, NULL, C);
        }
        int best = 0;
        for (int c = 1; c < C; c++)
            if (w->logit[c] > w->logit[best]) best = c;
        *out_pred = prev_pred = best;
        if (out_logits) memcpy(out_logits, w->logit, (size_t)C * sizeof *out_logits);
    }
    if (cs) atomic_flag_clear(&cs->busy);
    return rc;
}

/* The deepest entry on the path `key` (the logits entry when the whole path is there); -1 when
 * none. */
static int cache_find(const cslot *cs, const int *key, int layers) {
    int best = -1;
    for (int j = 0; j < cs->n; j++) {
        const centry *c = &cs->e[j];
        if (c->depth > layers || (best >= 0 && c->depth <= cs->e[best].depth)) continue;
        if (memcmp(c->key, key, (size_t)c->depth * sizeof *key) == 0) best = j;
    }
    return best;
}

/* Marks the entries on path `key` up to `depth` as just used: the shallower ones are what the
 * next schedules in the walk, sharing a shorter prefix, will look for. */
static void cache_touch(cslot *cs, const int *key, int depth) {
    unsigned long now = ++cs->clock;
    for (int j = 0; j < cs->n; j++) {
        centry *c = &cs->e[j];
        if (c->depth <= depth && memcmp(c->key, key, (size_t)c->depth * sizeof *key) == 0)
            c->stamp = now;
    }
}

/* Adds the state after `depth` layers of path `key` (`rows` rows of `width` floats and their
 * positions), or with rows == 0 the `width` logits of the whole path, evicting the least
 * recently used entries to stay within the budget. The caller knows it is not there yet. */
static void cache_put(cslot *cs, const int *key, int depth, int rows, const float *x,
                      const int32_t *pos, int width) {
    size_t floats = rows > 0 ? (size_t)rows * width : (size_t)width;
    size_t data =
        floats * sizeof(float) + (size_t)rows * sizeof(int32_t) + (size_t)depth * sizeof(int);
    size_t bytes = data + sizeof(centry);
    if (bytes > cs->budget) return;
    while (cs->bytes + bytes > cs->budget && cs->n > 0) {
        int old = 0;
        for (int j = 1; j < cs->n; j++)
            if (cs->e[j].kept < cs->e[old].kept ||
                (cs->e[j].kept == cs->e[old].kept && cs->e[j].stamp < cs->e[old].stamp))
                old = j;
        cs->bytes -= cs->e[old].bytes;
        free(cs->e[old].x);
        cs->e[old] = cs->e[--cs->n];
    }
    if (cs->n == cs->cap) {
        int cap = cs->cap ? 2 * cs->cap : 8;
        centry *e = realloc(cs->e, (size_t)cap * sizeof *e);
        if (!e) return; // a cache: running without it is still right
        cs->e = e;
        cs->cap = cap;
    }
    float *buf = malloc(data);
    if (!buf) return;
    centry *c = &cs->e[cs->n++];
    c->depth = depth;
    c->rows = rows;
    c->kept = 0;
    c->stamp = ++cs->clock;
    c->bytes = bytes;
    c->x = buf;
    c->pos = (int32_t *)(buf + floats);
    c->key = (int *)(c->pos + rows);
    memcpy(c->x, x, floats * sizeof *x);
    if (rows > 0) memcpy(c->pos, pos, (size_t)rows * sizeof *pos);
    memcpy(c->key, key, (size_t)depth * sizeof *key);
    cs->bytes += bytes;
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
    w->have = calloc((size_t)L + 1, 1);
    w->wide = malloc((size_t)L * max_n * cfg->hidden * sizeof *w->wide);
    w->wpos = malloc((size_t)L * max_n * sizeof *w->wpos);
    w->wrank = malloc((size_t)L * max_n * sizeof *w->wrank);
    w->wide_rows = calloc((size_t)L, sizeof *w->wide_rows);
    w->wide_code = calloc((size_t)L, sizeof *w->wide_code);
    w->wide_have = calloc((size_t)L, 1);
    w->tmp = malloc((size_t)max_n * cfg->hidden * sizeof *w->tmp);
    w->tpos = malloc((size_t)max_n * sizeof *w->tpos);
    if (!w->key || !w->order || !w->lcp || !w->state || !w->pos || !w->rows || !w->logit ||
        !w->have || !w->wide || !w->wpos || !w->wrank || !w->wide_rows || !w->wide_code ||
        !w->wide_have || !w->tmp || !w->tpos)
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
    free(w->have);
    free(w->wide);
    free(w->wpos);
    free(w->wrank);
    free(w->wide_rows);
    free(w->wide_code);
    free(w->wide_have);
    free(w->tmp);
    free(w->tpos);
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
