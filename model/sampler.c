// sampler.c: greedy and stochastic sampling. Order of filters: temperature, top-k, softmax,
// top-p (smallest set of most likely tokens whose mass reaches p), then one uniform draw.
#include "sampler.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "util.h"

static uint64_t splitmix64(uint64_t *x) {
    uint64_t z = (*x += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

float sampler_uniform(sampler *s) { return (float)(splitmix64(&s->state) >> 40) / 16777216.0f; }

int sampler_init(sampler *s, const sampler_params *p, int n_vocab) {
    memset(s, 0, sizeof(*s));
    s->p = *p;
    s->state = p->seed;
    s->n_vocab = n_vocab;
    s->idx = malloc(sizeof(int32_t) * (size_t)n_vocab);
    s->prob = malloc(sizeof(float) * (size_t)n_vocab);
    if (!s->idx || !s->prob) {
        sampler_free(s);
        return TRL_ERR;
    }
    return TRL_OK;
}

void sampler_free(sampler *s) {
    if (!s) return;
    free(s->idx);
    free(s->prob);
    s->idx = NULL;
    s->prob = NULL;
}

int32_t sampler_argmax(const float *logits, int n) {
    int32_t best = 0;
    for (int i = 1; i < n; i++)
        if (logits[i] > logits[best]) best = i;
    return best;
}

// qsort has no context argument: the array being sorted by is passed per thread.
static _Thread_local const float *t_sort_prob;

static int cmp_desc(const void *a, const void *b) {
    float x = t_sort_prob[*(const int32_t *)a], y = t_sort_prob[*(const int32_t *)b];
    if (x != y) return x > y ? -1 : 1;
    return *(const int32_t *)a - *(const int32_t *)b;
}

int32_t sampler_sample(sampler *s, const float *logits) {
    int V = s->n_vocab;
    if (s->p.temperature <= 0 || s->p.top_k == 1) return sampler_argmax(logits, V);
    float inv_t = 1.0f / s->p.temperature;
    // Candidates: all tokens, or the top k found by partial selection.
    int n = V;
    float *pr = s->prob;
    for (int i = 0; i < V; i++) pr[i] = logits[i] * inv_t;
    for (int i = 0; i < V; i++) s->idx[i] = i;
    t_sort_prob = pr;
    if (s->p.top_k > 0 && s->p.top_k < V) {
        // Keep the k largest.
        qsort(s->idx, (size_t)V, sizeof(int32_t), cmp_desc);
        n = s->p.top_k;
    } else if (s->p.top_p < 1.0f) {
        qsort(s->idx, (size_t)V, sizeof(int32_t), cmp_desc);
    }
    float mx = -INFINITY;
    for (int i = 0; i < n; i++) mx = fmaxf(mx, pr[s->idx[i]]);
    double sum = 0;
    for (int i = 0; i < n; i++) sum += (pr[s->idx[i]] = expf(pr[s->idx[i]] - mx));
    if (s->p.top_p < 1.0f && s->p.top_p > 0.0f) {
        // idx is sorted by descending probability here.
        double cum = 0;
        int keep = n;
        for (int i = 0; i < n; i++) {
            cum += pr[s->idx[i]] / sum;
            if (cum >= s->p.top_p) {
                keep = i + 1;
                break;
            }
        }
        n = keep;
        sum = 0;
        for (int i = 0; i < n; i++) sum += pr[s->idx[i]];
    }
    double r = sampler_uniform(s) * sum, acc = 0;
    for (int i = 0; i < n; i++) {
        acc += pr[s->idx[i]];
        if (r < acc) return s->idx[i];
    }
    return s->idx[n - 1];
}
