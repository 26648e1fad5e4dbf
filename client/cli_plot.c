/* The frontier as CSV and SVG (cli_plot.h). */
#include "client/cli_plot.h"

#include <errno.h>
#include <math.h>
#include <string.h>

void cli_plot_csv(FILE *f, const cli_point *p, int n) {
    fputs("schedule,kind,chosen,flops_ratio,latency_ms,accuracy,drop,drop_upper\n", f);
    for (int i = 0; i < n; i++)
        fprintf(f, "%s,%s,%d,%.6f,%.6f,%.6f,%.6f,%.6f\n", p[i].schedule,
                p[i].family ? "family" : "frontier", p[i].chosen, p[i].flops_ratio, p[i].latency_ms,
                p[i].accuracy, p[i].drop, p[i].drop_upper);
}

enum { W = 420, H = 320, ML = 60, MR = 15, MT = 40, MB = 45 }; // one panel, margins

/* One panel at x offset `ox`: drop (%) with its bound against `x` (0: latency, 1: FLOPs). */
static void panel(FILE *f, int ox, const cli_point *p, int n, int xk, double ylo, double yhi) {
    double xlo = INFINITY, xhi = -INFINITY;
    for (int i = 0; i < n; i++) {
        double x = xk ? 100 * p[i].flops_ratio : p[i].latency_ms;
        xlo = fmin(xlo, x);
        xhi = fmax(xhi, x);
    }
    if (!(xhi > xlo)) xhi = xlo + 1;
    double pad = (xhi - xlo) * 0.05;
    xlo -= pad;
    xhi += pad;
#define SX(v) (ox + ML + ((v)-xlo) / (xhi - xlo) * (W - ML - MR))
#define SY(v) (MT + (yhi - (v)) / (yhi - ylo) * (H - MT - MB))
    fprintf(f, "<rect x='%d' y='%d' width='%d' height='%d' fill='none' stroke='#888'/>\n", ox + ML,
            MT, W - ML - MR, H - MT - MB);
    for (int t = 0; t <= 4; t++) { // ticks
        double xv = xlo + (xhi - xlo) * t / 4, yv = ylo + (yhi - ylo) * t / 4;
        fprintf(f, "<text x='%.1f' y='%d' font-size='10' text-anchor='middle'>%.3g</text>\n",
                SX(xv), H - MB + 14, xv);
        fprintf(f, "<text x='%d' y='%.1f' font-size='10' text-anchor='end'>%.2g</text>\n",
                ox + ML - 4, SY(yv) + 3, yv);
    }
    fprintf(f, "<text x='%d' y='%d' font-size='12' text-anchor='middle'>%s</text>\n",
            ox + ML + (W - ML - MR) / 2, H - 8,
            xk ? "FLOPs (% of unpruned)" : "predicted latency (ms per sequence)");
    fprintf(f,
            "<text x='%d' y='%d' font-size='12' transform='rotate(-90 %d %d)' "
            "text-anchor='middle'>accuracy drop (%%), bar: 95%% bound</text>\n",
            ox + 14, MT + (H - MT - MB) / 2, ox + 14, MT + (H - MT - MB) / 2);
    if (ylo < 0 && yhi > 0)
        fprintf(f, "<line x1='%d' x2='%d' y1='%.1f' y2='%.1f' stroke='#ccc'/>\n", ox + ML,
                ox + W - MR, SY(0), SY(0));
    for (int i = 0; i < n; i++) {
        double x = SX(xk ? 100 * p[i].flops_ratio : p[i].latency_ms);
        double y = SY(100 * p[i].drop), yu = SY(100 * p[i].drop_upper);
        const char *color = p[i].family ? "#999" : "#1f5fbf";
        fprintf(f, "<line x1='%.1f' x2='%.1f' y1='%.1f' y2='%.1f' stroke='%s'/>\n", x, x, y, yu,
                color);
        if (p[i].family)
            fprintf(f,
                    "<rect class='family' x='%.1f' y='%.1f' width='6' height='6' fill='%s'>"
                    "<title>%s</title></rect>\n",
                    x - 3, y - 3, color, p[i].schedule);
        else
            fprintf(f,
                    "<circle class='frontier' cx='%.1f' cy='%.1f' r='3.5' fill='%s'>"
                    "<title>%s</title></circle>\n",
                    x, y, color, p[i].schedule);
        if (p[i].chosen)
            fprintf(f,
                    "<circle class='chosen' cx='%.1f' cy='%.1f' r='8' fill='none' "
                    "stroke='#d62728' stroke-width='2'/>\n",
                    x, y);
    }
#undef SX
#undef SY
}

int cli_plot_svg(const char *path, const cli_point *p, int n, const char *title) {
    FILE *f = fopen(path, "w");
    if (!f) return -errno;
    double ylo = 0, yhi = 0;
    for (int i = 0; i < n; i++) {
        ylo = fmin(ylo, 100 * p[i].drop);
        yhi = fmax(yhi, 100 * fmax(p[i].drop, p[i].drop_upper));
    }
    if (!(yhi > ylo)) yhi = ylo + 1;
    double pad = (yhi - ylo) * 0.05;
    ylo -= pad;
    yhi += pad;
    fprintf(f,
            "<svg xmlns='http://www.w3.org/2000/svg' width='%d' height='%d' "
            "font-family='sans-serif'>\n<rect width='100%%' height='100%%' fill='white'/>\n",
            2 * W, H);
    fprintf(f, "<text x='%d' y='18' font-size='14' text-anchor='middle'>", W);
    for (const char *c = title; c && *c; c++) // escaped: a schedule or a path is no markup
        fputs(*c == '<' ? "&lt;" : *c == '&' ? "&amp;" : *c == '>' ? "&gt;" : (char[2]){*c, 0}, f);
    fputs("</text>\n<text x='15' y='34' font-size='10'>circles: searched frontier; squares: "
          "simple families; red ring: chosen</text>\n",
          f);
    panel(f, 0, p, n, 0, ylo, yhi);
    panel(f, W, p, n, 1, ylo, yhi);
    fputs("</svg>\n", f);
    int rc = ferror(f) ? -EIO : 0;
    if (fclose(f) != 0 && rc == 0) rc = -errno;
    return rc;
}
