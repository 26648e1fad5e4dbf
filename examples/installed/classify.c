/* An inference program built against the installed libraries only (README: "Installing the
 * libraries"): loads a model folder, runs a sentence under a schedule and prints the label.
 * The schedule is the full model, a schedule's text form (--schedule), or the one searchd
 * chooses for a budget (--socket, asking schedule.get over the client library, applied with
 * its width when it narrows layers).
 *
 *   classify MODEL_DIR "a sentence" [--schedule TEXT]
 *   classify MODEL_DIR "a sentence" --socket PATH --model NAME [--max-drop 1%]
 *
 * Prints the label's name on stdout; the schedule it ran and the probability on stderr.
 * Build: make (pkg-config --cflags --libs sdc searchd-engine). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "client/sdc.h"
#include "client/sdc_apply.h"
#include "engine/en_forward.h"
#include "engine/en_layout.h"
#include "engine/en_model.h"
#include "engine/en_tokenizer.h"
#include "schedules/sc_error.h"
#include "schedules/sc_schedule.h"

/* Asks searchd for the fastest schedule of `model` within `max_drop`: its text into `text`,
 * and, when it narrows layers, the network its record keeps into `*narrowed`. */
static int fetch(const char *socket, const char *model, double max_drop, const en_model *m,
                 char *text, size_t cap, en_model **narrowed) {
    sdc_client *c = NULL;
    sp_diag dg = {{0}};
    int rc = sdc_connect_unix(socket, &c, &dg);
    if (rc != 0) {
        fprintf(stderr, "classify: %s: %s\n", socket, dg.msg);
        return rc;
    }
    sdc_arg args[] = {SDC_ARG_STR("model", model), SDC_ARG_NUM("max_drop", max_drop)};
    sdc_reply r;
    rc = sdc_call(c, "schedule.get", args, 2, 30000, &r, &dg);
    if (rc == 0) rc = sp_get_str(r.result, "schedule", 1, text, cap, &dg);
    if (rc != 0) {
        fprintf(stderr, "classify: schedule.get: %s\n", dg.msg);
    } else {
        char why[300] = "";
        rc = sdc_apply_width(r.result, m, narrowed, why, sizeof why);
        if (rc != 0) fprintf(stderr, "classify: the record's width: %s\n", why);
    }
    sdc_reply_free(&r);
    sdc_close(c);
    return rc;
}

int main(int argc, char **argv) {
    if (argc < 3) {
        fprintf(stderr, "usage: classify MODEL_DIR SENTENCE [--schedule TEXT | --socket PATH "
                        "--model NAME [--max-drop 1%%]]\n");
        return 2;
    }
    const char *dir = argv[1], *sentence = argv[2], *text = NULL, *socket = NULL, *name = NULL;
    double max_drop = 0.01;
    for (int i = 3; i + 1 < argc; i += 2) {
        if (strcmp(argv[i], "--schedule") == 0) {
            text = argv[i + 1];
        } else if (strcmp(argv[i], "--socket") == 0) {
            socket = argv[i + 1];
        } else if (strcmp(argv[i], "--model") == 0) {
            name = argv[i + 1];
        } else if (strcmp(argv[i], "--max-drop") == 0) {
            sp_diag dg = {{0}};
            if (sdc_parse_share(argv[i + 1], "--max-drop", 1, &max_drop, &dg) != 0) {
                fprintf(stderr, "classify: %s\n", dg.msg);
                return 2;
            }
        } else {
            fprintf(stderr, "classify: unknown option %s\n", argv[i]);
            return 2;
        }
    }

    en_diag diag = {{0}};
    en_model *m = NULL, *narrowed = NULL;
    int rc = en_checkpoint_check(dir, &diag);
    if (rc == 0) rc = en_model_load(dir, &m, &diag);
    if (rc != 0) {
        fprintf(stderr, "classify: %s: %s\n", dir, diag.msg[0] ? diag.msg : sc_strerror(rc));
        return 1;
    }
    const en_config *cfg = &m->cfg;
    char fetched[SC_SCHEDULE_TEXT_MAX] = "";
    if (socket) {
        if (fetch(socket, name ? name : dir, max_drop, m, fetched, sizeof fetched, &narrowed)) {
            en_model_free(m);
            return 1;
        }
        text = fetched;
    }
    sc_schedule s;
    if (text && text[0]) {
        rc = sc_schedule_parse(text, cfg->layers, &s, &diag);
        if (rc == 0 && sc_schedule_has_width(&s) && !narrowed)
            rc = en_fail(&diag, EN_ESCHEDULE,
                         "a schedule that narrows layers needs searchd's "
                         "record (--socket): it says which heads and neurons");
    } else {
        sc_schedule_full(&s, EN_METRIC_ATTN, cfg->layers);
    }

    en_ctx *ctx = NULL;
    int32_t *ids = malloc(sizeof(int32_t) * (size_t)cfg->max_pos);
    int32_t *types = malloc(sizeof(int32_t) * (size_t)cfg->max_pos);
    int n = 0;
    float logits[EN_MAX_LABELS];
    if (rc == 0 && (!ids || !types)) rc = EN_ENOMEM;
    if (rc == 0) rc = en_ctx_new(m, cfg->max_pos, &ctx);
    if (rc == 0 && narrowed) rc = en_ctx_set_model(ctx, narrowed);
    if (rc == 0) rc = en_ctx_set_precision(ctx, s.prec);
    if (rc == 0) rc = en_tokenize(m->tok, sentence, NULL, cfg->max_pos, ids, types, &n, &diag);
    if (rc == 0) rc = en_forward(ctx, ids, types, n, s.metric, s.ratios, logits, NULL, NULL);
    if (rc == 0) {
        int best = 0;
        for (int k = 1; k < cfg->num_labels; k++)
            if (logits[k] > logits[best]) best = k;
        double sum = 0;
        for (int k = 0; k < cfg->num_labels; k++)
            sum += exp((double)logits[k] - logits[best]);
        char canon[SC_SCHEDULE_TEXT_MAX];
        sc_schedule_format(&s, canon, sizeof canon);
        fprintf(stderr, "classify: %d tokens, schedule %s, p = %.4f\n", n, canon, 1 / sum);
        printf("%s\n", cfg->labels[best]);
    } else {
        fprintf(stderr, "classify: %s\n", diag.msg[0] ? diag.msg : sc_strerror(rc));
    }
    if (ctx) en_ctx_set_model(ctx, m);
    en_ctx_free(ctx);
    free(ids);
    free(types);
    en_model_free(narrowed);
    en_model_free(m);
    return rc == 0 ? 0 : 1;
}
