// adamw.c: AdamW, global gradient-norm clipping and the learning-rate schedule (adamw.h).
#include "trainer/adamw.h"

#include <math.h>

#include "base/util.h"

int adamw_update(float *param, const float *grad, float *m, float *v, int64_t n, float lr, const adamw_params *p,
                 int step) {
    if (step < 1 || n < 0) return TRL_ERR;
    float b1 = p->beta1, b2 = p->beta2, eps = p->eps, wd = p->weight_decay;
    float c1 = (float)(1.0 - pow(b1, step)), c2 = (float)(1.0 - pow(b2, step));  // bias corrections
#pragma omp parallel for schedule(static) if (n > 65536)
    for (int64_t i = 0; i < n; i++) {
        float g = grad[i];
        float mi = b1 * m[i] + (1.0f - b1) * g;
        float vi = b2 * v[i] + (1.0f - b2) * g * g;
        m[i] = mi;
        v[i] = vi;
        float mhat = mi / c1, vhat = vi / c2;
        param[i] -= lr * (mhat / (sqrtf(vhat) + eps) + wd * param[i]);
    }
    return TRL_OK;
}

double grad_global_norm(float *const *grads, const int64_t *sizes, int n_tensors) {
    double ss = 0;
    for (int k = 0; k < n_tensors; k++) {
        const float *g = grads[k];
        int64_t n = sizes[k];
        double s = 0;
#pragma omp parallel for schedule(static) reduction(+ : s) if (n > 65536)
        for (int64_t i = 0; i < n; i++) s += (double)g[i] * g[i];
        ss += s;
    }
    return sqrt(ss);
}

double grad_clip_global_norm(float *const *grads, const int64_t *sizes, int n_tensors, float max_norm) {
    double norm = grad_global_norm(grads, sizes, n_tensors);
    if (norm > max_norm) {
        float coef = (float)(max_norm / (norm + 1e-6));
        for (int k = 0; k < n_tensors; k++) {
            float *g = grads[k];
            int64_t n = sizes[k];
#pragma omp parallel for schedule(static) if (n > 65536)
            for (int64_t i = 0; i < n; i++) g[i] *= coef;
        }
    }
    return norm;
}

float lr_schedule_at(const lr_schedule *s, int step) {
    if (step < 0) step = 0;
    if (step < s->warmup_steps) return s->lr_max * (float)(step + 1) / (float)s->warmup_steps;
    if (s->kind == LR_CONSTANT) return s->lr_max;
    int span = s->total_steps - s->warmup_steps;
    double u = span > 0 ? (double)(step - s->warmup_steps) / span : 1.0;
    if (u > 1) u = 1;
    if (s->kind == LR_LINEAR) return (float)(s->lr_max + (s->lr_min - s->lr_max) * u);
    return (float)(s->lr_min + (s->lr_max - s->lr_min) * 0.5 * (1.0 + cos(M_PI * u)));
}
