/* searchctl: the command-line tool for people. Offline commands run the engine and the search
 * in this process; daemon commands talk to a running searchd. This file is the one parser and
 * the one help printer, both read from the tables in cmd_table.c. */
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "client/cli_util.h"
#include "client/searchctl.h"

/* The row of `name`: its daemon form when asked for and it has one, else the only one. */
static const ctl_command *find_command(const char *name, int daemon) {
    const ctl_command *found = NULL;
    for (size_t i = 0; i < ctl_command_count; i++)
        if (strcmp(ctl_commands[i].name, name) == 0 && (!found || ctl_commands[i].daemon == daemon))
            found = &ctl_commands[i];
    return found;
}

/* " --daemon" for the daemon form of a command that has an offline one, else "". */
static const char *form(const ctl_command *c) {
    return c->daemon && find_command(c->name, 0)->daemon == 0 ? " --daemon" : "";
}

/* The option of command `c` spelled `arg` (its name or its alias), or NULL. */
static const ctl_opt *find_option(const ctl_command *c, const char *arg) {
    for (size_t i = 0; i < ctl_option_count; i++) {
        const ctl_opt *o = &ctl_options[i];
        if ((c->options >> i & 1) &&
            (strcmp(o->name, arg) == 0 || (o->alias && strcmp(o->alias, arg) == 0)))
            return o;
    }
    return NULL;
}

static void set_default(ctl_args *a, const ctl_opt *o) {
    void *field = (char *)a + o->offset;
    switch (o->kind) {
    case CTL_INT:
    case CTL_CHOICE:
        *(int *)field = (int)o->def;
        break;
    case CTL_U64:
        *(uint64_t *)field = (uint64_t)o->def;
        break;
    case CTL_NUM:
    case CTL_SHARE:
        *(double *)field = o->def;
        break;
    default:
        break; // strings NULL, flags 0
    }
}

/* Stores `v` for option `o` (called `arg` on the command line); 0, or 2 after a message. */
static int set_value(ctl_args *a, const ctl_opt *o, const char *arg, const char *v) {
    void *field = (char *)a + o->offset;
    const char *cmd = a->command->name;
    char *end = NULL;
    errno = 0;
    if (o->kind == CTL_STR) {
        *(const char **)field = v;
    } else if (o->kind == CTL_INT) {
        long long n = strtoll(v, &end, 10);
        if (end == v || *end || errno || n < o->min || n > o->max) {
            fprintf(stderr, "searchctl %s: %s takes an integer in %.0f..%.0f, not '%s'\n", cmd, arg,
                    o->min, o->max, v);
            return 2;
        }
        *(int *)field = (int)n;
    } else if (o->kind == CTL_U64) {
        unsigned long long n = strtoull(v, &end, 10);
        if (end == v || *end || errno || *v == '-') {
            fprintf(stderr, "searchctl %s: %s takes an unsigned integer, not '%s'\n", cmd, arg, v);
            return 2;
        }
        *(uint64_t *)field = n;
    } else if (o->kind == CTL_NUM) {
        double d = strtod(v, &end);
        int in = o->open ? d > o->min && d < o->max : d >= o->min && d <= o->max; // NaN: out
        if (end == v || *end || !in) {
            fprintf(stderr, "searchctl %s: %s takes %s in %c%g, %g%c, not '%s'\n", cmd, arg,
                    o->metavar && strcmp(o->metavar, "MS") == 0 ? "milliseconds" : "a number",
                    o->open ? '(' : '[', o->min, o->max, o->open ? ')' : ']', v);
            return 2;
        }
        *(double *)field = d;
    } else if (o->kind == CTL_SHARE) {
        double d;
        if (cli_parse_share(o->name, v, &d) != 0) return 2;
        if (o->open && !(d > o->min)) {
            fprintf(stderr, "searchctl %s: %s takes a share like 0.5 or 50%%, above 0, not '%s'\n",
                    cmd, arg, v);
            return 2;
        }
        *(double *)field = d;
    } else if (o->kind == CTL_CHOICE) {
        int k = 0;
        while (o->choices[k] && strcmp(o->choices[k], v) != 0)
            k++;
        if (!o->choices[k]) {
            fprintf(stderr, "searchctl %s: %s takes", cmd, arg);
            for (int i = 0; o->choices[i]; i++)
                fprintf(stderr, "%s %s", i ? (o->choices[i + 1] ? "," : " or") : "", o->choices[i]);
            fprintf(stderr, ", not '%s'\n", v);
            return 2;
        }
        *(int *)field = k;
    }
    return 0;
}

/* Parses argv[1..] for command `c` into `a`: options up to the first positional argument or
 * `--`; a->rest is where the positional ones start. 0, or 2 after naming the problem. */
static int parse(const ctl_command *c, int argc, char **argv, ctl_args *a) {
    memset(a, 0, sizeof *a);
    a->command = c;
    // Every row's default, not only this command's: a budget or choice it does not take
    // reads as not given (-1), never as 0.
    for (size_t i = 0; i < ctl_option_count; i++)
        set_default(a, &ctl_options[i]);
    uint64_t given = 0;
    int i = 1;
    for (; i < argc; i++) {
        const char *arg = argv[i];
        if (strcmp(arg, "--") == 0) {
            i++;
            break;
        }
        // Options are long ("--x") or -h; "-1" is an argument (status -1 is a bad job number).
        if (strncmp(arg, "--", 2) != 0 && strcmp(arg, "-h") != 0) break;
        const ctl_opt *o = find_option(c, arg);
        if (!o) {
            fprintf(stderr, "searchctl %s%s: unknown option '%s'\n", c->name, form(c), arg);
            return 2;
        }
        given |= 1ull << (o - ctl_options);
        if (o->kind == CTL_FLAG) {
            *(int *)(void *)((char *)a + o->offset) = 1;
            continue;
        }
        if (i + 1 >= argc) {
            fprintf(stderr, "searchctl %s: %s needs a value (%s)\n", c->name, arg, o->metavar);
            return 2;
        }
        int rc = set_value(a, o, arg, argv[++i]);
        if (rc) return rc;
    }
    a->rest = i;
    if (a->help) return 0;
    if (i < argc && !c->args) {
        fprintf(stderr, "searchctl %s: unexpected argument '%s'\n", c->name, argv[i]);
        return 2;
    }
    for (size_t k = 0; k < ctl_option_count; k++)
        if ((c->required >> k & 1) && !(given >> k & 1)) {
            fprintf(stderr, "searchctl %s: %s %s is required\n", c->name, ctl_options[k].name,
                    ctl_options[k].metavar);
            return 2;
        }
    return 0;
}

/* Prints `text` from column `col`, wrapped before column 80 with later lines indented by
 * `indent`, then a newline. */
static void wrap(FILE *to, const char *text, int col, int indent) {
    while (*text) {
        int len = (int)strcspn(text, " ");
        if (col > indent && col + 1 + len >= 80) {
            fprintf(to, "\n%*s", indent, "");
            col = indent;
        } else if (col > indent) {
            fputc(' ', to);
            col++;
        }
        fprintf(to, "%.*s", len, text);
        col += len;
        text += len;
        text += strspn(text, " ");
    }
    fputc('\n', to);
}

void ctl_usage(const ctl_command *c, FILE *to) {
    fprintf(to, "usage: searchctl %s\n", c->synopsis);
    wrap(to, c->what, 0, 0);
    for (size_t i = 0; i < ctl_option_count; i++) {
        const ctl_opt *o = &ctl_options[i];
        if (!(c->options >> i & 1)) continue;
        char left[64], line[600];
        snprintf(left, sizeof left, "  %s%s%s", o->name, o->metavar ? " " : "",
                 o->metavar ? o->metavar : "");
        int n = snprintf(line, sizeof line, "%s", o->help);
        if (o->kind == CTL_CHOICE) { // the choices and the default, from the row
            for (int k = 0; o->choices[k] && n < (int)sizeof line; k++)
                n += snprintf(line + n, sizeof line - (size_t)n, "%s%s", k ? ", " : " (",
                              o->choices[k]);
            if (n < (int)sizeof line)
                n += o->def >= 0 ? snprintf(line + n, sizeof line - (size_t)n, "; default %s)",
                                            o->choices[(int)o->def])
                                 : snprintf(line + n, sizeof line - (size_t)n, ")");
        } else if ((o->kind == CTL_INT || o->kind == CTL_NUM || o->kind == CTL_U64) &&
                   o->def >= o->min && n < (int)sizeof line) {
            snprintf(line + n, sizeof line - (size_t)n, " (default %.15g)", o->def);
        }
        fprintf(to, "%-26s", left);
        wrap(to, line, (int)strlen(left) > 26 ? (int)strlen(left) : 26, 26);
    }
    if (c->more) fputs(c->more, to);
}

static void usage(FILE *to) {
    fputs("usage: searchctl COMMAND [OPTIONS]\n\nOffline (no daemon):\n", to);
    for (int daemon = 0; daemon < 2; daemon++) {
        if (daemon) fputs("\nWith a running searchd (--socket PATH | --connect HOST:PORT):\n", to);
        for (size_t i = 0; i < ctl_command_count; i++) {
            const ctl_command *c = &ctl_commands[i];
            char name[32]; // a daemon form is named with --daemon
            snprintf(name, sizeof name, "%s%s", c->name, form(c));
            if (c->daemon != daemon) continue;
            fprintf(to, "  %-19s", name);
            wrap(to, c->what, 21, 21);
        }
    }
    fputs("\nRun 'searchctl COMMAND --help' for a command's options.\n", to);
}

/* `--daemon` among the options picks a command's daemon form (tune, classify). */
static int wants_daemon(int argc, char **argv) {
    for (int i = 1; i < argc && strcmp(argv[i], "--") != 0; i++)
        if (strcmp(argv[i], "--daemon") == 0) return 1;
    return 0;
}

int main(int argc, char **argv) {
    if (argc < 2 || strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0) {
        usage(argc < 2 ? stderr : stdout);
        return argc < 2 ? 2 : 0;
    }
    const ctl_command *c = find_command(argv[1], wants_daemon(argc - 1, argv + 1));
    if (!c) {
        fprintf(stderr, "searchctl: unknown command '%s'\n", argv[1]);
        usage(stderr);
        return 2;
    }
    ctl_args a;
    int rc = parse(c, argc - 1, argv + 1, &a);
    if (a.help && !rc) {
        ctl_usage(c, stdout);
        return 0;
    }
    if (rc) { // the synopsis under the message; the options take --help
        fprintf(stderr, "usage: searchctl %s\nRun 'searchctl %s%s --help' for its options.\n",
                c->synopsis, c->name, form(c));
        return rc;
    }
    return c->run(&a, argc - 1, argv + 1);
}
