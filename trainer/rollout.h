// rollout.h: GRPO's sampling: every prompt of a batch is sampled n times, all sequences
// decoding together through the one batched generator (model/generate.h). A completion ends
// at end-of-turn, at max_new tokens, or once it has closed a `</tool_call>` block (the reward
// reads that block; what a model writes after it is never scored). Each prompt is prefilled
// once: its other samples wait a step and copy its cache.
#ifndef TOOLRL_ROLLOUT_H
#define TOOLRL_ROLLOUT_H

#include <stdint.h>

#include "base/util.h"
#include "model/generate.h"
#include "model/model.h"

typedef struct {
    int32_t *tok;  // (n_tok) generated ids, the end-of-turn token included when it ended there
    int n_tok;
    char *text;    // decoded completion (end-of-turn not included), NUL-terminated
    int finished;  // 1: ended by end-of-turn or </tool_call>; 0: cut at max_new
} rollout_seq;

typedef struct {
    generator gen;
    int max_seqs, n_ctx, max_new;
    rollout_seq *out;  // (max_seqs) results of the last rollout_run
    const volatile int *abort;  // optional: nonzero stops rollout_run (it returns TRL_ERR)
} rollout;

// An engine on backend be (NULL: ops_cpu) for up to max_seqs sequences of n_ctx tokens over
// model m (a policy view or a loaded model; it must outlive the rollout). Weights are read at
// every step, so updates to a policy view's parameters are seen by the next rollout_run.
int rollout_init(rollout *r, const model *m, const ops *be, int max_seqs, int n_ctx, int max_new, trl_err *e);
void rollout_free(rollout *r);

// Samples n_samples completions for each of n_prompts prompts: r->out[i * n_samples + j] is
// sample j of prompt i (n_prompts * n_samples ≤ max_seqs). temperature 0 is greedy; sample k
// uses the generator seeded with seed + k, so a run is reproducible. Prompts that do not fit
// n_ctx - 1 are an error.
int rollout_run(rollout *r, const int32_t *const *prompts, const int *n_prompt, int n_prompts, int n_samples,
                float temperature, uint64_t seed, trl_err *e);

#endif
