// hyper.h: a training run's hyperparameters (train_config): the defaults of each method,
// OpenAI-style JSON read over them, and the resolved configuration written back as JSON. The
// server validates and lists a job's hyperparameters with this alone; the trainer (train.h)
// runs with the result.
#ifndef TOOLRL_HYPER_H
#define TOOLRL_HYPER_H

#include <cjson/cJSON.h>
#include <stdint.h>

#include "base/util.h"
#include "eval/reward.h"
#include "trainer/adamw.h"

typedef enum { TRAIN_SFT = 0, TRAIN_GRPO = 1 } train_method;

typedef struct {
    train_method method;
    reward_kind reward;     // GRPO grader
    int batch_size;         // prompts per step (GRPO) / examples per step (SFT)
    int group_size;         // samples per prompt (GRPO)
    int mini_batches;       // optimizer updates per rollout batch (GRPO)
    float lr;
    lr_kind schedule;
    int warmup_steps;
    float lr_min;
    float weight_decay;
    float grad_clip;        // global norm; 0 = off
    float kl_coef;          // β
    float clip_eps;         // ε
    float temperature;      // rollout sampling temperature
    int norm_adv_std;       // 1 GRPO (verl), 0 Dr. GRPO
    int max_new_tokens;     // response length limit
    int max_seq_tokens;     // prompt + response limit (longer examples are dropped at load)
    int n_epochs;
    int max_steps;          // > 0 overrides n_epochs
    int eval_interval;      // steps between held-out evaluations (0 = none)
    int eval_examples;      // held-back examples (taken out of the training file)
    int checkpoint_interval;
    uint64_t seed;
} train_config;

// The defaults for a method: the paper's settings (lr 1e-6, ε 0.2, β 1e-3, T 0.7, n 5, four
// mini-batches per step, AdamW (0.9, 0.999) wd 0.01, clip 1.0) scaled for a 2-core CPU and a
// 135M model (fewer prompts per step, shorter responses, a higher learning rate).
void train_config_defaults(train_config *c, train_method method);
// Reads OpenAI-style hyperparameters ({"batch_size": 4 | "auto", "learning_rate": …, …}, key
// names in docs/api.md) over the defaults. Unknown keys and wrong types are errors naming the
// key. method is "supervised" or "reinforcement"; grader may be NULL (binary).
int train_config_from_json(train_config *c, const char *method, const cJSON *hyper, const char *grader,
                           trl_err *e);
// The resolved configuration as JSON (for events and checkpoints). Caller frees.
cJSON *train_config_to_json(const train_config *c);

#endif
