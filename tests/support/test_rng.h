// test_rng.h (test support, header only): the deterministic random numbers of the kernel tests:
// xorshift32 on one state per test program, seeded in main (test_rng_seed) so a test's data is
// the same on every run; uniform in [-1, 1) and a rough normal.
#ifndef TOOLRL_TEST_RNG_H
#define TOOLRL_TEST_RNG_H

#include <stdint.h>

static uint32_t test_rng_state = 1;

static inline void test_rng_seed(uint32_t seed) { test_rng_state = seed ? seed : 1; }

static inline uint32_t rng_u32(void) {
    test_rng_state ^= test_rng_state << 13;
    test_rng_state ^= test_rng_state >> 17;
    test_rng_state ^= test_rng_state << 5;
    return test_rng_state;
}

static inline float rng_uniform(void) {  // [-1, 1)
    return (float)((double)rng_u32() / 2147483648.0 - 1.0);
}

static inline float rng_normal(void) {  // roughly normal: sum of uniforms
    return (rng_uniform() + rng_uniform() + rng_uniform()) * 0.577f;
}

#endif
