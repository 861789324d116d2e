// eval.c: `toolrl eval`: runs a model over BFCL, API-Bank level-1 or ACEBench (eval/runner.c), prints
// a progress bar and a per-category table, writes the JSON report and, with --db, records the
// scores in the job store (as an evaluation job over REST does).
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "eval/runner.h"
#include "model/model.h"
#include "model/quant.h"
#include "protocol/toolprompt.h"
#include "store/store.h"

typedef struct {
    double t0;
    int d0, started;  // examples already done (by an earlier run) when the bar started
} bar;

static void progress(void *ctx, int done, int total) {
    bar *b = ctx;
    if (!b->started) b->t0 = trl_now(), b->d0 = done, b->started = 1;
    int w = 30, k = total ? done * w / total : w;
    double dt = trl_now() - b->t0;
    fprintf(stderr, "\r[%.*s%*s] %d/%d  %.2f ex/s ", k, "##############################", w - k, "", done, total,
            dt > 0 ? (done - b->d0) / dt : 0.0);
    if (done == total) fprintf(stderr, "\n");
    fflush(stderr);
}

static const cli_option EVAL_OPTIONS[] = {
    CLI_OPTION_MODEL,
    {.name = "--suite", .arg = "bfcl|apibank|acebench", .def = "bfcl", .help = "the benchmark"},
    {.name = "--categories", .arg = "A,B",
     .help = "BFCL, ACEBench: only these categories (default: all of the shared split)"},
    {.name = "--limit", .arg = "N", .def = "0",
     .help = "examples per category, ACEBench multi-turn: dialogues (0: all)"},
    {.name = "--report", .arg = "FILE.json",
     .help = "write the JSON report (every example, its output and verdict) here"},
    {.name = "--batch", .arg = "B", .def = "8", .help = "sequences decoded together"},
    {.name = "--max-tokens", .arg = "N", .def = "256", .help = "most tokens of a reply"},
    {.name = "--ctx", .arg = "N", .def = "4096", .help = "context length per sequence (at least 64)"},
    CLI_OPTION_THREADS,
    CLI_OPTION_DEVICE,
    {.name = "--db", .arg = "PATH", .help = "also record the scores in this job store (default: not recorded)"},
    {.name = "--model-id", .arg = "ID",
     .help = "with --db: the model's name there (computed: the model path's file name)"},
    {.name = "--quantize", .arg = "q8_0|q4_0|q4_1", .help = "quantize the weights first (default: as loaded)"},
    {.name = "--journal", .arg = "FILE.jsonl",
     .help = "record finished examples; a stopped run started again goes on where it stopped"},
    {.name = "--prompt", .arg = "tooln1|hermes", .def = "tooln1",
     .help = "prompt style: Tool-N1's, or Qwen2.5's own tool template"},
    {0}};

static const cli_env EVAL_ENV[] = {
    {.name = "TOOLRL_SHARED",
     .help = "the shared benchmark data: $TOOLRL_SHARED/data/{bfcl,apibank,acebench} (default ../shared)"},
    {0}};

static int cli_eval(const cli_args *a) {
    const char *model_path = cli_get(a, "--model");
    const char *suite = cli_get(a, "--suite");
    const char *report = cli_get(a, "--report");
    int limit = (int)cli_get_int(a, "--limit");
    int B = (int)cli_get_int(a, "--batch");
    int max_new = (int)cli_get_int(a, "--max-tokens");
    int n_ctx = (int)cli_get_int(a, "--ctx");
    toolprompt_style style = TOOLPROMPT_TOOLN1;
    if ((strcmp(suite, "bfcl") && strcmp(suite, "apibank") && strcmp(suite, "acebench")) || B < 1 ||
        max_new < 1 || n_ctx < 64 || toolprompt_style_parse(cli_get(a, "--prompt"), &style)) {
        cli_usage_print(&CLI_EVAL, stderr);
        return 2;
    }
    cli_set_threads((int)cli_get_int(a, "--threads"));
    device dev;
    if (cli_device_open(a, &dev)) return 2;
    model m;
    if (cli_model_load(a, &m)) return 1;
    trl_err e = {{0}};
    const char *qn = cli_get(a, "--quantize");
    if (qn) {
        uint32_t qt = !strcmp(qn, "q8_0") ? QTYPE_Q8_0 : !strcmp(qn, "q4_0") ? QTYPE_Q4_0 : !strcmp(qn, "q4_1") ? QTYPE_Q4_1 : QTYPE_F32;
        if (qt == QTYPE_F32 || model_quantize(&m, qt, &e)) {
            fprintf(stderr, "toolrl eval: --quantize %s: %s\n", qn, qt == QTYPE_F32 ? "use q8_0, q4_0 or q4_1" : e.msg);
            model_free(&m);
            return 2;
        }
    }
    bar b = {0};
    // --journal: a run that is stopped goes on where it stopped when started again (runner.h).
    eval_opts o = {.suite = suite,
                   .categories = cli_get(a, "--categories"),
                   .limit = limit,
                   .batch = B,
                   .max_new = max_new,
                   .n_ctx = n_ctx,
                   .progress = progress,
                   .ctx = &b,
                   .journal = cli_get(a, "--journal"),
                   .journal_key = model_path,
                   .prompt_style = style,
                   .be = dev.be};
    eval_run r;
    int rc = 0;
    if (eval_run_all(&r, &m, &o, &e)) {
        fprintf(stderr, "toolrl eval: %s\n", e.msg);
        rc = 1;
        goto done;
    }
    fprintf(stderr, "generated: %ld prompt tokens (%ld of them reused from the prompt cache), %ld reply tokens\n",
            r.prompt_tokens, r.prompt_tokens_cached, r.completion_tokens);
    if (r.is_acebench) {  // per file, the groups' means and what was not run
        acebench_summary_print(stdout, &r.ace);
    } else {
        printf("%-26s %8s %8s %9s\n", "category", "correct", "total", "accuracy");
        for (size_t c = 0; c < r.nres; c++)
            printf("%-26s %8ld %8ld %8.2f%%\n", r.res[c].category, r.res[c].correct, r.res[c].total,
                   100.0 * r.res[c].correct / (double)r.res[c].total);
    }
    if (r.is_bfcl) {
        if (r.sum.non_live >= 0) printf("%-26s %26.2f%%\n", "Non-live (AST)", 100 * r.sum.non_live);
        if (r.sum.live >= 0) printf("%-26s %26.2f%%\n", "Live (AST, weighted)", 100 * r.sum.live);
        if (r.sum.overall >= 0) printf("%-26s %26.2f%%\n", "Overall", 100 * r.sum.overall);
    }
    if (report && eval_run_report(&r, report, model_path, &e)) {
        fprintf(stderr, "toolrl eval: %s\n", e.msg);
        rc = 1;
    }
    const char *db = cli_get(a, "--db");
    if (!rc && db) {
        const char *base = strrchr(model_path, '/');
        const char *mid = cli_get(a, "--model-id");
        if (!mid) mid = base && base[1] ? base + 1 : model_path;
        store *s = NULL;
        if (store_open(&s, db, &e) || eval_run_store(&r, s, mid, report, NULL, &e)) {
            fprintf(stderr, "toolrl eval: %s\n", e.msg);
            rc = 1;
        } else {
            fprintf(stderr, "toolrl eval: results stored in %s as model %s\n", db, mid);
        }
        store_close(s);
    }
done:
    eval_run_free(&r);
    model_free(&m);
    return rc;
}

const cli_command CLI_EVAL = {.name = "eval",
                              .summary = "Score a model on BFCL, API-Bank level-1 or ACEBench.",
                              .usage = "--model PATH [--suite bfcl|apibank|acebench] [options]",
                              .options = EVAL_OPTIONS,
                              .env = EVAL_ENV,
                              .run = cli_eval};
