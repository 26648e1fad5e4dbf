#include "shared_models.h"

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static int cmp_str(const void *a, const void *b) {
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

int shared_models(const char *fixture_file, const char *const **names) {
    static char store[SHARED_MODELS_MAX][256];
    static const char *list[SHARED_MODELS_MAX];
    *names = list;
    const char *root = getenv("SEARCHD_SHARED");
    if (!root) return 0;
    char path[1024];
    snprintf(path, sizeof path, "%s/models", root);
    DIR *d = opendir(path);
    if (!d) return 0;
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL && n < SHARED_MODELS_MAX) {
        if (e->d_name[0] == '.') continue;
        snprintf(path, sizeof path, "%s/fixtures/%s/%s", root, e->d_name, fixture_file);
        if (access(path, R_OK) != 0) continue;
        snprintf(store[n], sizeof store[n], "%s", e->d_name);
        list[n] = store[n];
        n++;
    }
    closedir(d);
    qsort(list, (size_t)n, sizeof list[0], cmp_str);
    return n;
}
