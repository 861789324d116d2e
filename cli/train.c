// train.c: `toolrl train`: one training run from the command line, without the job store:
// SFT or GRPO on a unified-format JSONL file, metrics as JSON lines, held-out evaluation and
// checkpoints at the configured intervals. The worker (`toolrl worker`) runs the same
// trainer for jobs submitted over REST.
#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "model/model.h"
#include "trainer/checkpoint.h"
#include "trainer/task.h"
#include "trainer/train.h"

static void emit(FILE *f, cJSON *o) {
    char *s = cJSON_PrintUnformatted(o);
    if (s) {
        fprintf(f, "%s\n", s);
        fflush(f);
    }
    free(s);
}

// Writes the fp32 parameters as raw little-endian floats (the flat lm_params buffer) so a run
// can be turned into a checkpoint afterwards (`toolrl train` with --save-raw); atomic rename.
static int save_raw(const char *path, const lm_params *p) {
    char tmp[1100];
    snprintf(tmp, sizeof(tmp), "%s.tmp", path);
    FILE *f = fopen(tmp, "wb");
    if (!f) return -1;
    size_t w = fwrite(p->mem, sizeof(float), p->n, f);
    if (fclose(f) || w != p->n) return -1;
    return rename(tmp, path);
}

// Reads what save_raw wrote into p (allocated for the model); the size must match exactly.
static int load_raw(const char *path, lm_params *p) {
    FILE *f = fopen(path, "rb");
    if (!f) return -1;
    size_t r = fread(p->mem, sizeof(float), p->n, f);
    int extra = fgetc(f) != EOF;
    fclose(f);
    return r == p->n && !extra ? 0 : -1;
}

// What a phase writes: the metrics lines, and at checkpoint intervals (checkpoint_interval > 0)
// the raw parameters and the Hugging Face checkpoint when asked for.
typedef struct {
    FILE *mf;
    const model *m;
    const char *raw_path, *save_dir;
} phase_out;

static int phase_step(void *ctx, trainer *t, cJSON *metrics, trl_err *e) {
    (void)t, (void)e;
    emit(((phase_out *)ctx)->mf, metrics);
    return TRL_OK;
}

static int phase_checkpoint(void *ctx, trainer *t, const cJSON *metrics, trl_err *e) {
    (void)metrics;
    phase_out *o = ctx;
    if (t->cfg.checkpoint_interval <= 0) return TRL_OK;
    if (o->raw_path && save_raw(o->raw_path, &t->p)) fprintf(stderr, "toolrl train: cannot write %s\n", o->raw_path);
    if (o->save_dir) {
        checkpoint_state st = {t->step, t->trained_tokens, t->cfg.seed, NULL, NULL};
        if (checkpoint_save(o->save_dir, o->m, &t->p, &t->m, &t->v, &st, e)) fprintf(stderr, "toolrl train: %s\n", e->msg);
    }
    return TRL_OK;
}

// One phase (SFT or GRPO) of a run: init from `init` when given, returns the final weights in
// *keep (the caller frees) when keep is not NULL.
static int run_phase(const train_config *cfg, const model *m, const task_set *ts, const lm_params *init,
                     lm_params *keep, FILE *mf, int eval_first, const char *raw_path, const char *save_dir) {
    trl_err e = {{0}};
    trainer t;
    if (trainer_init(&t, cfg, m, ts, NULL, &e)) {
        fprintf(stderr, "toolrl train: %s\n", e.msg);
        return 1;
    }
    if (init && trainer_set_params(&t, init, &e)) {
        fprintf(stderr, "toolrl train: %s\n", e.msg);
        trainer_free(&t);
        return 1;
    }
    cJSON *c = train_config_to_json(cfg);
    cJSON_AddNumberToObject(c, "total_steps", t.total_steps);
    cJSON_AddNumberToObject(c, "train_examples", t.n_train);
    cJSON_AddNumberToObject(c, "held_out_examples", t.n_held);
    fprintf(stderr, "toolrl train: %s, %d steps, %d training / %d held-out examples\n",
            cfg->method == TRAIN_GRPO ? "GRPO" : "SFT", t.total_steps, t.n_train, t.n_held);
    emit(mf, c);
    cJSON_Delete(c);
    int rc = 0;
    if (eval_first && t.n_held) {
        cJSON *mx = cJSON_CreateObject();
        cJSON_AddNumberToObject(mx, "step", 0);
        if (trainer_eval(&t, mx, &e)) rc = 1;
        else emit(mf, mx);
        cJSON_Delete(mx);
    }
    phase_out out = {.mf = mf, .m = m, .raw_path = raw_path, .save_dir = save_dir};
    trainer_hooks hooks = {.ctx = &out, .on_step = phase_step, .on_checkpoint = phase_checkpoint};
    if (!rc && trainer_run(&t, &hooks, &e)) rc = 1;
    if (rc) fprintf(stderr, "toolrl train: %s\n", e.msg);
    if (!rc && keep) trainer_take_params(&t, keep);
    trainer_free(&t);
    return rc;
}

static int parse_config(train_config *cfg, const char *method, const char *hyper_s, const char *grader) {
    trl_err e = {{0}};
    cJSON *hyper = cJSON_Parse(hyper_s);
    if (!hyper) {
        fprintf(stderr, "toolrl train: hyperparameters are not JSON: %s\n", hyper_s);
        return 2;
    }
    int rc = train_config_from_json(cfg, method, hyper, grader, &e);
    cJSON_Delete(hyper);
    if (rc) fprintf(stderr, "toolrl train: %s\n", e.msg);
    return rc ? 2 : 0;
}

static const cli_option TRAIN_OPTIONS[] = {
    {.name = "--model", .arg = "PATH", .required = 1, .help = "the model to start from: GGUF file or Hugging Face folder"},
    {.name = "--data", .arg = "FILE.jsonl", .required = 1, .help = "training examples in the unified format"},
    {.name = "--method", .arg = "reinforcement|supervised", .def = "reinforcement", .help = "GRPO or SFT"},
    {.name = "--hyper", .arg = "JSON", .def = "{}",
     .help = "OpenAI-style hyperparameters (batch_size, learning_rate, n_epochs, ...; trainer/train.c)"},
    {.name = "--grader", .arg = "NAME",
     .help = "GRPO reward: binary, no_think, partial, partial_funcname, lexico, llama (default: binary)"},
    {.name = "--metrics", .arg = "OUT.jsonl", .help = "write the metrics' JSON lines here (default: stdout)"},
    CLI_OPTION_THREADS,
    {.name = "--eval-first", .help = "evaluate on the held-out examples before the first step"},
    {.name = "--sft-hyper", .arg = "JSON",
     .help = "run an SFT warm start with these hyperparameters first (default: none)"},
    {.name = "--save-raw", .arg = "PARAMS.f32",
     .help = "write the fp32 parameters at each checkpoint interval (default: not written)"},
    {.name = "--init-raw", .arg = "PARAMS.f32",
     .help = "start from parameters --save-raw wrote (default: the model's)"},
    {.name = "--save", .arg = "CKPT_DIR",
     .help = "a Hugging Face checkpoint of the last phase at each checkpoint interval (default: none)"},
    {0}};

static const cli_env TRAIN_ENV[] = {{.name = "GOMP_SPINCOUNT", .help = "spins of an idle OpenMP thread before it sleeps (default here: " CLI_SPINCOUNT ")"},
                                    {0}};

static int cli_train(const cli_args *a) {
    const char *data = cli_get(a, "--data");
    const char *method = cli_get(a, "--method");
    const char *hyper_s = cli_get(a, "--hyper");
    const char *grader = cli_get(a, "--grader");
    const char *sft_s = cli_get(a, "--sft-hyper");
    const char *raw = cli_get(a, "--save-raw");
    const char *metrics_path = cli_get(a, "--metrics");
    cli_set_threads((int)cli_get_int(a, "--threads"));
    train_config cfg, sft;
    if (parse_config(&cfg, method, hyper_s, grader) || (sft_s && parse_config(&sft, "supervised", sft_s, NULL)))
        return 2;
    if (sft_s) sft.max_seq_tokens = cfg.max_seq_tokens, sft.seed = cfg.seed;  // same examples, same split
    model m;
    if (cli_model_load(a, &m)) return 1;
    trl_err e = {{0}};
    task_set ts;
    if (task_set_load(&ts, data, &m, cfg.max_seq_tokens, &e)) {
        fprintf(stderr, "toolrl train: %s\n", e.msg);
        model_free(&m);
        return 1;
    }
    fprintf(stderr, "toolrl train: %d examples from %s (%d invalid, %d longer than %d tokens)\n", ts.n, data,
            ts.n_invalid, ts.n_too_long, cfg.max_seq_tokens);
    FILE *mf = metrics_path ? fopen(metrics_path, "w") : stdout;
    int rc = 0;
    if (!mf) {
        fprintf(stderr, "toolrl train: cannot write %s\n", metrics_path);
        rc = 1;
    }
    lm_params warm = {0};
    const char *init_raw = cli_get(a, "--init-raw");
    if (!rc && init_raw) {
        if (lm_params_alloc(&warm, &m.cfg, NULL, &e) || load_raw(init_raw, &warm)) {
            fprintf(stderr, "toolrl train: %s is not a parameter snapshot of this model\n", init_raw);
            rc = 1;
        }
    }
    int eval_first = cli_get_flag(a, "--eval-first");
    if (!rc && sft_s) {
        lm_params init = warm;
        warm = (lm_params){0};
        rc = run_phase(&sft, &m, &ts, init.mem ? &init : NULL, &warm, mf, eval_first, raw, NULL), eval_first = 0;
        lm_params_free(&init);
    }
    const char *save_dir = cli_get(a, "--save");
    if (!rc) rc = run_phase(&cfg, &m, &ts, warm.mem ? &warm : NULL, NULL, mf, eval_first, raw, save_dir);
    lm_params_free(&warm);
    if (mf && mf != stdout) fclose(mf);
    task_set_free(&ts);
    model_free(&m);
    return rc;
}

const cli_command CLI_TRAIN = {.name = "train",
                               .summary = "One SFT or GRPO run on a JSONL file, without the job store.",
                               .usage = "--model PATH --data FILE.jsonl [--method reinforcement|supervised] [options]",
                               .options = TRAIN_OPTIONS,
                               .env = TRAIN_ENV,
                               .run = cli_train};
