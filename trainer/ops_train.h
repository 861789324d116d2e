// ops_train.h: the training ops, fp32 on the CPU. Each op is a pure function over raw
// pointers and dims, its forward and backward side by side; the forward caches what the
// backward needs (rstd, logsumexp). Matmuls go to OpenBLAS (cblas_sgemm).
//
// Dims: T tokens of one sequence (positions 0..T-1 for attention), C channels, NH query
// heads, NKV key/value heads (GQA: query head h reads kv head h / (NH/NKV)), HS head size,
// F feed-forward size, V vocabulary.
//
// Gradient convention: EVERY backward ADDS (+=) into every gradient it writes, activation
// gradients as well as parameter gradients, so gradients flowing into one tensor from
// several consumers (xn into Q, K and V; the residual stream) simply accumulate. The caller
// zeroes gradient buffers before a backward pass. The one exception is rope_backward,
// which works in place (the gradient of q/k is rotated back by -θ).
//
// Numerics: the forwards compute the same function as model/ops_ref.c (checked by
// tests/test_backward.c), so training and inference agree. No op allocates or prints.
#ifndef TOOLRL_OPS_TRAIN_H
#define TOOLRL_OPS_TRAIN_H

#include <stdint.h>

#include "model/model.h"  // rope_style
#include "model/ops.h"
#include "trainer/adamw.h"

// ---------------------------------------------------------------------------- embedding
// out (T, C) = rows ids (T) of wte (V, C).
void embedding_forward(float *out, const float *wte, const int32_t *ids, int T, int C);
// dwte (V, C) += dout (T, C) scattered to rows ids (a repeated id accumulates).
void embedding_backward(float *dwte, const float *dout, const int32_t *ids, int T, int C);

// ---------------------------------------------------------------------------- rmsnorm
// out (T, C) = x (T, C) * rstd * w (C), rstd (T) = 1/sqrt(mean(x²) + eps) (cached).
void rmsnorm_forward(float *out, float *rstd, const float *x, const float *w, int T, int C, float eps);
// dx (T, C) +=, dw (C) += from dout (T, C); x, w, rstd as given to / cached by the forward.
void rmsnorm_backward(float *dx, float *dw, const float *dout, const float *x, const float *w, const float *rstd,
                      int T, int C);

// ---------------------------------------------------------------------------- rope
// Rotates each head of q (T, NH*HS) and k (T, NKV*HS) in place by its token's position
// pos (T). ROPE_NORM pairs (2i, 2i+1), ROPE_NEOX pairs (i, i + HS/2). HS even.
void rope_forward(float *q, float *k, const int32_t *pos, int T, int NH, int NKV, int HS, float theta,
                  rope_style style);
// In place: dq (T, NH*HS), dk (T, NKV*HS) rotated by -θ (the transpose of the forward).
void rope_backward(float *dq, float *dk, const int32_t *pos, int T, int NH, int NKV, int HS, float theta,
                   rope_style style);

// ---------------------------------------------------------------------------- linear
// y (T, N) = x (T, K) · W^T + b; W (N, K); b (N) or NULL.
void linear_forward(float *y, const float *x, const float *w, const float *b, int T, int K, int N);
// dx (T, K) += dy · W; dw (N, K) += dy^T · x; db (N) += Σ_t dy. dx, dw or db may be NULL
// (gradient not wanted).
void linear_backward(float *dx, float *dw, float *db, const float *dy, const float *x, const float *w, int T, int K,
                     int N);

// ---------------------------------------------------------------------------- attention
// Which keys token t attends to: s ≤ t, and s < n_shared or s ≥ seg[t]. Several sequences
// packed behind one shared prefix (lm_layout): seg[t] is the first index of t's own segment.
// A NULL mask is plain causal attention (every s ≤ t).
typedef struct {
    const int32_t *seg;  // (T)
    int n_shared;
} att_mask;

// Grouped-query attention, causal within the mask: out (T, NH*HS) = softmax(q k^T / sqrt(HS))
// v per head over the keys token t sees; q (T, NH*HS), k, v (T, NKV*HS).
// lse (T, NH): cached log-sum-exp of each row of scaled scores (the probabilities are
// recomputed in the backward, so the cache stays linear in T). Head by head, the products
// are OpenBLAS matmuls; work holds attention_work_floats(T) floats of scratch (one head's
// T×T probabilities and their gradient).
size_t attention_work_floats(int T);
void attention_forward(float *out, float *lse, const float *q, const float *k, const float *v, int T, int NH, int NKV,
                       int HS, const att_mask *mask, float *work);
// dq (T, NH*HS) +=, dk (T, NKV*HS) +=, dv (T, NKV*HS) += from dout (T, NH*HS); out, lse and
// mask as in the forward.
void attention_backward(float *dq, float *dk, float *dv, const float *dout, const float *q, const float *k,
                        const float *v, const float *out, const float *lse, int T, int NH, int NKV, int HS,
                        const att_mask *mask, float *work);

// ---------------------------------------------------------------------------- swiglu
// out (n) = silu(g) * u = g / (1 + exp(-g)) * u; g, u (n).
void swiglu_forward(float *out, const float *g, const float *u, int64_t n);
// dg (n) +=, du (n) += from dout (n).
void swiglu_backward(float *dg, float *du, const float *dout, const float *g, const float *u, int64_t n);

// ---------------------------------------------------------------------------- residual
// out (n) = a (n) + b (n) (out may alias a or b).
void residual_forward(float *out, const float *a, const float *b, int64_t n);
// da (n) += dout, db (n) += dout.
void residual_backward(float *da, float *db, const float *dout, int64_t n);

// ---------------------------------------------------------------------------- output head
// The vocabulary head and its log-softmax, with per-token log-probs as the interface:
//   logits (T, V) = x (T, C) · W^T        W (V, C) (tied: the embedding table)
//   lse (T)       = log Σ_v exp(logits)   (cached)
//   logp (T)      = logits[t, targets[t]] - lse[t]
// Any loss that is a function of the per-token log-probs (cross-entropy; later the GRPO
// surrogate and k3 KL) backpropagates through dlogp (T) = ∂loss/∂logp.
//
// logprob_forward: the above, no loss. targets (T) in [0, V).
void logprob_forward(float *logits, float *lse, float *logp, const float *x, const float *w, const int32_t *targets,
                     int T, int C, int V);
// Cross-entropy: the forward above, then returns loss = -Σ_t mask[t] * weight[t] * logp[t].
// weight (T) or NULL (1 each; e.g. 1/n_tokens gives the mean), mask (T) or NULL (all 1).
float crossentropy_forward(float *logits, float *lse, float *logp, const float *x, const float *w,
                           const int32_t *targets, const float *weight, const uint8_t *mask, int T, int C, int V);
// dlogp (T) = ∂(cross-entropy)/∂logp = -mask * weight (same NULL conventions). Overwrites.
void crossentropy_dlogp(float *dlogp, const float *weight, const uint8_t *mask, int T);
// Backward from dlogp (T): dlogits[t, v] = dlogp[t] * (1[v = target] - softmax[t, v]),
// written over logits (T, V) (rows with dlogp = 0 become 0); then dx (T, C) += dlogits · W
// and dw (V, C) += dlogits^T · x (dx or dw may be NULL).
void logprob_backward(float *dx, float *dw, float *logits, const float *lse, const float *x, const float *w,
                      const int32_t *targets, const float *dlogp, int T, int C, int V);

// ---------------------------------------------------------------------------- the head's rows
// Rescales rows [r0, r0 + n) of logits (T, V) by 1/tau and recomputes their lse and logp of
// targets (the rollout temperature; tau 1 or ≤ 0 changes nothing).
void logprob_temperature(float *logits, float *lse, float *logp, const int32_t *targets, int r0, int n, int V,
                         float tau);
// Per row r of [r0, r0 + n) of the last forward's head: entropy[r - r0] (nats) of softmax(logits
// row) and hit[r - r0] = 1 when the row's argmax is targets[r] (first maximum).
void head_stats(const float *logits, const float *lse, const int32_t *targets, int r0, int n, int V, float *entropy,
                float *hit);

// ---------------------------------------------------------------------------- the seam
// The trainer's backend (docs/architecture.md): every op the trainable model (lm.c) and the
// training steps (train.c) run, and the memory they run in. `mem` is an inference backend
// (model/ops.h) that lends its memory half (host, alloc, release, upload, download). The CPU
// table holds the functions above; a GPU backend fills the same table, and
// tests/test_train_seam.c runs a training step through a simulated device with it.
typedef struct train_ops {
    const char *name;
    const ops *mem;
    void (*zero)(float *x, int64_t n);
    void (*copy)(float *dst, const float *src, int64_t n);  // within the backend's memory
    void (*embedding_forward)(float *out, const float *wte, const int32_t *ids, int T, int C);
    void (*embedding_backward)(float *dwte, const float *dout, const int32_t *ids, int T, int C);
    void (*rmsnorm_forward)(float *out, float *rstd, const float *x, const float *w, int T, int C, float eps);
    void (*rmsnorm_backward)(float *dx, float *dw, const float *dout, const float *x, const float *w,
                             const float *rstd, int T, int C);
    void (*rope_forward)(float *q, float *k, const int32_t *pos, int T, int NH, int NKV, int HS, float theta,
                         rope_style style);
    void (*rope_backward)(float *dq, float *dk, const int32_t *pos, int T, int NH, int NKV, int HS, float theta,
                          rope_style style);
    void (*linear_forward)(float *y, const float *x, const float *w, const float *b, int T, int K, int N);
    void (*linear_backward)(float *dx, float *dw, float *db, const float *dy, const float *x, const float *w, int T,
                            int K, int N);
    size_t (*attention_work_floats)(int T);
    void (*attention_forward)(float *out, float *lse, const float *q, const float *k, const float *v, int T, int NH,
                              int NKV, int HS, const att_mask *mask, float *work);
    void (*attention_backward)(float *dq, float *dk, float *dv, const float *dout, const float *q, const float *k,
                               const float *v, const float *out, const float *lse, int T, int NH, int NKV, int HS,
                               const att_mask *mask, float *work);
    void (*swiglu_forward)(float *out, const float *g, const float *u, int64_t n);
    void (*swiglu_backward)(float *dg, float *du, const float *dout, const float *g, const float *u, int64_t n);
    void (*residual_forward)(float *out, const float *a, const float *b, int64_t n);
    void (*logprob_forward)(float *logits, float *lse, float *logp, const float *x, const float *w,
                            const int32_t *targets, int T, int C, int V);
    void (*logprob_backward)(float *dx, float *dw, float *logits, const float *lse, const float *x, const float *w,
                             const int32_t *targets, const float *dlogp, int T, int C, int V);
    void (*logprob_temperature)(float *logits, float *lse, float *logp, const int32_t *targets, int r0, int n, int V,
                                float tau);
    void (*head_stats)(const float *logits, const float *lse, const int32_t *targets, int r0, int n, int V,
                       float *entropy, float *hit);
    // The optimizer over flat buffers (adamw.h).
    int (*adamw_update)(float *param, const float *grad, float *m, float *v, int64_t n, float lr,
                        const adamw_params *p, int step);
    double (*grad_norm)(const float *g, int64_t n);  // sqrt(Σ g²), in double
    void (*scale)(float *x, float s, int64_t n);     // x *= s
} train_ops;

extern const train_ops train_ops_cpu;

#endif
