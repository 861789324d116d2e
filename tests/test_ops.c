// test_ops.c: every op of the fast CPU backend against the fp32 reference (ops_ref):
// rmsnorm, rope (both pairings, several positions), swiglu, add, embedding lookup,
// attention (several sequences, GQA, long caches crossing the online-softmax chunks; the shape
// classes of the vector kernel; its exp), and matmul for F32 and each quantized type with a
// fast kernel.
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "model/matmul.h"
#include "model/ops.h"
#include "model/quant.h"

static uint64_t rng = 88172645463325252ull;
static float frand(void) {
    rng ^= rng << 13, rng ^= rng >> 7, rng ^= rng << 17;
    return (float)((rng >> 11) * (1.0 / 9007199254740992.0)) * 2.0f - 1.0f;
}
static float *rand_vec(size_t n, float scale) {
    float *v = malloc(n * sizeof(float));
    assert_non_null(v);
    for (size_t i = 0; i < n; i++) v[i] = frand() * scale;
    return v;
}

// max |a-b| / (max |b| + tiny): a normalised error that does not blow up near zero.
static double rel_err(const float *a, const float *b, size_t n) {
    double md = 0, mb = 1e-12;
    for (size_t i = 0; i < n; i++) {
        md = fmax(md, fabs((double)a[i] - b[i]));
        mb = fmax(mb, fabs((double)b[i]));
        if (isnan(a[i]) != isnan(b[i])) return INFINITY;
    }
    return md / mb;
}

static void test_rmsnorm(void **state) {
    (void)state;
    int T = 5, C = 576;
    float *x = rand_vec((size_t)T * C, 3), *w = rand_vec(C, 1), *a = rand_vec((size_t)T * C, 1),
          *b = rand_vec((size_t)T * C, 1);
    ops_ref.rmsnorm(a, x, w, T, C, 1e-5f);
    ops_cpu.rmsnorm(b, x, w, T, C, 1e-5f);
    assert_true(rel_err(b, a, (size_t)T * C) < 1e-5);
    free(x), free(w), free(a), free(b);
}

static void test_rope(void **state) {
    (void)state;
    int T = 6, NH = 9, NKV = 3, HS = 64;
    int32_t pos[] = {0, 1, 17, 100, 2047, 8000};
    for (int style = 0; style <= 2; style += 2) {
        float *q = rand_vec((size_t)T * NH * HS, 1), *k = rand_vec((size_t)T * NKV * HS, 1);
        float *q2 = malloc(sizeof(float) * T * NH * HS), *k2 = malloc(sizeof(float) * T * NKV * HS);
        memcpy(q2, q, sizeof(float) * T * NH * HS);
        memcpy(k2, k, sizeof(float) * T * NKV * HS);
        float *q0 = malloc(sizeof(float) * T * NH * HS);
        memcpy(q0, q, sizeof(float) * T * NH * HS);
        // with the engine's table and without one: the same bits (the oracle computes its own)
        float *q3 = malloc(sizeof(float) * T * NH * HS), *k3 = malloc(sizeof(float) * T * NKV * HS);
        memcpy(q3, q, sizeof(float) * T * NH * HS);
        memcpy(k3, k, sizeof(float) * T * NKV * HS);
        float *tab = malloc(sizeof(float) * 8001 * HS);
        rope_table(tab, 8001, HS, 100000.0f);
        ops_ref.rope(q, k, pos, T, NH, NKV, HS, 100000.0f, (rope_style)style, NULL);
        ops_cpu.rope(q2, k2, pos, T, NH, NKV, HS, 100000.0f, (rope_style)style, tab);
        ops_cpu.rope(q3, k3, pos, T, NH, NKV, HS, 100000.0f, (rope_style)style, NULL);
        assert_true(rel_err(q2, q, (size_t)T * NH * HS) < 1e-5);
        assert_true(rel_err(k2, k, (size_t)T * NKV * HS) < 1e-5);
        assert_memory_equal(q2, q3, sizeof(float) * T * NH * HS);
        assert_memory_equal(k2, k3, sizeof(float) * T * NKV * HS);
        free(q3), free(k3), free(tab);
        // position 0 is the identity, and rotation preserves each head's norm
        assert_true(rel_err(q, q0, (size_t)NH * HS) == 0);
        double n0 = 0, n1 = 0;
        for (int i = 0; i < HS; i++) n0 += q0[4 * NH * HS + i] * q0[4 * NH * HS + i], n1 += q[4 * NH * HS + i] * q[4 * NH * HS + i];
        assert_true(fabs(n0 - n1) < 1e-4 * n0);
        free(q), free(k), free(q2), free(k2), free(q0);
    }
}

static float bits_float(uint32_t u) {
    float f;
    memcpy(&f, &u, sizeof(f));
    return f;
}

static void test_swiglu_add(void **state) {
    (void)state;
    size_t n = 40000;
    float *g = rand_vec(n, 8), *u = rand_vec(n, 2), *a = malloc(n * 4), *b = malloc(n * 4);
    ops_ref.swiglu(a, g, u, (int64_t)n);
    ops_cpu.swiglu(b, g, u, (int64_t)n);
    assert_true(rel_err(b, a, n) < 1e-6);
    ops_ref.add(a, u, (int64_t)n);
    ops_cpu.add(b, u, (int64_t)n);
    assert_true(rel_err(b, a, n) < 1e-6);
    free(g), free(u), free(a), free(b);
    // The fast op's expf is glibc's, bit for bit. First every 613th float below 88 in
    // magnitude, both signs (what the vector lanes take), then every 4099th bit pattern of all
    // (zeros, subnormals, |x| ≥ 88, infinities, NaNs: glibc's special cases, mixed into the
    // runs of 8), against the scalar formula with expf.
    size_t m = 2 * (0x42b00000u / 613) + ((size_t)1 << 32) / 4099 + 2;
    float *gs = malloc(m * 4), *us = malloc(m * 4), *want = malloc(m * 4), *got = malloc(m * 4);
    size_t k = 0;
    for (uint32_t bits = 0; bits < 0x42b00000u; bits += 613) {
        gs[k++] = bits_float(bits);
        gs[k++] = bits_float(bits | 0x80000000u);
    }
    for (uint64_t bits = 0; bits < ((uint64_t)1 << 32) && k < m; bits += 4099) gs[k++] = bits_float((uint32_t)bits);
    for (size_t i = 0; i < k; i++) {
        us[i] = (float)(i % 7) - 3.0f;
        want[i] = gs[i] / (1.0f + expf(-gs[i])) * us[i];
    }
    ops_cpu.swiglu(got, gs, us, (int64_t)k);
    for (size_t i = 0; i < k; i++)
        if (memcmp(&got[i], &want[i], 4) != 0 && !(isnan(got[i]) && isnan(want[i])))
            fail_msg("swiglu(%a) = %a, glibc's expf gives %a", (double)gs[i], (double)got[i], (double)want[i]);
    free(gs), free(us), free(want), free(got);
}

static void test_attention(void **state) {
    (void)state;
    int L = 2, NSEQ = 3, NCTX = 300, NH = 6, NKV = 2, HS = 16, kvd = NKV * HS;
    size_t nkv = (size_t)L * NSEQ * NCTX * kvd;
    float *kf = rand_vec(nkv, 2), *vf = rand_vec(nkv, 1);
    kv_cache kv = {malloc(2 * nkv), malloc(2 * nkv), L, NSEQ, NCTX, NKV, HS};  // fp16, as the engine keeps it
    assert_int_equal(quantize_row(QTYPE_F16, kf, kv.k, (int64_t)nkv), 0);
    assert_int_equal(quantize_row(QTYPE_F16, vf, kv.v, (int64_t)nkv), 0);
    for (size_t i = 0; i < nkv; i++) assert_true(kv.v[i] == fp32_to_fp16(vf[i]));  // F16C = the scalar rounding
    dequantize_row(QTYPE_F16, kv.v, vf, (int64_t)nkv);  // and back, 8 at a time = one at a time
    for (size_t i = 0; i < nkv; i++) {
        float a = fp16_to_fp32(kv.v[i]);
        assert_memory_equal(&vf[i], &a, sizeof(float));
    }
    // tokens at the start, in the middle of a chunk, and past the 128-position chunks
    int32_t seq[] = {0, 1, 2, 2, 1}, pos[] = {0, 5, 127, 128, 299};
    int T = 5;
    float *q = rand_vec((size_t)T * NH * HS, 2), *a = malloc(sizeof(float) * T * NH * HS),
          *b = malloc(sizeof(float) * T * NH * HS);
    for (int layer = 0; layer < L; layer++) {
        ops_ref.attention(a, q, &kv, layer, seq, pos, T, NH, NKV, HS);
        ops_cpu.attention(b, q, &kv, layer, seq, pos, T, NH, NKV, HS);
        assert_true(rel_err(b, a, (size_t)T * NH * HS) < 1e-5);
    }
    // Batch invariance: each token alone gives bit for bit what it gave beside the others
    // (prefill tiles consecutive tokens of a sequence; decode sees one token at a time).
    float *c = malloc(sizeof(float) * NH * HS);
    ops_cpu.attention(b, q, &kv, L - 1, seq, pos, T, NH, NKV, HS);
    for (int t = 0; t < T; t++) {
        ops_cpu.attention(c, q + (size_t)t * NH * HS, &kv, L - 1, seq + t, pos + t, 1, NH, NKV, HS);
        assert_memory_equal(c, b + (size_t)t * NH * HS, sizeof(float) * NH * HS);
    }
    free(c);
    // a token at position 0 attends only to itself: output = its value vector
    for (int h = 0; h < NH; h++)
        for (int i = 0; i < HS; i++)
            assert_float_equal(a[h * HS + i],
                               fp16_to_fp32(kv.v[kv_offset(&kv, L - 1, 0, h / (NH / NKV), 0) + i]), 1e-6);
    free(kv.k), free(kv.v), free(kf), free(vf), free(q), free(a), free(b);
}

// Attention of T tokens (seq[t], pos[t]) over a random fp16 cache of nseq slots of nctx
// positions, NH query heads on NKV KV heads of HS: the fast backend against ops_ref (max error
// over the largest output below tol), and bit for bit the same outputs whatever the batch:
// tokens alone (decode; 16 spread over the batch) and the batch cut in two at t = T/3 (other
// prefill tiles).
static void check_attention(const char *what, int NH, int NKV, int HS, int nseq, int nctx, const int32_t *seq,
                            const int32_t *pos, int T, double tol) {
    size_t nkv = (size_t)nseq * nctx * NKV * HS, qn = (size_t)T * NH * HS;
    float *kf = rand_vec(nkv, 2), *vf = rand_vec(nkv, 1), *q = rand_vec(qn, 2);
    kv_cache kv = {malloc(2 * nkv), malloc(2 * nkv), 1, nseq, nctx, NKV, HS};  // (1, nseq, NKV, nctx, HS) fp16
    assert_int_equal(quantize_row(QTYPE_F16, kf, kv.k, (int64_t)nkv), 0);
    assert_int_equal(quantize_row(QTYPE_F16, vf, kv.v, (int64_t)nkv), 0);
    float *a = malloc(sizeof(float) * qn), *b = malloc(sizeof(float) * qn), *c = malloc(sizeof(float) * qn);
    ops_ref.attention(a, q, &kv, 0, seq, pos, T, NH, NKV, HS);
    ops_cpu.attention(b, q, &kv, 0, seq, pos, T, NH, NKV, HS);
    double err = rel_err(b, a, qn);
    if (!(err < tol)) fail_msg("attention %s: error %.3g ≥ %.3g", what, err, tol);
    size_t row = (size_t)NH * HS;  // floats per token
    for (int t = 0; t < T; t += 1 + T / 16) {  // 16 tokens at most (each call is a parallel region)
        ops_cpu.attention(c, q + t * row, &kv, 0, seq + t, pos + t, 1, NH, NKV, HS);
        if (memcmp(c, b + t * row, sizeof(float) * row) != 0)
            fail_msg("attention %s: token %d alone differs from the batch", what, t);
    }
    int cut = T / 3;
    if (cut > 0) {
        ops_cpu.attention(c, q, &kv, 0, seq, pos, cut, NH, NKV, HS);
        ops_cpu.attention(c + cut * row, q + cut * row, &kv, 0, seq + cut, pos + cut, T - cut, NH, NKV, HS);
        if (memcmp(c, b, sizeof(float) * qn) != 0) fail_msg("attention %s: the batch cut at %d differs", what, cut);
    }
    free(kv.k), free(kv.v), free(kf), free(vf), free(q), free(a), free(b), free(c);
}

// Shape classes of the vector attention (model/backend_cpu.c: tiles of up to 48 rows =
// tokens × heads, blocks of 32 keys, online-softmax chunks of 128, 16 or 8 lanes).
static void test_attention_shapes(void **state) {
    (void)state;
    enum { MAXT = 400 };
    int32_t seq[MAXT], pos[MAXT];
    // one decode token deep in a cache, SmolLM2's heads (9 on 3 KV heads of 64)
    seq[0] = 0, pos[0] = 1000;
    check_attention("decode 9/3x64", 9, 3, 64, 1, 1024, seq, pos, 1, 5e-6);
    // a long prompt from position 0: chunks, key blocks and tiles all cut mid-way
    for (int t = 0; t < 300; t++) seq[t] = 0, pos[t] = t;
    check_attention("prefill 300 9/3x64", 9, 3, 64, 1, 300, seq, pos, 300, 5e-6);
    check_attention("prefill 200 14/2x64", 14, 2, 64, 1, 200, seq, pos, 200, 5e-6);  // Qwen2.5-0.5B's
    check_attention("prefill 150 12/2x128", 12, 2, 128, 1, 150, seq, pos, 150, 5e-6);  // Qwen2.5-1.5B's
    // a prompt's later part over a cached prefix (odd start and length)
    for (int t = 0; t < 131; t++) seq[t] = 0, pos[t] = 205 + t;
    check_attention("prefill 205..335 9/3x64", 9, 3, 64, 1, 337, seq, pos, 131, 5e-6);
    // batched decode: 8 slots at odd and edge lengths
    static const int32_t lens[8] = {1, 17, 128, 129, 300, 511, 33, 64};
    for (int t = 0; t < 8; t++) seq[t] = t, pos[t] = lens[t] - 1;
    check_attention("decode 8 slots 14/2x64", 14, 2, 64, 8, 512, seq, pos, 8, 5e-6);
    // a scheduler's step: decode tokens of two slots, then prompt chunks of two others
    int T = 0;
    seq[T] = 2, pos[T++] = 90;
    seq[T] = 0, pos[T++] = 250;
    for (int k = 0; k < 70; k++) seq[T] = 1, pos[T++] = 60 + k;
    for (int k = 0; k < 37; k++) seq[T] = 3, pos[T++] = k;
    check_attention("mixed step 9/3x64", 9, 3, 64, 4, 256, seq, pos, T, 5e-6);
    // group sizes: 1 (no GQA), 7, 20 (split into 16 + 4); head sizes 8, 24 and 40 (not a
    // multiple of 16), 256 (the largest the vector path takes) and 264 (the scalar path)
    for (int t = 0; t < 140; t++) seq[t] = 0, pos[t] = t;
    check_attention("prefill 140 4/4x64", 4, 4, 64, 1, 140, seq, pos, 140, 5e-6);
    check_attention("prefill 140 7/1x64", 7, 1, 64, 1, 140, seq, pos, 140, 5e-6);
    check_attention("prefill 140 40/2x64", 40, 2, 64, 1, 140, seq, pos, 140, 5e-6);
    check_attention("prefill 140 6/2x8", 6, 2, 8, 1, 140, seq, pos, 140, 5e-6);
    check_attention("prefill 140 6/2x24", 6, 2, 24, 1, 140, seq, pos, 140, 5e-6);
    check_attention("prefill 140 6/3x40", 6, 3, 40, 1, 140, seq, pos, 140, 5e-6);
    check_attention("prefill 140 2/1x256", 2, 1, 256, 1, 140, seq, pos, 140, 5e-6);
    check_attention("prefill 40 2/1x264", 2, 1, 264, 1, 140, seq, pos, 40, 5e-6);
}

// The softmax's e^x (ops_cpu_exp): within 1 ulp of the correctly rounded value on a sweep of
// every 307th float in [-86, 0], exactly 1 at 0, and 0 below -86 and at -inf.
static void test_attention_exp(void **state) {
    (void)state;
    enum { N = 4096 };
    float x[N], y[N];
    float lo = -86.0f;
    uint32_t b0 = 0x80000000u, b1;
    memcpy(&b1, &lo, 4);
    int n = 0, worst = 0;
    for (uint64_t b = b0; b <= b1 || n > 0; b += 307) {
        if (b <= b1) {
            uint32_t u = (uint32_t)b;
            memcpy(&x[n++], &u, 4);
        }
        if (n == N || (b > b1 && n > 0)) {
            ops_cpu_exp(y, x, n);
            for (int i = 0; i < n; i++) {
                float e = (float)exp((double)x[i]);
                int32_t ie, iy;
                memcpy(&ie, &e, 4), memcpy(&iy, &y[i], 4);
                int d = ie > iy ? ie - iy : iy - ie;
                if (d > 1) fail_msg("exp(%a) = %a, correctly rounded %a (%d ulp)", (double)x[i], (double)y[i], (double)e, d);
                worst = d > worst ? d : worst;
            }
            n = 0;
        }
    }
    static const float spec[] = {0.0f, -0.0f, -86.0f, -86.00001f, -87.5f, -100.0f, -1e30f, -INFINITY};
    float ys[8];
    ops_cpu_exp(ys, spec, 8);
    assert_true(ys[0] == 1.0f && ys[1] == 1.0f && ys[2] > 0);
    for (int i = 3; i < 8; i++) assert_true(ys[i] == 0.0f);
    (void)worst;
}

static void check_matmul(uint32_t type, int64_t N, int64_t K, int T, double tol) {
    float *wf = rand_vec((size_t)N * K, 0.1f);
    size_t rb = qtype_row_bytes(type, K);
    void *w = malloc(rb * (size_t)N);
    for (int64_t r = 0; r < N; r++) quantize_row(type, wf + r * K, (uint8_t *)w + r * rb, K);
    model_tensor t = {type, N, K, rb, w, NULL, type};
    float *x = rand_vec((size_t)T * K, 1), *a = malloc(sizeof(float) * T * N), *b = malloc(sizeof(float) * T * N);
    size_t sb = ops_matmul_scratch(&t, T);
    void *scratch = aligned_alloc(64, (sb + 63) / 64 * 64);
    ops_ref.matmul(&t, x, a, T, scratch);
    ops_cpu.matmul(&t, x, b, T, scratch);
    double err = rel_err(b, a, (size_t)T * N);
    if (err > tol) fail_msg("%s N=%lld K=%lld T=%d: error %.3g > %.3g", qtype_name(type), (long long)N, (long long)K, T,
                            err, tol);
    // With the decode kernels' packed copy (as the model loader makes it): the same bits.
    size_t pb = matmul_packed_bytes(type, N, K);
    if (pb) {
        void *pk = malloc(pb);
        matmul_pack(type, w, N, K, pk);
        model_tensor tp = t;
        tp.packed = pk;
        float *c = malloc(sizeof(float) * T * N);
        ops_cpu.matmul(&tp, x, c, T, scratch);
        assert_memory_equal(c, b, sizeof(float) * T * N);
        free(c), free(pk);
    }
    free(wf), free(w), free(x), free(a), free(b), free(scratch);
}

static void test_matmul(void **state) {
    (void)state;
    // F32 goes through OpenBLAS: float rounding only. Quantized types quantize the
    // activations to 8 bits (≤ 1/254 of each block's max per element), so the result moves
    // by up to about 1% of the largest output.
    int Ts[] = {1, 3, 8, 17};
    for (int i = 0; i < 4; i++) {
        check_matmul(QTYPE_F32, 96, 64, Ts[i], 1e-5);
        check_matmul(QTYPE_Q8_0, 96, 576, Ts[i], 2e-2);
        check_matmul(QTYPE_Q4_0, 67, 128, Ts[i], 2e-2);
        check_matmul(QTYPE_Q4_0, 80, 128, Ts[i], 2e-2);
        check_matmul(QTYPE_Q4_1, 192, 576, Ts[i], 2e-2);
    }
}

static void test_embed(void **state) {
    (void)state;
    int V = 10, C = 64;
    float *wf = rand_vec((size_t)V * C, 1);
    size_t rb = qtype_row_bytes(QTYPE_Q8_0, C);
    uint8_t *w = malloc(rb * V);
    for (int r = 0; r < V; r++) quantize_row(QTYPE_Q8_0, wf + r * C, w + r * rb, C);
    model_tensor t = {QTYPE_Q8_0, V, C, rb, w, NULL, QTYPE_Q8_0};
    int32_t ids[] = {3, 9, 0};
    float a[3 * 64], b[3 * 64];
    ops_ref.embed(a, &t, ids, 3);
    ops_cpu.embed(b, &t, ids, 3);
    assert_true(rel_err(b, a, 3 * 64) == 0);
    for (int i = 0; i < C; i++) assert_float_equal(a[64 + i], wf[9 * C + i], 0.01);
    free(wf), free(w);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_rmsnorm),   cmocka_unit_test(test_rope),   cmocka_unit_test(test_swiglu_add),
        cmocka_unit_test(test_attention), cmocka_unit_test(test_attention_shapes),
        cmocka_unit_test(test_attention_exp), cmocka_unit_test(test_matmul), cmocka_unit_test(test_embed),
    };
    return cmocka_run_group_tests_name("ops", tests, NULL, NULL);
}
