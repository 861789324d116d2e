// test_sampler.c: greedy picks the maximum; a seed reproduces a sequence; top-k never
// leaves the k best; top-p keeps the smallest nucleus; temperature sharpens and flattens;
// sampled frequencies follow softmax(logits / T).
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <cmocka.h>

#include "sampler.h"

#define V 50

static void fill(float *l) {
    for (int i = 0; i < V; i++) l[i] = sinf((float)i * 1.7f) * 3.0f;
}

static void test_greedy(void **state) {
    (void)state;
    float l[V];
    fill(l);
    int best = 0;
    for (int i = 1; i < V; i++)
        if (l[i] > l[best]) best = i;
    sampler s;
    sampler_params p = {0.0f, 0, 1.0f, 1};
    assert_int_equal(sampler_init(&s, &p, V), 0);
    for (int i = 0; i < 10; i++) assert_int_equal(sampler_sample(&s, l), best);
    sampler_free(&s);
    l[7] = l[best];  // tie: the first index wins
    assert_int_equal(sampler_argmax(l, V), best < 7 ? best : 7);
}

static void test_seed_reproducible(void **state) {
    (void)state;
    float l[V];
    fill(l);
    sampler a, b, c;
    sampler_params p = {1.0f, 0, 1.0f, 1234};
    sampler_init(&a, &p, V);
    sampler_init(&b, &p, V);
    p.seed = 99;
    sampler_init(&c, &p, V);
    int differ = 0;
    for (int i = 0; i < 200; i++) {
        int x = sampler_sample(&a, l), y = sampler_sample(&b, l), z = sampler_sample(&c, l);
        assert_int_equal(x, y);
        differ += x != z;
    }
    assert_true(differ > 0);
    sampler_free(&a);
    sampler_free(&b);
    sampler_free(&c);
}

static void test_top_k(void **state) {
    (void)state;
    float l[V];
    fill(l);
    float sorted[V];
    for (int i = 0; i < V; i++) sorted[i] = l[i];
    for (int i = 0; i < V; i++)
        for (int j = i + 1; j < V; j++)
            if (sorted[j] > sorted[i]) {
                float t = sorted[i];
                sorted[i] = sorted[j];
                sorted[j] = t;
            }
    sampler s;
    sampler_params p = {5.0f, 3, 1.0f, 7};  // hot: without top-k, low tokens would appear
    sampler_init(&s, &p, V);
    for (int i = 0; i < 500; i++) assert_true(l[sampler_sample(&s, l)] >= sorted[2]);
    sampler_free(&s);
}

static void test_top_p(void **state) {
    (void)state;
    float l[V];
    for (int i = 0; i < V; i++) l[i] = -10.0f;
    l[3] = 2.0f;  // p ≈ 0.73
    l[9] = 1.0f;  // p ≈ 0.27
    sampler s;
    sampler_params p = {1.0f, 0, 0.5f, 3};
    sampler_init(&s, &p, V);
    for (int i = 0; i < 200; i++) assert_int_equal(sampler_sample(&s, l), 3);
    sampler_free(&s);
    p.top_p = 0.9f;
    sampler_init(&s, &p, V);
    int seen9 = 0;
    for (int i = 0; i < 400; i++) {
        int t = sampler_sample(&s, l);
        assert_true(t == 3 || t == 9);
        seen9 += t == 9;
    }
    assert_true(seen9 > 40);
    sampler_free(&s);
}

static void test_frequencies_follow_softmax(void **state) {
    (void)state;
    float l[4] = {0.0f, 1.0f, 2.0f, -1.0f};
    float T = 0.7f;
    double z = 0, pr[4];
    for (int i = 0; i < 4; i++) z += exp(l[i] / T);
    for (int i = 0; i < 4; i++) pr[i] = exp(l[i] / T) / z;
    sampler s;
    sampler_params p = {T, 0, 1.0f, 11};
    sampler_init(&s, &p, 4);
    int cnt[4] = {0};
    int N = 40000;
    for (int i = 0; i < N; i++) cnt[sampler_sample(&s, l)]++;
    for (int i = 0; i < 4; i++) {
        double f = (double)cnt[i] / N, sd = sqrt(pr[i] * (1 - pr[i]) / N);
        if (fabs(f - pr[i]) > 5 * sd) fail_msg("token %d: frequency %.4f, softmax %.4f", i, f, pr[i]);
    }
    sampler_free(&s);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_greedy),
        cmocka_unit_test(test_seed_reproducible),
        cmocka_unit_test(test_top_k),
        cmocka_unit_test(test_top_p),
        cmocka_unit_test(test_frequencies_follow_softmax),
    };
    return cmocka_run_group_tests_name("sampler", tests, NULL, NULL);
}
