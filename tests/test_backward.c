// test_backward.c: every training op's backward (trainer/ops_train.c) against central finite
// differences, and every training forward against model/ops_ref.c.
//
// Method: each op's forward is re-implemented here in double precision. A scalar loss
// L = Σ R ⊙ op(inputs) (R random, also used as dout for the analytic backward) is
// differentiated by central differences in double with h = 1e-5: truncation error
// O(h²·L''') ≈ 1e-10 and rounding ≈ 1e-16/h ≈ 1e-11, so the reference gradient is good to
// ~1e-9 relative. The analytic fp32 gradient carries fp32 rounding (~1e-7 per op, a few
// e-6 after sums of tens of terms), hence the tolerance: max |analytic - fd| over the tensor
// divided by max |fd| must be < 1e-5 — observed errors are 1e-7 to 4e-7, so this is ~30x
// above fp32 noise and far below any real error (a wrong sign or a missing term gives
// O(1e-2) or more). Shapes are small (T=5, C=16, NH=4,
// NKV=2, HS=8, F=24, V=37) so every element of every input is perturbed.
//
// Whole model (trainer/lm.c): a random 2-layer transformer, once as Llama (tied head,
// ROPE_NORM, no biases) and once as Qwen2 (own head, ROPE_NEOX, q/k/v biases), with loss
// Σ_t coef[t]·logp[t]; 12 random elements of every parameter tensor are checked against
// central differences of a double re-implementation composed from the references below
// (error normalised by the tensor's largest gradient, tolerance 1e-4: a deeper fp32 chain).
// The same weights through the inference engine (model/forward.c with ops_ref) must give
// the same logits, and lm_params_from_model must read them back bit-exactly.
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "model/forward.h"
#include "model/ops.h"
#include "model/quant.h"
#include "trainer/lm.h"
#include "trainer/ops_train.h"

enum { T = 5, C = 16, NH = 4, NKV = 2, HS = 8, F = 24, V = 37 };
#define QD (NH * HS)
#define KVD (NKV * HS)
#define FD_H 1e-5
#define FD_TOL 1e-5
#define EPS 1e-5f

static uint64_t rng = 0x9E3779B97F4A7C15ull;
static double drand(void) {  // uniform in [-1, 1)
    rng ^= rng << 13, rng ^= rng >> 7, rng ^= rng << 17;
    return (double)(rng >> 11) * (1.0 / 9007199254740992.0) * 2.0 - 1.0;
}
// n random values, scale·U[-1,1), rounded to float so the float and double copies agree.
static void rand_fill(float *f, double *d, size_t n, double scale) {
    for (size_t i = 0; i < n; i++) {
        f[i] = (float)(drand() * scale);
        if (d) d[i] = f[i];
    }
}

static double worst[16];  // worst relative error seen per op, printed at the end
enum { OP_EMB, OP_RMS, OP_ROPE_NORM, OP_ROPE_NEOX, OP_LIN, OP_ATT, OP_SWIGLU, OP_RES, OP_LOGP, OP_CE, OP_MODEL, OP_N };
static const char *op_name[OP_N] = {"embedding", "rmsnorm", "rope(norm)", "rope(neox)", "linear", "attention",
                                    "swiglu", "residual", "logprob", "crossentropy", "model"};

typedef double (*loss_fn)(void *ctx);

// Central differences of f over each element of x (n), compared with the analytic grad.
static double fd_check(loss_fn f, void *ctx, double *x, size_t n, const float *grad) {
    double md = 0, mg = 1e-12;
    for (size_t i = 0; i < n; i++) {
        double save = x[i];
        x[i] = save + FD_H;
        double lp = f(ctx);
        x[i] = save - FD_H;
        double lm = f(ctx);
        x[i] = save;
        double fd = (lp - lm) / (2 * FD_H);
        md = fmax(md, fabs(fd - grad[i]));
        mg = fmax(mg, fabs(fd));
    }
    return md / mg;
}
static void expect_grad(int op, loss_fn f, void *ctx, double *x, size_t n, const float *grad) {
    double e = fd_check(f, ctx, x, n, grad);
    if (e > worst[op]) worst[op] = e;
    if (!(e < FD_TOL)) fprintf(stderr, "%s: relative gradient error %.3g\n", op_name[op], e);
    assert_true(e < FD_TOL);
}
// max |a - b| / max |b|
static double rel_err_fd(const float *a, const double *b, size_t n) {
    double md = 0, mb = 1e-12;
    for (size_t i = 0; i < n; i++) md = fmax(md, fabs(a[i] - b[i])), mb = fmax(mb, fabs(b[i]));
    return md / mb;
}
static double rel_err_ff(const float *a, const float *b, size_t n) {
    double md = 0, mb = 1e-12;
    for (size_t i = 0; i < n; i++) md = fmax(md, fabs((double)a[i] - b[i])), mb = fmax(mb, fabs((double)b[i]));
    return md / mb;
}
static double dsum_prod(const double *a, const double *r, size_t n) {
    double s = 0;
    for (size_t i = 0; i < n; i++) s += a[i] * r[i];
    return s;
}

// ---------------------------------------------------------------------------- double references

static void d_rmsnorm(double *out, const double *x, const double *w, int nT, int nC, double eps) {
    for (int t = 0; t < nT; t++) {
        double ss = 0;
        for (int c = 0; c < nC; c++) ss += x[t * nC + c] * x[t * nC + c];
        double r = 1.0 / sqrt(ss / nC + eps);
        for (int c = 0; c < nC; c++) out[t * nC + c] = x[t * nC + c] * r * w[c];
    }
}
static void d_rope(double *q, double *k, const int32_t *pos, int nT, int nh, int nkv, int hs, double theta,
                   rope_style style) {
    for (int t = 0; t < nT; t++)
        for (int h = 0; h < nh + nkv; h++) {
            double *v = h < nh ? q + (t * nh + h) * hs : k + (t * nkv + h - nh) * hs;
            for (int i = 0; i < hs / 2; i++) {
                double ang = pos[t] * pow(theta, -2.0 * i / hs), c = cos(ang), s = sin(ang);
                int a = style == ROPE_NORM ? 2 * i : i, b = style == ROPE_NORM ? 2 * i + 1 : i + hs / 2;
                double x0 = v[a], x1 = v[b];
                v[a] = x0 * c - x1 * s;
                v[b] = x0 * s + x1 * c;
            }
        }
}
static void d_linear(double *y, const double *x, const double *w, const double *b, int nT, int K, int N) {
    for (int t = 0; t < nT; t++)
        for (int n = 0; n < N; n++) {
            double acc = b ? b[n] : 0;
            for (int kk = 0; kk < K; kk++) acc += x[t * K + kk] * w[n * K + kk];
            y[t * N + n] = acc;
        }
}
static void d_attention(double *out, const double *q, const double *k, const double *v, int nT, int nh, int nkv,
                        int hs) {
    int group = nh / nkv;
    double scale = 1.0 / sqrt((double)hs), sc[64];
    for (int t = 0; t < nT; t++)
        for (int h = 0; h < nh; h++) {
            int kh = h / group;
            double mx = -INFINITY, sum = 0;
            for (int s = 0; s <= t; s++) {
                double d = 0;
                for (int i = 0; i < hs; i++) d += q[(t * nh + h) * hs + i] * k[(s * nkv + kh) * hs + i];
                sc[s] = d * scale;
                mx = fmax(mx, sc[s]);
            }
            for (int s = 0; s <= t; s++) sum += (sc[s] = exp(sc[s] - mx));
            for (int i = 0; i < hs; i++) {
                double acc = 0;
                for (int s = 0; s <= t; s++) acc += sc[s] * v[(s * nkv + kh) * hs + i];
                out[(t * nh + h) * hs + i] = acc / sum;
            }
        }
}
static void d_swiglu(double *out, const double *g, const double *u, int n) {
    for (int i = 0; i < n; i++) out[i] = g[i] / (1 + exp(-g[i])) * u[i];
}
static void d_logprob(double *logp, const double *x, const double *w, const int32_t *tg, int nT, int nC, int nV) {
    double lg[64];
    for (int t = 0; t < nT; t++) {
        d_linear(lg, x + t * nC, w, NULL, 1, nC, nV);
        double mx = -INFINITY, s = 0;
        for (int i = 0; i < nV; i++) mx = fmax(mx, lg[i]);
        for (int i = 0; i < nV; i++) s += exp(lg[i] - mx);
        logp[t] = lg[tg[t]] - mx - log(s);
    }
}

// ---------------------------------------------------------------------------- embedding

typedef struct {
    double *wte, *r;
    const int32_t *ids;
} emb_ctx;
static double emb_loss(void *p) {
    emb_ctx *c = p;
    double s = 0;
    for (int t = 0; t < T; t++)
        for (int i = 0; i < C; i++) s += c->wte[c->ids[t] * C + i] * c->r[t * C + i];
    return s;
}
static void test_embedding(void **state) {
    (void)state;
    static float wte[V * C], r[T * C], out[T * C], dwte[V * C], ref[T * C];
    static double dw[V * C], dr[T * C];
    int32_t ids[T] = {3, 36, 3, 0, 17};  // a repeated id accumulates
    rand_fill(wte, dw, V * C, 1);
    rand_fill(r, dr, T * C, 1);
    embedding_forward(out, wte, ids, T, C);
    model_tensor tab = {QTYPE_F32, V, C, qtype_row_bytes(QTYPE_F32, C), wte, NULL, QTYPE_F32};
    ops_ref.embed(ref, &tab, ids, T);
    assert_memory_equal(out, ref, sizeof(out));
    memset(dwte, 0, sizeof(dwte));
    embedding_backward(dwte, r, ids, T, C);
    emb_ctx c = {dw, dr, ids};
    expect_grad(OP_EMB, emb_loss, &c, dw, V * C, dwte);
}

// ---------------------------------------------------------------------------- rmsnorm

typedef struct {
    double *x, *w, *r, *out;
} rms_ctx;
static double rms_loss(void *p) {
    rms_ctx *c = p;
    d_rmsnorm(c->out, c->x, c->w, T, C, EPS);
    return dsum_prod(c->out, c->r, T * C);
}
static void test_rmsnorm(void **state) {
    (void)state;
    static float x[T * C], w[C], r[T * C], out[T * C], ref[T * C], rstd[T], dx[T * C], dw[C];
    static double xd[T * C], wd[C], rd[T * C], od[T * C];
    rand_fill(x, xd, T * C, 2);
    rand_fill(w, wd, C, 1);
    rand_fill(r, rd, T * C, 1);
    rmsnorm_forward(out, rstd, x, w, T, C, EPS);
    ops_ref.rmsnorm(ref, x, w, T, C, EPS);
    assert_memory_equal(out, ref, sizeof(out));  // same arithmetic as the reference: bit-equal
    rms_ctx c = {xd, wd, rd, od};
    rms_loss(&c);
    assert_true(rel_err_fd(out, od, T * C) < 1e-6);
    memset(dx, 0, sizeof(dx)), memset(dw, 0, sizeof(dw));
    rmsnorm_backward(dx, dw, r, x, w, rstd, T, C);
    expect_grad(OP_RMS, rms_loss, &c, xd, T * C, dx);
    expect_grad(OP_RMS, rms_loss, &c, wd, C, dw);
}

// ---------------------------------------------------------------------------- rope

typedef struct {
    double *q, *k, *rq, *rk, *tq, *tk;
    const int32_t *pos;
    rope_style style;
} rope_ctx;
static double rope_loss(void *p) {
    rope_ctx *c = p;
    memcpy(c->tq, c->q, sizeof(double) * T * QD);
    memcpy(c->tk, c->k, sizeof(double) * T * KVD);
    d_rope(c->tq, c->tk, c->pos, T, NH, NKV, HS, 10000.0, c->style);
    return dsum_prod(c->tq, c->rq, T * QD) + dsum_prod(c->tk, c->rk, T * KVD);
}
static void test_rope(void **state) {
    (void)state;
    int32_t pos[T] = {0, 1, 2, 7, 300};
    for (int st = 0; st < 2; st++) {
        rope_style style = st ? ROPE_NEOX : ROPE_NORM;
        static float q[T * QD], k[T * KVD], q2[T * QD], k2[T * KVD], rq[T * QD], rk[T * KVD];
        static double qd[T * QD], kd[T * KVD], rqd[T * QD], rkd[T * KVD], tq[T * QD], tk[T * KVD];
        rand_fill(q, qd, T * QD, 1), rand_fill(k, kd, T * KVD, 1);
        rand_fill(rq, rqd, T * QD, 1), rand_fill(rk, rkd, T * KVD, 1);
        memcpy(q2, q, sizeof(q)), memcpy(k2, k, sizeof(k));
        rope_forward(q, k, pos, T, NH, NKV, HS, 10000.0f, style);
        ops_ref.rope(q2, k2, pos, T, NH, NKV, HS, 10000.0f, style, NULL);
        assert_memory_equal(q, q2, sizeof(q));
        assert_memory_equal(k, k2, sizeof(k));
        rope_ctx c = {qd, kd, rqd, rkd, tq, tk, pos, style};
        rope_loss(&c);
        assert_true(rel_err_fd(q, tq, T * QD) < 1e-6);
        // backward in place: the gradient of the rotated tensors is R
        rope_backward(rq, rk, pos, T, NH, NKV, HS, 10000.0f, style);
        expect_grad(st ? OP_ROPE_NEOX : OP_ROPE_NORM, rope_loss, &c, qd, T * QD, rq);
        expect_grad(st ? OP_ROPE_NEOX : OP_ROPE_NORM, rope_loss, &c, kd, T * KVD, rk);
    }
}

// ---------------------------------------------------------------------------- linear

enum { LK = C, LN = 24 };
typedef struct {
    double *x, *w, *b, *r, *y;
} lin_ctx;
static double lin_loss(void *p) {
    lin_ctx *c = p;
    d_linear(c->y, c->x, c->w, c->b, T, LK, LN);
    return dsum_prod(c->y, c->r, T * LN);
}
static void test_linear(void **state) {
    (void)state;
    static float x[T * LK], w[LN * LK], b[LN], r[T * LN], y[T * LN], ref[T * LN], dx[T * LK], dw[LN * LK], db[LN];
    static double xd[T * LK], wd[LN * LK], bd[LN], rd[T * LN], yd[T * LN];
    rand_fill(x, xd, T * LK, 1), rand_fill(w, wd, LN * LK, 1), rand_fill(b, bd, LN, 1), rand_fill(r, rd, T * LN, 1);
    // without bias: against ops_ref's matmul over an F32 tensor
    linear_forward(y, x, w, NULL, T, LK, LN);
    model_tensor wt = {QTYPE_F32, LN, LK, qtype_row_bytes(QTYPE_F32, LK), w, NULL, QTYPE_F32};
    float scratch[LK + 16];
    ops_ref.matmul(&wt, x, ref, T, scratch);
    assert_true(rel_err_ff(y, ref, T * LN) < 1e-6);
    linear_forward(y, x, w, b, T, LK, LN);
    lin_ctx c = {xd, wd, bd, rd, yd};
    lin_loss(&c);
    assert_true(rel_err_fd(y, yd, T * LN) < 1e-6);
    // accumulation: start the grads from 1 and subtract it afterwards
    for (int i = 0; i < T * LK; i++) dx[i] = 1;
    for (int i = 0; i < LN * LK; i++) dw[i] = 1;
    for (int i = 0; i < LN; i++) db[i] = 1;
    linear_backward(dx, dw, db, r, x, w, T, LK, LN);
    for (int i = 0; i < T * LK; i++) dx[i] -= 1;
    for (int i = 0; i < LN * LK; i++) dw[i] -= 1;
    for (int i = 0; i < LN; i++) db[i] -= 1;
    expect_grad(OP_LIN, lin_loss, &c, xd, T * LK, dx);
    expect_grad(OP_LIN, lin_loss, &c, wd, LN * LK, dw);
    expect_grad(OP_LIN, lin_loss, &c, bd, LN, db);
}

// ---------------------------------------------------------------------------- attention

typedef struct {
    double *q, *k, *v, *r, *out;
    int nh, nkv;
} att_ctx;
static double att_loss(void *p) {
    att_ctx *c = p;
    d_attention(c->out, c->q, c->k, c->v, T, c->nh, c->nkv, HS);
    return dsum_prod(c->out, c->r, (size_t)T * c->nh * HS);
}
static void check_attention(int nh, int nkv) {
    int qd = nh * HS, kvd = nkv * HS;
    static float q[T * 8 * HS], k[T * 8 * HS], v[T * 8 * HS], r[T * 8 * HS], out[T * 8 * HS], ref[T * 8 * HS],
        lse[T * 8], dq[T * 8 * HS], dk[T * 8 * HS], dv[T * 8 * HS];
    static double qdd[T * 8 * HS], kdd[T * 8 * HS], vdd[T * 8 * HS], rd[T * 8 * HS], od[T * 8 * HS];
    rand_fill(q, qdd, (size_t)T * qd, 2), rand_fill(k, kdd, (size_t)T * kvd, 2);
    rand_fill(v, vdd, (size_t)T * kvd, 1), rand_fill(r, rd, (size_t)T * qd, 1);
    // Keys and values that fp16 holds exactly: the inference op reads them from an fp16 cache.
    static uint16_t kh[T * 8 * HS], vh[T * 8 * HS];
    quantize_row(QTYPE_F16, k, kh, (int64_t)T * kvd), quantize_row(QTYPE_F16, v, vh, (int64_t)T * kvd);
    dequantize_row(QTYPE_F16, kh, k, (int64_t)T * kvd), dequantize_row(QTYPE_F16, vh, v, (int64_t)T * kvd);
    for (int i = 0; i < T * kvd; i++) kdd[i] = k[i], vdd[i] = v[i];
    static float work[2 * T * T];
    assert_true(attention_work_floats(T) <= sizeof(work) / sizeof(work[0]));
    attention_forward(out, lse, q, k, v, T, nh, nkv, HS, NULL, work);
    // the inference op reads keys/values from a cache of one sequence at positions 0..T-1,
    // head-major: (NKV, T, HS)
    static uint16_t kc[T * 8 * HS], vc[T * 8 * HS];
    kv_cache kv = {kc, vc, 1, 1, T, nkv, HS};
    for (int t = 0; t < T; t++)
        for (int h = 0; h < nkv; h++)
            for (int i = 0; i < HS; i++) {
                kc[kv_offset(&kv, 0, 0, h, t) + i] = kh[(size_t)t * kvd + h * HS + i];
                vc[kv_offset(&kv, 0, 0, h, t) + i] = vh[(size_t)t * kvd + h * HS + i];
            }
    int32_t seq[T] = {0}, pos[T];
    for (int t = 0; t < T; t++) pos[t] = t;
    ops_ref.attention(ref, q, &kv, 0, seq, pos, T, nh, nkv, HS);
    assert_true(rel_err_ff(out, ref, (size_t)T * qd) < 1e-5);
    att_ctx c = {qdd, kdd, vdd, rd, od, nh, nkv};
    att_loss(&c);
    assert_true(rel_err_fd(out, od, (size_t)T * qd) < 1e-5);
    memset(dq, 0, sizeof(dq)), memset(dk, 0, sizeof(dk)), memset(dv, 0, sizeof(dv));
    attention_backward(dq, dk, dv, r, q, k, v, out, lse, T, nh, nkv, HS, NULL, work);
    expect_grad(OP_ATT, att_loss, &c, qdd, (size_t)T * qd, dq);
    expect_grad(OP_ATT, att_loss, &c, kdd, (size_t)T * kvd, dk);
    expect_grad(OP_ATT, att_loss, &c, vdd, (size_t)T * kvd, dv);
}
static void test_attention(void **state) {
    (void)state;
    check_attention(NH, NKV);  // GQA, 2 query heads per kv head
    check_attention(NH, NH);   // plain multi-head
    check_attention(NH, 1);    // multi-query
}

// ---------------------------------------------------------------------------- swiglu, residual

typedef struct {
    double *g, *u, *r, *out;
} swi_ctx;
static double swi_loss(void *p) {
    swi_ctx *c = p;
    d_swiglu(c->out, c->g, c->u, T * F);
    return dsum_prod(c->out, c->r, T * F);
}
static void test_swiglu(void **state) {
    (void)state;
    static float g[T * F], u[T * F], r[T * F], out[T * F], ref[T * F], dg[T * F], du[T * F];
    static double gd[T * F], ud[T * F], rd[T * F], od[T * F];
    rand_fill(g, gd, T * F, 6), rand_fill(u, ud, T * F, 2), rand_fill(r, rd, T * F, 1);
    swiglu_forward(out, g, u, T * F);
    ops_ref.swiglu(ref, g, u, T * F);
    assert_memory_equal(out, ref, sizeof(out));
    swi_ctx c = {gd, ud, rd, od};
    swi_loss(&c);
    assert_true(rel_err_fd(out, od, T * F) < 1e-6);
    memset(dg, 0, sizeof(dg)), memset(du, 0, sizeof(du));
    swiglu_backward(dg, du, r, g, u, T * F);
    expect_grad(OP_SWIGLU, swi_loss, &c, gd, T * F, dg);
    expect_grad(OP_SWIGLU, swi_loss, &c, ud, T * F, du);
}

typedef struct {
    double *a, *b, *r;
} res_ctx;
static double res_loss(void *p) {
    res_ctx *c = p;
    double s = 0;
    for (int i = 0; i < T * C; i++) s += (c->a[i] + c->b[i]) * c->r[i];
    return s;
}
static void test_residual(void **state) {
    (void)state;
    static float a[T * C], b[T * C], r[T * C], out[T * C], ref[T * C], da[T * C], db[T * C];
    static double ad[T * C], bd[T * C], rd[T * C];
    rand_fill(a, ad, T * C, 1), rand_fill(b, bd, T * C, 1), rand_fill(r, rd, T * C, 1);
    residual_forward(out, a, b, T * C);
    memcpy(ref, a, sizeof(a));
    ops_ref.add(ref, b, T * C);
    assert_memory_equal(out, ref, sizeof(out));
    memset(da, 0, sizeof(da)), memset(db, 0, sizeof(db));
    residual_backward(da, db, r, T * C);
    res_ctx c = {ad, bd, rd};
    expect_grad(OP_RES, res_loss, &c, ad, T * C, da);
    expect_grad(OP_RES, res_loss, &c, bd, T * C, db);
}

// ---------------------------------------------------------------------------- output head

typedef struct {
    double *x, *w, *coef, *logp;
    const int32_t *tg;
} lp_ctx;
static double lp_loss(void *p) {  // Σ_t coef[t] · logp[t]
    lp_ctx *c = p;
    d_logprob(c->logp, c->x, c->w, c->tg, T, C, V);
    return dsum_prod(c->logp, c->coef, T);
}
static void test_logprob(void **state) {
    (void)state;
    static float x[T * C], w[V * C], logits[T * V], lse[T], logp[T], dlogp[T], dx[T * C], dw[V * C], ref[T * V];
    static double xd[T * C], wd[V * C], cd[T], lpd[T];
    int32_t tg[T] = {5, 0, 36, 5, 12};
    rand_fill(x, xd, T * C, 2), rand_fill(w, wd, V * C, 1);
    // per-token coefficients as a GRPO surrogate will give them: any sign, some zero
    rand_fill(dlogp, cd, T, 1);
    dlogp[3] = 0, cd[3] = 0;
    logprob_forward(logits, lse, logp, x, w, tg, T, C, V);
    model_tensor wt = {QTYPE_F32, V, C, qtype_row_bytes(QTYPE_F32, C), w, NULL, QTYPE_F32};
    float scratch[C + 16];
    ops_ref.matmul(&wt, x, ref, T, scratch);
    assert_true(rel_err_ff(logits, ref, T * V) < 1e-6);
    lp_ctx c = {xd, wd, cd, lpd, tg};
    lp_loss(&c);
    assert_true(rel_err_fd(logp, lpd, T) < 1e-5);
    memset(dx, 0, sizeof(dx)), memset(dw, 0, sizeof(dw));
    logprob_backward(dx, dw, logits, lse, x, w, tg, dlogp, T, C, V);
    for (int i = 0; i < V; i++) assert_true(logits[3 * V + i] == 0.0f);  // dlogits of a zero row
    expect_grad(OP_LOGP, lp_loss, &c, xd, T * C, dx);
    expect_grad(OP_LOGP, lp_loss, &c, wd, V * C, dw);
}

static void test_crossentropy(void **state) {
    (void)state;
    static float x[T * C], w[V * C], logits[T * V], lse[T], logp[T], dlogp[T], dx[T * C], dw[V * C], wt[T];
    static double xd[T * C], wd[V * C], cd[T], lpd[T];
    int32_t tg[T] = {1, 2, 3, 36, 0};
    uint8_t mask[T] = {0, 1, 1, 0, 1};
    rand_fill(x, xd, T * C, 2), rand_fill(w, wd, V * C, 1);
    for (int t = 0; t < T; t++) wt[t] = 0.25f + 0.125f * t;
    float loss = crossentropy_forward(logits, lse, logp, x, w, tg, wt, mask, T, C, V);
    double want = 0;
    lp_ctx c = {xd, wd, cd, lpd, tg};
    for (int t = 0; t < T; t++) cd[t] = mask[t] ? -(double)wt[t] : 0;  // loss = Σ cd · logp
    want = lp_loss(&c);
    assert_true(fabs(loss - want) < 1e-5 * fabs(want));
    // uniform logits: loss = log V per token
    static float zw[V * C];
    memset(zw, 0, sizeof(zw));
    float l0 = crossentropy_forward(logits, lse, logp, x, zw, tg, NULL, NULL, T, C, V);
    assert_true(fabsf(l0 - T * logf((float)V)) < 1e-4f);
    crossentropy_forward(logits, lse, logp, x, w, tg, wt, mask, T, C, V);
    crossentropy_dlogp(dlogp, wt, mask, T);
    memset(dx, 0, sizeof(dx)), memset(dw, 0, sizeof(dw));
    logprob_backward(dx, dw, logits, lse, x, w, tg, dlogp, T, C, V);
    expect_grad(OP_CE, lp_loss, &c, xd, T * C, dx);
    expect_grad(OP_CE, lp_loss, &c, wd, V * C, dw);
}

// ---------------------------------------------------------------------------- whole model

// A tiny random transformer: the double-precision loss Σ_t coef[t]·logp[t] composed from the
// double references above, over a double copy of lm_params' buffer (same offsets).
enum { MT = 6, ML = 2 };
typedef struct {
    const model_config *c;
    const lm_params *p;  // float layout, for the offsets
    double *dm;          // (p->n) double parameters
    const int32_t *tok, *tg;
    const double *coef;
} model_ctx;
#define DP(ctx, field) ((ctx)->dm + ((ctx)->p->field - (ctx)->p->mem))
static double model_loss(void *pv) {
    model_ctx *m = pv;
    const model_config *c = m->c;
    enum { MC = 16, MQ = 32, MKV = 16, MF = 24 };
    static double x[MT * MC], xn[MT * MC], q[MT * MQ], k[MT * MKV], v[MT * MKV], att[MT * MQ], tmp[MT * MC],
        g[MT * MF], u[MT * MF], hh[MT * MF], logp[MT];
    int32_t pos[MT];
    for (int t = 0; t < MT; t++) pos[t] = t;
    const double *wte = DP(m, wte);
    for (int t = 0; t < MT; t++) memcpy(x + t * MC, wte + m->tok[t] * MC, sizeof(double) * MC);
    for (int l = 0; l < c->n_layer; l++) {
        d_rmsnorm(xn, x, DP(m, attn_norm) + l * MC, MT, MC, c->rms_eps);
        d_linear(q, xn, DP(m, wq) + l * MQ * MC, c->has_qkv_bias ? DP(m, bq) + l * MQ : NULL, MT, MC, MQ);
        d_linear(k, xn, DP(m, wk) + l * MKV * MC, c->has_qkv_bias ? DP(m, bk) + l * MKV : NULL, MT, MC, MKV);
        d_linear(v, xn, DP(m, wv) + l * MKV * MC, c->has_qkv_bias ? DP(m, bv) + l * MKV : NULL, MT, MC, MKV);
        d_rope(q, k, pos, MT, NH, NKV, HS, c->rope_theta, c->rope);
        d_attention(att, q, k, v, MT, NH, NKV, HS);
        d_linear(tmp, att, DP(m, wo) + l * MC * MQ, NULL, MT, MQ, MC);
        for (int i = 0; i < MT * MC; i++) x[i] += tmp[i];
        d_rmsnorm(xn, x, DP(m, ffn_norm) + l * MC, MT, MC, c->rms_eps);
        d_linear(g, xn, DP(m, w_gate) + l * MF * MC, NULL, MT, MC, MF);
        d_linear(u, xn, DP(m, w_up) + l * MF * MC, NULL, MT, MC, MF);
        d_swiglu(hh, g, u, MT * MF);
        d_linear(tmp, hh, DP(m, w_down) + l * MC * MF, NULL, MT, MF, MC);
        for (int i = 0; i < MT * MC; i++) x[i] += tmp[i];
    }
    d_rmsnorm(xn, x, DP(m, out_norm), MT, MC, c->rms_eps);
    d_logprob(logp, xn, DP(m, wout), m->tg, MT, MC, c->n_vocab);
    return dsum_prod(logp, m->coef, MT);
}

// Checks n_pick random elements of one parameter tensor (n elements at float offset off):
// max |analytic - fd| over them, divided by the largest analytic gradient of the tensor.
static double model_check_tensor(model_ctx *m, size_t off, size_t n, const float *grad, int n_pick) {
    double gmax = 1e-12, md = 0;
    for (size_t i = 0; i < n; i++) gmax = fmax(gmax, fabs(grad[off + i]));
    for (int j = 0; j < n_pick; j++) {
        size_t i = off + (size_t)((drand() * 0.5 + 0.5) * n) % n;
        double save = m->dm[i];
        m->dm[i] = save + FD_H;
        double lp = model_loss(m);
        m->dm[i] = save - FD_H;
        double lm = model_loss(m);
        m->dm[i] = save;
        md = fmax(md, fabs((lp - lm) / (2 * FD_H) - grad[i]));
    }
    return md / gmax;
}

static void check_model(model_arch arch) {
    model_config c = {0};
    c.arch = arch, c.n_vocab = V, c.n_embd = C, c.n_layer = ML, c.n_head = NH, c.n_head_kv = NKV, c.head_dim = HS;
    c.n_ff = F, c.n_ctx = 64, c.rope_theta = 10000.0f, c.rms_eps = 1e-5f;
    c.rope = arch == MODEL_ARCH_QWEN2 ? ROPE_NEOX : ROPE_NORM;
    c.tied_embeddings = arch == MODEL_ARCH_LLAMA;
    c.has_qkv_bias = arch == MODEL_ARCH_QWEN2;
    trl_err e;
    lm_params p, g;
    lm_acts a;
    assert_int_equal(lm_params_alloc(&p, &c, NULL, &e), TRL_OK);
    assert_int_equal(lm_params_alloc(&g, &c, NULL, &e), TRL_OK);
    assert_int_equal(lm_acts_alloc(&a, &c, MT, NULL, &e), TRL_OK);
    double *dm = malloc(sizeof(double) * p.n);
    assert_non_null(dm);
    rand_fill(p.mem, dm, p.n, 0.4);
    // norm weights around 1, as trained models have them
    float *norms[] = {p.attn_norm, p.ffn_norm, p.out_norm};
    size_t nn[] = {(size_t)ML * C, (size_t)ML * C, C};
    for (int i = 0; i < 3; i++)
        for (size_t j = 0; j < nn[i]; j++) norms[i][j] += 1.0f, dm[norms[i] - p.mem + j] = norms[i][j];
    int32_t tok[MT] = {1, 5, 36, 5, 0, 22}, tg[MT] = {5, 36, 5, 0, 22, 7};
    float coef[MT];
    double coefd[MT];
    rand_fill(coef, coefd, MT, 1);
    assert_int_equal(lm_forward(&p, &a, &c, tok, tg, MT, &e), TRL_OK);
    model_ctx m = {&c, &p, dm, tok, tg, coefd};

    // the inference engine (ops_ref) on the same weights gives the same logits
    model_layer layers[ML];
    model mdl;
    memset(&mdl, 0, sizeof(mdl));
    mdl.cfg = c;
    size_t rb = qtype_row_bytes(QTYPE_F32, C), rbq = qtype_row_bytes(QTYPE_F32, QD), rbf = qtype_row_bytes(QTYPE_F32, F);
    mdl.tok_embd = (model_tensor){QTYPE_F32, V, C, rb, p.wte, NULL, QTYPE_F32};
    mdl.output = (model_tensor){QTYPE_F32, V, C, rb, p.wout, NULL, QTYPE_F32};
    mdl.out_norm = p.out_norm;
    for (int l = 0; l < ML; l++) {
        model_layer *L = &layers[l];
        L->attn_norm = p.attn_norm + l * C, L->ffn_norm = p.ffn_norm + l * C;
        L->wq = (model_tensor){QTYPE_F32, QD, C, rb, p.wq + l * QD * C, NULL, QTYPE_F32};
        L->wk = (model_tensor){QTYPE_F32, KVD, C, rb, p.wk + l * KVD * C, NULL, QTYPE_F32};
        L->wv = (model_tensor){QTYPE_F32, KVD, C, rb, p.wv + l * KVD * C, NULL, QTYPE_F32};
        L->wo = (model_tensor){QTYPE_F32, C, QD, rbq, p.wo + l * C * QD, NULL, QTYPE_F32};
        L->w_gate = (model_tensor){QTYPE_F32, F, C, rb, p.w_gate + l * F * C, NULL, QTYPE_F32};
        L->w_up = (model_tensor){QTYPE_F32, F, C, rb, p.w_up + l * F * C, NULL, QTYPE_F32};
        L->w_down = (model_tensor){QTYPE_F32, C, F, rbf, p.w_down + l * C * F, NULL, QTYPE_F32};
        L->bq = c.has_qkv_bias ? p.bq + l * QD : NULL;
        L->bk = c.has_qkv_bias ? p.bk + l * KVD : NULL;
        L->bv = c.has_qkv_bias ? p.bv + l * KVD : NULL;
    }
    mdl.layers = layers;
    engine en;
    assert_int_equal(engine_init(&en, &mdl, &ops_ref, 1, 64, MT, &e), TRL_OK);
    static float logits[MT * V];
    assert_int_equal(engine_feed(&en, 0, tok, MT, NULL, &e), TRL_OK);  // warm the cache: positions 0..MT-1
    engine_seq_reset(&en, 0);
    int32_t seq[MT] = {0}, pos[MT];
    int8_t want[MT];
    for (int t = 0; t < MT; t++) pos[t] = t, want[t] = 1;
    engine_batch b = {MT, tok, seq, pos, want};
    assert_int_equal(engine_forward(&en, &b, logits, &e), TRL_OK);
    // (within fp16's rounding: the engine keeps keys and values in an fp16 cache, relative
    // step 2^-11; measured 2.9e-4 (Llama) and 3.4e-4 (Qwen2) of the largest logit)
    assert_true(rel_err_ff(a.logits, logits, (size_t)MT * V) < 2e-3);
    engine_free(&en);
    // and loading that model back into training parameters gives the same buffer
    lm_params p2;
    assert_int_equal(lm_params_alloc(&p2, &c, NULL, &e), TRL_OK);
    assert_int_equal(lm_params_from_model(&p2, &mdl, &e), TRL_OK);
    assert_memory_equal(p2.mem, p.mem, sizeof(float) * p.n);
    lm_params_free(&p2);

    // the fp32 log-probs agree with the double model
    double ld = model_loss(&m), lf = 0;
    for (int t = 0; t < MT; t++) lf += coef[t] * a.logp[t];
    assert_true(fabs(ld - lf) < 1e-5 * (1 + fabs(ld)));

    assert_int_equal(lm_backward(&p, &g, &a, &c, tok, tg, coef, MT, &e), TRL_OK);
    struct {
        const char *name;
        float *t;
        size_t n;
    } ts[] = {
        {"wte", p.wte, (size_t)V * C},          {"attn_norm", p.attn_norm, (size_t)ML * C},
        {"wq", p.wq, (size_t)ML * QD * C},      {"wk", p.wk, (size_t)ML * KVD * C},
        {"wv", p.wv, (size_t)ML * KVD * C},     {"bq", p.bq, (size_t)ML * QD},
        {"bk", p.bk, (size_t)ML * KVD},         {"bv", p.bv, (size_t)ML * KVD},
        {"wo", p.wo, (size_t)ML * C * QD},      {"ffn_norm", p.ffn_norm, (size_t)ML * C},
        {"w_gate", p.w_gate, (size_t)ML * F * C}, {"w_up", p.w_up, (size_t)ML * F * C},
        {"w_down", p.w_down, (size_t)ML * C * F}, {"out_norm", p.out_norm, C},
        {"wout", p.wout, (size_t)V * C},
    };
    for (size_t i = 0; i < sizeof(ts) / sizeof(ts[0]); i++) {
        if (!ts[i].t || (ts[i].t == p.wte && i > 0)) continue;  // no bias; tied head = wte
        double err = model_check_tensor(&m, (size_t)(ts[i].t - p.mem), ts[i].n, g.mem, 12);
        if (err > worst[OP_MODEL]) worst[OP_MODEL] = err;
        if (!(err < 1e-4)) fprintf(stderr, "model %s: relative gradient error %.3g\n", ts[i].name, err);
        assert_true(err < 1e-4);
    }
    // a second forward + backward accumulates: every gradient doubles
    float *g1 = malloc(sizeof(float) * g.n);
    assert_non_null(g1);
    memcpy(g1, g.mem, sizeof(float) * g.n);
    assert_int_equal(lm_forward(&p, &a, &c, tok, tg, MT, &e), TRL_OK);
    assert_int_equal(lm_backward(&p, &g, &a, &c, tok, tg, coef, MT, &e), TRL_OK);
    for (size_t i = 0; i < g.n; i++) assert_true(fabsf(g.mem[i] - 2 * g1[i]) <= 1e-6f * (1 + fabsf(g1[i])));
    free(g1);
    // malformed input is refused
    int32_t bad[MT] = {1, 2, V, 3, 4, 5};
    assert_int_equal(lm_forward(&p, &a, &c, bad, tg, MT, &e), TRL_ERR);
    assert_int_equal(lm_forward(&p, &a, &c, tok, bad, MT, &e), TRL_ERR);
    assert_int_equal(lm_forward(&p, &a, &c, tok, tg, MT + 1, &e), TRL_ERR);
    assert_int_equal(lm_forward(&p, &a, &c, tok, tg, 0, &e), TRL_ERR);
    free(dm);
    lm_acts_free(&a);
    lm_params_free(&p);
    lm_params_free(&g);
}

static void test_model_llama(void **state) {
    (void)state;
    check_model(MODEL_ARCH_LLAMA);  // tied embeddings, ROPE_NORM, no biases
}
static void test_model_qwen2(void **state) {
    (void)state;
    check_model(MODEL_ARCH_QWEN2);  // separate head, ROPE_NEOX, q/k/v biases
}

static int print_worst(void **state) {
    (void)state;
    fprintf(stderr, "\n");
    for (int i = 0; i < OP_N; i++)
        if (worst[i] > 0) fprintf(stderr, "  worst relative gradient error %-13s %.2e\n", op_name[i], worst[i]);
    return 0;
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_embedding), cmocka_unit_test(test_rmsnorm),  cmocka_unit_test(test_rope),
        cmocka_unit_test(test_linear),    cmocka_unit_test(test_attention), cmocka_unit_test(test_swiglu),
        cmocka_unit_test(test_residual),  cmocka_unit_test(test_logprob),   cmocka_unit_test(test_crossentropy),
        cmocka_unit_test(test_model_llama), cmocka_unit_test(test_model_qwen2),
    };
    return cmocka_run_group_tests(tests, NULL, print_worst);
}
