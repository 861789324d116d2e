// grpo.h: the GRPO objective of Tool-N1 (verl's GRPO as tool-n1.md §4 and §7 describe it),
// as pure functions over per-token log-probs:
//   advantage   A_i = (r_i − mean(r)) / (std(r) + 1e-6) per prompt group, std unbiased (N−1);
//               a group of one has mean 0, std 1; Dr. GRPO's variant drops the division;
//   surrogate   max(−A·ρ, −A·clip(ρ, 1−ε, 1+ε)) per token, ρ = exp(logp − logp_old);
//   KL          k3 = exp(ref − logp) − (ref − logp) − 1, clamped to [−10, 10], times β;
//   aggregation token-mean over every response token of a mini-batch.
// grpo_token_grads gives ∂loss/∂logp per token, which drives lm_backward.
#ifndef TOOLRL_GRPO_H
#define TOOLRL_GRPO_H

typedef struct {
    float clip_eps;  // ε, 0.2
    float kl_coef;   // β, 1e-3 (0: no KL term, no reference forward needed)
} grpo_loss_params;

typedef struct {
    double loss;      // Σ over tokens of the per-token loss (not yet divided by the count)
    double pg_loss;   // Σ surrogate part
    double kl;        // Σ k3 (unclamped value is what is logged: the clamp only bounds the loss)
    double clipped;   // tokens where the clipped branch was taken with ρ outside [1−ε, 1+ε]
    double ratio;     // Σ ρ
    int n;            // tokens seen
} grpo_stats;

// Advantages of one group of n rewards (see above). norm_std 1: divide by std + 1e-6.
void grpo_advantages(const double *rewards, int n, int norm_std, float *adv);

// For n response tokens of one sequence with advantage adv: adds the per-token loss into st
// and writes dlogp[t] = scale · ∂loss_t/∂logp[t] (scale = 1 / tokens in the mini-batch for
// token-mean). ref_logp may be NULL when kl_coef is 0.
void grpo_token_grads(const float *logp, const float *old_logp, const float *ref_logp, float adv, int n,
                      float scale, const grpo_loss_params *p, float *dlogp, grpo_stats *st);

#endif
