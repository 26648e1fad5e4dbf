#pragma once
/* A small C ABI over the engine for other languages (the Python package `searchd` loads it
 * with ctypes): load a model folder, read its labels, classify a batch of texts under a
 * schedule's text form. Plain C types only, no structs to mirror. One model serves any number
 * of threads at once: each call borrows a run state from the model's pool (a mutex guards the
 * pool only, so calls from different threads run in parallel).
 *
 * Errors are the engine's and the schedules' negative codes; the message goes into the
 * caller's `err` buffer (`errlen` bytes, NULL allowed). */

#include <stddef.h>
#include <stdint.h>

typedef struct sdpy_model sdpy_model;

/// Loads the model folder `dir` into `*out` (owned by the caller: sdpy_model_free()).
int sdpy_model_load(const char *dir, sdpy_model **out, char *err, size_t errlen);
/// Frees the model and its pool of run states. NULL allowed. No call may be running.
void sdpy_model_free(sdpy_model *m);
/// Number of encoder layers.
int sdpy_model_layers(const sdpy_model *m);
/// Number of labels.
int sdpy_model_num_labels(const sdpy_model *m);
/// id2label's name of label `i` (borrowed from the model), NULL when out of range.
const char *sdpy_model_label(const sdpy_model *m, int i);
/// The family's name ("BERT", "DistilBERT", ...), borrowed.
const char *sdpy_model_family(const sdpy_model *m);
/// The longest sequence the model takes, in tokens.
int sdpy_model_max_tokens(const sdpy_model *m);

/// Classifies `n` texts (pairs[i] is the second segment, or pairs NULL / pairs[i] NULL) under
/// `schedule` (its text form, `attn:1,0.7,0.5,0.3`; NULL or "" for no pruning). Writes, per
/// text, the predicted label into label[i], the probabilities of every label into
/// prob[i * num_labels ...] (softmax in double, as searchctl prints them) and the token count
/// into tokens[i] (NULL allowed). All arrays are the caller's. On failure nothing after the
/// failing text is written and `err` names the text's index.
int sdpy_classify(sdpy_model *m, const char *schedule, int n, const char *const *texts,
                  const char *const *pairs, int32_t *label, double *prob, int32_t *tokens,
                  char *err, size_t errlen);

/// The same under a record as searchd sends it (schedule.get, schedule.frontier), msgpack-encoded
/// in `record` (`len` bytes, borrowed): its schedule, at its precision, on the network its
/// "width" keeps (built once and kept while the same schedule is asked for). sdpy_classify()
/// refuses a schedule that narrows layers: only the record says which heads and neurons.
int sdpy_classify_record(sdpy_model *m, const void *record, size_t len, int n,
                         const char *const *texts, const char *const *pairs, int32_t *label,
                         double *prob, int32_t *tokens, char *err, size_t errlen);

/// The message of a code (engine, schedules or negated errno), static.
const char *sdpy_strerror(int code);
