#pragma once
/* Helpers of the daemon tests: a real searchd started and stopped as a child process in a temp
 * dir, the fixtures that do it, and short forms of client calls (paths, temp dirs, files and
 * raw requests are tests/common's). */

#include <check.h>
#include <sys/types.h>

#include "client/sdc.h"
#include "tests/common/tc_env.h"
#include "tests/common/tc_files.h"
#include "tests/common/tc_rpc.h"
#include "tests/common/tc_shell.h"
#include "tests/common/tc_temp.h"

Suite *sp_suite(void);
Suite *store_suite(void);
Suite *rpc_suite(void);
Suite *state_suite(void);
Suite *cli_suite(void);
Suite *families_suite(void);
Suite *integrity_suite(void);
Suite *fleet_suite(void);

typedef struct td {
    char dir[256];   // temp dir of this test
    char sock[300];  // dir/s.sock
    char state[300]; // dir/state
    char log[300];   // dir/searchd.log
    pid_t pid;
} td;

/// A fresh temp dir; with `from_template`, its state dir is a copy of the tuned template.
void td_init(td *t, int from_template);
/// Starts searchd with the test's socket and state dir plus `extra` options (NULL-terminated,
/// may be NULL) and waits until it answers. Fails the test otherwise.
void td_start(td *t, const char *const *extra);
/// Sends `sig` and waits for the exit; returns the exit status (128 + signal when killed).
int td_stop(td *t, int sig);
/// Stops searchd (SIGKILL) if it runs and removes the temp dir (kept with $SD_TEST_KEEP).
void td_cleanup(td *t);
sdc_client *td_connect(const td *t);
/// 1 when searchd's log holds `text`.
int td_log_has(const td *t, const char *text);
void td_sleep_ms(int ms);

/// The test's searchd and temp dir, which the fixtures below set up (each test runs in its own
/// process, CK_FORK=yes).
extern td td_cur;
void td_setup_dir(void);      // a fresh temp dir; no state, searchd not started
void td_setup_template(void); // the tuned template's state; each test starts searchd itself
void td_setup_empty(void);    // a fresh temp dir, searchd started
void td_setup_tuned(void);    // the tuned template's state, searchd started
/// Stops searchd with SIGTERM, which must exit 0 (a clean shutdown: uv_loop_close() returned
/// 0), and removes the temp dir.
void td_teardown(void);

/// The template made once by main(): a state dir holding the demo model with a frontier.
extern char td_template[300];
extern char td_model_id[32];
extern char td_data[300]; // the small data file the template was tuned on
/// Builds the template (returns 0 on success, else prints why).
int td_template_build(void);
void td_template_remove(void);

/// schedule.frontier of `model` as one JSON string (malloc'ed), to compare across restarts.
char *td_frontier_text(sdc_client *c, const char *model);
/// A copy of the demo model in folder `to`.
void td_copy_model(const char *to);
/// Flips one payload byte (offset 40) of `<state_dir>/<kind>-<td_model_id>.state`, so its
/// checksum no longer matches: kind "model" or "frontier".
void td_damage_state(const char *state_dir, const char *kind);
/// Runs a shell command; its exit status (or -1), its output (stdout and stderr) in `out`.
int td_run_output(const char *cmd, char *out, size_t cap);

/// Sends the raw bytes of `m` (tests/common/tc_rpc.h), asserting they were sent.
void td_send(sdc_client *c, const tc_msg *m);
/// model.add of `path` with `data` must fail at once (not time out) with a message holding
/// `expect`.
void td_add_refused(sdc_client *c, const char *path, const char *data, const char *expect);

/// Calls and asserts success; the reply is returned for inspection (free it).
void td_call_ok(sdc_client *c, const char *method, const sdc_arg *args, int n, sdc_reply *r);
/// Calls and asserts failure with `code`; returns nothing, the message goes to `msg`.
void td_call_err(sdc_client *c, const char *method, const sdc_arg *args, int n, int code, char *msg,
                 size_t cap);
double td_num(const msgpack_object *map, const char *key);
const char *td_str(const msgpack_object *map, const char *key, char *buf, size_t cap);
/// Starts a tune of `model` and waits for its job.done: 0 when it is "done".
int td_tune_wait(sdc_client *c, const char *model, sp_diag *dg);
/// Waits for a notification named `method` (others are skipped); 0 or the timeout error.
int td_wait_note(sdc_client *c, const char *method, int timeout_ms, sdc_note *n);
