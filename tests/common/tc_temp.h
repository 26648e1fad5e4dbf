#pragma once
/* Temp folders of the tests: made fresh under /tmp, removed with everything in them (no shell:
 * the paths may hold any byte). */
#include <stddef.h>

/// A new folder /tmp/searchd-<tag>-XXXXXX; its path into `buf`. Returns `buf`, or NULL with
/// errno set (callers outside a test check it; inside one, tc_temp_dir_or_fail).
char *tc_temp_dir(char *buf, size_t len, const char *tag);
/// tc_temp_dir, failing the running test when it cannot.
char *tc_temp_dir_or_fail(char *buf, size_t len, const char *tag);
/// A new file /tmp/searchd-<tag>-XXXXXX<suffix> holding the string `text`; its path into `buf`
/// (the caller removes it). Fails the running test when it cannot.
char *tc_temp_file(char *buf, size_t len, const char *tag, const char *suffix, const char *text);
/// Removes `path` and, when it is a folder, everything under it (symlinks themselves, never what
/// they point at). 0, or -1 when something could not be removed (a missing path is removed).
int tc_remove_tree(const char *path);
/// Keeps temp folders when $SD_TEST_KEEP is set (printing where), else removes them.
void tc_temp_done(const char *path);
