#include "client/cli_util.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static int g_drawn; // a bar is on the terminal's current line

int cli_load_model(const char *dir, en_model **m) {
    en_diag diag = {{0}};
    int rc = en_model_load(dir, m, &diag);
    if (rc != 0) {
        fprintf(stderr, "searchctl: %s\n", diag.msg[0] ? diag.msg : en_strerror(rc));
        return 1;
    }
    return 0;
}

int cli_load_data(const char *path, const en_model *m, en_dataset **d) {
    en_diag diag = {{0}};
    int rc = en_dataset_load(path, m, d, &diag);
    if (rc != 0) {
        fprintf(stderr, "searchctl: %s\n", diag.msg[0] ? diag.msg : en_strerror(rc));
        return 1;
    }
    return 0;
}

int cli_parse_share(const char *text, double *out) {
    char *end;
    double v = strtod(text, &end);
    if (end == text) return -1;
    if (*end == '%') {
        v /= 100;
        end++;
    }
    if (*end != '\0' || !(v >= 0)) return -1;
    *out = v;
    return 0;
}

void cli_progress(const char *label, int done, int total, const char *note) {
    if (!isatty(STDERR_FILENO)) return;
    enum { WIDTH = 30 };
    int fill = total > 0 ? (int)((double)done / total * WIDTH) : 0;
    if (fill > WIDTH) fill = WIDTH;
    char bar[WIDTH + 1];
    memset(bar, '#', (size_t)fill);
    memset(bar + fill, '.', (size_t)(WIDTH - fill));
    bar[WIDTH] = '\0';
    fprintf(stderr, "\r%s [%s] %d/%d %s\033[K", label, bar, done, total, note ? note : "");
    fflush(stderr);
    g_drawn = 1;
}

void cli_progress_end(void) {
    if (g_drawn) fputc('\n', stderr);
    g_drawn = 0;
}
