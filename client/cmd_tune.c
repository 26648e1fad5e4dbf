/* searchctl tune: an offline schedule search (no daemon), right after fine-tuning. Calibrates
 * the latency model, searches, prints the frontier with predicted and measured latency, the
 * simple families it beats, and the schedule that answers the budget. */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "client/cli_plot.h"
#include "client/cli_util.h"
#include "client/offline_args.h"
#include "client/searchctl.h"
#include "schedules/sc_defaults.h"
#include "schedules/sc_error.h"
#include "schedules/sc_search.h"
#include "schedules/sc_store.h"
#include "schedules/sc_width.h"

static int write_svg(const ctl_args *a, const sc_frontier *front, const sc_frontier *fam,
                     const sc_record *chosen);
static void on_progress(void *ud, const sc_progress *p);
/* How the latency model did on the frontier: the median relative error, and the same once the
 * host's drift since the calibration (the probe's time then and now) is taken out. */
typedef struct lat_check {
    double median_err; // -1: not timed
    double drift;      // probe now / probe at calibration (0: no probe in the model)
    double drift_err;  // median error of predicted * drift (-1: no drift known)
} lat_check;

static int measure(const en_model *m, const en_dataset *d, int count, const sc_frontier *f,
                   const sc_latency_model *lm, double *predicted, double *measured, lat_check *out);
static void print_text(const ctl_args *a, const sc_latency_model *lm, const sc_frontier *f,
                       const sc_frontier *fam, const double *predicted, const double *measured,
                       const lat_check *lc, const sc_search_stats *st, const sc_record *chosen);
static json_t *record_json(const sc_record *r, double predicted, double measured);
static double best_family(const sc_frontier *fam, double flops);
static int save_frontier(const char *path, const sc_frontier *f);

/* The budget asked: at most one of --max-drop, --max-flops, --max-latency (unset: -1). */
static int budget(const ctl_args *a, sc_query *q) {
    q->max_drop = a->max_drop;
    q->max_flops = a->max_flops;
    q->max_latency_ms = a->max_latency;
    q->minimize = a->minimize == 1 && a->max_latency < 0 ? SC_MIN_FLOPS : SC_MIN_LATENCY;
    if ((q->max_drop >= 0) + (q->max_flops >= 0) + (q->max_latency_ms >= 0) > 1) {
        fputs("searchctl tune: give one of --max-drop, --max-flops and --max-latency\n", stderr);
        return 2;
    }
    return 0;
}

int cmd_tune(ctl_args *ap, int argc, char **argv) {
    (void)argc, (void)argv; // no positional arguments (the table says so)
    ctl_args a = *ap;
    sc_query q;
    int rc = budget(&a, &q);
    if (rc != 0) return rc;
    if (!(a.model = offline_model(a.model, "tune"))) return 2;
    en_model *m = NULL;
    en_dataset *data = NULL, *hold = NULL;
    if (cli_load_model(a.model, &m) ||
        cli_load_data(a.data, m, a.text_column, a.label_column, &data) ||
        (a.holdout && cli_load_data(a.holdout, m, a.text_column, a.label_column, &hold))) {
        en_dataset_free(data);
        en_model_free(m);
        return 1;
    }
    int status = 1;
    en_diag diag = {{0}};
    sc_latency_model lm;
    sc_frontier front = {0}, fam = {0};
    double *measured = NULL, *predicted = NULL;
    if ((rc = sc_latency_calibrate(m, 1, a.calib_seconds, &lm, &diag)) != 0) {
        fprintf(stderr, "searchctl tune: latency calibration: %s\n", diag.msg);
        goto done;
    }
    sc_search_opts o;
    sc_search_opts_default(&o);
    o.seed = a.seed;
    o.threads = a.search_threads;
    o.budget = q;
    o.lat = &lm;
    o.generations = a.generations;
    o.children = a.children;
    o.cache_mb = a.cache_mb == 0 ? -1 : a.cache_mb; // the option's 0 is none, the search's -1
    o.holdout_fraction = a.holdout_fraction;
    o.progress = on_progress;
    o.families = &fam;
    o.width = a.width;
    o.int8 = a.int8;
    o.rescale = a.rescale == 0 ? SC_RESCALE_NONE : (unsigned)a.rescale; // index = bits but none
    sc_search_stats st;
    rc = sc_search_run(m, data, hold, &o, &front, &st, &diag);
    cli_progress_end();
    if (rc != 0) {
        fprintf(stderr, "searchctl tune: %s\n", diag.msg[0] ? diag.msg : sc_strerror(rc));
        goto done;
    }
    if (a.out && save_frontier(a.out, &front) != 0) goto done;
    measured = calloc((size_t)front.count + 1, sizeof *measured);
    predicted = calloc((size_t)front.count + 1, sizeof *predicted);
    lat_check lc = {-1, 0, -1};
    if (!measured || !predicted) goto done;
    if (a.latency_examples > 0 && measure(m, hold ? hold : data, a.latency_examples, &front, &lm,
                                          predicted, measured, &lc) != 0)
        goto done;
    // The question asked; without one, the usual: the cheapest within a 1% drop.
    if (q.max_drop < 0 && q.max_flops < 0 && q.max_latency_ms < 0) q.max_drop = SC_DEFAULT_MAX_DROP;
    const sc_record *chosen = NULL, *closest = NULL;
    rc = sc_frontier_pick(&front, &q, &chosen, &closest, &diag);
    int svg_failed = a.svg && write_svg(&a, &front, &fam, chosen) != 0;
    if (a.json) {
        json_t *root = json_object();
        char hw[512];
        sc_hw_format(&lm.hw, hw, sizeof hw);
        json_object_set_new(root, "hardware", json_string(hw));
        char wh[24]; // which weights: searchd's model.add frontier import checks it
        snprintf(wh, sizeof wh, "%016llx", (unsigned long long)m->weights_hash);
        json_object_set_new(root, "weights_hash", json_string(wh));
        json_t *arr = json_array();
        for (int i = 0; i < front.count; i++)
            json_array_append_new(arr, record_json(&front.rec[i], predicted[i], measured[i]));
        json_object_set_new(root, "frontier", arr);
        if (front.width) // which heads and neurons the narrowed records keep (for add --frontier)
            json_object_set_new(root, "width", sc_width_to_json(front.width));
        json_t *farr = json_array();
        for (int i = 0; i < fam.count; i++)
            json_array_append_new(farr, record_json(&fam.rec[i], -1, -1));
        json_object_set_new(root, "families", farr);
        if (chosen) {
            long k = chosen - front.rec;
            json_object_set_new(root, "chosen", record_json(chosen, predicted[k], measured[k]));
        } else {
            json_object_set_new(root, "chosen", json_null());
            json_object_set_new(root, "error", json_string(diag.msg));
            long k = closest - front.rec;
            json_object_set_new(root, "closest", record_json(closest, predicted[k], measured[k]));
        }
        json_object_set_new(root, "gain_over_families", json_real(st.gain_over_families));
        json_object_set_new(root, "latency_median_error",
                            lc.median_err >= 0 ? json_real(lc.median_err) : json_null());
        json_object_set_new(root, "latency_host_drift",
                            lc.drift > 0 ? json_real(lc.drift) : json_null());
        json_object_set_new(root, "latency_median_error_drift_removed",
                            lc.drift_err >= 0 ? json_real(lc.drift_err) : json_null());
        json_object_set_new(
            root, "search",
            json_pack("{s:f, s:i, s:I, s:I, s:I, s:I, s:I, s:i, s:i, s:i, s:I}", "seconds",
                      st.seconds, "candidates", st.candidates, "layer_evals",
                      (json_int_t)st.layer_evals, "layer_evals_saved",
                      (json_int_t)st.layer_evals_saved, "layer_evals_cached",
                      (json_int_t)st.layer_evals_cached, "layer_evals_sibling",
                      (json_int_t)st.layer_evals_sibling, "cache_bytes", (json_int_t)st.cache_bytes,
                      "dropped_early", st.dropped_early, "search_examples", st.search_examples,
                      "holdout_examples", st.holdout_examples, "seed", (json_int_t)a.seed));
        json_t *lat = sc_latency_to_json(&lm);
        json_object_del(lat, "hw"); // printed as "hardware" above
        json_object_set_new(root, "latency_model", lat);
        print_json(root);
    } else {
        print_text(&a, &lm, &front, &fam, predicted, measured, &lc, &st, chosen);
        if (!chosen) fprintf(stderr, "searchctl tune: %s\n", diag.msg);
    }
    status = chosen && !svg_failed ? 0 : 1;
done:
    free(measured);
    free(predicted);
    sc_frontier_free(&front);
    sc_frontier_free(&fam);
    en_dataset_free(hold);
    en_dataset_free(data);
    en_model_free(m);
    return status;
}

/* --svg FILE: the searched frontier and the simple families, the chosen schedule marked. */
static int write_svg(const ctl_args *a, const sc_frontier *front, const sc_frontier *fam,
                     const sc_record *chosen) {
    int n = front->count + fam->count;
    cli_point *p = calloc((size_t)(n > 0 ? n : 1), sizeof *p);
    char(*names)[16 + 8 * EN_MAX_LAYERS] = calloc((size_t)(n > 0 ? n : 1), sizeof *names);
    int rc = p && names ? 0 : -ENOMEM;
    for (int i = 0; rc == 0 && i < n; i++) {
        const sc_record *r = i < front->count ? &front->rec[i] : &fam->rec[i - front->count];
        sc_schedule_format(&r->schedule, names[i], sizeof names[i]);
        p[i] = (cli_point){.schedule = names[i],
                           .flops_ratio = r->flops_ratio,
                           .latency_ms = r->latency_ms,
                           .accuracy = r->accuracy,
                           .drop = r->drop,
                           .drop_upper = r->drop_upper,
                           .family = i >= front->count,
                           .chosen = r == chosen};
    }
    char title[600];
    snprintf(title, sizeof title, "frontier of %s on %s", a->model, a->data);
    if (rc == 0) rc = cli_plot_svg(a->svg, p, n, title);
    if (rc != 0) fprintf(stderr, "searchctl tune: %s: %s\n", a->svg, strerror(-rc));
    free(p);
    free(names);
    return rc;
}

static void on_progress(void *ud, const sc_progress *p) {
    (void)ud;
    char note[96] = "nothing within the budget yet";
    if (p->found) // the best that meets the budget asked, not the best seen
        snprintf(note, sizeof note, "within the budget: accuracy %.4f at %.3f FLOPs (search part)",
                 p->best_accuracy, p->best_flops);
    cli_progress("searching", p->done, p->total, note);
}

/* Writes the frontier as JSON to `path` (atomically: a temp file renamed over it). */
static int save_frontier(const char *path, const sc_frontier *f) {
    json_t *j = sc_frontier_to_json(f);
    char tmp[4200];
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    int rc = j && json_dump_file(j, tmp, JSON_COMPACT) == 0 && rename(tmp, path) == 0 ? 0 : -1;
    if (rc) {
        fprintf(stderr, "searchctl tune: cannot write %s: %s\n", path, strerror(errno));
        remove(tmp);
    }
    json_decref(j);
    return rc;
}

static int cmp_double(const void *x, const void *y) {
    double a = *(const double *)x, b = *(const double *)y;
    return a < b ? -1 : a > b;
}

/* Rounds over the frontier, each on one of TIMING_SUBSETS interleaved thirds of the timed
 * examples, so every record runs each example TIMING_ROUNDS / TIMING_SUBSETS times. The host's
 * speed moves over seconds (other tenants): short rounds spread over the whole timing let every
 * record sample the same mix of slow and fast moments, where a few long passes each landed in
 * one (the records of one run erred by +4% to +44%, with 3 passes of 150). */
#define TIMING_SUBSETS 3
#define TIMING_ROUNDS 9

static double median_of(double *v, int n) {
    qsort(v, (size_t)n, sizeof *v, cmp_double);
    return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

/* Runs every frontier schedule on (up to latency_examples of) `d` with one worker of one
 * thread, as the latency model was calibrated, and compares with its prediction there: the mean
 * over TIMING_ROUNDS interleaved rounds, as the calibration averages its repeats. The latency
 * probe runs before each round, so its mean covers the same minutes as the records. */
static int measure(const en_model *m, const en_dataset *d, int count, const sc_frontier *f,
                   const sc_latency_model *lm, double *predicted, double *measured,
                   lat_check *out) {
    int n = d->count < count ? d->count : count;
    int *idx = malloc((size_t)n * sizeof *idx), *len = malloc((size_t)n * sizeof *len);
    int *sub = malloc((size_t)n * sizeof *sub), sub_n[TIMING_SUBSETS] = {0};
    double *err = malloc((size_t)(f->count + 1) * sizeof *err);
    en_dataset *view[TIMING_SUBSETS] = {NULL};
    int rc = -1;
    if (!idx || !len || !sub || !err) goto done;
    for (int i = 0; i < n; i++) {
        // Spread over the file, not its first lines.
        idx[i] = (int)((long)i * d->count / n);
        len[i] = d->ex[idx[i]].n;
    }
    for (int s = 0; s < TIMING_SUBSETS; s++) { // subset s: every TIMING_SUBSETS-th from s
        for (int j = s; j < n; j += TIMING_SUBSETS)
            sub[sub_n[s]++] = idx[j];
        if (sub_n[s] > 0 && en_dataset_view(d, sub, sub_n[s], &view[s]) != 0) goto done;
    }
    for (int i = 0; i < f->count; i++)
        measured[i] = 0;
    double probe_sum = 0;
    int probes = 0, runs = 0; // runs: sequences each record ran
    for (int t = 0; t < TIMING_ROUNDS * f->count; t++) {
        int i = t % f->count, s = t / f->count % TIMING_SUBSETS;
        cli_progress("timing", t, TIMING_ROUNDS * f->count, NULL);
        if (!view[s]) continue;
        if (i == 0) runs += sub_n[s];
        en_eval_opts eo = {.metric = f->rec[i].schedule.metric,
                           .ratios = f->rec[i].schedule.ratios,
                           .threads = 1,
                           .blas_threads = 1,
                           .precision = f->rec[i].schedule.prec};
        en_eval_result res = {0};
        en_diag diag = {{0}};
        en_model *narrowed = NULL; // the network the record runs
        int erc = 0;
        if (i == 0 && lm->probe_ms > 0) {
            double probe = 0;
            erc = sc_latency_probe(m, 1, &probe, &diag);
            probe_sum += probe;
            probes++;
        }
        if (erc == 0) erc = sc_width_narrow(m, f->width, &f->rec[i].schedule, &narrowed, &diag);
        if (erc == 0) erc = en_eval(narrowed ? narrowed : m, view[s], &eo, &res, &diag);
        en_model_free(narrowed);
        if (erc != 0) {
            fprintf(stderr, "searchctl tune: timing: %s\n", diag.msg);
            goto done;
        }
        measured[i] += res.latency_ms * sub_n[s]; // ms in all, then per sequence below
    }
    for (int i = 0; i < f->count; i++) {
        measured[i] /= runs;
        predicted[i] = sc_latency_predict(lm, &m->cfg, &f->rec[i].schedule, len, n);
        err[i] = fabs(predicted[i] - measured[i]) / measured[i];
    }
    cli_progress_end();
    out->median_err = median_of(err, f->count);
    if (probes > 0) {
        out->drift = probe_sum / probes / lm->probe_ms;
        for (int i = 0; i < f->count; i++)
            err[i] = fabs(predicted[i] * out->drift - measured[i]) / measured[i];
        out->drift_err = median_of(err, f->count);
    }
    rc = 0;
done:
    for (int s = 0; s < TIMING_SUBSETS; s++)
        en_dataset_free_view(view[s]);
    free(idx);
    free(len);
    free(sub);
    free(err);
    return rc;
}

static void print_text(const ctl_args *a, const sc_latency_model *lm, const sc_frontier *f,
                       const sc_frontier *fam, const double *predicted, const double *measured,
                       const lat_check *lc, const sc_search_stats *st, const sc_record *chosen) {
    char hw[512], text[SC_SCHEDULE_TEXT_MAX];
    sc_hw_format(&lm->hw, hw, sizeof hw);
    printf("hardware   %s\n", hw);
    printf("latency    model calibrated in %.1f s (fit error %.1f%% median)\n", lm->calib_seconds,
           100 * lm->fit_error);
    printf("data       %d search / %d held-out examples (seed %llu)\n", st->search_examples,
           st->holdout_examples, (unsigned long long)a->seed);
    printf("search     %.1f s, %d candidates (%d dropped after the first subset), "
           "%ld layer-evaluations run, %ld saved (%.0f%%; %ld by sibling layers, %ld by the "
           "state cache, %.0f MB)\n\n",
           st->seconds, st->candidates, st->dropped_early, st->layer_evals, st->layer_evals_saved,
           100.0 * st->layer_evals_saved / (double)(st->layer_evals + st->layer_evals_saved + 1),
           st->layer_evals_sibling, st->layer_evals_cached, st->cache_bytes / 1048576.0);
    printf("frontier (held-out figures; ms: predicted for the held-out part, then predicted and\n"
           "measured on the timed examples, 1 worker, 1 thread; vs_fam: accuracy points over the\n"
           "best simple family with no more FLOPs; tok / wid: the FLOPs saved by tokens and by\n"
           "width)\n");
    printf("  %-36s %6s %5s %5s %7s %7s %7s %8s %6s %6s %6s\n", "schedule", "flops", "tok", "wid",
           "ms", "t_pred", "t_meas", "accuracy", "drop", "upper", "vs_fam");
    for (int i = 0; i < f->count; i++) {
        const sc_record *r = &f->rec[i];
        sc_schedule_format(&r->schedule, text, sizeof text);
        double fb = best_family(fam, r->flops_ratio);
        char vs[16] = "-";
        if (fb >= 0) snprintf(vs, sizeof vs, "%+.2f", 100 * (r->accuracy - fb));
        char meas[16] = "-", pred[16] = "-";
        if (measured[i] > 0) {
            snprintf(meas, sizeof meas, "%.3f", measured[i]);
            snprintf(pred, sizeof pred, "%.3f", predicted[i]);
        }
        printf("%s %-36s %6.3f %5.3f %5.3f %7.3f %7s %7s %8.4f %5.2f%% %5.2f%% %6s\n",
               r == chosen ? "*" : " ", text, r->flops_ratio, 1 - r->tokens_flops_ratio,
               r->tokens_flops_ratio - r->flops_ratio, r->latency_ms, pred, meas, r->accuracy,
               100 * r->drop, 100 * r->drop_upper, vs);
    }
    if (lc->median_err >= 0)
        printf("\nlatency model: median error %.1f%% over the frontier (prediction for the timed "
               "examples vs en_eval, 1 worker, 1 thread)\n",
               100 * lc->median_err);
    if (lc->drift > 0)
        printf("               the probe ran %.2fx its calibration time while the frontier was "
               "timed (the host's load);\n               with that drift taken out, median "
               "error %.1f%%\n",
               lc->drift, 100 * lc->drift_err);
    printf("\nsimple families on their own frontier (held-out):\n");
    for (int i = 0; i < fam->count; i++) {
        sc_schedule_format(&fam->rec[i].schedule, text, sizeof text);
        printf("  %-40s %6.3f flops  accuracy %.4f  drop_upper %5.2f%%\n", text,
               fam->rec[i].flops_ratio, fam->rec[i].accuracy, 100 * fam->rec[i].drop_upper);
    }
    printf("gain over the best family at equal FLOPs: %+.2f points (mean over the frontier)\n",
           100 * st->gain_over_families);
    if (!chosen) return;
    sc_schedule_format(&chosen->schedule, text, sizeof text);
    printf("\nchosen     %s\n", text);
    printf("           flops %.3f of unpruned, latency %.3f ms predicted, held-out accuracy "
           "%.4f (unpruned %.4f), drop %.2f%%, drop_upper %.2f%%\n",
           chosen->flops_ratio, chosen->latency_ms, chosen->accuracy, chosen->baseline_accuracy,
           100 * chosen->drop, 100 * chosen->drop_upper);
    if (a->max_flops < 0 && a->max_latency < 0) {
        double max_drop = a->max_drop >= 0 ? a->max_drop : SC_DEFAULT_MAX_DROP;
        const sc_record *fb = NULL;
        for (int i = 0; i < fam->count; i++)
            if (fam->rec[i].drop_upper < max_drop &&
                (!fb || fam->rec[i].flops_ratio < fb->flops_ratio))
                fb = &fam->rec[i];
        if (fb) {
            sc_schedule_format(&fb->schedule, text, sizeof text);
            printf("           the cheapest simple family within that bound, %s, needs %.3f "
                   "FLOPs (%.0f%% more)\n",
                   text, fb->flops_ratio, 100 * (fb->flops_ratio / chosen->flops_ratio - 1));
        }
    } else if (st->family_best_accuracy >= 0) {
        printf("           best simple family within the same FLOPs: accuracy %.4f (%+.2f "
               "points)\n",
               st->family_best_accuracy, 100 * (chosen->accuracy - st->family_best_accuracy));
    }
}

static json_t *record_json(const sc_record *r, double predicted, double measured) {
    char text[SC_SCHEDULE_TEXT_MAX];
    sc_schedule_format(&r->schedule, text, sizeof text);
    json_t *ratios = json_array();
    for (int l = 0; l < r->schedule.layers; l++)
        json_array_append_new(ratios, json_real(r->schedule.ratios[l]));
    json_t *o = json_pack("{s:s, s:s, s:o, s:f, s:f, s:f, s:f, s:f, s:f, s:f}", "schedule", text,
                          "metric", en_metric_name(r->schedule.metric), "ratios", ratios,
                          "flops_ratio", r->flops_ratio, "latency_ms", r->latency_ms, "accuracy",
                          r->accuracy, "baseline_accuracy", r->baseline_accuracy, "drop", r->drop,
                          "drop_upper", r->drop_upper, "search_accuracy", r->search_accuracy);
    json_object_set_new(o, "tokens_flops_ratio", json_real(r->tokens_flops_ratio));
    if (measured > 0) { // on the timed examples, next to the prediction for those
        json_object_set_new(o, "timed_predicted_ms", json_real(predicted));
        json_object_set_new(o, "timed_measured_ms", json_real(measured));
    }
    return o;
}

static double best_family(const sc_frontier *fam, double flops) {
    double best = -1;
    for (int i = 0; i < fam->count; i++)
        if (fam->rec[i].flops_ratio <= flops && fam->rec[i].accuracy > best)
            best = fam->rec[i].accuracy;
    return best;
}
