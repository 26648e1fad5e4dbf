/* The fleet: accuracy records shared through Redis (hiredis async on the daemon's loop). */
#include "sd_fleet.h"

#include <hiredis/async.h>
#include <hiredis/hiredis.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "schedules/sc_defaults.h"
#include "schedules/sc_schedule.h"
#include "schedules/sc_store.h"
#include "schedules/sc_width.h"
#include "sd_conn.h"
#include "sd_error.h"
#include "sd_fleet_load.h"
#include "sd_log.h"
#include "sd_models.h"
#include "sd_redis_uv.h"
#include "sd_state.h"

#define FLEET_CHANNEL "searchd:updated"
#define FLEET_BACKOFF_MIN_MS 200
#define FLEET_BACKOFF_MAX_MS 5000
#define FLEET_LEASE_MS 60000     // a lease expires unless refreshed: a host that died releases it
#define FLEET_REFRESH_MS 20000   // a running search refreshes its lease this often
#define FLEET_LEASE_WAIT_MS 2000 // a Redis that does not answer the lease by then is ignored
#define WIDTH_FIELD "width"      // the hash field of the width profile: no schedule text is "width"
// Refresh or delete a lease only while it is still ours.
#define FLEET_IF_OURS "if redis.call('get', KEYS[1]) == ARGV[1] then "
#define FLEET_PEXPIRE FLEET_IF_OURS "return redis.call('pexpire', KEYS[1], ARGV[2]) end return 0"
#define FLEET_DEL FLEET_IF_OURS "return redis.call('del', KEYS[1]) end return 0"

/* One write of a search's records (HSET key field value ...), kept until Redis took it. */
typedef struct pending {
    int argc;
    char **argv;
    int records;
    int in_flight;
    struct pending *next;
} pending;

typedef struct sd_fleet {
    sd_daemon *d;
    char host[256], password[256], url[300]; // url as shown: no password
    int port, db;
    redisAsyncContext *cmd, *sub;
    int cmd_ready, sub_ready;
    uv_timer_t retry;
    int retry_armed;
    uint64_t backoff_ms;
    int stopping;
    double last_sync;
    long received, sent;
    char error[256];
    pending *pend;
    char host_id[300]; // who holds a lease: hostname/pid (fingerprint)
    uv_timer_t refresh;
    struct held {
        char key[128];
        int refs;
    } held[64]; // leases this host holds
    int nheld;
} sd_fleet;

static sd_fleet *fleet_of(const sd_daemon *d) {
    return d->fleet;
}

static void set_error(sd_fleet *f, const char *what, const char *why) {
    char text[sizeof f->error];
    snprintf(text, sizeof text, "%.80s: %.170s", what, why);
    if (strcmp(text, f->error) != 0) sd_log("fleet: %s", text); // not once per retry
    memcpy(f->error, text, sizeof text);
}

/* ---- keys ---- */

/* `searchd:frontier:<weights>:<data>` of model m: 0, or -1 when its data cannot be read. */
static int model_key(sd_model *m, char *key, size_t cap) {
    if (sd_model_data_hash(m) != 0) return -1;
    snprintf(key, cap, "searchd:frontier:%016llx:%016llx", (unsigned long long)m->weights_hash,
             (unsigned long long)m->data_hash);
    return 0;
}

/* ---- records as Redis values ---- */

/* The data split the record's figures were measured on (provenance: the key's data hash covers
 * the files, the split says which part certified the bound). */
static void split_text(const sd_model *m, char *buf, size_t cap) {
    if (m->holdout[0])
        snprintf(buf, cap, "held-out file %s", m->holdout);
    else
        snprintf(buf, cap, "seed 1, %.2f of %s held out", SC_HOLDOUT_FRACTION, m->data);
}

static char *record_value(const sd_daemon *d, const sd_model *m, const sc_record *r) {
    char split[1100];
    split_text(m, split, sizeof split);
    json_t *j = json_pack("{s:f,s:f,s:f,s:f,s:f,s:f,s:f,s:s,s:s,s:f,s:s}", "accuracy", r->accuracy,
                          "baseline_accuracy", r->baseline_accuracy, "drop", r->drop, "drop_upper",
                          r->drop_upper, "search_accuracy", r->search_accuracy, "flops_ratio",
                          r->flops_ratio, "tokens_flops_ratio", r->tokens_flops_ratio, "host",
                          d->hw_text, "version", SEARCHD_VERSION, "time", sd_now(), "split", split);
    if (!j) return NULL;
    char *s = json_dumps(j, JSON_COMPACT | JSON_REAL_PRECISION(17));
    json_decref(j);
    return s;
}

/* The profile as a hash value: compact JSON, 17 digits (it reads back bit for bit); malloc'ed,
 * or NULL. */
static char *width_value(const sc_width_profile *w) {
    json_t *j = sc_width_to_json(w);
    char *s = j ? json_dumps(j, JSON_COMPACT | JSON_REAL_PRECISION(17)) : NULL;
    json_decref(j);
    return s;
}

/* The width profile of an HGETALL reply, when it has one this model can use: `*out` owned by
 * the caller (sc_width_profile_free, free), else NULL with `*why` saying why not. */
static sc_width_profile *width_of_reply(const sd_model *m, const redisReply *r, const char **why) {
    *why = NULL;
    for (size_t i = 0; i + 1 < r->elements; i += 2) {
        const redisReply *fr = r->element[i], *vr = r->element[i + 1];
        if (fr->type != REDIS_REPLY_STRING || vr->type != REDIS_REPLY_STRING ||
            strcmp(fr->str, WIDTH_FIELD) != 0)
            continue;
        json_error_t err;
        json_t *j = json_loads(vr->str, 0, &err);
        sc_width_profile *w = calloc(1, sizeof *w);
        en_diag diag;
        if (!j || !w || sc_width_from_json(j, w, &diag) != 0 || w->layers != m->layers ||
            (m->model && (w->heads != m->model->cfg.heads || w->ffn != m->model->cfg.ffn))) {
            json_decref(j);
            if (w) sc_width_profile_free(w);
            free(w);
            *why = "the fleet's width profile does not fit this model; its width records skipped";
            return NULL;
        }
        json_decref(j);
        return w;
    }
    return NULL;
}

/* 1 when two profiles are the same (their JSON texts are). */
static int same_width(const sc_width_profile *a, const sc_width_profile *b) {
    char *x = width_value(a), *y = width_value(b);
    int same = x && y && strcmp(x, y) == 0;
    free(x);
    free(y);
    return same;
}

static int record_parse(const char *field, const char *value, int layers, int width_ok,
                        sc_record *r) {
    memset(r, 0, sizeof *r);
    en_diag why;
    if (sc_schedule_parse(field, layers, &r->schedule, &why) != 0) return -1;
    if (sc_schedule_has_width(&r->schedule) && !width_ok) return -1; // no profile that fits
    json_error_t err;
    json_t *j = json_loads(value, 0, &err);
    if (!j) return -1;
    int rc = json_unpack(j, "{s:F,s:F,s:F,s:F,s:F,s:F,s:F}", "accuracy", &r->accuracy,
                         "baseline_accuracy", &r->baseline_accuracy, "drop", &r->drop, "drop_upper",
                         &r->drop_upper, "search_accuracy", &r->search_accuracy, "flops_ratio",
                         &r->flops_ratio, "tokens_flops_ratio", &r->tokens_flops_ratio);
    json_decref(j);
    return rc == 0 ? 0 : -1;
}

/* Which of two records of one schedule a host keeps, the same on every host: the lower
 * drop_upper, then the higher accuracy, then the lower FLOPs ratio, then the lower drop.
 * 1 when `in` replaces `have`. */
static int better(const sc_record *in, const sc_record *have) {
    if (in->drop_upper != have->drop_upper) return in->drop_upper < have->drop_upper;
    if (in->accuracy != have->accuracy) return in->accuracy > have->accuracy;
    if (in->flops_ratio != have->flops_ratio) return in->flops_ratio < have->flops_ratio;
    return in->drop < have->drop;
}

/* Merges the field/value pairs of an HGETALL reply into model m: the records it lacks are
 * added, one of a schedule it has replaces it when better(); then latency is re-predicted with
 * this host's profile, the frontier normalized and saved, and subscribers told. */
static void merge_into(sd_fleet *f, sd_model *m, const redisReply *r) {
    size_t n = r->elements / 2;
    if (n == 0) return;
    if (!m->has_lat) { // latency 0 would dominate every record
        set_error(f, m->id,
                  "model has no latency profile on this host yet; fleet records merge after its "
                  "next model.add, tune or retune");
        return;
    }
    if (!m->lengths || !m->model) { // registered before this process started: load it first
        sd_fleet_load(f->d, m, sd_fleet_model_added);
        return;
    }
    // Width records merge with the profile they were measured with: adopted when this model has
    // none, and only when it is the same one otherwise.
    const char *why = NULL;
    sc_width_profile *width = width_of_reply(m, r, &why);
    if (width && m->frontier.width && !same_width(width, m->frontier.width)) {
        sc_width_profile_free(width);
        free(width);
        width = NULL;
        why = "the fleet's width profile differs from this host's; its width records skipped";
    }
    if (why) set_error(f, m->id, why);
    int width_ok = width != NULL;
    sc_record *rec = malloc(sizeof *rec * (size_t)(m->frontier.count + (int)n + 1));
    if (!rec) {
        if (width) sc_width_profile_free(width);
        free(width);
        set_error(f, m->id, "out of memory merging fleet records");
        return;
    }
    int k = m->frontier.count, changed = 0, widths = 0;
    if (k) memcpy(rec, m->frontier.rec, sizeof *rec * (size_t)k);
    for (size_t i = 0; i < n; i++) {
        const redisReply *fr = r->element[2 * i], *vr = r->element[2 * i + 1];
        if (fr->type != REDIS_REPLY_STRING || vr->type != REDIS_REPLY_STRING) continue;
        sc_record in;
        if (record_parse(fr->str, vr->str, m->layers, width_ok, &in) != 0) continue;
        widths += sc_schedule_has_width(&in.schedule);
        uint64_t h = sc_schedule_hash(&in.schedule);
        int t = 0;
        while (t < k && sc_schedule_hash(&rec[t].schedule) != h)
            t++;
        if (t < k && !better(&in, &rec[t])) continue;
        in.latency_ms = t < k ? rec[t].latency_ms : 0;
        rec[t] = in;
        if (t == k) k++;
        changed++;
    }
    int adopt = widths > 0 && !m->frontier.width; // else the same profile is there already
    if (!adopt && width) {
        sc_width_profile_free(width);
        free(width);
        width = NULL;
    }
    if (!changed) {
        free(rec);
        return;
    }
    sc_frontier old = m->frontier;
    m->frontier.rec = rec;
    m->frontier.count = k;
    if (adopt) m->frontier.width = width;
    sd_model_repredict(m);
    en_diag fail;
    if (sd_state_save_frontier(f->d, m, &fail) != 0) { // the local state stays the truth
        m->frontier.rec = old.rec;
        m->frontier.count = old.count;
        m->frontier.width = old.width;
        free(rec);
        if (adopt) sc_width_profile_free(width), free(width);
        set_error(f, m->id, fail.msg);
        return;
    }
    free(old.rec);
    f->received += changed;
    m->fleet_merges++;
    sd_log("fleet: %d record(s) merged into model %s (%s)", changed, m->name, m->id);
    sd_notify_updated(f->d, m->id, "fleet");
}

/* ---- commands ---- */

/* An HGETALL reply of the model key `key` merged into every model with that key. */
static void merge_reply(sd_fleet *f, const char *key, const redisReply *r) {
    if (f && r && r->type == REDIS_REPLY_ARRAY) {
        f->last_sync = sd_now();
        for (sd_model *m = f->d->models; m; m = m->next) {
            char mk[128];
            if (!m->removed && model_key(m, mk, sizeof mk) == 0 && strcmp(mk, key) == 0)
                merge_into(f, m, r);
        }
    } else if (f && r && r->type == REDIS_REPLY_ERROR) {
        set_error(f, "HGETALL", r->str);
    }
}

static void on_hgetall(redisAsyncContext *ac, void *reply, void *priv) {
    char *key = priv;
    merge_reply(ac->data, key, reply);
    free(key);
}

static void fetch(sd_fleet *f, const char *key) {
    if (!f->cmd_ready) return;
    char *copy = strdup(key);
    if (!copy) return;
    if (redisAsyncCommand(f->cmd, on_hgetall, copy, "HGETALL %s", key) != REDIS_OK) free(copy);
}

/* Every registered model's key, read again: what was written while this host was away. */
static void catch_up(sd_fleet *f) {
    for (sd_model *m = f->d->models; m; m = m->next) {
        char key[128];
        if (m->removed) continue;
        if (model_key(m, key, sizeof key) != 0) {
            set_error(f, m->data, "cannot read the data set to hash it; not shared");
            continue;
        }
        fetch(f, key);
    }
}

void sd_fleet_model_added(sd_daemon *d, sd_model *m) {
    sd_fleet *f = fleet_of(d);
    char key[128];
    if (!f) return;
    if (model_key(m, key, sizeof key) != 0)
        set_error(f, m->data, "cannot read the data set to hash it; not shared");
    else
        fetch(f, key);
}

static void pending_free(pending *p) {
    for (int i = 0; i < p->argc; i++)
        free(p->argv[i]);
    free(p->argv);
    free(p);
}

static void on_hset(redisAsyncContext *ac, void *reply, void *priv) {
    pending *p = priv;
    sd_fleet *f = ac->data;
    redisReply *r = reply;
    p->in_flight = 0;
    if (!f) return;
    if (!r || r->type == REDIS_REPLY_ERROR) { // kept: written again after the reconnect
        if (r) set_error(f, "HSET", r->str);
        return;
    }
    f->sent += p->records;
    f->last_sync = sd_now();
    if (f->cmd_ready)
        redisAsyncCommand(f->cmd, NULL, NULL, "PUBLISH %s %s", FLEET_CHANNEL, p->argv[1]);
    for (pending **pp = &f->pend; *pp; pp = &(*pp)->next)
        if (*pp == p) {
            *pp = p->next;
            pending_free(p);
            break;
        }
}

static void flush_pending(sd_fleet *f) {
    for (pending *p = f->pend; p && f->cmd_ready; p = p->next) {
        if (p->in_flight) continue;
        // NULL lengths: hiredis takes strlen() of each argument
        if (redisAsyncCommandArgv(f->cmd, on_hset, p, p->argc, (const char **)p->argv, NULL) ==
            REDIS_OK)
            p->in_flight = 1;
    }
}

void sd_fleet_publish(sd_daemon *d, sd_model *m, const sc_frontier *found) {
    sd_fleet *f = fleet_of(d);
    if (!f) return;
    char key[128];
    if (model_key(m, key, sizeof key) != 0) {
        set_error(f, m->data, "cannot read the data set to hash it; records not shared");
        return;
    }
    pending *p = calloc(1, sizeof *p);
    if (!p || !(p->argv = calloc((size_t)(4 + 2 * found->count), sizeof *p->argv))) {
        free(p);
        set_error(f, m->id, "out of memory; records not shared");
        return;
    }
    p->argv[p->argc++] = strdup("HSET");
    p->argv[p->argc++] = strdup(key);
    int ok = p->argv[0] && p->argv[1];
    // Records that narrow layers mean something only with the profile they were measured with:
    // it travels in the same hash, under a field no schedule text can be.
    // (The search's profile has moved to the model by now, or the model's was used.)
    const sc_width_profile *wp = found->width ? found->width : m->frontier.width;
    char *width = wp ? width_value(wp) : NULL;
    if (width) {
        p->argv[p->argc++] = strdup(WIDTH_FIELD);
        p->argv[p->argc++] = width;
        ok = ok && p->argv[p->argc - 2];
    }
    for (int i = 0; ok && i < found->count; i++) {
        const sc_record *r = &found->rec[i];
        if (sc_schedule_has_width(&r->schedule) && !width) continue; // no profile to go with it
        char text[SC_SCHEDULE_TEXT_MAX];
        if (sc_schedule_format(&r->schedule, text, sizeof text) < 0) continue;
        char *v = record_value(d, m, r);
        char *t = strdup(text);
        if (!v || !t) {
            free(v);
            free(t);
            ok = 0;
            break;
        }
        p->argv[p->argc++] = t;
        p->argv[p->argc++] = v;
        p->records++;
    }
    if (!ok || p->records == 0) {
        if (!ok) set_error(f, m->id, "out of memory; records not shared");
        pending_free(p);
        return;
    }
    p->next = f->pend;
    f->pend = p;
    flush_pending(f);
}

/* ---- leases ---- */

typedef struct lease_req {
    sd_fleet *f;
    uint64_t job;
    char key[128];
    char model_key[128]; // with `sync`: read once the lease is won, before the answer
    sd_fleet_lease_cb cb;
    uv_timer_t timer;
    int sync, won; // won: the lease is ours (hold() counted it)
    int pending;   // Redis replies still to come (each callback gets q)
    int answered, closed;
} lease_req;

static void lease_key(sd_fleet *f, sd_model *m, char *key, size_t cap) {
    char fk[128];
    if (model_key(m, fk, sizeof fk) != 0) {
        key[0] = '\0';
        return;
    }
    (void)f;
    snprintf(key, cap, "searchd:lease:%s", fk + strlen("searchd:frontier:"));
}

static int hold(sd_fleet *f, const char *key) {
    for (int i = 0; i < f->nheld; i++)
        if (strcmp(f->held[i].key, key) == 0) return ++f->held[i].refs, 1;
    if (f->nheld == (int)(sizeof f->held / sizeof f->held[0])) return 0;
    snprintf(f->held[f->nheld].key, sizeof f->held[0].key, "%s", key);
    f->held[f->nheld++].refs = 1;
    return 1;
}

static void lease_timer_closed(uv_handle_t *h) {
    lease_req *q = h->data;
    q->closed = 1;
    if (!q->pending) free(q);
}

static void lease_answer(lease_req *q, const char *holder, int leased) {
    q->answered = 1;
    uv_timer_stop(&q->timer);
    uv_close((uv_handle_t *)&q->timer, lease_timer_closed);
    q->cb(q->f->d, q->job, holder, leased);
}

static void lease_timeout(uv_timer_t *t) {
    lease_req *q = t->data;
    set_error(q->f, q->key, "Redis did not answer the lease in 2 s; the search runs here");
    lease_answer(q, NULL, q->won);
}

/* One reply for q arrived: 1 when q is done with (answered and its timer closed: freed). */
static int lease_replied(lease_req *q) {
    q->pending--;
    if (!q->answered) return 0;
    if (q->closed && !q->pending) free(q);
    return 1;
}

/* With `sync`: the model's records, read after the lease was won, are merged before the answer
 * (a host whose search ended wrote them before it let the lease go). */
static void on_lease_sync(redisAsyncContext *ac, void *reply, void *priv) {
    lease_req *q = priv;
    (void)ac;
    if (lease_replied(q)) return;
    merge_reply(q->f, q->model_key, reply);
    lease_answer(q, NULL, q->won);
}

/* The lease is this host's: answered now, or after the model's records with `sync`. */
static void lease_won(lease_req *q) {
    sd_fleet *f = q->f;
    q->won = hold(f, q->key);
    if (q->sync && f->cmd_ready &&
        redisAsyncCommand(f->cmd, on_lease_sync, q, "HGETALL %s", q->model_key) == REDIS_OK) {
        q->pending++;
        return;
    }
    lease_answer(q, NULL, q->won);
}

static void on_lease(redisAsyncContext *ac, void *reply, void *priv) {
    lease_req *q = priv;
    redisReply *r = reply;
    (void)ac;
    if (lease_replied(q)) return;
    sd_fleet *f = q->f;
    // SET NX GET: nil when the key was set (ours now), else the holder it keeps.
    if (r && r->type == REDIS_REPLY_NIL) {
        lease_won(q);
    } else if (r && r->type == REDIS_REPLY_STRING && strcmp(r->str, f->host_id) == 0) {
        lease_won(q); // another job of this host: shared
    } else if (r && r->type == REDIS_REPLY_STRING) {
        char holder[300];
        snprintf(holder, sizeof holder, "%s", r->str);
        lease_answer(q, holder, 0);
    } else { // Redis went away or refused: local state is the truth, the search runs here
        if (r && r->type == REDIS_REPLY_ERROR) set_error(f, "lease", r->str);
        lease_answer(q, NULL, 0);
    }
}

int sd_fleet_lease(sd_daemon *d, sd_model *m, uint64_t job_id, int sync, sd_fleet_lease_cb cb) {
    sd_fleet *f = fleet_of(d);
    if (!f || !f->cmd_ready) return 1;
    lease_req *q = calloc(1, sizeof *q);
    if (!q) return 1;
    q->f = f;
    q->job = job_id;
    q->cb = cb;
    q->sync = sync;
    lease_key(f, m, q->key, sizeof q->key);
    if (!q->key[0] || model_key(m, q->model_key, sizeof q->model_key) != 0 ||
        redisAsyncCommand(f->cmd, on_lease, q, "SET %s %s NX GET PX %d", q->key, f->host_id,
                          FLEET_LEASE_MS) != REDIS_OK) {
        free(q);
        return 1;
    }
    q->pending = 1;
    uv_timer_init(d->loop, &q->timer);
    q->timer.data = q;
    uv_timer_start(&q->timer, lease_timeout, FLEET_LEASE_WAIT_MS, 0);
    return 0;
}

void sd_fleet_lease_release(sd_daemon *d, sd_model *m) {
    sd_fleet *f = fleet_of(d);
    if (!f) return;
    char key[128];
    lease_key(f, m, key, sizeof key);
    for (int i = 0; i < f->nheld; i++)
        if (strcmp(f->held[i].key, key) == 0) {
            if (--f->held[i].refs > 0) return;
            f->held[i] = f->held[--f->nheld];
            if (f->cmd_ready) // else it expires
                redisAsyncCommand(f->cmd, NULL, NULL, "EVAL %s 1 %s %s", FLEET_DEL, key,
                                  f->host_id);
            return;
        }
}

static void refresh_cb(uv_timer_t *t) {
    sd_fleet *f = t->data;
    for (int i = 0; i < f->nheld && f->cmd_ready; i++)
        redisAsyncCommand(f->cmd, NULL, NULL, "EVAL %s 1 %s %s %d", FLEET_PEXPIRE, f->held[i].key,
                          f->host_id, FLEET_LEASE_MS);
}

/* ---- connections ---- */

static void connect_both(sd_fleet *f);

static void retry_cb(uv_timer_t *t) {
    sd_fleet *f = t->data;
    f->retry_armed = 0;
    connect_both(f);
}

static void schedule_retry(sd_fleet *f) {
    if (f->stopping || f->retry_armed) return;
    f->retry_armed = 1;
    uv_timer_start(&f->retry, retry_cb, f->backoff_ms, 0);
    f->backoff_ms =
        f->backoff_ms * 2 > FLEET_BACKOFF_MAX_MS ? FLEET_BACKOFF_MAX_MS : f->backoff_ms * 2;
}

static void on_message(redisAsyncContext *ac, void *reply, void *priv) {
    (void)priv;
    sd_fleet *f = ac->data;
    redisReply *r = reply;
    if (!f || !r || r->type != REDIS_REPLY_ARRAY || r->elements != 3) return;
    const redisReply *kind = r->element[0], *msg = r->element[2];
    if (kind->type != REDIS_REPLY_STRING || msg->type != REDIS_REPLY_STRING) return;
    if (strcmp(kind->str, "subscribe") == 0) {
        catch_up(f); // what was announced while this connection was down
        return;
    }
    if (strcmp(kind->str, "message") != 0) return;
    for (sd_model *m = f->d->models; m; m = m->next) {
        char key[128];
        if (!m->removed && model_key(m, key, sizeof key) == 0 && strcmp(key, msg->str) == 0) {
            fetch(f, key);
            return;
        }
    }
}

static void on_connect(const redisAsyncContext *ac, int status) {
    sd_fleet *f = ac->data;
    if (!f) return;
    int is_cmd = ac == f->cmd;
    if (status != REDIS_OK) {
        set_error(f, "connect", ac->errstr);
        if (is_cmd)
            f->cmd = NULL;
        else
            f->sub = NULL;
        schedule_retry(f);
        return;
    }
    redisAsyncContext *c = (redisAsyncContext *)ac;
    if (f->password[0]) redisAsyncCommand(c, NULL, NULL, "AUTH %s", f->password);
    if (f->db) redisAsyncCommand(c, NULL, NULL, "SELECT %d", f->db);
    if (is_cmd) {
        f->cmd_ready = 1;
        sd_log("fleet: connected to %s", f->url);
        flush_pending(f);
        catch_up(f);
    } else {
        f->sub_ready = 1;
        redisAsyncCommand(c, on_message, NULL, "SUBSCRIBE %s", FLEET_CHANNEL);
    }
    if (f->cmd_ready && f->sub_ready) f->backoff_ms = FLEET_BACKOFF_MIN_MS;
}

static void on_disconnect(const redisAsyncContext *ac, int status) {
    sd_fleet *f = ac->data;
    if (!f) return;
    if (status != REDIS_OK) set_error(f, "disconnected", ac->errstr);
    if (ac == f->cmd) {
        f->cmd = NULL;
        f->cmd_ready = 0;
    } else if (ac == f->sub) {
        f->sub = NULL;
        f->sub_ready = 0;
    }
    schedule_retry(f);
}

static redisAsyncContext *open_one(sd_fleet *f) {
    redisAsyncContext *ac = redisAsyncConnect(f->host, f->port);
    if (!ac) return NULL;
    if (ac->err) {
        set_error(f, "connect", ac->errstr);
        redisAsyncFree(ac);
        return NULL;
    }
    ac->data = f;
    if (sd_redis_attach(ac, f->d->loop) != 0) {
        redisAsyncFree(ac);
        return NULL;
    }
    redisAsyncSetConnectCallback(ac, on_connect);
    redisAsyncSetDisconnectCallback(ac, on_disconnect);
    return ac;
}

static void connect_both(sd_fleet *f) {
    if (f->stopping) return;
    if (!f->cmd) f->cmd = open_one(f);
    if (!f->sub) f->sub = open_one(f);
    if (!f->cmd || !f->sub) schedule_retry(f);
}

int sd_fleet_parse_url(const char *url, char *host, size_t cap, int *port, int *db, en_diag *diag) {
    const char *p = url;
    if (strncmp(p, "redis://", 8) != 0)
        return en_fail(diag, SD_EOPTION, "--fleet %s: expected redis://HOST:PORT[/DB]", url);
    p += 8;
    const char *colon = strrchr(p, ':');
    char *end;
    if (!colon || colon == p || (size_t)(colon - p) >= cap)
        return en_fail(diag, SD_EOPTION, "--fleet %s: expected redis://HOST:PORT[/DB]", url);
    long pn = strtol(colon + 1, &end, 10), dn = 0;
    if (*end == '/') dn = strtol(end + 1, &end, 10);
    if (*end != '\0' || pn < 1 || pn > 65535 || dn < 0 || dn > 1000000)
        return en_fail(diag, SD_EOPTION, "--fleet %s: expected redis://HOST:PORT[/DB]", url);
    memcpy(host, p, (size_t)(colon - p));
    host[colon - p] = '\0';
    *port = (int)pn;
    *db = (int)dn;
    return 0;
}

int sd_fleet_start(sd_daemon *d, en_diag *diag) {
    const char *url = d->opt.fleet;
    if (!url[0]) return 0;
    char addr[256];
    int port, db;
    int rc = sd_fleet_parse_url(url, addr, sizeof addr, &port, &db, diag);
    if (rc) return rc;
    sd_fleet *f = calloc(1, sizeof *f);
    if (!f) return en_fail(diag, EN_ENOMEM, "out of memory");
    f->d = d;
    memcpy(f->host, addr, sizeof addr);
    f->port = port;
    f->db = db;
    snprintf(f->url, sizeof f->url, "%.299s", url);
    snprintf(f->password, sizeof f->password, "%s", d->opt.fleet_password);
    f->backoff_ms = FLEET_BACKOFF_MIN_MS;
    uv_timer_init(d->loop, &f->retry);
    f->retry.data = f;
    uv_timer_init(d->loop, &f->refresh);
    f->refresh.data = f;
    uv_timer_start(&f->refresh, refresh_cb, FLEET_REFRESH_MS, FLEET_REFRESH_MS);
    char host[256] = "";
    gethostname(host, sizeof host - 1);
    snprintf(f->host_id, sizeof f->host_id, "%.100s/%d (%.150s)", host, (int)getpid(), d->hw_text);
    d->fleet = f;
    connect_both(f);
    return 0;
}

void sd_fleet_stop(sd_daemon *d) {
    sd_fleet *f = fleet_of(d);
    if (!f || f->stopping) return;
    f->stopping = 1;
    uv_close((uv_handle_t *)&f->retry, NULL);
    uv_close((uv_handle_t *)&f->refresh, NULL);
    // Pending callbacks run with a NULL reply; the disconnect callbacks clear the pointers.
    if (f->cmd) redisAsyncFree(f->cmd);
    if (f->sub) redisAsyncFree(f->sub);
    f->cmd = f->sub = NULL;
    f->cmd_ready = f->sub_ready = 0;
}

void sd_fleet_free(sd_daemon *d) {
    sd_fleet *f = fleet_of(d);
    if (!f) return;
    while (f->pend) {
        pending *p = f->pend;
        f->pend = p->next;
        pending_free(p);
    }
    free(f);
    d->fleet = NULL;
}

void sd_fleet_pack_info(msgpack_packer *pk, const sd_daemon *d) {
    const sd_fleet *f = fleet_of(d);
    msgpack_pack_map(pk, 11);
    sp_pack_kstr(pk, "url", f ? f->url : "");
    sp_pack_kbool(pk, "connected", f && f->cmd_ready && f->sub_ready);
    sp_pack_knum(pk, "last_sync", f ? f->last_sync : 0);
    sp_pack_kint(pk, "records_received", f ? f->received : 0);
    sp_pack_kint(pk, "records_sent", f ? f->sent : 0);
    int npend = 0;
    for (const pending *p = f ? f->pend : NULL; p; p = p->next)
        npend += p->records;
    sp_pack_kint(pk, "records_pending", npend);
    sp_pack_kstr(pk, "errors", f ? f->error : "");
    // Distributed evaluation (sd_dist.c), counted by the search and worker threads.
    sp_pack_kint(pk, "items_sent", atomic_load(&d->dist_sent));
    sp_pack_kint(pk, "items_evaluated", atomic_load(&d->dist_evaluated));
    sp_pack_kint(pk, "items_reclaimed", atomic_load(&d->dist_reclaimed));
    sp_pack_kint(pk, "items_dropped", atomic_load(&d->dist_dropped));
}
