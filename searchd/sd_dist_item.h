#pragma once
/* What a search's originator (sd_dist_origin.c) and the worker (sd_dist.c) share: the settings
 * of the fleet's Redis, the wire form of work items and results, and serving one item. Internal
 * to searchd/; the interface is sd_dist.h. */

#include <hiredis/hiredis.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "engine/en_dataset.h"
#include "engine/en_model.h"
#include "schedules/sc_prefix_eval.h"
#include "schedules/sc_schedule.h"
#include "searchd/sd_daemon.h"

#define DIST_GROUP "eval"
#define DIST_CHUNKS 8        // a batch is cut in about this many items: several per host
#define DIST_CHUNK_MIN 8     // examples: below, an item's round trip outweighs its work
#define DIST_CHUNK_MAX 48    // and above, a slow host holds the batch back too long
#define DIST_STALE_MS 5000   // a claimed item idle this long: its host went silent
#define DIST_ORPHAN_MS 60000 // an unclaimed item this old: its originator died
#define DIST_CLAIM_EVERY 1.0 // seconds between looks for such items
#define DIST_REPLY_BLOCK_MS 100
#define DIST_WORKER_BLOCK_MS 500
#define DIST_IDLE_FREE 60.0 // seconds without items before the worker frees its model
#define DIST_RETRY 5.0      // seconds before a failed connection is tried again
#define DIST_REPLY_TTL 600  // a reply stream nobody reads (its originator died) expires
#define DIST_NICE 10        // as searches: the loop thread answers first
#define DIST_LOST 1         // Redis failed (positive: never an error code)

/* A registered model, as the loop thread hands it to the worker. */
typedef struct wmodel {
    char stream[160];
    char path[1024], data[1024];
    uint64_t weights_hash;
} wmodel;

typedef struct sd_dist {
    sd_daemon *d; // loop side only (the timer)
    // Set by sd_dist_start, read-only afterwards: any thread.
    char host[256], password[256], name[320]; // name: hostname/pid, the consumers' prefix
    int port, db, threads;
    atomic_long *sent, *evaluated, *reclaimed, *dropped;
    uv_timer_t timer;
    uv_thread_t thread;
    int has_thread;
    atomic_int stop; // also the cancel flag of the worker's evaluations
    atomic_int busy; // this host runs a search or retune: no spare cores
    uv_mutex_t lock; // guards models, nmodels, version
    wmodel *models;
    int nmodels, version;
} sd_dist;

/* A work item's fields, borrowed from its reply. */
typedef struct item {
    const char *id, *reply, *sched, *index;
    size_t sched_len, index_len;
    long chunk;
    uint64_t check;
} item;

void sd_dist_sleep_ms(int ms);

/* ---- wire forms: int32 little-endian blobs, the check, schedules as text ---- */
void sd_dist_put_i32(char *p, int32_t v);
int32_t sd_dist_get_i32(const char *p);
/// FNV-1a over the token ids of examples index[0..n) of `ds`: a host whose data or tokenizer
/// differs refuses the item.
uint64_t sd_dist_check(const en_dataset *ds, const int *index, int n);
/// The schedules' canonical texts, one per line: malloc'ed (the caller frees it), or NULL.
char *sd_dist_sched_text(const sc_schedule *s, int count);

/* ---- replies and connections ---- */
int sd_dist_is_str(const redisReply *r);
/// Reads an entry [id, [field, value, ...]] of `e` (borrowed; `it` points into it) into `it`:
/// 0, or -1 when it is not a work item.
int sd_dist_item_parse(const redisReply *e, item *it);
/// The entries of a one-stream XREADGROUP/XREAD reply [[stream, [entry...]]] (borrowed from
/// `r`), or NULL.
const redisReply *sd_dist_entries(const redisReply *r);
/// A connection to the fleet's Redis, named `name` (CLIENT LIST shows who is who): owned by the
/// caller (redisFree), or NULL.
redisContext *sd_dist_connect(const sd_dist *w, const char *name);
/// XGROUP CREATE ... $ MKSTREAM: 0 when the group exists now (BUSYGROUP: it did), -1 when Redis
/// failed. `$`: items left by an originator that died before are not served.
int sd_dist_group_create(redisContext *c, const char *stream);
/// Redis's clock in milliseconds (TIME), or -1: item ids count from it.
long long sd_dist_redis_ms(redisContext *c);
/// An entry of `stream` no originator will collect: not a work item, or unclaimed until older
/// than DIST_ORPHAN_MS at `now_ms` (Redis's clock; <= 0: age unknown, not judged). Acked and
/// deleted, counted in `*dropped`: 1; 0 when `e` is a live item (parsed into `it`).
int sd_dist_item_orphan(redisContext *c, const char *stream, const redisReply *e, item *it,
                        long long now_ms, atomic_long *dropped);
/// Evaluates item `it` of `stream` with model `em` on data set `ds` (all borrowed), posts the
/// result (or the error) on its reply stream, acks and deletes it and counts it in `*count`. 0
/// (also when cancelled: the item stays pending and is taken back), DIST_LOST when Redis failed.
int sd_dist_item_serve(redisContext *c, const char *stream, const item *it, const en_model *em,
                       const en_dataset *ds, int threads, atomic_int *cancel, atomic_long *count);
