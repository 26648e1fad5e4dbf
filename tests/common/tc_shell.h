#pragma once
/* Commands run through the shell, as a person runs them, with their output. */

/// Runs `cmd` with /bin/sh; its standard output (malloc'ed, NUL-terminated) into `*out` unless
/// `out` is NULL. Returns the exit status, or -1 when it did not exit (a signal). Fails the
/// running test when the shell cannot be started.
int tc_shell(const char *cmd, char **out);
