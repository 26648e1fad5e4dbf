/* The host's side of the models, in the pool: retune re-measures latency profiles measured on
 * other hardware (or, forced, all of them) and re-predicts the frontiers; verify hashes every
 * registered model's weights at start, so weights swapped under a path are noticed at once. */
#include "sd_retune.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/en_file.h"
#include "sd_conn.h"
#include "sd_error.h"
#include "sd_fleet.h"
#include "sd_log.h"
#include "sd_models.h"
#include "sd_pool.h"
#include "sd_state.h"

typedef struct retune_item {
    sd_model *m; // reference held
    char path[1024], eval[1024];
    uint64_t hash; // what the weights under `path` must hash to
    const en_model *borrowed;
    en_model *own;
    sc_latency_model old, lat;
    int *lengths;
    int nlengths;
    double seconds;
    int rc;
    en_diag diag;
} retune_item;

typedef struct retune_task {
    uv_work_t work;
    sd_daemon *d;
    uint64_t conn_id;
    uint32_t msgid;
    char reason[32];
    int changed; // the host's fingerprint differs from the one last seen
    sc_hw hw;
    double calib_seconds, seconds;
    int n;
    retune_item items[];
} retune_task;

static void retune_work(uv_work_t *req) {
    retune_task *t = req->data;
    double t0 = sd_mono();
    for (int i = 0; i < t->n; i++) {
        retune_item *it = &t->items[i];
        double s0 = sd_mono();
        sd_inputs in;
        int rc = sd_inputs_load(&in, it->path, it->hash, it->borrowed, "", "", &it->diag);
        it->own = in.own;
        const en_model *em = in.em;
        if (rc == 0) rc = sc_latency_calibrate(em, 1, t->calib_seconds, &it->lat, &it->diag);
        if (rc == 0) it->lat.hw = t->hw;
        // Lengths are only read when the model entry has none (after a restart).
        if (rc == 0 && it->eval[0] &&
            sd_lengths_load(it->eval, em, &it->lengths, &it->nlengths, &it->diag) != 0) {
            it->lengths = NULL; // latency stays unpredicted; the profile itself is fine
            it->nlengths = 0;
        }
        it->rc = rc;
        it->seconds = sd_mono() - s0;
    }
    t->seconds = sd_mono() - t0;
}

/* Installs and saves the new profiles, re-predicts the frontiers and replies (when asked). */
static void retune_finish(retune_task *t) {
    sd_daemon *d = t->d;
    d->retune_running = 0;
    sd_buf b;
    sd_buf_init(&b);
    msgpack_packer *pk = &b.pk;
    msgpack_pack_map(pk, 5);
    sp_pack_kbool(pk, "changed", t->changed);
    sp_pack_kstr(pk, "hardware", d->hw_text);
    sp_pack_knum(pk, "seconds", t->seconds);
    sp_pack_kstr(pk, "reason", t->reason);
    sp_pack_str(pk, "models");
    msgpack_pack_array(pk, (size_t)t->n);
    int ok = 0;
    for (int i = 0; i < t->n; i++) {
        retune_item *it = &t->items[i];
        sd_model *m = it->m;
        if (it->rc == SD_ECHANGED) m->changed = 1; // and the weights loaded are not installed
        if (it->own) {
            if (!m->model && !m->removed && it->rc != SD_ECHANGED)
                m->model = it->own;
            else
                en_model_free(it->own);
        }
        if (it->rc == 0 && !m->removed) { // the new profile is saved before it is used
            sd_model cand = *m;
            sd_model_set_lat(&cand, &it->lat);
            it->rc = sd_state_save_latency(d, &cand, &it->diag);
        }
        char old_text[256] = "";
        if (it->old.hw.cores) sc_hw_format(&it->old.hw, old_text, sizeof old_text);
        msgpack_pack_map(pk, it->rc ? 5 : 6);
        sp_pack_kstr(pk, "model", m->id);
        sp_pack_kstr(pk, "old_hardware", old_text);
        sp_pack_kstr(pk, "hardware", it->rc ? "" : d->hw_text);
        sp_pack_knum(pk, "seconds", it->seconds);
        if (it->rc) {
            sp_pack_kstr(pk, "error", it->diag.msg);
            sd_log("retune of model %s failed: %s", m->id, it->diag.msg);
        } else {
            sp_pack_kint(pk, "schedules", m->frontier.count);
        }
        if (it->rc == 0 && !m->removed) {
            sd_model_take_lengths(m, &it->lengths, it->nlengths);
            sd_model_set_lat(m, &it->lat);
            sd_model_repredict(m);
            if (m->frontier.count) sd_state_save_frontier(d, m, NULL);
            sd_notify_updated(d, m->id, "retune");
            sd_fleet_model_added(d, m); // now that it can predict, what the fleet has
            ok++;
        }
        if (it->rc == 0) sp_pack_kint(pk, "schedules_repredicted", m->frontier.count);
        free(it->lengths);
        sd_model_unref(m);
    }
    if (t->n > 0) {
        d->last_retune_seconds = t->seconds;
        sd_log("retune (%s): %d of %d model(s) re-profiled on %s in %.2f s", t->reason, ok, t->n,
               d->hw_text, t->seconds);
    }
    if (t->conn_id) sd_reply_later(d, t->conn_id, t->msgid, 0, NULL, &b.sb);
    sd_buf_free(&b);
    free(t);
}

static void retune_after(uv_work_t *req, int status) {
    (void)status;
    retune_task *t = req->data;
    sd_daemon *d = t->d;
    retune_finish(t);
    sd_pool_done(d);
}

/* Whether model m is to be re-measured: it is `only` (or only is NULL), and forced, unprofiled
 * or profiled on other hardware. */
static int due(const sd_daemon *d, const sd_model *m, const char *only, int force) {
    return (!only || strcmp(m->id, only) == 0) &&
           (force || !m->has_lat || !sc_hw_equal(&m->lat.hw, &d->hw));
}

int sd_retune(sd_daemon *d, const char *only, int force, uint64_t conn_id, uint32_t msgid,
              const char *reason, en_diag *diag) {
    if (d->retune_running)
        return en_fail(diag, SD_EBUSY, "a retune is already running; try again when it is done");
    sc_hw hw;
    sd_hw_detect(d->opt.fingerprint_override, &hw);
    int changed = !sc_hw_equal(&hw, &d->hw);
    if (changed) {
        char was[256];
        snprintf(was, sizeof was, "%s", d->hw_text);
        d->hw = hw;
        sc_hw_format(&d->hw, d->hw_text, sizeof d->hw_text);
        sd_log("hardware changed: was %s, now %s", was, d->hw_text);
        sd_state_save_host(d);
    }
    int n = 0;
    for (sd_model *m = d->models; m; m = m->next)
        n += due(d, m, only, force);
    retune_task *t = calloc(1, sizeof *t + sizeof(retune_item) * (size_t)n);
    if (!t) return en_fail(diag, EN_ENOMEM, "out of memory");
    t->d = d;
    t->conn_id = conn_id;
    t->msgid = msgid;
    t->changed = changed;
    snprintf(t->reason, sizeof t->reason, "%s", reason);
    t->hw = d->hw;
    t->calib_seconds = d->opt.calib_seconds;
    for (sd_model *m = d->models; m && t->n < n; m = m->next) {
        if (!due(d, m, only, force)) continue;
        retune_item *it = &t->items[t->n++];
        it->m = m;
        sd_model_ref(m);
        snprintf(it->path, sizeof it->path, "%s", m->path);
        it->hash = m->weights_hash;
        if (!m->lengths)
            snprintf(it->eval, sizeof it->eval, "%s", m->holdout[0] ? m->holdout : m->data);
        it->borrowed = m->model;
        if (m->has_lat) it->old = m->lat;
    }
    t->work.data = t;
    if (n == 0) { // nothing to re-measure: answer at once
        retune_finish(t);
        return 0;
    }
    int rc = sd_pool_submit(d, &t->work, retune_work, retune_after, diag);
    if (rc < 0) {
        for (int i = 0; i < t->n; i++)
            sd_model_unref(t->items[i].m);
        free(t);
        return rc;
    }
    d->retune_running = 1;
    sd_log("retune (%s): re-profiling %d model(s) on %s", reason, n, d->hw_text);
    return 0;
}

/* ---- verify: the weights of every registered model hashed at start ---- */

typedef struct verify_item {
    sd_model *m; // reference held
    char path[1100];
    uint64_t want, got;
    int rc;
    en_diag diag;
} verify_item;

typedef struct verify_task {
    uv_work_t work;
    sd_daemon *d;
    int n;
    verify_item items[];
} verify_task;

static void verify_work(uv_work_t *req) {
    verify_task *t = req->data;
    for (int i = 0; i < t->n; i++) {
        verify_item *it = &t->items[i];
        it->rc = en_file_hash(it->path, EN_MAX_WEIGHTS_BYTES, &it->got, &it->diag);
    }
}

static void verify_after(uv_work_t *req, int status) {
    (void)status;
    verify_task *t = req->data;
    sd_daemon *d = t->d;
    int changed = 0;
    for (int i = 0; i < t->n; i++) {
        verify_item *it = &t->items[i];
        sd_model *m = it->m;
        en_diag why;
        if (it->rc)
            sd_log("model %s: cannot check its weights: %s", m->id, it->diag.msg);
        else if (sd_weights_check(m->path, it->want, it->got, &why) != 0)
            sd_log("%s", why.msg);
        if (it->rc == 0 && !m->removed) {
            m->changed = it->got != it->want;
            changed += m->changed;
        }
        sd_model_unref(m);
    }
    sd_log("weights of %d model(s) checked: %d changed since model.add", t->n, changed);
    free(t);
    sd_pool_done(d);
}

int sd_verify(sd_daemon *d, en_diag *diag) {
    int n = 0;
    for (sd_model *m = d->models; m; m = m->next)
        n++;
    if (n == 0) return 0;
    verify_task *t = calloc(1, sizeof *t + sizeof(verify_item) * (size_t)n);
    if (!t) return en_fail(diag, EN_ENOMEM, "out of memory");
    t->d = d;
    for (sd_model *m = d->models; m; m = m->next) {
        verify_item *it = &t->items[t->n++];
        it->m = m;
        sd_model_ref(m);
        snprintf(it->path, sizeof it->path, "%s/model.safetensors", m->path);
        it->want = m->weights_hash;
    }
    t->work.data = t;
    int rc = sd_pool_submit(d, &t->work, verify_work, verify_after, diag);
    for (int i = 0; rc < 0 && i < t->n; i++)
        sd_model_unref(t->items[i].m);
    if (rc < 0) free(t);
    return rc;
}
