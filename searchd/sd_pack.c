/* msgpack forms of what replies and notifications carry (sd_pack.h). */
#include "sd_pack.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "schedules/sc_schedule.h"
#include "schedules/sc_width.h"
#include "sd_jobs.h"
#include "sd_log.h"
#include "sd_models.h"

/* What a client needs to build the exact network of a narrowed schedule: per layer the kept
 * heads and FFN neurons (ascending) and their factors (shared/spec/width.md). */
static void pack_width(msgpack_packer *pk, const sc_width_profile *p, const sc_schedule *s) {
    int L = p->layers;
    int32_t *ids = malloc(sizeof *ids * (size_t)(p->heads + p->ffn) * L);
    float *scale = malloc(sizeof *scale * (size_t)(p->heads + p->ffn) * L);
    en_layer_width w[EN_MAX_LAYERS];
    for (int l = 0; ids && scale && l < L; l++) {
        size_t at = (size_t)l * (p->heads + p->ffn);
        sc_width_layer(p, l, sc_schedule_heads(s, l, p->heads),
                       sc_schedule_ffn_level(s, l, SC_WIDTH_LEVELS), ids + at, scale + at,
                       ids + at + p->heads, scale + at + p->heads, &w[l]);
    }
    if (!ids || !scale) L = 0; // out of memory: an empty width, which a client refuses
    static const char *const keys[] = {"heads", "head_scale", "neurons", "neuron_scale"};
    msgpack_pack_map(pk, 4);
    for (int k = 0; k < 4; k++) {
        sp_pack_str(pk, keys[k]);
        msgpack_pack_array(pk, (size_t)L);
        for (int l = 0; l < L; l++) {
            int n = k < 2 ? w[l].n_heads : w[l].n_neurons;
            msgpack_pack_array(pk, (size_t)n);
            for (int i = 0; i < n; i++) {
                if (k == 0) msgpack_pack_int32(pk, w[l].heads[i]);
                if (k == 1) msgpack_pack_float(pk, w[l].head_scale[i]);
                if (k == 2) msgpack_pack_int32(pk, w[l].neurons[i]);
                if (k == 3) msgpack_pack_float(pk, w[l].neuron_scale[i]);
            }
        }
    }
    free(ids);
    free(scale);
}

void sd_pack_record(msgpack_packer *pk, const sd_model *m, const sc_record *r) {
    char text[SC_SCHEDULE_TEXT_MAX], id[SD_ID_LEN];
    if (sc_schedule_format(&r->schedule, text, sizeof text) < 0) text[0] = '\0';
    snprintf(id, sizeof id, "%016llx", (unsigned long long)sc_schedule_hash(&r->schedule));
    const char *metric = en_metric_name(r->schedule.metric);
    const sc_width_profile *wp = m->frontier.width;
    int narrowed = wp && sc_schedule_has_width(&r->schedule);
    // The unpruned model's latency: predicted with the profile, else its own frontier record.
    double base = m->has_lat ? m->base_latency_ms : 0;
    for (int i = 0; base <= 0 && m->has_lat && i < m->frontier.count; i++)
        if (m->frontier.rec[i].flops_ratio >= 1 - 1e-12 &&
            !sc_schedule_has_precision(&m->frontier.rec[i].schedule))
            base = m->frontier.rec[i].latency_ms;
    msgpack_pack_map(pk, 16 + narrowed);
    sp_pack_kstr(pk, "model", m->id);
    sp_pack_kstr(pk, "schedule", text);
    sp_pack_kstr(pk, "id", id);
    sp_pack_kstr(pk, "metric", metric ? metric : "?");
    sp_pack_str(pk, "ratios");
    msgpack_pack_array(pk, (size_t)r->schedule.layers);
    for (int i = 0; i < r->schedule.layers; i++)
        msgpack_pack_double(pk, r->schedule.ratios[i]);
    sp_pack_knum(pk, "flops_ratio", r->flops_ratio);
    sp_pack_knum(pk, "tokens_flops_ratio", r->tokens_flops_ratio);
    sp_pack_knum(pk, "latency_ms", r->latency_ms);
    sp_pack_knum(pk, "accuracy", r->accuracy);
    sp_pack_knum(pk, "baseline_accuracy", r->baseline_accuracy);
    sp_pack_knum(pk, "drop", r->drop);
    sp_pack_knum(pk, "drop_upper", r->drop_upper);
    sp_pack_knum(pk, "search_accuracy", r->search_accuracy);
    sp_pack_kstr(pk, "hardware", m->has_lat ? m->hw_text : "");
    sp_pack_str(pk, "baseline_latency_ms"); // nil when unknown
    base > 0 ? msgpack_pack_double(pk, base) : msgpack_pack_nil(pk);
    sp_pack_str(pk, "speedup"); // baseline_latency_ms / latency_ms
    base > 0 && r->latency_ms > 0 ? msgpack_pack_double(pk, base / r->latency_ms)
                                  : msgpack_pack_nil(pk);
    if (narrowed) {
        sp_pack_str(pk, "width");
        pack_width(pk, wp, &r->schedule);
    }
}

void sd_pack_hw(msgpack_packer *pk, const sc_hw *hw) {
    msgpack_pack_map(pk, 5);
    sp_pack_kstr(pk, "cpu", hw->cpu);
    sp_pack_kstr(pk, "simd", hw->simd);
    sp_pack_kint(pk, "cores", hw->cores);
    sp_pack_kint(pk, "threads", hw->threads);
    sp_pack_kstr(pk, "blas", hw->blas);
}

void sd_pack_model(msgpack_packer *pk, const sd_model *m) {
    msgpack_pack_map(pk, 11);
    sp_pack_kstr(pk, "model", m->id);
    sp_pack_kstr(pk, "name", m->name);
    sp_pack_kstr(pk, "path", m->path);
    sp_pack_kstr(pk, "data", m->data);
    sp_pack_kstr(pk, "holdout", m->holdout);
    sp_pack_kint(pk, "layers", m->layers);
    sp_pack_kint(pk, "schedules", m->frontier.count);
    sp_pack_kbool(pk, "profiled", m->has_lat);
    sp_pack_kstr(pk, "hardware", m->has_lat ? m->hw_text : "");
    sp_pack_knum(pk, "added", m->added);
    sp_pack_kbool(pk, "changed", m->changed); // other weights under path: see model.add
}

void sd_pack_job(msgpack_packer *pk, sd_job *j) {
    sc_progress p = sd_job_progress(j);
    // From the stored wall-clock stamps: a job restored after a restart has no other clock.
    double end = j->finished > 0 ? j->finished : sd_now();
    msgpack_pack_map(pk, 8 + !!j->error[0] + !!j->waiting_for[0] + !!j->results_from[0]);
    sp_pack_kint(pk, "job", (int64_t)j->id);
    sp_pack_kstr(pk, "model", j->model_id);
    sp_pack_kstr(pk, "status", sd_job_state_name(j->state));
    sp_pack_kint(pk, "done", p.done);
    sp_pack_kint(pk, "total", p.total);
    sp_pack_knum(pk, "best", p.best_accuracy);
    sp_pack_knum(pk, "best_flops_ratio", p.best_flops);
    sp_pack_knum(pk, "seconds", j->started > 0 ? end - j->started : 0);
    if (j->error[0]) sp_pack_kstr(pk, "error", j->error);
    // a fleet host searches the model; this job ends with its records (docs/fleet.md)
    if (j->waiting_for[0]) sp_pack_kstr(pk, "waiting_for", j->waiting_for);
    if (j->results_from[0]) sp_pack_kstr(pk, "results_from", j->results_from);
}

void sd_pack_progress(msgpack_packer *pk, sd_job *j) {
    sc_progress p = sd_job_progress(j);
    msgpack_pack_map(pk, 6 + !!j->waiting_for[0]);
    sp_pack_kint(pk, "job", (int64_t)j->id);
    sp_pack_kint(pk, "done", p.done);
    sp_pack_kint(pk, "total", p.total);
    sp_pack_knum(pk, "best", p.best_accuracy);
    sp_pack_knum(pk, "best_flops_ratio", p.best_flops);
    sp_pack_kbool(pk, "within_budget", p.found); // best_* are the budget's best, or 0
    if (j->waiting_for[0]) sp_pack_kstr(pk, "waiting_for", j->waiting_for);
}
