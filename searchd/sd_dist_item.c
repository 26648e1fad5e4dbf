/* Work items and results on the wire, connections, and serving one item (sd_dist_item.h). */
#include "sd_dist_item.h"

#include <hiredis/hiredis.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "engine/en_clock.h"
#include "engine/en_forward.h"
#include "engine/en_gemm.h"
#include "engine/en_hash.h"
#include "sd_fleet.h"
#include "sd_log.h"
#include "sd_models.h"

void sd_dist_sleep_ms(int ms) {
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

/* ---- wire forms: int32 little-endian blobs, the check, schedules as text ---- */

void sd_dist_put_i32(char *p, int32_t v) {
    uint32_t u = (uint32_t)v;
    for (int b = 0; b < 4; b++)
        p[b] = (char)(u >> (8 * b) & 0xff);
}

int32_t sd_dist_get_i32(const char *p) {
    uint32_t u = 0;
    for (int b = 0; b < 4; b++)
        u |= (uint32_t)(unsigned char)p[b] << (8 * b);
    return (int32_t)u;
}

/* FNV-1a over the token ids of the examples: a host whose data or tokenizer differs refuses. */
uint64_t sd_dist_check(const en_dataset *ds, const int *index, int n) {
    uint64_t h = EN_FNV1A_BASIS;
    for (int i = 0; i < n; i++) {
        const en_example *e = &ds->ex[index[i]];
        h = en_fnv1a(h, &e->n, sizeof e->n);
        h = en_fnv1a(h, e->ids, sizeof *e->ids * (size_t)e->n);
    }
    return h;
}

/* The schedules' canonical texts, one per line: malloc'ed, or NULL. */
char *sd_dist_sched_text(const sc_schedule *s, int count) {
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

int sd_dist_is_str(const redisReply *r) {
    return r && (r->type == REDIS_REPLY_STRING || r->type == REDIS_REPLY_STATUS);
}

/* Reads an entry [id, [field, value, ...]] into `it`: 0, or -1 when it is not a work item. */
int sd_dist_item_parse(const redisReply *e, item *it) {
    memset(it, 0, sizeof *it);
    if (!e || e->type != REDIS_REPLY_ARRAY || e->elements != 2 || !sd_dist_is_str(e->element[0]))
        return -1;
    it->id = e->element[0]->str;
    const redisReply *f = e->element[1];
    if (!f || f->type != REDIS_REPLY_ARRAY) return -1; // deleted meanwhile
    it->chunk = -1;
    int have_check = 0;
    for (size_t i = 0; i + 1 < f->elements; i += 2) {
        const redisReply *k = f->element[i], *v = f->element[i + 1];
        if (!sd_dist_is_str(k) || !sd_dist_is_str(v)) continue;
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

long long sd_dist_redis_ms(redisContext *c) {
    redisReply *r = redisCommand(c, "TIME");
    long long ms = -1;
    if (r && r->type == REDIS_REPLY_ARRAY && r->elements == 2 && sd_dist_is_str(r->element[0]) &&
        sd_dist_is_str(r->element[1]))
        ms = strtoll(r->element[0]->str, NULL, 10) * 1000 +
             strtoll(r->element[1]->str, NULL, 10) / 1000;
    freeReplyObject(r);
    return ms;
}

/* A dead originator's items would otherwise be evaluated for nobody and stay in the stream. */
int sd_dist_item_orphan(redisContext *c, const char *stream, const redisReply *e, item *it,
                        long long now_ms, atomic_long *dropped) {
    int parsed = sd_dist_item_parse(e, it) == 0;
    if (parsed && (now_ms <= 0 || now_ms - strtoll(it->id, NULL, 10) <= DIST_ORPHAN_MS)) return 0;
    if (!e || e->type != REDIS_REPLY_ARRAY || e->elements < 1 || !sd_dist_is_str(e->element[0]))
        return 1; // nothing to name it by
    const char *id = e->element[0]->str;
    freeReplyObject(redisCommand(c, "XACK %s %s %s", stream, DIST_GROUP, id));
    if (e->elements < 2 || e->element[1]->type != REDIS_REPLY_ARRAY) return 1; // deleted already
    freeReplyObject(redisCommand(c, "XDEL %s %s", stream, id));
    atomic_fetch_add(dropped, 1);
    return 1;
}

/* The entries of a one-stream XREADGROUP/XREAD reply [[stream, [entry...]]], or NULL. */
const redisReply *sd_dist_entries(const redisReply *r) {
    if (!r || r->type != REDIS_REPLY_ARRAY || r->elements < 1) return NULL;
    const redisReply *s = r->element[0];
    if (s->type != REDIS_REPLY_ARRAY || s->elements != 2) return NULL;
    return s->element[1]->type == REDIS_REPLY_ARRAY ? s->element[1] : NULL;
}

/* A connection, named `name` (CLIENT LIST shows who is who), or NULL. */
redisContext *sd_dist_connect(const sd_dist *w, const char *name) {
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
int sd_dist_group_create(redisContext *c, const char *stream) {
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
        index[i] = sd_dist_get_i32(it->index + 4 * (size_t)i);
        if (index[i] < 0 || index[i] >= ds->count) {
            snprintf(err, ecap, "example %d is not in this host's data set", index[i]);
            goto done;
        }
    }
    if (count == 0 || n == 0 || sd_dist_check(ds, index, n) != it->check) {
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
int sd_dist_item_serve(redisContext *c, const char *stream, const item *it, const en_model *em,
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
            sd_dist_put_i32(blob + 4 * i, pred[i]);
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
    // served: nobody reads it again (its originator deletes its items at the end, a no-op then)
    if (ok) freeReplyObject(redisCommand(c, "XDEL %s %s", stream, it->id));
    if (answered) atomic_fetch_add(count, 1);
    return ok ? 0 : DIST_LOST;
}
