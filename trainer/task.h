// task.h: training examples as the trainer sees them: the unified JSONL file (data/example.h)
// read once, each example rendered with the Tool-N1 prompt (protocol/toolprompt.h, the module the
// server and the evaluator use too) and tokenized, its ground truth kept as the reward's JSON
// text, and, for supervised training, the target reply tokenized after the prompt.
//
// The SFT target is `<think>R</think>\n<tool_call>[calls]</tool_call>` + end-of-turn, with the
// calls as Python's json.dumps writes them (the prompt's own example style) and R a fixed,
// short sentence naming the functions: the data has no reasoning text, and the warm start only
// has to teach the output format, the names and the argument values.
#ifndef TOOLRL_TASK_H
#define TOOLRL_TASK_H

#include <stdint.h>

#include "base/util.h"
#include "model/model.h"

typedef struct {
    char *id;
    int32_t *prompt;   // (n_prompt) token ids of the rendered prompt
    int n_prompt;
    int32_t *target;   // (n_target) SFT reply tokens, end-of-turn included
    int n_target;
    char *gold;        // ground-truth calls as JSON text (reward_score_text)
} task;

typedef struct {
    task *v;
    int n;
    int n_lines;         // lines read
    int n_too_long;      // dropped: prompt + target longer than max_tokens
    int n_invalid;       // dropped: line failed validation (the first error is in first_error)
    char first_error[256];
} task_set;

// Reads a unified-format JSONL file. Examples whose prompt + SFT target exceed max_tokens
// are dropped (counted). A file with no usable example is an error.
int task_set_load(task_set *ts, const char *path, const model *m, int max_tokens, trl_err *e);
void task_set_free(task_set *ts);

// The SFT reply text for a ground-truth call list (JSON array of {name, arguments}).
// malloc'd, NULL on out of memory.
char *task_sft_reply(const char *gold_json);

// A deterministic permutation of 0..n-1 for epoch `epoch` of a run seeded with seed
// (Fisher–Yates on splitmix64): the same (seed, epoch) always gives the same order, which
// is how a resumed run replays its data order.
void task_order(int *order, int n, uint64_t seed, int epoch);

#endif
