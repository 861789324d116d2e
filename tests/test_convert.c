// test_convert.c: Q5_0 / Q5_1 reference dequantization (hand-built blocks), and the at-load
// conversions of the types no kernel reads (quant_convert_row, quant.h) against the reference
// dequantization of the original blocks, alone and through the fast matmul path.
// Tolerances (stated in quant.h, derived there):
//   Q5_0 → Q8_0: exact, the same floats bit for bit.
//   Q4_K → Q4_1: per element ≤ 2^-11·(15·|d·sc| + |dmin·m|) (fp16 rounding of the two scale
//                products) + 16·2^-25 (the products' subnormal range) + the reference's own
//                float rounding, 2^-23·(15·|d·sc| + |dmin·m|).
//   Q5_1, Q5_K, Q6_K → Q8_0: per element ≤ (0.5 + 127·2^-11)·amax/127 over each block of 32
//                (round to nearest, plus the fp16 rounding of the scale), + 127·2^-25 (the
//                scale's rounding where it is an fp16 subnormal, amax < 127·2^-14), + 2^-20·amax.
// Fast path: matmul_forward_n on the packed converted weights (no rows passed) equals
// matmul_forward_qref on the converted rows bit for bit, and stays within the activation-
// rounding bound of test_quant.c plus Σ|Δw·x| of matmul_forward_ref on the original rows.
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "model/matmul.h"
#include "model/quant.h"
#include "tests/support/test_rng.h"

static uint32_t f2u(float f) {
    uint32_t u;
    memcpy(&u, &f, 4);
    return u;
}
static void put16(uint8_t *p, uint16_t v) {
    p[0] = (uint8_t)v;
    p[1] = (uint8_t)(v >> 8);
}
// A random fp16 scale of magnitude in [lo, 2·lo), sign random when `sign`.
static uint16_t rand_scale(float lo, int sign) {
    float v = lo * (1.0f + (rng_uniform() + 1.0f) / 2.0f);
    return fp32_to_fp16(sign && (rng_u32() & 1) ? -v : v);
}

// ---------------------------------------------------------------------------------------------
// Q5_0 / Q5_1 reference, from hand-built blocks: element j's 5-bit value v_j has its low 4 bits
// in qs[j % 16] (low nibble for j < 16, high nibble for j ≥ 16) and its 5th bit at bit j of
// qh read as a little-endian u32 (byte j / 8, bit j % 8).

static void build_q5(int v[32], uint8_t *qh, uint8_t *qs) {
    memset(qh, 0, 4);
    for (int j = 0; j < 16; j++) qs[j] = (uint8_t)((v[j] & 15) | (v[j + 16] & 15) << 4);
    for (int j = 0; j < 32; j++)
        if (v[j] & 16) qh[j / 8] |= (uint8_t)(1u << (j % 8));
}

static void test_dequant_q5(void **state) {
    (void)state;
    int v[32];
    for (int j = 0; j < 32; j++) v[j] = (j * 7 + 3) % 32;  // every value 0..31 once
    uint8_t b0[44], b1[48];
    // Q5_0, two blocks: d = 0.5 then d = -0.25 (the second read from byte 22).
    for (int k = 0; k < 2; k++) {
        put16(b0 + 22 * k, k ? 0xb400 : 0x3800);
        build_q5(v, b0 + 22 * k + 2, b0 + 22 * k + 6);
    }
    float y[64];
    dequantize_row(QTYPE_Q5_0, b0, y, 64);
    for (int j = 0; j < 32; j++) {
        if (y[j] != 0.5f * (float)(v[j] - 16)) fail_msg("q5_0[%d] = %g, want %g", j, (double)y[j], 0.5 * (v[j] - 16));
        if (y[32 + j] != -0.25f * (float)(v[j] - 16)) fail_msg("q5_0[32+%d] = %g", j, (double)y[32 + j]);
    }
    // Q5_1, two blocks: d = 0.25, m = -1.5, then d = 2, m = 0.5.
    for (int k = 0; k < 2; k++) {
        put16(b1 + 24 * k, k ? 0x4000 : 0x3400);
        put16(b1 + 24 * k + 2, k ? 0x3800 : 0xbe00);
        build_q5(v, b1 + 24 * k + 4, b1 + 24 * k + 8);
    }
    dequantize_row(QTYPE_Q5_1, b1, y, 64);
    for (int j = 0; j < 32; j++) {
        if (y[j] != 0.25f * (float)v[j] - 1.5f) fail_msg("q5_1[%d] = %g, want %g", j, (double)y[j], 0.25 * v[j] - 1.5);
        if (y[32 + j] != 2.0f * (float)v[j] + 0.5f) fail_msg("q5_1[32+%d] = %g", j, (double)y[32 + j]);
    }
    // A lone 5th bit: only element 20 has it (qh bit 20 = byte 2, bit 4), all low bits 0.
    uint8_t one[22] = {0};
    put16(one, 0x3c00);  // d = 1
    one[2 + 2] = 0x10;
    dequantize_row(QTYPE_Q5_0, one, y, 32);
    for (int j = 0; j < 32; j++) assert_true(y[j] == (j == 20 ? 0.0f : -16.0f));
}

// ---------------------------------------------------------------------------------------------
// Random blocks: random quant bytes, scales set to sane fp16 values.

static void rand_row(uint32_t type, uint8_t *row, int64_t n) {
    const size_t bb = qtype_block_bytes(type);
    const int64_t nb = n / qtype_block_size(type);
    for (size_t i = 0; i < bb * (size_t)nb; i++) row[i] = (uint8_t)rng_u32();
    for (int64_t b = 0; b < nb; b++) {
        uint8_t *p = row + (size_t)b * bb;
        switch (type) {
        case QTYPE_Q5_0: put16(p, rand_scale(0.002f, 1)); break;
        case QTYPE_Q5_1: put16(p, rand_scale(0.002f, 0)), put16(p + 2, rand_scale(0.03f, 1)); break;
        case QTYPE_Q4_K:
        case QTYPE_Q5_K:
            // Scale bytes stay random (6-bit scales and mins 0..63); d, dmin small.
            put16(p, rand_scale(0.0002f, 0)), put16(p + 2, rand_scale(0.0003f, 0));
            break;
        case QTYPE_Q6_K: put16(p + 208, rand_scale(0.0001f, 1)); break;  // int8 scales stay random
        default: break;
        }
    }
}

// The per-element bound of the conversion of one row (see the top of the file).
static void convert_bounds(uint32_t type, const uint8_t *row, const float *ref, int64_t n, double *bound) {
    if (type == QTYPE_Q5_0) {
        for (int64_t i = 0; i < n; i++) bound[i] = 0;
        return;
    }
    if (type == QTYPE_Q4_K) {
        for (int64_t b = 0; b < n / 256; b++) {
            const uint8_t *p = row + b * 144, *s = p + 4;
            uint16_t dh, mh;
            memcpy(&dh, p, 2), memcpy(&mh, p + 2, 2);
            double d = fp16_to_fp32(dh), dmin = fp16_to_fp32(mh);
            for (int j = 0; j < 8; j++) {
                int sc = j < 4 ? s[j] & 63 : (s[j + 4] & 15) | (s[j - 4] >> 6) << 4;
                int m = j < 4 ? s[j + 4] & 63 : (s[j + 4] >> 4) | (s[j] >> 6) << 4;
                double mag = 15 * fabs(d * sc) + fabs(dmin * m);
                for (int l = 0; l < 32; l++) bound[b * 256 + 32 * j + l] = ldexp(mag, -11) + 16 * ldexp(1, -25) + ldexp(mag, -23);
            }
        }
        return;
    }
    for (int64_t b = 0; b < n / 32; b++) {  // re-quantized to Q8_0
        double amax = 0;
        for (int j = 0; j < 32; j++) amax = fmax(amax, fabs(ref[32 * b + j]));
        for (int j = 0; j < 32; j++) bound[32 * b + j] = (0.5 + 127 * ldexp(1, -11)) * amax / 127 + 127 * ldexp(1, -25) + ldexp(amax, -20);
    }
}

static void test_convert_targets(void **state) {
    (void)state;
    assert_int_equal(quant_convert_target(QTYPE_Q5_0), QTYPE_Q8_0);
    assert_int_equal(quant_convert_target(QTYPE_Q5_1), QTYPE_Q8_0);
    assert_int_equal(quant_convert_target(QTYPE_Q4_K), QTYPE_Q4_1);
    assert_int_equal(quant_convert_target(QTYPE_Q5_K), QTYPE_Q8_0);
    assert_int_equal(quant_convert_target(QTYPE_Q6_K), QTYPE_Q8_0);
    uint32_t none[] = {QTYPE_F32, QTYPE_F16, QTYPE_BF16, QTYPE_Q8_0, QTYPE_Q4_0, QTYPE_Q4_1, QTYPE_Q2_K, 99};
    uint8_t src[256 * 4] = {0}, dst[512];
    float tmp[256];
    for (size_t i = 0; i < sizeof(none) / sizeof(none[0]); i++) {
        assert_int_equal(quant_convert_target(none[i]), QTYPE_F32);
        assert_int_equal(quant_convert_row(none[i], src, dst, 256, tmp), -1);
    }
    // Every target is a type the kernels read, and the sizes are what the loader allocates.
    uint32_t from[] = {QTYPE_Q5_0, QTYPE_Q5_1, QTYPE_Q4_K, QTYPE_Q5_K, QTYPE_Q6_K};
    for (int i = 0; i < 5; i++) assert_true(matmul_has_kernel(quant_convert_target(from[i])));
    assert_int_equal(qtype_row_bytes(QTYPE_Q4_1, 256), 8 * 20);  // one Q4_1 block per Q4_K sub-block
    // Rows that do not fit the source blocks.
    assert_int_equal(quant_convert_row(QTYPE_Q4_K, src, dst, 128, tmp), -1);
    assert_int_equal(quant_convert_row(QTYPE_Q5_0, src, dst, 48, tmp), -1);
}

// Every convertible type, random rows: the converted row dequantizes within its bound of the
// original's reference dequantization (Q5_0: equal bit for bit), and the lossy ones do move
// (the bound is not vacuous: the worst error uses a fair part of it).
static void test_convert_vs_reference(void **state) {
    (void)state;
    const uint32_t types[] = {QTYPE_Q5_0, QTYPE_Q5_1, QTYPE_Q4_K, QTYPE_Q5_K, QTYPE_Q6_K};
    const int64_t n = 1024, rows = 64;
    for (int t = 0; t < 5; t++) {
        const uint32_t type = types[t], to = quant_convert_target(type);
        const size_t rb = qtype_row_bytes(type, n), trb = qtype_row_bytes(to, n);
        uint8_t *src = malloc(rb), *dst = malloc(trb);
        float *ref = malloc(sizeof(float) * n), *got = malloc(sizeof(float) * n), *tmp = malloc(sizeof(float) * n);
        double *bound = malloc(sizeof(double) * n), worst = 0, max_err = 0;
        for (int64_t r = 0; r < rows; r++) {
            rand_row(type, src, n);
            assert_int_equal(quant_convert_row(type, src, dst, n, tmp), 0);
            dequantize_row(type, src, ref, n);
            dequantize_row(to, dst, got, n);
            convert_bounds(type, src, ref, n, bound);
            for (int64_t i = 0; i < n; i++) {
                double err = fabs((double)got[i] - ref[i]);
                if (type == QTYPE_Q5_0 ? f2u(got[i]) != f2u(ref[i]) : err > bound[i])
                    fail_msg("%s->%s row %lld [%lld]: %.9g, reference %.9g, |err| %g > bound %g", qtype_name(type),
                             qtype_name(to), (long long)r, (long long)i, (double)got[i], (double)ref[i], err, bound[i]);
                if (bound[i] > 0 && err / bound[i] > worst) worst = err / bound[i];
                if (err > max_err) max_err = err;
            }
        }
        print_message("%s -> %s: worst |error| / bound = %.3f (max |error| %.3g)\n", qtype_name(type), qtype_name(to),
                      worst, max_err);
        if (type != QTYPE_Q5_0) assert_true(worst > 0.05);  // lossy: the check could fail
        free(src), free(dst), free(ref), free(got), free(tmp), free(bound);
    }
}

// Values whose scales do not fit the target's fp16 are refused (the loader then keeps F32).
static void test_convert_refuses_overflow(void **state) {
    (void)state;
    uint8_t k4[144] = {0}, k6[210] = {0}, dst[34 * 8];
    float tmp[256];
    put16(k4, 0x7bff);  // d = 65504
    k4[4] = 63;         // sc0 = 63: d·sc = 4.1e6, not an fp16
    assert_int_equal(quant_convert_row(QTYPE_Q4_K, k4, dst, 256, tmp), -1);
    k4[4] = 1;  // d·sc = 65504 fits
    assert_int_equal(quant_convert_row(QTYPE_Q4_K, k4, dst, 256, tmp), 0);
    put16(k6 + 208, 0x7bff);  // d = 65504, scale 127, q - 32 = -32: |y| = 2.7e8 > 65504·127
    k6[192] = 127;
    assert_int_equal(quant_convert_row(QTYPE_Q6_K, k6, dst, 256, tmp), -1);
    put16(k6 + 208, 0x3c00);  // d = 1: |y| = 4064, fine
    assert_int_equal(quant_convert_row(QTYPE_Q6_K, k6, dst, 256, tmp), 0);
    dequantize_row(QTYPE_Q8_0, dst, tmp, 256);
    assert_true(tmp[0] == -4064.0f);  // the block's amax is exact in Q8_0 (q = -127)
}

// ---------------------------------------------------------------------------------------------
// The fast path: converted rows packed as the loader does, through matmul_forward_n with no
// rows passed (only the packed copy exists), against both oracles.

static void check_fast_path(uint32_t type, int64_t N, int64_t K, int64_t B) {
    const uint32_t to = quant_convert_target(type);
    const size_t rb = qtype_row_bytes(type, K), trb = qtype_row_bytes(to, K);
    uint8_t *w = malloc(rb * (size_t)N), *wc = malloc(trb * (size_t)N);
    float *tmp = malloc(sizeof(float) * (size_t)K);
    for (int64_t r = 0; r < N; r++) {
        rand_row(type, w + r * rb, K);
        assert_int_equal(quant_convert_row(type, w + r * rb, wc + r * trb, K, tmp), 0);
    }
    size_t pb = matmul_packed_bytes(to, N, K);
    uint8_t *pk = pb ? malloc(pb) : NULL;
    if (pk) matmul_pack(to, wc, N, K, pk);
    float *x = malloc(sizeof(float) * (size_t)(B * K));
    for (int64_t i = 0; i < B * K; i++) x[i] = rng_uniform();
    size_t yn = (size_t)(N * B);
    float *y = malloc(sizeof(float) * yn), *yq = malloc(sizeof(float) * yn), *yr = malloc(sizeof(float) * yn);
    void *scratch = malloc(matmul_scratch_bytes(to, K, B));
    for (size_t i = 0; i < yn; i++) y[i] = NAN;
    matmul_job job = {to, pk ? NULL : wc, N, y, pk};
    matmul_forward_n(&job, 1, K, x, B, scratch);
    matmul_forward_qref(to, wc, N, K, x, yq, B);
    for (size_t i = 0; i < yn; i++)
        if (f2u(y[i]) != f2u(yq[i]))
            fail_msg("%s (as %s) N=%lld K=%lld B=%lld: y[%zu] = %.9g, exact oracle %.9g", qtype_name(type),
                     qtype_name(to), (long long)N, (long long)K, (long long)B, i, (double)y[i], (double)yq[i]);
    // Against the original rows: |y − ref| ≤ ‖ŵ‖·‖x − x̂‖ (activation rounding, Cauchy–Schwarz)
    // + Σ|ŵ − w|·|x| (the conversion) + Q4_1's m·s rounding + 1e-5·Σ|w·x| (float sums).
    matmul_forward_ref(type, w, N, K, x, yr, B);
    const int64_t nb = K / 32;
    matmul_act_block *a = malloc(sizeof(matmul_act_block) * (size_t)nb);
    float *wd = malloc(sizeof(float) * (size_t)K), *wcd = malloc(sizeof(float) * (size_t)K);
    double worst = 0;
    for (int64_t b = 0; b < B; b++) {
        const float *xb = x + b * K;
        matmul_quantize_act(xb, a, K);
        double e2 = 0;
        for (int64_t k = 0; k < K; k++) {
            double e = (double)xb[k] - (double)a[k / 32].d * a[k / 32].qs[k % 32];
            e2 += e * e;
        }
        for (int64_t n = 0; n < N; n++) {
            dequantize_row(type, w + n * rb, wd, K);
            dequantize_row(to, wc + n * trb, wcd, K);
            double w2 = 0, dw = 0, abs = 0, ms = 0;
            for (int64_t k = 0; k < K; k++) {
                w2 += (double)wcd[k] * wcd[k];
                dw += fabs((double)wcd[k] - wd[k]) * fabs(xb[k]);
                abs += fabs((double)wd[k] * xb[k]);
            }
            if (to == QTYPE_Q4_1)
                for (int64_t kb = 0; kb < nb; kb++) {
                    uint16_t mh;
                    memcpy(&mh, wc + n * trb + kb * 20 + 2, 2);
                    ms += fabs(fp16_to_fp32(mh)) * (fabs(a[kb].s) / 2048 + fabs((double)a[kb].sum) * a[kb].d / 1024);
                }
            double bound = sqrt(w2) * sqrt(e2) + dw + ms + 1e-5 * abs + 1e-30;
            double err = fabs((double)y[b * N + n] - yr[b * N + n]);
            if (err > bound)
                fail_msg("%s N=%lld K=%lld B=%lld: y[%lld,%lld] = %g, reference %g, |err| %g > bound %g",
                         qtype_name(type), (long long)N, (long long)K, (long long)B, (long long)b, (long long)n,
                         (double)y[b * N + n], (double)yr[b * N + n], err, bound);
            if (err / bound > worst) worst = err / bound;
        }
    }
    print_message("%s as %s, N=%lld K=%lld B=%lld%s: bit-exact vs its oracle; worst error / bound vs the "
                  "original = %.3f\n",
                  qtype_name(type), qtype_name(to), (long long)N, (long long)K, (long long)B,
                  pk ? " (packed)" : " (rows)", worst);
    free(w), free(wc), free(tmp), free(pk), free(x), free(y), free(yq), free(yr), free(scratch), free(a), free(wd),
        free(wcd);
}

static void test_fast_path(void **state) {
    (void)state;
    const uint32_t types[] = {QTYPE_Q5_0, QTYPE_Q5_1, QTYPE_Q4_K, QTYPE_Q5_K, QTYPE_Q6_K};
    // 48 rows: packed (three groups of 16); 37: the rows path (not a multiple of 16). B = 1
    // and 3: the row kernels; 17: the panel path. K = 896 is the 0.5B's width (Q5 only).
    for (int t = 0; t < 5; t++) {
        const int k5 = types[t] == QTYPE_Q5_0 || types[t] == QTYPE_Q5_1;
        check_fast_path(types[t], 48, k5 ? 896 : 512, 1);
        check_fast_path(types[t], 48, 512, 3);
        check_fast_path(types[t], 48, 512, 17);
        check_fast_path(types[t], 37, 256, 2);
    }
}

int main(void) {
    test_rng_seed(2024);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_dequant_q5),
        cmocka_unit_test(test_convert_targets),
        cmocka_unit_test(test_convert_vs_reference),
        cmocka_unit_test(test_convert_refuses_overflow),
        cmocka_unit_test(test_fast_path),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
