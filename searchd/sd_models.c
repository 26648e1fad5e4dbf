/* A model's lifetime, lookups, what pool work loads for it, and its frontier's re-prediction. */
#include "sd_models.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/en_file.h"
#include "engine/en_hash.h"
#include "engine/en_layout.h"
#include "schedules/sc_schedule.h"
#include "sd_error.h"

static int hash_file(const char *path, uint64_t *h) {
    FILE *fp = fopen(path, "rb");
    if (!fp) return -1;
    char buf[65536];
    size_t n;
    while ((n = fread(buf, 1, sizeof buf, fp)) > 0)
        *h = en_fnv1a(*h, buf, n);
    int rc = ferror(fp) ? -1 : 0;
    fclose(fp);
    return rc;
}

int sd_model_data_hash(sd_model *m) {
    if (m->data_hashed) return 0;
    uint64_t h = EN_FNV1A_BASIS;
    if (hash_file(m->data, &h) != 0) return -1;
    h = en_fnv1a(h, "", 1);
    if (m->holdout[0] && hash_file(m->holdout, &h) != 0) return -1;
    m->data_hash = h;
    m->data_hashed = 1;
    return 0;
}

sd_model *sd_model_find(sd_model *models, const char *key) {
    for (sd_model *m = models; m; m = m->next)
        if (strcmp(m->id, key) == 0) return m;
    return sd_model_named(models, key, NULL);
}

sd_model *sd_model_named(sd_model *models, const char *name, const sd_model *except) {
    // Names are unique (model.add refuses a taken one) and never look like an id.
    for (sd_model *m = models; m && name[0]; m = m->next)
        if (m != except && strcmp(m->name, name) == 0) return m;
    return NULL;
}

int sd_model_name_is_id(const char *name) {
    return strlen(name) == 16 && strspn(name, "0123456789abcdef") == 16;
}

void sd_model_ref(sd_model *m) {
    m->refs++;
}

void sd_model_unref(sd_model *m) {
    if (--m->refs > 0) return;
    en_model_free(m->model);
    sc_frontier_free(&m->frontier);
    free(m->lengths);
    free(m);
}

void sd_model_set_lat(sd_model *m, const sc_latency_model *lat) {
    m->lat = *lat;
    m->has_lat = 1;
    sc_hw_format(&m->lat.hw, m->hw_text, sizeof m->hw_text);
}

void sd_model_repredict(sd_model *m) {
    if (m->has_lat && m->lengths && m->model) {
        for (int i = 0; i < m->frontier.count; i++)
            m->frontier.rec[i].latency_ms = sc_latency_predict(
                &m->lat, &m->model->cfg, &m->frontier.rec[i].schedule, m->lengths, m->nlengths);
        sc_schedule full; // the "before" of every record's speed-up
        sc_schedule_full(&full, EN_METRIC_ATTN, m->model->cfg.layers);
        m->base_latency_ms =
            sc_latency_predict(&m->lat, &m->model->cfg, &full, m->lengths, m->nlengths);
    }
    sc_frontier_normalize(&m->frontier);
}

void sd_model_take_lengths(sd_model *m, int **lengths, int n) {
    if (!*lengths) return;
    if (!m->lengths && n > 0) {
        m->lengths = *lengths;
        m->nlengths = n;
    } else {
        free(*lengths);
    }
    *lengths = NULL;
}

int sd_inputs_load(sd_inputs *in, const char *path, uint64_t weights_hash, const en_model *borrowed,
                   const char *data, const char *holdout, en_diag *diag) {
    memset(in, 0, sizeof *in);
    in->em = borrowed;
    int rc = 0;
    if (!in->em) {
        rc = en_checkpoint_check(path, diag); // what the folder holds, first
        if (rc == 0) rc = en_model_load(path, &in->own, diag);
        if (rc == 0) in->em = in->own;
        if (rc == 0 && weights_hash)
            rc = sd_weights_check(path, weights_hash, in->em->weights_hash, diag);
    }
    if (rc == 0 && data[0]) rc = en_dataset_load(data, in->em, &in->data, diag);
    if (rc == 0 && holdout[0]) rc = en_dataset_load(holdout, in->em, &in->hold, diag);
    return rc;
}

void sd_inputs_free(sd_inputs *in) {
    en_dataset_free(in->data);
    en_dataset_free(in->hold);
    in->data = in->hold = NULL;
}

static int *lengths_of(const en_dataset *ds) {
    int *l = malloc(sizeof *l * (size_t)(ds->count ? ds->count : 1));
    for (int i = 0; l && i < ds->count; i++)
        l[i] = ds->ex[i].n;
    return l;
}

void sd_inputs_lengths(const sd_inputs *in, int **lengths, int *n) {
    const en_dataset *eval = in->hold ? in->hold : in->data;
    *lengths = eval ? lengths_of(eval) : NULL;
    *n = *lengths ? eval->count : 0;
}

int sd_lengths_load(const char *path, const en_model *em, int **lengths, int *count,
                    en_diag *diag) {
    en_dataset *ds;
    int rc = en_dataset_load(path, em, &ds, diag);
    if (rc) return rc;
    *lengths = lengths_of(ds);
    *count = ds->count;
    en_dataset_free(ds);
    return *lengths ? 0 : en_fail(diag, EN_ENOMEM, "out of memory");
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

void sd_hw_detect(const char *override, sc_hw *out) {
    sc_hw_detect(1, out);
    const char *ov = override;
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
