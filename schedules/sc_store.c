/* Durable state files and the JSON forms kept in them.
 *
 * File layout (little-endian), 32-byte header then the payload:
 *   0  magic "searchd\n"      8 bytes
 *   8  version                u32 (SC_STORE_VERSION)
 *   12 reserved               u32, 0
 *   16 payload length         u64
 *   24 checksum               u64: FNV-1a 64 over bytes 8..23 and the payload
 * FNV-1a changes for any single changed byte (each step is a bijection of the state), which is
 * what a flipped bit on disk looks like; it is not meant to resist tampering. */
#include "sc_store.h"

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "engine/en_file.h"
#include "engine/en_hash.h"
#include "sc_error.h"
#include "sc_width.h"

#define SC_STORE_VERSION 1u
#define SC_STORE_HEADER 32
#define SC_STORE_MAX (256u << 20) // refuse to read state files over 256 MiB

static const char sc__magic[8] = {'s', 'e', 'a', 'r', 'c', 'h', 'd', '\n'};

static void put_le(uint8_t *p, uint64_t v, int bytes) {
    for (int i = 0; i < bytes; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}

static uint64_t get_le(const uint8_t *p, int bytes) {
    uint64_t v = 0;
    for (int i = 0; i < bytes; i++)
        v |= (uint64_t)p[i] << (8 * i);
    return v;
}

static uint64_t checksum(const uint8_t *hdr, const void *payload, size_t len) {
    return en_fnv1a(en_fnv1a(EN_FNV1A_BASIS, hdr + 8, 16), payload, len);
}

static int write_all(int fd, const void *buf, size_t len) {
    const uint8_t *p = buf;
    while (len > 0) {
        ssize_t n = write(fd, p, len);
        if (n < 0) {
            if (errno == EINTR) continue;
            return -errno;
        }
        p += n;
        len -= (size_t)n;
    }
    return 0;
}

static int fsync_dir_of(const char *path) {
    char dir[4096];
    const char *slash = strrchr(path, '/');
    if (!slash)
        snprintf(dir, sizeof dir, ".");
    else if (slash == path)
        snprintf(dir, sizeof dir, "/");
    else
        snprintf(dir, sizeof dir, "%.*s", (int)(slash - path), path);
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0) return -errno;
    int rc = fsync(fd) == 0 ? 0 : -errno;
    close(fd);
    return rc;
}

int sc_store_write(const char *path, const void *data, size_t len, en_diag *diag) {
    static atomic_uint counter;
    uint8_t hdr[SC_STORE_HEADER] = {0};
    memcpy(hdr, sc__magic, 8);
    put_le(hdr + 8, SC_STORE_VERSION, 4);
    put_le(hdr + 16, len, 8);
    put_le(hdr + 24, checksum(hdr, data, len), 8);

    // A name of our own beside the target, so rename() stays within one file system.
    char tmp[4096];
    int n = snprintf(tmp, sizeof tmp, "%s.tmp.%ld.%u", path, (long)getpid(),
                     atomic_fetch_add(&counter, 1));
    if (n < 0 || (size_t)n >= sizeof tmp)
        return en_fail(diag, -ENAMETOOLONG, "%s: path too long", path);
    int fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (fd < 0) {
        int rc = -errno;
        return en_fail(diag, rc, "%s: cannot create: %s", tmp, strerror(-rc));
    }
    int rc = write_all(fd, hdr, sizeof hdr);
    if (rc == 0 && len > 0) rc = write_all(fd, data, len);
    if (rc == 0 && fsync(fd) != 0) rc = -errno;
    if (close(fd) != 0 && rc == 0) rc = -errno;
    if (rc != 0) {
        unlink(tmp);
        return en_fail(diag, rc, "%s: write failed (%s); the previous version is kept", path,
                       strerror(-rc));
    }
    if (rename(tmp, path) != 0) {
        rc = -errno;
        unlink(tmp);
        return en_fail(diag, rc, "%s: rename failed: %s", path, strerror(-rc));
    }
    rc = fsync_dir_of(path);
    if (rc != 0)
        return en_fail(diag, rc, "%s: fsync of its directory failed: %s", path, strerror(-rc));
    return 0;
}

int sc_store_decode(const void *buf, size_t size, const char *name, void **data, size_t *len,
                    en_diag *diag) {
    const uint8_t *p = buf;
    *data = NULL;
    *len = 0;
    if (size < SC_STORE_HEADER) {
        // A prefix of the magic is a file cut short while being written by hand or copied.
        if (memcmp(p, sc__magic, size < 8 ? size : 8) == 0)
            return en_fail(diag, SC_ECHECKSUM, "%s: truncated: %zu bytes, the header alone is %d",
                           name, size, SC_STORE_HEADER);
        return en_fail(diag, SC_EMAGIC, "%s: not a searchd state file (%zu bytes, no magic)", name,
                       size);
    }
    if (memcmp(p, sc__magic, 8) != 0)
        return en_fail(diag, SC_EMAGIC, "%s: not a searchd state file (bad magic)", name);
    uint32_t version = (uint32_t)get_le(p + 8, 4);
    if (version != SC_STORE_VERSION)
        return en_fail(diag, SC_EVERSION,
                       "%s: state file version %u, this searchd reads version %u", name, version,
                       SC_STORE_VERSION);
    if (get_le(p + 12, 4) != 0)
        return en_fail(diag, SC_ECORRUPT, "%s: reserved header field is not zero", name);
    uint64_t plen = get_le(p + 16, 8);
    if (plen != size - SC_STORE_HEADER)
        return en_fail(diag, SC_ECHECKSUM,
                       "%s: header says %llu payload bytes, the file holds %zu: truncated or "
                       "extended",
                       name, (unsigned long long)plen, size - SC_STORE_HEADER);
    uint64_t want = get_le(p + 24, 8);
    uint64_t got = checksum(p, p + SC_STORE_HEADER, (size_t)plen);
    if (want != got)
        return en_fail(diag, SC_ECHECKSUM,
                       "%s: checksum mismatch (stored %016llx, computed %016llx)", name,
                       (unsigned long long)want, (unsigned long long)got);
    char *out = malloc((size_t)plen + 1);
    if (!out)
        return en_fail(diag, EN_ENOMEM, "%s: out of memory for %llu bytes", name,
                       (unsigned long long)plen);
    memcpy(out, p + SC_STORE_HEADER, (size_t)plen);
    out[plen] = '\0';
    *data = out;
    *len = (size_t)plen;
    return 0;
}

int sc_store_read(const char *path, void **data, size_t *len, en_diag *diag) {
    *data = NULL;
    *len = 0;
    int fd;
    uint64_t fsize;
    int rc = en_file_open(path, SC_STORE_MAX, &fd, &fsize, diag); // a FIFO must not block start
    if (rc == EN_EFORMAT || rc == EN_ERANGE) rc = SC_ECORRUPT;
    if (rc) return rc;
    size_t size = (size_t)fsize;
    uint8_t *buf = malloc(size ? size : 1);
    if (!buf) {
        close(fd);
        return en_fail(diag, EN_ENOMEM, "%s: out of memory", path);
    }
    size_t got = 0;
    while (got < size) {
        ssize_t n = read(fd, buf + got, size - got);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) break;
        got += (size_t)n;
    }
    close(fd);
    rc = sc_store_decode(buf, got, path, data, len, diag);
    free(buf);
    return rc;
}

int sc_store_set_aside(const char *path, en_diag *diag) {
    char to[4096];
    long now = (long)time(NULL);
    for (int i = 0; i < 100; i++) {
        int n = i == 0 ? snprintf(to, sizeof to, "%s.damaged-%ld", path, now)
                       : snprintf(to, sizeof to, "%s.damaged-%ld.%d", path, now, i);
        if (n < 0 || (size_t)n >= sizeof to)
            return en_fail(diag, -ENAMETOOLONG, "%s: path too long", path);
        if (access(to, F_OK) == 0) continue;
        if (rename(path, to) != 0) {
            int rc = -errno;
            return en_fail(diag, rc, "%s: cannot set aside: %s", path, strerror(-rc));
        }
        fsync_dir_of(path);
        return en_fail(diag, 0, "%s: set aside as %s", path, to);
    }
    return en_fail(diag, -EEXIST, "%s: too many damaged copies already set aside", path);
}

/* ---- JSON forms ---- */

static json_t *record_to_json(const sc_record *r) {
    char text[SC_SCHEDULE_TEXT_MAX];
    if (sc_schedule_format(&r->schedule, text, sizeof text) < 0) text[0] = '\0';
    json_t *ratios = json_array();
    for (int i = 0; i < r->schedule.layers; i++)
        json_array_append_new(ratios, json_real(r->schedule.ratios[i]));
    const char *metric = en_metric_name(r->schedule.metric);
    return json_pack("{s:s, s:s, s:o, s:f, s:f, s:f, s:f, s:f, s:f, s:f, s:f}", "schedule", text,
                     "metric", metric ? metric : "?", "ratios", ratios, "flops_ratio",
                     r->flops_ratio, "tokens_flops_ratio", r->tokens_flops_ratio, "latency_ms",
                     r->latency_ms, "accuracy", r->accuracy, "baseline_accuracy",
                     r->baseline_accuracy, "drop", r->drop, "drop_upper", r->drop_upper,
                     "search_accuracy", r->search_accuracy);
}

/* Reads number `key` of `j` into `*out`, checking it is finite and within [lo, hi]. */
static int get_num(const json_t *j, const char *where, const char *key, double lo, double hi,
                   double *out, en_diag *diag) {
    const json_t *v = json_object_get(j, key);
    if (!v) return en_fail(diag, SC_ECORRUPT, "%s: missing field '%s'", where, key);
    if (!json_is_number(v))
        return en_fail(diag, SC_ECORRUPT, "%s: field '%s' is not a number", where, key);
    double x = json_number_value(v);
    if (!isfinite(x) || x < lo || x > hi)
        return en_fail(diag, SC_ECORRUPT, "%s: field '%s' = %g is outside [%g, %g]", where, key, x,
                       lo, hi);
    *out = x;
    return 0;
}

static int get_str(const json_t *j, const char *where, const char *key, char *buf, size_t cap,
                   en_diag *diag) {
    const json_t *v = json_object_get(j, key);
    if (!v || !json_is_string(v))
        return en_fail(diag, SC_ECORRUPT, "%s: field '%s' is missing or not a string", where, key);
    if (json_string_length(v) >= cap || strlen(json_string_value(v)) != json_string_length(v))
        return en_fail(diag, SC_ECORRUPT, "%s: field '%s' is too long or holds a NUL", where, key);
    memcpy(buf, json_string_value(v), json_string_length(v) + 1);
    return 0;
}

static int record_from_json(const json_t *j, const char *where, sc_record *out, en_diag *diag) {
    memset(out, 0, sizeof *out);
    if (!json_is_object(j)) return en_fail(diag, SC_ECORRUPT, "%s: not an object", where);
    char text[SC_SCHEDULE_TEXT_MAX];
    int rc = get_str(j, where, "schedule", text, sizeof text, diag);
    if (rc) return rc;
    en_diag sub;
    rc = sc_schedule_parse(text, 0, &out->schedule, &sub);
    if (rc) return en_fail(diag, SC_ECORRUPT, "%s: schedule: %s", where, sub.msg);
    char metric[16];
    if ((rc = get_str(j, where, "metric", metric, sizeof metric, diag))) return rc;
    const char *want = en_metric_name(out->schedule.metric);
    if (!want || strcmp(metric, want) != 0)
        return en_fail(diag, SC_ECORRUPT, "%s: metric '%s' disagrees with schedule '%s'", where,
                       metric, text);
    const json_t *ratios = json_object_get(j, "ratios");
    if (!json_is_array(ratios) || (int)json_array_size(ratios) != out->schedule.layers)
        return en_fail(diag, SC_ECORRUPT, "%s: 'ratios' is not an array of %d numbers", where,
                       out->schedule.layers);
    for (int i = 0; i < out->schedule.layers; i++) {
        const json_t *v = json_array_get(ratios, (size_t)i);
        if (!json_is_number(v) || fabs(json_number_value(v) - out->schedule.ratios[i]) > 1e-6)
            return en_fail(diag, SC_ECORRUPT, "%s: ratios[%d] disagrees with schedule '%s'", where,
                           i, text);
    }
    if ((rc = get_num(j, where, "flops_ratio", 0, 2, &out->flops_ratio, diag)) ||
        (rc = get_num(j, where, "latency_ms", 0, 1e7, &out->latency_ms, diag)) ||
        (rc = get_num(j, where, "accuracy", 0, 1, &out->accuracy, diag)) ||
        (rc = get_num(j, where, "baseline_accuracy", 0, 1, &out->baseline_accuracy, diag)) ||
        (rc = get_num(j, where, "drop", -1, 1, &out->drop, diag)) ||
        (rc = get_num(j, where, "drop_upper", -1, 2, &out->drop_upper, diag)) ||
        (rc = get_num(j, where, "search_accuracy", 0, 1, &out->search_accuracy, diag)))
        return rc;
    // Saved before width: the tokens made the whole saving.
    out->tokens_flops_ratio = out->flops_ratio;
    if (json_object_get(j, "tokens_flops_ratio") &&
        (rc = get_num(j, where, "tokens_flops_ratio", 0, 2, &out->tokens_flops_ratio, diag)))
        return rc;
    if (fabs(out->baseline_accuracy - out->accuracy - out->drop) > 1e-6)
        return en_fail(diag, SC_ECORRUPT, "%s: drop %g is not baseline_accuracy - accuracy", where,
                       out->drop);
    if (out->drop_upper < out->drop - 1e-9)
        return en_fail(diag, SC_ECORRUPT, "%s: drop_upper %g is below drop %g", where,
                       out->drop_upper, out->drop);
    return 0;
}

/* A profile's arrays as flat JSON arrays of numbers. */
static json_t *ints_json(const int32_t *v, size_t n) {
    json_t *a = json_array();
    for (size_t i = 0; i < n; i++)
        json_array_append_new(a, json_integer(v[i]));
    return a;
}

static json_t *floats_json(const float *v, size_t n) {
    json_t *a = json_array();
    for (size_t i = 0; i < n; i++)
        json_array_append_new(a, json_real(v[i]));
    return a;
}

json_t *sc_width_to_json(const sc_width_profile *p) {
    size_t L = (size_t)p->layers, h = (size_t)p->heads, nf = (size_t)p->ffn;
    return json_pack(
        "{s:i, s:i, s:i, s:i, s:i, s:i, s:o, s:o, s:o, s:o}", "layers", p->layers, "heads",
        p->heads, "ffn", p->ffn, "levels", SC_WIDTH_LEVELS, "rescale", (int)p->rescale, "examples",
        p->examples, "head_order", ints_json(p->head_order, L * h), "neuron_order",
        ints_json(p->neuron_order, L * nf), "head_scale", floats_json(p->head_scale, L * h * h),
        "neuron_scale", floats_json(p->neuron_scale, L * (SC_WIDTH_LEVELS + 1) * nf));
}

/* `key` of j: an array of n numbers; orders (`of` > 0) hold each of 0..of-1 once per block of
 * `of`, scales are finite. */
static int width_array(const json_t *j, const char *key, size_t n, int of, int32_t *iv, float *fv,
                       en_diag *diag) {
    const json_t *a = json_object_get(j, key);
    if (!json_is_array(a) || json_array_size(a) != n)
        return en_fail(diag, SC_ECORRUPT, "width profile: '%s' is not an array of %zu numbers", key,
                       n);
    char *seen = of > 0 ? calloc((size_t)of, 1) : NULL;
    if (of > 0 && !seen) return en_fail(diag, EN_ENOMEM, "width profile: out of memory");
    int rc = 0;
    for (size_t i = 0; i < n && rc == 0; i++) {
        const json_t *v = json_array_get(a, i);
        double x = json_number_value(v);
        if (!json_is_number(v) || !isfinite(x)) {
            rc =
                en_fail(diag, SC_ECORRUPT, "width profile: %s[%zu] is not a finite number", key, i);
        } else if (of > 0) {
            if (i % (size_t)of == 0) memset(seen, 0, (size_t)of);
            if (x != floor(x) || x < 0 || x >= of || seen[(int)x]++)
                rc = en_fail(diag, SC_ECORRUPT,
                             "width profile: %s[%zu] = %g is not a ranking of "
                             "0..%d",
                             key, i, x, of - 1);
            else
                iv[i] = (int32_t)x;
        } else {
            fv[i] = (float)x;
        }
    }
    free(seen);
    return rc;
}

int sc_width_from_json(const json_t *j, sc_width_profile *out, en_diag *diag) {
    memset(out, 0, sizeof *out);
    if (!json_is_object(j)) return en_fail(diag, SC_ECORRUPT, "width profile: not an object");
    const char *w = "width profile";
    double L = 0, h = 0, nf = 0, levels = 0, rescale = 0, examples = 0;
    int rc;
    if ((rc = get_num(j, w, "layers", 1, EN_MAX_LAYERS, &L, diag)) ||
        (rc = get_num(j, w, "heads", 1, 4096, &h, diag)) ||
        (rc = get_num(j, w, "ffn", 0, 1 << 20, &nf, diag)) ||
        (rc = get_num(j, w, "levels", SC_WIDTH_LEVELS, SC_WIDTH_LEVELS, &levels, diag)) ||
        (rc = get_num(j, w, "rescale", 0, 3, &rescale, diag)) ||
        (rc = get_num(j, w, "examples", 0, 1e9, &examples, diag)))
        return rc;
    if (L != floor(L) || h != floor(h) || nf != floor(nf) || rescale != floor(rescale))
        return en_fail(diag, SC_ECORRUPT, "%s: layers, heads, ffn and rescale must be integers", w);
    en_config cfg = {.layers = (int)L, .heads = (int)h, .ffn = (int)nf};
    // A plain profile of that shape, then overwritten field by field.
    if (sc_width_profile_plain(&cfg, out)) return en_fail(diag, EN_ENOMEM, "%s: out of memory", w);
    out->rescale = (unsigned)rescale;
    out->examples = (int)examples;
    size_t nL = (size_t)L, nh = (size_t)h, nn = (size_t)nf;
    if ((rc = width_array(j, "head_order", nL * nh, (int)h, out->head_order, NULL, diag)) ||
        (rc = width_array(j, "neuron_order", nL * nn, (int)nf, out->neuron_order, NULL, diag)) ||
        (rc = width_array(j, "head_scale", nL * nh * nh, 0, NULL, out->head_scale, diag)) ||
        (rc = width_array(j, "neuron_scale", nL * (SC_WIDTH_LEVELS + 1) * nn, 0, NULL,
                          out->neuron_scale, diag))) {
        sc_width_profile_free(out);
        return rc;
    }
    return 0;
}

json_t *sc_frontier_to_json(const sc_frontier *f) {
    json_t *a = json_array();
    for (int i = 0; f && i < f->count; i++)
        json_array_append_new(a, record_to_json(&f->rec[i]));
    if (!f || !f->width) return a; // the form of frontiers without width
    return json_pack("{s:o, s:o}", "records", a, "width", sc_width_to_json(f->width));
}

int sc_frontier_from_json(const json_t *j, sc_frontier *out, en_diag *diag) {
    memset(out, 0, sizeof *out);
    if (json_is_object(j)) { // records, and the width profile they are narrowed with if any
        const json_t *width = json_object_get(j, "width");
        if (!width || json_is_null(width)) {
            int rc = sc_frontier_from_json(json_object_get(j, "records"), out, diag);
            for (int i = 0; rc == 0 && i < out->count; i++)
                if (sc_schedule_has_width(&out->rec[i].schedule))
                    rc = en_fail(diag, SC_ECORRUPT,
                                 "frontier record %d narrows layers but "
                                 "there is no width profile",
                                 i);
            if (rc) sc_frontier_free(out);
            return rc;
        }
        sc_width_profile *w = calloc(1, sizeof *w);
        if (!w) return en_fail(diag, EN_ENOMEM, "frontier: out of memory");
        int rc = sc_width_from_json(width, w, diag);
        if (rc == 0) rc = sc_frontier_from_json(json_object_get(j, "records"), out, diag);
        if (rc == 0 && out->count > 0 && out->rec[0].schedule.layers != w->layers)
            rc = en_fail(diag, SC_ECORRUPT,
                         "frontier: records have %d layers, the width "
                         "profile %d",
                         out->rec[0].schedule.layers, w->layers);
        if (rc) {
            sc_frontier_free(out);
            if (w->head_order) sc_width_profile_free(w);
            free(w);
            return rc;
        }
        out->width = w;
        return 0;
    }
    if (!json_is_array(j)) return en_fail(diag, SC_ECORRUPT, "frontier: not an array");
    size_t n = json_array_size(j);
    if (n > 100000) return en_fail(diag, SC_ECORRUPT, "frontier: %zu records, at most 100000", n);
    sc_record *rec = calloc(n ? n : 1, sizeof *rec);
    if (!rec) return en_fail(diag, EN_ENOMEM, "frontier: out of memory");
    for (size_t i = 0; i < n; i++) {
        char where[48];
        snprintf(where, sizeof where, "frontier record %zu", i);
        int rc = record_from_json(json_array_get(j, i), where, &rec[i], diag);
        if (rc == 0 && i > 0 && rec[i].flops_ratio < rec[i - 1].flops_ratio)
            rc = en_fail(diag, SC_ECORRUPT, "%s: not sorted cheapest first", where);
        if (rc == 0 && i > 0 && rec[i].schedule.layers != rec[0].schedule.layers)
            rc = en_fail(diag, SC_ECORRUPT, "%s: %d layers, record 0 has %d", where,
                         rec[i].schedule.layers, rec[0].schedule.layers);
        if (rc) {
            free(rec);
            return rc;
        }
    }
    out->rec = rec;
    out->count = (int)n;
    return 0;
}

json_t *sc_latency_to_json(const sc_latency_model *lm) {
    json_t *layer = json_array(), *last = json_array(), *layer8 = json_array(),
           *last8 = json_array();
    for (int i = 0; i < SC_LAT_TERMS; i++) {
        json_array_append_new(layer, json_real(lm->layer[i]));
        json_array_append_new(last, json_real(lm->last[i]));
        json_array_append_new(layer8, json_real(lm->layer_int8[i]));
        json_array_append_new(last8, json_real(lm->last_int8[i]));
    }
    return json_pack("{s:{s:s, s:s, s:i, s:i, s:s}, s:o, s:o, s:o, s:o, s:f, s:f, s:f, s:f}", "hw",
                     "cpu", lm->hw.cpu, "simd", lm->hw.simd, "cores", lm->hw.cores, "threads",
                     lm->hw.threads, "blas", lm->hw.blas, "layer", layer, "last", last,
                     "layer_int8", layer8, "last_int8", last8, "fixed_ms", lm->fixed_ms,
                     "calib_seconds", lm->calib_seconds, "fit_error", lm->fit_error, "probe_ms",
                     lm->probe_ms);
}

/* `name`: an array of SC_LAT_TERMS finite numbers into out; an array of SC_LAT_TERMS_V1 (a
 * model saved before width) becomes the same prediction for whole layers. */
static int get_terms(const json_t *j, const char *name, double *out, en_diag *diag) {
    const json_t *a = json_object_get(j, name);
    size_t n = json_array_size(a);
    if (!json_is_array(a) || (n != SC_LAT_TERMS && n != SC_LAT_TERMS_V1))
        return en_fail(diag, SC_ECORRUPT, "latency model: '%s' is not an array of %d numbers", name,
                       SC_LAT_TERMS);
    double v1[SC_LAT_TERMS_V1];
    for (size_t i = 0; i < n; i++) {
        const json_t *v = json_array_get(a, i);
        if (!json_is_number(v) || !isfinite(json_number_value(v)))
            return en_fail(diag, SC_ECORRUPT, "latency model: %s[%zu] is not a finite number", name,
                           i);
        (n == SC_LAT_TERMS ? out : v1)[i] = json_number_value(v);
    }
    if (n == SC_LAT_TERMS_V1) { // 1, n, k, n*n, k*n, [k < n] -> their places with a = f = 1
        memset(out, 0, SC_LAT_TERMS * sizeof *out);
        out[0] = v1[0], out[3] = v1[1], out[4] = v1[2], out[7] = v1[3], out[8] = v1[4];
        out[9] = v1[5];
    }
    return 0;
}

int sc_latency_from_json(const json_t *j, sc_latency_model *out, en_diag *diag) {
    memset(out, 0, sizeof *out);
    if (!json_is_object(j)) return en_fail(diag, SC_ECORRUPT, "latency model: not an object");
    const json_t *hw = json_object_get(j, "hw");
    if (!json_is_object(hw))
        return en_fail(diag, SC_ECORRUPT, "latency model: 'hw' is missing or not an object");
    const char *w = "latency model hw";
    double cores, threads;
    int rc;
    if ((rc = get_str(hw, w, "cpu", out->hw.cpu, sizeof out->hw.cpu, diag)) ||
        (rc = get_str(hw, w, "simd", out->hw.simd, sizeof out->hw.simd, diag)) ||
        (rc = get_str(hw, w, "blas", out->hw.blas, sizeof out->hw.blas, diag)) ||
        (rc = get_num(hw, w, "cores", 1, 65536, &cores, diag)) ||
        (rc = get_num(hw, w, "threads", 1, 65536, &threads, diag)))
        return rc;
    if (cores != floor(cores) || threads != floor(threads))
        return en_fail(diag, SC_ECORRUPT, "%s: cores and threads must be integers", w);
    out->hw.cores = (int)cores;
    out->hw.threads = (int)threads;
    if ((rc = get_terms(j, "layer", out->layer, diag))) return rc;
    // Models saved before the last layer had its own terms: it cost what the others did.
    if (!json_object_get(j, "last"))
        memcpy(out->last, out->layer, sizeof out->last);
    else if ((rc = get_terms(j, "last", out->last, diag)))
        return rc;
    // Saved before INT8: predicted as F32 until the next profile
    memcpy(out->layer_int8, out->layer, sizeof out->layer);
    memcpy(out->last_int8, out->last, sizeof out->last);
    if (json_object_get(j, "layer_int8") &&
        ((rc = get_terms(j, "layer_int8", out->layer_int8, diag)) ||
         (rc = get_terms(j, "last_int8", out->last_int8, diag))))
        return rc;
    const char *l = "latency model";
    if ((rc = get_num(j, l, "fixed_ms", -1e7, 1e7, &out->fixed_ms, diag)) ||
        (rc = get_num(j, l, "calib_seconds", 0, 1e7, &out->calib_seconds, diag)) ||
        (rc = get_num(j, l, "fit_error", 0, 1e7, &out->fit_error, diag)))
        return rc;
    // Saved before the probe: its drift is unknown (0)
    if (json_object_get(j, "probe_ms") &&
        (rc = get_num(j, l, "probe_ms", 0, 1e7, &out->probe_ms, diag)))
        return rc;
    return 0;
}
