/* The originator of distributed evaluation: a search's batches on the work stream (sd_dist.h). */
#include "sd_dist.h"

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
#include "sd_dist_item.h"
#include "sd_fleet.h"
#include "sd_log.h"
#include "sd_models.h"

struct sd_dist_origin {
    const sd_dist *w;
    char stream[160], consumer[400], reply_prefix[400];
    redisContext *c;
    int group_ok;
    double retry_at;
    unsigned seq;
    long sent, here, reclaimed; // this search's chunks: put on the stream, evaluated here
};

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
    o->retry_at = en_now_seconds() + DIST_RETRY;
}

/* An item this originator claimed (XREADGROUP, or XAUTOCLAIM when `reclaimed`): its own chunk
 * is evaluated here with the cache; another batch's is served as a worker would. 0, DIST_LOST,
 * or an evaluation error. */
static int claimed(batch *b, const redisReply *e, int reclaimed) {
    sd_dist_origin *o = b->o;
    item it;
    if (sd_dist_item_parse(e, &it) != 0 || strcmp(it.reply, b->reply) != 0) {
        // not an item (deleted meanwhile), or another batch's: dropped when its originator is
        // gone, else served as a worker would
        if (sd_dist_item_orphan(o->c, o->stream, e, &it, sd_dist_redis_ms(o->c), o->w->dropped))
            return 0;
        return sd_dist_item_serve(o->c, o->stream, &it, b->job->m, b->job->d, b->job->threads,
                                  b->job->cancel, o->w->evaluated);
    }
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
        if (e->type != REDIS_REPLY_ARRAY || e->elements != 2 || !sd_dist_is_str(e->element[0]))
            continue;
        snprintf(b->last, sizeof b->last, "%s", e->element[0]->str);
        const redisReply *f = e->element[1];
        long k = -1;
        const redisReply *pred = NULL;
        for (size_t j = 0; f && f->type == REDIS_REPLY_ARRAY && j + 1 < f->elements; j += 2) {
            if (!sd_dist_is_str(f->element[j])) continue;
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
                    sd_dist_get_i32(pred->str + 4 * ((size_t)s * len + x));
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
    char *text = sd_dist_sched_text(job->sched, job->count);
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
            sd_dist_put_i32(blob + 4 * i, ix[i]);
        char check[24];
        snprintf(check, sizeof check, "%016llx",
                 (unsigned long long)sd_dist_check(job->d, ix, len));
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
    double last_claim = en_now_seconds();
    while (rc == 0 && b->left > 0) {
        if (cancelled(b)) return EN_ECANCELED;
        // Unclaimed items first (ours are evaluated with the cache)...
        redisReply *r = redisCommand(o->c, "XREADGROUP GROUP %s %s COUNT 1 STREAMS %s >",
                                     DIST_GROUP, o->consumer, o->stream);
        if (!r || r->type == REDIS_REPLY_ERROR) {
            freeReplyObject(r);
            return DIST_LOST;
        }
        const redisReply *es = sd_dist_entries(r);
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
        rc = results(b, sd_dist_entries(r));
        freeReplyObject(r);
        if (rc || b->left == 0 || en_now_seconds() - last_claim < DIST_CLAIM_EVERY) continue;
        // ...and what a host that went silent holds.
        last_claim = en_now_seconds();
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
        if (en_now_seconds() < o->retry_at) return 0;
        char name[420];
        snprintf(name, sizeof name, "searchd-search:%s", o->consumer);
        if (!(o->c = sd_dist_connect(o->w, name))) {
            o->retry_at = en_now_seconds() + DIST_RETRY;
            return 0;
        }
    }
    if (!o->group_ok) {
        if (sd_dist_group_create(o->c, o->stream) != 0) {
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
