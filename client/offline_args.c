#include "client/offline_args.h"
#include "engine/en_layout.h" // en_checkpoint_check

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sys/stat.h>

#include "schedules/sc_store.h"
#include "schedules/sc_width.h"

static const char *g_model_path; // the model the command runs, for --json (print_json)

const char *demo_model_dir(void) {
    const char *env = getenv("SEARCHD_DEMO_MODEL");
    if (env && *env) return env;
    // No build-folder path is compiled in (an installed searchctl has none): the project
    // folder's copy, when run from there.
    struct stat st;
    static const char here[] = "models/sst2-bert-L4-H128-demo";
    return stat(here, &st) == 0 && S_ISDIR(st.st_mode) ? here : NULL;
}

const char *offline_model(const char *given, const char *cmd) {
    if (given) return g_model_path = given;
    const char *dir = demo_model_dir();
    if (!dir) {
        fprintf(stderr,
                "searchctl %s: give --model DIR (a Hugging Face *ForSequenceClassification "
                "folder); the demo model is the default only in the project folder "
                "(models/sst2-bert-L4-H128-demo) or with SEARCHD_DEMO_MODEL\n",
                cmd);
        return NULL;
    }
    const char *slash = strrchr(dir, '/');
    fprintf(stderr, "searchctl %s: no --model given: using the demo model %s (%s)\n", cmd,
            slash && slash[1] ? slash + 1 : dir, dir);
    return g_model_path = dir;
}

/* Replaces *m by the model narrowed to s with --frontier's width profile (owning *m). */
static int narrow(const ctl_args *a, en_model **m, const sc_schedule *s) {
    en_diag diag = {{0}};
    sc_frontier f = {0};
    int rc = 1;
    if (!a->frontier) {
        fputs("searchctl: the schedule narrows layers (heads:/ffn:); give --frontier FILE, the "
              "frontier `searchctl tune --width --out FILE` wrote, for the heads and neurons it "
              "keeps\n",
              stderr);
    } else {
        json_error_t jerr;
        json_t *j = json_load_file(a->frontier, 0, &jerr);
        en_model *n = NULL;
        if (!j)
            fprintf(stderr, "searchctl: %s: %s (line %d)\n", a->frontier, jerr.text, jerr.line);
        else if (sc_frontier_from_json(j, &f, &diag) != 0 || !f.width)
            fprintf(stderr, "searchctl: %s: %s\n", a->frontier,
                    f.width || diag.msg[0] ? diag.msg : "no width profile in this frontier");
        else if (sc_width_narrow(*m, f.width, s, &n, &diag) != 0)
            fprintf(stderr, "searchctl: %s\n", diag.msg);
        else {
            n->owned_base = *m;
            *m = n;
            rc = 0;
        }
        json_decref(j);
    }
    sc_frontier_free(&f);
    if (rc) {
        en_model_free(*m);
        *m = NULL;
    }
    return rc;
}

int offline_precision(const ctl_args *a, int layers, en_precision *out) {
    const char *p = a->precision ? a->precision : "f32";
    int n = 0;
    for (;;) {
        size_t len = strcspn(p, ",");
        char name[16];
        snprintf(name, sizeof name, "%.*s", len < sizeof name ? (int)len : 0, p);
        if (n >= layers || en_precision_parse(name, &out[n]) != 0) {
            fprintf(stderr,
                    "searchctl: bad --precision '%s': f32 or int8, for all layers or one per "
                    "layer (%d)\n",
                    a->precision, layers);
            return 2;
        }
        n++;
        if (!p[len]) break;
        p += len + 1;
    }
    if (n == 1)
        for (int l = 1; l < layers; l++)
            out[l] = out[0];
    else if (n != layers) {
        fprintf(stderr, "searchctl: --precision '%s' names %d layers; the model has %d\n",
                a->precision, n, layers);
        return 2;
    }
    return 0;
}

int offline_load(const ctl_args *a, en_model **m, sc_schedule *s) {
    const char *dir = offline_model(a->model, a->command->name);
    if (!dir) return 2;
    en_diag diag = {{0}};
    int rc = en_checkpoint_check(dir, &diag); // what the folder holds, first
    if (rc == 0) rc = en_model_load(dir, m, &diag);
    if (rc) {
        fprintf(stderr, "searchctl: cannot load model: %s\n",
                diag.msg[0] ? diag.msg : en_strerror(rc));
        return 1;
    }
    en_metric metric = EN_METRIC_ATTN;
    if (a->metric && en_metric_parse(a->metric, &metric) != 0) {
        char names[64];
        fprintf(stderr, "searchctl: unknown metric '%s' (%s)\n", a->metric,
                en_metric_list(names, sizeof names));
        goto fail;
    }
    if (a->schedule && a->ratios) {
        fputs("searchctl: give --schedule or --ratios, not both\n", stderr);
        goto fail;
    }
    const char *text = a->schedule;
    char buf[1024];
    if (a->ratios) {
        snprintf(buf, sizeof buf, "%s:%s", en_metric_name(metric), a->ratios);
        text = buf;
    }
    if (!text) {
        sc_schedule_full(s, metric, (*m)->cfg.layers);
        if (a->precision && offline_precision(a, (*m)->cfg.layers, s->prec) != 0) goto fail;
        return 0;
    }
    rc = sc_schedule_parse(text, (*m)->cfg.layers, s, &diag);
    if (rc == 0 && a->precision && offline_precision(a, (*m)->cfg.layers, s->prec) != 0) goto fail;
    if (rc == 0 && sc_schedule_has_width(s)) return narrow(a, m, s) == 0 ? 0 : 1;
    if (rc == 0) return 0;
    fprintf(stderr, "searchctl: bad schedule '%s': %s\n", text, diag.msg);
fail:
    en_model_free(*m);
    *m = NULL;
    return 1;
}

void print_json(json_t *v) {
    // Which model answered: an object gets "model", an array each of its objects.
    for (size_t i = 0; g_model_path && i < (json_is_array(v) ? json_array_size(v) : 1); i++) {
        json_t *o = json_is_array(v) ? json_array_get(v, i) : v;
        if (json_is_object(o) && !json_object_get(o, "model"))
            json_object_set_new(o, "model", json_string(g_model_path));
    }
    char *text = json_dumps(v, JSON_INDENT(2) | JSON_REAL_PRECISION(12));
    if (text) puts(text);
    free(text);
    json_decref(v);
}

int softmax_argmax(const float *logits, int n, double *prob) {
    int best = 0;
    for (int k = 1; k < n; k++)
        if (logits[k] > logits[best]) best = k;
    double sum = 0;
    for (int k = 0; k < n; k++)
        sum += prob[k] = exp((double)logits[k] - logits[best]);
    for (int k = 0; k < n; k++)
        prob[k] /= sum;
    return best;
}
