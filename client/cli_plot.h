#pragma once
/* The frontier as a table (CSV) and as a picture (SVG): accuracy drop with its 95% upper bound
 * against latency and against FLOPs, the chosen schedule marked, the simple families beside the
 * searched frontier. Used by `searchctl frontier --csv / --svg FILE` and offline `tune --svg`. */

#include <stdio.h>

typedef struct cli_point {
    const char *schedule; // borrowed
    double flops_ratio, latency_ms, accuracy, drop, drop_upper;
    int family; // 1: a simple family's schedule (drawn apart), 0: the searched frontier
    int chosen; // 1: the schedule the budget picked
} cli_point;

/// Writes a header and one row per point to `f`.
void cli_plot_csv(FILE *f, const cli_point *p, int n);

/// Writes the picture to `path` (created or replaced). `title` is borrowed. 0, or -errno.
int cli_plot_svg(const char *path, const cli_point *p, int n, const char *title);
