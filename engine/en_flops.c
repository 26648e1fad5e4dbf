#include "en_flops.h"

#include "en_forward.h"

double en_flops_layer_width(const en_config *cfg, int n, int k, int g, int m) {
    double H = cfg->hidden, gd = (double)g * (cfg->hidden / cfg->heads), dn = n, dk = k;
    return 2 * dn * H * 3 * gd // Q, K, V of the kept heads for every row
           + 2 * dn * dn * gd  // scores
           + 2 * dk * dn * gd  // context, kept queries only
           + 2 * dk * gd * H   // attention output
           + 4 * dk * H * m;   // FFN, both matrices, kept neurons
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
        total += en_flops_layer_width(cfg, n, k, cfg->heads, cfg->ffn);
        n = k;
    }
    return total;
}

double en_flops_model_sequence(const en_model *m, int n0, const double *ratios) {
    const en_config *cfg = &m->cfg;
    double total = en_flops_head(cfg);
    int n = n0;
    for (int l = 0; l < cfg->layers; l++) {
        int k = ratios ? en_keep_count(ratios[l], n0, n) : n;
        total += en_flops_layer_width(cfg, n, k, m->w.layer[l].heads, m->w.layer[l].ffn);
        n = k;
    }
    return total;
}
