#include "en_flops.h"

#include "en_forward.h"

double en_flops_layer(const en_config *cfg, int n, int k) {
    double H = cfg->hidden, I = cfg->ffn, dn = n, dk = k;
    return 2 * dn * H * 3 * H   // Q, K, V for every row
           + 2 * dn * dn * H    // scores
           + 2 * dk * dn * H    // context, kept queries only
           + 2 * dk * H * H     // attention output
           + 4 * dk * H * I;    // FFN, both matrices
}

double en_flops_head(const en_config *cfg) {
    double H = cfg->hidden;
    return 2 * H * H + 2 * H * cfg->num_labels;
}

double en_flops_sequence(const en_config *cfg, int n0, const double *ratios) {
    double total = en_flops_head(cfg);
    int n = n0;
    for (int l = 0; l < cfg->layers; l++) {
        int k = ratios ? en_keep_count(ratios[l], n0, n) : n;
        total += en_flops_layer(cfg, n, k);
        n = k;
    }
    return total;
}
