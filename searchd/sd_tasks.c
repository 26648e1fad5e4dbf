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
#include "engine/en_layout.h"
#include "schedules/sc_store.h"
#include "schedules/sc_width.h"

#define SD_IMPORT_MAX_BYTES (256ull << 20) // an imported frontier file, as a state file

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

int sd_weights_check(const char *path, uint64_t registered, uint64_t found, en_diag *diag) {
    if (registered == found) return 0;
    return en_fail(diag, SD_ECHANGED,
                   "model %016llx: %s/model.safetensors now holds other weights (hash %016llx); "
                   "nothing was run on them, and the model's schedules stay those of the weights "
                   "registered. Run model.add again to register the new weights (replace: true "
                   "to give them this model's name)",
                   (unsigned long long)registered, path, (unsigned long long)found);
}

/* Hands `w` to the thread pool, counted in d->tasks: 0, or the libuv error with a message. */
static int queue(sd_daemon *d, uv_work_t *w, uv_work_cb work, uv_after_work_cb after,
                 en_diag *diag) {
    int rc = uv_queue_work(d->loop, w, work, after);
    if (rc < 0) return en_fail(diag, rc, "uv_queue_work: %s", uv_strerror(rc));
    d->tasks++;
    return 0;
}

/* ---- model.add ---- */

typedef struct add_task {
    uv_work_t work;
    sd_daemon *d;
    uint64_t conn_id;
    uint32_t msgid;
    char path[1024], data[1024], holdout[1024], name[128];
    int replace; // the name may move from the model holding it, which is then removed
    double calib_seconds;
    sc_hw hw;
    char frontier_path[1024]; // "" or an offline tune --json result to import
    // results
    sc_frontier imported; // from frontier_path
    en_model *model;
    sc_latency_model lat;
    int *lengths;
    int nlengths, ndata;
    double seconds;
    int rc;
    en_diag diag;
} add_task;

/* An offline `searchctl tune --json` result (or a bare frontier array): its records, checked
 * field by field, for these weights and this layer count. */
/* The width profile that comes with narrowed records (tune --json's "width"): required when a
 * record narrows layers, and of this model's shape. */
static int import_width(add_task *t, const json_t *width) {
    const en_config *cfg = &t->model->cfg;
    en_diag why = {{0}};
    if (width && !t->imported.width) {
        sc_width_profile *w = calloc(1, sizeof *w);
        int rc = w ? sc_width_from_json(width, w, &why) : EN_ENOMEM;
        if (rc) {
            free(w);
            return en_fail(&t->diag, SP_EPARAMS, "%s: width profile: %s", t->frontier_path,
                           why.msg);
        }
        t->imported.width = w;
    }
    const sc_width_profile *w = t->imported.width;
    if (w && (w->layers != cfg->layers || w->heads != cfg->heads || w->ffn != cfg->ffn))
        return en_fail(&t->diag, SP_EPARAMS, "%s: its width profile is for %d layers, %d heads "
                       "and %d neurons; the model has %d, %d and %d", t->frontier_path,
                       w->layers, w->heads, w->ffn, cfg->layers, cfg->heads, cfg->ffn);
    for (int i = 0; !w && i < t->imported.count; i++)
        if (sc_schedule_has_width(&t->imported.rec[i].schedule))
            return en_fail(&t->diag, SP_EPARAMS, "%s: record %d narrows layers but the file has "
                           "no width profile (tune --json and tune --out write it)",
                           t->frontier_path, i);
    return 0;
}

static int import_frontier(add_task *t) {
    char *text = NULL;
    size_t len = 0;
    int rc = en_file_read(t->frontier_path, SD_IMPORT_MAX_BYTES, &text, &len, &t->diag);
    if (rc) return rc;
    json_error_t e;
    json_t *root = json_loadb(text, len, JSON_REJECT_DUPLICATES, &e);
    free(text);
    // tune --json's object (records under "frontier", the width profile under "width"), tune
    // --out's ({"records", "width"}), or a bare array of records
    const json_t *arr = json_is_object(root) && !json_object_get(root, "records")
                            ? json_object_get(root, "frontier")
                            : root;
    const char *hash = json_is_object(root)
                           ? json_string_value(json_object_get(root, "weights_hash"))
                           : NULL;
    char want[24];
    snprintf(want, sizeof want, "%016llx", (unsigned long long)t->model->weights_hash);
    en_diag why = {{0}};
    if (!root)
        rc = en_fail(&t->diag, SP_EPARAMS, "%s: not JSON (line %d)", t->frontier_path, e.line);
    else if (hash && strcmp(hash, want) != 0)
        rc = en_fail(&t->diag, SP_EPARAMS,
                     "%s: a frontier of other weights (%.20s), these are %s; tune these weights",
                     t->frontier_path, hash, want);
    else if ((rc = sc_frontier_from_json(arr, &t->imported, &why)) != 0)
        rc = en_fail(&t->diag, SP_EPARAMS,
                     "%s: not a frontier as 'searchctl tune --json' writes it: %s",
                     t->frontier_path, why.msg);
    else if (t->imported.count == 0 ||
             t->imported.rec[0].schedule.layers != t->model->cfg.layers)
        rc = en_fail(&t->diag, SP_EPARAMS, "%s: %d records of %d layers; the model has %d layers",
                     t->frontier_path, t->imported.count,
                     t->imported.count ? t->imported.rec[0].schedule.layers : 0,
                     t->model->cfg.layers);
    else
        rc = import_width(t, json_is_object(root) ? json_object_get(root, "width") : NULL);
    json_decref(root);
    return rc;
}

static void add_work(uv_work_t *req) {
    add_task *t = req->data;
    double t0 = sd_now();
    en_dataset *data = NULL, *hold = NULL;
    int rc = en_checkpoint_check(t->path, &t->diag); // what the folder holds, first
    if (rc == 0) rc = en_model_load(t->path, &t->model, &t->diag);
    if (rc == 0 && t->frontier_path[0]) rc = import_frontier(t);
    if (rc == 0) rc = en_dataset_load(t->data, t->model, &data, &t->diag);
    if (rc == 0 && t->holdout[0]) rc = en_dataset_load(t->holdout, t->model, &hold, &t->diag);
    // Everything a tune will need of the data, checked before anything changes.
    sc_search_opts so;
    sc_search_opts_default(&so);
    if (rc == 0)
        rc = sc_search_check_data(t->model, data, hold, so.holdout_fraction, SC_MIN_HELDOUT,
                                  &t->diag);
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

/* The model entry the add will make or update, saved before anything in memory changes:
 * `*cand` is a copy of the existing entry (or a fresh one) with the new paths, name and
 * profile. Returns 0 or the save's error; on error the files a new entry wrote are removed. */
static int add_save(sd_daemon *d, add_task *t, const sd_model *m, sd_model *cand) {
    if (m)
        *cand = *m; // shallow: the frontier and lengths stay m's, only read here
    else
        memset(cand, 0, sizeof *cand);
    snprintf(cand->id, sizeof cand->id, "%016llx", (unsigned long long)t->model->weights_hash);
    snprintf(cand->path, sizeof cand->path, "%s", t->path);
    snprintf(cand->data, sizeof cand->data, "%s", t->data);
    snprintf(cand->holdout, sizeof cand->holdout, "%s", t->holdout);
    if (t->name[0] || !cand->name[0]) snprintf(cand->name, sizeof cand->name, "%s", t->name);
    cand->weights_hash = t->model->weights_hash;
    cand->layers = t->model->cfg.layers;
    if (!m) cand->added = sd_now();
    sd_model_set_lat(cand, &t->lat);
    en_diag why;
    int rc = sd_state_save_latency(d, cand, &why);
    if (rc == 0) rc = sd_state_save_model(d, cand, &why);
    if (rc == 0) return 0;
    if (!m) sd_state_remove_model(d, cand->id, 1, NULL); // what a new entry wrote, not more
    return en_fail(&t->diag, rc, "the model could not be saved, so it was not %s: %s",
                   m ? "updated" : "added", why.msg);
}

static void add_after(uv_work_t *req, int status) {
    add_task *t = req->data;
    sd_daemon *d = t->d;
    d->tasks--;
    sd_conn *c = sd_conn_find(d, t->conn_id);
    if (c) c->owed--;
    if (status == UV_ECANCELED && t->rc == 0) t->rc = EN_ECANCELED;
    char id[SD_ID_LEN];
    sd_model *m = NULL, *holder = NULL;
    if (t->rc == 0) {
        snprintf(id, sizeof id, "%016llx", (unsigned long long)t->model->weights_hash);
        for (sd_model *x = d->models; x; x = x->next)
            if (strcmp(x->id, id) == 0) m = x;
        // One name, one model: checked again here, the registry may have changed meanwhile.
        holder = t->name[0] ? sd_model_named(d, t->name, m) : NULL;
        if (holder && !t->replace)
            t->rc = en_fail(&t->diag, SD_ENAME,
                            "the name '%s' belongs to model %s (other weights); remove it, choose "
                            "another name, or pass replace: true to register these weights under "
                            "it in place of that model",
                            t->name, holder->id);
    }
    sd_model cand;
    if (t->rc == 0) t->rc = add_save(d, t, m, &cand);
    if (t->rc == 0 && holder) {
        sd_log(d, "model %s replaces model %s under the name '%s'", id, holder->id, t->name);
        en_diag why;
        if ((t->rc = sd_model_remove(d, holder, &why)) != 0) {
            en_fail(&t->diag, t->rc, "could not replace model %s: %s", holder->id, why.msg);
            if (m) // the entry's file back as it was; a new entry's files go
                sd_state_save_model(d, m, NULL);
            else
                sd_state_remove_model(d, cand.id, 1, NULL);
        }
    }
    if (t->rc) {
        if (t->rc != SD_ENAME && t->rc != EN_ECANCELED)
            sd_log(d, "model.add %s failed: %s", t->path, t->diag.msg);
        sd_reply_later(d, t->conn_id, t->msgid, t->rc,
                       t->diag.msg[0] ? t->diag.msg : sd_strerror(t->rc), NULL);
        goto done;
    }
    int fresh = !m;
    if (fresh) {
        m = calloc(1, sizeof *m);
        if (!m) {
            sd_reply_later(d, t->conn_id, t->msgid, EN_ENOMEM, "out of memory", NULL);
            goto done;
        }
        m->refs = 1;
        m->next = d->models;
        d->models = m;
    }
    // Saved: now the same fields in memory.
    memcpy(m->id, cand.id, sizeof m->id);
    memcpy(m->name, cand.name, sizeof m->name);
    memcpy(m->path, cand.path, sizeof m->path);
    memcpy(m->data, cand.data, sizeof m->data);
    memcpy(m->holdout, cand.holdout, sizeof m->holdout);
    m->weights_hash = cand.weights_hash;
    m->layers = cand.layers;
    m->added = cand.added;
    m->changed = 0;
    if (!m->model) {
        m->model = t->model;
        t->model = NULL;
    }
    free(m->lengths); // the data may have changed
    m->lengths = NULL;
    sd_model_take_lengths(m, &t->lengths, t->nlengths);
    sd_model_set_lat(m, &t->lat);
    // A new entry for weights whose model-<id>.state was lost (damaged, set aside) takes back
    // their intact frontier-<id>.state; the file name carries the weights hash.
    if (fresh) sd_state_load_frontier(d, m);
    int imported = t->imported.count > 0;
    if (imported) { // replaces what the model had; accuracy figures are the offline run's
        sc_frontier_free(&m->frontier);
        m->frontier = t->imported;
        memset(&t->imported, 0, sizeof t->imported);
    }
    sd_model_repredict(m);
    if (m->frontier.count) sd_state_save_frontier(d, m, NULL); // re-predicted latencies
    sd_log(d, "model %s (%s) added from %s in %.2f s%s", m->id, m->name[0] ? m->name : "unnamed",
           m->path, t->seconds,
           imported                   ? "; its frontier was imported"
           : fresh && m->frontier.count ? "; its saved frontier was adopted"
                                        : "");
    if (imported) sd_notify_updated(d, m->id, "import");
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    msgpack_pack_map(&pk, 9);
    sp_pack_kstr(&pk, "model", m->id);
    sp_pack_kstr(&pk, "name", m->name);
    sp_pack_kstr(&pk, "family", en_model_family(m->model));
    sp_pack_str(&pk, "labels"); // id2label's names, in id order
    msgpack_pack_array(&pk, (size_t)m->model->cfg.num_labels);
    for (int k = 0; k < m->model->cfg.num_labels; k++)
        sp_pack_str(&pk, m->model->cfg.labels[k]);
    sp_pack_kint(&pk, "layers", m->layers);
    sp_pack_kint(&pk, "examples", t->ndata);
    sp_pack_kint(&pk, "schedules", m->frontier.count);
    sp_pack_kstr(&pk, "hardware", m->hw_text);
    sp_pack_knum(&pk, "seconds", t->seconds);
    sd_reply_later(d, t->conn_id, t->msgid, 0, NULL, &sb);
    msgpack_sbuffer_destroy(&sb);
done:
    sc_frontier_free(&t->imported);
    en_model_free(t->model);
    free(t->lengths);
    free(t);
    sd_daemon_maybe_finish(d);
}

int sd_task_add_model(sd_daemon *d, const char *path, const char *data, const char *holdout,
                      const char *name, int replace, const char *frontier, uint64_t conn_id,
                      uint32_t msgid, en_diag *diag) {
    add_task *t = calloc(1, sizeof *t);
    if (!t) return en_fail(diag, EN_ENOMEM, "out of memory");
    t->d = d;
    t->conn_id = conn_id;
    t->msgid = msgid;
    snprintf(t->path, sizeof t->path, "%s", path);
    snprintf(t->data, sizeof t->data, "%s", data);
    snprintf(t->holdout, sizeof t->holdout, "%s", holdout);
    snprintf(t->name, sizeof t->name, "%s", name);
    t->replace = replace;
    snprintf(t->frontier_path, sizeof t->frontier_path, "%s", frontier ? frontier : "");
    t->calib_seconds = d->opt.calib_seconds;
    t->hw = d->hw;
    t->work.data = t;
    int rc = queue(d, &t->work, add_work, add_after, diag);
    if (rc < 0) free(t);
    return rc;
}

/* ---- retune ---- */

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
    double t0 = sd_now();
    for (int i = 0; i < t->n; i++) {
        retune_item *it = &t->items[i];
        double s0 = sd_now();
        const en_model *em = it->borrowed;
        int rc = 0;
        if (!em && (rc = en_model_load(it->path, &it->own, &it->diag)) == 0) {
            em = it->own;
            rc = sd_weights_check(it->path, it->hash, em->weights_hash, &it->diag);
        }
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
            if (m->frontier.count) sd_state_save_frontier(d, m, NULL);
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
    sd_conn *c = t->conn_id ? sd_conn_find(d, t->conn_id) : NULL;
    if (c) c->owed--;
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
        it->hash = m->weights_hash;
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
    int rc = queue(d, &t->work, retune_work, retune_after, diag);
    if (rc < 0) {
        for (int i = 0; i < t->n; i++)
            sd_model_unref(t->items[i].m);
        free(t);
        return rc;
    }
    d->retune_running = 1;
    sd_log(d, "retune (%s): re-profiling %d model(s) on %s", reason, n, d->hw_text);
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
    d->tasks--;
    int changed = 0;
    for (int i = 0; i < t->n; i++) {
        verify_item *it = &t->items[i];
        sd_model *m = it->m;
        en_diag why;
        if (it->rc)
            sd_log(d, "model %s: cannot check its weights: %s", m->id, it->diag.msg);
        else if (sd_weights_check(m->path, it->want, it->got, &why) != 0)
            sd_log(d, "%s", why.msg);
        if (it->rc == 0 && !m->removed) {
            m->changed = it->got != it->want;
            changed += m->changed;
        }
        sd_model_unref(m);
    }
    sd_log(d, "weights of %d model(s) checked: %d changed since model.add", t->n, changed);
    free(t);
    sd_daemon_maybe_finish(d);
}

int sd_task_verify(sd_daemon *d, en_diag *diag) {
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
    int rc = queue(d, &t->work, verify_work, verify_after, diag);
    for (int i = 0; rc < 0 && i < t->n; i++)
        sd_model_unref(t->items[i].m);
    if (rc < 0) free(t);
    return rc;
}
