/* Checkpoint folders: which weights file is there (en_layout.h). */
#include "en_layout.h"

#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

static int has(const char *dir, const char *name) {
    char path[4096];
    struct stat st;
    return snprintf(path, sizeof path, "%s/%s", dir, name) < (int)sizeof path &&
           stat(path, &st) == 0;
}

int en_checkpoint_check(const char *dir, en_diag *diag) {
    if (has(dir, "model.safetensors")) return 0;
    static const char convert[] =
        "python3 -c \"from transformers import AutoModelForSequenceClassification as M; "
        "M.from_pretrained('%s'%s).save_pretrained('%s', safe_serialization=True, "
        "max_shard_size='1000GB')\"";
    static const struct {
        const char *file, *what, *from;
    } other[] = {
        {"model.safetensors.index.json", "sharded safetensors (model-0000N-of-0000M.safetensors)",
         ""},
        {"pytorch_model.bin", "pytorch_model.bin (a PyTorch pickle)", ""},
        {"pytorch_model.bin.index.json",
         "sharded PyTorch weights (pytorch_model-0000N-of-0000M.bin)", ""},
        {"tf_model.h5", "TensorFlow weights (tf_model.h5)", ", from_tf=True"},
        {"flax_model.msgpack", "Flax weights (flax_model.msgpack)", ", from_flax=True"},
    };
    for (size_t i = 0; i < sizeof other / sizeof other[0]; i++) {
        if (!has(dir, other[i].file)) continue;
        char how[1024];
        snprintf(how, sizeof how, convert, dir, other[i].from, dir);
        return en_fail(diag, EN_EFORMAT,
                       "%s: found %s but no model.safetensors, the one weights file read; write "
                       "it with: %s",
                       dir, other[i].what, how);
    }
    DIR *d = opendir(dir);
    if (!d) return 0; // no folder: the loader names the file it misses (DIR/config.json)
    char list[400] = "";
    int n = 0;
    for (struct dirent *e; (e = readdir(d));) {
        if (e->d_name[0] == '.') continue;
        size_t len = strlen(list);
        if (len + strlen(e->d_name) + 8 < sizeof list)
            snprintf(list + len, sizeof list - len, "%s%s", n ? ", " : "", e->d_name);
        else if (len + 5 < sizeof list && !strstr(list, ", ..."))
            snprintf(list + len, sizeof list - len, ", ...");
        n++;
    }
    closedir(d);
    return en_fail(diag, -ENOENT,
                   "%s: no model.safetensors (a Hugging Face checkpoint folder as "
                   "save_pretrained() writes it); the folder has %s",
                   dir, n ? list : "no files");
}
