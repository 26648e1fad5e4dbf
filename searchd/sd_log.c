/* Clocks and the log. */
#include "sd_log.h"

#include <stdarg.h>
#include <stdio.h>
#include <time.h>
#include <unistd.h>

static double seconds(clockid_t clock) {
    struct timespec ts;
    clock_gettime(clock, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

double sd_now(void) {
    return seconds(CLOCK_REALTIME);
}

double sd_mono(void) {
    return seconds(CLOCK_MONOTONIC);
}

void sd_log(const char *fmt, ...) {
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    fprintf(stderr, "searchd[%ld]: %s\n", (long)getpid(), msg);
}
