/* searchctl: the command-line tool for people. Offline commands run the engine and the search
 * in this process; daemon commands talk to a running searchd. */
#include <stdio.h>
#include <string.h>

#include "client/searchctl.h"

/* `--daemon` sends classify and tune to a running searchd instead of running them here. */
static int wants_daemon(int argc, char **argv) {
    for (int i = 1; i < argc; i++)
        if (strcmp(argv[i], "--daemon") == 0)
            return 1;
    return 0;
}

static void usage(FILE *to) {
    fputs("usage: searchctl COMMAND [OPTIONS]\n"
          "\n"
          "Offline (no daemon):\n"
          "  classify --model DIR [--schedule S | --ratios R,.. --metric M] TEXT...\n"
          "  eval     --model DIR --data FILE [--schedule S] [--threads N] [--json]\n"
          "  bench    [--model DIR | --shape L,H,heads,FFN] [--lengths 32,64,..] [--threads N]\n"
          "  tune     --model DIR --data FILE [--holdout FILE] [--max-drop 0.01 | --max-flops 0.5 |\n"
          "           --max-latency MS] [--width] [--out FILE] [--json]\n"
          "  export   --model DIR --schedule S --frontier FILE --out DIR   (a width-pruned model)\n"
          "\n"
          "With a running searchd (--socket PATH | --connect HOST:PORT):\n"
          "  ping, info, add, remove, tune --daemon, status, cancel, get, frontier, watch, retune,\n"
          "  classify --daemon\n"
          "\n"
          "Run 'searchctl COMMAND --help' for a command's options.\n",
          to);
}

int main(int argc, char **argv) {
    if (argc < 2 || strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0) {
        usage(argc < 2 ? stderr : stdout);
        return argc < 2 ? 2 : 0;
    }
    const char *cmd = argv[1];
    int sub_argc = argc - 1;
    char **sub_argv = argv + 1;
    int daemon = wants_daemon(sub_argc, sub_argv);
    if ((strcmp(cmd, "tune") == 0 || strcmp(cmd, "classify") == 0) && daemon)
        return cmd_daemon(cmd, sub_argc, sub_argv);
    if (strcmp(cmd, "classify") == 0)
        return cmd_classify(sub_argc, sub_argv);
    if (strcmp(cmd, "eval") == 0)
        return cmd_eval(sub_argc, sub_argv);
    if (strcmp(cmd, "bench") == 0)
        return cmd_bench(sub_argc, sub_argv);
    if (strcmp(cmd, "tune") == 0)
        return cmd_tune(sub_argc, sub_argv);
    if (strcmp(cmd, "export") == 0)
        return cmd_export(sub_argc, sub_argv);
    if (cmd_is_daemon(cmd))
        return cmd_daemon(cmd, sub_argc, sub_argv);
    fprintf(stderr, "searchctl: unknown command '%s'\n", cmd);
    usage(stderr);
    return 2;
}
