// devsim.c: the simulated device of devsim.h: a tracked, protectable heap, and the CPU kernels
// behind pointer checks.
#include "tests/support/devsim.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "model/matmul.h"

// ---------------------------------------------------------------------------- the heap

#define DEV_MAX 4096
static struct {
    char *p;
    size_t n;  // mapped bytes (whole pages)
} g_dev[DEV_MAX];
static int g_ndev, g_strict, g_open, g_uploads, g_downloads;
static char g_bad[256];

static void bad(const char *fmt, const char *what) {
    if (!g_bad[0]) snprintf(g_bad, sizeof(g_bad), fmt, what);
}

int devsim_owns(const void *q) {
    const char *c = q;
    for (int i = 0; i < g_ndev; i++)
        if (c >= g_dev[i].p && c < g_dev[i].p + g_dev[i].n) return 1;
    return 0;
}

static void protect_all(int prot) {
    for (int i = 0; i < g_ndev; i++) mprotect(g_dev[i].p, g_dev[i].n, prot);
}

// Device code runs between enter and leave: the heap is readable then (nesting counted).
static void enter(void) {
    if (g_open++ == 0 && g_strict) protect_all(PROT_READ | PROT_WRITE);
}

static void leave(void) {
    if (--g_open == 0 && g_strict) protect_all(PROT_NONE);
}

void devsim_reset(int strict) {
    if (g_open == 0 && g_strict && !strict) protect_all(PROT_READ | PROT_WRITE);
    g_strict = strict, g_bad[0] = 0, g_uploads = g_downloads = 0;
    if (strict) protect_all(PROT_NONE);
}

const char *devsim_violation(void) { return g_bad; }
int devsim_live(void) { return g_ndev; }
int devsim_uploads(void) { return g_uploads; }
int devsim_downloads(void) { return g_downloads; }

static void need(const char *op, const void *q) {
    if (!devsim_owns(q)) bad("%s: a pointer outside the device heap", op);
}

static void *dev_alloc(size_t n) {
    if (g_ndev == DEV_MAX) return NULL;
    size_t pg = (size_t)sysconf(_SC_PAGESIZE), m = (n + pg - 1) / pg * pg;
    void *p = mmap(NULL, m ? m : pg, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED) return NULL;
    g_dev[g_ndev].p = p, g_dev[g_ndev++].n = m ? m : pg;
    if (g_strict && g_open == 0) mprotect(p, m ? m : pg, PROT_NONE);
    return p;
}

static void dev_release(void *p) {
    if (!p) return;
    for (int i = 0; i < g_ndev; i++)
        if (g_dev[i].p == p) {
            munmap(p, g_dev[i].n);
            g_dev[i] = g_dev[--g_ndev];
            return;
        }
    bad("%s: not a device allocation", "release");
}

static void dev_upload(void *dst, const void *src, size_t n) {
    need("upload (destination)", dst);
    if (devsim_owns(src)) bad("%s: the source is device memory", "upload");
    enter();
    memcpy(dst, src, n);
    leave();
    g_uploads++;
}

static void dev_download(void *dst, const void *src, size_t n) {
    need("download (source)", src);
    if (devsim_owns(dst)) bad("%s: the destination is device memory", "download");
    enter();
    memcpy(dst, src, n);
    leave();
    g_downloads++;
}

// ---------------------------------------------------------------------------- weights

// The device copy of n bytes at src, recorded in w->owned; src itself when already on the device.
static const void *weight_to_dev(model *w, const void *src, size_t n) {
    if (!src || devsim_owns(src)) return src;
    void *p = dev_alloc(n);
    if (!p) return NULL;
    dev_upload(p, src, n);
    w->owned[w->n_owned++] = p;
    return p;
}

static void tensor_to_dev(model *w, model_tensor *t) {
    t->data = weight_to_dev(w, t->data, (size_t)t->n_rows * t->row_bytes);
    if (t->packed) t->packed = weight_to_dev(w, t->packed, matmul_packed_bytes(t->packed_type, t->n_rows, t->n_cols));
}

static int dev_weights_prepare(const model *m, model *w, trl_err *e) {
    const model_config *c = &m->cfg;
    *w = *m;
    w->layers = calloc((size_t)c->n_layer, sizeof(model_layer));  // host bookkeeping, device pointers
    w->owned = calloc((size_t)c->n_layer * 16 + 8, sizeof(void *));
    w->n_owned = 0, w->cap_owned = c->n_layer * 16 + 8;
    if (!w->layers || !w->owned) return free(w->layers), free(w->owned), trl_errf(e, "devsim: out of memory");
    size_t C = (size_t)c->n_embd, qd = (size_t)c->n_head * c->head_dim, kvd = (size_t)c->n_head_kv * c->head_dim;
    int tied = m->output.data == m->tok_embd.data;
    tensor_to_dev(w, &w->tok_embd);
    if (tied) w->output = w->tok_embd;
    else tensor_to_dev(w, &w->output);
    w->out_norm = weight_to_dev(w, m->out_norm, C * sizeof(float));
    for (int l = 0; l < c->n_layer; l++) {
        model_layer *L = &w->layers[l];
        *L = m->layers[l];
        model_tensor *ts[] = {&L->wq, &L->wk, &L->wv, &L->wo, &L->w_gate, &L->w_up, &L->w_down};
        for (size_t i = 0; i < sizeof(ts) / sizeof(ts[0]); i++) tensor_to_dev(w, ts[i]);
        L->attn_norm = weight_to_dev(w, L->attn_norm, C * sizeof(float));
        L->ffn_norm = weight_to_dev(w, L->ffn_norm, C * sizeof(float));
        L->bq = weight_to_dev(w, L->bq, qd * sizeof(float));
        L->bk = weight_to_dev(w, L->bk, kvd * sizeof(float));
        L->bv = weight_to_dev(w, L->bv, kvd * sizeof(float));
    }
    return TRL_OK;
}

static void dev_weights_release(model *w) {
    for (int i = 0; i < w->n_owned; i++) dev_release(w->owned[i]);
    free(w->owned);
    free(w->layers);
    memset(w, 0, sizeof(*w));
}

// ---------------------------------------------------------------------------- inference ops

static void need_w(const char *op, const model_tensor *w) {
    need(op, w->data);
    if (w->packed) need(op, w->packed);
}

#define DEV_RUN(call) \
    do {              \
        enter();      \
        call;         \
        leave();      \
    } while (0)

static void dev_matmul(const model_tensor *w, const float *x, float *y, int T, void *scratch) {
    need_w("matmul", w), need("matmul", x), need("matmul", y), need("matmul", scratch);
    DEV_RUN(ops_cpu.matmul(w, x, y, T, scratch));
}

static void dev_matmul_n(const model_tensor *const *w, const float *x, float *const *y, int n, int T, void *scratch) {
    for (int i = 0; i < n; i++) need_w("matmul_n", w[i]), need("matmul_n", y[i]);
    need("matmul_n", x), need("matmul_n", scratch);
    DEV_RUN(ops_cpu.matmul_n(w, x, y, n, T, scratch));
}

static void dev_rmsnorm(float *out, const float *x, const float *w, int T, int C, float eps) {
    need("rmsnorm", out), need("rmsnorm", x), need("rmsnorm", w);
    DEV_RUN(ops_cpu.rmsnorm(out, x, w, T, C, eps));
}

static void dev_rope(float *q, float *k, const int32_t *pos, int T, int NH, int NKV, int HS, float theta,
                     rope_style style, const float *table) {
    need("rope", q), need("rope", k), need("rope", pos), need("rope", table);
    DEV_RUN(ops_cpu.rope(q, k, pos, T, NH, NKV, HS, theta, style, table));
}

static void dev_swiglu(float *out, const float *gate, const float *up, int64_t n) {
    need("swiglu", out), need("swiglu", gate), need("swiglu", up);
    DEV_RUN(ops_cpu.swiglu(out, gate, up, n));
}

static void dev_add(float *x, const float *y, int64_t n) {
    need("add", x), need("add", y);
    DEV_RUN(ops_cpu.add(x, y, n));
}

static void dev_attention(float *out, const float *q, const kv_cache *kv, int layer, const int32_t *seq,
                          const int32_t *pos, int T, int NH, int NKV, int HS) {
    need("attention", out), need("attention", q), need("attention", kv->k), need("attention", kv->v);
    need("attention", seq), need("attention", pos);
    DEV_RUN(ops_cpu.attention(out, q, kv, layer, seq, pos, T, NH, NKV, HS));
}

static void dev_embed(float *out, const model_tensor *table, const int32_t *ids, int T) {
    need("embed", out), need_w("embed", table), need("embed", ids);
    DEV_RUN(ops_cpu.embed(out, table, ids, T));
}

static void dev_kv_store(const kv_cache *kv, int layer, const float *k, const float *v, const int32_t *seq,
                         const int32_t *pos, int T) {
    need("kv_store", kv->k), need("kv_store", kv->v), need("kv_store", k), need("kv_store", v);
    need("kv_store", seq), need("kv_store", pos);
    DEV_RUN(ops_cpu.kv_store(kv, layer, k, v, seq, pos, T));
}

static void dev_kv_copy(const kv_cache *kv, int dst, int src, int n) {
    need("kv_copy", kv->k), need("kv_copy", kv->v);
    DEV_RUN(ops_cpu.kv_copy(kv, dst, src, n));
}

static void dev_gather(float *out, const float *x, const int32_t *idx, int n, int C) {
    need("gather", out), need("gather", x), need("gather", idx);
    DEV_RUN(ops_cpu.gather(out, x, idx, n, C));
}

static void dev_add_bias(float *x, const float *b, int T, int N) {
    need("add_bias", x), need("add_bias", b);
    DEV_RUN(ops_cpu.add_bias(x, b, T, N));
}

const ops ops_devsim = {
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

// ---------------------------------------------------------------------------- training ops

static const train_ops *const C = &train_ops_cpu;

// A NULL gradient or bias means "not wanted" in the training ops.
static void need_opt(const char *op, const void *q) {
    if (q) need(op, q);
}

static void need_mask(const char *op, const att_mask *m) {
    if (m) need(op, m->seg);
}

static void t_zero(float *x, int64_t n) {
    need("zero", x);
    DEV_RUN(C->zero(x, n));
}

static void t_copy(float *dst, const float *src, int64_t n) {
    need("copy", dst), need("copy", src);
    DEV_RUN(C->copy(dst, src, n));
}

static void t_embedding_forward(float *out, const float *wte, const int32_t *ids, int T, int Cc) {
    need("embedding_forward", out), need("embedding_forward", wte), need("embedding_forward", ids);
    DEV_RUN(C->embedding_forward(out, wte, ids, T, Cc));
}

static void t_embedding_backward(float *dwte, const float *dout, const int32_t *ids, int T, int Cc) {
    need("embedding_backward", dwte), need("embedding_backward", dout), need("embedding_backward", ids);
    DEV_RUN(C->embedding_backward(dwte, dout, ids, T, Cc));
}

static void t_rmsnorm_forward(float *out, float *rstd, const float *x, const float *w, int T, int Cc, float eps) {
    need("rmsnorm_forward", out), need("rmsnorm_forward", rstd), need("rmsnorm_forward", x), need("rmsnorm_forward", w);
    DEV_RUN(C->rmsnorm_forward(out, rstd, x, w, T, Cc, eps));
}

static void t_rmsnorm_backward(float *dx, float *dw, const float *dout, const float *x, const float *w,
                               const float *rstd, int T, int Cc) {
    need("rmsnorm_backward", dx), need("rmsnorm_backward", dw), need("rmsnorm_backward", dout);
    need("rmsnorm_backward", x), need("rmsnorm_backward", w), need("rmsnorm_backward", rstd);
    DEV_RUN(C->rmsnorm_backward(dx, dw, dout, x, w, rstd, T, Cc));
}

static void t_rope_forward(float *q, float *k, const int32_t *pos, int T, int NH, int NKV, int HS, float theta,
                           rope_style style) {
    need("rope_forward", q), need("rope_forward", k), need("rope_forward", pos);
    DEV_RUN(C->rope_forward(q, k, pos, T, NH, NKV, HS, theta, style));
}

static void t_rope_backward(float *dq, float *dk, const int32_t *pos, int T, int NH, int NKV, int HS, float theta,
                            rope_style style) {
    need("rope_backward", dq), need("rope_backward", dk), need("rope_backward", pos);
    DEV_RUN(C->rope_backward(dq, dk, pos, T, NH, NKV, HS, theta, style));
}

static void t_linear_forward(float *y, const float *x, const float *w, const float *b, int T, int K, int N) {
    need("linear_forward", y), need("linear_forward", x), need("linear_forward", w), need_opt("linear_forward", b);
    DEV_RUN(C->linear_forward(y, x, w, b, T, K, N));
}

static void t_linear_backward(float *dx, float *dw, float *db, const float *dy, const float *x, const float *w, int T,
                              int K, int N) {
    need_opt("linear_backward", dx), need_opt("linear_backward", dw), need_opt("linear_backward", db);
    need("linear_backward", dy), need("linear_backward", x), need("linear_backward", w);
    DEV_RUN(C->linear_backward(dx, dw, db, dy, x, w, T, K, N));
}

static void t_attention_forward(float *out, float *lse, const float *q, const float *k, const float *v, int T, int NH,
                                int NKV, int HS, const att_mask *mask, float *work) {
    need("attention_forward", out), need("attention_forward", lse), need("attention_forward", q);
    need("attention_forward", k), need("attention_forward", v), need("attention_forward", work);
    need_mask("attention_forward", mask);
    DEV_RUN(C->attention_forward(out, lse, q, k, v, T, NH, NKV, HS, mask, work));
}

static void t_attention_backward(float *dq, float *dk, float *dv, const float *dout, const float *q, const float *k,
                                 const float *v, const float *out, const float *lse, int T, int NH, int NKV, int HS,
                                 const att_mask *mask, float *work) {
    const void *ps[] = {dq, dk, dv, dout, q, k, v, out, lse, work};
    for (size_t i = 0; i < sizeof(ps) / sizeof(ps[0]); i++) need("attention_backward", ps[i]);
    need_mask("attention_backward", mask);
    DEV_RUN(C->attention_backward(dq, dk, dv, dout, q, k, v, out, lse, T, NH, NKV, HS, mask, work));
}

static void t_swiglu_forward(float *out, const float *g, const float *u, int64_t n) {
    need("swiglu_forward", out), need("swiglu_forward", g), need("swiglu_forward", u);
    DEV_RUN(C->swiglu_forward(out, g, u, n));
}

static void t_swiglu_backward(float *dg, float *du, const float *dout, const float *g, const float *u, int64_t n) {
    need("swiglu_backward", dg), need("swiglu_backward", du), need("swiglu_backward", dout);
    need("swiglu_backward", g), need("swiglu_backward", u);
    DEV_RUN(C->swiglu_backward(dg, du, dout, g, u, n));
}

static void t_residual_forward(float *out, const float *a, const float *b, int64_t n) {
    need("residual_forward", out), need("residual_forward", a), need("residual_forward", b);
    DEV_RUN(C->residual_forward(out, a, b, n));
}

static void t_logprob_forward(float *logits, float *lse, float *logp, const float *x, const float *w,
                              const int32_t *targets, int T, int Cc, int V) {
    need("logprob_forward", logits), need("logprob_forward", lse), need("logprob_forward", logp);
    need("logprob_forward", x), need("logprob_forward", w), need("logprob_forward", targets);
    DEV_RUN(C->logprob_forward(logits, lse, logp, x, w, targets, T, Cc, V));
}

static void t_logprob_backward(float *dx, float *dw, float *logits, const float *lse, const float *x, const float *w,
                               const int32_t *targets, const float *dlogp, int T, int Cc, int V) {
    need_opt("logprob_backward", dx), need_opt("logprob_backward", dw), need("logprob_backward", logits);
    need("logprob_backward", lse), need("logprob_backward", x), need("logprob_backward", w);
    need("logprob_backward", targets), need("logprob_backward", dlogp);
    DEV_RUN(C->logprob_backward(dx, dw, logits, lse, x, w, targets, dlogp, T, Cc, V));
}

static void t_logprob_temperature(float *logits, float *lse, float *logp, const int32_t *targets, int r0, int n, int V,
                                  float tau) {
    need("logprob_temperature", logits), need("logprob_temperature", lse), need("logprob_temperature", logp);
    need("logprob_temperature", targets);
    DEV_RUN(C->logprob_temperature(logits, lse, logp, targets, r0, n, V, tau));
}

static void t_head_stats(const float *logits, const float *lse, const int32_t *targets, int r0, int n, int V,
                         float *entropy, float *hit) {
    need("head_stats", logits), need("head_stats", lse), need("head_stats", targets);
    need("head_stats", entropy), need("head_stats", hit);
    DEV_RUN(C->head_stats(logits, lse, targets, r0, n, V, entropy, hit));
}

static int t_adamw_update(float *param, const float *grad, float *m, float *v, int64_t n, float lr,
                          const adamw_params *p, int step) {
    need("adamw_update", param), need("adamw_update", grad), need("adamw_update", m), need("adamw_update", v);
    int rc;
    DEV_RUN(rc = C->adamw_update(param, grad, m, v, n, lr, p, step));
    return rc;
}

static double t_grad_norm(const float *g, int64_t n) {
    need("grad_norm", g);
    double r;
    DEV_RUN(r = C->grad_norm(g, n));
    return r;
}

static void t_scale(float *x, float s, int64_t n) {
    need("scale", x);
    DEV_RUN(C->scale(x, s, n));
}

const train_ops train_ops_devsim = {
    .name = "devsim",
    .mem = &ops_devsim,
    .zero = t_zero,
    .copy = t_copy,
    .embedding_forward = t_embedding_forward,
    .embedding_backward = t_embedding_backward,
    .rmsnorm_forward = t_rmsnorm_forward,
    .rmsnorm_backward = t_rmsnorm_backward,
    .rope_forward = t_rope_forward,
    .rope_backward = t_rope_backward,
    .linear_forward = t_linear_forward,
    .linear_backward = t_linear_backward,
    .attention_work_floats = attention_work_floats,
    .attention_forward = t_attention_forward,
    .attention_backward = t_attention_backward,
    .swiglu_forward = t_swiglu_forward,
    .swiglu_backward = t_swiglu_backward,
    .residual_forward = t_residual_forward,
    .logprob_forward = t_logprob_forward,
    .logprob_backward = t_logprob_backward,
    .logprob_temperature = t_logprob_temperature,
    .head_stats = t_head_stats,
    .adamw_update = t_adamw_update,
    .grad_norm = t_grad_norm,
    .scale = t_scale,
};
