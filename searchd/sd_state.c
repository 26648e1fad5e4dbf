/* The state directory (the files are listed in sd_state.h). */
#include "sd_state.h"

#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "engine/en_file.h"
#include "schedules/sc_error.h"
#include "schedules/sc_store.h"
#include "sd_error.h"
#include "sd_log.h"
#include "sd_models.h"

void sd_state_path(sd_daemon *d, char *buf, size_t len, const char *kind, const char *id) {
    if (id)
        snprintf(buf, len, "%s/%s-%s.state", d->opt.state_dir, kind, id);
    else
        snprintf(buf, len, "%s/%s.state", d->opt.state_dir, kind);
}

int sd_state_save_json(sd_daemon *d, const char *path, json_t *j, en_diag *diag) {
    char *text = j ? json_dumps(j, JSON_COMPACT | JSON_REAL_PRECISION(17)) : NULL;
    json_decref(j);
    en_diag why;
    int rc = text ? sc_store_write(path, text, strlen(text), &why)
                  : en_fail(&why, EN_ENOMEM, "%s: out of memory for its JSON", path);
    free(text);
    if (rc) {
        sd_log("cannot save state: %s", why.msg);
        snprintf(d->state_error, sizeof d->state_error, "%s", why.msg);
        d->saves_failed++;
        if (diag) *diag = why;
    }
    d->state_durable = rc == 0;
    return rc;
}

void sd_state_damaged(sd_daemon *d, const char *path, const char *why) {
    en_diag aside;
    aside.msg[0] = '\0';
    int rc = sc_store_set_aside(path, &aside);
    sd_log("damaged state file %s: %s; %s", path, why,
           rc == 0 ? aside.msg : "could not set it aside");
    if (d->ndamaged < (int)(sizeof d->damaged / sizeof d->damaged[0])) {
        sd_damaged *x = &d->damaged[d->ndamaged++];
        snprintf(x->file, sizeof x->file, "%s", path);
        snprintf(x->error, sizeof x->error, "%s", why);
    }
}

int sd_state_load_json(sd_daemon *d, const char *path, json_t **out) {
    void *data;
    size_t len;
    en_diag diag;
    *out = NULL;
    int rc = sc_store_read(path, &data, &len, &diag);
    if (rc == -ENOENT) return rc;
    if (rc) {
        sd_state_damaged(d, path, diag.msg);
        return rc;
    }
    json_error_t err;
    *out = json_loadb(data, len, 0, &err);
    free(data);
    if (!*out) {
        char why[300], reason[JSON_ERROR_TEXT_LENGTH];
        snprintf(why, sizeof why, "bad JSON at line %d: %s", err.line,
                 en_json_reason(err.text, reason, sizeof reason));
        sd_state_damaged(d, path, why);
        return SC_ECORRUPT;
    }
    return 0;
}

int sd_json_str(const json_t *j, const char *key, char *buf, size_t cap) {
    const json_t *v = json_object_get(j, key);
    if (!json_is_string(v) || json_string_length(v) >= cap) return -1;
    snprintf(buf, cap, "%s", json_string_value(v));
    return 0;
}

int sd_state_save_model(sd_daemon *d, const sd_model *m, en_diag *diag) {
    char path[1200], hash[SD_ID_LEN];
    sd_state_path(d, path, sizeof path, "model", m->id);
    snprintf(hash, sizeof hash, "%016llx", (unsigned long long)m->weights_hash);
    return sd_state_save_json(d, path,
                              json_pack("{s:s, s:s, s:s, s:s, s:s, s:s, s:i, s:f}", "id", m->id,
                                        "name", m->name, "path", m->path, "data", m->data,
                                        "holdout", m->holdout, "weights_hash", hash, "layers",
                                        m->layers, "added", m->added),
                              diag);
}

int sd_state_save_frontier(sd_daemon *d, const sd_model *m, en_diag *diag) {
    char path[1200];
    sd_state_path(d, path, sizeof path, "frontier", m->id);
    // The records (and width profile), plus the unpruned model's predicted latency, the "before"
    // of every speed-up, which the model's lengths gave and a restart does not have.
    json_t *f = sc_frontier_to_json(&m->frontier);
    json_t *j = json_is_array(f) ? json_pack("{s:o}", "records", f) : f;
    if (j && m->base_latency_ms > 0)
        json_object_set_new(j, "baseline_latency_ms", json_real(m->base_latency_ms));
    return sd_state_save_json(d, path, j, diag);
}

int sd_state_save_latency(sd_daemon *d, const sd_model *m, en_diag *diag) {
    char path[1200];
    sd_state_path(d, path, sizeof path, "latency", m->id);
    return sd_state_save_json(d, path, sc_latency_to_json(&m->lat), diag);
}

int sd_state_save_host(sd_daemon *d) {
    char path[1200];
    sd_state_path(d, path, sizeof path, "host", NULL);
    sc_latency_model tmp = {.hw = d->hw};
    json_t *lat = sc_latency_to_json(&tmp);
    json_t *hw = json_incref(json_object_get(lat, "hw"));
    json_decref(lat);
    return sd_state_save_json(d, path,
                              json_pack("{s:o, s:f}", "fingerprint", hw, "saved", sd_now()), NULL);
}

int sd_state_load_host(sd_daemon *d, sc_hw *out) {
    char path[1200];
    sd_state_path(d, path, sizeof path, "host", NULL);
    json_t *j;
    int rc = sd_state_load_json(d, path, &j);
    if (rc) return rc;
    // The fingerprint has the latency model's "hw" form: reuse its validation.
    sc_latency_model tmp = {0};
    json_t *wrap = json_pack("{s:O, s:[f,f,f,f,f,f], s:f, s:f, s:f}", "hw",
                             json_object_get(j, "fingerprint"), "layer", 0., 0., 0., 0., 0., 0.,
                             "fixed_ms", 0., "calib_seconds", 0., "fit_error", 0.);
    en_diag diag;
    rc = wrap ? sc_latency_from_json(wrap, &tmp, &diag) : SC_ECORRUPT;
    json_decref(wrap);
    json_decref(j);
    if (rc) {
        sd_state_damaged(d, path, wrap ? diag.msg : "no fingerprint");
        return rc;
    }
    *out = tmp.hw;
    return 0;
}

int sd_state_remove_model(sd_daemon *d, const char *id, int keep_frontier, en_diag *diag) {
    // model-<id>.state first: without it the others are never read, so a failure there is
    // the only one that would bring the model back at the next start.
    static const char *const kinds[] = {"model", "latency", "frontier"};
    for (int i = 0; i < (keep_frontier ? 2 : 3); i++) {
        char path[1200];
        sd_state_path(d, path, sizeof path, kinds[i], id);
        if (unlink(path) == 0 || errno == ENOENT) continue;
        int rc = -errno;
        en_diag why;
        en_fail(&why, rc, "cannot delete %s: %s", path, strerror(-rc));
        sd_log("%s", why.msg);
        snprintf(d->state_error, sizeof d->state_error, "%s", why.msg);
        d->saves_failed++;
        d->state_durable = 0;
        if (i == 0) {
            if (diag) *diag = why;
            return rc;
        }
    }
    return 0;
}

void sd_state_load_frontier(sd_daemon *d, sd_model *m) {
    char path[1200];
    sd_state_path(d, path, sizeof path, "frontier", m->id);
    json_t *j;
    if (sd_state_load_json(d, path, &j) != 0) return;
    en_diag diag;
    sc_frontier_free(&m->frontier);
    int rc = sc_frontier_from_json(j, &m->frontier, &diag);
    const json_t *base = json_is_object(j) ? json_object_get(j, "baseline_latency_ms") : NULL;
    if (rc == 0 && json_is_number(base) && json_number_value(base) > 0)
        m->base_latency_ms = json_number_value(base);
    if (rc == 0 && m->frontier.count > 0 && m->frontier.rec[0].schedule.layers != m->layers)
        rc = en_fail(&diag, SC_ECORRUPT, "schedules have %d layers, the model %d",
                     m->frontier.rec[0].schedule.layers, m->layers);
    if (rc) {
        sc_frontier_free(&m->frontier);
        sd_state_damaged(d, path, diag.msg);
    }
    json_decref(j);
}

static int load_model(sd_daemon *d, const char *id) {
    char path[1200];
    sd_state_path(d, path, sizeof path, "model", id);
    json_t *j;
    if (sd_state_load_json(d, path, &j)) return 0;
    sd_model *m = calloc(1, sizeof *m);
    if (!m) {
        json_decref(j);
        return EN_ENOMEM;
    }
    char hash[32];
    const json_t *layers = json_object_get(j, "layers");
    int bad = sd_json_str(j, "id", m->id, sizeof m->id) || strcmp(m->id, id) != 0 ||
              sd_json_str(j, "name", m->name, sizeof m->name) ||
              sd_json_str(j, "path", m->path, sizeof m->path) ||
              sd_json_str(j, "data", m->data, sizeof m->data) ||
              sd_json_str(j, "holdout", m->holdout, sizeof m->holdout) ||
              sd_json_str(j, "weights_hash", hash, sizeof hash) || !json_is_integer(layers) ||
              json_integer_value(layers) < 1 || json_integer_value(layers) > EN_MAX_LAYERS ||
              !json_is_number(json_object_get(j, "added"));
    if (!bad) {
        char *end;
        m->weights_hash = strtoull(hash, &end, 16);
        m->layers = (int)json_integer_value(layers);
        m->added = json_number_value(json_object_get(j, "added"));
        bad = *end != '\0' || strcmp(hash, m->id) != 0;
    }
    json_decref(j);
    if (bad) {
        free(m);
        sd_state_damaged(d, path, "a field is missing or inconsistent with the file name");
        return 0;
    }
    m->refs = 1;
    en_diag diag;
    sd_state_path(d, path, sizeof path, "latency", id);
    if (sd_state_load_json(d, path, &j) == 0) {
        sc_latency_model lat;
        if (sc_latency_from_json(j, &lat, &diag) == 0)
            sd_model_set_lat(m, &lat);
        else
            sd_state_damaged(d, path, diag.msg);
        json_decref(j);
    }
    sd_state_load_frontier(d, m);
    if (m->name[0] && (sd_model_named(d->models, m->name, NULL) || sd_model_name_is_id(m->name))) {
        sd_log("model %s: name '%s' is taken or looks like an id; the model stays unnamed", m->id,
               m->name);
        m->name[0] = '\0';
    }
    m->next = d->models;
    d->models = m;
    return 0;
}

int sd_state_load(sd_daemon *d, en_diag *diag) {
    const char *dir = d->opt.state_dir;
    // Create the directory and its parents, private to this user.
    char buf[1024];
    snprintf(buf, sizeof buf, "%s", dir);
    for (char *p = buf + 1; *p; p++)
        if (*p == '/') {
            *p = '\0';
            mkdir(buf, 0700);
            *p = '/';
        }
    if (mkdir(buf, 0700) != 0 && errno != EEXIST)
        return en_fail(diag, SD_ESTATE, "cannot create state directory %s: %s", dir,
                       strerror(errno));
    DIR *dh = opendir(dir);
    if (!dh)
        return en_fail(diag, SD_ESTATE, "cannot open state directory %s: %s", dir, strerror(errno));
    d->next_job_id = 1;
    struct dirent *e;
    while ((e = readdir(dh)) != NULL) {
        const char *n = e->d_name;
        size_t len = strlen(n);
        if (strstr(n, ".state.tmp.")) {
            // A write that a crash interrupted before its rename: the old file is intact.
            char path[1400];
            snprintf(path, sizeof path, "%s/%s", dir, n);
            unlink(path);
            continue;
        }
        if (len == 6 + 16 + 6 && strncmp(n, "model-", 6) == 0 && strcmp(n + 22, ".state") == 0) {
            char id[SD_ID_LEN];
            memcpy(id, n + 6, 16);
            id[16] = '\0';
            int rc = load_model(d, id);
            if (rc) {
                closedir(dh);
                return en_fail(diag, rc, "loading model %s: %s", id, sd_strerror(rc));
            }
        }
    }
    closedir(dh);

    return 0;
}
