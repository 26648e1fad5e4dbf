/* Registered models and the state directory. Every file goes through sc_store (atomic, framed,
 * checksummed); a file that fails to load is reported, set aside and listed in `info`:
 *   model-<id>.state     {id, name, path, data, holdout, weights_hash, layers, added}
 *   frontier-<id>.state  the frontier (sc_frontier_to_json)
 *   latency-<id>.state   the latency profile, with the fingerprint it was measured on
 *   jobs.state           {next_job, jobs: [...]}: the job history
 *   host.state           {fingerprint}: the host as last seen */
#include <dirent.h>
#include <errno.h>
#include <jansson.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "engine/en_file.h"
#include "schedules/sc_error.h"
#include "schedules/sc_store.h"
#include "sd_daemon.h"
#include "sd_error.h"

sd_model *sd_model_find(sd_daemon *d, const char *key) {
    for (sd_model *m = d->models; m; m = m->next)
        if (strcmp(m->id, key) == 0) return m;
    return sd_model_named(d, key, NULL);
}

sd_model *sd_model_named(sd_daemon *d, const char *name, const sd_model *except) {
    // Names are unique (model.add refuses a taken one) and never look like an id.
    for (sd_model *m = d->models; m && name[0]; m = m->next)
        if (m != except && strcmp(m->name, name) == 0) return m;
    return NULL;
}

int sd_model_remove(sd_daemon *d, sd_model *m, en_diag *diag) {
    en_diag why;
    int rc = sd_state_remove_model(d, m->id, 0, &why);
    if (rc)
        return en_fail(diag, rc, "model %s was not removed: %s; it stays registered", m->id,
                       why.msg);
    for (sd_job *j = d->jobs; j; j = j->next)
        if (j->model == m && (j->state == SD_JOB_QUEUED || j->state == SD_JOB_RUNNING))
            sd_job_cancel(d, j, NULL);
    sd_model **pp = &d->models;
    while (*pp != m)
        pp = &(*pp)->next;
    *pp = m->next;
    m->removed = 1;
    sd_notify_updated(d, m->id, "removed");
    sd_model_unref(m);
    return 0;
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

static void state_path(sd_daemon *d, char *buf, size_t len, const char *kind, const char *id) {
    if (id)
        snprintf(buf, len, "%s/%s-%s.state", d->opt.state_dir, kind, id);
    else
        snprintf(buf, len, "%s/%s.state", d->opt.state_dir, kind);
}

static int save_json(sd_daemon *d, const char *path, json_t *j, en_diag *diag) {
    char *text = j ? json_dumps(j, JSON_COMPACT | JSON_REAL_PRECISION(17)) : NULL;
    json_decref(j);
    en_diag why;
    int rc = text ? sc_store_write(path, text, strlen(text), &why)
                  : en_fail(&why, EN_ENOMEM, "%s: out of memory for its JSON", path);
    free(text);
    if (rc) {
        sd_log(d, "cannot save state: %s", why.msg);
        snprintf(d->state_error, sizeof d->state_error, "%s", why.msg);
        d->saves_failed++;
        if (diag) *diag = why;
    }
    d->state_durable = rc == 0;
    return rc;
}

static void damaged(sd_daemon *d, const char *path, const char *why) {
    en_diag aside;
    aside.msg[0] = '\0';
    int rc = sc_store_set_aside(path, &aside);
    sd_log(d, "damaged state file %s: %s; %s", path, why,
           rc == 0 ? aside.msg : "could not set it aside");
    if (d->ndamaged < (int)(sizeof d->damaged / sizeof d->damaged[0])) {
        sd_damaged *x = &d->damaged[d->ndamaged++];
        snprintf(x->file, sizeof x->file, "%s", path);
        snprintf(x->error, sizeof x->error, "%s", why);
    }
}

/* Reads a state file as JSON. 0 with *out, -ENOENT when absent, else the file was damaged and
 * has been set aside. */
static int load_json(sd_daemon *d, const char *path, json_t **out) {
    void *data;
    size_t len;
    en_diag diag;
    *out = NULL;
    int rc = sc_store_read(path, &data, &len, &diag);
    if (rc == -ENOENT) return rc;
    if (rc) {
        damaged(d, path, diag.msg);
        return rc;
    }
    json_error_t err;
    *out = json_loadb(data, len, 0, &err);
    free(data);
    if (!*out) {
        char why[300], reason[JSON_ERROR_TEXT_LENGTH];
        snprintf(why, sizeof why, "bad JSON at line %d: %s", err.line,
                 en_json_reason(err.text, reason, sizeof reason));
        damaged(d, path, why);
        return SC_ECORRUPT;
    }
    return 0;
}

int sd_state_save_model(sd_daemon *d, const sd_model *m, en_diag *diag) {
    char path[1200], hash[SD_ID_LEN];
    state_path(d, path, sizeof path, "model", m->id);
    snprintf(hash, sizeof hash, "%016llx", (unsigned long long)m->weights_hash);
    return save_json(d, path,
                     json_pack("{s:s, s:s, s:s, s:s, s:s, s:s, s:i, s:f}", "id", m->id, "name",
                               m->name, "path", m->path, "data", m->data, "holdout", m->holdout,
                               "weights_hash", hash, "layers", m->layers, "added", m->added),
                     diag);
}

int sd_state_save_frontier(sd_daemon *d, const sd_model *m, en_diag *diag) {
    char path[1200];
    state_path(d, path, sizeof path, "frontier", m->id);
    // The records (and width profile), plus the unpruned model's predicted latency, the "before"
    // of every speed-up, which the model's lengths gave and a restart does not have.
    json_t *f = sc_frontier_to_json(&m->frontier);
    json_t *j = json_is_array(f) ? json_pack("{s:o}", "records", f) : f;
    if (j && m->base_latency_ms > 0)
        json_object_set_new(j, "baseline_latency_ms", json_real(m->base_latency_ms));
    return save_json(d, path, j, diag);
}

int sd_state_save_latency(sd_daemon *d, const sd_model *m, en_diag *diag) {
    char path[1200];
    state_path(d, path, sizeof path, "latency", m->id);
    return save_json(d, path, sc_latency_to_json(&m->lat), diag);
}

int sd_state_save_host(sd_daemon *d) {
    char path[1200];
    state_path(d, path, sizeof path, "host", NULL);
    sc_latency_model tmp = {.hw = d->hw};
    json_t *lat = sc_latency_to_json(&tmp);
    json_t *hw = json_incref(json_object_get(lat, "hw"));
    json_decref(lat);
    return save_json(d, path, json_pack("{s:o, s:f}", "fingerprint", hw, "saved", sd_now()), NULL);
}

int sd_state_load_host(sd_daemon *d, sc_hw *out) {
    char path[1200];
    state_path(d, path, sizeof path, "host", NULL);
    json_t *j;
    int rc = load_json(d, path, &j);
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
        damaged(d, path, wrap ? diag.msg : "no fingerprint");
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
        state_path(d, path, sizeof path, kinds[i], id);
        if (unlink(path) == 0 || errno == ENOENT) continue;
        int rc = -errno;
        en_diag why;
        en_fail(&why, rc, "cannot delete %s: %s", path, strerror(-rc));
        sd_log(d, "%s", why.msg);
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

int sd_state_save_jobs(sd_daemon *d, en_diag *diag) {
    json_t *arr = json_array();
    for (sd_job *j = d->jobs; j; j = j->next) {
        sc_progress p = sd_job_progress(j);
        json_array_append_new(
            arr, json_pack("{s:I, s:s, s:s, s:s, s:f, s:f, s:f, s:i, s:i, s:f, s:f}", "job",
                           (json_int_t)j->id, "model", j->model_id, "status",
                           sd_job_state_name(j->state), "error", j->error, "created", j->created,
                           "started", j->started, "finished", j->finished, "done", p.done, "total",
                           p.total, "best", p.best_accuracy, "best_flops_ratio", p.best_flops));
    }
    char path[1200];
    state_path(d, path, sizeof path, "jobs", NULL);
    return save_json(d, path,
                     json_pack("{s:I, s:o}", "next_job", (json_int_t)d->next_job_id, "jobs", arr),
                     diag);
}

static int str_field(const json_t *j, const char *key, char *buf, size_t cap) {
    const json_t *v = json_object_get(j, key);
    if (!json_is_string(v) || json_string_length(v) >= cap) return -1;
    snprintf(buf, cap, "%s", json_string_value(v));
    return 0;
}

/* A job's progress as saved: done, total, best, best_flops_ratio. Files written before these
 * fields existed lack them (progress 0/0); present but wrong is an error. */
static int progress_fields(const json_t *e, sc_progress *p) {
    const json_t *done = json_object_get(e, "done"), *total = json_object_get(e, "total"),
                 *best = json_object_get(e, "best"), *cost = json_object_get(e, "best_flops_ratio");
    memset(p, 0, sizeof *p);
    if (!done && !total && !best && !cost) return 0;
    if (!json_is_integer(done) || !json_is_integer(total) || !json_is_number(best) ||
        !json_is_number(cost))
        return -1;
    json_int_t dn = json_integer_value(done), tt = json_integer_value(total);
    double b = json_number_value(best), c = json_number_value(cost);
    if (dn < 0 || tt < 0 || dn > tt || tt > INT_MAX || !(b >= 0 && b <= 1) || !(c >= 0 && c < 1e6))
        return -1;
    p->done = (int)dn;
    p->total = (int)tt;
    p->best_accuracy = b;
    p->best_flops = c;
    return 0;
}

static int load_jobs(sd_daemon *d) {
    char path[1200];
    state_path(d, path, sizeof path, "jobs", NULL);
    json_t *j;
    if (load_json(d, path, &j)) return 0;
    const json_t *next = json_object_get(j, "next_job"), *arr = json_object_get(j, "jobs");
    if (!json_is_integer(next) || json_integer_value(next) < 1 || !json_is_array(arr)) {
        json_decref(j);
        damaged(d, path, "next_job or jobs missing");
        return 0;
    }
    d->next_job_id = (uint64_t)json_integer_value(next);
    int interrupted = 0;
    sd_job **tail = &d->jobs;
    for (size_t i = 0; i < json_array_size(arr) && i < SD_JOBS_KEPT; i++) {
        const json_t *e = json_array_get(arr, i);
        char status[32];
        sd_job *job = calloc(1, sizeof *job);
        if (!job) break;
        const json_t *id = json_object_get(e, "job");
        if (!json_is_integer(id) || str_field(e, "model", job->model_id, sizeof job->model_id) ||
            str_field(e, "status", status, sizeof status) ||
            str_field(e, "error", job->error, sizeof job->error)) {
            free(job);
            continue; // one bad entry of a checksummed file: skip it, keep the rest
        }
        job->id = (uint64_t)json_integer_value(id);
        job->d = d;
        if (progress_fields(e, &job->progress) != 0) {
            free(job);
            continue;
        }
        job->created = json_number_value(json_object_get(e, "created"));
        job->started = json_number_value(json_object_get(e, "started"));
        job->finished = json_number_value(json_object_get(e, "finished"));
        job->state = SD_JOB_FAILED;
        for (int s = SD_JOB_QUEUED; s <= SD_JOB_INTERRUPTED; s++)
            if (strcmp(status, sd_job_state_name((sd_job_state)s)) == 0)
                job->state = (sd_job_state)s;
        if (job->state == SD_JOB_QUEUED || job->state == SD_JOB_RUNNING) {
            // It was under way when searchd died without a clean shutdown.
            job->state = SD_JOB_INTERRUPTED;
            snprintf(job->error, sizeof job->error,
                     "searchd stopped without a clean shutdown while this job was %s; run tune "
                     "again",
                     status);
            if (job->finished <= 0) job->finished = sd_now();
            interrupted++;
        }
        *tail = job;
        tail = &job->next;
    }
    json_decref(j);
    if (interrupted) {
        sd_log(d, "%d job(s) were interrupted by the previous searchd; recorded", interrupted);
        sd_state_save_jobs(d, NULL);
    }
    return 0;
}

void sd_state_load_frontier(sd_daemon *d, sd_model *m) {
    char path[1200];
    state_path(d, path, sizeof path, "frontier", m->id);
    json_t *j;
    if (load_json(d, path, &j) != 0) return;
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
        damaged(d, path, diag.msg);
    }
    json_decref(j);
}

static int looks_like_id(const char *name) {
    return strlen(name) == 16 && strspn(name, "0123456789abcdef") == 16;
}

static int load_model(sd_daemon *d, const char *id) {
    char path[1200];
    state_path(d, path, sizeof path, "model", id);
    json_t *j;
    if (load_json(d, path, &j)) return 0;
    sd_model *m = calloc(1, sizeof *m);
    if (!m) {
        json_decref(j);
        return EN_ENOMEM;
    }
    char hash[32];
    const json_t *layers = json_object_get(j, "layers");
    int bad = str_field(j, "id", m->id, sizeof m->id) || strcmp(m->id, id) != 0 ||
              str_field(j, "name", m->name, sizeof m->name) ||
              str_field(j, "path", m->path, sizeof m->path) ||
              str_field(j, "data", m->data, sizeof m->data) ||
              str_field(j, "holdout", m->holdout, sizeof m->holdout) ||
              str_field(j, "weights_hash", hash, sizeof hash) || !json_is_integer(layers) ||
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
        damaged(d, path, "a field is missing or inconsistent with the file name");
        return 0;
    }
    m->refs = 1;
    en_diag diag;
    state_path(d, path, sizeof path, "latency", id);
    if (load_json(d, path, &j) == 0) {
        sc_latency_model lat;
        if (sc_latency_from_json(j, &lat, &diag) == 0)
            sd_model_set_lat(m, &lat);
        else
            damaged(d, path, diag.msg);
        json_decref(j);
    }
    sd_state_load_frontier(d, m);
    if (m->name[0] && (sd_model_named(d, m->name, NULL) || looks_like_id(m->name))) {
        sd_log(d, "model %s: name '%s' is taken or looks like an id; the model stays unnamed",
               m->id, m->name);
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
    load_jobs(d);
    return 0;
}
