// test_quant.c: fp16/bf16 conversions, the reference dequantizers (hand-built blocks of every
// type), the reference quantizers (error bounds), the activation quantizer (llama.cpp's
// rounding), and the fast matmul kernels.
// Matmul tolerances: (1) against matmul_forward_qref, the scalar oracle that quantizes the
// activations and accumulates exactly as documented in matmul.h, the result must be equal bit
// for bit (integer block dots are exact; the float operations are the same, in the same
// order). (2) Against matmul_forward_ref (dequantized weights, fp32 activations, double
// accumulation) the only differences are the 8-bit activation rounding, the fp16 rounding of
// Q4_1's s = d·Σq, and float accumulation; each output must lie within the bound derived in
// check_shape (Cauchy–Schwarz on the measured activation error, ≤ 2.5% of ‖w‖‖x‖ a priori).
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <omp.h>

#include "model/matmul.h"
#include "model/quant.h"
#include "tests/support/test_rng.h"

#ifdef __F16C__
#include <immintrin.h>
#endif

static float u2f(uint32_t u) {
    float f;
    memcpy(&f, &u, 4);
    return f;
}
static uint32_t f2u(float f) {
    uint32_t u;
    memcpy(&u, &f, 4);
    return u;
}

// ---------------------------------------------------------------------------------------------
// fp16 / bf16

static void test_fp16_edges(void **state) {
    (void)state;
    struct { float f; uint16_t h; } cases[] = {
        {0.0f, 0x0000}, {-0.0f, 0x8000}, {1.0f, 0x3c00}, {-2.0f, 0xc000}, {0.5f, 0x3800},
        {65504.0f, 0x7bff},                      // largest half
        {65519.0f, 0x7bff},                      // below the midpoint to 65536
        {65520.0f, 0x7c00},                      // the midpoint: ties to even = inf
        {1e9f, 0x7c00}, {-1e9f, 0xfc00},
        {u2f(0x7f800000), 0x7c00}, {u2f(0xff800000), 0xfc00},
        {ldexpf(1, -14), 0x0400},                // smallest normal
        {ldexpf(1, -24), 0x0001},                // smallest subnormal
        {ldexpf(1, -25), 0x0000},                // half of it: ties to even = 0
        {ldexpf(1.5f, -25), 0x0001},             // above the midpoint
        {ldexpf(3, -25), 0x0002},                // 1.5 subnormal ulps: ties to even = 2
        {ldexpf(5, -25), 0x0002},                // 2.5 ulps: ties to even = 2
        {ldexpf(1023, -24), 0x03ff},             // largest subnormal
        {ldexpf(2047, -25), 0x0400},             // rounds up into the normals
        {1.0f + ldexpf(1, -11), 0x3c00},         // tie between 1 and 1+2^-10: even
        {1.0f + ldexpf(3, -11), 0x3c02},         // tie: even (up)
        {1.0f + ldexpf(1, -11) + ldexpf(1, -20), 0x3c01},
        {ldexpf(1, -30), 0x0000},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        uint16_t h = fp32_to_fp16(cases[i].f);
        if (h != cases[i].h) fail_msg("fp32_to_fp16(%a) = 0x%04x, want 0x%04x", (double)cases[i].f, h, cases[i].h);
    }
    assert_true(isnan(fp16_to_fp32(fp32_to_fp16(NAN))));
    assert_true((fp32_to_fp16(NAN) & 0x7c00) == 0x7c00 && (fp32_to_fp16(NAN) & 0x3ff) != 0);
    assert_true(isinf(fp16_to_fp32(0x7c00)) && fp16_to_fp32(0x7c00) > 0);
    assert_true(isinf(fp16_to_fp32(0xfc00)) && fp16_to_fp32(0xfc00) < 0);
    assert_true(isnan(fp16_to_fp32(0x7e00)) && isnan(fp16_to_fp32(0xfc01)));
    assert_true(fp16_to_fp32(0x0001) == ldexpf(1, -24));
    assert_true(fp16_to_fp32(0x03ff) == ldexpf(1023, -24));
    assert_true(fp16_to_fp32(0x8200) == -ldexpf(1, -15));
    assert_true(fp16_to_fp32(0x7bff) == 65504.0f);
    assert_true(f2u(fp16_to_fp32(0x8000)) == 0x80000000u);
    // Every half round-trips.
    for (uint32_t h = 0; h < 65536; h++) {
        float f = fp16_to_fp32((uint16_t)h);
        if (isnan(f)) continue;
        if (fp32_to_fp16(f) != h) fail_msg("half 0x%04x does not round-trip", h);
    }
}

// Against the hardware conversion (round to nearest even), over random bit patterns and
// every float near the half range's interesting exponents.
static void test_fp16_vs_hardware(void **state) {
    (void)state;
#ifdef __F16C__
    for (int i = 0; i < 2000000; i++) {
        uint32_t u = rng_u32();
        if (i & 1) u = (u & 0x807fffffu) | ((uint32_t)(100 + (u >> 23) % 48) << 23);  // exponents near half's
        float f = u2f(u);
        uint16_t a = fp32_to_fp16(f), b = _cvtss_sh(f, 0);
        if (isnan(f)) {
            assert_true((a & 0x7c00) == 0x7c00 && (a & 0x3ff));
            continue;
        }
        if (a != b) fail_msg("fp32_to_fp16(%a [0x%08x]) = 0x%04x, F16C says 0x%04x", (double)f, u, a, b);
        if (f2u(fp16_to_fp32(b)) != f2u(_cvtsh_ss(b))) fail_msg("fp16_to_fp32(0x%04x)", b);
    }
#else
    skip();
#endif
}

static void test_bf16(void **state) {
    (void)state;
    assert_int_equal(fp32_to_bf16(1.0f), 0x3f80);
    assert_int_equal(fp32_to_bf16(-2.0f), 0xc000);
    assert_int_equal(fp32_to_bf16(u2f(0x3f808000)), 0x3f80);  // tie: even
    assert_int_equal(fp32_to_bf16(u2f(0x3f818000)), 0x3f82);  // tie: even (up)
    assert_int_equal(fp32_to_bf16(u2f(0x3f808001)), 0x3f81);
    assert_int_equal(fp32_to_bf16(u2f(0x3f807fff)), 0x3f80);
    assert_int_equal(fp32_to_bf16(u2f(0x7f7fffff)), 0x7f80);  // FLT_MAX rounds to inf
    assert_int_equal(fp32_to_bf16(u2f(0x7f800000)), 0x7f80);
    assert_int_equal(fp32_to_bf16(u2f(0xff800000)), 0xff80);
    assert_int_equal(fp32_to_bf16(u2f(0x00000001)), 0x0000);  // float subnormal → 0
    assert_int_equal(fp32_to_bf16(u2f(0x00018000)), 0x0002);  // bf16 keeps subnormals
    assert_true(isnan(bf16_to_fp32(fp32_to_bf16(NAN))));
    assert_true(isnan(bf16_to_fp32(fp32_to_bf16(u2f(0x7f800001)))));  // payload in dropped bits stays nan
    assert_true(bf16_to_fp32(0x3f80) == 1.0f);
    assert_true(bf16_to_fp32(0x0001) == u2f(0x00010000));
    for (uint32_t h = 0; h < 65536; h++) {
        float f = bf16_to_fp32((uint16_t)h);
        if (isnan(f)) continue;
        if (fp32_to_bf16(f) != h) fail_msg("bf16 0x%04x does not round-trip", h);
    }
}

static void test_qtype_tables(void **state) {
    (void)state;
    struct { uint32_t t; int bs; size_t bb; } tab[] = {
        {QTYPE_F32, 1, 4}, {QTYPE_F16, 1, 2}, {QTYPE_BF16, 1, 2}, {QTYPE_Q8_0, 32, 34}, {QTYPE_Q4_0, 32, 18},
        {QTYPE_Q4_1, 32, 20}, {QTYPE_Q5_0, 32, 22}, {QTYPE_Q5_1, 32, 24}, {QTYPE_Q4_K, 256, 144},
        {QTYPE_Q5_K, 256, 176}, {QTYPE_Q6_K, 256, 210},
    };
    for (size_t i = 0; i < sizeof(tab) / sizeof(tab[0]); i++) {
        assert_true(qtype_supported(tab[i].t));
        assert_int_equal(qtype_block_size(tab[i].t), tab[i].bs);
        assert_int_equal(qtype_block_bytes(tab[i].t), tab[i].bb);
        assert_int_equal(qtype_row_bytes(tab[i].t, 512), 512 / tab[i].bs * tab[i].bb);
        assert_string_not_equal(qtype_name(tab[i].t), "unknown");
    }
    assert_int_equal(qtype_row_bytes(QTYPE_Q4_1, 576), 18 * 20);
    assert_int_equal(qtype_row_bytes(QTYPE_Q4_1, 33), 0);
    assert_int_equal(qtype_row_bytes(QTYPE_Q6_K, 576), 0);
    assert_int_equal(qtype_row_bytes(QTYPE_Q5_0, 48), 0);
    assert_int_equal(qtype_row_bytes(QTYPE_Q5_1, 64), 48);
    assert_false(qtype_supported(QTYPE_Q2_K) || qtype_supported(QTYPE_Q8_1));
    assert_false(qtype_supported(99));
    assert_string_equal(qtype_name(QTYPE_Q4_1), "Q4_1");
    assert_string_equal(qtype_name(QTYPE_BF16), "BF16");
    assert_string_equal(qtype_name(99), "unknown");
    assert_true(matmul_has_kernel(QTYPE_F32) && matmul_has_kernel(QTYPE_Q4_0) && matmul_has_kernel(QTYPE_Q4_1) &&
                matmul_has_kernel(QTYPE_Q8_0));
    assert_false(matmul_has_kernel(QTYPE_F16) || matmul_has_kernel(QTYPE_Q6_K));
}

// ---------------------------------------------------------------------------------------------
// Dequantization of hand-built blocks.

static void put16(uint8_t *p, uint16_t v) {
    p[0] = (uint8_t)v;
    p[1] = (uint8_t)(v >> 8);
}

static void check_row(const float *got, const float *want, int n, const char *what) {
    for (int i = 0; i < n; i++)
        if (got[i] != want[i]) fail_msg("%s[%d] = %g, want %g", what, i, (double)got[i], (double)want[i]);
}

static void test_dequant_simple(void **state) {
    (void)state;
    uint8_t blk[64];
    float y[32], want[32];
    // Q8_0: d = 0.5, q_j = j - 16.
    put16(blk, 0x3800);
    for (int j = 0; j < 32; j++) blk[2 + j] = (uint8_t)(int8_t)(j - 16), want[j] = 0.5f * (float)(j - 16);
    dequantize_row(QTYPE_Q8_0, blk, y, 32);
    check_row(y, want, 32, "q8_0");
    // Q4_0: d = 2, byte j = j | (15 - j) << 4: low nibbles are inputs 0-15, high 16-31.
    put16(blk, 0x4000);
    for (int j = 0; j < 16; j++) {
        blk[2 + j] = (uint8_t)(j | (15 - j) << 4);
        want[j] = 2.0f * (float)(j - 8);
        want[j + 16] = 2.0f * (float)(15 - j - 8);
    }
    dequantize_row(QTYPE_Q4_0, blk, y, 32);
    check_row(y, want, 32, "q4_0");
    // Q4_1: d = 0.25, m = -1.
    put16(blk, 0x3400);
    put16(blk + 2, 0xbc00);
    for (int j = 0; j < 16; j++) {
        blk[4 + j] = (uint8_t)((j * 7 % 16) | (j << 4));
        want[j] = 0.25f * (float)(j * 7 % 16) - 1.0f;
        want[j + 16] = 0.25f * (float)j - 1.0f;
    }
    dequantize_row(QTYPE_Q4_1, blk, y, 32);
    check_row(y, want, 32, "q4_1");
    assert_true(y[1] == 0.75f && y[17] == -0.75f);
    // F16 / BF16 / F32 rows.
    uint16_t h[4] = {0x3c00, 0xc000, 0x0001, 0x7c00};
    float f4[4];
    dequantize_row(QTYPE_F16, h, f4, 4);
    assert_true(f4[0] == 1.0f && f4[1] == -2.0f && f4[2] == ldexpf(1, -24) && isinf(f4[3]));
    uint16_t b[3] = {0x3f80, 0xc040, 0x4049};
    dequantize_row(QTYPE_BF16, b, f4, 3);
    assert_true(f4[0] == 1.0f && f4[1] == -3.0f && f4[2] == u2f(0x40490000));
    float src[3] = {1.5f, -2.25f, 7.0f};
    dequantize_row(QTYPE_F32, src, f4, 3);
    check_row(f4, src, 3, "f32");
}

// K-quant scales: 8 six-bit (scale, min) pairs packed into 12 bytes as formats.md §2 says.
static void pack_k_scales(const int sc[8], const int m[8], uint8_t out[12]) {
    memset(out, 0, 12);
    for (int j = 0; j < 4; j++) {
        out[j] = (uint8_t)((sc[j] & 63) | ((sc[j + 4] >> 4) << 6));
        out[j + 4] = (uint8_t)((m[j] & 63) | ((m[j + 4] >> 4) << 6));
        out[j + 8] = (uint8_t)((sc[j + 4] & 15) | ((m[j + 4] & 15) << 4));
    }
}

static void test_dequant_q4k_q5k(void **state) {
    (void)state;
    int sc[8], m[8];
    for (int j = 0; j < 8; j++) sc[j] = 10 + 7 * j, m[j] = 63 - 5 * j;  // high bits used for j ≥ 4
    for (int five = 0; five <= 1; five++) {
        uint8_t blk[176];
        put16(blk, 0x3000);      // d = 0.125
        put16(blk + 2, 0x2c00);  // dmin = 0.0625
        pack_k_scales(sc, m, blk + 4);
        uint8_t *qh = blk + 16, *qs = blk + (five ? 48 : 16);
        for (int i = 0; i < 128; i++) qs[i] = (uint8_t)rng_u32();
        if (five)
            for (int i = 0; i < 32; i++) qh[i] = (uint8_t)rng_u32();
        float y[256], want[256];
        dequantize_row(five ? QTYPE_Q5_K : QTYPE_Q4_K, blk, y, 256);
        // Element by element: sub-block j = i / 32 uses the low nibbles of qs[32·(j/2) + l] for
        // even j, the high nibbles for odd j; the 5th bit of Q5_K is bit j of qh[l].
        for (int i = 0; i < 256; i++) {
            int j = i / 32, l = i % 32;
            uint8_t byte = qs[32 * (j / 2) + l];
            int q = (j & 1) ? byte >> 4 : byte & 15;
            if (five && (qh[l] >> j) & 1) q += 16;
            want[i] = 0.125f * (float)sc[j] * (float)q - 0.0625f * (float)m[j];
        }
        check_row(y, want, 256, five ? "q5_k" : "q4_k");
    }
}

static void test_dequant_q6k(void **state) {
    (void)state;
    uint8_t blk[210];
    for (int i = 0; i < 192; i++) blk[i] = (uint8_t)rng_u32();
    int8_t sc[16];
    for (int i = 0; i < 16; i++) sc[i] = (int8_t)(i * 9 - 70), blk[192 + i] = (uint8_t)sc[i];
    put16(blk + 208, 0x3400);  // d = 0.25, stored last
    float y[256], want[256];
    dequantize_row(QTYPE_Q6_K, blk, y, 256);
    // Element i: half h = i/128, quarter t = (i%128)/32, l = i%32. Low 4 bits: ql[64h + l + 32·(t&1)],
    // low nibble for t < 2, high for t ≥ 2; high 2 bits: (qh[32h + l] >> 2t) & 3; scale 8h + l/16 + 2t.
    const uint8_t *ql = blk, *qh = blk + 128;
    for (int i = 0; i < 256; i++) {
        int h = i / 128, t = (i % 128) / 32, l = i % 32;
        uint8_t lb = ql[64 * h + l + 32 * (t & 1)];
        int lo = t < 2 ? lb & 15 : lb >> 4;
        int hi = (qh[32 * h + l] >> (2 * t)) & 3;
        want[i] = 0.25f * (float)sc[8 * h + l / 16 + 2 * t] * (float)((lo | hi << 4) - 32);
    }
    check_row(y, want, 256, "q6_k");
    // Two blocks in a row: the second is read from byte 210.
    uint8_t two[420];
    memcpy(two, blk, 210);
    memcpy(two + 210, blk, 210);
    put16(two + 210 + 208, 0xb400);  // d = -0.25
    float y2[512];
    dequantize_row(QTYPE_Q6_K, two, y2, 512);
    for (int i = 0; i < 256; i++) assert_true(y2[i] == want[i] && y2[256 + i] == -want[i]);
}

// ---------------------------------------------------------------------------------------------
// Reference quantizers.

static void test_quantize_bounds(void **state) {
    (void)state;
    enum { n = 32 * 64 };
    float *x = malloc(sizeof(float) * n), *y = malloc(sizeof(float) * n);
    uint8_t *q = malloc(n * 4);
    for (int i = 0; i < n; i++) x[i] = rng_normal() * (i % 97 == 0 ? 8.0f : 1.0f) + (i / 32 == 5 ? 3.0f : 0.0f);
    for (int i = 64; i < 96; i++) x[i] = 0;  // an all-zero block
    uint32_t types[] = {QTYPE_Q8_0, QTYPE_Q4_0, QTYPE_Q4_1};
    for (int t = 0; t < 3; t++) {
        assert_int_equal(quantize_row(types[t], x, q, n), 0);
        dequantize_row(types[t], q, y, n);
        for (int b = 0; b < n / 32; b++) {
            float mn = x[32 * b], mx = x[32 * b], amax = 0;
            for (int j = 0; j < 32; j++) {
                float v = x[32 * b + j];
                mn = fminf(mn, v), mx = fmaxf(mx, v), amax = fmaxf(amax, fabsf(v));
            }
            // Step d (rounding to fp16 moves every level by ≤ 2^-11 relative, i.e. ≤ 16·d·2^-11 for 4 bits).
            double d, bound;
            if (types[t] == QTYPE_Q8_0) d = amax / 127.0, bound = d * (0.5 + 127.0 / 2048);
            else if (types[t] == QTYPE_Q4_0) d = amax / 8.0, bound = d * (1.0 + 16.0 / 2048);  // +8·d clamps to 7·d
            else d = (mx - mn) / 15.0, bound = d * (0.5 + 16.0 / 2048) + fabs(mn) / 2048;
            for (int j = 0; j < 32; j++) {
                double e = fabs((double)y[32 * b + j] - x[32 * b + j]);
                if (e > bound * 1.0001 + 1e-12)
                    fail_msg("%s block %d elem %d: |%g - %g| > %g", qtype_name(types[t]), b, j, (double)y[32 * b + j],
                             (double)x[32 * b + j], bound);
            }
        }
        for (int i = 64; i < 96; i++) assert_true(y[i] == 0.0f);
    }
    // Q8_0 rounds half away from zero: amax 127 → d = 1, 2.5 → 3, -2.5 → -3.
    float h[32] = {127.0f, 2.5f, -2.5f, 0.5f, -0.5f, 1.49f};
    assert_int_equal(quantize_row(QTYPE_Q8_0, h, q, 32), 0);
    assert_int_equal((int8_t)q[2], 127);
    assert_int_equal((int8_t)q[3], 3);
    assert_int_equal((int8_t)q[4], -3);
    assert_int_equal((int8_t)q[5], 1);
    assert_int_equal((int8_t)q[6], -1);
    assert_int_equal((int8_t)q[7], 1);
    // Q4_0: the signed extreme maps to level 0 (value -8·d); d = max / -8.
    float g[32] = {0};
    g[0] = -4.0f, g[1] = 3.0f, g[17] = 1.0f;
    assert_int_equal(quantize_row(QTYPE_Q4_0, g, q, 32), 0);
    assert_int_equal(q[0] | q[1] << 8, 0x3800);  // d = 0.5
    assert_int_equal(q[2] & 15, 0);              // -4 / 0.5 + 8
    assert_int_equal(q[3] & 15, 14);             // 3 / 0.5 + 8
    assert_int_equal(q[3] >> 4, 10);             // input 17: 1 / 0.5 + 8
    // Q4_1: d = (max - min) / 15, m = min.
    float r[32];
    for (int j = 0; j < 32; j++) r[j] = -1.0f + 0.25f * (float)(j % 16);
    assert_int_equal(quantize_row(QTYPE_Q4_1, r, q, 32), 0);
    assert_int_equal(q[0] | q[1] << 8, 0x3400);  // 0.25
    assert_int_equal(q[2] | q[3] << 8, 0xbc00);  // -1
    for (int j = 0; j < 16; j++) assert_int_equal(q[4 + j], j | j << 4);
    // Float types and failures.
    uint16_t hh[4];
    float f4[4] = {1.0f, 65520.0f, ldexpf(3, -25), -0.0f};
    assert_int_equal(quantize_row(QTYPE_F16, f4, hh, 4), 0);
    assert_true(hh[0] == 0x3c00 && hh[1] == 0x7c00 && hh[2] == 0x0002 && hh[3] == 0x8000);
    assert_int_equal(quantize_row(QTYPE_BF16, f4, hh, 4), 0);
    assert_true(hh[0] == 0x3f80 && hh[3] == 0x8000);
    assert_int_equal(quantize_row(QTYPE_Q6_K, x, q, 256), -1);
    assert_int_equal(quantize_row(QTYPE_Q8_0, x, q, 33), -1);
    assert_false(qtype_can_quantize(QTYPE_Q4_K));
    free(x), free(y), free(q);
}

// ---------------------------------------------------------------------------------------------
// Activation quantizer: llama.cpp's AVX2 rules (d = amax/127 as fp16, q = x·(127/amax) rounded
// half to even, s = (amax/127)·Σq as fp16).

static void test_act_quant(void **state) {
    (void)state;
    float x[96];
    for (int i = 0; i < 96; i++) x[i] = rng_normal();
    for (int i = 32; i < 64; i++) x[i] = 0;  // zero block
    // Block 2: amax 127 → id = 1: ties go to even.
    float ties[6] = {2.5f, 3.5f, -2.5f, -3.5f, 0.5f, -0.5f};
    int tq[6] = {2, 4, -2, -4, 0, 0};
    for (int i = 64; i < 96; i++) x[i] = 0.25f * (float)(i - 80);
    x[95] = 127.0f;
    for (int i = 0; i < 6; i++) x[64 + i] = ties[i];
    matmul_act_block a[3];
    matmul_quantize_act(x, a, 96);
    for (int b = 0; b < 3; b++) {
        float amax = 0;
        for (int j = 0; j < 32; j++) amax = fmaxf(amax, fabsf(x[32 * b + j]));
        float d = amax / 127.0f, id = amax != 0.0f ? 127.0f / amax : 0.0f;
        int sum = 0;
        for (int j = 0; j < 32; j++) {
            int q = (int)nearbyintf(x[32 * b + j] * id);
            assert_int_equal(a[b].qs[j], q);
            sum += q;
        }
        assert_int_equal(a[b].sum, sum);
        assert_true(a[b].d == fp16_to_fp32(fp32_to_fp16(d)));
        assert_true(a[b].s == fp16_to_fp32(fp32_to_fp16(d * (float)sum)));
    }
    assert_true(a[1].d == 0.0f && a[1].s == 0.0f && a[1].sum == 0);
    for (int i = 0; i < 6; i++) assert_int_equal(a[2].qs[i], tq[i]);
    assert_int_equal(a[2].qs[31], 127);
    assert_true(a[2].d == 1.0f);
}

// ---------------------------------------------------------------------------------------------
// Matmul kernels.

static float *make_weights(uint32_t type, int64_t N, int64_t K, void **wq) {
    float *wf = malloc(sizeof(float) * (size_t)(N * K));
    for (int64_t i = 0; i < N * K; i++) wf[i] = 0.1f * rng_normal() + (type == QTYPE_Q4_1 ? 0.02f : 0.0f);
    size_t rb = qtype_row_bytes(type, K);
    *wq = malloc(rb * (size_t)N);
    for (int64_t r = 0; r < N; r++) assert_int_equal(quantize_row(type, wf + r * K, (uint8_t *)*wq + r * rb, K), 0);
    return wf;
}

static float *make_acts(int64_t B, int64_t K) {
    float *x = malloc(sizeof(float) * (size_t)(B * K));
    for (int64_t i = 0; i < B * K; i++) x[i] = rng_normal() * ((i % 131) == 7 ? 20.0f : 1.0f);  // some outliers
    if (K >= 64)
        for (int64_t k = 32; k < 64; k++) x[k] = 0;  // one all-zero activation block
    return x;
}

// One shape: matmul_forward against both oracles. Returns the worst error / bound ratio.
static double check_shape(uint32_t type, int64_t N, int64_t K, int64_t B, int ref_check) {
    void *w;
    float *wf = make_weights(type, N, K, &w);
    float *x = make_acts(B, K);
    size_t yn = (size_t)(N * B);
    float *y = malloc(sizeof(float) * yn), *yq = malloc(sizeof(float) * yn), *yr = malloc(sizeof(float) * yn);
    // Scratch at an odd address: matmul_scratch_bytes includes the slack to align it.
    size_t sbytes = matmul_scratch_bytes(type, K, B);
    char *scratch = malloc(sbytes + 1);
    for (size_t i = 0; i < yn; i++) y[i] = NAN;
    matmul_forward(type, w, N, K, x, y, B, scratch + 1);
    double worst = 0;
    if (type != QTYPE_F32) {
        matmul_forward_qref(type, w, N, K, x, yq, B);
        for (size_t i = 0; i < yn; i++)
            if (f2u(y[i]) != f2u(yq[i]))
                fail_msg("%s N=%lld K=%lld B=%lld: y[%zu] = %.9g, exact oracle %.9g", qtype_name(type), (long long)N,
                         (long long)K, (long long)B, i, (double)y[i], (double)yq[i]);
    }
    if (ref_check) {
        // Error bound against the dequantize-and-dot oracle. The activations are replaced by
        // x̂ = d'·q (d' = fp16(d)): |Σ w·(x − x̂)| ≤ ‖w‖₂·‖x − x̂‖₂ (Cauchy–Schwarz). Q4_1 adds
        // m·s with s = fp16(d·Σq) instead of d'·Σq: ≤ |m|·(|s|·2^-11 + |Σq|·d'·2^-10) per block.
        // Float accumulation: 1e-5·Σ|w·x|.
        matmul_forward_ref(type, w, N, K, x, yr, B);
        int64_t nb = K / 32;
        size_t rb = qtype_row_bytes(type, K);
        matmul_act_block *a = malloc(sizeof(matmul_act_block) * (size_t)(nb > 0 ? nb : 1));
        float *wd = malloc(sizeof(float) * (size_t)(N * K));  // (N, K) dequantized
        double *wn = malloc(sizeof(double) * (size_t)N);     // ‖w_n‖₂
        for (int64_t n = 0; n < N; n++) {
            dequantize_row(type, (const uint8_t *)w + n * rb, wd + n * K, K);
            double w2 = 0;
            for (int64_t k = 0; k < K; k++) w2 += (double)wd[n * K + k] * wd[n * K + k];
            wn[n] = sqrt(w2);
        }
        for (int64_t b = 0; b < B; b++) {
            const float *xb = x + b * K;
            double e2 = 0, x2 = 0;
            if (type != QTYPE_F32) {
                matmul_quantize_act(xb, a, K);
                for (int64_t k = 0; k < K; k++) {
                    double e = (double)xb[k] - (double)a[k / 32].d * a[k / 32].qs[k % 32];
                    e2 += e * e, x2 += (double)xb[k] * xb[k];
                }
                // A priori: |e_k| ≤ d·(1/2 + 127·2^-11) with d = amax/127 ≤ ‖x_block‖/127, so
                // ‖e‖ ≤ sqrt(32)·0.5621/127·‖x‖ = 0.02504·‖x‖: relative to ‖w‖‖x‖ the activation
                // rounding moves a dot product by at most 2.5%.
                if (sqrt(e2) > 0.02504 * sqrt(x2)) fail_msg("activation error %g > 0.02504 * %g", sqrt(e2), sqrt(x2));
            }
            for (int64_t n = 0; n < N; n++) {
                const float *wrow = wd + n * K;
                double abs = 0, ms = 0;
                for (int64_t k = 0; k < K; k++) abs += fabs((double)wrow[k] * xb[k]);
                if (type == QTYPE_Q4_1)
                    for (int64_t kb = 0; kb < nb; kb++) {
                        uint16_t mh;
                        memcpy(&mh, (const uint8_t *)w + n * rb + kb * 20 + 2, 2);
                        double m = fabs(fp16_to_fp32(mh));
                        ms += m * (fabs(a[kb].s) / 2048 + fabs((double)a[kb].sum) * a[kb].d / 1024);
                    }
                double bound = wn[n] * sqrt(e2) + ms + 1e-5 * abs + 1e-30;
                double err = fabs((double)y[b * N + n] - yr[b * N + n]);
                if (err > bound)
                    fail_msg("%s N=%lld K=%lld B=%lld: y[%lld,%lld] = %g, ref %g, |err| %g > bound %g", qtype_name(type),
                             (long long)N, (long long)K, (long long)B, (long long)b, (long long)n, (double)y[b * N + n],
                             (double)yr[b * N + n], err, bound);
                if (err / bound > worst) worst = err / bound;
            }
        }
        free(a), free(wd), free(wn);
    }
    free(wf), free(w), free(x), free(y), free(yq), free(yr), free(scratch);
    return worst;
}

static void test_matmul_shapes(void **state) {
    (void)state;
    uint32_t types[] = {QTYPE_Q4_1, QTYPE_Q4_0, QTYPE_Q8_0, QTYPE_F32};
    // SmolLM2-135M: q/o (576,576), k/v (192,576), gate/up (1536,576), down (576,1536); odd N
    // and short K exercise the tails (N not a multiple of the row path's 8 rows or the panel
    // tile's 3, one-block rows).
    struct { int64_t N, K; } shapes[] = {{576, 576}, {192, 576}, {1536, 576}, {576, 1536}, {37, 64}, {13, 32}, {9, 96}};
    // B = 1 takes the one-sequence row kernel, 2 ≤ B ≤ 16 the weights-in-lanes row kernel,
    // larger B the panel path: 8-column panels, two per register tile plus an odd last one
    // (17: a pair and a 1-column panel, 24: a pair and a single).
    int64_t Bs[] = {1, 2, 3, 5, 8, 9, 16, 17, 24, 64};
    for (int t = 0; t < 4; t++) {
        double worst = 0;
        for (size_t s = 0; s < sizeof(shapes) / sizeof(shapes[0]); s++)
            for (size_t i = 0; i < sizeof(Bs) / sizeof(Bs[0]); i++) {
                int64_t N = shapes[s].N, K = shapes[s].K, B = Bs[i];
                // Keep the suite fast (it also runs under ASan): the two large shapes only at
                // B = 1, 3, 17.
                if (N * K > 400000 && B != 1 && B != 3 && B != 17) continue;
                double r = check_shape(types[t], N, K, B, 1);
                if (r > worst) worst = r;
            }
        print_message("%s: worst error / bound vs the dequantize oracle = %.3f\n", qtype_name(types[t]), worst);
    }
}

// The tied output head (49152 × 576, Q8_0), decode only; a larger B crosses the panel-group
// boundary (more than 128 columns) on a small N.
static void test_matmul_head_and_groups(void **state) {
    (void)state;
    check_shape(QTYPE_Q8_0, 49152, 576, 1, 0);  // exact check only (the bound check is slow here)
    check_shape(QTYPE_Q4_1, 20, 64, 150, 1);
    check_shape(QTYPE_Q4_0, 11, 2112, 9, 1);  // K over one 2048-input chunk
    check_shape(QTYPE_Q4_1, 19, 2112, 3, 1);  // the lanes row kernel across chunks, a short last group
    check_shape(QTYPE_Q8_0, 13, 2112, 3, 1);  // the same for Q8_0 (signs moved onto the activations)
    check_shape(QTYPE_Q8_0, 7, 2112, 16, 1);  // the largest row-path batch
    check_shape(QTYPE_Q8_0, 7, 2112, 17, 1);  // the smallest panel-path batch
}

// Types without a kernel fall back to dequantized rows and match the oracle.
// matmul_forward_n (one input through several matrices) gives exactly what separate
// matmul_forward calls give: mixed types, odd row counts (a short last group), a matrix of no
// rows, B on the row path and past it (the fallback). Its own scratch, filled with garbage:
// nothing may be left over from the single calls.
static void test_matmul_n(void **state) {
    (void)state;
    const int64_t K = 96;
    const uint32_t types[4] = {QTYPE_Q4_1, QTYPE_Q8_0, QTYPE_Q4_0, QTYPE_Q4_1};
    const int64_t Ns[4] = {301, 16, 0, 8};  // 301: enough work for the threads at B ≥ 2
    const int64_t Bs[] = {1, 2, 8, 16, 17};
    void *wq[4];
    float *wf[4];
    for (int i = 0; i < 4; i++) wf[i] = make_weights(types[i], Ns[i] ? Ns[i] : 1, K, &wq[i]);
    for (size_t bi = 0; bi < sizeof(Bs) / sizeof(Bs[0]); bi++) {
        int64_t B = Bs[bi];
        float *x = make_acts(B, K);
        size_t sb = 0;
        for (int i = 0; i < 4; i++)
            if (matmul_scratch_bytes(types[i], K, B) > sb) sb = matmul_scratch_bytes(types[i], K, B);
        void *scratch = malloc(sb);
        matmul_job jobs[4];
        float *want[4];
        for (int i = 0; i < 4; i++) {
            size_t ny = (size_t)(B * (Ns[i] ? Ns[i] : 1));
            jobs[i] = (matmul_job){types[i], wq[i], Ns[i], malloc(sizeof(float) * ny), NULL};
            want[i] = malloc(sizeof(float) * ny);
            for (size_t k = 0; k < ny; k++) want[i][k] = -1.0f;
            matmul_forward(types[i], wq[i], Ns[i], K, x, want[i], B, scratch);
        }
        void *scratch2 = malloc(sb);
        // 1 to 4 threads on this machine's cores: uneven ranges, and threads that wait for a
        // core while the others claim their chunks (the lanes path's work stealing).
        for (int nth = 1; nth <= 4; nth++) {
            omp_set_num_threads(nth);
            for (int rep = 0; rep < 20; rep++) {
                memset(scratch2, 0xab, sb);
                for (int i = 0; i < 4; i++)
                    for (int64_t k = 0; k < B * Ns[i]; k++) jobs[i].y[k] = -1.0f;
                matmul_forward_n(jobs, 4, K, x, B, scratch2);
                for (int i = 0; i < 4; i++) assert_memory_equal(jobs[i].y, want[i], sizeof(float) * (size_t)(B * Ns[i]));
            }
        }
        omp_set_num_threads(2);
        free(scratch2);
        for (int i = 0; i < 4; i++) free(jobs[i].y), free(want[i]);
        free(x), free(scratch);
    }
    for (int i = 0; i < 4; i++) free(wf[i]), free(wq[i]);
}

// Packed weights (matmul_pack, the only copy the model loader keeps in use) give the exact
// oracle's bits on the row path and on the panel path: every packable type, one and several
// groups of 16 rows, K of one block and of many, B from 1 to 16 (rows) and 17, 40 (panels),
// 1 to 4 threads (uneven ranges, stolen chunks), with an unpacked matrix of odd rows in the
// same call. The packed job's W is NULL: nothing may read the GGUF rows once a copy exists.
// No packing where the kernels have no layout.
static void test_matmul_packed(void **state) {
    (void)state;
    assert_int_equal(matmul_packed_bytes(QTYPE_Q4_1, 301, 96), 0);  // N not a multiple of 16
    assert_int_equal(matmul_packed_bytes(QTYPE_F32, 64, 96), 0);
    assert_int_equal(matmul_packed_bytes(QTYPE_Q6_K, 64, 256), 0);
    const uint32_t types[] = {QTYPE_Q4_0, QTYPE_Q4_1, QTYPE_Q8_0};
    const int64_t Ns[] = {16, 304}, Ks[] = {32, 576}, Bs[] = {1, 2, 5, 8, 16, 17, 40};
    size_t want_bytes = matmul_packed_bytes(QTYPE_Q4_1, 16, 32);
    if (want_bytes == 0) {
        print_message("skipped: a build without AVX2 has no lanes kernels, so nothing is packed\n");
        skip();
    }
    assert_int_equal(want_bytes, qtype_row_bytes(QTYPE_Q4_1, 32) * 16);  // same bytes, rearranged
    for (size_t ti = 0; ti < 3; ti++)
        for (size_t ni = 0; ni < 2; ni++)
            for (size_t ki = 0; ki < 2; ki++) {
                uint32_t type = types[ti];
                int64_t N = Ns[ni], K = Ks[ki], N2 = 37;
                void *w, *w2;
                float *wf = make_weights(type, N, K, &w), *wf2 = make_weights(QTYPE_Q4_1, N2, K, &w2);
                size_t pb = matmul_packed_bytes(type, N, K);
                assert_int_equal(pb, qtype_row_bytes(type, K) * (size_t)N);
                uint8_t *pk = malloc(pb);
                matmul_pack(type, w, N, K, pk);
                for (size_t bi = 0; bi < sizeof(Bs) / sizeof(Bs[0]); bi++) {
                    int64_t B = Bs[bi];
                    float *x = make_acts(B, K), *yq = malloc(sizeof(float) * (size_t)(N * B)),
                          *yq2 = malloc(sizeof(float) * (size_t)(N2 * B));
                    matmul_forward_qref(type, w, N, K, x, yq, B);
                    matmul_forward_qref(QTYPE_Q4_1, w2, N2, K, x, yq2, B);
                    size_t sb = matmul_scratch_bytes(type, K, B) > matmul_scratch_bytes(QTYPE_Q4_1, K, B)
                                    ? matmul_scratch_bytes(type, K, B)
                                    : matmul_scratch_bytes(QTYPE_Q4_1, K, B);
                    void *scratch = malloc(sb);
                    matmul_job jobs[2] = {{type, NULL, N, malloc(sizeof(float) * (size_t)(N * B)), pk},
                                          {QTYPE_Q4_1, w2, N2, malloc(sizeof(float) * (size_t)(N2 * B)), NULL}};
                    for (int nth = 1; nth <= 4; nth++) {
                        omp_set_num_threads(nth);
                        for (int rep = 0; rep < 5; rep++) {
                            for (int64_t k = 0; k < N * B; k++) jobs[0].y[k] = NAN;
                            matmul_forward_n(jobs, 2, K, x, B, scratch);
                            for (int64_t k = 0; k < N * B; k++)
                                if (f2u(jobs[0].y[k]) != f2u(yq[k]))
                                    fail_msg("packed %s N=%lld K=%lld B=%lld threads %d: y[%lld] = %.9g, oracle %.9g",
                                             qtype_name(type), (long long)N, (long long)K, (long long)B, nth,
                                             (long long)k, (double)jobs[0].y[k], (double)yq[k]);
                            assert_memory_equal(jobs[1].y, yq2, sizeof(float) * (size_t)(N2 * B));
                        }
                    }
                    omp_set_num_threads(2);
                    free(jobs[0].y), free(jobs[1].y), free(scratch), free(x), free(yq), free(yq2);
                }
                free(pk), free(w), free(w2), free(wf), free(wf2);
            }
}

static void test_matmul_fallback(void **state) {
    (void)state;
    int64_t N = 5, K = 256, B = 3;
    size_t rb = qtype_row_bytes(QTYPE_Q6_K, K);
    uint8_t *w = malloc(rb * (size_t)N);
    for (size_t i = 0; i < rb * (size_t)N; i++) w[i] = (uint8_t)rng_u32();
    for (int64_t n = 0; n < N; n++) put16(w + n * rb + 208, 0x2000);  // small d
    float *x = make_acts(B, K), y[15], yr[15];
    void *scratch = malloc(matmul_scratch_bytes(QTYPE_Q6_K, K, B));
    matmul_forward(QTYPE_Q6_K, w, N, K, x, y, B, scratch);
    matmul_forward_ref(QTYPE_Q6_K, w, N, K, x, yr, B);
    for (int i = 0; i < 15; i++) assert_float_equal(y[i], yr[i], 1e-5 * (1 + fabs(yr[i])));
    free(w), free(x), free(scratch);
}

int main(void) {
    test_rng_seed(12345);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_fp16_edges),
        cmocka_unit_test(test_fp16_vs_hardware),
        cmocka_unit_test(test_bf16),
        cmocka_unit_test(test_qtype_tables),
        cmocka_unit_test(test_dequant_simple),
        cmocka_unit_test(test_dequant_q4k_q5k),
        cmocka_unit_test(test_dequant_q6k),
        cmocka_unit_test(test_quantize_bounds),
        cmocka_unit_test(test_act_quant),
        cmocka_unit_test(test_matmul_shapes),
        cmocka_unit_test(test_matmul_head_and_groups),
        cmocka_unit_test(test_matmul_n),
        cmocka_unit_test(test_matmul_packed),
        cmocka_unit_test(test_matmul_fallback),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
