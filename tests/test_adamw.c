// test_adamw.c: AdamW against hand-computed steps (bias correction, decoupled weight
// decay), gradient-norm clipping, the learning-rate schedules, and two small problems that
// must converge: least squares, and a softmax classifier trained through the training ops
// (linear head + cross-entropy from trainer/ops_train.c).
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "base/util.h"
#include "trainer/adamw.h"
#include "trainer/ops_train.h"

static const adamw_params P = {0.9f, 0.999f, 1e-8f, 0.01f};

// Three steps on one parameter, p0 = 1, lr 0.1, grads 0.5, -1, 0.25. By hand:
//   step 1: m = 0.05, v = 2.5e-4, m̂ = 0.5, v̂ = 0.25, p = 1 - 0.1 (0.5/0.5 + 0.01) = 0.899
//   step 2: m = -0.055, v = 1.24975e-3, m̂ = -0.055/0.19 = -0.28947, v̂ = 1.24975e-3/1.999e-3
//           = 0.62519, p = 0.899 - 0.1 (-0.28947/0.79069 + 0.00899) = 0.934711
//   step 3: m = -0.0245, v = 1.31100e-3, p = 0.947446 (same arithmetic)
static void test_adamw_hand(void **state) {
    (void)state;
    float p = 1, m = 0, v = 0, g[3] = {0.5f, -1.0f, 0.25f};
    double want_p[3] = {0.899, 0.9347113542, 0.9474457090}, want_m[3] = {0.05, -0.055, -0.0245},
           want_v[3] = {2.5e-4, 1.24975e-3, 1.31100025e-3};
    for (int s = 0; s < 3; s++) {
        assert_int_equal(adamw_update(&p, &g[s], &m, &v, 1, 0.1f, &P, s + 1), TRL_OK);
        assert_float_equal(p, want_p[s], 2e-6);
        assert_float_equal(m, want_m[s], 1e-7);
        assert_float_equal(v, want_v[s], 1e-7);  // 1 - 0.999f carries 5e-5 relative
    }
    // invalid step: refused, nothing changed
    assert_int_equal(adamw_update(&p, g, &m, &v, 1, 0.1f, &P, 0), TRL_ERR);
    assert_float_equal(p, want_p[2], 2e-6);
}

// With a zero gradient only the decoupled decay acts: p ← p (1 - lr·wd), moments stay 0.
// With weight_decay 0 the first step moves every parameter by exactly lr·sign(g) (m̂/√v̂ = ±1).
static void test_adamw_decay_and_sign(void **state) {
    (void)state;
    float p[4] = {1, -2, 3, 0}, g[4] = {0}, m[4] = {0}, v[4] = {0};
    adamw_params wd = {0.9f, 0.95f, 1e-8f, 0.1f};
    adamw_update(p, g, m, v, 4, 0.5f, &wd, 1);
    assert_float_equal(p[0], 0.95, 1e-7);
    assert_float_equal(p[1], -1.9, 1e-6);
    assert_float_equal(p[2], 2.85, 1e-6);
    assert_float_equal(p[3], 0, 0);
    assert_float_equal(m[0], 0, 0);
    float q[4] = {1, 1, 1, 1}, h[4] = {3, -0.001f, 1e3f, -7};
    adamw_params nd = {0.9f, 0.999f, 1e-8f, 0};
    memset(m, 0, sizeof(m)), memset(v, 0, sizeof(v));
    adamw_update(q, h, m, v, 4, 0.01f, &nd, 1);
    assert_float_equal(q[0], 0.99, 1e-6);
    assert_float_equal(q[1], 1.01, 1e-4);  // eps/|g| = 1e-5 relative
    assert_float_equal(q[2], 0.99, 1e-6);
    assert_float_equal(q[3], 1.01, 1e-6);
}

static void test_clip(void **state) {
    (void)state;
    float a[2] = {3, 0}, b[1] = {4};
    float *gs[2] = {a, b};
    int64_t ns[2] = {2, 1};
    assert_float_equal(grad_global_norm(gs, ns, 2), 5.0, 1e-12);
    double n = grad_clip_global_norm(gs, ns, 2, 1.0f);
    assert_float_equal(n, 5.0, 1e-12);
    assert_float_equal(a[0], 0.6, 1e-6);
    assert_float_equal(b[0], 0.8, 1e-6);
    assert_float_equal(grad_global_norm(gs, ns, 2), 1.0, 1e-6);
    // below the limit: untouched
    n = grad_clip_global_norm(gs, ns, 2, 10.0f);
    assert_float_equal(n, 1.0, 1e-6);
    assert_float_equal(a[0], 0.6, 1e-6);
    assert_float_equal(grad_global_norm(gs, ns, 0), 0.0, 0);
}

static void test_schedule(void **state) {
    (void)state;
    lr_schedule c = {LR_CONSTANT, 1e-3f, 0, 10, 100};
    assert_float_equal(lr_schedule_at(&c, 0), 1e-4, 1e-9);
    assert_float_equal(lr_schedule_at(&c, 4), 5e-4, 1e-9);
    assert_float_equal(lr_schedule_at(&c, 9), 1e-3, 1e-9);
    assert_float_equal(lr_schedule_at(&c, 10), 1e-3, 1e-9);
    assert_float_equal(lr_schedule_at(&c, 5000), 1e-3, 1e-9);
    lr_schedule l = {LR_LINEAR, 1.0f, 0.1f, 0, 100};
    assert_float_equal(lr_schedule_at(&l, 0), 1.0, 1e-7);
    assert_float_equal(lr_schedule_at(&l, 50), 0.55, 1e-6);
    assert_float_equal(lr_schedule_at(&l, 100), 0.1, 1e-7);
    assert_float_equal(lr_schedule_at(&l, 200), 0.1, 1e-7);
    lr_schedule k = {LR_COSINE, 1.0f, 0.0f, 10, 110};
    assert_float_equal(lr_schedule_at(&k, 0), 0.1, 1e-7);
    assert_float_equal(lr_schedule_at(&k, 10), 1.0, 1e-7);
    assert_float_equal(lr_schedule_at(&k, 35), 0.5 * (1 + cos(M_PI / 4)), 1e-6);
    assert_float_equal(lr_schedule_at(&k, 60), 0.5, 1e-6);
    assert_float_equal(lr_schedule_at(&k, 110), 0.0, 1e-7);
    assert_float_equal(lr_schedule_at(&k, 1000), 0.0, 1e-7);
    // warmup only, no decay span: stays at lr_min after warmup
    lr_schedule z = {LR_COSINE, 1.0f, 0.2f, 5, 5};
    assert_float_equal(lr_schedule_at(&z, 5), 0.2, 1e-7);
}

static uint64_t rng = 12345;
static float frand(void) {
    rng ^= rng << 13, rng ^= rng >> 7, rng ^= rng << 17;
    return (float)((rng >> 11) * (1.0 / 9007199254740992.0)) * 2.0f - 1.0f;
}

// Least squares: min ||A w - b||², b = A w*, from w = 0; AdamW with cosine decay must find w*.
static void test_converge_least_squares(void **state) {
    (void)state;
    enum { M = 16, N = 8, STEPS = 1500 };
    float A[M * N], ws[N], b[M], w[N] = {0}, g[N], m[N] = {0}, v[N] = {0};
    for (int i = 0; i < M * N; i++) A[i] = frand();
    for (int j = 0; j < N; j++) ws[j] = 2 * frand();
    for (int i = 0; i < M; i++) {
        b[i] = 0;
        for (int j = 0; j < N; j++) b[i] += A[i * N + j] * ws[j];
    }
    adamw_params p = {0.9f, 0.999f, 1e-8f, 0};
    lr_schedule s = {LR_COSINE, 0.05f, 1e-4f, 50, STEPS};
    for (int st = 0; st < STEPS; st++) {
        memset(g, 0, sizeof(g));
        for (int i = 0; i < M; i++) {
            float r = -b[i];
            for (int j = 0; j < N; j++) r += A[i * N + j] * w[j];
            for (int j = 0; j < N; j++) g[j] += 2 * r * A[i * N + j] / M;
        }
        float *gs[1] = {g};
        int64_t ns[1] = {N};
        grad_clip_global_norm(gs, ns, 1, 10.0f);
        assert_int_equal(adamw_update(w, g, m, v, N, lr_schedule_at(&s, st), &p, st + 1), TRL_OK);
    }
    for (int j = 0; j < N; j++) assert_float_equal(w[j], ws[j], 1e-3);
}

// A softmax classifier over V classes through the training ops: logits = x W^T, loss the
// mean cross-entropy; each input vector's class is a fixed random label. 200 steps must take
// the loss from log V to near 0.
static void test_converge_classifier(void **state) {
    (void)state;
    enum { T = 12, C = 16, V = 10, STEPS = 200 };
    static float x[T * C], w[V * C], dw[V * C], m[V * C], v[V * C], logits[T * V], lse[T], logp[T], dlogp[T], wt[T];
    int32_t tg[T];
    for (int i = 0; i < T * C; i++) x[i] = frand();
    for (int t = 0; t < T; t++) tg[t] = (int32_t)(t * 7 % V), wt[t] = 1.0f / T;
    memset(w, 0, sizeof(w));
    adamw_params p = {0.9f, 0.999f, 1e-8f, 0.0f};
    float first = 0, loss = 0;
    for (int st = 0; st < STEPS; st++) {
        loss = crossentropy_forward(logits, lse, logp, x, w, tg, wt, NULL, T, C, V);
        if (st == 0) first = loss;
        crossentropy_dlogp(dlogp, wt, NULL, T);
        memset(dw, 0, sizeof(dw));
        logprob_backward(NULL, dw, logits, lse, x, w, tg, dlogp, T, C, V);
        adamw_update(w, dw, m, v, V * C, 0.05f, &p, st + 1);
    }
    assert_float_equal(first, logf((float)V), 1e-5);
    assert_true(loss < 0.01f);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_adamw_hand),
        cmocka_unit_test(test_adamw_decay_and_sign),
        cmocka_unit_test(test_clip),
        cmocka_unit_test(test_schedule),
        cmocka_unit_test(test_converge_least_squares),
        cmocka_unit_test(test_converge_classifier),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
