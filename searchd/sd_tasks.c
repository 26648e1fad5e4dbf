/* Work that model.add and retune hand to the thread pool: loading a model and its data sets,
 * and measuring its latency on this host. The work functions touch only their task; the
 * after-callbacks install the results, save them and reply. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/en_dataset.h"
#include "engine/en_file.h"
#include "sd_daemon.h"
#include "sd_error.h"

void sd_hw_detect(sd_daemon *d, sc_hw *out) {
    sc_hw_detect(1, out);
    const char *ov = d->opt.fingerprint_override;
    if (!ov[0]) return;
    char text[sizeof out->cpu] = "";
    if (ov[0] == '@') { // read each time, so a test can change it under a running daemon
        char *buf;
        size_t len;
        if (en_file_read(ov + 1, 4096, &buf, &len, NULL) == 0) { // a FIFO is refused, not read
            snprintf(text, sizeof text, "%s", buf);
            free(buf);
        }
        text[strcspn(text, "\r\n")] = '\0';
    } else {
        snprintf(text, sizeof text, "%.*s", (int)sizeof text - 1, ov);
    }
    if (text[0]) snprintf(out->cpu, sizeof out->cpu, "%s", text);
}

/* ---- model.add ---- */

typedef struct add_task {
    uv_work_t work;
    sd_daemon *d;
    uint64_t conn_id;
    uint32_t msgid;
    char path[1024], data[1024], holdout[1024], name[128];
    double calib_seconds;
    sc_hw hw;
    // results
    en_model *model;
    sc_latency_model lat;
    int *lengths;
    int nlengths, ndata;
    double seconds;
    int rc;
    en_diag diag;
} add_task;

static void add_work(uv_work_t *req) {
    add_task *t = req->data;
    double t0 = sd_now();
    en_dataset *data = NULL, *hold = NULL;
    int rc = en_model_load(t->path, &t->model, &t->diag);
    if (rc == 0) rc = en_dataset_load(t->data, t->model, &data, &t->diag);
    if (rc == 0 && t->holdout[0]) rc = en_dataset_load(t->holdout, t->model, &hold, &t->diag);
    if (rc == 0) rc = sc_latency_calibrate(t->model, 1, t->calib_seconds, &t->lat, &t->diag);
    if (rc == 0) {
        t->lat.hw = t->hw;
        const en_dataset *eval = hold ? hold : data;
        t->ndata = data->count;
        t->lengths = malloc(sizeof *t->lengths * (size_t)eval->count);
        for (int i = 0; t->lengths && i < eval->count; i++)
            t->lengths[i] = eval->ex[i].n;
        t->nlengths = t->lengths ? eval->count : 0;
    }
    en_dataset_free(data);
    en_dataset_free(hold);
    t->seconds = sd_now() - t0;
    t->rc = rc;
}

static void add_after(uv_work_t *req, int status) {
    add_task *t = req->data;
    sd_daemon *d = t->d;
    d->tasks--;
    if (status == UV_ECANCELED && t->rc == 0) t->rc = EN_ECANCELED;
    if (t->rc) {
        sd_reply_later(d, t->conn_id, t->msgid, t->rc,
                       t->diag.msg[0] ? t->diag.msg : sd_strerror(t->rc), NULL);
        goto done;
    }
    char id[SD_ID_LEN];
    snprintf(id, sizeof id, "%016llx", (unsigned long long)t->model->weights_hash);
    sd_model *m = NULL;
    for (sd_model *x = d->models; x; x = x->next)
        if (strcmp(x->id, id) == 0) m = x;
    if (!m) {
        m = calloc(1, sizeof *m);
        if (!m) {
            sd_reply_later(d, t->conn_id, t->msgid, EN_ENOMEM, "out of memory", NULL);
            goto done;
        }
        memcpy(m->id, id, SD_ID_LEN);
        m->refs = 1;
        m->added = sd_now();
        m->next = d->models;
        d->models = m;
    }
    // Adding the same weights again updates where they and their data live.
    snprintf(m->path, sizeof m->path, "%s", t->path);
    snprintf(m->data, sizeof m->data, "%s", t->data);
    snprintf(m->holdout, sizeof m->holdout, "%s", t->holdout);
    if (t->name[0] || !m->name[0]) snprintf(m->name, sizeof m->name, "%s", t->name);
    m->weights_hash = t->model->weights_hash;
    m->layers = t->model->cfg.layers;
    if (!m->model) {
        m->model = t->model;
        t->model = NULL;
    }
    free(m->lengths); // the data may have changed
    m->lengths = NULL;
    sd_model_take_lengths(m, &t->lengths, t->nlengths);
    sd_model_set_lat(m, &t->lat);
    sd_model_repredict(m);
    sd_state_save_model(d, m);
    sd_state_save_latency(d, m);
    if (m->frontier.count) sd_state_save_frontier(d, m);
    sd_log(d, "model %s (%s) added from %s in %.2f s", m->id, m->name[0] ? m->name : "unnamed",
           m->path, t->seconds);
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    msgpack_pack_map(&pk, 7);
    sp_pack_kstr(&pk, "model", m->id);
    sp_pack_kstr(&pk, "name", m->name);
    sp_pack_kint(&pk, "layers", m->layers);
    sp_pack_kint(&pk, "examples", t->ndata);
    sp_pack_kint(&pk, "schedules", m->frontier.count);
    sp_pack_kstr(&pk, "hardware", m->hw_text);
    sp_pack_knum(&pk, "seconds", t->seconds);
    sd_reply_later(d, t->conn_id, t->msgid, 0, NULL, &sb);
    msgpack_sbuffer_destroy(&sb);
done:
    en_model_free(t->model);
    free(t->lengths);
    free(t);
    sd_daemon_maybe_finish(d);
}

int sd_task_add_model(sd_daemon *d, const char *path, const char *data, const char *holdout,
                      const char *name, uint64_t conn_id, uint32_t msgid, en_diag *diag) {
    add_task *t = calloc(1, sizeof *t);
    if (!t) return en_fail(diag, EN_ENOMEM, "out of memory");
    t->d = d;
    t->conn_id = conn_id;
    t->msgid = msgid;
    snprintf(t->path, sizeof t->path, "%s", path);
    snprintf(t->data, sizeof t->data, "%s", data);
    snprintf(t->holdout, sizeof t->holdout, "%s", holdout);
    snprintf(t->name, sizeof t->name, "%s", name);
    t->calib_seconds = d->opt.calib_seconds;
    t->hw = d->hw;
    t->work.data = t;
    int rc = uv_queue_work(d->loop, &t->work, add_work, add_after);
    if (rc < 0) {
        free(t);
        return en_fail(diag, rc, "uv_queue_work: %s", uv_strerror(rc));
    }
    d->tasks++;
    return 0;
}

/* ---- retune ---- */

typedef struct retune_item {
    sd_model *m; // reference held
    char path[1024], eval[1024];
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
    double t0 = sd_now();
    for (int i = 0; i < t->n; i++) {
        retune_item *it = &t->items[i];
        double s0 = sd_now();
        const en_model *em = it->borrowed;
        int rc = 0;
        if (!em && (rc = en_model_load(it->path, &it->own, &it->diag)) == 0) em = it->own;
        if (rc == 0) rc = sc_latency_calibrate(em, 1, t->calib_seconds, &it->lat, &it->diag);
        if (rc == 0) it->lat.hw = t->hw;
        // Lengths are only read when the model entry has none (after a restart).
        if (rc == 0 && it->eval[0] &&
            sd_lengths_load(it->eval, em, &it->lengths, &it->nlengths, &it->diag) != 0) {
            it->lengths = NULL; // latency stays unpredicted; the profile itself is fine
            it->nlengths = 0;
        }
        it->rc = rc;
        it->seconds = sd_now() - s0;
    }
    t->seconds = sd_now() - t0;
}

static void retune_after(uv_work_t *req, int status) {
    (void)status;
    retune_task *t = req->data;
    sd_daemon *d = t->d;
    d->tasks--;
    d->retune_running = 0;
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    msgpack_pack_map(&pk, 5);
    sp_pack_kbool(&pk, "changed", t->changed);
    sp_pack_kstr(&pk, "hardware", d->hw_text);
    sp_pack_knum(&pk, "seconds", t->seconds);
    sp_pack_kstr(&pk, "reason", t->reason);
    sp_pack_str(&pk, "models");
    msgpack_pack_array(&pk, (size_t)t->n);
    int ok = 0;
    for (int i = 0; i < t->n; i++) {
        retune_item *it = &t->items[i];
        sd_model *m = it->m;
        if (it->own) {
            if (!m->model && !m->removed)
                m->model = it->own;
            else
                en_model_free(it->own);
        }
        char old_text[256] = "";
        if (it->old.hw.cores) sc_hw_format(&it->old.hw, old_text, sizeof old_text);
        msgpack_pack_map(&pk, it->rc ? 5 : 6);
        sp_pack_kstr(&pk, "model", m->id);
        sp_pack_kstr(&pk, "old_hardware", old_text);
        sp_pack_kstr(&pk, "hardware", it->rc ? "" : d->hw_text);
        sp_pack_knum(&pk, "seconds", it->seconds);
        if (it->rc) {
            sp_pack_kstr(&pk, "error", it->diag.msg);
            sd_log(d, "retune of model %s failed: %s", m->id, it->diag.msg);
        } else {
            sp_pack_kint(&pk, "schedules", m->frontier.count);
        }
        if (it->rc == 0 && !m->removed) {
            sd_model_take_lengths(m, &it->lengths, it->nlengths);
            sd_model_set_lat(m, &it->lat);
            sd_model_repredict(m);
            sd_state_save_latency(d, m);
            if (m->frontier.count) sd_state_save_frontier(d, m);
            sd_notify_updated(d, m->id, "retune");
            ok++;
        }
        if (it->rc == 0) sp_pack_kint(&pk, "schedules_repredicted", m->frontier.count);
        free(it->lengths);
        sd_model_unref(m);
    }
    if (t->n > 0) {
        d->last_retune_seconds = t->seconds;
        sd_log(d, "retune (%s): %d of %d model(s) re-profiled on %s in %.2f s", t->reason, ok, t->n,
               d->hw_text, t->seconds);
    }
    if (t->conn_id) sd_reply_later(d, t->conn_id, t->msgid, 0, NULL, &sb);
    msgpack_sbuffer_destroy(&sb);
    free(t);
    sd_daemon_maybe_finish(d);
}

int sd_task_retune(sd_daemon *d, const char *only, int force, uint64_t conn_id, uint32_t msgid,
                   const char *reason, en_diag *diag) {
    if (d->retune_running)
        return en_fail(diag, SD_EBUSY, "a retune is already running; try again when it is done");
    sc_hw hw;
    sd_hw_detect(d, &hw);
    int changed = !sc_hw_equal(&hw, &d->hw);
    if (changed) {
        char was[256];
        snprintf(was, sizeof was, "%s", d->hw_text);
        d->hw = hw;
        sc_hw_format(&d->hw, d->hw_text, sizeof d->hw_text);
        sd_log(d, "hardware changed: was %s, now %s", was, d->hw_text);
        sd_state_save_host(d);
    }
    int n = 0;
    for (sd_model *m = d->models; m; m = m->next)
        if ((!only || strcmp(m->id, only) == 0) &&
            (force || !m->has_lat || !sc_hw_equal(&m->lat.hw, &d->hw)))
            n++;
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
        if (!((!only || strcmp(m->id, only) == 0) &&
              (force || !m->has_lat || !sc_hw_equal(&m->lat.hw, &d->hw))))
            continue;
        retune_item *it = &t->items[t->n++];
        it->m = m;
        sd_model_ref(m);
        snprintf(it->path, sizeof it->path, "%s", m->path);
        if (!m->lengths)
            snprintf(it->eval, sizeof it->eval, "%s", m->holdout[0] ? m->holdout : m->data);
        it->borrowed = m->model;
        if (m->has_lat) it->old = m->lat;
    }
    t->work.data = t;
    if (n == 0) { // nothing to re-measure: answer at once
        t->seconds = 0;
        d->tasks++;
        d->retune_running = 1;
        retune_after(&t->work, 0);
        return 0;
    }
    int rc = uv_queue_work(d->loop, &t->work, retune_work, retune_after);
    if (rc < 0) {
        for (int i = 0; i < t->n; i++)
            sd_model_unref(t->items[i].m);
        free(t);
        return en_fail(diag, rc, "uv_queue_work: %s", uv_strerror(rc));
    }
    d->tasks++;
    d->retune_running = 1;
    sd_log(d, "retune (%s): re-profiling %d model(s) on %s", reason, n, d->hw_text);
    return 0;
}
