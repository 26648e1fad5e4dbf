/* Offline commands: classify, eval (bench lives in cmd_bench.c). They run the engine in this
 * process; no daemon needed. */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "client/cli_util.h"
#include "client/offline_args.h"
#include "client/searchctl.h"
#include "engine/en_dataset.h"
#include "engine/en_export.h"
#include "engine/en_flops.h"

int cmd_classify(ctl_args *a, int argc, char **argv) {
    int texts_at = a->rest, rc = 0;
    if (texts_at >= argc) {
        fputs("searchctl classify: no TEXT given\n", stderr);
        ctl_usage(a->command, stderr);
        return 2;
    }
    en_model *m = NULL;
    sc_schedule s;
    if (offline_load(a, &m, &s) != 0) return 1;
    en_ctx *c = NULL;
    int32_t *ids = malloc(sizeof(int32_t) * m->cfg.max_pos);
    int32_t *types = malloc(sizeof(int32_t) * m->cfg.max_pos);
    if (!ids || !types || en_ctx_new(m, m->cfg.max_pos, &c) != 0) {
        fputs("searchctl classify: out of memory\n", stderr);
        rc = 1;
        goto done;
    }
    en_ctx_set_precision(c, s.prec); // the schedule's (--precision sets it)
    json_t *out = a->json ? json_array() : NULL;
    for (int i = texts_at; i < argc && rc == 0; i++) {
        int n = 0;
        en_diag diag;
        float logits[EN_MAX_LABELS];
        rc = en_tokenize(m->tok, argv[i], a->pair, m->cfg.max_pos, ids, types, &n, &diag);
        if (rc == 0 && n <= (a->pair ? 3 : 2)) {
            fprintf(stderr, "searchctl classify: '%s': the text has no tokens\n", argv[i]);
            rc = 1;
            break;
        }
        if (rc == 0) rc = en_forward(c, ids, types, n, s.metric, s.ratios, logits, NULL, NULL);
        if (rc) {
            fprintf(stderr, "searchctl classify: '%s': %s\n", argv[i], en_strerror(rc));
            rc = 1;
            break;
        }
        char text[SC_SCHEDULE_TEXT_MAX];
        sc_schedule_format(&s, text, sizeof text);
        json_t *o = cli_prediction(&m->cfg, argv[i], a->pair, logits, n, &s, text, a->json);
        if (out) json_array_append_new(out, o);
    }
    if (out && rc == 0)
        print_json(out); // releases it
    else
        json_decref(out);
done:
    free(ids);
    free(types);
    en_ctx_free(c);
    en_model_free(m);
    return rc;
}

int cmd_eval(ctl_args *a, int argc, char **argv) {
    (void)argc, (void)argv; // no positional arguments (the table says so)
    en_model *m = NULL;
    sc_schedule s;
    int rc;
    if (offline_load(a, &m, &s) != 0) return 1;
    en_dataset *d = NULL;
    en_diag diag;
    if (cli_load_data(a->data, m, a->text_column, a->label_column, &d)) {
        en_model_free(m);
        return 1;
    }
    if (a->threads > 1 && a->blas_threads > 1) {
        fputs("searchctl eval: give --threads (parallel sequences) or --blas-threads (one\n"
              "sequence at a time, BLAS in parallel), not both\n",
              stderr);
        en_dataset_free(d);
        en_model_free(m);
        return 2;
    }
    en_eval_opts o = {.metric = s.metric,
                      .ratios = s.ratios,
                      .threads = a->threads,
                      .blas_threads = a->blas_threads,
                      .batch = a->batch,
                      .precision = s.prec};
    en_eval_result r = {.pred = malloc(sizeof(int) * (size_t)d->count)};
    rc = r.pred ? en_eval(m, d, &o, &r, &diag) : EN_ENOMEM;
    if (rc) {
        fprintf(stderr, "searchctl eval: %s\n", rc == EN_ENOMEM ? "out of memory" : diag.msg);
    } else {
        // Per label, by id2label's names: examples, correct, predicted.
        int per[EN_MAX_LABELS][3] = {{0}};
        for (int i = 0; i < d->count; i++) {
            per[d->ex[i].label][0]++;
            per[d->ex[i].label][1] += r.pred[i] == d->ex[i].label;
            per[r.pred[i]][2]++;
        }
        json_t *labels = json_object();
        char text[SC_SCHEDULE_TEXT_MAX];
        sc_schedule_format(&s, text, sizeof text);
        if (a->json) {
            for (int k = 0; k < m->cfg.num_labels; k++)
                json_object_set_new(labels, m->cfg.labels[k],
                                    json_pack("{s:i, s:i, s:i}", "n", per[k][0], "correct",
                                              per[k][1], "predicted", per[k][2]));
            print_json(json_pack("{s:s, s:s, s:i, s:i, s:f, s:f, s:f, s:f, s:f, s:f, s:i, s:i, "
                                 "s:i, s:o}",
                                 "schedule", text, "precision", sc_schedule_precision_name(&s), "n",
                                 r.n, "correct", r.correct, "accuracy", r.accuracy, "flops",
                                 r.mean_flops, "flops_ratio", r.flops_ratio, "latency_ms",
                                 r.latency_ms, "sentences_per_s", r.n / r.seconds, "seconds",
                                 r.seconds, "threads", a->threads > 0 ? a->threads : 1,
                                 "blas_threads", a->blas_threads > 0 ? a->blas_threads : 1, "batch",
                                 a->batch > 0 ? a->batch : 1, "labels", labels));
        } else {
            printf("schedule    %s\n", text);
            printf("precision   %s\n", sc_schedule_precision_name(&s));
            printf("examples    %d (%s)\n", r.n, a->data);
            printf("accuracy    %.4f (%d correct)\n", r.accuracy, r.correct);
            for (int k = 0; k < m->cfg.num_labels; k++)
                printf("  %-9s %d examples, %d correct, %d predicted\n", m->cfg.labels[k],
                       per[k][0], per[k][1], per[k][2]);
            json_decref(labels);
            printf("flops       %.4g per sequence, %.4f of unpruned (%.4g)\n", r.mean_flops,
                   r.flops_ratio, r.base_flops);
            printf(
                "latency     %.3f ms per sequence (wall time / n; %d worker%s, %d BLAS thread%s; "
                "%.2f s in all)\n",
                r.latency_ms, a->threads > 0 ? a->threads : 1, a->threads > 1 ? "s" : "",
                a->blas_threads > 0 ? a->blas_threads : 1, a->blas_threads > 1 ? "s" : "",
                r.seconds);
            printf("throughput  %.1f sequences/s (batches of %d)\n", r.n / r.seconds,
                   a->batch > 0 ? a->batch : 1);
        }
    }
    free(r.pred);
    en_dataset_free(d);
    en_model_free(m);
    return rc ? 1 : 0;
}

int cmd_export(ctl_args *a, int argc, char **argv) {
    (void)argc, (void)argv;
    en_model *m = NULL;
    sc_schedule s;
    if (offline_load(a, &m, &s) != 0) return 1;
    en_diag diag = {{0}};
    int rc = en_model_export(m, a->model ? a->model : demo_model_dir(), a->out, &diag);
    if (rc) {
        fprintf(stderr, "searchctl export: %s\n", diag.msg);
    } else {
        long kept = 0, whole = 0;
        for (int l = 0; l < m->cfg.layers; l++) {
            int G = m->w.layer[l].heads * (m->cfg.hidden / m->cfg.heads);
            kept += 4L * G * m->cfg.hidden + 2L * m->w.layer[l].ffn * m->cfg.hidden;
            whole += 4L * m->cfg.hidden * m->cfg.hidden + 2L * m->cfg.ffn * m->cfg.hidden;
        }
        printf("wrote %s: encoder weights %.1f%% of the model's (%ld of %ld)\n", a->out,
               100.0 * kept / whole, kept, whole);
        char ratios[SC_SCHEDULE_TEXT_MAX];
        sc_schedule tokens = s;
        memset(tokens.heads_cut, 0, sizeof tokens.heads_cut);
        memset(tokens.ffn_cut, 0, sizeof tokens.ffn_cut);
        sc_schedule_format(&tokens, ratios, sizeof ratios);
        printf("token part, applied at run time: --schedule %s\n", ratios);
    }
    en_model_free(m);
    return rc ? 1 : 0;
}
