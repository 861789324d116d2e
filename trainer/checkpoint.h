// checkpoint.h: training checkpoints as Hugging Face model directories, so other tools load
// them and the server serves them with the same loader as any HF model:
//   config.json, generation_config.json      LlamaForCausalLM / Qwen2ForCausalLM, float32
//   model.safetensors                        HF tensor names, HF (NEOX) row order for q/k
//   tokenizer.json, tokenizer_config.json    the base model's tokenizer and chat template
//   optimizer.safetensors                    AdamW moments (exp_avg, exp_avg_sq), flat, in
//                                            the trainer's parameter layout
//   trainer_state.json                       step, tokens, seed, configuration, last metrics
// A checkpoint is written into "<dir>.tmp", every file fsync'd, then the directory is renamed
// to <dir> (replacing an older one of the same name) and its parent fsync'd: a crash leaves
// either the old checkpoint or the new one, never a half-written one.
#ifndef TOOLRL_CHECKPOINT_H
#define TOOLRL_CHECKPOINT_H

#include <stdint.h>

#include "base/util.h"
#include "model/model.h"
#include "trainer/lm.h"

typedef struct {
    int step;                // optimizer steps done
    int64_t trained_tokens;
    uint64_t seed;           // the run's seed (data order and sampling derive from it)
    char *config_json;       // the resolved training configuration, or NULL
    char *metrics_json;      // the last step's metrics, or NULL
} checkpoint_state;

// base: the model the run started from (configuration, tokenizer, chat template); p: the
// parameters (in base's layout); m, v: AdamW moments (may be NULL: no optimizer file).
int checkpoint_save(const char *dir, const model *base, const lm_params *p, const lm_params *m, const lm_params *v,
                    const checkpoint_state *st, trl_err *e);
// Reads a checkpoint back into parameters (and moments, when m and v are not NULL and the
// checkpoint has them) allocated for c, the configuration of the run's base model; st gets
// the state (free with checkpoint_state_free). A missing or inconsistent file is an error
// that names it.
int checkpoint_load(const char *dir, const model_config *c, lm_params *p, lm_params *m, lm_params *v,
                    checkpoint_state *st, trl_err *e);
void checkpoint_state_free(checkpoint_state *st);

#endif
