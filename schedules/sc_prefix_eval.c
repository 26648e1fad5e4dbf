#include "sc_prefix_eval.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sc_width.h"

/* One cached prefix of one example: the output of a run of layer depth - 1 (depth < L), or the
 * logits of a whole path (depth == L, rows == 0). A run's output serves every path that keeps
 * fewer of its rows at that layer with the same metric (the rows of rank below the count), so
 * the key's last keep count is the most the entry can give. One allocation holds x, pos, rank
 * and key. */
typedef struct centry {
    int depth, rows;
    en_metric metric;    // what `rank` ranks by
    int kept;            // on the path of a schedule the caller said to keep: goes last
    unsigned long stamp; // last use: the least recently used goes first
    size_t bytes;        // counted against the budget, this struct included
    float *x;            // [rows * H] state, or [num_labels] logits; owns the allocation
    int32_t *pos;        // [rows]
    int32_t *rank;       // [rows]: each row's importance rank in the layer (en_ctx_rank)
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

/* A node of one example's walk: the schedules order[a..b) share their first `depth` layer keys,
 * and so the hidden state after those layers (rows x H at x, positions at pos). */
typedef struct node {
    int a, b, rows;
    float *x;
    int32_t *pos;
} node;

/* One worker's buffers: a batch run state, and the nodes of two depths with their states. */
typedef struct worker {
    shared *sh;
    en_ctx *ctx;      // batches of up to MAX_SEQ states, BATCH_ROWS rows
    en_model *wm;     // the model with the current layer at a run's width (a copy of job->m)
    int *key;         // [count * L]: per-layer path key of each schedule on this example
    int *order;       // [count]: schedules sorted by key, the fully cached ones left out
    int live;         // entries of order
    float *logit;     // [count * num_labels]: per node of the last depth
    node *cur, *next; // [count] each
    int ncur, nnext;
    float *xcur, *xnext; // [count * max_n * H]
    int32_t *pcur, *pnext;
    int *run_node, *run_keep, *run_first, *run_last; // [count]: the runs of one depth
    en_metric *run_metric;
    int *run_width; // [count]: width code of each run (key >> KEY_WIDTH)
    int *child_run; // [count]: which run a child of this depth narrows, -1 when from the cache
    int *perm;      // [2 * count]: scratch of sort_runs_by_width
    en_precision prec[EN_MAX_LAYERS]; // the precision the context runs each layer at
    long evals, saved, cached, shared;
} worker;

#define MAX_SEQ 64
#define BATCH_ROWS                                                                                 \
    512 // rows per batched layer: products over a few hundred rows run at the
        // kernel's best, and the buffers stay a few MB

static void *worker_main(void *arg);
static int run_example(worker *w, int e, int slot);
static void path_keys(const sc_schedule *s, const en_config *cfg, int n0, int *key);

/* A layer's path key: (width code << KEY_WIDTH) | (keep count << 3) | (metric + 1 when the
 * layer prunes, else 0); the width code is (heads kept << 6) | (FFN level << 1) | INT8. */
enum { KEY_WIDTH = 13 };
#define KEY_KEEP(key) (((key) >> 3) & 1023)
static int worker_init(worker *w, shared *sh);
static void worker_fini(worker *w);
static void fail(shared *sh, int code, const char *msg);
static void cache_touch(cslot *cs, const int *key, int depth);
static void cache_put(cslot *cs, const int *key, int depth, int rows, const float *x,
                      const int32_t *pos, const int32_t *rank, en_metric metric, int width);
static int covers(const centry *c, const int *key);

int sc_prefix_eval(const sc_prefix_job *job, sc_prefix_stats *st, en_diag *diag) {
    int layers = job->m->cfg.layers;
    for (int s = 0; s < job->count; s++) {
        if (job->sched[s].layers != layers)
            return en_fail(diag, EN_ESCHEDULE, "schedule %d has %d ratios, the model has %d layers",
                           s, job->sched[s].layers, layers);
        if (!job->bank && sc_schedule_has_width(&job->sched[s]))
            return en_fail(diag, EN_ESCHEDULE,
                           "schedule %d narrows layers, but the model has no "
                           "width profile",
                           s);
    }
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
            path_keys(&sched[s], &c->m->cfg, c->d->ex[e].n, &key[s * L]);
        for (int j = 0; j < cs->n; j++) {
            centry *en = &cs->e[j];
            en->kept = 0;
            for (int s = 0; s < count && !en->kept; s++)
                en->kept = covers(en, &key[s * L]);
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

static int cache_find_at(const cslot *cs, const int *key, int depth);

/* Runs the batch of runs [r0, r1) of depth d (layer d): each run is a node's state with the
 * largest keep count of the children it serves; each child narrows the output to its own. The
 * runs' outputs go into the cache `cs` (may be NULL). */
static int run_batch(worker *w, cslot *cs, int d, int r0, int r1, int n0, const en_example *ex) {
    const sc_prefix_job *job = w->sh->job;
    int H = job->m->cfg.hidden, max_n = job->d->max_n, L = job->m->cfg.layers;
    const float *xs[MAX_SEQ];
    const int32_t *ps[MAX_SEQ];
    int n0s[MAX_SEQ], rows[MAX_SEQ], rc;
    int count = r1 - r0;
    for (int r = 0; r < count; r++) {
        const node *nd = &w->cur[w->run_node[r0 + r]];
        xs[r] = nd->x, ps[r] = nd->pos, rows[r] = nd->rows, n0s[r] = n0;
    }
    int code = w->run_width[r0];
    if (job->bank) { // layer d at this batch's width
        if ((rc = sc_width_bank_apply(job->bank, w->wm, d, code >> 6, code >> 1 & 31)) != 0 ||
            (rc = en_ctx_set_model(w->ctx, w->wm)) != 0)
            return rc;
    }
    w->prec[d] = code & 1 ? EN_PREC_INT8 : EN_PREC_F32; // and at its precision
    if ((rc = en_ctx_set_precision(w->ctx, w->prec)) != 0) return rc;
    if (d == 0) { // every run starts from the embeddings
        const int32_t *ids[MAX_SEQ], *types[MAX_SEQ];
        for (int r = 0; r < count; r++)
            ids[r] = ex->ids, types[r] = ex->type_ids;
        rc = en_ctx_begin_batch(w->ctx, count, ids, types, n0s);
    } else {
        rc = en_ctx_set_state_batch(w->ctx, count, n0s, rows, xs, ps);
    }
    if (rc != 0) return rc;
    if (d == L - 1) return en_ctx_layer_cls(w->ctx, d);
    rc = en_ctx_layer_batch(w->ctx, d, &w->run_keep[r0], &w->run_metric[r0]);
    if (rc != 0) return rc;
    for (int r = 0; r < count; r++) {
        int k;
        const float *x;
        const int32_t *pos, *rank;
        en_ctx_seq_state(w->ctx, r, &k, &x, &pos, &rank);
        for (int c = w->run_first[r0 + r]; c <= w->run_last[r0 + r]; c++) {
            node *ch = &w->next[c];
            if (w->child_run[c] != r0 + r) continue;
            ch->x = w->xnext + (size_t)c * max_n * H;
            ch->pos = w->pnext + (size_t)c * max_n;
            if ((rc = en_state_keep_top(x, pos, rank, k, H, ch->rows, ch->x, ch->pos)) != 0)
                return rc;
        }
        if (cs) { // the run's path: its node's, then layer d at the run's count and metric
            int key[EN_MAX_LAYERS];
            const node *nd = &w->cur[w->run_node[r0 + r]];
            memcpy(key, &w->key[w->order[nd->a] * L], (size_t)d * sizeof *key);
            en_metric m = w->run_metric[r0 + r];
            key[d] = code << KEY_WIDTH | k << 3 | (k < nd->rows ? (int)m + 1 : 0);
            cache_put(cs, key, d + 1, k, x, pos, rank, m, H);
        }
    }
    return 0;
}

/* Orders the runs of a depth by width (stably), so each width's runs batch together; the
 * children follow their runs. */
static void sort_runs_by_width(worker *w, int nruns) {
    int *perm = w->perm, *inv = w->perm + nruns;
    for (int i = 0; i < nruns; i++) {
        int at = i;
        while (at > 0 && w->run_width[perm[at - 1]] > w->run_width[i])
            perm[at] = perm[at - 1], at--;
        perm[at] = i;
    }
    int *fields[] = {w->run_node, w->run_keep, w->run_first, w->run_last, w->run_width};
    for (size_t f = 0; f < sizeof fields / sizeof *fields; f++) {
        for (int i = 0; i < nruns; i++)
            inv[i] = fields[f][perm[i]];
        memcpy(fields[f], inv, (size_t)nruns * sizeof *inv);
    }
    en_metric *mt = (en_metric *)inv;
    for (int i = 0; i < nruns; i++)
        mt[i] = w->run_metric[perm[i]];
    memcpy(w->run_metric, mt, (size_t)nruns * sizeof *mt);
    for (int i = 0; i < nruns; i++)
        inv[perm[i]] = i;
    for (int c = 0; c < w->nnext; c++)
        if (w->child_run[c] >= 0) w->child_run[c] = inv[w->child_run[c]];
}

/* One example, breadth first: the schedules sorted by path form a trie; at each depth every
 * node's children are served by one run of the layer per ranking metric (the largest keep
 * count, narrowed for each child), and all the runs of a depth go through the layer as ragged
 * batches. States already in the cache are taken from it; new ones are put there. The last
 * layer runs for the [CLS] row alone, one run per node. */
static int run_example(worker *w, int e, int slot) {
    const sc_prefix_job *job = w->sh->job;
    const en_example *ex = &job->d->ex[e];
    int L = job->m->cfg.layers, H = job->m->cfg.hidden, C = job->m->cfg.num_labels;
    int count = job->count, n = w->sh->n, max_n = job->d->max_n, rc = 0;
    long evals = 0;

    for (int s = 0; s < count; s++)
        path_keys(&job->sched[s], &job->m->cfg, ex->n, &w->key[s * L]);
    // The example's share of the cache, unless another worker has it (a repeated example).
    cslot *cs = NULL;
    if (job->cache && job->cache->d == job->d && job->cache->slot_of[e] >= 0) {
        cs = &job->cache->slot[job->cache->slot_of[e]];
        if (atomic_flag_test_and_set(&cs->busy)) cs = NULL;
    }
    // Schedules whose logits are cached are done; the others, sorted by path, walk.
    w->live = 0;
    for (int s = 0; s < count; s++) {
        int ce = cs ? cache_find_at(cs, &w->key[s * L], L) : -1;
        if (ce >= 0) {
            cache_touch(cs, &w->key[s * L], L);
            const float *lg = cs->e[ce].x;
            int best = 0;
            for (int c = 1; c < C; c++)
                if (lg[c] > lg[best]) best = c;
            job->pred[(size_t)s * n + slot] = best;
            if (job->logits) memcpy(&job->logits[((size_t)s * n + slot) * C], lg, C * sizeof *lg);
            w->cached += L;
            continue;
        }
        int j = w->live++;
        while (j > 0 && key_cmp(&w->key[w->order[j - 1] * L], &w->key[s * L], L) > 0) {
            w->order[j] = w->order[j - 1];
            j--;
        }
        w->order[j] = s;
    }
    w->ncur = w->live > 0;
    w->cur[0] = (node){0, w->live, ex->n, NULL, NULL};
    for (int d = 0; d < L && rc == 0 && w->ncur > 0; d++) {
        // The children of every node (schedules equal on layer d's key too), and the runs.
        int nruns = 0;
        w->nnext = 0;
        for (int i = 0; i < w->ncur && rc == 0; i++) {
            const node *nd = &w->cur[i];
            int first_run = nruns;
            for (int a = nd->a; a < nd->b;) {
                int kd = w->key[w->order[a] * L + d], b = a + 1;
                while (b < nd->b && w->key[w->order[b] * L + d] == kd)
                    b++;
                int c = w->nnext++;
                w->next[c] = (node){a, b, KEY_KEEP(kd), NULL, NULL};
                w->child_run[c] = -1;
                int ce = cs && d + 1 < L ? cache_find_at(cs, &w->key[w->order[a] * L], d + 1) : -1;
                if (ce >= 0) { // from the cache (copied: a later put may evict the entry)
                    const centry *en = &cs->e[ce];
                    cache_touch(cs, &w->key[w->order[a] * L], d + 1);
                    w->next[c].x = w->xnext + (size_t)c * max_n * H;
                    w->next[c].pos = w->pnext + (size_t)c * max_n;
                    rc = en_state_keep_top(en->x, en->pos, en->rank, en->rows, H, KEY_KEEP(kd),
                                           w->next[c].x, w->next[c].pos);
                    if (rc != 0) break;
                    w->cached++;
                } else {
                    // A run of this node at this child's width, ranking as it does (keep-all
                    // children, code 0, ride on any run of their width), or a new one.
                    int code = kd & 7, r = first_run, width = kd >> KEY_WIDTH;
                    en_metric m = job->sched[w->order[a]].metric;
                    while (r < nruns &&
                           (w->run_width[r] != width || (code != 0 && w->run_metric[r] != m)))
                        r++;
                    if (r == nruns) {
                        w->run_node[r] = i, w->run_keep[r] = 0, w->run_metric[r] = m;
                        w->run_first[r] = c, w->run_width[r] = width;
                        nruns++;
                    }
                    if (KEY_KEEP(kd) > w->run_keep[r]) w->run_keep[r] = KEY_KEEP(kd);
                    w->run_last[r] = c;
                    w->child_run[c] = r;
                }
                a = b;
            }
        }
        // The runs, grouped by width, in batches of one width, up to MAX_SEQ states and
        // BATCH_ROWS rows.
        if (job->bank) sort_runs_by_width(w, nruns);
        en_ctx_rank_all(w->ctx, 1);
        for (int r0 = 0; r0 < nruns && rc == 0;) {
            int r1 = r0, rows = 0;
            while (r1 < nruns && r1 - r0 < MAX_SEQ && w->run_width[r1] == w->run_width[r0] &&
                   (r1 == r0 || rows + w->cur[w->run_node[r1]].rows <= BATCH_ROWS))
                rows += w->cur[w->run_node[r1++]].rows;
            rc = run_batch(w, d + 1 < L ? cs : NULL, d, r0, r1, ex->n, ex);
            if (rc == 0 && d == L - 1) { // the logits of each run's node
                rc = en_ctx_finish_batch(w->ctx, &w->logit[(size_t)r0 * C]);
            }
            r0 = r1;
        }
        en_ctx_rank_all(w->ctx, 0);
        evals += nruns;
        int computed = 0;
        for (int c = 0; c < w->nnext; c++)
            computed += w->child_run[c] >= 0;
        w->shared += computed - nruns; // children served by a sibling's run
        if (rc != 0) break;
        if (d == L - 1) {
            // Every child of the last depth is one path: its run's logits.
            for (int c = 0; c < w->nnext; c++) {
                const float *lg = &w->logit[(size_t)w->child_run[c] * C];
                int best = 0;
                for (int k = 1; k < C; k++)
                    if (lg[k] > lg[best]) best = k;
                for (int i = w->next[c].a; i < w->next[c].b; i++) {
                    int s = w->order[i];
                    job->pred[(size_t)s * n + slot] = best;
                    if (job->logits)
                        memcpy(&job->logits[((size_t)s * n + slot) * C], lg, C * sizeof *lg);
                }
                if (cs)
                    cache_put(cs, &w->key[w->order[w->next[c].a] * L], L, 0, lg, NULL, NULL, 0, C);
            }
            break;
        }
        // The children become the nodes; their states move with them.
        node *tn = w->cur;
        w->cur = w->next, w->next = tn, w->ncur = w->nnext;
        float *tx = w->xcur;
        w->xcur = w->xnext, w->xnext = tx;
        int32_t *tp = w->pcur;
        w->pcur = w->pnext, w->pnext = tp;
    }
    w->evals += evals;
    w->saved += (long)count * L - evals;
    if (cs) atomic_flag_clear(&cs->busy);
    return rc;
}

/* Whether entry `c` gives the prefix of path `key` up to its depth: the same keys before its
 * last layer, and at that layer the same key, or the same width and metric with no fewer rows
 * (the rows of rank below the path's count are its state). Logits only for the same path. */
static int covers(const centry *c, const int *key) {
    int last = c->depth - 1;
    if (c->rows == 0) return memcmp(c->key, key, (size_t)c->depth * sizeof *key) == 0;
    if (memcmp(c->key, key, (size_t)last * sizeof *key) != 0) return 0;
    int have = c->key[last], want = key[last];
    if (have == want) return 1;
    int code = want & 7; // a path that keeps every row needs an entry that kept them all
    return have >> KEY_WIDTH == want >> KEY_WIDTH && code != 0 && (int)c->metric == code - 1 &&
           KEY_KEEP(want) < KEY_KEEP(have);
}

/* An entry at exactly `depth` covering the path `key` (the logits entry for depth L), the one
 * with fewest rows; -1 when none. */
static int cache_find_at(const cslot *cs, const int *key, int depth) {
    int best = -1;
    for (int j = 0; j < cs->n; j++) {
        const centry *c = &cs->e[j];
        if (c->depth == depth && covers(c, key) && (best < 0 || c->rows < cs->e[best].rows))
            best = j;
    }
    return best;
}

/* Marks the entries on path `key` up to `depth` as just used: the shallower ones are what the
 * next schedules in the walk, sharing a shorter prefix, will look for. */
static void cache_touch(cslot *cs, const int *key, int depth) {
    unsigned long now = ++cs->clock;
    for (int j = 0; j < cs->n; j++) {
        centry *c = &cs->e[j];
        if (c->depth <= depth && covers(c, key)) c->stamp = now;
    }
}

static void cache_drop(cslot *cs, int j) {
    cs->bytes -= cs->e[j].bytes;
    free(cs->e[j].x);
    cs->e[j] = cs->e[--cs->n];
}

/* Adds a run's output after `depth` layers of path `key` (`rows` rows of `width` floats, their
 * positions and ranks by `metric`), or with rows == 0 the `width` logits of the whole path,
 * evicting the least recently used entries to stay within the budget. Entries it covers go (it
 * serves their paths too); nothing is added when one that serves the same paths is there. */
static void cache_put(cslot *cs, const int *key, int depth, int rows, const float *x,
                      const int32_t *pos, const int32_t *rank, en_metric metric, int width) {
    size_t floats = rows > 0 ? (size_t)rows * width : (size_t)width;
    size_t data =
        floats * sizeof(float) + (size_t)rows * 2 * sizeof(int32_t) + (size_t)depth * sizeof(int);
    size_t bytes = data + sizeof(centry);
    if (bytes > cs->budget) return;
    centry probe = {.depth = depth, .rows = rows, .metric = metric, .key = (int *)key};
    int kept = 0;
    for (int j = 0; j < cs->n; j++) {
        centry *c = &cs->e[j];
        if (c->depth != depth) continue;
        if (covers(c, key) && (rows == 0 || c->metric == metric)) return; // serves as much
        if (rows > 0 && c->metric == metric && covers(&probe, c->key)) {
            kept |= c->kept;
            cache_drop(cs, j--);
        }
    }
    // Evicted first: off the kept paths, then states before whole-path logits (a few bytes
    // that save every layer), then the least recently used.
    while (cs->bytes + bytes > cs->budget && cs->n > 0) {
        int old = 0;
        for (int j = 1; j < cs->n; j++) {
            const centry *a = &cs->e[j], *o = &cs->e[old];
            int la = a->rows == 0, lo = o->rows == 0;
            if (a->kept != o->kept ? a->kept < o->kept : la != lo ? la < lo : a->stamp < o->stamp)
                old = j;
        }
        cache_drop(cs, old);
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
    c->metric = metric;
    c->kept = kept;
    c->stamp = ++cs->clock;
    c->bytes = bytes;
    c->x = buf;
    c->pos = (int32_t *)(buf + floats);
    c->rank = c->pos + rows;
    c->key = (int *)(c->rank + rows);
    memcpy(c->x, x, floats * sizeof *x);
    if (rows > 0) {
        memcpy(c->pos, pos, (size_t)rows * sizeof *pos);
        memcpy(c->rank, rank, (size_t)rows * sizeof *rank);
    }
    memcpy(c->key, key, (size_t)depth * sizeof *key);
    cs->bytes += bytes;
}

/* Key of layer l: its width code, k_l, and the metric when the layer really prunes (k_l < rows
 * in): a layer that keeps every row computes the same thing under any metric. */
static void path_keys(const sc_schedule *s, const en_config *cfg, int n0, int *key) {
    int n_in = n0, layers = cfg->layers;
    for (int l = 0; l < layers; l++) {
        int k = en_keep_count(s->ratios[l], n0, n_in);
        int width = sc_schedule_heads(s, l, cfg->heads) << 6 |
                    sc_schedule_ffn_level(s, l, SC_WIDTH_LEVELS) << 1 |
                    (s->prec[l] == EN_PREC_INT8);
        key[l] = width << KEY_WIDTH | k << 3 | (k < n_in ? (int)s->metric + 1 : 0);
        n_in = k;
    }
    // The last layer's kept rows other than [CLS] never reach the logits: its width alone.
    key[layers - 1] &= ~((1 << KEY_WIDTH) - 1);
}

static int worker_init(worker *w, shared *sh) {
    const sc_prefix_job *job = sh->job;
    const en_config *cfg = &job->m->cfg;
    int L = cfg->layers, count = job->count, max_n = job->d->max_n;
    w->sh = sh;
    if (job->bank) {
        if (!(w->wm = malloc(sizeof *w->wm))) return EN_ENOMEM;
        *w->wm = *job->m; // shares every weight; layers are pointed at the bank's, one at a time
        w->wm->arena = w->wm->packed_arena = NULL;
        w->wm->base = job->m;
    }
    int rc =
        en_ctx_new_batch(job->m, max_n, max_n > BATCH_ROWS ? max_n : BATCH_ROWS, MAX_SEQ, &w->ctx);
    if (rc != 0) return rc;
    size_t states = (size_t)count * max_n;
    w->key = malloc((size_t)count * L * sizeof *w->key);
    w->order = malloc((size_t)count * sizeof *w->order);
    w->logit = malloc((size_t)count * cfg->num_labels * sizeof *w->logit);
    w->cur = malloc((size_t)count * sizeof *w->cur);
    w->next = malloc((size_t)count * sizeof *w->next);
    w->xcur = malloc(states * cfg->hidden * sizeof *w->xcur);
    w->xnext = malloc(states * cfg->hidden * sizeof *w->xnext);
    w->pcur = malloc(states * sizeof *w->pcur);
    w->pnext = malloc(states * sizeof *w->pnext);
    w->run_node = malloc((size_t)count * sizeof(int));
    w->run_keep = malloc((size_t)count * sizeof(int));
    w->run_first = malloc((size_t)count * sizeof(int));
    w->run_last = malloc((size_t)count * sizeof(int));
    w->run_metric = malloc((size_t)count * sizeof(en_metric));
    w->child_run = malloc((size_t)count * sizeof(int));
    w->run_width = malloc((size_t)count * sizeof(int));
    w->perm = malloc((size_t)count * 2 * sizeof(int));
    if (!w->key || !w->order || !w->logit || !w->cur || !w->next || !w->xcur || !w->xnext ||
        !w->pcur || !w->pnext || !w->run_node || !w->run_keep || !w->run_first || !w->run_last ||
        !w->run_metric || !w->child_run || !w->run_width || !w->perm)
        return EN_ENOMEM;
    return 0;
}

static void worker_fini(worker *w) {
    en_ctx_free(w->ctx);
    free(w->key);
    free(w->order);
    free(w->logit);
    free(w->cur);
    free(w->next);
    free(w->xcur);
    free(w->xnext);
    free(w->pcur);
    free(w->pnext);
    free(w->run_node);
    free(w->run_keep);
    free(w->run_first);
    free(w->run_last);
    free(w->run_metric);
    free(w->child_run);
    free(w->run_width);
    free(w->perm);
    free(w->wm); // a struct copy: its weights are the model's and the bank's
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
