// train.h: a training run, step by step: supervised fine-tuning (cross-entropy on the reply
// tokens) or GRPO with the Tool-N1 reward, over a task_set, on the fp32 trainable model, with
// AdamW. One loop, trainer_run, steps, evaluates and calls the caller's hooks for metrics and
// checkpoints; its two callers (the worker, `toolrl train`) only say what a step's metrics and a
// checkpoint mean to them. Nothing here touches the store or prints.
//
// One GRPO step (tool-n1.md §4, scaled down):
//   1. rollout: batch_size prompts × group_size samples at `temperature`, decoded together by
//      the inference engine reading the current fp32 weights (policy.h);
//   2. reward of every sample (eval/reward.h, the job's variant), group-normalised advantages;
//   3. log-probs under the frozen reference (when kl_coef > 0) and, when there is more than one
//      mini-batch, under the rollout policy ("old"); with one mini-batch old == current and the
//      extra forward is skipped;
//   4. mini_batches AdamW updates over the shuffled samples, each minimising the token-mean of
//      the clipped surrogate + β·k3 over the mini-batch's response tokens.
// Samples of a zero-variance group have A = 0 (only the KL acts on them), as in verl.
#ifndef TOOLRL_TRAIN_H
#define TOOLRL_TRAIN_H

#include <cjson/cJSON.h>
#include <stdint.h>

#include "eval/reward.h"
#include "model/model.h"
#include "trainer/adamw.h"
#include "trainer/grpo.h"
#include "trainer/hyper.h"
#include "trainer/lm.h"
#include "trainer/policy.h"
#include "trainer/rollout.h"
#include "trainer/task.h"

typedef struct {
    train_config cfg;
    const model *base;
    model_config mc;
    lm_params p;         // the policy (fp32 master weights)
    lm_params g;         // gradients
    lm_params m, v;      // AdamW moments
    lm_params ref;       // frozen reference (GRPO with kl_coef > 0)
    lm_acts acts;
    model view;          // engine view of p
    rollout ro;
    const task_set *tasks;
    const volatile int *abort;  // optional: nonzero makes the current step stop early (TRL_ABORTED)
    int *train_idx, n_train;  // tasks trained on
    int *held_idx, n_held;    // tasks held back for evaluation
    int *order;               // (n_train) this epoch's order
    int order_epoch;
    int step;                 // steps done
    int total_steps;
    int steps_per_epoch;
    int64_t trained_tokens;
    // per-step scratch
    const train_ops *be;                        // where p, g, m, v, ref and acts live
    float *logp, *old_logp, *ref_logp, *dlogp;  // (max_seq_tokens)
    float *head;                                // (activation tokens) a forward's log-probs or entropies, on the host
    int32_t *seq_tok;                           // (max_seq_tokens + 1)
    int32_t *seq_tgt;                           // (max_seq_tokens) a packed forward's targets
    int *pack_s, *pack_len;                     // (group_size) a pack's samples, their lengths
    double *rewards;
    float *adv;
    int *perm;
} trainer;

// Loads the base model's weights into fp32 parameters on backend be (NULL: train_ops_cpu),
// splits held-back examples off the tasks (deterministically from the seed), allocates
// everything a step needs. tasks and base must outlive the trainer.
int trainer_init(trainer *t, const train_config *cfg, const model *base, const task_set *tasks, const train_ops *be,
                 trl_err *e);
void trainer_free(trainer *t);
int trainer_done(const trainer *t);
// Starts from other weights of the same model (a warm start, a parameter snapshot, on any
// backend): copies p into the policy, and into the frozen reference when there is one. TRL_ERR
// if the sizes differ.
int trainer_set_params(trainer *t, const lm_params *p, trl_err *e);
// Moves the policy's weights into *out (the caller frees them with lm_params_free); the trainer
// is then good only for trainer_free.
void trainer_take_params(trainer *t, lm_params *out);


// One step; metrics (a JSON object) receives the step's numbers (docs/training.md lists them).
int trainer_step(trainer *t, cJSON *metrics, trl_err *e);
// Greedy decoding of the held-back examples: eval_reward_mean, eval_exact_match,
// eval_format_valid, eval_n into metrics.
int trainer_eval(trainer *t, cJSON *metrics, trl_err *e);

// The one training loop, driven by `toolrl train` and by the worker alike: until trainer_done,
// one step, the held-out evaluation every eval_interval steps (and after the last), then
// on_step with the step's metrics, then on_checkpoint every checkpoint_interval steps and after
// the last. A hook's nonzero return stops the run with that code; so does the abort flag
// (TRL_ABORTED). Either hook may be NULL; metrics are freed after the hooks return.
typedef struct {
    void *ctx;
    int (*on_step)(void *ctx, trainer *t, cJSON *metrics, trl_err *e);
    int (*on_checkpoint)(void *ctx, trainer *t, const cJSON *metrics, trl_err *e);
} trainer_hooks;
int trainer_run(trainer *t, const trainer_hooks *h, trl_err *e);

#endif
