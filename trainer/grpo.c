// grpo.c: GRPO advantages and the per-token clipped surrogate + k3 KL (see grpo.h).
#include "trainer/grpo.h"

#include <math.h>

void grpo_advantages(const double *rewards, int n, int norm_std, float *adv) {
    if (n == 1) {  // verl: a group of one has mean 0 and std 1
        adv[0] = (float)rewards[0];
        return;
    }
    double mean = 0, var = 0;
    for (int i = 0; i < n; i++) mean += rewards[i];
    mean /= n;
    for (int i = 0; i < n; i++) var += (rewards[i] - mean) * (rewards[i] - mean);
    double sd = sqrt(var / (n - 1));
    for (int i = 0; i < n; i++) adv[i] = (float)(norm_std ? (rewards[i] - mean) / (sd + 1e-6) : rewards[i] - mean);
}

void grpo_token_grads(const float *logp, const float *old_logp, const float *ref_logp, float adv, int n,
                      float scale, const grpo_loss_params *p, float *dlogp, grpo_stats *st) {
    double lo = 1.0 - p->clip_eps, hi = 1.0 + p->clip_eps;
    for (int t = 0; t < n; t++) {
        double ratio = exp((double)logp[t] - old_logp[t]);
        double l1 = -adv * ratio;
        double rc = ratio < lo ? lo : ratio > hi ? hi : ratio;
        double l2 = -adv * rc;
        // max(l1, l2): the gradient flows through l1 unless the clipped branch is strictly larger;
        // the clipped branch is constant in logp when the clip is active.
        double pg = l1 >= l2 ? l1 : l2;
        double dpg = l1 >= l2 ? -adv * ratio : (rc == ratio ? -adv * ratio : 0.0);
        if (l2 > l1 && rc != ratio) st->clipped += 1;
        double dkl = 0, k3 = 0;
        if (p->kl_coef != 0 && ref_logp) {
            double d = (double)ref_logp[t] - logp[t];
            double ed = exp(d);
            k3 = ed - d - 1;
            double k3c = k3 > 10 ? 10 : k3 < -10 ? -10 : k3;
            // d k3 / d logp = −e^d + 1, zero where the clamp is active
            dkl = (k3c == k3) ? p->kl_coef * (1.0 - ed) : 0.0;
            st->loss += p->kl_coef * k3c;
        }
        st->loss += pg;
        st->pg_loss += pg;
        st->kl += k3;
        st->ratio += ratio;
        st->n++;
        dlogp[t] = (float)(scale * (dpg + dkl));
    }
}
