// test_backend_seam.c: the engine (model/forward.c) reaches a backend's memory only through
// the ops table's seam (ops.h: alloc/release, upload/download, weights_prepare, kv_store,
// kv_copy, gather, add_bias). "devsim" is the CPU backend's kernels behind a simulated device:
// its memory is a tracked heap apart from the host, the model's weights are copied into it, and
// every op checks that each pointer it is handed lies in that heap (uploads and downloads: one
// side in it, the other not). Run through it:
// - prefill, several sequences decoding together with logits for some rows only, a sequence
//   given a copy of another's cache, QKV biases (Qwen2): logits bit-equal to ops_cpu's;
// - no op ever sees a host pointer, uploads and downloads happen, and freeing the engine
//   releases every device allocation.
// A GPU backend meets the same seam; this is how its absence of host access is tested here.
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "model/forward.h"
#include "model/matmul.h"
#include "model/model.h"
#include "model/quant.h"
#include "tests/support/tiny_model.h"

// --- the simulated device heap
#define DEV_MAX 1024
static struct {
    const char *p;
    size_t n;
} g_dev[DEV_MAX];
static int g_ndev, g_uploads, g_downloads;
static char g_bad[256];  // the first violation

static int on_dev(const void *q) {
    const char *c = q;
    for (int i = 0; i < g_ndev; i++)
        if (c >= g_dev[i].p && c < g_dev[i].p + g_dev[i].n) return 1;
    return 0;
}

static void need(const char *op, const void *q) {
    if (!on_dev(q) && !g_bad[0]) snprintf(g_bad, sizeof(g_bad), "%s: a pointer outside the device heap", op);
}

static void *dev_alloc(size_t n) {
    if (g_ndev == DEV_MAX) return NULL;
    void *p = host_alloc(n);
    if (p) g_dev[g_ndev].p = p, g_dev[g_ndev++].n = n ? n : 1;
    return p;
}

static void dev_release(void *p) {
    if (!p) return;
    for (int i = 0; i < g_ndev; i++)
        if (g_dev[i].p == p) {
            g_dev[i] = g_dev[--g_ndev];
            free(p);
            return;
        }
    if (!g_bad[0]) snprintf(g_bad, sizeof(g_bad), "release: not a device allocation");
}

static void dev_upload(void *dst, const void *src, size_t n) {
    need("upload (dst)", dst);
    if (on_dev(src) && !g_bad[0]) snprintf(g_bad, sizeof(g_bad), "upload: the source is device memory");
    memcpy(dst, src, n);
    g_uploads++;
}

static void dev_download(void *dst, const void *src, size_t n) {
    need("download (src)", src);
    if (on_dev(dst) && !g_bad[0]) snprintf(g_bad, sizeof(g_bad), "download: the destination is device memory");
    memcpy(dst, src, n);
    g_downloads++;
}

static const void *dev_copy_of(const void *src, size_t n) {
    if (!src) return NULL;
    void *p = dev_alloc(n);
    if (p) dev_upload(p, src, n);
    return p;
}

static void tensor_to_dev(model_tensor *t) {
    const void *data = t->data;
    t->data = dev_copy_of(data, (size_t)t->n_rows * t->row_bytes);
    if (t->packed) t->packed = dev_copy_of(t->packed, matmul_packed_bytes(t->packed_type, t->n_rows, t->n_cols));
}

static int dev_weights_prepare(const model *m, model *w, trl_err *e) {
    const model_config *c = &m->cfg;
    *w = *m;
    w->layers = calloc((size_t)c->n_layer, sizeof(model_layer));  // host bookkeeping, device pointers
    if (!w->layers) return trl_errf(e, "out of memory");
    size_t C = (size_t)c->n_embd, qd = (size_t)c->n_head * c->head_dim, kvd = (size_t)c->n_head_kv * c->head_dim;
    int tied = m->output.data == m->tok_embd.data;
    tensor_to_dev(&w->tok_embd);
    if (tied) w->output = w->tok_embd;
    else tensor_to_dev(&w->output);
    w->out_norm = dev_copy_of(m->out_norm, C * sizeof(float));
    for (int l = 0; l < c->n_layer; l++) {
        model_layer *L = &w->layers[l];
        *L = m->layers[l];
        model_tensor *ts[] = {&L->wq, &L->wk, &L->wv, &L->wo, &L->w_gate, &L->w_up, &L->w_down};
        for (size_t i = 0; i < sizeof(ts) / sizeof(ts[0]); i++) tensor_to_dev(ts[i]);
        L->attn_norm = dev_copy_of(L->attn_norm, C * sizeof(float));
        L->ffn_norm = dev_copy_of(L->ffn_norm, C * sizeof(float));
        L->bq = dev_copy_of(L->bq, qd * sizeof(float));
        L->bk = dev_copy_of(L->bk, kvd * sizeof(float));
        L->bv = dev_copy_of(L->bv, kvd * sizeof(float));
    }
    return TRL_OK;
}

static void tensor_release(model_tensor *t) {
    dev_release((void *)t->data);
    dev_release((void *)t->packed);
}

static void dev_weights_release(model *w) {
    int tied = w->output.data == w->tok_embd.data;
    tensor_release(&w->tok_embd);
    if (!tied) tensor_release(&w->output);
    dev_release((void *)w->out_norm);
    for (int l = 0; l < w->cfg.n_layer && w->layers; l++) {
        model_layer *L = &w->layers[l];
        model_tensor *ts[] = {&L->wq, &L->wk, &L->wv, &L->wo, &L->w_gate, &L->w_up, &L->w_down};
        for (size_t i = 0; i < sizeof(ts) / sizeof(ts[0]); i++) tensor_release(ts[i]);
        const float *v[] = {L->attn_norm, L->ffn_norm, L->bq, L->bk, L->bv};
        for (size_t i = 0; i < sizeof(v) / sizeof(v[0]); i++) dev_release((void *)v[i]);
    }
    free(w->layers);
    memset(w, 0, sizeof(*w));
}

// --- the CPU kernels, each behind a check of its pointers
static void need_w(const char *op, const model_tensor *w) {
    need(op, w->data);
    if (w->packed) need(op, w->packed);
}

static void dev_matmul(const model_tensor *w, const float *x, float *y, int T, void *scratch) {
    need_w("matmul", w), need("matmul", x), need("matmul", y), need("matmul", scratch);
    ops_cpu.matmul(w, x, y, T, scratch);
}

static void dev_matmul_n(const model_tensor *const *w, const float *x, float *const *y, int n, int T, void *scratch) {
    for (int i = 0; i < n; i++) need_w("matmul_n", w[i]), need("matmul_n", y[i]);
    need("matmul_n", x), need("matmul_n", scratch);
    ops_cpu.matmul_n(w, x, y, n, T, scratch);
}

static void dev_rmsnorm(float *out, const float *x, const float *w, int T, int C, float eps) {
    need("rmsnorm", out), need("rmsnorm", x), need("rmsnorm", w);
    ops_cpu.rmsnorm(out, x, w, T, C, eps);
}

static void dev_rope(float *q, float *k, const int32_t *pos, int T, int NH, int NKV, int HS, float theta,
                     rope_style style, const float *table) {
    need("rope", q), need("rope", k), need("rope", pos), need("rope", table);
    ops_cpu.rope(q, k, pos, T, NH, NKV, HS, theta, style, table);
}

static void dev_swiglu(float *out, const float *gate, const float *up, int64_t n) {
    need("swiglu", out), need("swiglu", gate), need("swiglu", up);
    ops_cpu.swiglu(out, gate, up, n);
}

static void dev_add(float *x, const float *y, int64_t n) {
    need("add", x), need("add", y);
    ops_cpu.add(x, y, n);
}

static void dev_attention(float *out, const float *q, const kv_cache *kv, int layer, const int32_t *seq,
                          const int32_t *pos, int T, int NH, int NKV, int HS) {
    need("attention", out), need("attention", q), need("attention", kv->k), need("attention", kv->v);
    need("attention", seq), need("attention", pos);
    ops_cpu.attention(out, q, kv, layer, seq, pos, T, NH, NKV, HS);
}

static void dev_embed(float *out, const model_tensor *table, const int32_t *ids, int T) {
    need("embed", out), need_w("embed", table), need("embed", ids);
    ops_cpu.embed(out, table, ids, T);
}

static void dev_kv_store(const kv_cache *kv, int layer, const float *k, const float *v, const int32_t *seq,
                         const int32_t *pos, int T) {
    need("kv_store", kv->k), need("kv_store", kv->v), need("kv_store", k), need("kv_store", v);
    need("kv_store", seq), need("kv_store", pos);
    ops_cpu.kv_store(kv, layer, k, v, seq, pos, T);
}

static void dev_kv_copy(const kv_cache *kv, int dst, int src, int n) {
    need("kv_copy", kv->k), need("kv_copy", kv->v);
    ops_cpu.kv_copy(kv, dst, src, n);
}

static void dev_gather(float *out, const float *x, const int32_t *idx, int n, int C) {
    need("gather", out), need("gather", x), need("gather", idx);
    ops_cpu.gather(out, x, idx, n, C);
}

static void dev_add_bias(float *x, const float *b, int T, int N) {
    need("add_bias", x), need("add_bias", b);
    ops_cpu.add_bias(x, b, T, N);
}

static const ops ops_devsim = {
    .name = "devsim",
    .host = 0,
    .alloc = dev_alloc,
    .release = dev_release,
    .upload = dev_upload,
    .download = dev_download,
    .weights_prepare = dev_weights_prepare,
    .weights_release = dev_weights_release,
    .matmul_scratch = ops_matmul_scratch,
    .kv_store = dev_kv_store,
    .kv_copy = dev_kv_copy,
    .gather = dev_gather,
    .add_bias = dev_add_bias,
    .matmul = dev_matmul,
    .matmul_n = dev_matmul_n,
    .rmsnorm = dev_rmsnorm,
    .rope = dev_rope,
    .swiglu = dev_swiglu,
    .add = dev_add,
    .attention = dev_attention,
    .embed = dev_embed,
};

static const int32_t PROMPT[] = {5, 77, 3, 120, 250, 9, 64, 33, 200, 1, 17, 90};
#define NP ((int)(sizeof(PROMPT) / sizeof(PROMPT[0])))

// One script through an engine on backend be; the logits of every step, concatenated.
static float *run_script(const model *m, const ops *be, size_t *n_out) {
    int V = m->cfg.n_vocab;
    engine en;
    trl_err e = {{0}};
    if (engine_init(&en, m, be, 3, 64, 8, &e)) fail_msg("engine_init: %s", e.msg);
    float *out = calloc((size_t)V * 64, sizeof(float));
    size_t k = 0;
    // A prefill longer than max_batch (two chunks) and a shorter one.
    if (engine_feed(&en, 0, PROMPT, NP, out + k, &e)) fail_msg("%s", e.msg);
    k += (size_t)V;
    if (engine_feed(&en, 1, PROMPT + 2, 5, out + k, &e)) fail_msg("%s", e.msg);
    k += (size_t)V;
    // Sequence 2 gets a copy of sequence 0's first 6 positions.
    if (engine_seq_copy(&en, 2, 0, 6, &e)) fail_msg("%s", e.msg);
    // Three sequences decode together; logits of rows 0 and 2 only, then of all three.
    for (int step = 0; step < 3; step++) {
        int32_t tok[3] = {PROMPT[step], PROMPT[(step + 4) % NP], PROMPT[(step + 9) % NP]}, seq[3] = {0, 1, 2};
        int32_t pos[3] = {en.seq_len[0], en.seq_len[1], en.seq_len[2]};
        int8_t want[3] = {1, (int8_t)(step == 2), 1};
        engine_batch b = {3, tok, seq, pos, want};
        if (engine_forward(&en, &b, out + k, &e)) fail_msg("%s", e.msg);
        k += (size_t)V * (step == 2 ? 3 : 2);
    }
    engine_free(&en);
    *n_out = k;
    return out;
}

static void check_arch(int arch, uint32_t wtype) {
    tiny_model_spec s = tiny_model_default(arch);
    char dir[256], path[300];
    trl_err e = {{0}};
    assert_int_equal(tiny_model_tempdir(dir, sizeof(dir)), TRL_OK);
    snprintf(path, sizeof(path), "%s/tiny.gguf", dir);
    if (tiny_model_write_gguf(&s, wtype, path, &e)) fail_msg("%s", e.msg);
    model m;
    if (model_load(&m, path, &e)) fail_msg("%s", e.msg);
    size_t n_cpu, n_dev;
    float *want = run_script(&m, &ops_cpu, &n_cpu);
    g_ndev = g_uploads = g_downloads = 0, g_bad[0] = 0;
    float *got = run_script(&m, &ops_devsim, &n_dev);
    if (g_bad[0]) fail_msg("%s", g_bad);
    assert_int_equal(n_cpu, n_dev);
    assert_memory_equal(want, got, sizeof(float) * n_cpu);
    assert_true(g_uploads > 0);
    assert_int_equal(g_downloads, 5);  // one per call that asked for logits
    assert_int_equal(g_ndev, 0);       // engine_free released everything it allocated
    free(want), free(got);
    model_free(&m);
    tiny_model_rmdir(dir);
}

static void test_llama_through_the_seam(void **state) {
    (void)state;
    check_arch(MODEL_ARCH_LLAMA, QTYPE_Q4_1);
}

static void test_qwen2_bias_through_the_seam(void **state) {
    (void)state;
    check_arch(MODEL_ARCH_QWEN2, QTYPE_Q8_0);
}

// The check itself catches a host pointer: an engine batch array handed over as is.
static void test_host_pointer_is_caught(void **state) {
    (void)state;
    g_ndev = 0, g_bad[0] = 0;
    float *dev = dev_alloc(64 * sizeof(float)), host[64] = {0};
    dev_add(dev, host, 64);
    assert_non_null(strstr(g_bad, "add"));
    dev_release(dev);
    assert_int_equal(g_ndev, 0);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_llama_through_the_seam),
        cmocka_unit_test(test_qwen2_bias_through_the_seam),
        cmocka_unit_test(test_host_pointer_is_caught),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
