#pragma once
/* Element-wise math on GCC vector types, for the kernels: the includer defines `vf` (a vector of
 * floats) and `vi` (int32 of the same size) first. Only multiply-adds, compares and one division,
 * so each instance compiles to straight-line vector code for its instruction set. */

static inline vf vm_splat(float s) {
    return (vf){0} + s;
}

static inline vf vm_select(vi mask, vf yes, vf no) {
    return (vf)(((vi)yes & mask) | ((vi)no & ~mask));
}

/* Rational approximation of erf on [-4, 4] (beyond it erf is +-1 in float), the one Eigen and
 * XLA use: odd polynomial over even polynomial; |error| < 1e-6 against libm (tested). */
static inline vf vm_erf(vf x) {
    vf four = vm_splat(4.f), minus_four = vm_splat(-4.f);
    x = vm_select(x > four, four, x);
    x = vm_select(x < minus_four, minus_four, x);
    vf x2 = x * x;
    vf p = x2 * -2.72614225801306e-10f + 2.77068142495902e-08f;
    p = x2 * p + -2.10102402082508e-06f;
    p = x2 * p + -5.69250639462346e-05f;
    p = x2 * p + -7.34990630326855e-04f;
    p = x2 * p + -2.95459980854025e-03f;
    p = x2 * p + -1.60960333262415e-02f;
    p = x * p;
    vf q = x2 * -1.45660718464996e-05f + -2.13374055278905e-04f;
    q = x2 * q + -1.68282697438203e-03f;
    q = x2 * q + -7.37332916720468e-03f;
    q = x2 * q + -1.42647390514189e-02f;
    return p / q;
}

/* GELU, exact erf form: x / 2 * (1 + erf(x / sqrt 2)). */
static inline vf vm_gelu(vf x) {
    return 0.5f * x * (1.f + vm_erf(x * 0.70710678118654752f));
}

static inline vf vm_max(vf a, vf b) {
    return vm_select(a > b, a, b);
}

/* exp by range reduction x = n ln2 + r, |r| <= ln2/2, a degree-6 polynomial for e^r and 2^n put
 * straight into the exponent bits. Inputs below -87 flush to about 0, which is what softmax
 * wants; relative error < 1e-6 (tested). */
static inline vf vm_exp(vf x) {
    x = vm_max(x, vm_splat(-87.f));
    x = vm_select(x > vm_splat(88.f), vm_splat(88.f), x);
    /* round to nearest by adding 1.5 * 2^23 */
    vf n = (x * 1.44269504088896341f + 12582912.f) - 12582912.f;
    vf r = x - n * 0.693359375f;
    r = r - n * -2.12194440e-4f;
    vf p = r * 1.9875691500e-4f + 1.3981999507e-3f;
    p = p * r + 8.3334519073e-3f;
    p = p * r + 4.1665795894e-2f;
    p = p * r + 1.6666665459e-1f;
    p = p * r + 5.0000001201e-1f;
    p = p * r * r + r + 1.f;
    vi bits = (__builtin_convertvector(n, vi) + 127) << 23;
    return p * (vf)bits;
}
