// sampler.h: picking the next token from logits: greedy, temperature, top-k, top-p, with a
// seeded generator so the same seed gives the same text.
#ifndef TOOLRL_SAMPLER_H
#define TOOLRL_SAMPLER_H

#include <stdint.h>

typedef struct {
    float temperature;  // 0 = greedy
    int top_k;          // 0 = off
    float top_p;        // 1 = off
    uint64_t seed;
} sampler_params;

typedef struct {
    sampler_params p;
    uint64_t state;       // xoshiro-style state derived from the seed
    int n_vocab;
    int32_t *idx;         // (V) scratch: candidate ids
    float *prob;          // (V) scratch: candidate probabilities
    float *csum;          // (V/256 + 1) scratch: the draw's per-chunk sums
} sampler;

int sampler_init(sampler *s, const sampler_params *p, int n_vocab);
void sampler_free(sampler *s);
// Returns the chosen id. logits (V) are not modified.
int32_t sampler_sample(sampler *s, const float *logits);
// The index of the largest logit (first one on ties).
int32_t sampler_argmax(const float *logits, int n);
// A uniform float in [0, 1) from the sampler's generator.
float sampler_uniform(sampler *s);

#endif
