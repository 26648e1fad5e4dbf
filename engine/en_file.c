#include "en_file.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "en_hash.h"

static const char *kind_name(mode_t m) {
    if (S_ISFIFO(m)) return "a FIFO";
    if (S_ISDIR(m)) return "a directory";
    if (S_ISCHR(m)) return "a character device";
    if (S_ISBLK(m)) return "a block device";
    if (S_ISSOCK(m)) return "a socket";
    return "not a regular file";
}

int en_file_open(const char *path, uint64_t max_bytes, int *fd, uint64_t *size, en_diag *diag) {
    *fd = -1;
    int f = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC | O_NOCTTY);
    if (f < 0) {
        int err = errno;
        return en_fail(diag, -err, "%s: %s", path, strerror(err));
    }
    struct stat st;
    if (fstat(f, &st) != 0) {
        int err = errno;
        close(f);
        return en_fail(diag, -err, "%s: %s", path, strerror(err));
    }
    if (!S_ISREG(st.st_mode)) {
        close(f);
        return en_fail(diag, EN_EFORMAT, "%s: %s, not a regular file: refused", path,
                       kind_name(st.st_mode));
    }
    if ((uint64_t)st.st_size > max_bytes) {
        close(f);
        return en_fail(diag, EN_ERANGE, "%s: %llu bytes, over the %llu-byte limit for this file",
                       path, (unsigned long long)st.st_size, (unsigned long long)max_bytes);
    }
    int flags = fcntl(f, F_GETFL);
    if (flags >= 0) fcntl(f, F_SETFL, flags & ~O_NONBLOCK);
    *fd = f;
    if (size) *size = (uint64_t)st.st_size;
    return 0;
}

int en_file_read(const char *path, uint64_t max_bytes, char **data, size_t *len, en_diag *diag) {
    *data = NULL;
    *len = 0;
    int fd;
    uint64_t size;
    int rc = en_file_open(path, max_bytes, &fd, &size, diag);
    if (rc) return rc;
    size_t cap = (size_t)size + 1, n = 0;
    char *buf = malloc(cap + 1);
    while (rc == 0 && buf) {
        if (n == cap) { // the file grew since fstat
            char *nb = n < max_bytes ? realloc(buf, cap * 2 + 1) : NULL;
            if (!nb) {
                rc = n < max_bytes
                         ? en_fail(diag, EN_ENOMEM, "%s: out of memory", path)
                         : en_fail(diag, EN_ERANGE, "%s: grew past the %llu-byte limit while read",
                                   path, (unsigned long long)max_bytes);
                break;
            }
            buf = nb;
            cap *= 2;
        }
        ssize_t got = read(fd, buf + n, cap - n);
        if (got < 0 && errno == EINTR) continue;
        if (got < 0) {
            int err = errno;
            rc = en_fail(diag, -err, "%s: read failed: %s", path, strerror(err));
        } else if (got == 0) {
            break;
        } else {
            n += (size_t)got;
        }
    }
    close(fd);
    if (!buf) return en_fail(diag, EN_ENOMEM, "%s: out of memory", path);
    if (rc == 0 && n > max_bytes)
        rc = en_fail(diag, EN_ERANGE, "%s: grew past the %llu-byte limit while read", path,
                     (unsigned long long)max_bytes);
    if (rc) {
        free(buf);
        return rc;
    }
    buf[n] = '\0';
    *data = buf;
    *len = n;
    return 0;
}

int en_file_hash(const char *path, uint64_t max_bytes, uint64_t *hash, en_diag *diag) {
    int fd;
    int rc = en_file_open(path, max_bytes, &fd, NULL, diag);
    if (rc) return rc;
    enum { CHUNK = 1 << 20 };
    unsigned char *buf = malloc(CHUNK);
    uint64_t h = EN_FNV1A_BASIS;
    while (rc == 0 && buf) {
        ssize_t got = read(fd, buf, CHUNK);
        if (got < 0 && errno == EINTR) continue;
        if (got < 0) {
            int err = errno;
            rc = en_fail(diag, -err, "%s: read failed: %s", path, strerror(err));
        }
        if (got <= 0) break;
        h = en_fnv1a(h, buf, (size_t)got);
    }
    close(fd);
    if (!buf) return en_fail(diag, EN_ENOMEM, "%s: out of memory", path);
    free(buf);
    if (rc == 0) *hash = h;
    return rc;
}

const char *en_excerpt(const char *s, size_t len, char *buf, size_t cap) {
    if (cap < 16) {
        if (cap) buf[0] = '\0';
        return buf;
    }
    size_t o = 0, i = 0;
    buf[o++] = '\'';
    for (; i < len && i < EN_EXCERPT_MAX && o + 4 + 5 <= cap; i++) { // an escape, "'..." and NUL
        unsigned char ch = (unsigned char)s[i];
        if (ch < 0x20 || ch >= 0x7f || ch == '\'' || ch == '\\')
            o += (size_t)snprintf(buf + o, cap - o, "\\x%02x", ch);
        else
            buf[o++] = (char)ch;
    }
    snprintf(buf + o, cap - o, "%s", i < len ? "'..." : "'");
    return buf;
}

const char *en_json_reason(const char *text, char *buf, size_t cap) {
    const char *near = strstr(text, " near ");
    size_t n = near ? (size_t)(near - text) : strlen(text);
    snprintf(buf, cap, "%.*s", (int)n, text);
    return buf;
}
