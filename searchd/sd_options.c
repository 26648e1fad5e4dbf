/* The option table and its three sources: defaults, config file, command line. */
#include "sd_options.h"

#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "engine/en_file.h"
#include "proto/sp_msg.h"
#include "schedules/sc_defaults.h"
#include "sd_error.h"

#define SD_MAX_CONFIG_BYTES (1 << 20) // an options file is a few lines

typedef enum { OPT_STR, OPT_INT, OPT_DOUBLE, OPT_FLAG, OPT_LONG } opt_type;

typedef struct opt {
    const char *name;
    opt_type type;
    size_t offset, size; // field in sd_options; size for strings
    double min, max;     // numbers
    double def;          // default of a number or flag (strings start empty)
    const char *help;
} opt;

#define F_(field) offsetof(sd_options, field), sizeof(((sd_options *)0)->field)

static const opt options[] = {
    {"socket", OPT_STR, F_(socket), 0, 0, 0, "Unix socket path (mode 0600)"},
    {"listen", OPT_STR, F_(listen), 0, 0, 0, "also listen on TCP HOST:PORT (loopback only)"},
    {"listen-any", OPT_FLAG, F_(listen_any), 0, 1, 0, "allow a non-loopback --listen address"},
    {"state-dir", OPT_STR, F_(state_dir), 0, 0, 0, "where models, profiles, frontiers live"},
    {"config", OPT_STR, F_(config), 0, 0, 0, "read options from FILE (key = value lines)"},
    {"jobs", OPT_INT, F_(jobs), 1, 16, 1, "search jobs running at once"},
    {"max-queued", OPT_INT, F_(max_queued), 0, 10000, 16, "search jobs waiting beyond those"},
    // The search's settings: names, defaults and bounds as `searchctl tune` (sc_defaults.h).
    {"search-threads", OPT_INT, F_(search_threads), 0, SC_SEARCH_THREADS_MAX, 0,
     "threads of one search (0: all cores)"},
    {"search-generations", OPT_INT, F_(search_generations), 0, SC_SEARCH_GENERATIONS_MAX, 0,
     "generations of the evolutionary search (0: its default)"},
    {"calib-seconds", OPT_DOUBLE, F_(calib_seconds), SC_CALIB_SECONDS_MIN, SC_CALIB_SECONDS_MAX,
     SC_CALIB_SECONDS, "latency calibration time per model"},
    {"max-message", OPT_INT, F_(max_message), 64, 64 << 20, SP_MAX_MESSAGE_DEFAULT,
     "bytes in one request"},
    {"max-depth", OPT_INT, F_(max_depth), 4, SP_MAX_DEPTH_LIMIT, SP_MAX_DEPTH_DEFAULT,
     "nesting depth of one request"},
    {"max-reply-queue", OPT_INT, F_(max_reply_queue), 4096, INT_MAX, 8 << 20,
     "reply bytes queued per connection before it is dropped"},
    {"max-connections", OPT_INT, F_(max_connections), 1, 100000, 4096, "connections at once"},
    {"idle-timeout", OPT_DOUBLE, F_(idle_timeout), 0, 1e6, 600,
     "seconds a connection owed nothing (no pending reply, job or subscription) may stay silent "
     "before it is closed (0: never)"},
    {"message-timeout", OPT_DOUBLE, F_(message_timeout), 0, 1e6, 30,
     "seconds a request may stay incomplete before the connection is closed (0: never)"},
    {"max-buffered", OPT_LONG, F_(max_buffered), 65536, 1e15, 256 << 20,
     "bytes of incomplete requests and queued replies held for all connections together; the "
     "connection that goes over is closed"},
    {"fingerprint-override", OPT_STR, F_(fingerprint_override), 0, 0, 0,
     "use STRING as the CPU model (tests simulate a hardware change; @FILE reads it from FILE "
     "each time)"},
    {"fleet", OPT_STR, F_(fleet), 0, 0, 0,
     "share accuracy records with other searchd hosts through Redis at redis://HOST:PORT[/DB] "
     "(docs/fleet.md; default $SEARCHD_FLEET)"},
    {"fleet-password", OPT_STR, F_(fleet_password), 0, 0, 0,
     "AUTH password of the fleet's Redis (default $SEARCHD_FLEET_PASSWORD)"},
    {"verbose", OPT_FLAG, F_(verbose), 0, 1, 0, "log every request"},
};
#define N_OPTIONS (sizeof options / sizeof options[0])

static const opt *find(const char *name, size_t len) {
    for (size_t i = 0; i < N_OPTIONS; i++)
        if (strlen(options[i].name) == len && strncmp(options[i].name, name, len) == 0)
            return &options[i];
    return NULL;
}

static int set(sd_options *o, const opt *op, const char *value, const char *from, en_diag *diag) {
    char *field = (char *)o + op->offset;
    if (op->type == OPT_STR) {
        if (strlen(value) >= op->size)
            return en_fail(diag, SD_EOPTION, "%s: --%s is longer than %zu bytes", from, op->name,
                           op->size - 1);
        memcpy(field, value, strlen(value) + 1);
        return 0;
    }
    char *end;
    errno = 0;
    double v = strtod(value, &end);
    if (op->type == OPT_FLAG && (strcmp(value, "true") == 0 || strcmp(value, "yes") == 0))
        v = 1, end = (char *)value + strlen(value);
    else if (op->type == OPT_FLAG && (strcmp(value, "false") == 0 || strcmp(value, "no") == 0))
        v = 0, end = (char *)value + strlen(value);
    if (errno || end == value || *end != '\0' || !(v >= op->min && v <= op->max) || // NaN too
        (op->type != OPT_DOUBLE && v != (double)(long long)v))
        return en_fail(diag, SD_EOPTION, "%s: --%s takes %s in [%g, %g], not '%s'", from, op->name,
                       op->type == OPT_DOUBLE ? "a number" : "an integer", op->min, op->max, value);
    if (op->type == OPT_DOUBLE)
        *(double *)(void *)field = v;
    else if (op->type == OPT_LONG)
        *(long long *)(void *)field = (long long)v;
    else
        *(int *)(void *)field = (int)v;
    return 0;
}

static char *trim(char *s) {
    while (*s == ' ' || *s == '\t')
        s++;
    size_t n = strlen(s);
    while (n > 0 && (s[n - 1] == ' ' || s[n - 1] == '\t' || s[n - 1] == '\n' || s[n - 1] == '\r'))
        s[--n] = '\0';
    return s;
}

static int load_file(sd_options *o, const char *path, en_diag *diag) {
    int fd;
    en_diag why;
    if (en_file_open(path, SD_MAX_CONFIG_BYTES, &fd, NULL, &why) != 0)
        return en_fail(diag, SD_EOPTION, "--config %s", why.msg);
    FILE *f = fdopen(fd, "r");
    if (!f) {
        close(fd);
        return en_fail(diag, SD_EOPTION, "--config %s: %s", path, strerror(errno));
    }
    char line[2048], from[1100];
    int lineno = 0, rc = 0;
    while (rc == 0 && fgets(line, sizeof line, f)) {
        lineno++;
        char *s = trim(line);
        if (*s == '\0' || *s == '#') continue;
        snprintf(from, sizeof from, "%s:%d", path, lineno);
        char *eq = strchr(s, '=');
        if (!eq) {
            rc = en_fail(diag, SD_EOPTION, "%s: expected 'key = value'", from);
            break;
        }
        *eq = '\0';
        char *key = trim(s), *value = trim(eq + 1);
        const opt *op = find(key, strlen(key));
        if (!op || strcmp(op->name, "config") == 0)
            rc = en_fail(diag, SD_EOPTION, "%s: unknown option '%s' (see searchd --help)", from,
                         key);
        else
            rc = set(o, op, value, from, diag);
    }
    fclose(f);
    return rc;
}

static void default_paths(sd_options *o) {
    const char *run = getenv("XDG_RUNTIME_DIR");
    if (!o->socket[0]) {
        if (run && *run && strlen(run) + 14 < sizeof o->socket)
            snprintf(o->socket, sizeof o->socket, "%s/searchd.sock", run);
        else
            snprintf(o->socket, sizeof o->socket, "/tmp/searchd-%u.sock", (unsigned)getuid());
    }
    if (!o->state_dir[0]) {
        const char *st = getenv("XDG_STATE_HOME"), *home = getenv("HOME");
        if (st && *st)
            snprintf(o->state_dir, sizeof o->state_dir, "%s/searchd", st);
        else
            snprintf(o->state_dir, sizeof o->state_dir, "%s/.local/state/searchd",
                     home && *home ? home : "/tmp");
    }
    const char *fp = getenv("SEARCHD_FINGERPRINT");
    if (!o->fingerprint_override[0] && fp && strlen(fp) < sizeof o->fingerprint_override)
        snprintf(o->fingerprint_override, sizeof o->fingerprint_override, "%s", fp);
    const char *fl = getenv("SEARCHD_FLEET"), *pw = getenv("SEARCHD_FLEET_PASSWORD");
    if (!o->fleet[0] && fl && strlen(fl) < sizeof o->fleet)
        snprintf(o->fleet, sizeof o->fleet, "%s", fl);
    if (!o->fleet_password[0] && pw && strlen(pw) < sizeof o->fleet_password)
        snprintf(o->fleet_password, sizeof o->fleet_password, "%s", pw);
}

/* Walks argv calling `fn` for each option; used twice, to find --config first. */
static int walk_argv(sd_options *o, int argc, char **argv, int config_only, en_diag *diag) {
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) return 1;
        if (strncmp(a, "--", 2) != 0)
            return en_fail(diag, SD_EOPTION, "unexpected argument '%s' (see searchd --help)", a);
        const char *name = a + 2, *eq = strchr(name, '=');
        size_t len = eq ? (size_t)(eq - name) : strlen(name);
        const opt *op = find(name, len);
        if (!op) return en_fail(diag, SD_EOPTION, "unknown option '%s' (see searchd --help)", a);
        const char *value = eq ? eq + 1 : NULL;
        if (!value && op->type == OPT_FLAG) value = "1";
        if (!value) {
            if (i + 1 >= argc)
                return en_fail(diag, SD_EOPTION, "option --%s needs a value", op->name);
            value = argv[++i];
        }
        if (config_only != (strcmp(op->name, "config") == 0)) continue;
        int rc = set(o, op, value, "command line", diag);
        if (rc) return rc;
    }
    return 0;
}

int sd_options_load(sd_options *o, int argc, char **argv, en_diag *diag) {
    memset(o, 0, sizeof *o); // strings start empty
    for (size_t i = 0; i < N_OPTIONS; i++) {
        char def[32];
        snprintf(def, sizeof def, "%.17g", options[i].def);
        int rc = options[i].type == OPT_STR ? 0 : set(o, &options[i], def, "default", diag);
        if (rc) return rc;
    }
    int rc = walk_argv(o, argc, argv, 1, diag);
    if (rc) return rc;
    if (o->config[0] && (rc = load_file(o, o->config, diag))) return rc;
    if ((rc = walk_argv(o, argc, argv, 0, diag))) return rc;
    default_paths(o);
    return 0;
}

/* A bound or default for --help: "64 MiB" for byte counts that are whole units, else every digit
 * ("2147483647", "0.05"), never "6.71089e+07". */
static const char *readable(double v, int bytes, char *buf, size_t len) {
    static const char *const unit[] = {"KiB", "MiB", "GiB", "TiB"};
    int u = -1;
    double x = v;
    while (bytes && x >= 1024 && fmod(x, 1024) == 0 && u < 3) {
        x /= 1024;
        u++;
    }
    if (u >= 0 && x < 10000)
        snprintf(buf, len, "%.15g %s", x, unit[u]);
    else
        snprintf(buf, len, "%.16g", v);
    return buf;
}

void sd_options_usage(void *file) {
    FILE *f = file;
    fputs("usage: searchd [OPTIONS]\n\n"
          "Serves pruning schedules over msgpack-RPC. Runs in the foreground.\n"
          "Options come from the defaults, then --config FILE, then the command line.\n\n",
          f);
    for (size_t i = 0; i < N_OPTIONS; i++) {
        const opt *op = &options[i];
        char left[64];
        snprintf(left, sizeof left, "--%s%s", op->name,
                 op->type == OPT_FLAG  ? ""
                 : op->type == OPT_STR ? " STRING"
                                       : " N");
        fprintf(f, "  %-30s %s", left, op->help);
        if (op->type == OPT_INT || op->type == OPT_DOUBLE || op->type == OPT_LONG) {
            // Bounds a person can read: bytes in KiB/MiB/GiB, every digit otherwise.
            int bytes = strncmp(op->help, "bytes", 5) == 0 || strstr(op->help, " bytes ") != NULL;
            char lo[32], hi[32], def[32];
            fprintf(f, " [%s..%s, default %s]", readable(op->min, bytes, lo, sizeof lo),
                    readable(op->max, bytes, hi, sizeof hi),
                    readable(op->def, bytes, def, sizeof def));
        }
        fputc('\n', f);
    }
    fputs("  --help                         this text\n", f);
}
