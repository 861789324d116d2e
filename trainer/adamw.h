// adamw.h: the optimizer side of training: AdamW (Loshchilov & Hutter: Adam moments with
// bias correction, weight decay decoupled from the gradient, as torch.optim.AdamW), global
// gradient-norm clipping (as torch.nn.utils.clip_grad_norm_), and the learning-rate
// schedule (constant, linear or cosine decay, each after an optional linear warmup).
// Pure functions over caller-owned buffers; nothing allocates or prints.
#ifndef TOOLRL_ADAMW_H
#define TOOLRL_ADAMW_H

#include <stdint.h>

typedef struct {
    float beta1;         // first-moment decay, e.g. 0.9
    float beta2;         // second-moment decay, e.g. 0.999
    float eps;           // added to sqrt(v̂), e.g. 1e-8
    float weight_decay;  // decoupled: param -= lr · weight_decay · param (0 for norms/biases)
} adamw_params;

// One AdamW step over n parameters, in place. grad (n); m, v (n) the moment state (zero
// before step 1); step ≥ 1 counts the updates so far including this one (bias correction
// 1 - beta^step). Per element:
//   m = β1 m + (1-β1) g;  v = β2 v + (1-β2) g²;  m̂ = m / (1-β1^step);  v̂ = v / (1-β2^step)
//   param -= lr · (m̂ / (sqrt(v̂) + eps) + weight_decay · param)
// Returns TRL_OK, or TRL_ERR (changing nothing) when step < 1 or n < 0.
int adamw_update(float *param, const float *grad, float *m, float *v, int64_t n, float lr, const adamw_params *p,
                 int step);

// L2 norm of the gradient over several tensors: sqrt(Σ_k Σ_i grads[k][i]²), in double.
// grads (n_tensors) pointers, sizes (n_tensors) element counts.
double grad_global_norm(float *const *grads, const int64_t *sizes, int n_tensors);
// Clips the global norm to max_norm: when norm > max_norm every gradient is multiplied by
// max_norm / (norm + 1e-6) (torch's clip_grad_norm_). Returns the norm before clipping.
double grad_clip_global_norm(float *const *grads, const int64_t *sizes, int n_tensors, float max_norm);

// ---------------------------------------------------------------------------- schedule
typedef enum { LR_CONSTANT = 0, LR_LINEAR = 1, LR_COSINE = 2 } lr_kind;

typedef struct {
    lr_kind kind;
    float lr_max;      // the learning rate after warmup
    float lr_min;      // where LINEAR and COSINE end (at total_steps and after)
    int warmup_steps;  // 0 for none
    int total_steps;   // steps of the whole run, warmup included (LINEAR, COSINE)
} lr_schedule;

// The learning rate of 0-based step `step`:
//   step < warmup:  lr_max · (step + 1) / warmup     (the first step is not wasted at lr 0)
//   after, with progress u = (step - warmup) / (total - warmup) clamped to [0, 1]:
//   CONSTANT lr_max;  LINEAR lr_max + (lr_min - lr_max) u;
//   COSINE lr_min + (lr_max - lr_min) (1 + cos(π u)) / 2.
float lr_schedule_at(const lr_schedule *s, int step);

#endif
