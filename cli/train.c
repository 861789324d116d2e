// train.c: `toolrl train`: one training run from the command line, without the job store:
// SFT or GRPO on a unified-format JSONL file, metrics as JSON lines, held-out evaluation and
// checkpoints at the configured intervals. The worker (`toolrl worker`) runs the same
// trainer for jobs submitted over REST.
#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "model.h"
#include "task.h"
#include "train.h"

static void emit(FILE *f, cJSON *o) {
    char *s = cJSON_PrintUnformatted(o);
    if (s) {
        fprintf(f, "%s\n", s);
        fflush(f);
    }
    free(s);
}

int cli_train(int argc, char **argv) {
    static const char *const known[] = {"--model", "--data", "--method", "--hyper", "--grader", "--metrics",
                                        "--threads", "--eval-first!", NULL};
    cli_check_opts(argc, argv, known);
    setenv("OMP_WAIT_POLICY", "passive", 0);  // before the first OpenMP region (trainer/README.md)
    const char *model_path = cli_opt(argc, argv, "--model", NULL), *data = cli_opt(argc, argv, "--data", NULL);
    const char *method = cli_opt(argc, argv, "--method", "reinforcement");
    const char *hyper_s = cli_opt(argc, argv, "--hyper", "{}"), *grader = cli_opt(argc, argv, "--grader", NULL);
    const char *metrics_path = cli_opt(argc, argv, "--metrics", NULL);
    if (!model_path || !data) {
        fprintf(stderr, "usage: toolrl train --model M --data F.jsonl [--method reinforcement|supervised]\n"
                        "                    [--hyper JSON] [--grader binary|...] [--metrics OUT.jsonl] [--eval-first]\n");
        return 2;
    }
    cli_set_threads((int)cli_opt_int(argc, argv, "--threads", 2));
    trl_err e = {{0}};
    cJSON *hyper = cJSON_Parse(hyper_s);
    if (!hyper) {
        fprintf(stderr, "toolrl train: --hyper is not JSON\n");
        return 2;
    }
    train_config cfg;
    if (train_config_from_json(&cfg, method, hyper, grader, &e)) {
        fprintf(stderr, "toolrl train: %s\n", e.msg);
        cJSON_Delete(hyper);
        return 2;
    }
    cJSON_Delete(hyper);
    model m;
    if (model_load(&m, model_path, &e)) {
        fprintf(stderr, "toolrl train: %s\n", e.msg);
        return 1;
    }
    task_set ts;
    if (task_set_load(&ts, data, &m, cfg.max_seq_tokens, &e)) {
        fprintf(stderr, "toolrl train: %s\n", e.msg);
        model_free(&m);
        return 1;
    }
    fprintf(stderr, "toolrl train: %d examples from %s (%d invalid, %d too long)\n", ts.n, data, ts.n_invalid,
            ts.n_too_long);
    FILE *mf = metrics_path ? fopen(metrics_path, "w") : stdout;
    if (!mf) {
        fprintf(stderr, "toolrl train: cannot write %s\n", metrics_path);
        task_set_free(&ts), model_free(&m);
        return 1;
    }
    trainer t;
    int rc = 0;
    if (trainer_init(&t, &cfg, &m, &ts, &e)) {
        fprintf(stderr, "toolrl train: %s\n", e.msg);
        rc = 1;
    } else {
        cJSON *c = train_config_to_json(&cfg);
        cJSON_AddNumberToObject(c, "total_steps", t.total_steps);
        cJSON_AddNumberToObject(c, "train_examples", t.n_train);
        cJSON_AddNumberToObject(c, "held_out_examples", t.n_held);
        fprintf(stderr, "toolrl train: %d steps, %d training / %d held-out examples\n", t.total_steps, t.n_train,
                t.n_held);
        emit(mf, c);
        cJSON_Delete(c);
        if (cli_flag(argc, argv, "--eval-first") && t.n_held) {
            cJSON *mx = cJSON_CreateObject();
            cJSON_AddNumberToObject(mx, "step", 0);
            if (trainer_eval(&t, mx, &e)) rc = 1;
            else emit(mf, mx);
            cJSON_Delete(mx);
        }
        while (!rc && !trainer_done(&t)) {
            cJSON *mx = cJSON_CreateObject();
            if (trainer_step(&t, mx, &e)) rc = 1;
            else if (cfg.eval_interval > 0 && t.n_held &&
                     (t.step % cfg.eval_interval == 0 || trainer_done(&t)) && trainer_eval(&t, mx, &e))
                rc = 1;
            if (!rc) emit(mf, mx);
            cJSON_Delete(mx);
        }
        if (rc) fprintf(stderr, "toolrl train: %s\n", e.msg);
        trainer_free(&t);
    }
    if (mf != stdout) fclose(mf);
    task_set_free(&ts);
    model_free(&m);
    return rc;
}
