#include "tc_temp.h"

#include <check.h>
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

char *tc_temp_dir(char *buf, size_t len, const char *tag) {
    int n = snprintf(buf, len, "/tmp/searchd-%s-XXXXXX", tag);
    if (n < 0 || (size_t)n >= len) {
        errno = ENAMETOOLONG;
        return NULL;
    }
    return mkdtemp(buf);
}

char *tc_temp_dir_or_fail(char *buf, size_t len, const char *tag) {
    char *d = tc_temp_dir(buf, len, tag);
    ck_assert_msg(d != NULL, "cannot make a temp folder for %s: %s", tag, strerror(errno));
    return d;
}

char *tc_temp_file(char *buf, size_t len, const char *tag, const char *suffix, const char *text) {
    int n = snprintf(buf, len, "/tmp/searchd-%s-XXXXXX%s", tag, suffix);
    ck_assert_msg(n > 0 && (size_t)n < len, "temp file name too long");
    int fd = mkstemps(buf, (int)strlen(suffix));
    ck_assert_msg(fd >= 0, "cannot make a temp file for %s: %s", tag, strerror(errno));
    size_t want = strlen(text);
    ck_assert_msg(write(fd, text, want) == (ssize_t)want, "cannot write %s", buf);
    close(fd);
    return buf;
}

int tc_remove_tree(const char *path) {
    struct stat st;
    if (lstat(path, &st) != 0) return errno == ENOENT ? 0 : -1;
    int rc = 0;
    if (S_ISDIR(st.st_mode)) {
        DIR *d = opendir(path);
        if (!d) return -1;
        for (struct dirent *e; (e = readdir(d)) != NULL;) {
            if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0) continue;
            size_t n = strlen(path) + strlen(e->d_name) + 2;
            char *child = malloc(n);
            if (!child) {
                rc = -1;
                break;
            }
            snprintf(child, n, "%s/%s", path, e->d_name);
            if (tc_remove_tree(child) != 0) rc = -1;
            free(child);
        }
        closedir(d);
        if (rmdir(path) != 0) rc = -1;
    } else if (unlink(path) != 0) {
        rc = -1;
    }
    return rc;
}

void tc_temp_done(const char *path) {
    if (!path || !path[0]) return;
    if (getenv("SD_TEST_KEEP")) {
        fprintf(stderr, "kept %s\n", path);
        return;
    }
    tc_remove_tree(path);
}
