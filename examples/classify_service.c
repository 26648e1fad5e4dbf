/* The inference service of examples/classify_service.py in C: asks searchd for the fastest
 * schedule with under 1% accuracy drop, classifies each line of stdin with it in this process
 * (libsdpy, the engine's C ABI), and switches when searchd sends schedule.updated. Output: a JSON
 * line per text ({"text", "label", "probabilities", "schedule"}), a line {"event": "schedule",
 * ...} at each switch.
 *
 *   build/examples/classify_service --socket /tmp/sd.sock --model demo [--max-drop 1%] < texts
 */
#include <jansson.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "client/sdc.h"
#include "python/sdpy.h"

typedef struct service {
    sdc_client *c;
    const char *model;
    double max_drop;
    sdpy_model *m;
    char schedule[2200];
    msgpack_sbuffer record; // the record as searchd sent it: its width says which heads and
                            // neurons a schedule that narrows layers keeps
} service;

/* Fetches the schedule for the budget; prints the switch. 0 or the daemon's code. */
static int fetch(service *s, const char *reason) {
    sdc_arg args[] = {SDC_ARG_STR("model", s->model), SDC_ARG_NUM("max_drop", s->max_drop)};
    sdc_reply r;
    sp_diag dg = {{0}};
    int rc = sdc_call(s->c, "schedule.get", args, 2, 30000, &r, &dg);
    json_t *ev;
    if (rc == 0) {
        sp_get_str(r.result, "schedule", 1, s->schedule, sizeof s->schedule, NULL);
        msgpack_sbuffer_clear(&s->record);
        msgpack_packer pk;
        msgpack_packer_init(&pk, &s->record, msgpack_sbuffer_write);
        msgpack_pack_object(&pk, *r.result);
        double flops = 0, upper = 0, ms = 0;
        sp_get_num(r.result, "flops_ratio", 0, &flops, NULL);
        sp_get_num(r.result, "drop_upper", 0, &upper, NULL);
        sp_get_num(r.result, "latency_ms", 0, &ms, NULL);
        ev = json_pack("{s:s, s:s, s:s, s:f, s:f, s:f}", "event", "schedule", "reason", reason,
                       "schedule", s->schedule, "flops_ratio", flops, "drop_upper", upper,
                       "latency_ms", ms);
    } else {
        ev = json_pack("{s:s, s:s, s:i, s:s}", "event", "error", "reason", reason, "code", rc,
                       "message", dg.msg);
    }
    sdc_reply_free(&r);
    char *text = json_dumps(ev, JSON_COMPACT);
    printf("%s\n", text);
    fflush(stdout);
    free(text);
    json_decref(ev);
    return rc;
}

/* Takes the notifications already there; refetches when our model's schedules changed. */
static void updates(service *s) {
    sdc_note n;
    while (sdc_next_notification(s->c, 0, &n, NULL) == 0) {
        if (strcmp(n.method, "schedule.updated") == 0) {
            char reason[32] = "updated";
            if (n.params) sp_get_str(n.params, "reason", 0, reason, sizeof reason, NULL);
            fetch(s, reason);
        }
        sdc_note_free(&n);
    }
}

static int classify(service *s, const char *text) {
    int n = sdpy_model_num_labels(s->m), label, tokens;
    double prob[64];
    char err[600];
    const char *texts[1] = {text};
    int rc = sdpy_classify_record(s->m, s->record.data, s->record.size, 1, texts, NULL, &label,
                                  prob, &tokens, err, sizeof err);
    if (rc != 0) {
        fprintf(stderr, "classify_service: %s\n", err);
        return rc;
    }
    json_t *probs = json_object();
    for (int k = 0; k < n; k++)
        json_object_set_new(probs, sdpy_model_label(s->m, k), json_real(prob[k]));
    json_t *o =
        json_pack("{s:s, s:s, s:o, s:s}", "text", text, "label", sdpy_model_label(s->m, label),
                  "probabilities", probs, "schedule", s->schedule);
    char *line = json_dumps(o, JSON_COMPACT | JSON_REAL_PRECISION(17));
    printf("%s\n", line);
    fflush(stdout);
    free(line);
    json_decref(o);
    return 0;
}

int main(int argc, char **argv) {
    service s = {.max_drop = 0.01};
    msgpack_sbuffer_init(&s.record);
    const char *sock = NULL, *path = NULL;
    char buf[512];
    for (int i = 1; i + 1 < argc; i += 2) {
        if (strcmp(argv[i], "--socket") == 0)
            sock = argv[i + 1];
        else if (strcmp(argv[i], "--model") == 0)
            s.model = argv[i + 1];
        else if (strcmp(argv[i], "--path") == 0)
            path = argv[i + 1];
        else if (strcmp(argv[i], "--max-drop") == 0) {
            sp_diag dg;
            if (sdc_parse_share(argv[i + 1], "--max-drop", 1, &s.max_drop, &dg) != 0) {
                fprintf(stderr, "classify_service: %s\n", dg.msg);
                return 2;
            }
        } else {
            fprintf(stderr, "classify_service: unknown option %s\n", argv[i]);
            return 2;
        }
    }
    if (!s.model) {
        fputs("usage: classify_service [--socket PATH] --model NAME [--path DIR] [--max-drop 1%]\n",
              stderr);
        return 2;
    }
    sp_diag dg = {{0}};
    if (sdc_connect_unix(sock ? sock : sdc_default_socket(buf, sizeof buf), &s.c, &dg) != 0) {
        fprintf(stderr, "classify_service: %s\n", dg.msg);
        return 1;
    }
    // The folder searchd registered, unless given.
    char where[1100] = "";
    sdc_reply r;
    if (!path && sdc_call(s.c, "model.list", NULL, 0, 30000, &r, &dg) == 0) {
        for (uint32_t i = 0; i < r.result->via.array.size; i++) {
            const msgpack_object *e = &r.result->via.array.ptr[i];
            char id[64] = "", name[128] = "";
            sp_get_str(e, "model", 0, id, sizeof id, NULL);
            sp_get_str(e, "name", 0, name, sizeof name, NULL);
            if (strcmp(id, s.model) == 0 || strcmp(name, s.model) == 0)
                sp_get_str(e, "path", 0, where, sizeof where, NULL);
        }
        sdc_reply_free(&r);
        path = where[0] ? where : NULL;
    }
    char err[600];
    if (!path || sdpy_model_load(path, &s.m, err, sizeof err) != 0) {
        fprintf(stderr, "classify_service: %s\n", path ? err : "searchd has no such model");
        sdc_close(s.c);
        return 1;
    }
    // Subscribe before the first fetch, so an update between the two is not missed.
    sdc_arg sub[] = {SDC_ARG_STR("model", s.model)};
    int rc = sdc_call(s.c, "subscribe", sub, 1, 30000, &r, &dg);
    sdc_reply_free(&r);
    if (rc == 0) fetch(&s, "start");
    // Waits for a text on stdin or a notification from searchd, whichever comes first, so a
    // switch is made (and printed) as soon as searchd announces it.
    char line[8192];
    while (rc == 0) {
        struct pollfd fds[2] = {{.fd = STDIN_FILENO, .events = POLLIN},
                                {.fd = sdc_fd(s.c), .events = POLLIN}};
        if (poll(fds, 2, -1) < 0) break;
        if (fds[1].revents & (POLLHUP | POLLERR)) break; // searchd went away
        if (fds[1].revents) updates(&s);
        if (!fds[0].revents) continue;
        if (!fgets(line, sizeof line, stdin)) break;
        line[strcspn(line, "\r\n")] = '\0';
        updates(&s); // what arrived meanwhile, before this text
        if (line[0]) rc = classify(&s, line);
    }
    sdpy_model_free(s.m);
    msgpack_sbuffer_destroy(&s.record);
    sdc_close(s.c);
    return rc ? 1 : 0;
}
