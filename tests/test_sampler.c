// test_sampler.c: greedy picks the maximum; a seed reproduces a sequence; top-k never
// leaves the k best; top-p keeps the smallest nucleus; temperature sharpens and flattens;
// sampled frequencies follow softmax(logits / T); on a model-sized vocabulary the fast paths
// (heap top-k, cutoff top-p, chunked draw) agree with a brute-force sort of every token.
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <cmocka.h>

#include "model/sampler.h"

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

// A model-sized vocabulary (not a multiple of the 8 lanes or the 256-id chunks) with a few
// likely tokens, ties among them, and a long flat tail.
#define BV 49157

static void fill_big(float *l, unsigned seed) {
    srand(seed);
    for (int i = 0; i < BV; i++) l[i] = (float)(rand() % 1000) / 100.0f - 12.0f;
    l[40000] = 8.0f, l[123] = 8.0f, l[49156] = 7.5f, l[7] = 7.0f, l[31000] = 6.0f;
}

// ord: all ids in candidate order (value descending, then id), by an independent sort.
static void rank_desc(const float *l, int n, int32_t *ord) {
    for (int i = 0; i < n; i++) ord[i] = i;
    // shell sort with the total order (value descending, then id)
    for (int gap = n / 2; gap > 0; gap /= 2)
        for (int i = gap; i < n; i++) {
            int32_t t = ord[i];
            int j = i;
            while (j >= gap && (l[ord[j - gap]] < l[t] || (l[ord[j - gap]] == l[t] && ord[j - gap] > t))) {
                ord[j] = ord[j - gap];
                j -= gap;
            }
            ord[j] = t;
        }
}

static void test_top_k_large_vocab(void **state) {
    (void)state;
    float *l = malloc(sizeof(float) * BV);
    int32_t *ord = malloc(sizeof(int32_t) * BV);
    char *in = calloc(BV, 1);
    fill_big(l, 5);
    rank_desc(l, BV, ord);
    int k = 40;
    for (int i = 0; i < k; i++) in[ord[i]] = 1;
    sampler s;
    sampler_params p = {50.0f, k, 1.0f, 9};  // hot: every one of the k is likely to appear
    assert_int_equal(sampler_init(&s, &p, BV), 0);
    int seen[40] = {0}, distinct = 0;
    for (int it = 0; it < 4000; it++) {
        int t = sampler_sample(&s, l);
        if (!in[t]) fail_msg("token %d (logit %.2f) is not among the top %d", t, l[t], k);
        for (int i = 0; i < k; i++)
            if (ord[i] == t && !seen[i]++) distinct++;
    }
    assert_int_equal(distinct, k);
    sampler_free(&s);
    free(l), free(ord), free(in);
}

static void test_top_p_large_vocab(void **state) {
    (void)state;
    float *l = malloc(sizeof(float) * BV);
    int32_t *ord = malloc(sizeof(int32_t) * BV);
    fill_big(l, 6);
    rank_desc(l, BV, ord);
    float T = 0.7f, tp = 0.9f;
    double z = 0, cum = 0;
    double *pr = malloc(sizeof(double) * BV);
    for (int i = 0; i < BV; i++) z += exp((double)(l[ord[i]] - l[ord[0]]) / T);
    int nuc = 0;
    while (cum < tp) cum += exp((double)(l[ord[nuc]] - l[ord[0]]) / T) / z, nuc++;
    for (int i = 0; i < BV; i++) pr[i] = 0;
    double zn = 0;
    for (int i = 0; i < nuc; i++) zn += exp((double)(l[ord[i]] - l[ord[0]]) / T);
    for (int i = 0; i < nuc; i++) pr[ord[i]] = exp((double)(l[ord[i]] - l[ord[0]]) / T) / zn;
    assert_true(nuc >= 3 && nuc < 50);  // the fixture: a small nucleus, the tail outside
    sampler s;
    sampler_params p = {T, 0, tp, 13};
    assert_int_equal(sampler_init(&s, &p, BV), 0);
    int N = 8000;
    int *cnt = calloc(BV, sizeof(int));
    for (int it = 0; it < N; it++) cnt[sampler_sample(&s, l)]++;
    for (int i = 0; i < BV; i++) {
        if (pr[i] == 0 && cnt[i]) fail_msg("token %d outside the %d-token nucleus drawn %d times", i, nuc, cnt[i]);
        double f = (double)cnt[i] / N, sd = sqrt(pr[i] * (1 - pr[i]) / N);
        if (pr[i] > 0 && fabs(f - pr[i]) > 5 * sd + 1e-9)
            fail_msg("token %d: frequency %.4f, renormalized nucleus %.4f", i, f, pr[i]);
    }
    sampler_free(&s);
    p.top_p = 0.0f;  // the smallest nucleus: the single best token (the lower id of a tie)
    assert_int_equal(sampler_init(&s, &p, BV), 0);
    for (int it = 0; it < 50; it++) assert_int_equal(sampler_sample(&s, l), ord[0]);
    assert_int_equal(ord[0], 123);
    sampler_free(&s);
    free(l), free(ord), free(pr), free(cnt);
}

// No filters on a large vocabulary: the chunked draw follows softmax(l / T), tail included.
static void test_frequencies_large_vocab(void **state) {
    (void)state;
    float *l = malloc(sizeof(float) * BV);
    fill_big(l, 7);
    float T = 1.3f;
    double z = 0;
    for (int i = 0; i < BV; i++) z += exp((double)l[i] / T);
    sampler s;
    sampler_params p = {T, 0, 1.0f, 21};
    assert_int_equal(sampler_init(&s, &p, BV), 0);
    int N = 10000, head[5] = {40000, 123, 49156, 7, 31000}, cnt[5] = {0}, tail = 0;
    for (int it = 0; it < N; it++) {
        int t = sampler_sample(&s, l), h = 0;
        while (h < 5 && head[h] != t) h++;
        if (h < 5) cnt[h]++;
        else tail++;
    }
    double ptail = 1;
    for (int h = 0; h < 5; h++) {
        double q = exp((double)l[head[h]] / T) / z, f = (double)cnt[h] / N, sd = sqrt(q * (1 - q) / N);
        ptail -= q;
        if (fabs(f - q) > 5 * sd) fail_msg("token %d: frequency %.4f, softmax %.4f", head[h], f, q);
    }
    double f = (double)tail / N, sd = sqrt(ptail * (1 - ptail) / N);
    if (fabs(f - ptail) > 5 * sd) fail_msg("tail: frequency %.4f, softmax %.4f", f, ptail);
    sampler_free(&s);
    free(l);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_greedy),
        cmocka_unit_test(test_seed_reproducible),
        cmocka_unit_test(test_top_k),
        cmocka_unit_test(test_top_p),
        cmocka_unit_test(test_frequencies_follow_softmax),
        cmocka_unit_test(test_top_k_large_vocab),
        cmocka_unit_test(test_top_p_large_vocab),
        cmocka_unit_test(test_frequencies_large_vocab),
    };
    return cmocka_run_group_tests_name("sampler", tests, NULL, NULL);
}
