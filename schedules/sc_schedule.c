#include "sc_schedule.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/en_flops.h"
#include "engine/en_hash.h"
#include "sc_error.h"
#include "sc_width.h"

static const char *skip_space(const char *p);
static int parse_list(const char *text, const char *what, const char *p, const char *end,
                      int lo_open, double *out, int *count, en_diag *diag);
static int format_list(const char *prefix, const double *cut, int n, char *buf, size_t len,
                       size_t *used);
static int parse_precision(const char *text, const char *p, const char *end, int layers,
                           en_precision *out, en_diag *diag);
static int format_precision(const sc_schedule *s, char *buf, size_t len, size_t *used);

int sc_schedule_parse(const char *text, int layers, sc_schedule *out, en_diag *diag) {
    if (!text) return en_fail(diag, EN_ESCHEDULE, "no schedule given");
    const char *p = skip_space(text);
    const char *end = strchr(p, ';');
    if (!end) end = p + strlen(p);
    const char *colon = memchr(p, ':', (size_t)(end - p));
    en_metric metric = EN_METRIC_ATTN;
    if (colon) {
        char name[32];
        size_t len = (size_t)(colon - p);
        while (len > 0 && (p[len - 1] == ' ' || p[len - 1] == '\t'))
            len--;
        char names[64];
        if (len == 0 || len >= sizeof name)
            return en_fail(diag, EN_ESCHEDULE, "schedule '%s': expected METRIC:R,R,... (metric %s)",
                           text, en_metric_list(names, sizeof names));
        memcpy(name, p, len);
        name[len] = '\0';
        if (en_metric_parse(name, &metric) != 0)
            return en_fail(diag, EN_ESCHEDULE, "schedule '%s': unknown metric '%s' (use %s)", text,
                           name, en_metric_list(names, sizeof names));
        p = colon + 1;
    }
    memset(out, 0, sizeof *out);
    out->metric = metric;
    int count = 0, rc = parse_list(text, "ratio", p, end, 1, out->ratios, &count, diag);
    if (rc) return rc;
    for (int l = 1; l < count; l++)
        if (out->ratios[l] > out->ratios[l - 1])
            return en_fail(diag, EN_ESCHEDULE,
                           "schedule '%s': layer %d's ratio (%g) is above layer %d's (%g); ratios "
                           "must not increase from layer to layer (layers count from 1)",
                           text, l + 1, out->ratios[l], l, out->ratios[l - 1]);
    if (layers > 0 && count != layers)
        return en_fail(diag, EN_ESCHEDULE, "schedule has %d ratios, the model has %d layers", count,
                       layers);
    out->layers = count;
    int seen_heads = 0, seen_ffn = 0, seen_prec = 0;
    while (*end == ';') { // the width and precision parts
        p = skip_space(end + 1);
        end = strchr(p, ';');
        if (!end) end = p + strlen(p);
        int heads = strncmp(p, "heads:", 6) == 0, ffn = strncmp(p, "ffn:", 4) == 0;
        int prec =
            strncmp(p, "prec:", 5) == 0 || strncmp(p, "int8", 4) == 0 || strncmp(p, "f32", 3) == 0;
        if ((!heads && !ffn && !prec) || (heads && seen_heads++) || (ffn && seen_ffn++) ||
            (prec && seen_prec++))
            return en_fail(diag, EN_ESCHEDULE,
                           "schedule '%s': after ';' expected heads:F,F,..., ffn:F,F,..., int8 "
                           "or prec:P,P,... (each once)",
                           text);
        if (prec) {
            if ((rc = parse_precision(text, p, end, count, out->prec, diag)) != 0) return rc;
            continue;
        }
        double kept[EN_MAX_LAYERS];
        int n = 0;
        rc = parse_list(text, heads ? "heads fraction" : "ffn fraction", p + (heads ? 6 : 4), end,
                        heads, kept, &n, diag);
        if (rc) return rc;
        if (n != count)
            return en_fail(diag, EN_ESCHEDULE, "schedule '%s': %s has %d entries for %d layers",
                           text, heads ? "heads" : "ffn", n, count);
        for (int l = 0; l < n; l++)
            (heads ? out->heads_cut : out->ffn_cut)[l] = round((1 - kept[l]) * 10000.0) / 10000.0;
    }
    return 0;
}

int sc_schedule_format(const sc_schedule *s, char *buf, size_t len) {
    const char *name = en_metric_name(s->metric);
    size_t used = 0;
    int w = snprintf(buf, len, "%s:", name ? name : "?");
    if (w < 0 || (size_t)w >= len) return -ENOSPC;
    used = (size_t)w;
    for (int l = 0; l < s->layers; l++) {
        char num[32];
        snprintf(num, sizeof num, "%.4f", s->ratios[l]);
        // Trailing zeros (and a bare point) go: 1.0000 -> 1, 0.3500 -> 0.35.
        char *end = num + strlen(num);
        while (end > num && end[-1] == '0')
            *--end = '\0';
        if (end > num && end[-1] == '.') *--end = '\0';
        w = snprintf(buf + used, len - used, "%s%s", l ? "," : "", num);
        if (w < 0 || (size_t)w >= len - used) return -ENOSPC;
        used += (size_t)w;
    }
    if (format_list(";heads:", s->heads_cut, s->layers, buf, len, &used) < 0 ||
        format_list(";ffn:", s->ffn_cut, s->layers, buf, len, &used) < 0 ||
        format_precision(s, buf, len, &used) < 0)
        return -ENOSPC;
    return (int)used;
}

const char *sc_schedule_precision_name(const sc_schedule *s) {
    for (int l = 1; l < s->layers; l++)
        if (s->prec[l] != s->prec[0]) return "mixed";
    return en_precision_name(s->prec[0]);
}

int sc_schedule_has_precision(const sc_schedule *s) {
    for (int l = 0; l < s->layers; l++)
        if (s->prec[l] != EN_PREC_F32) return 1;
    return 0;
}

int sc_schedule_has_width(const sc_schedule *s) {
    for (int l = 0; l < s->layers; l++)
        if (s->heads_cut[l] > 0 || s->ffn_cut[l] > 0) return 1;
    return 0;
}

int sc_schedule_heads(const sc_schedule *s, int l, int heads) {
    int g = (int)lround((1 - s->heads_cut[l]) * heads);
    return g < 1 ? 1 : g > heads ? heads : g;
}

int sc_schedule_ffn_level(const sc_schedule *s, int l, int levels) {
    int v = (int)lround((1 - s->ffn_cut[l]) * levels);
    return v < 0 ? 0 : v > levels ? levels : v;
}

double sc_schedule_flops(const en_config *cfg, const sc_schedule *s, int n0) {
    return sc_schedule_flops_weighted(cfg, s, n0, 1.0);
}

double sc_schedule_flops_weighted(const en_config *cfg, const sc_schedule *s, int n0,
                                  double int8_weight) {
    double total = en_flops_head(cfg);
    int n = n0;
    for (int l = 0; l < cfg->layers; l++) {
        int k = en_keep_count(s->ratios[l], n0, n);
        int m = sc_width_neurons(cfg->ffn, sc_schedule_ffn_level(s, l, SC_WIDTH_LEVELS));
        double f = en_flops_layer_width(cfg, n, k, sc_schedule_heads(s, l, cfg->heads), m);
        total += s->prec[l] == EN_PREC_INT8 ? int8_weight * f : f;
        n = k;
    }
    return total;
}

uint64_t sc_schedule_hash(const sc_schedule *s) {
    char buf[SC_SCHEDULE_TEXT_MAX];
    int n = sc_schedule_format(s, buf, sizeof buf);
    return en_fnv1a(EN_FNV1A_BASIS, buf, n > 0 ? (size_t)n : 0);
}

void sc_schedule_full(sc_schedule *s, en_metric metric, int layers) {
    memset(s, 0, sizeof *s);
    s->metric = metric;
    s->layers = layers;
    for (int l = 0; l < layers; l++)
        s->ratios[l] = 1.0;
}

static const char *skip_space(const char *p) {
    while (*p == ' ' || *p == '\t')
        p++;
    return p;
}

/* A comma list of numbers in [0, 1] (in (0, 1] with lo_open) from p up to end into out,
 * rounded to 4 decimals; `what` names an entry in messages. */
static int parse_list(const char *text, const char *what, const char *p, const char *end,
                      int lo_open, double *out, int *count, en_diag *diag) {
    int n = 0;
    for (;;) {
        p = skip_space(p);
        if (p >= end || *p == ',')
            return en_fail(diag, EN_ESCHEDULE, "schedule '%s': layer %d's %s is missing", text,
                           n + 1, what);
        if (n == EN_MAX_LAYERS)
            return en_fail(diag, EN_ESCHEDULE, "schedule '%s': more than %d %ss", text,
                           EN_MAX_LAYERS, what);
        char *stop;
        errno = 0;
        double r = strtod(p, &stop);
        if (stop == p || stop > end || errno == ERANGE)
            return en_fail(diag, EN_ESCHEDULE, "schedule '%s': layer %d's %s is not a number", text,
                           n + 1, what);
        // Rounded to the canonical form's 4 decimals so parse(format(s)) == s.
        r = round(r * 10000.0) / 10000.0;
        if (!((lo_open ? r > 0.0 : r >= 0.0) && r <= 1.0))
            return en_fail(diag, EN_ESCHEDULE,
                           "schedule '%s': layer %d's %s (%g) is outside %s0, 1] (layers count "
                           "from 1)",
                           text, n + 1, what, r, lo_open ? "(" : "[");
        out[n++] = r;
        p = skip_space(stop);
        if (p < end && *p == ',') {
            p++;
            continue;
        }
        if (p >= end) break;
        return en_fail(diag, EN_ESCHEDULE, "schedule '%s': unexpected '%c' after layer %d's %s",
                       text, *p, n, what);
    }
    *count = n;
    return 0;
}

/* Appends prefix and the kept fractions 1 - cut[l] unless every cut[l] is 0. */
static int format_list(const char *prefix, const double *cut, int n, char *buf, size_t len,
                       size_t *used) {
    int any = 0;
    for (int l = 0; l < n; l++)
        any |= cut[l] > 0;
    if (!any) return 0;
    int w = snprintf(buf + *used, len - *used, "%s", prefix);
    if (w < 0 || (size_t)w >= len - *used) return -ENOSPC;
    *used += (size_t)w;
    for (int l = 0; l < n; l++) {
        char num[32];
        snprintf(num, sizeof num, "%.4f", 1 - cut[l]);
        char *end = num + strlen(num);
        while (end > num && end[-1] == '0')
            *--end = '\0';
        if (end > num && end[-1] == '.') *--end = '\0';
        w = snprintf(buf + *used, len - *used, "%s%s", l ? "," : "", num);
        if (w < 0 || (size_t)w >= len - *used) return -ENOSPC;
        *used += (size_t)w;
    }
    return 0;
}

/* `int8` / `f32` (every layer) or `prec:P,P,...` (one per layer) from p up to end. */
static int parse_precision(const char *text, const char *p, const char *end, int layers,
                           en_precision *out, en_diag *diag) {
    int per_layer = strncmp(p, "prec:", 5) == 0, n = 0;
    if (per_layer) p += 5;
    while (p < end) {
        size_t len = strcspn(p, ",;");
        if (p + len > end) len = (size_t)(end - p);
        char name[16];
        snprintf(name, sizeof name, "%.*s", len < sizeof name ? (int)len : 0, p);
        char *e = name + strlen(name);
        while (e > name && (e[-1] == ' ' || e[-1] == '\t'))
            *--e = '\0';
        en_precision v;
        if (n >= layers || en_precision_parse(name, &v) != 0)
            return en_fail(diag, EN_ESCHEDULE,
                           "schedule '%s': precision %d is not f32 or int8, or there are more "
                           "than the %d layers",
                           text, n + 1, layers);
        if (!per_layer) { // one name for every layer
            for (int l = 0; l < layers; l++)
                out[l] = v;
            return len == (size_t)(end - p) ? 0
                                            : en_fail(diag, EN_ESCHEDULE,
                                                      "schedule '%s': after ';%s' expected ';' or "
                                                      "the end",
                                                      text, name);
        }
        out[n++] = v;
        p += len;
        if (p < end && *p == ',') p = skip_space(p + 1);
    }
    if (n != layers)
        return en_fail(diag, EN_ESCHEDULE, "schedule '%s': prec has %d entries for %d layers", text,
                       n, layers);
    return 0;
}

/* Appends ";int8" when every layer is INT8, ";prec:..." when they differ, nothing for f32. */
static int format_precision(const sc_schedule *s, char *buf, size_t len, size_t *used) {
    if (!sc_schedule_has_precision(s)) return 0;
    int same = 1;
    for (int l = 1; l < s->layers; l++)
        same &= s->prec[l] == s->prec[0];
    int w =
        snprintf(buf + *used, len - *used, ";%s", same ? en_precision_name(s->prec[0]) : "prec:");
    if (w < 0 || (size_t)w >= len - *used) return -ENOSPC;
    *used += (size_t)w;
    for (int l = 0; !same && l < s->layers; l++) {
        w = snprintf(buf + *used, len - *used, "%s%s", l ? "," : "", en_precision_name(s->prec[l]));
        if (w < 0 || (size_t)w >= len - *used) return -ENOSPC;
        *used += (size_t)w;
    }
    return 0;
}
