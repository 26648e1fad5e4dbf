/* Distributed evaluation: the worker that serves other hosts' items, and the loop side. */
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

#include "engine/en_clock.h"
#include "engine/en_forward.h"
#include "engine/en_gemm.h"
#include "engine/en_hash.h"
#include "sd_dist_item.h"
#include "sd_fleet.h"
#include "sd_log.h"
#include "sd_models.h"

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
    long long now_ms = r->type == REDIS_REPLY_ARRAY && r->elements ? sd_dist_redis_ms(c) : -1;
    for (size_t s = 0; r->type == REDIS_REPLY_ARRAY && s < r->elements && rc == 0; s++) {
        const redisReply *sr = r->element[s];
        if (sr->type != REDIS_REPLY_ARRAY || sr->elements != 2 || !sd_dist_is_str(sr->element[0]))
            continue;
        const char *stream = sr->element[0]->str;
        const wmodel *m = find(ms, n, stream);
        for (size_t i = 0; m && i < sr->element[1]->elements && rc == 0; i++) {
            item it;
            if (sd_dist_item_orphan(c, stream, sr->element[1]->element[i], &it, now_ms, w->dropped))
                continue;
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
            cur->used = en_now_seconds();
            rc = sd_dist_item_serve(c, stream, &it, cur->in.em, cur->in.data, w->threads, &w->stop,
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
                if (w->nmodels > 0) memcpy(copy, w->models, sizeof *copy * (size_t)w->nmodels);
                free(ms);
                ms = copy;
                n = w->nmodels;
                version = w->version;
                groups_ok = 0;
            }
        }
        uv_mutex_unlock(&w->lock);
        if (cur.stream[0] && en_now_seconds() - cur.used > DIST_IDLE_FREE) unload(&cur);
        if (atomic_load(&w->busy) || n == 0) {
            sd_dist_sleep_ms(200);
            continue;
        }
        if (!c) {
            if (en_now_seconds() < retry_at || !(c = sd_dist_connect(w, name))) {
                if (en_now_seconds() >= retry_at) retry_at = en_now_seconds() + DIST_RETRY;
                sd_dist_sleep_ms(200);
                continue;
            }
            groups_ok = 0;
        }
        for (int i = 0; i < n && !groups_ok; i++)
            if (sd_dist_group_create(c, ms[i].stream) != 0) break;
        groups_ok = 1;
        if (worker_take(w, c, ms, n, &cur) != 0) {
            redisFree(c);
            c = NULL;
            retry_at = en_now_seconds() + 1;
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
    atomic_store(&w->busy, d->jobs_running > d->jobs_waiting || d->retune_running > 0);
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
    if (n != w->nmodels || (n > 0 && memcmp(ms, w->models, sizeof *ms * (size_t)n) != 0)) {
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
    w->dropped = &d->dist_dropped;
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
