/* Loading a model for the fleet's records (sd_fleet_load.h). */
#include "sd_fleet_load.h"

#include <stdlib.h>
#include <string.h>

#include "sd_log.h"
#include "sd_models.h"
#include "sd_pool.h"

typedef struct fleet_load {
    uv_work_t work;
    sd_daemon *d;
    sd_model *m; // a reference for the task's life
    void (*loaded)(sd_daemon *d, sd_model *m);
    char path[1024], data[1024], holdout[1024]; // copied: model.add may change m's meanwhile
    uint64_t weights_hash;
    sd_inputs in;
    int *lengths, nlengths, rc;
    en_diag diag;
} fleet_load;

static void load_work(uv_work_t *w) {
    fleet_load *t = w->data;
    t->rc = sd_inputs_load(&t->in, t->path, t->weights_hash, NULL, t->data, t->holdout, &t->diag);
    if (t->rc == 0) sd_inputs_lengths(&t->in, &t->lengths, &t->nlengths);
}

static void load_after(uv_work_t *w, int status) {
    fleet_load *t = w->data;
    sd_model *m = t->m;
    sd_daemon *d = t->d;
    m->fleet_loading = 0;
    if (t->rc == 0 && status != 0) t->rc = status, strcpy(t->diag.msg, "cancelled at shutdown");
    if (t->rc == 0 && !m->removed) {
        if (!m->model) m->model = t->in.own, t->in.own = NULL;
        sd_model_take_lengths(m, &t->lengths, t->nlengths);
        sd_log("fleet: model %s (%s) loaded for the fleet's records", m->name, m->id);
        if (m->model && m->lengths) t->loaded(d, m); // the records read again: they merge now
    } else if (t->rc != 0) {
        sd_log("fleet: cannot load model %s (%s) for the fleet's records: %s", m->name, m->id,
               t->diag.msg);
    }
    sd_inputs_free(&t->in);
    en_model_free(t->in.own);
    free(t->lengths);
    sd_model_unref(m);
    free(t);
    sd_pool_done(d);
}

void sd_fleet_load(sd_daemon *d, sd_model *m, void (*loaded)(sd_daemon *d, sd_model *m)) {
    if (m->fleet_loading || m->removed) return;
    fleet_load *t = calloc(1, sizeof *t);
    if (!t) return;
    t->d = d;
    t->m = m;
    t->loaded = loaded;
    memcpy(t->path, m->path, sizeof t->path);
    memcpy(t->data, m->data, sizeof t->data);
    memcpy(t->holdout, m->holdout, sizeof t->holdout);
    t->weights_hash = m->weights_hash;
    t->work.data = t;
    sd_model_ref(m);
    m->fleet_loading = 1;
    en_diag diag;
    if (sd_pool_submit(d, &t->work, load_work, load_after, &diag) != 0) {
        m->fleet_loading = 0;
        sd_model_unref(m);
        free(t);
    }
}
