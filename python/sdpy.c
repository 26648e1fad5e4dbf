/* The C ABI the Python package loads (sdpy.h): a model plus a pool of run states. */
#include "python/sdpy.h"

#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "client/sdc_apply.h"
#include "engine/en_forward.h"
#include "engine/en_layout.h"
#include "engine/en_model.h"
#include "engine/en_tokenizer.h"
#include "schedules/sc_error.h"
#include "schedules/sc_schedule.h"

#define SDPY_API __attribute__((visibility("default")))

/* A record's narrowed network, shared by the calls that use it; freed by the last one once a
 * newer schedule replaced it. */
typedef struct narrowed {
    en_model *m;
    char key[SC_SCHEDULE_TEXT_MAX]; // the schedule it is for
    int refs;
} narrowed;

struct sdpy_model {
    en_model *m;
    pthread_mutex_t lock; // guards the pool and `cur`
    en_ctx **free_ctx;    // run states not in use
    int nfree, cap;
    narrowed *cur; // the last record's network, or NULL
};

static int classify(sdpy_model *sm, const sc_schedule *s, const en_model *run, int n,
                    const char *const *texts, const char *const *pairs, int32_t *label,
                    double *prob, int32_t *tokens, char *err, size_t errlen);

static void set_err(char *err, size_t errlen, const char *msg);
static int run_take(sdpy_model *sm, en_ctx **out);
static void run_give(sdpy_model *sm, en_ctx *c);

SDPY_API int sdpy_model_load(const char *dir, sdpy_model **out, char *err, size_t errlen) {
    *out = NULL;
    sdpy_model *sm = calloc(1, sizeof *sm);
    if (!sm) return EN_ENOMEM;
    en_diag diag = {{0}};
    int rc = en_checkpoint_check(dir, &diag); // what the folder holds, first
    if (rc == 0) rc = en_model_load(dir, &sm->m, &diag);
    if (rc != 0) {
        set_err(err, errlen, diag.msg[0] ? diag.msg : en_strerror(rc));
        free(sm);
        return rc;
    }
    pthread_mutex_init(&sm->lock, NULL);
    *out = sm;
    return 0;
}

SDPY_API void sdpy_model_free(sdpy_model *m) {
    if (!m) return;
    for (int i = 0; i < m->nfree; i++)
        en_ctx_free(m->free_ctx[i]);
    if (m->cur) en_model_free(m->cur->m);
    free(m->cur);
    free(m->free_ctx);
    pthread_mutex_destroy(&m->lock);
    en_model_free(m->m);
    free(m);
}

SDPY_API int sdpy_model_layers(const sdpy_model *m) {
    return m->m->cfg.layers;
}

SDPY_API int sdpy_model_num_labels(const sdpy_model *m) {
    return m->m->cfg.num_labels;
}

SDPY_API const char *sdpy_model_label(const sdpy_model *m, int i) {
    return i >= 0 && i < m->m->cfg.num_labels ? m->m->cfg.labels[i] : NULL;
}

SDPY_API const char *sdpy_model_family(const sdpy_model *m) {
    return en_model_family(m->m);
}

SDPY_API int sdpy_model_max_tokens(const sdpy_model *m) {
    return m->m->cfg.max_pos;
}

SDPY_API int sdpy_classify(sdpy_model *sm, const char *schedule, int n, const char *const *texts,
                           const char *const *pairs, int32_t *label, double *prob, int32_t *tokens,
                           char *err, size_t errlen) {
    const en_config *cfg = &sm->m->cfg;
    sc_schedule s;
    en_diag diag = {{0}};
    if (schedule && schedule[0]) {
        int rc = sc_schedule_parse(schedule, cfg->layers, &s, &diag);
        if (rc == 0 && sc_schedule_has_width(&s))
            rc = en_fail(&diag, EN_ESCHEDULE,
                         "the schedule narrows layers (heads:/ffn:): pass "
                         "the record searchd sent (it says which heads and neurons)");
        if (rc != 0) {
            set_err(err, errlen, diag.msg);
            return rc;
        }
    } else {
        sc_schedule_full(&s, EN_METRIC_ATTN, cfg->layers);
    }
    return classify(sm, &s, sm->m, n, texts, pairs, label, prob, tokens, err, errlen);
}

SDPY_API int sdpy_classify_record(sdpy_model *sm, const void *record, size_t len, int n,
                                  const char *const *texts, const char *const *pairs,
                                  int32_t *label, double *prob, int32_t *tokens, char *err,
                                  size_t errlen) {
    const en_config *cfg = &sm->m->cfg;
    msgpack_unpacked up;
    msgpack_unpacked_init(&up);
    char text[SC_SCHEDULE_TEXT_MAX] = "";
    const msgpack_object *sched = NULL;
    int rc = msgpack_unpack_next(&up, record, len, NULL) == MSGPACK_UNPACK_SUCCESS ? 0 : EN_EINPUT;
    for (uint32_t i = 0; rc == 0 && up.data.type == MSGPACK_OBJECT_MAP && i < up.data.via.map.size;
         i++) {
        const msgpack_object *k = &up.data.via.map.ptr[i].key;
        if (k->type == MSGPACK_OBJECT_STR && k->via.str.size == 8 &&
            memcmp(k->via.str.ptr, "schedule", 8) == 0)
            sched = &up.data.via.map.ptr[i].val;
    }
    if (rc || !sched || sched->type != MSGPACK_OBJECT_STR || sched->via.str.size >= sizeof text) {
        msgpack_unpacked_destroy(&up);
        set_err(err, errlen, "not a record: a map with the schedule's text under \"schedule\"");
        return EN_EINPUT;
    }
    memcpy(text, sched->via.str.ptr, sched->via.str.size);
    sc_schedule s;
    en_diag diag = {{0}};
    if ((rc = sc_schedule_parse(text, cfg->layers, &s, &diag)) != 0) {
        msgpack_unpacked_destroy(&up);
        set_err(err, errlen, diag.msg);
        return rc;
    }
    narrowed *nw = NULL;
    if (sc_schedule_has_width(&s)) { // the network the record keeps, built once per schedule
        pthread_mutex_lock(&sm->lock);
        if (sm->cur && strcmp(sm->cur->key, text) == 0) {
            nw = sm->cur;
            nw->refs++;
        }
        pthread_mutex_unlock(&sm->lock);
        if (!nw) {
            en_model *m = NULL;
            char why[300];
            if ((rc = sdc_apply_width(&up.data, sm->m, &m, why, sizeof why)) == 0 && !m) {
                rc = EN_ESCHEDULE;
                snprintf(why, sizeof why,
                         "the schedule narrows layers but the record has no "
                         "\"width\"");
            }
            if (rc == 0 && !(nw = calloc(1, sizeof *nw))) rc = EN_ENOMEM;
            if (rc) {
                en_model_free(m);
                msgpack_unpacked_destroy(&up);
                set_err(err, errlen, rc == EN_ENOMEM ? "out of memory" : why);
                return rc;
            }
            nw->m = m;
            nw->refs = 1;
            snprintf(nw->key, sizeof nw->key, "%s", text);
            pthread_mutex_lock(&sm->lock);
            narrowed *old = sm->cur;
            sm->cur = nw;
            nw->refs++; // sm->cur's own reference
            if (old && --old->refs == 0) {
                en_model_free(old->m);
                free(old);
            }
            pthread_mutex_unlock(&sm->lock);
        }
    }
    msgpack_unpacked_destroy(&up);
    rc = classify(sm, &s, nw ? nw->m : sm->m, n, texts, pairs, label, prob, tokens, err, errlen);
    if (nw) {
        pthread_mutex_lock(&sm->lock);
        if (--nw->refs == 0) {
            en_model_free(nw->m);
            free(nw);
        }
        pthread_mutex_unlock(&sm->lock);
    }
    return rc;
}

/* Classifies the texts under `s` with `run` (the model or a network narrowed from it). */
static int classify(sdpy_model *sm, const sc_schedule *sp, const en_model *run, int n,
                    const char *const *texts, const char *const *pairs, int32_t *label,
                    double *prob, int32_t *tokens, char *err, size_t errlen) {
    const en_config *cfg = &sm->m->cfg;
    const sc_schedule s = *sp;
    en_diag diag = {{0}};
    int rc = 0;
    en_ctx *ctx = NULL;
    int32_t *ids = malloc(sizeof(int32_t) * (size_t)cfg->max_pos);
    int32_t *types = malloc(sizeof(int32_t) * (size_t)cfg->max_pos);
    if (!ids || !types || (rc = run_take(sm, &ctx)) != 0) {
        free(ids);
        free(types);
        set_err(err, errlen, "out of memory");
        return rc ? rc : EN_ENOMEM;
    }
    en_ctx_set_model(ctx, run); // the model's shape: cannot fail
    en_ctx_set_precision(ctx, s.prec);
    for (int i = 0; i < n && rc == 0; i++) {
        int len = 0;
        float logits[EN_MAX_LABELS];
        const char *b = pairs ? pairs[i] : NULL;
        rc = en_tokenize(sm->m->tok, texts[i], b, cfg->max_pos, ids, types, &len, &diag);
        if (rc == 0) rc = en_forward(ctx, ids, types, len, s.metric, s.ratios, logits, NULL, NULL);
        if (rc != 0) {
            char msg[600];
            snprintf(msg, sizeof msg, "text %d: %s", i, diag.msg[0] ? diag.msg : en_strerror(rc));
            set_err(err, errlen, msg);
            break;
        }
        // The softmax searchctl prints (client/offline_args.c), in double from the top logit.
        double *p = prob + (size_t)i * (size_t)cfg->num_labels;
        int best = 0;
        for (int k = 1; k < cfg->num_labels; k++)
            if (logits[k] > logits[best]) best = k;
        double sum = 0;
        for (int k = 0; k < cfg->num_labels; k++)
            sum += p[k] = exp((double)logits[k] - logits[best]);
        for (int k = 0; k < cfg->num_labels; k++)
            p[k] /= sum;
        label[i] = best;
        if (tokens) tokens[i] = len;
    }
    en_ctx_set_model(ctx, sm->m); // back to the pool as it came
    run_give(sm, ctx);
    free(ids);
    free(types);
    return rc;
}

SDPY_API const char *sdpy_strerror(int code) {
    return sc_strerror(code); // names engine codes and errno too
}

static void set_err(char *err, size_t errlen, const char *msg) {
    if (err && errlen) snprintf(err, errlen, "%s", msg);
}

/* A run state from the pool, or a new one (sized for the longest input). */
static int run_take(sdpy_model *sm, en_ctx **out) {
    pthread_mutex_lock(&sm->lock);
    *out = sm->nfree > 0 ? sm->free_ctx[--sm->nfree] : NULL;
    pthread_mutex_unlock(&sm->lock);
    return *out ? 0 : en_ctx_new(sm->m, sm->m->cfg.max_pos, out);
}

/* Back into the pool; freed when the pool cannot grow. */
static void run_give(sdpy_model *sm, en_ctx *c) {
    pthread_mutex_lock(&sm->lock);
    if (sm->nfree == sm->cap) {
        int cap = sm->cap ? 2 * sm->cap : 4;
        en_ctx **p = realloc(sm->free_ctx, sizeof *p * (size_t)cap);
        if (p) {
            sm->free_ctx = p;
            sm->cap = cap;
        }
    }
    if (sm->nfree < sm->cap) {
        sm->free_ctx[sm->nfree++] = c;
        c = NULL;
    }
    pthread_mutex_unlock(&sm->lock);
    en_ctx_free(c);
}
