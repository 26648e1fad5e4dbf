/* searchctl's daemon commands: each is one or a few calls through the client library, printed
 * for people or, with --json, as the daemon's reply in JSON. `classify --daemon` is the
 * inference client: it asks searchd for the schedule, runs the engine here under it, and
 * switches to a new schedule when searchd says the frontier changed. */
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include "client/cli_plot.h"
#include "client/cli_util.h"
#include "client/offline_args.h"
#include "client/sdc.h"
#include "client/sdc_apply.h"
#include "client/searchctl.h"
#include "engine/en_forward.h"
#include "schedules/sc_defaults.h"
#include "schedules/sc_frontier.h"
#include "schedules/sc_schedule.h"

static int connect_to(const ctl_args *a, sdc_client **c) {
    sp_diag dg;
    char path[256];
    int rc = a->connect
                 ? sdc_connect_tcp(a->connect, c, &dg)
                 : sdc_connect_unix(a->socket ? a->socket : sdc_default_socket(path, sizeof path),
                                    c, &dg);
    if (rc) fprintf(stderr, "searchctl: %s\n", dg.msg);
    return rc ? 1 : 0;
}

/* One call; on failure prints the daemon's message and returns 1. */
static int call(sdc_client *c, const ctl_args *a, const char *method, const sdc_arg *args, int n,
                sdc_reply *r) {
    sp_diag dg;
    int rc = sdc_call(c, method, args, n, a->timeout_ms, r, &dg);
    if (rc) {
        fprintf(stderr, "searchctl: %s: %s (%d)\n", method, dg.msg, rc);
        return 1;
    }
    return 0;
}

static void print_reply_json(const msgpack_object *o) {
    print_json(sdc_to_json(o));
}

static const msgpack_object *get(const msgpack_object *map, const char *key) {
    return sp_map_get(map, key);
}

static double num(const msgpack_object *map, const char *key) {
    double v = NAN;
    const msgpack_object *o = get(map, key);
    if (o) sp_obj_num(o, &v);
    return v;
}

static const char *str(const msgpack_object *map, const char *key, char *buf, size_t cap) {
    if (sp_get_str(map, key, 1, buf, cap, NULL) != 0) snprintf(buf, cap, "?");
    return buf;
}

/* --max-drop / --max-flops / --max-latency / --minimize (checked by the parser) into
 * arguments; returns the count added. */
static int budget_args(const ctl_args *a, sdc_arg *args) {
    int n = 0;
    if (a->max_drop >= 0) args[n++] = SDC_ARG_NUM("max_drop", a->max_drop);
    if (a->max_flops >= 0) args[n++] = SDC_ARG_NUM("max_flops", a->max_flops);
    if (a->max_latency >= 0) args[n++] = SDC_ARG_NUM("max_latency_ms", a->max_latency);
    // The choice's index is the sc_minimize value; the RPC takes its name.
    if (a->minimize >= 0)
        args[n++] = SDC_ARG_STR("minimize", a->minimize == SC_MIN_FLOPS ? "flops" : "latency");
    return n;
}

static void print_record(const msgpack_object *r) {
    char sched[600], hw[300];
    printf("%s\n  accuracy %.2f%% (unpruned %.2f%%), drop %.2f%% (95%% upper bound %.2f%%)\n"
           "  FLOPs %.1f%% of unpruned, predicted latency ",
           str(r, "schedule", sched, sizeof sched), 100 * num(r, "accuracy"),
           100 * num(r, "baseline_accuracy"), 100 * num(r, "drop"), 100 * num(r, "drop_upper"),
           100 * num(r, "flops_ratio"));
    char speed[160];
    fputs(
        cli_speed_phrase(speed, sizeof speed, num(r, "baseline_latency_ms"), num(r, "latency_ms")),
        stdout);
    printf("\n  hardware: %s\n", str(r, "hardware", hw, sizeof hw));
}

static void print_model_line(const msgpack_object *m) {
    char id[32], name[128], hw[300];
    double layers = num(m, "layers"), schedules = num(m, "schedules");
    const msgpack_object *changed = get(m, "changed");
    printf("%s  %-16s %2.0f layers  %3.0f schedules  %s%s\n", str(m, "model", id, sizeof id),
           str(m, "name", name, sizeof name), layers, schedules, str(m, "hardware", hw, sizeof hw),
           changed && changed->type == MSGPACK_OBJECT_BOOLEAN && changed->via.boolean
               ? "  CHANGED: other weights under its path; add them again"
               : "");
}

static int do_info(sdc_client *c, const ctl_args *a, int list_only) {
    sdc_reply r;
    int rc = call(c, a, list_only ? "model.list" : "info", NULL, 0, &r);
    if (rc == 0 && a->json) {
        print_reply_json(r.result);
    } else if (rc == 0 && list_only) {
        for (uint32_t i = 0; i < r.result->via.array.size; i++)
            print_model_line(&r.result->via.array.ptr[i]);
    } else if (rc == 0) {
        char v[32], hw[300];
        printf("searchd %s, up %.0f s, %.0f connection(s), jobs: %.0f running, %.0f queued\n"
               "hardware: %s\n",
               str(r.result, "version", v, sizeof v), num(r.result, "uptime"),
               num(r.result, "connections"), num(r.result, "jobs_running"),
               num(r.result, "jobs_queued"), str(r.result, "hardware", hw, sizeof hw));
        if (num(r.result, "tcp_port") > 0) printf("tcp port %.0f\n", num(r.result, "tcp_port"));
        const msgpack_object *durable = get(r.result, "state_durable");
        char why[600] = "";
        if (durable && durable->type == MSGPACK_OBJECT_BOOLEAN && !durable->via.boolean)
            printf("state NOT durable: the last save failed: %s\n",
                   str(r.result, "state_error", why, sizeof why));
        const msgpack_object *models = get(r.result, "models");
        for (uint32_t i = 0; models && i < models->via.array.size; i++)
            print_model_line(&models->via.array.ptr[i]);
        const msgpack_object *dmg = get(r.result, "damaged");
        for (uint32_t i = 0; dmg && i < dmg->via.array.size; i++) {
            char f[1200], e[600];
            printf("damaged state file set aside: %s: %s\n",
                   str(&dmg->via.array.ptr[i], "file", f, sizeof f),
                   str(&dmg->via.array.ptr[i], "error", e, sizeof e));
        }
    }
    sdc_reply_free(&r);
    return rc;
}

/* A path as searchd must see it: absolute, since its working directory is not ours. */
static const char *absolute(const char *p, char *buf) {
    if (!p) return NULL;
    return realpath(p, buf) ? buf : p;
}

static int do_add(sdc_client *c, const ctl_args *a, int argc, char **argv) {
    const char *path = a->path ? a->path : a->model ? a->model : a->rest < argc ? argv[a->rest] : 0;
    if (!path || !a->data) {
        fputs("searchctl add: needs --path DIR and --data FILE\n", stderr);
        return 2;
    }
    char p1[PATH_MAX], p2[PATH_MAX], p3[PATH_MAX], p4[PATH_MAX];
    sdc_arg args[6] = {SDC_ARG_STR("path", absolute(path, p1)),
                       SDC_ARG_STR("data", absolute(a->data, p2))};
    int n = 2;
    if (a->holdout) args[n++] = SDC_ARG_STR("holdout", absolute(a->holdout, p3));
    if (a->name) args[n++] = SDC_ARG_STR("name", a->name);
    if (a->replace) args[n++] = SDC_ARG_BOOL("replace", 1);
    if (a->frontier) args[n++] = SDC_ARG_STR("frontier", absolute(a->frontier, p4));
    sdc_reply r;
    ctl_args slow = *a;
    slow.timeout_ms = a->timeout_ms > 300000 ? a->timeout_ms : 300000; // load + calibration
    int rc = call(c, &slow, "model.add", args, n, &r);
    if (rc == 0 && a->json) {
        print_reply_json(r.result);
    } else if (rc == 0) {
        char id[32], name[128], hw[300], fam[64];
        printf("model %s (%s, %s): %.0f layers, %.0f examples, profiled in %.2f s on %s\n",
               str(r.result, "model", id, sizeof id), str(r.result, "name", name, sizeof name),
               str(r.result, "family", fam, sizeof fam), num(r.result, "layers"),
               num(r.result, "examples"), num(r.result, "seconds"),
               str(r.result, "hardware", hw, sizeof hw));
    }
    sdc_reply_free(&r);
    return rc;
}

static int need_model(const ctl_args *a, int argc, char **argv, const char **model) {
    *model = a->model ? a->model : a->rest < argc ? argv[a->rest] : NULL;
    if (!*model) {
        fputs("searchctl: which model? give --model ID (see searchctl info)\n", stderr);
        return 2;
    }
    return 0;
}

static int simple(sdc_client *c, const ctl_args *a, const char *method, const sdc_arg *args,
                  int n) {
    sdc_reply r;
    int rc = call(c, a, method, args, n, &r);
    if (rc == 0) {
        if (r.result->type == MSGPACK_OBJECT_STR) { // e.g. "pong"
            json_t *v = sdc_to_json(r.result);
            char *text = json_dumps(v, JSON_ENCODE_ANY);
            printf("%s\n", text ? text : "?");
            free(text);
            json_decref(v);
        } else if (a->json || r.result->type != MSGPACK_OBJECT_MAP) {
            print_reply_json(r.result);
        } else {
            for (uint32_t i = 0; i < r.result->via.map.size; i++) {
                const msgpack_object_kv *kv = &r.result->via.map.ptr[i];
                json_t *v = sdc_to_json(&kv->val);
                // Figures for people: 4 significant digits (--json keeps them whole).
                char *text = json_dumps(v, JSON_ENCODE_ANY | JSON_COMPACT | JSON_REAL_PRECISION(4));
                printf("%.*s: %s\n", (int)kv->key.via.str.size, kv->key.via.str.ptr,
                       text ? text : "?");
                free(text);
                json_decref(v);
            }
        }
    }
    sdc_reply_free(&r);
    return rc;
}

/* ---- waiting for a job: the progress bar (cli_progress) from job.progress notifications;
 * Ctrl-C ends the bar's line and says the job goes on in searchd. */

static int wait_job_notes(sdc_client *c, const ctl_args *a, double job);
static char bar_interrupt_msg[200];

static void bar_on_sigint(int sig) {
    (void)sig;
    // Async-signal-safe: write() and _exit() only.
    if (cli_progress_drawn() && write(STDERR_FILENO, "\n", 1) < 0) _exit(130);
    if (write(STDERR_FILENO, bar_interrupt_msg, strlen(bar_interrupt_msg)) < 0) _exit(130);
    _exit(130);
}

static int wait_job(sdc_client *c, const ctl_args *a, double job) {
    snprintf(bar_interrupt_msg, sizeof bar_interrupt_msg,
             "searchctl: job %.0f goes on in searchd: see searchctl status %.0f, stop it with "
             "searchctl cancel %.0f\n",
             job, job, job);
    struct sigaction sa = {.sa_handler = bar_on_sigint}, old_sa;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, &old_sa);
    int rc = wait_job_notes(c, a, job);
    sigaction(SIGINT, &old_sa, NULL);
    return rc;
}

static int wait_job_notes(sdc_client *c, const ctl_args *a, double job) {
    for (;;) {
        sdc_note n;
        sp_diag dg;
        int rc = sdc_next_notification(c, -1, &n, &dg);
        if (rc) {
            cli_progress_end();
            fprintf(stderr, "searchctl tune: %s\n", dg.msg);
            return 1;
        }
        if (num(n.params, "job") != job) {
            sdc_note_free(&n);
            continue;
        }
        if (strcmp(n.method, "job.progress") == 0) {
            char note[360] = "nothing within the budget yet", host[300];
            const msgpack_object *in = sp_map_get(n.params, "within_budget");
            if (get(n.params, "waiting_for"))
                snprintf(note, sizeof note, "waiting for host %s, which searches this model",
                         str(n.params, "waiting_for", host, sizeof host));
            else if (!in || (in->type == MSGPACK_OBJECT_BOOLEAN && in->via.boolean))
                snprintf(note, sizeof note, "within the budget: %.2f%% at %.0f%% FLOPs",
                         100 * num(n.params, "best"), 100 * num(n.params, "best_flops_ratio"));
            if (a->json)
                cli_json_line(sdc_to_json(n.params));
            else
                cli_progress("tune", (int)num(n.params, "done"), (int)num(n.params, "total"), note);
        } else if (strcmp(n.method, "job.done") == 0) {
            cli_progress_end();
            char status[32], err[600] = "", from[300] = "";
            str(n.params, "status", status, sizeof status);
            if (get(n.params, "error")) str(n.params, "error", err, sizeof err);
            if (get(n.params, "results_from")) str(n.params, "results_from", from, sizeof from);
            if (a->json)
                cli_json_line(sdc_to_json(n.params));
            else if (from[0])
                printf("job %.0f %s in %.1f s: host %s searched this model; its records are "
                       "here\n",
                       job, status, num(n.params, "seconds"), from);
            else
                printf("job %.0f %s in %.1f s%s%s\n", job, status, num(n.params, "seconds"),
                       err[0] ? ": " : "", err);
            rc = strcmp(status, "done") == 0 ? 0 : 1;
            sdc_note_free(&n);
            return rc;
        }
        sdc_note_free(&n);
    }
}

static int do_tune(sdc_client *c, const ctl_args *a, const char *model) {
    sdc_arg args[8] = {SDC_ARG_STR("model", model)};
    int nb = budget_args(a, args + 1);
    int n = 1 + nb; // tune takes no --minimize (the table says so)
    if (a->width) args[n++] = SDC_ARG_BOOL("width", 1);
    if (a->int8) args[n++] = SDC_ARG_BOOL("int8", 1);
    sdc_reply r;
    int rc = call(c, a, "tune", args, n, &r);
    double job = rc == 0 ? num(r.result, "job") : 0;
    char status[32] = "";
    if (rc == 0) str(r.result, "status", status, sizeof status);
    if (rc == 0 && (a->no_wait || !a->json))
        a->json ? print_reply_json(r.result) : (void)printf("job %.0f %s\n", job, status);
    fflush(stdout);
    sdc_reply_free(&r);
    if (rc || a->no_wait) return rc;
    if ((rc = wait_job(c, a, job)) != 0 || nb == 0 || a->json) return rc;
    // Show what the budget now gets.
    if ((rc = call(c, a, "schedule.get", args, 1 + nb, &r)) == 0) {
        printf("chosen: ");
        print_record(r.result);
    }
    sdc_reply_free(&r);
    return rc;
}

static int do_get(sdc_client *c, const ctl_args *a, const char *model) {
    sdc_arg args[6] = {SDC_ARG_STR("model", model)};
    int nb = budget_args(a, args + 1);
    if (nb == (a->minimize >= 0 ? 1 : 0)) {
        fputs("searchctl get: give --max-drop 1%, --max-flops 0.5 or --max-latency MS\n", stderr);
        return 2;
    }
    sdc_reply r;
    int rc = call(c, a, "schedule.get", args, 1 + nb, &r);
    if (rc == 0) a->json ? print_reply_json(r.result) : print_record(r.result);
    sdc_reply_free(&r);
    return rc;
}

/* frontier --csv / --svg FILE: the records as points, the budget's pick (if asked) marked. */
static int frontier_files(sdc_client *c, const ctl_args *a, const char *model,
                          const msgpack_object *recs) {
    int n = (int)recs->via.array.size, rc = 0;
    cli_point *p = calloc((size_t)n, sizeof *p);
    char(*names)[600] = calloc((size_t)n, sizeof *names);
    char chosen[600] = "";
    sdc_arg args[6] = {SDC_ARG_STR("model", model)};
    int nb = budget_args(a, args + 1);
    if (!p || !names) rc = 1;
    if (rc == 0 && nb > (a->minimize >= 0 ? 1 : 0)) {
        sdc_reply r;
        if (call(c, a, "schedule.get", args, 1 + nb, &r) == 0)
            str(r.result, "schedule", chosen, sizeof chosen);
        sdc_reply_free(&r);
    }
    for (int i = 0; rc == 0 && i < n; i++) {
        const msgpack_object *e = &recs->via.array.ptr[i];
        p[i] = (cli_point){.schedule = str(e, "schedule", names[i], sizeof names[i]),
                           .flops_ratio = num(e, "flops_ratio"),
                           .latency_ms = num(e, "latency_ms"),
                           .accuracy = num(e, "accuracy"),
                           .drop = num(e, "drop"),
                           .drop_upper = num(e, "drop_upper")};
        p[i].chosen = chosen[0] && strcmp(chosen, names[i]) == 0;
    }
    if (rc == 0 && a->csv) cli_plot_csv(stdout, p, n);
    if (rc == 0 && a->svg) {
        char title[300];
        snprintf(title, sizeof title, "frontier of %s", model);
        int w = cli_plot_svg(a->svg, p, n, title);
        if (w != 0) fprintf(stderr, "searchctl frontier: %s: %s\n", a->svg, strerror(-w));
        rc = w != 0;
    }
    free(p);
    free(names);
    return rc;
}

static int do_frontier(sdc_client *c, const ctl_args *a, const char *model) {
    sdc_arg args[1] = {SDC_ARG_STR("model", model)};
    sdc_reply r;
    int rc = call(c, a, "schedule.frontier", args, 1, &r);
    if (rc == 0 && r.result->via.array.size == 0) {
        fprintf(stderr,
                "searchctl frontier: model %s has no schedules yet (not tuned): run searchctl "
                "tune --daemon --model %s\n",
                model, model);
        rc = 1;
    } else if (rc == 0 && (a->csv || a->svg)) {
        rc = frontier_files(c, a, model, r.result);
    } else if (rc == 0 && a->json) {
        print_reply_json(r.result);
    } else if (rc == 0) {
        // The hardware once; the unpruned model as the first row, then each record's speed-up.
        const msgpack_object *first = &r.result->via.array.ptr[0];
        char hw[300];
        printf("latency predicted on %s\n", str(first, "hardware", hw, sizeof hw));
        printf("%-8s %-9s %-9s %-9s %-10s %-8s  %s\n", "FLOPs", "accuracy", "drop", "drop_up",
               "latency", "speed-up", "schedule");
        double base = num(first, "baseline_latency_ms");
        printf("%6.1f%%  %7.2f%%  %7.2f%%  %7s  ", 100.0, 100 * num(first, "baseline_accuracy"),
               0.0, "-");
        base > 0 ? printf("%7.3f ms  %6.2fx  ", base, 1.0) : printf("%10s  %7s  ", "?", "?");
        printf("(unpruned)\n");
        for (uint32_t i = 0; i < r.result->via.array.size; i++) {
            const msgpack_object *e = &r.result->via.array.ptr[i];
            char s[600];
            printf("%6.1f%%  %7.2f%%  %7.2f%%  %7.2f%%  %7.3f ms  ", 100 * num(e, "flops_ratio"),
                   100 * num(e, "accuracy"), 100 * num(e, "drop"), 100 * num(e, "drop_upper"),
                   num(e, "latency_ms"));
            double up = num(e, "speedup");
            up > 0 ? printf("%6.2fx  ", up) : printf("%7s  ", "?");
            printf("%s\n", str(e, "schedule", s, sizeof s));
        }
    }
    sdc_reply_free(&r);
    return rc;
}

static void print_note(const ctl_args *a, const sdc_note *n) {
    if (a->json) {
        cli_json_line(json_pack("{s:s, s:o}", "method", n->method, "params",
                                n->params ? sdc_to_json(n->params) : json_null()));
    } else {
        char model[32] = "", reason[32] = "";
        if (n->params) {
            str(n->params, "model", model, sizeof model);
            if (get(n->params, "reason")) str(n->params, "reason", reason, sizeof reason);
        }
        printf("%s %s%s%s\n", n->method, model, reason[0] ? " " : "", reason);
    }
    fflush(stdout);
}

static int subscribe(sdc_client *c, const ctl_args *a, const char *model) {
    sdc_arg args[1] = {SDC_ARG_STR("model", model)};
    sdc_reply r;
    int rc = call(c, a, "subscribe", args, 1, &r);
    sdc_reply_free(&r);
    return rc;
}

/* Subscribes to every registered model not yet in `ids` (count `*n`, up to `cap`); a model
 * found after the first pass is announced as a `model.added` line. 0, or 1 on failure. */
static int subscribe_all(sdc_client *c, const ctl_args *a, char (*ids)[32], int *n, int cap) {
    sdc_reply r;
    if (call(c, a, "model.list", NULL, 0, &r)) {
        sdc_reply_free(&r);
        return 1;
    }
    int first = *n < 0, rc = 0;
    if (first) *n = 0;
    for (uint32_t i = 0; i < r.result->via.array.size && rc == 0 && *n < cap; i++) {
        char id[32];
        str(&r.result->via.array.ptr[i], "model", id, sizeof id);
        int known = 0;
        for (int k = 0; k < *n && !known; k++)
            known = strcmp(ids[k], id) == 0;
        if (known) continue;
        rc = subscribe(c, a, id);
        snprintf(ids[(*n)++], 32, "%s", id);
        if (rc != 0 || first) continue;
        if (a->json) {
            cli_json_line(
                json_pack("{s:s, s:{s:s}}", "method", "model.added", "params", "model", id));
        } else {
            printf("model.added %s\n", id);
            fflush(stdout);
        }
    }
    sdc_reply_free(&r);
    return rc;
}

static int do_watch(sdc_client *c, const ctl_args *a) {
    static char ids[1024][32];
    int nids = -1;
    if (a->model) {
        if (subscribe(c, a, a->model)) return 1;
    } else if (subscribe_all(c, a, ids, &nids, 1024)) { // every model, now and added later
        return 1;
    }
    if (!a->json)
        fprintf(stderr, "watching %s; Ctrl-C to stop\n", a->model ? a->model : "all models");
    for (int seen = 0; a->count == 0 || seen < a->count;) {
        sdc_note n;
        sp_diag dg;
        // Without a model, the list is looked at again every second for models added since.
        int rc = sdc_next_notification(c, a->model ? -1 : 1000, &n, &dg);
        if (rc == SP_ETIMEOUT && !a->model) {
            if (subscribe_all(c, a, ids, &nids, 1024)) return 1;
            continue;
        }
        if (rc) {
            fprintf(stderr, "searchctl watch: %s\n", dg.msg);
            return 1;
        }
        print_note(a, &n);
        sdc_note_free(&n);
        seen++;
    }
    return 0;
}

/* ---- classify --daemon ---- */

typedef struct infer {
    en_model *m;
    en_model *narrowed; // the schedule's network when it narrows layers, else NULL
    en_ctx *ctx;
    int32_t *ids, *types;
    sc_schedule s;
    char text[600];
} infer;

/* Asks searchd for the schedule under the budget and parses it for the local model. */
static int fetch_schedule(sdc_client *c, const ctl_args *a, const sdc_arg *args, int n, infer *in) {
    sdc_reply r;
    int rc = call(c, a, "schedule.get", args, n, &r);
    if (rc == 0) {
        en_diag diag;
        str(r.result, "schedule", in->text, sizeof in->text);
        char why[300];
        en_model *narrowed = NULL;
        if (sc_schedule_parse(in->text, in->m->cfg.layers, &in->s, &diag) != 0) {
            fprintf(stderr, "searchctl classify: schedule from searchd: %s\n", diag.msg);
            rc = 1;
        } else if (sdc_apply_width(r.result, in->m, &narrowed, why, sizeof why) != 0) {
            fprintf(stderr, "searchctl classify: schedule from searchd: %s\n", why);
            rc = 1;
        } else {
            en_model_free(in->narrowed); // the old network goes; the context runs the new one
            in->narrowed = narrowed;
            en_ctx_set_model(in->ctx, narrowed ? narrowed : in->m);
            en_ctx_set_precision(in->ctx, in->s.prec);
        }
        if (rc == 0 && !a->json) {
            fprintf(stderr, "schedule %s (FLOPs %.1f%%, drop bound %.2f%%)\n", in->text,
                    100 * num(r.result, "flops_ratio"), 100 * num(r.result, "drop_upper"));
        }
    }
    sdc_reply_free(&r);
    return rc;
}

static int classify_one(const ctl_args *a, infer *in, const char *text) {
    en_diag diag;
    int n;
    float logits[EN_MAX_LABELS];
    const en_config *cfg = &in->m->cfg;
    int rc = en_tokenize(in->m->tok, text, NULL, cfg->max_pos, in->ids, in->types, &n, &diag);
    if (rc == 0)
        rc = en_forward(in->ctx, in->ids, in->types, n, in->s.metric, in->s.ratios, logits, NULL,
                        NULL);
    if (rc) {
        fprintf(stderr, "searchctl classify: '%s': %s\n", text, en_strerror(rc));
        return 1;
    }
    json_t *o = cli_prediction(cfg, text, NULL, logits, n, &in->s, in->text, a->json);
    if (o) cli_json_line(o); // one object a line, as texts come
    fflush(stdout);
    return 0;
}

/* Takes every queued or readable notification; 1 when the frontier of our model changed. */
static int updated(sdc_client *c, int timeout_ms) {
    int changed = 0;
    for (;;) {
        sdc_note n;
        if (sdc_next_notification(c, timeout_ms, &n, NULL) != 0) return changed;
        changed |= strcmp(n.method, "schedule.updated") == 0;
        sdc_note_free(&n);
        timeout_ms = 0;
    }
}

static int do_classify(sdc_client *c, const ctl_args *a, const char *model, int argc, char **argv) {
    sdc_arg args[6] = {SDC_ARG_STR("model", model)};
    int nb = budget_args(a, args + 1);
    if (nb == (a->minimize >= 0 ? 1 : 0))
        args[1 + nb++] = SDC_ARG_NUM("max_drop", SC_DEFAULT_MAX_DROP); // the usual promise
    // Where are the weights? searchd knows the path it registered.
    sdc_arg margs[1] = {SDC_ARG_STR("model", model)};
    sdc_reply r;
    if (call(c, a, "model.list", NULL, 0, &r)) {
        sdc_reply_free(&r);
        return 1;
    }
    char path[1100] = "", id[32];
    for (uint32_t i = 0; i < r.result->via.array.size; i++) {
        const msgpack_object *e = &r.result->via.array.ptr[i];
        char name[128];
        if (strcmp(str(e, "model", id, sizeof id), model) == 0 ||
            strcmp(str(e, "name", name, sizeof name), model) == 0)
            str(e, "path", path, sizeof path);
    }
    sdc_reply_free(&r);
    if (!path[0]) {
        fprintf(stderr, "searchctl classify: searchd has no model '%s'\n", model);
        return 1;
    }
    infer in = {0};
    int rc = cli_load_model(path, &in.m);
    if (rc == 0) {
        in.ids = malloc(sizeof(int32_t) * (size_t)in.m->cfg.max_pos);
        in.types = malloc(sizeof(int32_t) * (size_t)in.m->cfg.max_pos);
        if (!in.ids || !in.types || en_ctx_new(in.m, in.m->cfg.max_pos, &in.ctx) != 0) {
            fputs("searchctl classify: out of memory\n", stderr);
            rc = 1;
        }
    }
    if (rc == 0) rc = call(c, a, "subscribe", margs, 1, &r);
    sdc_reply_free(&r);
    if (rc == 0) rc = fetch_schedule(c, a, args, 1 + nb, &in);
    int first = a->model ? a->rest : a->rest + 1; // the model may be the first positional
    if (rc == 0 && first < argc) {
        // Texts on the command line; with --watch, classify them again under each new schedule.
        for (int round = 0; rc == 0; round++) {
            for (int i = first; i < argc && rc == 0; i++)
                rc = classify_one(a, &in, argv[i]);
            if (!a->watch || (a->count && round >= a->count)) break;
            while (rc == 0 && !updated(c, -1))
                ;
            if (rc == 0) rc = fetch_schedule(c, a, args, 1 + nb, &in);
        }
    } else if (rc == 0) {
        // One text per line of stdin; a new schedule is picked up between lines.
        char line[8192];
        while (rc == 0 && fgets(line, sizeof line, stdin)) {
            line[strcspn(line, "\r\n")] = '\0';
            if (updated(c, 0)) rc = fetch_schedule(c, a, args, 1 + nb, &in);
            if (rc == 0 && line[0]) rc = classify_one(a, &in, line);
        }
    }
    en_ctx_free(in.ctx);
    free(in.ids);
    free(in.types);
    en_model_free(in.narrowed);
    en_model_free(in.m);
    return rc;
}

/* The job number of `status JOB` / `cancel JOB`: one argument, decimal digits only, at most
 * 2^53 (the largest integer a msgpack double carries exactly): 0, or 2 with a message. */
static int parse_job(const char *name, int argc, char **argv, int rest, double *job) {
    if (rest >= argc) {
        fprintf(stderr, "searchctl %s: give the job number\n", name);
        return 2;
    }
    if (argc - rest > 1) {
        fprintf(stderr, "searchctl %s: takes one job number; unexpected argument '%.40s'\n", name,
                argv[rest + 1]);
        return 2;
    }
    const char *s = argv[rest];
    size_t n = strspn(s, "0123456789");
    errno = 0;
    unsigned long long v = n > 0 && s[n] == '\0' ? strtoull(s, NULL, 10) : 0;
    if (v == 0 || errno || v > (1ull << 53)) {
        fprintf(stderr,
                "searchctl %s: '%.40s' is not a job number (a whole number from 1 to "
                "9007199254740992)\n",
                name, s);
        return 2;
    }
    *job = (double)v;
    return 0;
}

/* ---- the handlers: each checks its arguments, connects, calls, closes ---- */

typedef int (*with_fn)(sdc_client *c, ctl_args *a, const char *model, int argc, char **argv);

/* Runs `fn` connected to searchd; with `model_needed`, after finding the model (--model or the
 * first positional argument) before connecting. */
static int with_client(ctl_args *a, int argc, char **argv, int model_needed, with_fn fn) {
    const char *model = a->model;
    int rc = model_needed ? need_model(a, argc, argv, &model) : 0;
    sdc_client *c = NULL;
    if (rc || (rc = connect_to(a, &c)) != 0) return rc;
    rc = fn(c, a, model, argc, argv);
    sdc_close(c);
    return rc;
}

static int run_ping(sdc_client *c, ctl_args *a, const char *model, int argc, char **argv) {
    (void)model, (void)argc, (void)argv;
    return simple(c, a, "ping", NULL, 0);
}
static int run_info(sdc_client *c, ctl_args *a, const char *model, int argc, char **argv) {
    (void)model, (void)argc, (void)argv;
    return do_info(c, a, 0);
}
static int run_models(sdc_client *c, ctl_args *a, const char *model, int argc, char **argv) {
    (void)model, (void)argc, (void)argv;
    return do_info(c, a, 1);
}
static int run_add(sdc_client *c, ctl_args *a, const char *model, int argc, char **argv) {
    (void)model;
    return do_add(c, a, argc, argv);
}
static int run_remove(sdc_client *c, ctl_args *a, const char *model, int argc, char **argv) {
    (void)argc, (void)argv;
    sdc_arg args[1] = {SDC_ARG_STR("model", model)};
    return simple(c, a, "model.remove", args, 1);
}
static int run_tune(sdc_client *c, ctl_args *a, const char *model, int argc, char **argv) {
    (void)argc, (void)argv;
    return do_tune(c, a, model);
}
static int run_get(sdc_client *c, ctl_args *a, const char *model, int argc, char **argv) {
    (void)argc, (void)argv;
    return do_get(c, a, model);
}
static int run_profile(sdc_client *c, ctl_args *a, const char *model, int argc, char **argv) {
    (void)argc, (void)argv;
    sdc_arg args[1] = {SDC_ARG_STR("model", model)};
    return simple(c, a, "profile", args, 1);
}
static int run_frontier(sdc_client *c, ctl_args *a, const char *model, int argc, char **argv) {
    (void)argc, (void)argv;
    return do_frontier(c, a, model);
}
static int run_classify(sdc_client *c, ctl_args *a, const char *model, int argc, char **argv) {
    return do_classify(c, a, model, argc, argv);
}
static int run_watch(sdc_client *c, ctl_args *a, const char *model, int argc, char **argv) {
    (void)model, (void)argc, (void)argv;
    return do_watch(c, a);
}
static int run_retune(sdc_client *c, ctl_args *a, const char *model, int argc, char **argv) {
    (void)model, (void)argc, (void)argv;
    sdc_arg args[2];
    int n = 0;
    if (a->model) args[n++] = SDC_ARG_STR("model", a->model);
    if (a->force) args[n++] = SDC_ARG_BOOL("force", 1);
    a->timeout_ms = a->timeout_ms > 600000 ? a->timeout_ms : 600000; // a profile takes a while
    return simple(c, a, "retune", args, n);
}

/* status JOB / cancel JOB: the job number is checked before connecting. */
static int job_call(ctl_args *a, int argc, char **argv, const char *method) {
    double job = 0;
    int rc = parse_job(a->command->name, argc, argv, a->rest, &job);
    sdc_client *c = NULL;
    if (rc || (rc = connect_to(a, &c)) != 0) return rc;
    sdc_arg args[1] = {SDC_ARG_NUM("job", job)};
    rc = simple(c, a, method, args, 1);
    sdc_close(c);
    return rc;
}

int cmd_ping(ctl_args *a, int argc, char **argv) {
    return with_client(a, argc, argv, 0, run_ping);
}
int cmd_info(ctl_args *a, int argc, char **argv) {
    return with_client(a, argc, argv, 0, run_info);
}
int cmd_models(ctl_args *a, int argc, char **argv) {
    return with_client(a, argc, argv, 0, run_models);
}
int cmd_add(ctl_args *a, int argc, char **argv) {
    return with_client(a, argc, argv, 0, run_add);
}
int cmd_remove(ctl_args *a, int argc, char **argv) {
    return with_client(a, argc, argv, 1, run_remove);
}
int cmd_tune_daemon(ctl_args *a, int argc, char **argv) {
    return with_client(a, argc, argv, 1, run_tune);
}
int cmd_status(ctl_args *a, int argc, char **argv) {
    return job_call(a, argc, argv, "job.status");
}
int cmd_cancel(ctl_args *a, int argc, char **argv) {
    return job_call(a, argc, argv, "job.cancel");
}
int cmd_get(ctl_args *a, int argc, char **argv) {
    return with_client(a, argc, argv, 1, run_get);
}
int cmd_frontier(ctl_args *a, int argc, char **argv) {
    return with_client(a, argc, argv, 1, run_frontier);
}
int cmd_watch(ctl_args *a, int argc, char **argv) {
    return with_client(a, argc, argv, 0, run_watch);
}
int cmd_retune(ctl_args *a, int argc, char **argv) {
    return with_client(a, argc, argv, 0, run_retune);
}
int cmd_profile(ctl_args *a, int argc, char **argv) {
    return with_client(a, argc, argv, 1, run_profile);
}
int cmd_classify_daemon(ctl_args *a, int argc, char **argv) {
    return with_client(a, argc, argv, 1, run_classify);
}
