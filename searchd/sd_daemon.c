/* The end of a clean shutdown: the last handles close when nothing is left to wait for. */
#include "sd_daemon.h"

void sd_daemon_maybe_finish(sd_daemon *d) {
    if (!d->stopping || d->finished || d->tasks > 0 || d->nconns > 0) return;
    d->finished = 1;
    uv_close((uv_handle_t *)&d->sigint, NULL);
    uv_close((uv_handle_t *)&d->sigterm, NULL);
    uv_close((uv_handle_t *)&d->sighup, NULL);
    uv_close((uv_handle_t *)&d->progress_async, NULL);
    uv_close((uv_handle_t *)&d->conn_timer, NULL);
    uv_close((uv_handle_t *)&d->lease_wait, NULL);
}
