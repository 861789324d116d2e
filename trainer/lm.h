// lm.h: the trainable transformer (Llama / Qwen2, as model/forward.c runs it) in fp32,
// composed from the training ops of ops_train.h: parameters and their gradients as one
// flat buffer each, the activations one sequence's forward saves for its backward, and
// lm_forward / lm_backward. One sequence of T tokens at positions 0..T-1 per call.
//
// The backward starts from dlogp (T) = ∂loss/∂logp of the next-token log-probs, so any
// per-token loss (cross-entropy, the GRPO surrogate, the k3 KL) drives it; it ADDS into the
// parameter gradients (zero them between optimizer steps, or keep them to accumulate over
// several sequences).
#ifndef TOOLRL_LM_H
#define TOOLRL_LM_H

#include <stddef.h>
#include <stdint.h>

#include "base/util.h"
#include "model/model.h"
#include "trainer/ops_train.h"

// Every tensor of the model, fp32, carved out of one buffer (lm_params_alloc) in this
// order. Layer tensors are stacked over L. The same struct holds the gradients.
typedef struct {
    float *wte;        // (V, C)
    float *attn_norm;  // (L, C)
    float *wq;         // (L, NH*HS, C)
    float *wk;         // (L, NKV*HS, C)
    float *wv;         // (L, NKV*HS, C)
    float *bq;         // (L, NH*HS)   NULL unless has_qkv_bias
    float *bk;         // (L, NKV*HS)  NULL unless has_qkv_bias
    float *bv;         // (L, NKV*HS)  NULL unless has_qkv_bias
    float *wo;         // (L, C, NH*HS)
    float *ffn_norm;   // (L, C)
    float *w_gate;     // (L, F, C)
    float *w_up;       // (L, F, C)
    float *w_down;     // (L, C, F)
    float *out_norm;   // (C)
    float *wout;       // (V, C); equals wte when tied_embeddings (then not in the buffer twice)
    float *mem;        // the buffer (owned), the backend's memory
    size_t n;          // floats in it
    const train_ops *be;
} lm_params;

// Floats of all parameters of configuration c.
size_t lm_params_count(const model_config *c);
// Allocates one zeroed buffer in backend be's memory (NULL: train_ops_cpu) and points every
// tensor into it.
int lm_params_alloc(lm_params *p, const model_config *c, const train_ops *be, trl_err *e);
void lm_params_free(lm_params *p);
// Host access to parameters (checkpoints, raw dumps): *h becomes p itself when p's backend's
// memory is the host's, else a host copy (with read: p's values downloaded into it).
// lm_params_host_end frees the copy; lm_params_host_commit first uploads it into p.
int lm_params_host_begin(const lm_params *p, const model_config *c, int read, lm_params *h, trl_err *e);
void lm_params_host_end(const lm_params *p, lm_params *h);
void lm_params_host_commit(lm_params *p, lm_params *h);
// Copies (dequantizing) every weight of a loaded model into p (allocated for m->cfg).
int lm_params_from_model(lm_params *p, const model *m, trl_err *e);

// What the forward saves for the backward, plus the backward's scratch, for up to max_T
// tokens. Per layer l the residual stream enters as x[l] and leaves as x[l+1].
typedef struct {
    int max_T, V;
    float *x;        // (L+1, T, C) residual stream
    float *xn1;      // (L, T, C) attention RMSNorm output
    float *rstd1;    // (L, T)
    float *q;        // (L, T, NH*HS) after RoPE
    float *k;        // (L, T, NKV*HS) after RoPE
    float *v;        // (L, T, NKV*HS)
    float *att;      // (L, T, NH*HS) attention output
    float *lse;      // (L, T, NH) attention log-sum-exp
    float *attw;     // (2, T, T) attention scratch: one head's probabilities and their gradient
    float *x_mid;    // (L, T, C) residual after attention
    float *xn2;      // (L, T, C) MLP RMSNorm output
    float *rstd2;    // (L, T)
    float *gate;     // (L, T, F)
    float *up;       // (L, T, F)
    float *h;        // (L, T, F) silu(gate) * up
    float *xf;       // (T, C) final RMSNorm output
    float *rstdf;    // (T)
    float *logits;   // (T, V) (overwritten by dlogits in the backward)
    float *lse_out;  // (T)
    float *logp;     // (T) log p(targets[t] | tokens[0..t])
    int32_t *pos;    // (T) RoPE positions: 0..T-1, or as the last lm_forward_packed laid out
    int32_t *seg;    // (T) first index of each token's segment (lm_forward_packed)
    int packed;      // 1: the last forward was packed (pos, seg, n_shared hold its layout)
    int n_shared;
    // backward scratch
    float *dres;     // (T, C) gradient of the residual stream
    float *dxn;      // (T, C)
    float *dtmp;     // (T, C) also the forward's projection output
    float *dq;       // (T, NH*HS)
    float *dk;       // (T, NKV*HS)
    float *dv;       // (T, NKV*HS)
    float *datt;     // (T, NH*HS)
    float *dh;       // (T, F)
    float *dgate;    // (T, F)
    float *dup;      // (T, F)
    float *mem;      // owned
    float *stats;    // (2, T) head_stats' entropy and hit rows
    // The backend (every float buffer above is its memory) and, where it is not host memory,
    // the uploaded copies of pos, seg and a call's token ids, targets and dlogp; with host
    // memory these point at the host arrays. tgt: the targets the last forward scored.
    const train_ops *be;
    int32_t *d_pos, *d_seg, *d_tok, *d_tgt;
    float *d_dlogp;
    const int32_t *tgt;
} lm_acts;

int lm_acts_alloc(lm_acts *a, const model_config *c, int max_T, const train_ops *be, trl_err *e);
void lm_acts_free(lm_acts *a);
// Host copies of the last forward's results: its log-probs of rows [r0, r0 + n) into dst (n);
// and per row the entropy (nats) of the next-token distribution and whether its argmax is the
// target (1 or 0), into entropy and hit (n each, either may be NULL).
void lm_acts_logp(const lm_acts *a, float *dst, int r0, int n);
void lm_acts_head_stats(const lm_acts *a, int r0, int n, float *entropy, float *hit);
// lm_backward reads the temperature-scaled head after this: the last forward's rows
// [r0, r0 + n) become log-softmax(logits / tau) (logprob_temperature).
void lm_acts_temperature(lm_acts *a, int r0, int n, float tau);

// Forward of tokens (T) with next-token targets (T) (targets[t] is scored after
// tokens[0..t]): fills a (a->logp (T) the per-token log-probs). 1 ≤ T ≤ a->max_T; ids in
// [0, V).
int lm_forward(const lm_params *p, lm_acts *a, const model_config *c, const int32_t *tokens, const int32_t *targets,
               int T, trl_err *e);
// Several sequences that share a prefix, in one forward: tokens [0, n_shared) are the prefix
// (positions 0..n_shared-1), then n_seg segments of seg_len[i] tokens, each continuing the
// prefix on its own (positions n_shared, n_shared+1, …; attending to the prefix and to itself
// only). The segments' targets are scored as in lm_forward, so segment i gives what
// lm_forward of prefix + segment i gives at those positions, and the prefix is computed once
// (a GRPO group: one prompt, its sampled replies). The prefix's own targets are not scored
// (logp 0 there; the backward ignores dlogp there). T = n_shared + Σ seg_len.
typedef struct {
    int n_shared, n_seg;
    const int *seg_len;  // (n_seg)
} lm_layout;
int lm_forward_packed(const lm_params *p, lm_acts *a, const model_config *c, const int32_t *tokens,
                      const int32_t *targets, int T, const lm_layout *lay, trl_err *e);
// Backward of the last lm_forward or lm_forward_packed (same tokens, targets, T) from dlogp
// (T): g += ∂loss/∂p.
int lm_backward(const lm_params *p, lm_params *g, lm_acts *a, const model_config *c, const int32_t *tokens,
                const int32_t *targets, const float *dlogp, int T, trl_err *e);

#endif
