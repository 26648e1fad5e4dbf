#pragma once
/* A registered model's lifetime (reference counted), lookups in the registry list, and what
 * belongs to the model rather than to the daemon: the weights and data sets pool work loads,
 * the lengths latency is predicted over, the re-prediction of its frontier, and this host's
 * fingerprint its profile is measured against. */

#include <stdint.h>

#include "engine/en_dataset.h"
#include "engine/en_model.h"
#include "schedules/sc_frontier.h"
#include "schedules/sc_hardware.h"
#include "schedules/sc_latency.h"
#include "searchd/sd_daemon.h"

/// A registered model. Reference counted: pool work holds a reference, so model.remove only
/// unlinks it and the last holder frees it.
struct sd_model {
    char id[SD_ID_LEN]; // hex of the weights' FNV-1a hash
    char name[128];
    char path[1024], data[1024], holdout[1024]; // holdout may be ""
    uint64_t weights_hash;
    uint64_t data_hash; // the fleet's: FNV-1a of the data and holdout bytes, when data_hashed
    int data_hashed;
    int layers;
    double added;         // unix time
    en_model *model;      // owned, NULL until pool work loaded it
    sc_frontier frontier; // owned; count 0 until a search finished
    sc_latency_model lat; // valid when has_lat
    int has_lat;
    char hw_text[256]; // sc_hw_format(&lat.hw)
    int *lengths;      // owned: lengths of the examples latency is predicted over, or NULL
    int nlengths;
    double base_latency_ms; // the unpruned model's predicted latency over `lengths`; 0: unknown
    int refs;
    int removed;
    int changed;       // the weights under `path` are no longer the ones registered (see model.add)
    int fleet_loading; // sd_fleet_load is loading its weights and lengths for fleet records
    uint64_t fleet_merges; // fleet merges that changed its frontier (a waiting tune reads it)
    struct sd_model *next;
};

/// The model of list `models` whose id or name is `key`, or NULL. The list keeps it: take a
/// reference (sd_model_ref) to hold it beyond the current callback.
sd_model *sd_model_find(sd_model *models, const char *key);
/// The model of `models` other than `except` registered under `name`, or NULL.
sd_model *sd_model_named(sd_model *models, const char *name, const sd_model *except);
/// A registered name never looks like an id (16 hex digits): lookups take either.
int sd_model_name_is_id(const char *name);
void sd_model_ref(sd_model *m);
/// Drops a reference; the last one frees the model with its weights, frontier and lengths.
void sd_model_unref(sd_model *m);
void sd_model_set_lat(sd_model *m, const sc_latency_model *lat);
/// The fleet's data hash of m (m->data_hash, computed once): FNV-1a of the data file's bytes, a
/// NUL byte, then the holdout file's bytes when there is one. 0, or -1 when a file cannot be
/// read. Loop thread (it reads the files the first time).
int sd_model_data_hash(sd_model *m);
/// Re-predicts every record's latency with the model's profile over its lengths (when it has
/// both) and re-ranks the frontier. Loop thread.
void sd_model_repredict(sd_model *m);
/// Gives `*lengths` (malloc'ed) to the model unless it has some already; frees it otherwise.
void sd_model_take_lengths(sd_model *m, int **lengths, int n);

/// What pool work runs on, loaded the same way for model.add, a search and a retune.
typedef struct sd_inputs {
    const en_model *em;      // the weights: borrowed, or `own`
    en_model *own;           // loaded here when nothing was borrowed; the caller takes or frees it
    en_dataset *data, *hold; // owned (sd_inputs_free); NULL when not asked for
} sd_inputs;

/// Fills `in`: the weights are `borrowed` (a registered model's, already loaded) when not NULL,
/// else loaded from `path` after en_checkpoint_check() and, when `weights_hash` is not 0,
/// checked against it (SD_ECHANGED); then data set `data` and holdout `holdout` ("" for none)
/// as those weights tokenize them. Pool thread. On error what was loaded stays in `in`.
int sd_inputs_load(sd_inputs *in, const char *path, uint64_t weights_hash, const en_model *borrowed,
                   const char *data, const char *holdout, en_diag *diag);
/// Frees the data sets (not `own`).
void sd_inputs_free(sd_inputs *in);
/// Lengths of the evaluation examples (the holdout's, else the data's): `*lengths` is malloc'ed
/// and owned by the caller; NULL and 0 when out of memory or no data set was loaded.
void sd_inputs_lengths(const sd_inputs *in, int **lengths, int *n);
/// Lengths of the examples of data set `path` as model `em` tokenizes them: `*lengths` is
/// malloc'ed and owned by the caller. Pool thread.
int sd_lengths_load(const char *path, const en_model *em, int **lengths, int *count, en_diag *diag);
/// SD_ECHANGED, with a message saying what to do, when the weights loaded from `path` hash to
/// `found` instead of the `registered` hash; else 0.
int sd_weights_check(const char *path, uint64_t registered, uint64_t found, en_diag *diag);

/// Detects this host's fingerprint; `override` ("" for none, "@FILE" to read it from FILE each
/// time) replaces the CPU model.
void sd_hw_detect(const char *override, sc_hw *out);
