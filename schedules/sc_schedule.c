#include "sc_schedule.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sc_error.h"

static const char *skip_space(const char *p);
static int parse_ratios(const char *text, const char *p, int layers, sc_schedule *out,
                        en_diag *diag);

int sc_schedule_parse(const char *text, int layers, sc_schedule *out, en_diag *diag) {
    if (!text) return en_fail(diag, EN_ESCHEDULE, "no schedule given");
    const char *p = skip_space(text);
    const char *colon = strchr(p, ':');
    en_metric metric = EN_METRIC_ATTN;
    if (colon) {
        char name[32];
        size_t len = (size_t)(colon - p);
        while (len > 0 && (p[len - 1] == ' ' || p[len - 1] == '\t'))
            len--;
        if (len == 0 || len >= sizeof name)
            return en_fail(diag, EN_ESCHEDULE,
                           "schedule '%s': expected METRIC:R,R,... (metric attn, power, cls or "
                           "context)",
                           text);
        memcpy(name, p, len);
        name[len] = '\0';
        if (en_metric_parse(name, &metric) != 0)
            return en_fail(diag, EN_ESCHEDULE,
                           "schedule '%s': unknown metric '%s' (use attn, power, cls or context)",
                           text, name);
        p = colon + 1;
    }
    memset(out, 0, sizeof *out);
    out->metric = metric;
    return parse_ratios(text, p, layers, out, diag);
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
    return (int)used;
}

uint64_t sc_schedule_hash(const sc_schedule *s) {
    char buf[16 + 8 * EN_MAX_LAYERS];
    int n = sc_schedule_format(s, buf, sizeof buf);
    uint64_t h = 14695981039346656037ull; // FNV-1a 64 offset basis
    for (int i = 0; i < n; i++) {
        h ^= (unsigned char)buf[i];
        h *= 1099511628211ull;
    }
    return h;
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

static int parse_ratios(const char *text, const char *p, int layers, sc_schedule *out,
                        en_diag *diag) {
    int count = 0;
    for (;;) {
        p = skip_space(p);
        if (*p == '\0' || *p == ',')
            return en_fail(diag, EN_ESCHEDULE, "schedule '%s': layer %d's ratio is missing (layers count from 1)", text, count + 1);
        if (count == EN_MAX_LAYERS)
            return en_fail(diag, EN_ESCHEDULE, "schedule '%s': more than %d ratios", text,
                           EN_MAX_LAYERS);
        char *end;
        errno = 0;
        double r = strtod(p, &end);
        if (end == p || errno == ERANGE)
            return en_fail(diag, EN_ESCHEDULE, "schedule '%s': layer %d's ratio is not a number",
                           text, count + 1);
        // Rounded to the canonical form's 4 decimals so parse(format(s)) == s.
        r = round(r * 10000.0) / 10000.0;
        if (!(r > 0.0 && r <= 1.0))
            return en_fail(diag, EN_ESCHEDULE, "schedule '%s': layer %d's ratio (%g) is outside (0, 1] (layers count from 1)",
                           text, count + 1, r);
        if (count > 0 && r > out->ratios[count - 1])
            return en_fail(diag, EN_ESCHEDULE,
                           "schedule '%s': layer %d's ratio (%g) is above layer %d's (%g); ratios "
                           "must not increase from layer to layer (layers count from 1)",
                           text, count + 1, r, count, out->ratios[count - 1]);
        out->ratios[count++] = r;
        p = skip_space(end);
        if (*p == ',') {
            p++;
            continue;
        }
        if (*p == '\0') break;
        return en_fail(diag, EN_ESCHEDULE, "schedule '%s': unexpected '%c' after layer %d's ratio",
                       text, *p, count);
    }
    if (layers > 0 && count != layers)
        return en_fail(diag, EN_ESCHEDULE, "schedule has %d ratios, the model has %d layers", count,
                       layers);
    out->layers = count;
    return 0;
}
