/* The pool's bookkeeping, once for every kind of work. */
#include "sd_pool.h"

#include "sd_error.h"

int sd_pool_submit(sd_daemon *d, uv_work_t *w, uv_work_cb work, uv_after_work_cb after,
                   en_diag *diag) {
    if (d->stopping) return en_fail(diag, SD_ESHUTDOWN, "searchd is shutting down");
    int rc = uv_queue_work(d->loop, w, work, after);
    if (rc < 0) return en_fail(diag, rc, "uv_queue_work: %s", uv_strerror(rc));
    d->tasks++;
    return 0;
}

void sd_pool_done(sd_daemon *d) {
    d->tasks--;
    sd_daemon_maybe_finish(d);
}
