// ops_train.c: forward (with cache) and backward of every training op, fp32, plain C with
// OpenMP pragmas and OpenBLAS sgemm for the matmuls. See ops_train.h for the conventions
// (every backward accumulates with +=, except rope_backward which is in place).
#include "trainer/ops_train.h"

#include <math.h>
#include <string.h>

#include "model/matmul.h"

// ---------------------------------------------------------------------------- embedding

void embedding_forward(float *out, const float *wte, const int32_t *ids, int T, int C) {
    for (int t = 0; t < T; t++) memcpy(out + (int64_t)t * C, wte + (int64_t)ids[t] * C, sizeof(float) * (size_t)C);
}

void embedding_backward(float *dwte, const float *dout, const int32_t *ids, int T, int C) {
    // serial over t: two tokens with the same id write the same row
    for (int t = 0; t < T; t++) {
        float *d = dwte + (int64_t)ids[t] * C;
        const float *g = dout + (int64_t)t * C;
        for (int c = 0; c < C; c++) d[c] += g[c];
    }
}

// ---------------------------------------------------------------------------- rmsnorm

void rmsnorm_forward(float *out, float *rstd, const float *x, const float *w, int T, int C, float eps) {
#pragma omp parallel for schedule(static) if (T > 8)
    for (int t = 0; t < T; t++) {
        const float *xt = x + (int64_t)t * C;
        double ss = 0;  // as ops_ref: sum of squares in double, scale rounded to float
        for (int c = 0; c < C; c++) ss += (double)xt[c] * xt[c];
        float s = (float)(1.0 / sqrt(ss / C + eps));
        rstd[t] = s;
        float *o = out + (int64_t)t * C;
        for (int c = 0; c < C; c++) o[c] = xt[c] * s * w[c];
    }
}

// y_c = x_c r w_c, r = (Σx²/C + eps)^-1/2, ∂r/∂x_i = -r³ x_i / C:
//   dx_i = r w_i dy_i - r³/C x_i Σ_c w_c dy_c x_c;   dw_c = Σ_t dy_c x_c r.
void rmsnorm_backward(float *dx, float *dw, const float *dout, const float *x, const float *w, const float *rstd,
                      int T, int C) {
#pragma omp parallel for schedule(static) if (T > 8)
    for (int t = 0; t < T; t++) {
        const float *xt = x + (int64_t)t * C, *gt = dout + (int64_t)t * C;
        float *dxt = dx + (int64_t)t * C;
        float r = rstd[t];
        double dot = 0;
        for (int c = 0; c < C; c++) dot += (double)w[c] * gt[c] * xt[c];
        float k = (float)(dot * r * r * r / C);
        for (int c = 0; c < C; c++) dxt[c] += r * w[c] * gt[c] - k * xt[c];
    }
#pragma omp parallel for schedule(static) if ((int64_t)T * C > 65536)
    for (int c = 0; c < C; c++) {
        float acc = 0;
        for (int t = 0; t < T; t++) acc += dout[(int64_t)t * C + c] * x[(int64_t)t * C + c] * rstd[t];
        dw[c] += acc;
    }
}

// ---------------------------------------------------------------------------- rope

// Rotation by +θ (sign 1) or -θ (sign -1); cos/sin computed exactly as ops_ref does.
static void rope_rotate(float *q, float *k, const int32_t *pos, int T, int NH, int NKV, int HS, float theta,
                        rope_style style, float sign) {
    int half = HS / 2;
#pragma omp parallel for schedule(static) if (T > 8)
    for (int t = 0; t < T; t++) {
        for (int i = 0; i < half; i++) {
            double ang = pos[t] * pow((double)theta, -2.0 * i / HS);
            float c = (float)cos(ang), s = sign * (float)sin(ang);
            int a = style == ROPE_NORM ? 2 * i : i;
            int b = style == ROPE_NORM ? 2 * i + 1 : i + half;
            for (int h = 0; h < NH + NKV; h++) {
                float *v = h < NH ? q + ((int64_t)t * NH + h) * HS : k + ((int64_t)t * NKV + (h - NH)) * HS;
                float x0 = v[a], x1 = v[b];
                v[a] = x0 * c - x1 * s;
                v[b] = x0 * s + x1 * c;
            }
        }
    }
}

void rope_forward(float *q, float *k, const int32_t *pos, int T, int NH, int NKV, int HS, float theta,
                  rope_style style) {
    rope_rotate(q, k, pos, T, NH, NKV, HS, theta, style, 1.0f);
}

void rope_backward(float *dq, float *dk, const int32_t *pos, int T, int NH, int NKV, int HS, float theta,
                   rope_style style) {
    rope_rotate(dq, dk, pos, T, NH, NKV, HS, theta, style, -1.0f);
}

// ---------------------------------------------------------------------------- linear

void linear_forward(float *y, const float *x, const float *w, const float *b, int T, int K, int N) {
    matmul_sgemm(0, 1, T, N, K, 1.0f, x, K, w, K, 0.0f, y, N);
    if (b)
        for (int t = 0; t < T; t++)
            for (int n = 0; n < N; n++) y[(int64_t)t * N + n] += b[n];
}

void linear_backward(float *dx, float *dw, float *db, const float *dy, const float *x, const float *w, int T, int K,
                     int N) {
    if (dx) matmul_sgemm(0, 0, T, K, N, 1.0f, dy, N, w, K, 1.0f, dx, K);
    if (dw) matmul_sgemm(1, 0, N, K, T, 1.0f, dy, N, x, K, 1.0f, dw, K);
    if (db)
        for (int t = 0; t < T; t++)
            for (int n = 0; n < N; n++) db[n] += dy[(int64_t)t * N + n];
}

// ---------------------------------------------------------------------------- attention

size_t attention_work_floats(int T) { return 2 * (size_t)T * (size_t)T; }

// Row t's visible keys as two ranges: [0, a) and [b, t] (a ≤ b; plain causal: a = 0, b = 0).
static inline void mask_ranges(const att_mask *m, int t, int *a, int *b) {
    if (!m || !m->seg || m->seg[t] <= m->n_shared) {
        *a = 0, *b = 0;
        return;
    }
    *a = m->n_shared < t + 1 ? m->n_shared : t + 1;
    *b = m->seg[t];
}

// P (T, T) for one head: row t holds softmax(q_t·k_s·scale) over the keys t sees and zeros
// elsewhere. The scores come from one sgemm; lse (stride NH) is written (forward) or read
// (backward: the probabilities are recomputed from it, as the backward of FlashAttention does).
static void head_probs(float *P, const float *qh, const float *kh, float *lse, int T, int NH, int QD, int KVD, int HS,
                       float scale, const att_mask *mask, int have_lse) {
    matmul_sgemm(0, 1, T, T, HS, scale, qh, QD, kh, KVD, 0.0f, P, T);
#pragma omp parallel for schedule(static) if (T > 16)
    for (int t = 0; t < T; t++) {
        float *row = P + (int64_t)t * T;
        int a, b;
        mask_ranges(mask, t, &a, &b);
        for (int s = a; s < b; s++) row[s] = -INFINITY;  // another segment's tokens
        float l;
        if (have_lse) {
            l = lse[(int64_t)t * NH];
        } else {
            float mx = -INFINITY;
            for (int s = 0; s <= t; s++) mx = row[s] > mx ? row[s] : mx;
            float sum = 0;
            for (int s = 0; s <= t; s++) sum += expf(row[s] - mx);
            l = mx + logf(sum);
            lse[(int64_t)t * NH] = l;
        }
        for (int s = 0; s <= t; s++) row[s] = expf(row[s] - l);  // exp(-inf) = 0 for the masked
        for (int s = t + 1; s < T; s++) row[s] = 0;
    }
}

// Head by head, with the matmuls in OpenBLAS (matmul_sgemm): S = scale·Q_h K^T, P = masked
// softmax(S), O_h = P V. The full T×T product is computed and the unseen keys zeroed.
void attention_forward(float *out, float *lse, const float *q, const float *k, const float *v, int T, int NH, int NKV,
                       int HS, const att_mask *mask, float *work) {
    int group = NH / NKV, QD = NH * HS, KVD = NKV * HS;
    float scale = 1.0f / sqrtf((float)HS), *P = work;
    for (int h = 0; h < NH; h++) {
        int kvh = h / group;
        head_probs(P, q + (int64_t)h * HS, k + (int64_t)kvh * HS, lse + h, T, NH, QD, KVD, HS, scale, mask, 0);
        matmul_sgemm(0, 0, T, HS, T, 1.0f, P, T, v + (int64_t)kvh * HS, KVD, 0.0f, out + (int64_t)h * HS, QD);
    }
}

// With P as above, O = P V and dO given: dV += Pᵀ dO; dP = dO Vᵀ; dS = P ⊙ (dP − D) with
// D_t = dO_t·O_t (= Σ_s P_ts dP_ts); dQ += scale·dS K; dK += scale·dSᵀ Q. The query heads of a
// GQA group add into their KV head's dK and dV. (dS is 0 wherever P is: unseen keys too.)
void attention_backward(float *dq, float *dk, float *dv, const float *dout, const float *q, const float *k,
                        const float *v, const float *out, const float *lse, int T, int NH, int NKV, int HS,
                        const att_mask *mask, float *work) {
    int group = NH / NKV, QD = NH * HS, KVD = NKV * HS;
    float scale = 1.0f / sqrtf((float)HS), *P = work, *dP = work + (size_t)T * T;
    for (int h = 0; h < NH; h++) {
        int kvh = h / group;
        const float *qh = q + (int64_t)h * HS, *kh = k + (int64_t)kvh * HS, *vh = v + (int64_t)kvh * HS;
        const float *doh = dout + (int64_t)h * HS, *oh = out + (int64_t)h * HS;
        head_probs(P, qh, kh, (float *)lse + h, T, NH, QD, KVD, HS, scale, mask, 1);
        matmul_sgemm(1, 0, T, HS, T, 1.0f, P, T, doh, QD, 1.0f, dv + (int64_t)kvh * HS, KVD);
        matmul_sgemm(0, 1, T, T, HS, 1.0f, doh, QD, vh, KVD, 0.0f, dP, T);
#pragma omp parallel for schedule(static) if (T > 16)
        for (int t = 0; t < T; t++) {
            const float *dot = doh + (int64_t)t * QD, *ot = oh + (int64_t)t * QD;
            float D = 0;
            for (int i = 0; i < HS; i++) D += dot[i] * ot[i];
            float *pr = P + (int64_t)t * T, *dr = dP + (int64_t)t * T;
            for (int s = 0; s <= t; s++) dr[s] = pr[s] * (dr[s] - D);
            for (int s = t + 1; s < T; s++) dr[s] = 0;
        }
        matmul_sgemm(0, 0, T, HS, T, scale, dP, T, kh, KVD, 1.0f, dq + (int64_t)h * HS, QD);
        matmul_sgemm(1, 0, T, HS, T, scale, dP, T, qh, QD, 1.0f, dk + (int64_t)kvh * HS, KVD);
    }
}

// ---------------------------------------------------------------------------- swiglu

void swiglu_forward(float *out, const float *g, const float *u, int64_t n) {
#pragma omp parallel for schedule(static) if (n > 16384)
    for (int64_t i = 0; i < n; i++) out[i] = g[i] / (1.0f + expf(-g[i])) * u[i];
}

// silu'(g) = σ(g) (1 + g (1 - σ(g)))
void swiglu_backward(float *dg, float *du, const float *dout, const float *g, const float *u, int64_t n) {
#pragma omp parallel for schedule(static) if (n > 16384)
    for (int64_t i = 0; i < n; i++) {
        float sg = 1.0f / (1.0f + expf(-g[i]));
        dg[i] += dout[i] * u[i] * sg * (1.0f + g[i] * (1.0f - sg));
        du[i] += dout[i] * g[i] * sg;
    }
}

// ---------------------------------------------------------------------------- residual

void residual_forward(float *out, const float *a, const float *b, int64_t n) {
#pragma omp parallel for schedule(static) if (n > 16384)
    for (int64_t i = 0; i < n; i++) out[i] = a[i] + b[i];
}

void residual_backward(float *da, float *db, const float *dout, int64_t n) {
#pragma omp parallel for schedule(static) if (n > 16384)
    for (int64_t i = 0; i < n; i++) {
        da[i] += dout[i];
        db[i] += dout[i];
    }
}

// ---------------------------------------------------------------------------- output head

void logprob_forward(float *logits, float *lse, float *logp, const float *x, const float *w, const int32_t *targets,
                     int T, int C, int V) {
    linear_forward(logits, x, w, NULL, T, C, V);
#pragma omp parallel for schedule(static) if (T > 1)
    for (int t = 0; t < T; t++) {
        const float *lt = logits + (int64_t)t * V;
        float mx = -INFINITY;
        for (int i = 0; i < V; i++) mx = lt[i] > mx ? lt[i] : mx;
        double sum = 0;
        for (int i = 0; i < V; i++) sum += exp((double)(lt[i] - mx));
        lse[t] = mx + (float)log(sum);
        logp[t] = lt[targets[t]] - lse[t];
    }
}

float crossentropy_forward(float *logits, float *lse, float *logp, const float *x, const float *w,
                           const int32_t *targets, const float *weight, const uint8_t *mask, int T, int C, int V) {
    logprob_forward(logits, lse, logp, x, w, targets, T, C, V);
    double loss = 0;
    for (int t = 0; t < T; t++)
        if (!mask || mask[t]) loss -= (double)(weight ? weight[t] : 1.0f) * logp[t];
    return (float)loss;
}

void crossentropy_dlogp(float *dlogp, const float *weight, const uint8_t *mask, int T) {
    for (int t = 0; t < T; t++) dlogp[t] = (!mask || mask[t]) ? -(weight ? weight[t] : 1.0f) : 0.0f;
}

void logprob_backward(float *dx, float *dw, float *logits, const float *lse, const float *x, const float *w,
                      const int32_t *targets, const float *dlogp, int T, int C, int V) {
#pragma omp parallel for schedule(static) if (T > 1)
    for (int t = 0; t < T; t++) {
        float *lt = logits + (int64_t)t * V;
        float g = dlogp[t];
        if (g == 0.0f) {
            memset(lt, 0, sizeof(float) * (size_t)V);
            continue;
        }
        for (int i = 0; i < V; i++) lt[i] = -g * expf(lt[i] - lse[t]);
        lt[targets[t]] += g;
    }
    linear_backward(dx, dw, NULL, logits, x, w, T, C, V);
}

// ---------------------------------------------------------------------------- the head's rows

void logprob_temperature(float *logits, float *lse, float *logp, const int32_t *targets, int r0, int n, int V,
                         float tau) {
    if (tau <= 0 || tau == 1.0f) return;
    float inv = 1.0f / tau;
#pragma omp parallel for schedule(static)
    for (int i = r0; i < r0 + n; i++) {
        float *lt = logits + (size_t)i * V;
        float mx = -INFINITY;
        for (int j = 0; j < V; j++) {
            lt[j] *= inv;
            mx = lt[j] > mx ? lt[j] : mx;
        }
        double sum = 0;
        for (int j = 0; j < V; j++) sum += exp((double)(lt[j] - mx));
        lse[i] = mx + (float)log(sum);
        logp[i] = lt[targets[i]] - lse[i];
    }
}

void head_stats(const float *logits, const float *lse, const int32_t *targets, int r0, int n, int V, float *entropy,
                float *hit) {
#pragma omp parallel for schedule(static) if (n > 1)
    for (int r = r0; r < r0 + n; r++) {
        const float *lg = logits + (size_t)r * V;
        double l = lse[r], s = 0;
        int am = 0;
        for (int j = 0; j < V; j++) {
            double lp = lg[j] - l;
            s += exp(lp) * lp;
            if (lg[j] > lg[am]) am = j;
        }
        entropy[r - r0] = (float)-s;
        hit[r - r0] = am == targets[r];
    }
}

// ---------------------------------------------------------------------------- the CPU table

static void cpu_zero(float *x, int64_t n) { memset(x, 0, sizeof(float) * (size_t)n); }

static void cpu_copy(float *dst, const float *src, int64_t n) { memcpy(dst, src, sizeof(float) * (size_t)n); }

static double cpu_grad_norm(const float *g, int64_t n) {
    float *const gs[1] = {(float *)g};
    return grad_global_norm(gs, &n, 1);
}

static void cpu_scale(float *x, float s, int64_t n) {
#pragma omp parallel for schedule(static) if (n > 65536)
    for (int64_t i = 0; i < n; i++) x[i] *= s;
}

const train_ops train_ops_cpu = {
    .name = "cpu",
    .mem = &ops_cpu,
    .zero = cpu_zero,
    .copy = cpu_copy,
    .embedding_forward = embedding_forward,
    .embedding_backward = embedding_backward,
    .rmsnorm_forward = rmsnorm_forward,
    .rmsnorm_backward = rmsnorm_backward,
    .rope_forward = rope_forward,
    .rope_backward = rope_backward,
    .linear_forward = linear_forward,
    .linear_backward = linear_backward,
    .attention_work_floats = attention_work_floats,
    .attention_forward = attention_forward,
    .attention_backward = attention_backward,
    .swiglu_forward = swiglu_forward,
    .swiglu_backward = swiglu_backward,
    .residual_forward = residual_forward,
    .logprob_forward = logprob_forward,
    .logprob_backward = logprob_backward,
    .logprob_temperature = logprob_temperature,
    .head_stats = head_stats,
    .adamw_update = adamw_update,
    .grad_norm = cpu_grad_norm,
    .scale = cpu_scale,
};
