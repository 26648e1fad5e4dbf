#pragma once
/* Whole files for the tests: read, written, copied (a file or a folder tree). Each fails the
 * running test when it cannot, naming the path, except tc_copy_tree (also used outside tests). */
#include <stddef.h>

/// The contents of `path` (malloc'ed, with a NUL after the last byte); its size into `*len`
/// when `len` is not NULL.
char *tc_read_file(const char *path, size_t *len);
/// Writes `len` bytes to `path` (created or truncated).
void tc_write_file(const char *path, const void *data, size_t len);
/// Writes the string `text` to `path` (created or truncated).
void tc_write_text(const char *path, const char *text);
/// Appends the string `text` to `path` (created when missing).
void tc_append_text(const char *path, const char *text);
/// Copies the folder (or file) `from` to `to`, which must not exist: folders, regular files
/// and symlinks (as symlinks). 0, or -1 with errno set.
int tc_copy_tree(const char *from, const char *to);
