/* The methods of the protocol, in one static table: name, handler and the arguments it takes.
 * Most handlers answer at once from memory; model.add and retune hand their work to the thread
 * pool and answer from its after-callback (SD_DEFER). */
#include "sd_methods.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

#include "schedules/sc_error.h"
#include "sd_add.h"
#include "sd_conn.h"
#include "sd_error.h"
#include "sd_fleet.h"
#include "sd_jobs.h"
#include "sd_log.h"
#include "sd_models.h"
#include "sd_pack.h"
#include "sd_registry.h"
#include "sd_retune.h"
#include "sd_search.h"

#define SD_DEFER 1 // the handler replies later

typedef struct sd_call {
    sd_daemon *d;
    sd_conn *c;
    uint32_t msgid;
    const msgpack_object *args; // the map of named arguments, or NULL
    msgpack_packer *pk;         // the result goes here
    en_diag diag;
} sd_call;

typedef int (*sd_handler)(sd_call *k);

typedef struct sd_method {
    const char *name;
    sd_handler fn;
    const char *const *args; // NULL-terminated
} sd_method;

/* Copies an sp_ failure into the call's diag. */
static int sp_err(sd_call *k, int rc, const sp_diag *dg) {
    return en_fail(&k->diag, rc, "%s", dg->msg);
}

/* The model named by argument `model`: an id, or a registered name. */
static int get_model(sd_call *k, sd_model **out) {
    char id[256];
    sp_diag dg;
    int rc = sp_get_str(k->args, "model", 1, id, sizeof id, &dg);
    if (rc) return sp_err(k, rc, &dg);
    sd_model *m = sd_model_find(k->d->models, id);
    if (!m)
        return en_fail(&k->diag, SD_ENOMODEL,
                       "no model '%s' is registered; add it with model.add or see model.list", id);
    *out = m;
    return 0;
}

/* max_drop / max_flops / max_latency_ms / minimize into a query; unset limits are -1. */
static int get_budget(sd_call *k, sc_query *q, int *nset) {
    static const char *const names[] = {"max_drop", "max_flops", "max_latency_ms"};
    double *dst[] = {&q->max_drop, &q->max_flops, &q->max_latency_ms};
    q->max_drop = q->max_flops = q->max_latency_ms = -1;
    q->minimize = SC_MIN_LATENCY;
    *nset = 0;
    int given[3];
    for (int i = 0; i < 3; i++) {
        sp_diag dg;
        int rc = sp_get_num(k->args, names[i], 0, dst[i], &dg);
        if (rc < 0) return sp_err(k, rc, &dg);
        given[i] = rc == 0;
        *nset += given[i];
    }
    // -1 means "not given" inside; a value given is checked as given, -1 included.
    if (given[0] && !(q->max_drop >= 0 && q->max_drop <= 1))
        return en_fail(&k->diag, SP_EPARAMS,
                       "max_drop %g is out of range: a fraction in [0, 1], 0.01 means a 1%% "
                       "accuracy drop",
                       q->max_drop);
    // "1" means 1% to a person and 100% here: a drop of half or more is never what was meant.
    if (given[0] && q->max_drop >= 0.5)
        return en_fail(&k->diag, SP_EPARAMS,
                       "max_drop %g is out of range: it would allow a %g%% accuracy drop; send "
                       "a fraction below 0.5 (0.01 means a 1%% drop)",
                       q->max_drop, 100 * q->max_drop);
    if (given[1] && !(q->max_flops > 0 && q->max_flops <= 1))
        return en_fail(&k->diag, SP_EPARAMS,
                       "max_flops %g is out of range: a fraction of the unpruned FLOPs in (0, 1], "
                       "e.g. 0.5",
                       q->max_flops);
    if (given[2] && !(q->max_latency_ms > 0 && q->max_latency_ms <= 1e7))
        return en_fail(&k->diag, SP_EPARAMS,
                       "max_latency_ms %g is out of range: milliseconds in (0, 1e7]",
                       q->max_latency_ms);
    if (*nset > 1)
        return en_fail(&k->diag, SP_EPARAMS,
                       "give one of max_drop, max_flops, max_latency_ms, not %d", *nset);
    char how[16];
    sp_diag dg;
    int rc = sp_get_str(k->args, "minimize", 0, how, sizeof how, &dg);
    if (rc < 0) return sp_err(k, rc, &dg);
    if (rc == 0) {
        if (strcmp(how, "flops") == 0)
            q->minimize = SC_MIN_FLOPS;
        else if (strcmp(how, "latency") != 0)
            return en_fail(&k->diag, SP_EPARAMS, "minimize is \"latency\" or \"flops\", not \"%s\"",
                           how);
    }
    return 0;
}

/* Every registered model, as model.list and info give them. */
static void pack_models(msgpack_packer *pk, const sd_daemon *d) {
    int n = 0;
    for (sd_model *m = d->models; m; m = m->next)
        n++;
    msgpack_pack_array(pk, (size_t)n);
    for (sd_model *m = d->models; m; m = m->next)
        sd_pack_model(pk, m);
}

static int m_ping(sd_call *k) {
    sp_pack_str(k->pk, "pong");
    return 0;
}

static int m_info(sd_call *k) {
    sd_daemon *d = k->d;
    msgpack_packer *pk = k->pk;
    msgpack_pack_map(pk, 15);
    sp_pack_kstr(pk, "version", SEARCHD_VERSION);
    sp_pack_kstr(pk, "hardware", d->hw_text);
    sp_pack_str(pk, "fingerprint");
    sd_pack_hw(pk, &d->hw);
    sp_pack_str(pk, "models");
    pack_models(pk, d);
    sp_pack_kint(pk, "jobs_running", d->jobs_running);
    sp_pack_kint(pk, "jobs_queued", d->jobs_queued);
    sp_pack_kint(pk, "connections", d->nconns);
    sp_pack_kint(pk, "tcp_port", d->tcp_port);
    sp_pack_knum(pk, "uptime", sd_mono() - d->started);
    sp_pack_knum(pk, "last_retune_seconds", d->last_retune_seconds);
    // Whether what the replies said is also on disk: false after a save failed, until one
    // succeeds again; state_error says why (the system's reason), saves_failed how often.
    sp_pack_kbool(pk, "state_durable", d->state_durable);
    sp_pack_kstr(pk, "state_error", d->state_error);
    sp_pack_kint(pk, "saves_failed", d->saves_failed);
    sp_pack_str(pk, "fleet");
    sd_fleet_pack_info(pk, d);
    sp_pack_str(pk, "damaged");
    msgpack_pack_array(pk, (size_t)d->ndamaged);
    for (int i = 0; i < d->ndamaged; i++) {
        msgpack_pack_map(pk, 2);
        sp_pack_kstr(pk, "file", d->damaged[i].file);
        sp_pack_kstr(pk, "error", d->damaged[i].error);
    }
    return 0;
}

/* Boolean argument `key` into `*out` (0 when absent). */
static int get_bool(sd_call *k, const char *key, int *out) {
    const msgpack_object *v = sp_map_get(k->args, key);
    *out = v && v->type == MSGPACK_OBJECT_BOOLEAN && v->via.boolean;
    if (v && v->type != MSGPACK_OBJECT_BOOLEAN && v->type != MSGPACK_OBJECT_NIL)
        return en_fail(&k->diag, SP_ETYPE, "argument '%s' must be a boolean", key);
    return 0;
}

static int m_model_add(sd_call *k) {
    char path[1024], data[1024], holdout[1024] = "", name[128] = "", frontier[1024] = "";
    sp_diag dg;
    int rc, replace;
    if ((rc = sp_get_str(k->args, "path", 1, path, sizeof path, &dg)) < 0 ||
        (rc = sp_get_str(k->args, "data", 1, data, sizeof data, &dg)) < 0 ||
        (rc = sp_get_str(k->args, "holdout", 0, holdout, sizeof holdout, &dg)) < 0 ||
        (rc = sp_get_str(k->args, "name", 0, name, sizeof name, &dg)) < 0 ||
        (rc = sp_get_str(k->args, "frontier", 0, frontier, sizeof frontier, &dg)) < 0)
        return sp_err(k, rc, &dg);
    if ((rc = get_bool(k, "replace", &replace))) return rc;
    if (path[0] != '/' || data[0] != '/' || (holdout[0] && holdout[0] != '/') ||
        (frontier[0] && frontier[0] != '/'))
        return en_fail(&k->diag, SP_EPARAMS,
                       "path, data, holdout and frontier must be absolute: searchd's working "
                       "directory is not yours");
    // A name is looked up like an id (model.remove NAME): it must never be mistaken for one.
    if (sd_model_name_is_id(name))
        return en_fail(&k->diag, SP_EPARAMS,
                       "name '%s' looks like a model id (16 hex digits); choose another", name);
    // Refused at once when taken (checked again once loaded: the weights may be the holder's).
    sd_model *holder = name[0] && !replace ? sd_model_named(k->d->models, name, NULL) : NULL;
    if (holder && strcmp(holder->path, path) != 0)
        return en_fail(&k->diag, SD_ENAME,
                       "the name '%s' belongs to model %s (from %s); remove it, choose another "
                       "name, or pass replace: true to register these weights under it in place "
                       "of that model",
                       name, holder->id, holder->path);
    k->c->owed++; // before: a task may answer at once
    rc = sd_add_model(k->d, path, data, holdout, name, replace, frontier, k->c->id, k->msgid,
                      &k->diag);
    if (rc < 0) k->c->owed--;
    return rc < 0 ? rc : SD_DEFER;
}

static int m_model_list(sd_call *k) {
    pack_models(k->pk, k->d);
    return 0;
}

static int m_model_remove(sd_call *k) {
    sd_model *m = NULL;
    int rc = get_model(k, &m);
    if (rc) return rc;
    char id[SD_ID_LEN];
    memcpy(id, m->id, SD_ID_LEN);
    if ((rc = sd_model_remove(k->d, m, &k->diag))) return rc;
    msgpack_pack_map(k->pk, 2);
    sp_pack_kstr(k->pk, "model", id);
    sp_pack_kbool(k->pk, "removed", 1);
    return 0;
}

static int m_tune(sd_call *k) {
    sd_model *m = NULL;
    int rc = get_model(k, &m);
    if (rc) return rc;
    if (m->changed)
        return en_fail(&k->diag, SD_ECHANGED,
                       "model %s: %s/model.safetensors no longer holds the weights registered; "
                       "its schedules stay those of the old weights and no search runs on the "
                       "new ones. Run model.add again to register them (replace: true to give "
                       "them this model's name)",
                       m->id, m->path);
    sc_query q;
    int nset;
    if ((rc = get_budget(k, &q, &nset))) return rc;
    // width / int8: also search the heads and FFN neurons each layer keeps / its precision
    int flags[2] = {0, 0};
    static const char *const names[] = {"width", "int8"};
    for (int i = 0; i < 2; i++) {
        const msgpack_object *v = sp_map_get(k->args, names[i]);
        if (v && v->type != MSGPACK_OBJECT_BOOLEAN)
            return en_fail(&k->diag, SP_ETYPE, "%s must be true or false", names[i]);
        flags[i] = v && v->via.boolean;
    }
    sd_job *j;
    if ((rc = sd_search_submit(k->d, m, &q, flags[0], flags[1], k->c->id, &j, &k->diag))) return rc;
    msgpack_pack_map(k->pk, 2);
    sp_pack_kint(k->pk, "job", (int64_t)j->id);
    sp_pack_kstr(k->pk, "status", sd_job_state_name(j->state));
    return 0;
}

static int get_job(sd_call *k, sd_job **out) {
    double id;
    sp_diag dg;
    int rc = sp_get_num(k->args, "job", 1, &id, &dg);
    if (rc) return sp_err(k, rc, &dg);
    if (!(id >= 1 && id <= 9007199254740992.0 && id == floor(id)))
        return en_fail(&k->diag, SP_EPARAMS, "job %g is not a job number (a whole number >= 1)",
                       id);
    sd_job *j = sd_job_find(k->d, (uint64_t)id);
    if (!j)
        return en_fail(&k->diag, SD_ENOJOB, "no job %.0f (searchd remembers the last %d)", id,
                       SD_JOBS_KEPT);
    *out = j;
    return 0;
}

static int m_job_status(sd_call *k) {
    sd_job *j;
    int rc = get_job(k, &j);
    if (rc) return rc;
    sd_pack_job(k->pk, j);
    return 0;
}

static int m_job_cancel(sd_call *k) {
    sd_job *j;
    int rc = get_job(k, &j);
    if (rc || (rc = sd_search_cancel(k->d, j, &k->diag))) return rc;
    sd_pack_job(k->pk, j);
    return 0;
}

static int m_schedule_get(sd_call *k) {
    sd_model *m = NULL;
    int rc = get_model(k, &m);
    if (rc) return rc;
    sc_query q;
    int nset;
    if ((rc = get_budget(k, &q, &nset))) return rc;
    if (nset != 1)
        return en_fail(&k->diag, SP_EMISSING,
                       "give one of max_drop (e.g. 0.01), max_flops (e.g. 0.5) or max_latency_ms");
    if (m->frontier.count == 0)
        return en_fail(&k->diag, SD_ENOFRONTIER, "model %s has no schedules yet: run tune first",
                       m->id);
    if (q.max_latency_ms >= 0 && !m->has_lat)
        return en_fail(&k->diag, SD_ENOPROFILE,
                       "model %s has no latency profile on this host yet: wait for retune", m->id);
    const sc_record *best, *closest;
    rc = sc_frontier_pick(&m->frontier, &q, &best, &closest, &k->diag);
    if (rc) return rc;
    sd_pack_record(k->pk, m, best);
    return 0;
}

static int m_schedule_frontier(sd_call *k) {
    sd_model *m = NULL;
    int rc = get_model(k, &m);
    if (rc) return rc;
    msgpack_pack_array(k->pk, (size_t)m->frontier.count);
    for (int i = 0; i < m->frontier.count; i++)
        sd_pack_record(k->pk, m, &m->frontier.rec[i]);
    return 0;
}

static int m_subscribe(sd_call *k) {
    sd_model *m = NULL;
    int rc = get_model(k, &m);
    if (rc) return rc;
    sd_conn *c = k->c;
    int found = 0;
    for (int i = 0; i < c->nsubs && !found; i++)
        found = strcmp(c->subs[i], m->id) == 0;
    if (!found) {
        if (c->nsubs >= SD_MAX_SUBS)
            return en_fail(&k->diag, SP_EPARAMS, "at most %d subscriptions per connection",
                           SD_MAX_SUBS);
        memcpy(c->subs[c->nsubs++], m->id, SD_ID_LEN);
    }
    msgpack_pack_map(k->pk, 2);
    sp_pack_kstr(k->pk, "model", m->id);
    sp_pack_kbool(k->pk, "subscribed", 1);
    return 0;
}

static int m_unsubscribe(sd_call *k) {
    char id[256];
    sp_diag dg;
    int rc = sp_get_str(k->args, "model", 1, id, sizeof id, &dg);
    if (rc) return sp_err(k, rc, &dg);
    sd_model *m = sd_model_find(k->d->models, id);
    sd_conn *c = k->c;
    for (int i = 0; i < c->nsubs; i++)
        if (strcmp(c->subs[i], m ? m->id : id) == 0) {
            memmove(c->subs[i], c->subs[c->nsubs - 1], SD_ID_LEN);
            c->nsubs--;
            break;
        }
    msgpack_pack_map(k->pk, 2);
    sp_pack_kstr(k->pk, "model", m ? m->id : id);
    sp_pack_kbool(k->pk, "subscribed", 0);
    return 0;
}

static int m_profile(sd_call *k) {
    sd_model *m = NULL;
    int rc = get_model(k, &m);
    if (rc) return rc;
    if (!m->has_lat)
        return en_fail(&k->diag, SD_ENOPROFILE, "model %s has no latency profile yet", m->id);
    msgpack_packer *pk = k->pk;
    msgpack_pack_map(pk, 13);
    sp_pack_kstr(pk, "model", m->id);
    sp_pack_kstr(pk, "hardware", m->hw_text);
    sp_pack_str(pk, "fingerprint");
    sd_pack_hw(pk, &m->lat.hw);
    sp_pack_kbool(pk, "current", sc_hw_equal(&m->lat.hw, &k->d->hw));
    static const char *const sets[] = {"layer", "last", "layer_int8", "last_int8"};
    const double *coef[] = {m->lat.layer, m->lat.last, m->lat.layer_int8, m->lat.last_int8};
    for (int t = 0; t < 4; t++) {
        sp_pack_str(pk, sets[t]);
        msgpack_pack_array(pk, SC_LAT_TERMS);
        for (int i = 0; i < SC_LAT_TERMS; i++)
            msgpack_pack_double(pk, coef[t][i]);
    }
    sp_pack_knum(pk, "fixed_ms", m->lat.fixed_ms);
    sp_pack_knum(pk, "calib_seconds", m->lat.calib_seconds);
    sp_pack_knum(pk, "fit_error", m->lat.fit_error);
    sp_pack_knum(pk, "probe_ms", m->lat.probe_ms);
    sp_pack_kstr(pk, "host_hardware", k->d->hw_text);
    return 0;
}

static int m_retune(sd_call *k) {
    char id[256] = "";
    sp_diag dg;
    int rc = sp_get_str(k->args, "model", 0, id, sizeof id, &dg);
    if (rc < 0) return sp_err(k, rc, &dg);
    int force;
    if ((rc = get_bool(k, "force", &force))) return rc;
    const char *only = NULL;
    if (id[0]) {
        sd_model *m = NULL;
        if ((rc = get_model(k, &m))) return rc;
        only = m->id;
    }
    k->c->owed++; // before: with nothing to re-measure the reply comes at once
    rc = sd_retune(k->d, only, force, k->c->id, k->msgid, "retune", &k->diag);
    if (rc < 0) k->c->owed--;
    return rc < 0 ? rc : SD_DEFER;
}

#define ARGS(...) ((const char *const[]){__VA_ARGS__, NULL})
#define BUDGET "max_drop", "max_flops", "max_latency_ms"

static const sd_method methods[] = {
    {"ping", m_ping, ARGS(NULL)},
    {"info", m_info, ARGS(NULL)},
    {"model.add", m_model_add, ARGS("path", "data", "holdout", "name", "replace", "frontier")},
    {"model.list", m_model_list, ARGS(NULL)},
    {"model.remove", m_model_remove, ARGS("model")},
    {"tune", m_tune, ARGS("model", BUDGET, "width", "int8")},
    {"job.status", m_job_status, ARGS("job")},
    {"job.cancel", m_job_cancel, ARGS("job")},
    {"schedule.get", m_schedule_get, ARGS("model", BUDGET, "minimize")},
    {"schedule.frontier", m_schedule_frontier, ARGS("model")},
    {"subscribe", m_subscribe, ARGS("model")},
    {"unsubscribe", m_unsubscribe, ARGS("model")},
    {"profile", m_profile, ARGS("model")},
    {"retune", m_retune, ARGS("model", "force")},
};
#define N_METHODS (sizeof methods / sizeof methods[0])

static const sd_method *find_method(const char *name, size_t len) {
    for (size_t i = 0; i < N_METHODS; i++)
        if (strlen(methods[i].name) == len && memcmp(methods[i].name, name, len) == 0)
            return &methods[i];
    return NULL;
}

void sd_dispatch(sd_daemon *d, sd_conn *c, const sp_msg *m) {
    sd_call k = {.d = d, .c = c, .msgid = m->msgid, .pk = &d->scratch_pk};
    d->scratch.size = 0;
    const sd_method *meth = find_method(m->method, m->method_len);
    int rc;
    if (!meth) {
        char list[400] = "";
        size_t used = 0;
        for (size_t i = 0; i < N_METHODS; i++)
            used += (size_t)snprintf(list + used, sizeof list - used, "%s%s", i ? ", " : "",
                                     methods[i].name);
        const char *nul = memchr(m->method, '\0', m->method_len);
        char ex[160];
        sp_excerpt(m->method, m->method_len, ex, sizeof ex);
        if (nul)
            rc = en_fail(&k.diag, SP_EMETHOD,
                         "method name %s holds a NUL byte at position %zu; searchd knows: %s", ex,
                         (size_t)(nul - m->method), list);
        else
            rc = en_fail(&k.diag, SP_EMETHOD, "unknown method %s; searchd knows: %s", ex, list);
    } else {
        sp_diag dg;
        rc = sp_params_map(m->params, &k.args, &dg);
        if (rc == 0) rc = sp_check_keys(k.args, meth->args, &dg);
        if (rc)
            rc = en_fail(&k.diag, rc, "%s: %s", meth->name, dg.msg);
        else if (d->stopping)
            rc = en_fail(&k.diag, SD_ESHUTDOWN, "searchd is shutting down");
        else
            rc = meth->fn(&k);
        if (d->opt.verbose)
            sd_log("connection %llu: %s -> %d", (unsigned long long)c->id, meth->name, rc);
    }
    if (rc != SD_DEFER)
        sd_conn_reply(c, m->msgid, rc, k.diag.msg[0] ? k.diag.msg : sd_strerror(rc), &d->scratch);
}
