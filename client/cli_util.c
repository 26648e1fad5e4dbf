#include "client/cli_util.h"

#include "client/offline_args.h"
#include "client/sdc.h"
#include "engine/en_flops.h"
#include "engine/en_layout.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

static int g_drawn; // a bar is on the terminal's current line
static int g_len;   // its length, to blank out on terminals without escape codes

int cli_load_model(const char *dir, en_model **m) {
    en_diag diag = {{0}};
    int rc = en_checkpoint_check(dir, &diag); // what the folder holds, first
    if (rc == 0) rc = en_model_load(dir, m, &diag);
    if (rc != 0) {
        fprintf(stderr, "searchctl: %s\n", diag.msg[0] ? diag.msg : en_strerror(rc));
        return 1;
    }
    return 0;
}

int cli_load_data(const char *path, const en_model *m, const char *text, const char *label,
                  en_dataset **d) {
    en_diag diag = {{0}};
    char a[256] = "";
    en_dataset_opts o = {.label_column = label};
    if (text) { // "A" or "A,B"
        snprintf(a, sizeof a, "%s", text);
        char *comma = strchr(a, ',');
        if (comma) *comma = '\0';
        o.text_column = a;
        o.pair_column = comma ? comma + 1 : NULL;
    }
    int rc = en_dataset_load_opts(path, m, &o, d, &diag);
    if (rc != 0) {
        fprintf(stderr, "searchctl: %s\n", diag.msg[0] ? diag.msg : en_strerror(rc));
        return 1;
    }
    return 0;
}

json_t *cli_prediction(const en_config *cfg, const char *text, const char *pair,
                       const float *logits, int tokens, const sc_schedule *s, const char *schedule,
                       int json) {
    double prob[EN_MAX_LABELS];
    int best = softmax_argmax(logits, cfg->num_labels, prob);
    double ratio = sc_schedule_flops(cfg, s, tokens) / en_flops_sequence(cfg, tokens, NULL);
    if (json) {
        json_t *probs = json_object();
        for (int k = 0; k < cfg->num_labels; k++)
            json_object_set_new(probs, cfg->labels[k], json_real(prob[k]));
        json_t *o = json_pack("{s:s, s:s, s:i, s:o, s:i, s:f, s:s}", "text", text, "label",
                              cfg->labels[best], "label_id", best, "probabilities", probs, "tokens",
                              tokens, "flops_ratio", ratio, "schedule", schedule);
        if (pair) json_object_set_new(o, "pair", json_string(pair));
        return o;
    }
    printf("%-10s", cfg->labels[best]);
    for (int k = 0; k < cfg->num_labels; k++)
        printf(" %s=%.4f", cfg->labels[k], prob[k]);
    printf("  (%d tokens, %.0f%% FLOPs)  %s%s%s\n", tokens, 100 * ratio, text, pair ? " | " : "",
           pair ? pair : "");
    return NULL;
}

void cli_json_line(json_t *v) {
    char *text = json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY | JSON_REAL_PRECISION(12));
    if (text) printf("%s\n", text);
    fflush(stdout);
    free(text);
    json_decref(v);
}

char *cli_speed_phrase(char *buf, size_t cap, double base_ms, double ms) {
    if (base_ms <= 0 || ms <= 0)
        snprintf(buf, cap, "%.3f ms", ms);
    else if (fabs(ms - base_ms) <= 0.005 * base_ms)
        snprintf(buf, cap, "%.3f ms -> %.3f ms (same as unpruned)", base_ms, ms);
    else if (ms < base_ms)
        snprintf(buf, cap, "%.3f ms -> %.3f ms (%.2fx faster)", base_ms, ms, base_ms / ms);
    else
        snprintf(buf, cap, "%.3f ms -> %.3f ms (%.2fx slower)", base_ms, ms, ms / base_ms);
    return buf;
}

int cli_parse_share(const char *opt, const char *text, double *out) {
    sp_diag dg = {{0}};
    if (sdc_parse_share(text, opt, strcmp(opt, "--max-drop") == 0, out, &dg) == 0) return 0;
    fprintf(stderr, "searchctl: %s\n", dg.msg);
    return -1;
}

/* Drawn on stderr only when it is a terminal: one line redrawn in place with \r, cut to the
 * terminal's width (a line that wraps cannot be redrawn: each update would start a new row). */
void cli_progress(const char *label, int done, int total, const char *note) {
    if (!isatty(STDERR_FILENO)) return;
    struct winsize ws;
    int cols = ioctl(STDERR_FILENO, TIOCGWINSZ, &ws) == 0 && ws.ws_col > 0 ? ws.ws_col : 80;
    int avail = cols - 1; // the last column would leave the cursor waiting to wrap
    char line[512];
    int len = 0, digits = snprintf(NULL, 0, "%d", total);
    // The count is padded to the width of the total, so the line keeps its layout as it grows.
    for (int width = 30; width >= 0; width -= 5) {
        char bar[32];
        int fill = total > 0 ? (int)((double)done / total * width) : 0;
        fill = fill < 0 ? 0 : fill > width ? width : fill;
        memset(bar, '#', (size_t)fill);
        memset(bar + fill, '.', (size_t)(width - fill));
        bar[width] = '\0';
        if (width > 0)
            len = snprintf(line, sizeof line, "%s [%s] %*d/%d %s", label, bar, digits, done, total,
                           note ? note : "");
        else
            len = snprintf(line, sizeof line, "%s %*d/%d %s", label, digits, done, total,
                           note ? note : "");
        if (len < 0) return;
        if (len > (int)sizeof line - 1) len = (int)sizeof line - 1;
        if (len <= avail) break;
    }
    if (len > avail) len = avail > 0 ? avail : 0; // ASCII only: cutting bytes cuts characters
    const char *term = getenv("TERM");
    if (term && strcmp(term, "dumb") == 0) { // no escape codes: blank out the old tail
        int pad = g_len > len ? g_len - len : 0;
        fprintf(stderr, "\r%.*s%*s", len, line, pad, "");
        if (pad) fprintf(stderr, "\r%.*s", len, line);
    } else {
        fprintf(stderr, "\r%.*s\033[K", len, line);
    }
    fflush(stderr);
    g_drawn = 1;
    g_len = len;
}

void cli_progress_end(void) {
    if (g_drawn) fputc('\n', stderr);
    g_drawn = 0;
    g_len = 0;
}

int cli_progress_drawn(void) {
    return g_drawn;
}
