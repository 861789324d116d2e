// runner.h: one evaluation run of a model over BFCL, API-Bank level-1 or ACEBench, shared by
// `toolrl eval` (cli/eval.c) and evaluation jobs run by workers (trainer/worker.c). The model
// sees the same Tool-N1 prompt (protocol/toolprompt.c) and its replies go through the same parser
// (protocol/toolcall_parse.c) as the server's and the trainer's; every reply is scored by the
// benchmark's checker. Generation is batched: up to `batch` sequences decode together, and a
// finished sequence's slot is refilled with the next example at once. Greedy decoding.
#ifndef TOOLRL_EVAL_RUNNER_H
#define TOOLRL_EVAL_RUNNER_H

#include <cjson/cJSON.h>

#include "base/util.h"
#include "eval/acebench.h"
#include "eval/bfcl_checker.h"
#include "eval/bfcl_data.h"
#include "model/model.h"
#include "model/ops.h"
#include "store/store.h"

#define EVAL_MAX_CATEGORIES 64

typedef struct {
    const char *suite;       // "bfcl", "apibank" or "acebench"
    const char *categories;  // BFCL, ACEBench: comma-separated categories; NULL: all of the shared split
    int limit;               // examples per category (0: all); ACEBench multi-turn: dialogues
    int batch, max_new, n_ctx;  // 0: 8, 256, 4096
    const char *shared_dir;  // the shared data folder; NULL: $TOOLRL_SHARED, else ../shared
    volatile int *abort;     // may be NULL; when it becomes nonzero the run stops (TRL_ABORTED)
    void (*progress)(void *ctx, int done, int total);  // may be NULL; called as examples finish
    void *ctx;
    // May be NULL. A JSONL file that records every finished example as it finishes; a run
    // given an existing journal takes the examples already in it as done and generates only
    // the rest, so a long evaluation that is stopped goes on where it stopped. The first line
    // records suite, max_new, n_ctx and journal_key (e.g. the model path); a journal written
    // under other settings is refused.
    const char *journal;
    const char *journal_key;
    // The prompt style (toolprompt.h): TOOLPROMPT_TOOLN1 (0, the default) asks for one
    // <tool_call>[…]</tool_call> list and a reply ends at its closing tag; TOOLPROMPT_HERMES is
    // Qwen2.5's own tool template, read back as one call per block, the reply ending at <|im_end|>.
    int prompt_style;
    const ops *be;  // the backend the model runs on (model/device.h); NULL: ops_cpu
} eval_opts;

typedef struct eval_items eval_items;

typedef struct {
    char suite[16];
    int is_bfcl;
    bfcl_category_result res[EVAL_MAX_CATEGORIES];  // per category: correct, total
    size_t nres;
    bfcl_summary sum;  // BFCL: Non-live, Live, Overall (negative: not measured)
    eval_items *items;  // every example with its prompt, output and verdict
    bfcl_dataset *dss;
    int n_ds;
    cJSON *keep[2];
    int is_acebench;
    acebench_file *ace_files;  // ACEBench: the files loaded
    int n_ace;
    acebench_summary ace;      // ACEBench: per-file results (multi-turn: dialogues) and the means
    // This run's generation (examples taken from a journal not counted): prompt tokens, those
    // of them reused from the prompt cache instead of computed, reply tokens.
    long prompt_tokens, prompt_tokens_cached, completion_tokens;
} eval_run;

// Loads the examples, generates, scores and tallies. TRL_OK, TRL_ERR (e says why) or
// TRL_ABORTED. Free r with eval_run_free in every case.
int eval_run_all(eval_run *r, const model *m, const eval_opts *o, trl_err *e);
// The JSON report: every prompt, raw output and verdict, and the summary.
int eval_run_report(const eval_run *r, const char *path, const char *model_label, trl_err *e);
int eval_run_count(const eval_run *r);
// 1 when category is one of the BFCL categories of the shared split.
int eval_bfcl_category_known(const char *category);
// Records every category's score and the summary lines (BFCL: non_live, live, overall; ACEBench:
// normal, special, tooln1, ... as acebench_summary_scores gives them) in the job store's
// eval_results under model_id (job_id: the evaluation run, or NULL).
int eval_run_store(const eval_run *r, store *s, const char *model_id, const char *report, const char *job_id,
                   trl_err *e);
void eval_run_free(eval_run *r);

#endif
