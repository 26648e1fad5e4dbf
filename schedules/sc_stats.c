#include "sc_stats.h"

#include <math.h>
#include <string.h>

void sc_paired_compare(const uint8_t *base, const uint8_t *cand, const int *index, int n,
                       sc_paired *out) {
    memset(out, 0, sizeof *out);
    out->n = n;
    for (int i = 0; i < n; i++) {
        int e = index ? index[i] : i;
        int b = base[e] != 0, c = cand[e] != 0;
        out->base_correct += b;
        out->correct += c;
        out->lost += b && !c;
        out->gained += !b && c;
    }
    out->drop = n > 0 ? (double)(out->base_correct - out->correct) / n : 0.0;
    out->drop_upper = sc_drop_upper(n, out->lost, out->gained);
}

double sc_drop_upper(int n, int lost, int gained) {
    if (n <= 0) return 1.0;
    if (n == 1) return 1.0; // one example says nothing about the spread
    double mean = (double)(lost - gained) / n;
    // d_i is +1 (lost), -1 (gained) or 0, so sum d_i^2 = lost + gained.
    int disc = lost + gained;
    if (disc == 0) disc = 1;
    double var = ((double)disc - n * mean * mean) / (n - 1);
    if (var < 0) var = 0;
    return mean + SC_Z95 * sqrt(var / n);
}
