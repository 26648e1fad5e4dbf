#include "tc_files.h"

#include <check.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

char *tc_read_file(const char *path, size_t *len) {
    FILE *f = fopen(path, "rb");
    ck_assert_msg(f != NULL, "cannot open %s: %s", path, strerror(errno));
    size_t cap = 4096, n = 0;
    char *buf = malloc(cap + 1);
    ck_assert_ptr_nonnull(buf);
    for (size_t got; (got = fread(buf + n, 1, cap - n, f)) > 0;) {
        n += got;
        if (n == cap) {
            cap *= 2;
            buf = realloc(buf, cap + 1);
            ck_assert_ptr_nonnull(buf);
        }
    }
    ck_assert_msg(!ferror(f), "cannot read %s", path);
    fclose(f);
    buf[n] = '\0';
    if (len) *len = n;
    return buf;
}

static void put(const char *path, const char *mode, const void *data, size_t len) {
    FILE *f = fopen(path, mode);
    ck_assert_msg(f != NULL, "cannot write %s: %s", path, strerror(errno));
    ck_assert_msg(fwrite(data, 1, len, f) == len, "cannot write %s", path);
    ck_assert_msg(fclose(f) == 0, "cannot write %s", path);
}

void tc_write_file(const char *path, const void *data, size_t len) {
    put(path, "wb", data, len);
}

void tc_write_text(const char *path, const char *text) {
    put(path, "wb", text, strlen(text));
}

void tc_append_text(const char *path, const char *text) {
    put(path, "ab", text, strlen(text));
}

static int copy_file(const char *from, const char *to, mode_t mode) {
    int in = open(from, O_RDONLY), out = -1, rc = -1;
    if (in < 0) return -1;
    out = open(to, O_WRONLY | O_CREAT | O_EXCL, mode & 0777);
    if (out < 0) goto done;
    char buf[1 << 16];
    for (;;) {
        ssize_t n = read(in, buf, sizeof buf);
        if (n < 0) goto done;
        if (n == 0) break;
        for (ssize_t off = 0; off < n;) {
            ssize_t w = write(out, buf + off, (size_t)(n - off));
            if (w < 0) goto done;
            off += w;
        }
    }
    rc = 0;
done:
    if (out >= 0 && close(out) != 0) rc = -1;
    close(in);
    return rc;
}

int tc_copy_tree(const char *from, const char *to) {
    struct stat st;
    if (lstat(from, &st) != 0) return -1;
    if (S_ISLNK(st.st_mode)) {
        char target[4096];
        ssize_t n = readlink(from, target, sizeof target - 1);
        if (n < 0) return -1;
        target[n] = '\0';
        return symlink(target, to);
    }
    if (!S_ISDIR(st.st_mode)) return copy_file(from, to, st.st_mode);
    if (mkdir(to, st.st_mode & 0777) != 0) return -1;
    DIR *d = opendir(from);
    if (!d) return -1;
    int rc = 0;
    for (struct dirent *e; rc == 0 && (e = readdir(d)) != NULL;) {
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0) continue;
        size_t nf = strlen(from) + strlen(e->d_name) + 2, nt = strlen(to) + strlen(e->d_name) + 2;
        char *a = malloc(nf), *b = malloc(nt);
        if (a && b) {
            snprintf(a, nf, "%s/%s", from, e->d_name);
            snprintf(b, nt, "%s/%s", to, e->d_name);
            rc = tc_copy_tree(a, b);
        } else {
            errno = ENOMEM;
            rc = -1;
        }
        free(a);
        free(b);
    }
    closedir(d);
    return rc;
}
