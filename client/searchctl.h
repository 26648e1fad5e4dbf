#pragma once
/* searchctl's commands, one function each, in files of their own:
 * cmd_offline.c (classify, eval, bench), cmd_tune.c (offline tune), cmd_daemon.c (commands that
 * talk to a running searchd). Each takes the arguments after the command name (argv[0] is the
 * command) and returns the process exit status: 0 ok, 1 failure, 2 usage error. */

int cmd_classify(int argc, char **argv);
int cmd_eval(int argc, char **argv);
int cmd_bench(int argc, char **argv);
int cmd_tune(int argc, char **argv);
int cmd_export(int argc, char **argv);
/// Daemon commands: ping, info, add, get, frontier, watch, retune, remove, status, cancel and
/// `tune --daemon`; `name` is the command.
int cmd_daemon(const char *name, int argc, char **argv);
/// Whether `name` is a daemon command handled by cmd_daemon().
int cmd_is_daemon(const char *name);
