/* Distributed evaluation: work items on a Redis stream (blocking hiredis, off the loop). */
#define _GNU_SOURCE // syscall(SYS_gettid) for the worker's nice value
#include "sd_dist.h"

#include <hiredis/hiredis.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "engine/en_forward.h"
#include "engine/en_gemm.h"
#include "engine/en_hash.h"
#include "sd_fleet.h"
#include "sd_log.h"
#include "sd_models.h"

#define DIST_GROUP "eval"
#define DIST_CHUNKS 8        // a batch is cut in about this many items: several per host
#define DIST_CHUNK_MIN 8     // examples: below, an item's round trip outweighs its work
#define DIST_CHUNK_MAX 48    // and above, a slow host holds the batch back too long
#define DIST_STALE_MS 5000   // a claimed item idle this long: its host went silent
#define DIST_CLAIM_EVERY 1.0 // seconds between looks for such items
#define DIST_REPLY_BLOCK_MS 100
#define DIST_WORKER_BLOCK_MS 500
#define DIST_IDLE_FREE 60.0 // seconds without items before the worker frees its model
#define DIST_RETRY 5.0      // seconds before a failed connection is tried again
#define DIST_REPLY_TTL 600  // a reply stream nobody reads (its originator died) expires
#define DIST_NICE 10        // as searches: the loop thread answers first
#define DIST_LOST 1         // Redis failed (positive: never an error code)

/* A registered model, as the loop thread hands it to the worker. */
typedef struct wmodel {
    char stream[160];
    char path[1024], data[1024];
    uint64_t weights_hash;
} wmodel;

typedef struct sd_dist {
    sd_daemon *d; // loop side only (the timer)
    // Set by sd_dist_start, read-only afterwards: any thread.
    char host[256], password[256], name[320]; // name: hostname/pid, the consumers' prefix
    int port, db, threads;
    atomic_long *sent, *evaluated, *reclaimed;
    uv_timer_t timer;
    uv_thread_t thread;
    int has_thread;
    atomic_int stop; // also the cancel flag of the worker's evaluations
    atomic_int busy; // this host runs a search or retune: no spare cores
    uv_mutex_t lock; // guards models, nmodels, version
    wmodel *models;
    int nmodels, version;
} sd_dist;

struct sd_dist_origin {
    const sd_dist *w;
    char stream[160], consumer[400], reply_prefix[400];
    redisContext *c;
    int group_ok;
    double retry_at;
    unsigned seq;
    long sent, here, reclaimed; // this search's chunks: put on the stream, evaluated here
};

/* A work item's fields, borrowed from its reply. */
typedef struct item {
    const char *id, *reply, *sched, *index;
    size_t sched_len, index_len;
    long chunk;
    uint64_t check;
} item;

static double mono(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

static void sleep_ms(int ms) {
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

/* ---- wire forms: int32 little-endian blobs, the check, schedules as text ---- */

static void put_i32(char *p, int32_t v) {
    uint32_t u = (uint32_t)v;
    for (int b = 0; b < 4; b++)
        p[b] = (char)(u >> (8 * b) & 0xff);
}

static int32_t get_i32(const char *p) {
    uint32_t u = 0;
    for (int b = 0; b < 4; b++)
        u |= (uint32_t)(unsigned char)p[b] << (8 * b);
    return (int32_t)u;
}

/* FNV-1a over the token ids of the examples: a host whose data or tokenizer differs refuses. */
static uint64_t check_of(const en_dataset *ds, const int *index, int n) {
    uint64_t h = EN_FNV1A_BASIS;
    for (int i = 0; i < n; i++) {
        const en_example *e = &ds->ex[index[i]];
        h = en_fnv1a(h, &e->n, sizeof e->n);
        h = en_fnv1a(h, e->ids, sizeof *e->ids * (size_t)e->n);
    }
    return h;
}

/* The schedules' canonical texts, one per line: malloc'ed, or NULL. */
static char *sched_text(const sc_schedule *s, int count) {
    size_t cap = (size_t)count * (SC_SCHEDULE_TEXT_MAX + 1) + 1, len = 0;
    char *t = malloc(cap);
    for (int i = 0; t && i < count; i++) {
        int n = sc_schedule_format(&s[i], t + len, cap - len);
        if (n < 0) {
            free(t);
            return NULL;
        }
        len += (size_t)n;
        t[len++] = '\n';
    }
    if (t) t[len] = '\0';
    return t;
}

/* ---- replies ---- */

static int is_str(const redisReply *r) {
    return r && (r->type == REDIS_REPLY_STRING || r->type == REDIS_REPLY_STATUS);
}

/* Reads an entry [id, [field, value, ...]] into `it`: 0, or -1 when it is not a work item. */
static int item_parse(const redisReply *e, item *it) {
    memset(it, 0, sizeof *it);
    if (!e || e->type != REDIS_REPLY_ARRAY || e->elements != 2 || !is_str(e->element[0])) return -1;
    it->id = e->element[0]->str;
    const redisReply *f = e->element[1];
    if (!f || f->type != REDIS_REPLY_ARRAY) return -1; // deleted meanwhile
    it->chunk = -1;
    int have_check = 0;
    for (size_t i = 0; i + 1 < f->elements; i += 2) {
        const redisReply *k = f->element[i], *v = f->element[i + 1];
        if (!is_str(k) || !is_str(v)) continue;
        if (strcmp(k->str, "reply") == 0) it->reply = v->str;
        if (strcmp(k->str, "chunk") == 0) it->chunk = strtol(v->str, NULL, 10);
        if (strcmp(k->str, "sched") == 0) it->sched = v->str, it->sched_len = v->len;
        if (strcmp(k->str, "index") == 0) it->index = v->str, it->index_len = v->len;
        if (strcmp(k->str, "check") == 0) it->check = strtoull(v->str, NULL, 16), have_check = 1;
    }
    return it->reply && it->chunk >= 0 && it->sched && it->index && it->index_len % 4 == 0 &&
                   have_check
               ? 0
               : -1;
}

/* The entries of a one-stream XREADGROUP/XREAD reply [[stream, [entry...]]], or NULL. */
static const redisReply *entries_of(const redisReply *r) {
    if (!r || r->type != REDIS_REPLY_ARRAY || r->elements < 1) return NULL;
    const redisReply *s = r->element[0];
    if (s->type != REDIS_REPLY_ARRAY || s->elements != 2) return NULL;
    return s->element[1]->type == REDIS_REPLY_ARRAY ? s->element[1] : NULL;
}

/* A connection, named `name` (CLIENT LIST shows who is who), or NULL. */
static redisContext *dist_connect(const sd_dist *w, const char *name) {
    struct timeval tv = {1, 0};
    redisContext *c = redisConnectWithTimeout(w->host, w->port, tv);
    if (!c || c->err) {
        if (c) redisFree(c);
        return NULL;
    }
    struct timeval io = {5, 0}; // above every BLOCK used here
    redisSetTimeout(c, io);
    redisReply *r = NULL;
    int ok = 1;
    if (w->password[0]) {
        r = redisCommand(c, "AUTH %s", w->password);
        ok = r && r->type != REDIS_REPLY_ERROR;
        freeReplyObject(r);
    }
    if (ok && w->db) {
        r = redisCommand(c, "SELECT %d", w->db);
        ok = r && r->type != REDIS_REPLY_ERROR;
        freeReplyObject(r);
    }
    if (ok) {
        r = redisCommand(c, "CLIENT SETNAME %s", name);
        ok = r != NULL;
        freeReplyObject(r);
    }
    if (!ok) {
        redisFree(c);
        return NULL;
    }
    return c;
}

/* XGROUP CREATE ... $ MKSTREAM: 0 when the group exists now (BUSYGROUP: it did), -1 when Redis
 * failed. `$`: items left by an originator that died before are not served. */
static int group_create(redisContext *c, const char *stream) {
    redisReply *r = redisCommand(c, "XGROUP CREATE %s %s $ MKSTREAM", stream, DIST_GROUP);
    int ok = r && (r->type != REDIS_REPLY_ERROR || strncmp(r->str, "BUSYGROUP", 9) == 0);
    freeReplyObject(r);
    return ok ? 0 : -1;
}

/* ---- serving an item: what a worker does (and an originator, for another host's item) ---- */

/* Evaluates item `it` with model `em` on data set `ds`: `*out` (malloc'ed, count * n) and
 * `*nout`; else an error text in `err`. Returns EN_ECANCELED when cancelled, else 0. */
static int item_eval(const item *it, const en_model *em, const en_dataset *ds, int threads,
                     atomic_int *cancel, int **out, size_t *nout, char *err, size_t ecap) {
    *out = NULL;
    err[0] = '\0';
    int n = (int)(it->index_len / 4), count = 0, rc = 0;
    char *text = malloc(it->sched_len + 1);
    int *index = malloc(sizeof *index * (size_t)(n ? n : 1));
    sc_schedule *sched = malloc(sizeof *sched * (it->sched_len / 2 + 1));
    if (!text || !index || !sched) {
        snprintf(err, ecap, "out of memory");
        goto done;
    }
    if (!em || !ds) {
        snprintf(err, ecap, "this host cannot load the model or its data set");
        goto done;
    }
    memcpy(text, it->sched, it->sched_len);
    text[it->sched_len] = '\0';
    for (char *line = text, *nl; *line; line = nl + 1) {
        if (!(nl = strchr(line, '\n'))) break;
        *nl = '\0';
        en_diag why;
        if (sc_schedule_parse(line, em->cfg.layers, &sched[count++], &why) != 0) {
            snprintf(err, ecap, "schedule: %.200s", why.msg);
            goto done;
        }
    }
    for (int i = 0; i < n; i++) {
        index[i] = get_i32(it->index + 4 * (size_t)i);
        if (index[i] < 0 || index[i] >= ds->count) {
            snprintf(err, ecap, "example %d is not in this host's data set", index[i]);
            goto done;
        }
    }
    if (count == 0 || n == 0 || check_of(ds, index, n) != it->check) {
        snprintf(err, ecap, "the examples' token ids differ on this host (data or tokenizer)");
        goto done;
    }
    *out = malloc(sizeof **out * (size_t)count * (size_t)n);
    if (!*out) {
        snprintf(err, ecap, "out of memory");
        goto done;
    }
    sc_prefix_job job = {.m = em,
                         .d = ds,
                         .index = index,
                         .n_index = n,
                         .sched = sched,
                         .count = count,
                         .threads = threads,
                         .cancel = cancel,
                         .pred = *out};
    en_diag why;
    rc = sc_prefix_eval(&job, NULL, &why);
    if (rc) {
        free(*out);
        *out = NULL;
        if (rc != EN_ECANCELED) snprintf(err, ecap, "%.200s", why.msg);
        if (rc != EN_ECANCELED) rc = 0;
    }
    *nout = (size_t)count * (size_t)n;
done:
    free(text);
    free(index);
    free(sched);
    return rc;
}

/* Evaluates item `it` of `stream`, posts the result (or the error) on its reply stream and acks
 * it. 0 (also when cancelled: the item stays pending and is taken back), DIST_LOST. */
static int item_serve(redisContext *c, const char *stream, const item *it, const en_model *em,
                      const en_dataset *ds, int threads, atomic_int *cancel, atomic_long *count) {
    int *pred;
    size_t n;
    char err[256];
    if (item_eval(it, em, ds, threads, cancel, &pred, &n, err, sizeof err) == EN_ECANCELED)
        return 0;
    redisReply *r;
    int answered = pred != NULL;
    if (answered) {
        char *blob = malloc(4 * (n ? n : 1));
        for (size_t i = 0; blob && i < n; i++)
            put_i32(blob + 4 * i, pred[i]);
        free(pred);
        if (!blob) return 0; // left pending: taken back by its originator
        r = redisCommand(c, "XADD %s * chunk %ld pred %b", it->reply, it->chunk, blob, 4 * n);
        free(blob);
    } else {
        r = redisCommand(c, "XADD %s * chunk %ld error %s", it->reply, it->chunk, err);
    }
    int ok = r && r->type != REDIS_REPLY_ERROR;
    freeReplyObject(r);
    if (!ok) return DIST_LOST;
    freeReplyObject(redisCommand(c, "EXPIRE %s %d", it->reply, DIST_REPLY_TTL));
    r = redisCommand(c, "XACK %s %s %s", stream, DIST_GROUP, it->id);
    ok = r != NULL;
    freeReplyObject(r);
    if (answered) atomic_fetch_add(count, 1);
    return ok ? 0 : DIST_LOST;
}

/* ---- the originator ---- */

typedef struct batch {
    sd_dist_origin *o;
    const sc_prefix_job *job;
    sc_prefix_stats *st;
    en_diag *diag;
    int n, size, nch, left;
    char reply[480];
    char (*ids)[48];     // each chunk's stream entry ("" until sent)
    unsigned char *done; // chunks whose predictions are in job->pred
    int *tmp;            // one chunk's predictions [count * size]
    char last[48];       // the last reply entry read
} batch;

/* Evaluates chunk k here, into job->pred. */
static int chunk_local(batch *b, int k) {
    const sc_prefix_job *job = b->job;
    int first = k * b->size, len = first + b->size > b->n ? b->n - first : b->size;
    sc_prefix_job sub = *job;
    sub.index = job->index + first;
    sub.n_index = len;
    sub.pred = b->tmp;
    sub.logits = NULL;
    int rc = sc_prefix_eval(&sub, b->st, b->diag);
    if (rc) return rc;
    for (int s = 0; s < job->count; s++)
        memcpy(job->pred + (size_t)s * b->n + first, b->tmp + (size_t)s * len,
               sizeof *b->tmp * (size_t)len);
    b->done[k] = 1;
    b->left--;
    b->o->here++;
    return 0;
}

static int chunk_len(const batch *b, int k) {
    int first = k * b->size;
    return first + b->size > b->n ? b->n - first : b->size;
}

static void drop_connection(sd_dist_origin *o) {
    if (o->c) redisFree(o->c);
    o->c = NULL;
    o->group_ok = 0;
    o->retry_at = mono() + DIST_RETRY;
}

/* An item this originator claimed (XREADGROUP, or XAUTOCLAIM when `reclaimed`): its own chunk
 * is evaluated here with the cache; another batch's is served as a worker would. 0, DIST_LOST,
 * or an evaluation error. */
static int claimed(batch *b, const redisReply *e, int reclaimed) {
    sd_dist_origin *o = b->o;
    item it;
    if (item_parse(e, &it) != 0) { // deleted meanwhile, or not an item: nothing to do
        if (e && e->type == REDIS_REPLY_ARRAY && e->elements >= 1 && is_str(e->element[0]))
            freeReplyObject(
                redisCommand(o->c, "XACK %s %s %s", o->stream, DIST_GROUP, e->element[0]->str));
        return 0;
    }
    if (strcmp(it.reply, b->reply) != 0)
        return item_serve(o->c, o->stream, &it, b->job->m, b->job->d, b->job->threads,
                          b->job->cancel, o->w->evaluated);
    int rc = 0;
    if (it.chunk < b->nch && !b->done[it.chunk]) {
        if ((rc = chunk_local(b, (int)it.chunk)) != 0) return rc;
        if (reclaimed) atomic_fetch_add(o->w->reclaimed, 1), o->reclaimed++;
    }
    freeReplyObject(redisCommand(o->c, "XACK %s %s %s", o->stream, DIST_GROUP, it.id));
    return 0;
}

/* Results on the reply stream: predictions copied into job->pred; an error or a malformed
 * result evaluates that chunk here. */
static int results(batch *b, const redisReply *entries) {
    for (size_t i = 0; entries && i < entries->elements; i++) {
        const redisReply *e = entries->element[i];
        if (e->type != REDIS_REPLY_ARRAY || e->elements != 2 || !is_str(e->element[0])) continue;
        snprintf(b->last, sizeof b->last, "%s", e->element[0]->str);
        const redisReply *f = e->element[1];
        long k = -1;
        const redisReply *pred = NULL;
        for (size_t j = 0; f && f->type == REDIS_REPLY_ARRAY && j + 1 < f->elements; j += 2) {
            if (!is_str(f->element[j])) continue;
            if (strcmp(f->element[j]->str, "chunk") == 0)
                k = strtol(f->element[j + 1]->str, NULL, 10);
            if (strcmp(f->element[j]->str, "pred") == 0) pred = f->element[j + 1];
        }
        if (k < 0 || k >= b->nch || b->done[k]) continue;
        int len = chunk_len(b, (int)k), count = b->job->count;
        if (!pred || pred->len != 4 * (size_t)len * (size_t)count) {
            int rc = chunk_local(b, (int)k); // the host refused it or answered wrongly
            if (rc) return rc;
            continue;
        }
        for (int s = 0; s < count; s++)
            for (int x = 0; x < len; x++)
                b->job->pred[(size_t)s * b->n + (size_t)k * b->size + x] =
                    get_i32(pred->str + 4 * ((size_t)s * len + x));
        b->done[k] = 1;
        b->left--;
    }
    return 0;
}

/* Every chunk not done yet, here. */
static int rest_local(batch *b) {
    for (int k = 0; k < b->nch; k++)
        if (!b->done[k]) {
            int rc = chunk_local(b, k);
            if (rc) return rc;
        }
    return 0;
}

static int cancelled(const batch *b) {
    return b->job->cancel && atomic_load(b->job->cancel);
}

/* Puts the chunks on the stream, then claims, collects and takes back until every chunk is in.
 * 0, DIST_LOST (the rest is then evaluated by the caller), or an error. */
static int distribute(batch *b) {
    sd_dist_origin *o = b->o;
    const sc_prefix_job *job = b->job;
    char *text = sched_text(job->sched, job->count);
    char *blob = malloc(4 * (size_t)b->size);
    if (!text || !blob) {
        free(text);
        free(blob);
        return DIST_LOST;
    }
    int rc = 0;
    for (int k = 0; k < b->nch && rc == 0; k++) {
        int len = chunk_len(b, k);
        const int *ix = job->index + (size_t)k * b->size;
        for (int i = 0; i < len; i++)
            put_i32(blob + 4 * i, ix[i]);
        char check[24];
        snprintf(check, sizeof check, "%016llx", (unsigned long long)check_of(job->d, ix, len));
        redisReply *r = redisCommand(o->c, "XADD %s * reply %s chunk %d sched %s index %b check %s",
                                     o->stream, b->reply, k, text, blob, 4 * (size_t)len, check);
        if (r && r->type == REDIS_REPLY_STRING) {
            snprintf(b->ids[k], sizeof b->ids[k], "%s", r->str);
            atomic_fetch_add(o->w->sent, 1);
            o->sent++;
        } else {
            rc = DIST_LOST;
        }
        freeReplyObject(r);
    }
    free(text);
    free(blob);
    double last_claim = mono();
    while (rc == 0 && b->left > 0) {
        if (cancelled(b)) return EN_ECANCELED;
        // Unclaimed items first (ours are evaluated with the cache)...
        redisReply *r = redisCommand(o->c, "XREADGROUP GROUP %s %s COUNT 1 STREAMS %s >",
                                     DIST_GROUP, o->consumer, o->stream);
        if (!r || r->type == REDIS_REPLY_ERROR) {
            freeReplyObject(r);
            return DIST_LOST;
        }
        const redisReply *es = entries_of(r);
        if (es && es->elements > 0) {
            rc = claimed(b, es->element[0], 0);
            freeReplyObject(r);
            continue;
        }
        freeReplyObject(r);
        // ...then what the other hosts answered...
        r = redisCommand(o->c, "XREAD COUNT 64 BLOCK %d STREAMS %s %s", DIST_REPLY_BLOCK_MS,
                         b->reply, b->last);
        if (!r || r->type == REDIS_REPLY_ERROR) {
            freeReplyObject(r);
            return DIST_LOST;
        }
        rc = results(b, entries_of(r));
        freeReplyObject(r);
        if (rc || b->left == 0 || mono() - last_claim < DIST_CLAIM_EVERY) continue;
        // ...and what a host that went silent holds.
        last_claim = mono();
        r = redisCommand(o->c, "XAUTOCLAIM %s %s %s %d 0-0 COUNT 16", o->stream, DIST_GROUP,
                         o->consumer, DIST_STALE_MS);
        if (!r || r->type != REDIS_REPLY_ARRAY || r->elements < 2) {
            freeReplyObject(r);
            return DIST_LOST;
        }
        const redisReply *got = r->element[1];
        for (size_t i = 0; rc == 0 && got->type == REDIS_REPLY_ARRAY && i < got->elements; i++)
            rc = claimed(b, got->element[i], 1);
        freeReplyObject(r);
    }
    return rc;
}

/* Removes the batch's items (wherever they are pending) and its reply stream. */
static void cleanup(batch *b) {
    sd_dist_origin *o = b->o;
    if (!o->c) return;
    const char **argv = malloc(sizeof *argv * (size_t)(b->nch + 3));
    if (!argv) return;
    int argc = 0;
    argv[argc++] = "XACK";
    argv[argc++] = o->stream;
    argv[argc++] = DIST_GROUP;
    for (int k = 0; k < b->nch; k++)
        if (b->ids[k][0]) argv[argc++] = b->ids[k];
    if (argc > 3) {
        freeReplyObject(redisCommandArgv(o->c, argc, argv, NULL));
        argv[0] = "XDEL"; // XDEL key id...: the group's slot goes
        argv[2] = argv[--argc];
        freeReplyObject(redisCommandArgv(o->c, argc, argv, NULL));
    }
    free(argv);
    redisReply *r = redisCommand(o->c, "DEL %s", b->reply);
    if (!r) drop_connection(o);
    freeReplyObject(r);
}

static int ready(sd_dist_origin *o) {
    if (!o->c) {
        if (mono() < o->retry_at) return 0;
        char name[420];
        snprintf(name, sizeof name, "searchd-search:%s", o->consumer);
        if (!(o->c = dist_connect(o->w, name))) {
            o->retry_at = mono() + DIST_RETRY;
            return 0;
        }
    }
    if (!o->group_ok) {
        if (group_create(o->c, o->stream) != 0) {
            drop_connection(o);
            return 0;
        }
        o->group_ok = 1;
    }
    return 1;
}

int sd_dist_evaluate(void *ud, const sc_prefix_job *job, sc_prefix_stats *st, en_diag *diag) {
    sd_dist_origin *o = ud;
    int n = job->index ? job->n_index : 0;
    int size = (n + DIST_CHUNKS - 1) / DIST_CHUNKS;
    size = size < DIST_CHUNK_MIN ? DIST_CHUNK_MIN : size > DIST_CHUNK_MAX ? DIST_CHUNK_MAX : size;
    int nch = (n + size - 1) / size;
    // Small batches, width (the bank stays here) or no Redis: evaluated here, as without a fleet.
    if (nch < 2 || job->bank || job->logits || !ready(o)) return sc_prefix_eval(job, st, diag);
    batch b = {.o = o, .job = job, .st = st, .diag = diag, .n = n, .size = size, .nch = nch};
    b.left = nch;
    snprintf(b.reply, sizeof b.reply, "%s:%u", o->reply_prefix, o->seq++);
    snprintf(b.last, sizeof b.last, "0-0");
    b.ids = calloc((size_t)nch, sizeof *b.ids);
    b.done = calloc((size_t)nch, 1);
    b.tmp = malloc(sizeof *b.tmp * (size_t)size * (size_t)(job->count ? job->count : 1));
    int rc;
    if (!b.ids || !b.done || !b.tmp) {
        rc = sc_prefix_eval(job, st, diag);
    } else {
        rc = distribute(&b);
        if (rc == DIST_LOST) { // Redis failed mid-way: always correct here, just slower
            sd_log("fleet: distributed evaluation lost Redis; %d chunk(s) evaluated here", b.left);
            drop_connection(o);
            rc = rest_local(&b);
        }
        cleanup(&b);
    }
    free(b.ids);
    free(b.done);
    free(b.tmp);
    return rc;
}

int sd_dist_origin_new(const sd_daemon *d, const char *stream, uint64_t job_id,
                       sd_dist_origin **out) {
    sd_dist_origin *o = calloc(1, sizeof *o);
    if (!o) return EN_ENOMEM;
    o->w = d->dist;
    snprintf(o->stream, sizeof o->stream, "%s", stream);
    snprintf(o->consumer, sizeof o->consumer, "%s/job%llu", o->w->name, (unsigned long long)job_id);
    snprintf(o->reply_prefix, sizeof o->reply_prefix, "searchd:reply:%s:%llu", o->w->name,
             (unsigned long long)job_id);
    *out = o;
    return 0;
}

void sd_dist_origin_free(sd_dist_origin *o) {
    if (!o) return;
    if (o->sent)
        sd_log("fleet: %s: %ld chunk(s) on the stream, %ld evaluated here (%ld taken back)",
               o->consumer, o->sent, o->here, o->reclaimed);
    if (o->c) {
        freeReplyObject(
            redisCommand(o->c, "XGROUP DELCONSUMER %s %s %s", o->stream, DIST_GROUP, o->consumer));
        redisFree(o->c);
    }
    free(o);
}

/* ---- the worker ---- */

/* The model and data set the worker evaluates with, loaded at the first item of its stream. */
typedef struct loaded {
    char stream[160];
    sd_inputs in;
    double used;
} loaded;

static void unload(loaded *l) {
    if (!l->stream[0]) return;
    sd_inputs_free(&l->in);
    en_model_free(l->in.own);
    memset(l, 0, sizeof *l);
}

static const wmodel *find(const wmodel *ms, int n, const char *stream) {
    for (int i = 0; i < n; i++)
        if (strcmp(ms[i].stream, stream) == 0) return &ms[i];
    return NULL;
}

/* One XREADGROUP over the streams of the registered models; an item is evaluated and
 * answered. DIST_LOST when Redis failed. */
static int worker_take(sd_dist *w, redisContext *c, const wmodel *ms, int n, loaded *cur) {
    const char **argv = malloc(sizeof *argv * (size_t)(9 + 2 * n));
    if (!argv) return 0;
    char block[16], consumer[400];
    snprintf(block, sizeof block, "%d", DIST_WORKER_BLOCK_MS);
    snprintf(consumer, sizeof consumer, "%s/worker", w->name);
    int argc = 0;
    const char *head[] = {"XREADGROUP", "GROUP", DIST_GROUP, consumer, "COUNT",
                          "1",          "BLOCK", block,      "STREAMS"};
    for (int i = 0; i < 9; i++)
        argv[argc++] = head[i];
    for (int i = 0; i < n; i++)
        argv[argc++] = ms[i].stream;
    for (int i = 0; i < n; i++)
        argv[argc++] = ">";
    redisReply *r = redisCommandArgv(c, argc, argv, NULL);
    free(argv);
    if (!r) return DIST_LOST;
    if (r->type == REDIS_REPLY_ERROR) { // NOGROUP: a stream deleted meanwhile; made again
        freeReplyObject(r);
        return DIST_LOST;
    }
    int rc = 0;
    for (size_t s = 0; r->type == REDIS_REPLY_ARRAY && s < r->elements && rc == 0; s++) {
        const redisReply *sr = r->element[s];
        if (sr->type != REDIS_REPLY_ARRAY || sr->elements != 2 || !is_str(sr->element[0])) continue;
        const char *stream = sr->element[0]->str;
        const wmodel *m = find(ms, n, stream);
        for (size_t i = 0; m && i < sr->element[1]->elements && rc == 0; i++) {
            item it;
            if (item_parse(sr->element[1]->element[i], &it) != 0) continue;
            if (strcmp(cur->stream, stream) != 0) {
                unload(cur);
                en_diag why;
                int lr =
                    sd_inputs_load(&cur->in, m->path, m->weights_hash, NULL, m->data, "", &why);
                if (lr) { // answered with an error: its originator evaluates it
                    sd_log("fleet: worker cannot load %s: %s", m->path, why.msg);
                    sd_inputs_free(&cur->in);
                    en_model_free(cur->in.own);
                    memset(cur, 0, sizeof *cur);
                } else {
                    snprintf(cur->stream, sizeof cur->stream, "%s", stream);
                }
            }
            cur->used = mono();
            rc = item_serve(c, stream, &it, cur->in.em, cur->in.data, w->threads, &w->stop,
                            w->evaluated);
        }
    }
    freeReplyObject(r);
    return rc;
}

static void worker_main(void *arg) {
    sd_dist *w = arg;
    // On Linux nice is per thread and inherited by the threads an evaluation starts.
    setpriority(PRIO_PROCESS, (id_t)syscall(SYS_gettid), DIST_NICE);
    redisContext *c = NULL;
    double retry_at = 0;
    wmodel *ms = NULL;
    int n = 0, version = -1, groups_ok = 0;
    loaded cur;
    memset(&cur, 0, sizeof cur);
    char name[340];
    snprintf(name, sizeof name, "searchd-worker:%s", w->name);
    while (!atomic_load(&w->stop)) {
        uv_mutex_lock(&w->lock);
        if (w->version != version) {
            wmodel *copy = malloc(sizeof *copy * (size_t)(w->nmodels ? w->nmodels : 1));
            if (copy) {
                memcpy(copy, w->models, sizeof *copy * (size_t)w->nmodels);
                free(ms);
                ms = copy;
                n = w->nmodels;
                version = w->version;
                groups_ok = 0;
            }
        }
        uv_mutex_unlock(&w->lock);
        if (cur.stream[0] && mono() - cur.used > DIST_IDLE_FREE) unload(&cur);
        if (atomic_load(&w->busy) || n == 0) {
            sleep_ms(200);
            continue;
        }
        if (!c) {
            if (mono() < retry_at || !(c = dist_connect(w, name))) {
                if (mono() >= retry_at) retry_at = mono() + DIST_RETRY;
                sleep_ms(200);
                continue;
            }
            groups_ok = 0;
        }
        for (int i = 0; i < n && !groups_ok; i++)
            if (group_create(c, ms[i].stream) != 0) break;
        groups_ok = 1;
        if (worker_take(w, c, ms, n, &cur) != 0) {
            redisFree(c);
            c = NULL;
            retry_at = mono() + 1;
        }
    }
    unload(&cur);
    free(ms);
    if (c) redisFree(c);
    long n_items = atomic_load(w->evaluated);
    if (n_items) sd_log("fleet: %ld item(s) evaluated here for other hosts", n_items);
}

/* ---- the loop side ---- */

int sd_dist_stream(sd_model *m, char *key, size_t cap) {
    if (sd_model_data_hash(m) != 0) return -1;
    // The kernel path is part of the key: hosts whose F32 products differ in the last bits
    // never mix (INT8 products are the same bits on every path).
    snprintf(key, cap, "searchd:work:%016llx:%016llx:%s", (unsigned long long)m->weights_hash,
             (unsigned long long)m->data_hash, en_gemm_isa());
    return 0;
}

void sd_dist_refresh(sd_daemon *d) {
    sd_dist *w = d->dist;
    if (!w) return;
    atomic_store(&w->busy, d->jobs_running > 0 || d->retune_running > 0);
    int cap = 0;
    for (sd_model *m = d->models; m; m = m->next)
        cap++;
    wmodel *ms = calloc((size_t)(cap ? cap : 1), sizeof *ms);
    if (!ms) return;
    int n = 0;
    for (sd_model *m = d->models; m; m = m->next) {
        if (m->removed || m->changed || sd_dist_stream(m, ms[n].stream, sizeof ms[n].stream) != 0)
            continue;
        snprintf(ms[n].path, sizeof ms[n].path, "%s", m->path);
        snprintf(ms[n].data, sizeof ms[n].data, "%s", m->data);
        ms[n].weights_hash = m->weights_hash;
        n++;
    }
    uv_mutex_lock(&w->lock);
    if (n != w->nmodels || memcmp(ms, w->models, sizeof *ms * (size_t)n) != 0) {
        free(w->models);
        w->models = ms;
        w->nmodels = n;
        w->version++;
        ms = NULL;
    }
    uv_mutex_unlock(&w->lock);
    free(ms);
}

static void timer_cb(uv_timer_t *t) {
    sd_dist_refresh(((sd_dist *)t->data)->d);
}

int sd_dist_start(sd_daemon *d, en_diag *diag) {
    if (!d->opt.fleet[0]) return 0;
    sd_dist *w = calloc(1, sizeof *w);
    if (!w) return en_fail(diag, EN_ENOMEM, "out of memory");
    int rc = sd_fleet_parse_url(d->opt.fleet, w->host, sizeof w->host, &w->port, &w->db, diag);
    if (rc || (rc = uv_mutex_init(&w->lock)) != 0) {
        free(w);
        return rc ? rc : en_fail(diag, EN_ENOMEM, "cannot make a mutex");
    }
    w->d = d;
    snprintf(w->password, sizeof w->password, "%s", d->opt.fleet_password);
    char host[256] = "";
    gethostname(host, sizeof host - 1);
    snprintf(w->name, sizeof w->name, "%.200s/%d", host, (int)getpid());
    long cores = sysconf(_SC_NPROCESSORS_ONLN);
    w->threads = d->opt.search_threads > 0 ? d->opt.search_threads : cores > 0 ? (int)cores : 1;
    w->sent = &d->dist_sent;
    w->evaluated = &d->dist_evaluated;
    w->reclaimed = &d->dist_reclaimed;
    atomic_init(&w->stop, 0);
    atomic_init(&w->busy, 0);
    d->dist = w;
    // Parallel examples, never BLAS threads inside them: set here, before any calibration (which
    // sets its own and restores 1) can run, as the worker thread starts.
    en_set_blas_threads(1);
    sd_dist_refresh(d);
    if ((rc = uv_thread_create(&w->thread, worker_main, w)) != 0) {
        d->dist = NULL;
        uv_mutex_destroy(&w->lock);
        free(w->models);
        free(w);
        return en_fail(diag, rc, "cannot start the fleet's worker thread: %s", uv_strerror(rc));
    }
    w->has_thread = 1;
    uv_timer_init(d->loop, &w->timer);
    w->timer.data = w;
    uv_timer_start(&w->timer, timer_cb, 1000, 1000);
    return 0;
}

void sd_dist_stop(sd_daemon *d) {
    sd_dist *w = d->dist;
    if (!w || atomic_load(&w->stop)) return;
    atomic_store(&w->stop, 1);
    uv_close((uv_handle_t *)&w->timer, NULL);
}

void sd_dist_free(sd_daemon *d) {
    sd_dist *w = d->dist;
    if (!w) return;
    atomic_store(&w->stop, 1);
    if (w->has_thread) uv_thread_join(&w->thread);
    uv_mutex_destroy(&w->lock);
    free(w->models);
    free(w);
    d->dist = NULL;
}
