/* model.add in the pool: the weights loaded and checked, an offline frontier imported, the data
 * sets checked completely, the latency calibrated; then, on the loop, the entry saved and only
 * then registered (or updated), and the reply sent. */
#include "sd_add.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/en_file.h"
#include "schedules/sc_search.h"
#include "schedules/sc_store.h"
#include "schedules/sc_width.h"
#include "sd_conn.h"
#include "sd_dist.h"
#include "sd_error.h"
#include "sd_fleet.h"
#include "sd_log.h"
#include "sd_models.h"
#include "sd_pool.h"
#include "sd_registry.h"
#include "sd_state.h"

#define SD_IMPORT_MAX_BYTES (256ull << 20) // an imported frontier file, as a state file

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
        return en_fail(&t->diag, SP_EPARAMS,
                       "%s: its width profile is for %d layers, %d heads "
                       "and %d neurons; the model has %d, %d and %d",
                       t->frontier_path, w->layers, w->heads, w->ffn, cfg->layers, cfg->heads,
                       cfg->ffn);
    for (int i = 0; !w && i < t->imported.count; i++)
        if (sc_schedule_has_width(&t->imported.rec[i].schedule))
            return en_fail(&t->diag, SP_EPARAMS,
                           "%s: record %d narrows layers but the file has "
                           "no width profile (tune --json and tune --out write it)",
                           t->frontier_path, i);
    return 0;
}

/* An offline `searchctl tune --json` result (or a bare frontier array): its records, checked
 * field by field, for these weights and this layer count. */
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
    const char *hash =
        json_is_object(root) ? json_string_value(json_object_get(root, "weights_hash")) : NULL;
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
    else if (t->imported.count == 0 || t->imported.rec[0].schedule.layers != t->model->cfg.layers)
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
    double t0 = sd_mono();
    sd_inputs in;
    int rc = sd_inputs_load(&in, t->path, 0, NULL, "", "", &t->diag);
    t->model = in.own;
    if (rc == 0 && t->frontier_path[0]) rc = import_frontier(t);
    if (rc == 0) rc = sd_inputs_load(&in, t->path, 0, t->model, t->data, t->holdout, &t->diag);
    // Everything a tune will need of the data, checked before anything changes.
    sc_search_opts so;
    sc_search_opts_default(&so);
    if (rc == 0)
        rc = sc_search_check_data(t->model, in.data, in.hold, so.holdout_fraction, SC_MIN_HELDOUT,
                                  &t->diag);
    if (rc == 0) rc = sc_latency_calibrate(t->model, 1, t->calib_seconds, &t->lat, &t->diag);
    if (rc == 0) {
        t->lat.hw = t->hw;
        t->ndata = in.data->count;
        sd_inputs_lengths(&in, &t->lengths, &t->nlengths);
    }
    sd_inputs_free(&in);
    t->seconds = sd_mono() - t0;
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
    if (status == UV_ECANCELED && t->rc == 0) t->rc = EN_ECANCELED;
    char id[SD_ID_LEN];
    sd_model *m = NULL, *holder = NULL;
    if (t->rc == 0) {
        snprintf(id, sizeof id, "%016llx", (unsigned long long)t->model->weights_hash);
        for (sd_model *x = d->models; x; x = x->next)
            if (strcmp(x->id, id) == 0) m = x;
        // One name, one model: checked again here, the registry may have changed meanwhile.
        holder = t->name[0] ? sd_model_named(d->models, t->name, m) : NULL;
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
        sd_log("model %s replaces model %s under the name '%s'", id, holder->id, t->name);
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
            sd_log("model.add %s failed: %s", t->path, t->diag.msg);
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
    m->data_hashed = 0;
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
    sd_log("model %s (%s) added from %s in %.2f s%s", m->id, m->name[0] ? m->name : "unnamed",
           m->path, t->seconds,
           imported                     ? "; its frontier was imported"
           : fresh && m->frontier.count ? "; its saved frontier was adopted"
                                        : "");
    if (imported) sd_notify_updated(d, m->id, "import");
    sd_fleet_model_added(d, m); // what the fleet found for it before, merged when it arrives
    sd_dist_refresh(d);         // its work stream served here from now on
    sd_buf b;
    sd_buf_init(&b);
    msgpack_packer *pk = &b.pk;
    msgpack_pack_map(pk, 9);
    sp_pack_kstr(pk, "model", m->id);
    sp_pack_kstr(pk, "name", m->name);
    sp_pack_kstr(pk, "family", en_model_family(m->model));
    sp_pack_str(pk, "labels"); // id2label's names, in id order
    msgpack_pack_array(pk, (size_t)m->model->cfg.num_labels);
    for (int k = 0; k < m->model->cfg.num_labels; k++)
        sp_pack_str(pk, m->model->cfg.labels[k]);
    sp_pack_kint(pk, "layers", m->layers);
    sp_pack_kint(pk, "examples", t->ndata);
    sp_pack_kint(pk, "schedules", m->frontier.count);
    sp_pack_kstr(pk, "hardware", m->hw_text);
    sp_pack_knum(pk, "seconds", t->seconds);
    sd_reply_later(d, t->conn_id, t->msgid, 0, NULL, &b.sb);
    sd_buf_free(&b);
done:
    sc_frontier_free(&t->imported);
    en_model_free(t->model);
    free(t->lengths);
    free(t);
    sd_pool_done(d);
}

int sd_add_model(sd_daemon *d, const char *path, const char *data, const char *holdout,
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
    int rc = sd_pool_submit(d, &t->work, add_work, add_after, diag);
    if (rc < 0) free(t);
    return rc;
}
