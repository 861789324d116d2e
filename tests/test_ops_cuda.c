// test_ops_cuda.c: the CUDA backend (model/ops_cuda.cu) against the fp32 reference (ops_ref),
// its kernels run on the CPU through the CUDA emulation (tests/support/cuemu.h: the same
// source compiled by g++; fibers for threads, real barriers and warp shuffles). Every op, over
// several shape classes (odd sizes, T = 1 decode and T > 1 prefill, several sequences, GQA
// groups of 1 to 8 heads, head sizes 6 to 256, caches crossing the 128-position chunks):
//   rmsnorm, rope (both pairings, table or none), swiglu, add, add_bias, embed, matmul and
//   matmul_n (weights_prepare's fp32 copy of F32, F16, Q8_0, Q4_0, Q4_1 rows), attention:
//     max |got − want| ≤ tol · max |want| (tol per op below; NaN anywhere fails);
//   kv_store, kv_copy, gather: bit-equal to backend_host.c's.
// Then whole forward passes (Llama Q4_1, Qwen2 Q8_0 with QKV biases; prefill in two chunks,
// a copied cache, three sequences decoding with logits for some rows): logits within 1e-4 of
// ops_ref's, and every device allocation released. And the failures: no device (the message
// the CLI shows before falling back to the CPU: model/device.c's names too), and an op the
// backend refuses reported by ops_cuda.error, alone and as engine_forward's error. The number of comparisons is printed at the end.
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "model/device.h"
#include "model/forward.h"
#include "model/model.h"
#include "model/ops.h"
#include "model/ops_cuda.h"
#include "model/quant.h"
#include "tests/support/cuemu_hooks.h"
#include "tests/support/engine_script.h"
#include "tests/support/tiny_model.h"

static int n_checks;
static const ops *CU;  // the backend, from ops_cuda_open (test_open)

static uint64_t rng = 0x9e3779b97f4a7c15ull;
static float frand(void) {
    rng ^= rng << 13, rng ^= rng >> 7, rng ^= rng << 17;
    return (float)((rng >> 11) * (1.0 / 9007199254740992.0)) * 2.0f - 1.0f;
}
static float *rand_vec(size_t n, float scale) {
    float *v = malloc(n * sizeof(float) + 1);
    assert_non_null(v);
    for (size_t i = 0; i < n; i++) v[i] = frand() * scale;
    return v;
}

// ---------------------------------------------------------------------------- device helpers

static void *dev_copy(const void *host, size_t n) {
    void *d = CU->alloc(n);
    assert_non_null(d);
    CU->upload(d, host, n);
    return d;
}

static void *host_copy_of(const void *dev, size_t n) {
    void *h = malloc(n + 1);
    assert_non_null(h);
    CU->download(h, dev, n);
    return h;
}

static void no_error(void) {
    trl_err e = {{0}};
    if (CU->error(&e)) fail_msg("cuda: %s", e.msg);
}

// max |got − want| ≤ tol · max |want|, no NaN: one comparison counted.
static void check_close(const char *what, const float *got, const float *want, size_t n, double tol) {
    double md = 0, mw = 1e-30;
    size_t worst = 0;
    for (size_t i = 0; i < n; i++) {
        if (isnan(got[i]) || isnan(want[i])) fail_msg("%s: NaN at %zu (got %g, want %g)", what, i, got[i], want[i]);
        double d = fabs((double)got[i] - want[i]);
        if (d > md) md = d, worst = i;
        mw = fmax(mw, fabs((double)want[i]));
    }
    n_checks++;
    if (md > tol * mw)
        fail_msg("%s: |got - want| = %g at %zu (got %g, want %g) > %g · max |want| %g", what, md, worst, got[worst],
                 want[worst], tol, mw);
}

static void check_equal(const char *what, const void *got, const void *want, size_t n) {
    n_checks++;
    if (memcmp(got, want, n)) fail_msg("%s: not bit-equal to the host's", what);
}

// ---------------------------------------------------------------------------- the device

// Without a device the backend says so (the CLI prints it and uses the CPU); then device 0.
static void test_open(void **state) {
    (void)state;
    trl_err e = {{0}};
    cuemu_set_device_count(0);
    assert_null(ops_cuda_open(0, &e));
    assert_non_null(strstr(e.msg, "no CUDA device"));
    assert_string_equal(ops_cuda_device_name(), "");
    device d;  // --device cuda:0 without a device: the cpu, and why
    assert_int_equal(device_open(&d, "cuda:0", &e), TRL_OK);
    assert_ptr_equal(d.be, &ops_cpu);
    assert_string_equal(d.name, "cpu");
    assert_non_null(strstr(d.note, "cuda:0 is not available (no CUDA device"));
    cuemu_set_device_count(1);
    assert_null(ops_cuda_open(1, &e));
    assert_non_null(strstr(e.msg, "no CUDA device 1"));
    if (!(CU = ops_cuda_open(0, &e))) fail_msg("%s", e.msg);
    assert_non_null(strstr(ops_cuda_device_name(), "cuemu"));
    assert_ptr_equal(ops_cuda_open(0, &e), CU);  // again: the same device
    assert_null(ops_cuda_open(1, &e));           // one device per process
    assert_int_equal(CU->host, 0);
    assert_int_equal(device_open(&d, "cuda", &e), TRL_OK);  // cuda means cuda:0
    assert_ptr_equal(d.be, CU);
    assert_string_equal(d.name, "cuda:0");
    assert_string_equal(d.note, "");
    assert_non_null(strstr(d.info, "cuemu"));
    assert_int_equal(device_open(&d, "cuda:1", &e), TRL_OK);  // one device per process: the cpu
    assert_ptr_equal(d.be, &ops_cpu);
    assert_non_null(strstr(d.note, "open already"));
    assert_int_equal(device_open(&d, NULL, &e), TRL_OK);
    assert_string_equal(d.name, "cpu");
    const char *bad[] = {"gpu", "cuda:", "cuda:x", "cuda:0x", "cuda:-1", "CPU"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        assert_int_equal(device_open(&d, bad[i], &e), TRL_ERR);
        assert_non_null(strstr(e.msg, "unknown device"));
    }
    uint8_t *dz = CU->alloc(1000), *hz = host_copy_of(dz, 1000), zero[1000] = {0};
    assert_memory_equal(hz, zero, 1000);  // alloc's memory is zeroed (cudaMalloc's is not)
    CU->release(dz), free(hz);
    n_checks += 12;
}

// ---------------------------------------------------------------------------- elementwise and rows

static void test_rmsnorm(void **state) {
    (void)state;
    const int shapes[][2] = {{1, 576}, {5, 577}, {3, 33}, {2, 1536}, {7, 64}};  // (T, C)
    for (size_t s = 0; s < sizeof(shapes) / sizeof(shapes[0]); s++) {
        int T = shapes[s][0], C = shapes[s][1];
        size_t n = (size_t)T * C;
        float *x = rand_vec(n, 3), *w = rand_vec((size_t)C, 1), *want = rand_vec(n, 1);
        ops_ref.rmsnorm(want, x, w, T, C, 1e-5f);
        float *dx = dev_copy(x, n * 4), *dw = dev_copy(w, (size_t)C * 4), *dout = CU->alloc(n * 4);
        CU->rmsnorm(dout, dx, dw, T, C, 1e-5f);
        CU->rmsnorm(dx, dx, dw, T, C, 1e-5f);  // in place
        float *got = host_copy_of(dout, n * 4), *got2 = host_copy_of(dx, n * 4);
        no_error();
        check_close("rmsnorm", got, want, n, 1e-5);
        check_close("rmsnorm in place", got2, want, n, 1e-5);
        CU->release(dx), CU->release(dw), CU->release(dout);
        free(x), free(w), free(want), free(got), free(got2);
    }
}

static void test_rope(void **state) {
    (void)state;
    const int heads[][3] = {{9, 3, 64}, {4, 2, 16}, {2, 1, 128}, {14, 2, 64}, {3, 3, 6}};  // NH, NKV, HS
    const int32_t pos_all[] = {0, 1, 17, 100, 2047, 8000};
    int n_pos = 8192;
    for (size_t s = 0; s < sizeof(heads) / sizeof(heads[0]); s++)
        for (int style = 0; style <= 2; style += 2)
            for (int T = 1; T <= 6; T += 5)
                for (int use_table = 0; use_table <= 1; use_table++) {
                    int NH = heads[s][0], NKV = heads[s][1], HS = heads[s][2];
                    const int32_t *pos = T == 1 ? pos_all + 3 : pos_all;  // decode at 100, or all six
                    size_t nq = (size_t)T * NH * HS, nk = (size_t)T * NKV * HS;
                    float *q = rand_vec(nq, 1), *k = rand_vec(nk, 1);
                    float *dq = dev_copy(q, nq * 4), *dk = dev_copy(k, nk * 4);
                    int32_t *dpos = dev_copy(pos, (size_t)T * 4);
                    float *dtab = NULL;
                    if (use_table) {
                        float *tab = malloc((size_t)n_pos * HS * 4);
                        rope_table(tab, n_pos, HS, 10000.0f);
                        dtab = dev_copy(tab, (size_t)n_pos * HS * 4);
                        free(tab);
                    }
                    ops_ref.rope(q, k, pos, T, NH, NKV, HS, 10000.0f, (rope_style)style, NULL);
                    CU->rope(dq, dk, dpos, T, NH, NKV, HS, 10000.0f, (rope_style)style, dtab);
                    float *gq = host_copy_of(dq, nq * 4), *gk = host_copy_of(dk, nk * 4);
                    no_error();
                    check_close("rope q", gq, q, nq, 1e-5);
                    check_close("rope k", gk, k, nk, 1e-5);
                    CU->release(dq), CU->release(dk), CU->release(dpos), CU->release(dtab);
                    free(q), free(k), free(gq), free(gk);
                }
}

static void test_elementwise(void **state) {
    (void)state;
    const int64_t sizes[] = {1, 37, 256, 1003, 4864 * 3};
    for (size_t s = 0; s < sizeof(sizes) / sizeof(sizes[0]); s++) {
        int64_t n = sizes[s];
        size_t b = (size_t)n * 4;
        float *g = rand_vec((size_t)n, 6), *u = rand_vec((size_t)n, 2), *want = rand_vec((size_t)n, 1);
        float *dg = dev_copy(g, b), *du = dev_copy(u, b), *dout = CU->alloc(b);
        ops_ref.swiglu(want, g, u, n);
        CU->swiglu(dout, dg, du, n);
        float *got = host_copy_of(dout, b);
        no_error();
        check_close("swiglu", got, want, (size_t)n, 1e-6);
        free(got);
        ops_ref.add(g, u, n);
        CU->add(dg, du, n);
        got = host_copy_of(dg, b);
        no_error();
        check_close("add", got, g, (size_t)n, 1e-6);
        CU->release(dg), CU->release(du), CU->release(dout);
        free(g), free(u), free(want), free(got);
    }
    // add_bias: x (T, N) += b (N)
    const int tn[][2] = {{1, 64}, {5, 96}, {3, 17}, {9, 896}};
    for (size_t s = 0; s < sizeof(tn) / sizeof(tn[0]); s++) {
        int T = tn[s][0], N = tn[s][1];
        size_t n = (size_t)T * N;
        float *x = rand_vec(n, 1), *bias = rand_vec((size_t)N, 1);
        float *dx = dev_copy(x, n * 4), *db = dev_copy(bias, (size_t)N * 4);
        ops_ref.add_bias(x, bias, T, N);
        CU->add_bias(dx, db, T, N);
        float *got = host_copy_of(dx, n * 4);
        no_error();
        check_close("add_bias", got, x, n, 1e-6);
        CU->release(dx), CU->release(db);
        free(x), free(bias), free(got);
    }
}

static void test_gather_embed(void **state) {
    (void)state;
    // gather: out of place and in place (idx[i] >= i, increasing), C odd and wider than a block
    const int C[] = {5, 64, 577};
    const int32_t idx[] = {1, 3, 4, 6};
    for (size_t s = 0; s < sizeof(C) / sizeof(C[0]); s++) {
        int T = 7, n = 4;
        size_t b = (size_t)T * C[s] * 4;
        float *x = rand_vec((size_t)T * C[s], 1), *want = malloc(b), *want2 = malloc(b);
        memcpy(want2, x, b);
        host_gather(want, x, idx, n, C[s]);
        host_gather(want2, want2, idx, n, C[s]);
        float *dx = dev_copy(x, b), *dout = CU->alloc(b);
        int32_t *didx = dev_copy(idx, sizeof(idx));
        CU->gather(dout, dx, didx, n, C[s]);
        CU->gather(dx, dx, didx, n, C[s]);
        float *got = host_copy_of(dout, (size_t)n * C[s] * 4), *got2 = host_copy_of(dx, b);
        no_error();
        check_equal("gather", got, want, (size_t)n * C[s] * 4);
        check_equal("gather in place", got2, want2, b);
        CU->release(dx), CU->release(dout), CU->release(didx);
        free(x), free(want), free(want2), free(got), free(got2);
    }
    // embed: rows of an fp32 table (V, C)
    int V = 50, Cm = 72, T = 6;
    int32_t ids[] = {0, 49, 7, 7, 13, 1};
    float *tab = rand_vec((size_t)V * Cm, 1), *want = malloc((size_t)T * Cm * 4);
    model_tensor ht = {QTYPE_F32, V, Cm, (size_t)Cm * 4, tab, NULL, QTYPE_F32};
    ops_ref.embed(want, &ht, ids, T);
    model_tensor dt = ht;
    dt.data = dev_copy(tab, (size_t)V * Cm * 4);
    int32_t *dids = dev_copy(ids, sizeof(ids));
    float *dout = CU->alloc((size_t)T * Cm * 4);
    CU->embed(dout, &dt, dids, T);
    float *got = host_copy_of(dout, (size_t)T * Cm * 4);
    no_error();
    check_equal("embed", got, want, (size_t)T * Cm * 4);
    CU->release((void *)dt.data), CU->release(dids), CU->release(dout);
    free(tab), free(want), free(got);
}

// ---------------------------------------------------------------------------- weights and matmul

// A one-layer model whose every matrix is w (N, K) and whose vectors are v: enough for
// weights_prepare, which then holds w's fp32 copy in layer 0.
static void fake_model(model *m, model_layer *L, const model_tensor *w, const float *v) {
    memset(m, 0, sizeof(*m));
    memset(L, 0, sizeof(*L));
    m->cfg.n_layer = 1, m->cfg.n_embd = (int)w->n_cols, m->cfg.n_head = 1, m->cfg.n_head_kv = 1;
    m->cfg.head_dim = (int)w->n_rows, m->cfg.n_ff = (int)w->n_rows;
    m->tok_embd = m->output = *w;
    m->out_norm = v;
    L->attn_norm = L->ffn_norm = v;
    L->wq = L->wk = L->wv = L->wo = L->w_gate = L->w_up = L->w_down = *w;
    m->layers = L;
}

static void test_matmul(void **state) {
    (void)state;
    const uint32_t types[] = {QTYPE_F32, QTYPE_F16, QTYPE_Q8_0, QTYPE_Q4_0, QTYPE_Q4_1};
    const int shapes[][3] = {{96, 64, 1}, {37, 128, 5}, {160, 576, 17}, {33, 32, 2}};  // N, K, T
    for (size_t ti = 0; ti < sizeof(types) / sizeof(types[0]); ti++)
        for (size_t s = 0; s < sizeof(shapes) / sizeof(shapes[0]); s++) {
            int N = shapes[s][0], K = shapes[s][1], T = shapes[s][2];
            if (types[ti] == QTYPE_F32 && s == 1) K = 45;  // F32 takes any width
            size_t rb = qtype_row_bytes(types[ti], K);
            uint8_t *rows = malloc((size_t)N * rb);
            float *src = rand_vec((size_t)N * K, 0.5f);
            for (int r = 0; r < N; r++)
                assert_int_equal(quantize_row(types[ti], src + (size_t)r * K, rows + (size_t)r * rb, K), 0);
            model_tensor w = {types[ti], N, K, rb, rows, NULL, types[ti]};
            float *v = rand_vec((size_t)N > (size_t)K ? (size_t)N : (size_t)K, 1);
            model m, dm;
            model_layer L;
            fake_model(&m, &L, &w, v);
            trl_err e = {{0}};
            if (CU->weights_prepare(&m, &dm, &e)) fail_msg("%s", e.msg);
            assert_int_equal(dm.layers[0].wq.type, QTYPE_F32);
            float *x = rand_vec((size_t)T * K, 1), *want = malloc((size_t)T * N * 4);
            float *scratch = malloc(ops_matmul_scratch(&w, T));
            ops_ref.matmul(&w, x, want, T, scratch);
            float *dx = dev_copy(x, (size_t)T * K * 4), *dy = CU->alloc((size_t)T * N * 4),
                  *dy2 = CU->alloc((size_t)T * N * 4);
            CU->matmul(&dm.layers[0].wq, dx, dy, T, NULL);
            const model_tensor *ws[2] = {&dm.layers[0].w_gate, &dm.layers[0].w_up};
            float *ys[2] = {dy2, dy};
            CU->matmul_n(ws, dx, ys, 2, T, NULL);
            float *got = host_copy_of(dy, (size_t)T * N * 4), *got2 = host_copy_of(dy2, (size_t)T * N * 4);
            no_error();
            char what[64];
            snprintf(what, sizeof(what), "matmul %s %dx%dx%d", qtype_name(types[ti]), N, K, T);
            check_close(what, got, want, (size_t)T * N, 1e-5);
            check_close("matmul_n", got2, want, (size_t)T * N, 1e-5);
            // the embedding table's copy: the same rows, dequantized once
            float *emb = host_copy_of(dm.tok_embd.data, (size_t)N * K * 4), *row = malloc((size_t)K * 4);
            dequantize_row(types[ti], rows + (size_t)(N - 1) * rb, row, K);
            check_equal("weights_prepare row", emb + (size_t)(N - 1) * K, row, (size_t)K * 4);
            CU->weights_release(&dm);
            CU->release(dx), CU->release(dy), CU->release(dy2);
            free(rows), free(src), free(v), free(x), free(want), free(scratch), free(got), free(got2), free(emb),
                free(row);
        }
}

// ---------------------------------------------------------------------------- the KV cache

static void fill_fp16(uint16_t *c, size_t n) {
    for (size_t i = 0; i < n; i++) c[i] = fp32_to_fp16(frand());
}

static void test_kv_store_copy(void **state) {
    (void)state;
    kv_cache kv = {NULL, NULL, 2, 3, 40, 3, 24};  // L, n_seq, n_ctx, NKV, HS
    size_t n = (size_t)kv.n_layer * kv.n_seq * kv.n_ctx * kv.n_head_kv * kv.head_dim, b = n * 2;
    uint16_t *hk = malloc(b), *hv = malloc(b);
    fill_fp16(hk, n), fill_fp16(hv, n);
    kv_cache dkv = kv;
    dkv.k = dev_copy(hk, b), dkv.v = dev_copy(hv, b);
    kv.k = hk, kv.v = hv;
    // a prefill of 5 tokens in sequence 1, then one decode token each for sequences 0 and 2
    const int32_t seq[][5] = {{1, 1, 1, 1, 1}, {0, 2}}, pos[][5] = {{0, 1, 2, 3, 4}, {39, 7}};
    const int Ts[] = {5, 2};
    for (int r = 0; r < 2; r++)
        for (int layer = 0; layer < 2; layer++) {
            int T = Ts[r];
            size_t nkv = (size_t)T * kv.n_head_kv * kv.head_dim;
            float *k = rand_vec(nkv, 2), *v = rand_vec(nkv, 2);
            float *dk = dev_copy(k, nkv * 4), *dv = dev_copy(v, nkv * 4);
            int32_t *dseq = dev_copy(seq[r], (size_t)T * 4), *dpos = dev_copy(pos[r], (size_t)T * 4);
            host_kv_store(&kv, layer, k, v, seq[r], pos[r], T);
            CU->kv_store(&dkv, layer, dk, dv, dseq, dpos, T);
            CU->release(dk), CU->release(dv), CU->release(dseq), CU->release(dpos);
            free(k), free(v);
        }
    uint16_t *gk = host_copy_of(dkv.k, b), *gv = host_copy_of(dkv.v, b);
    no_error();
    check_equal("kv_store keys", gk, hk, b);
    check_equal("kv_store values", gv, hv, b);
    free(gk), free(gv);
    host_kv_copy(&kv, 2, 1, 17);
    CU->kv_copy(&dkv, 2, 1, 17);
    host_kv_copy(&kv, 0, 2, 1);
    CU->kv_copy(&dkv, 0, 2, 1);
    gk = host_copy_of(dkv.k, b), gv = host_copy_of(dkv.v, b);
    no_error();
    check_equal("kv_copy keys", gk, hk, b);
    check_equal("kv_copy values", gv, hv, b);
    CU->release(dkv.k), CU->release(dkv.v);
    free(gk), free(gv), free(hk), free(hv);
}

static void test_attention(void **state) {
    (void)state;
    const int heads[][3] = {{4, 2, 16}, {9, 3, 64}, {14, 2, 64}, {2, 2, 128}, {8, 1, 200}, {3, 3, 256}};
    for (size_t s = 0; s < sizeof(heads) / sizeof(heads[0]); s++) {
        int NH = heads[s][0], NKV = heads[s][1], HS = heads[s][2];
        kv_cache kv = {NULL, NULL, 2, 3, 300, NKV, HS};
        size_t n = (size_t)kv.n_layer * kv.n_seq * kv.n_ctx * NKV * HS, b = n * 2;
        uint16_t *hk = malloc(b), *hv = malloc(b);
        fill_fp16(hk, n), fill_fp16(hv, n);
        kv_cache dkv = kv;
        dkv.k = dev_copy(hk, b), dkv.v = dev_copy(hv, b);
        kv.k = hk, kv.v = hv;
        // decode (one token), decode of three sequences, a prefill crossing the 128-position chunks
        const int32_t seqs[][6] = {{1}, {0, 2, 1}, {2, 2, 2, 2, 2, 2}};
        const int32_t poss[][6] = {{0}, {299, 128, 5}, {126, 127, 128, 129, 255, 256}};
        const int Ts[] = {1, 3, 6};
        for (int r = 0; r < 3; r++) {
            int T = Ts[r], layer = r % 2;
            size_t nq = (size_t)T * NH * HS;
            float *q = rand_vec(nq, 2), *want = malloc(nq * 4);
            ops_ref.attention(want, q, &kv, layer, seqs[r], poss[r], T, NH, NKV, HS);
            float *dq = dev_copy(q, nq * 4), *dout = CU->alloc(nq * 4);
            int32_t *dseq = dev_copy(seqs[r], (size_t)T * 4), *dpos = dev_copy(poss[r], (size_t)T * 4);
            CU->attention(dout, dq, &dkv, layer, dseq, dpos, T, NH, NKV, HS);
            float *got = host_copy_of(dout, nq * 4);
            no_error();
            char what[80];
            snprintf(what, sizeof(what), "attention NH %d NKV %d HS %d T %d", NH, NKV, HS, T);
            check_close(what, got, want, nq, 1e-5);
            CU->release(dq), CU->release(dout), CU->release(dseq), CU->release(dpos);
            free(q), free(want), free(got);
        }
        CU->release(dkv.k), CU->release(dkv.v);
        free(hk), free(hv);
    }
}

// ---------------------------------------------------------------------------- failures

// An op the backend cannot run is not silent: CU->error reports it once.
static void test_refusals(void **state) {
    (void)state;
    trl_err e = {{0}};
    kv_cache kv = {NULL, NULL, 1, 1, 4, 1, 512};
    kv.k = CU->alloc(4 * 512 * 2), kv.v = CU->alloc(4 * 512 * 2);
    float *q = CU->alloc(512 * 4), *out = CU->alloc(512 * 4);
    int32_t *z = CU->alloc(4);
    CU->attention(out, q, &kv, 0, z, z, 1, 1, 1, 512);
    assert_int_equal(CU->error(&e), TRL_ERR);
    assert_non_null(strstr(e.msg, "head size 512"));
    assert_int_equal(CU->error(&e), TRL_OK);  // reported once
    uint8_t rows[34] = {0};
    model_tensor w = {QTYPE_Q8_0, 1, 32, 34, rows, NULL, QTYPE_Q8_0};
    CU->matmul(&w, q, out, 1, NULL);
    assert_int_equal(CU->error(&e), TRL_ERR);
    assert_non_null(strstr(e.msg, "Q8_0"));
    CU->release(kv.k), CU->release(kv.v), CU->release(q), CU->release(out), CU->release(z);
    n_checks += 3;
}

// ---------------------------------------------------------------------------- the engine

// The engine script (tests/support/engine_script.h); a failure fails the test.
static float *run_script(const model *m, const ops *be, size_t *n_out) {
    trl_err e = {{0}};
    float *out = engine_script_run(m, be, n_out, &e);
    if (!out) fail_msg("engine script: %s", e.msg);
    return out;
}

static void check_model(int arch, uint32_t wtype) {
    tiny_model_spec s = tiny_model_default(arch);
    char dir[256], path[300];
    trl_err e = {{0}};
    assert_int_equal(tiny_model_tempdir(dir, sizeof(dir)), TRL_OK);
    snprintf(path, sizeof(path), "%s/tiny.gguf", dir);
    if (tiny_model_write_gguf(&s, wtype, path, &e)) fail_msg("%s", e.msg);
    model m;
    if (model_load(&m, path, &e)) fail_msg("%s", e.msg);
    int live = cuemu_live_allocations();
    size_t n_ref, n_cuda;
    float *want = run_script(&m, &ops_ref, &n_ref), *got = run_script(&m, CU, &n_cuda);
    assert_int_equal(n_ref, n_cuda);
    check_close(arch == MODEL_ARCH_LLAMA ? "forward llama Q4_1" : "forward qwen2 Q8_0 (bias)", got, want, n_ref, 1e-4);
    assert_int_equal(cuemu_live_allocations(), live);  // engine_free released every device buffer
    n_checks++;
    free(want), free(got);
    model_free(&m);
    tiny_model_rmdir(dir);
}

static void test_forward_llama(void **state) {
    (void)state;
    check_model(MODEL_ARCH_LLAMA, QTYPE_Q4_1);
}

static void test_forward_qwen2_bias(void **state) {
    (void)state;
    check_model(MODEL_ARCH_QWEN2, QTYPE_Q8_0);
}

// A pass the backend cannot run fails engine_forward with the backend's reason (ops.h: error),
// instead of returning garbage logits: here attention over heads of 288 values (at most 256).
static void test_forward_reports_failure(void **state) {
    (void)state;
    tiny_model_spec s = tiny_model_default(MODEL_ARCH_LLAMA);
    s.head_dim = 288;
    char dir[256], path[300];
    trl_err e = {{0}};
    assert_int_equal(tiny_model_tempdir(dir, sizeof(dir)), TRL_OK);
    snprintf(path, sizeof(path), "%s/tiny.gguf", dir);
    if (tiny_model_write_gguf(&s, QTYPE_F32, path, &e)) fail_msg("%s", e.msg);
    model m;
    if (model_load(&m, path, &e)) fail_msg("%s", e.msg);
    engine en;
    if (engine_init(&en, &m, CU, 1, 16, 4, &e)) fail_msg("engine_init: %s", e.msg);
    float *logits = malloc(sizeof(float) * (size_t)m.cfg.n_vocab);
    assert_int_equal(engine_feed(&en, 0, ENGINE_SCRIPT_PROMPT, 3, logits, &e), TRL_ERR);
    assert_non_null(strstr(e.msg, "head size 288"));
    assert_int_equal(CU->error(&e), TRL_OK);  // reported once, to the engine
    n_checks++;
    engine_free(&en);
    free(logits);
    model_free(&m);
    tiny_model_rmdir(dir);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_open),
        cmocka_unit_test(test_rmsnorm),
        cmocka_unit_test(test_rope),
        cmocka_unit_test(test_elementwise),
        cmocka_unit_test(test_gather_embed),
        cmocka_unit_test(test_matmul),
        cmocka_unit_test(test_kv_store_copy),
        cmocka_unit_test(test_attention),
        cmocka_unit_test(test_refusals),
        cmocka_unit_test(test_forward_llama),
        cmocka_unit_test(test_forward_qwen2_bias),
        cmocka_unit_test(test_forward_reports_failure),
    };
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    printf("test_ops_cuda: %d comparisons with the reference in %ld emulated kernel launches\n", n_checks,
           cuemu_launches());
    return rc;
}
