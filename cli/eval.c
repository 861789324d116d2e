// eval.c: `toolrl eval`: runs a model over BFCL, API-Bank level-1 or ACEBench (eval/runner.c), prints
// a progress bar and a per-category table, writes the JSON report and, with --db, records the
// scores in the job store (as an evaluation job over REST does).
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "model.h"
#include "quant.h"
#include "runner.h"
#include "store.h"
#include "toolprompt.h"

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

int cli_eval(int argc, char **argv) {
    static const char *const known[] = {"--model", "--suite", "--categories", "--limit", "--report", "--batch",
                                        "--max-tokens", "--ctx", "--threads", "--db", "--model-id", "--quantize", "--journal", "--prompt", NULL};
    cli_check_opts(argc, argv, known);
    const char *model_path = cli_opt(argc, argv, "--model", NULL), *suite = cli_opt(argc, argv, "--suite", "bfcl");
    const char *report = cli_opt(argc, argv, "--report", NULL);
    int limit = (int)cli_opt_int(argc, argv, "--limit", 0), B = (int)cli_opt_int(argc, argv, "--batch", 8);
    int max_new = (int)cli_opt_int(argc, argv, "--max-tokens", 256), n_ctx = (int)cli_opt_int(argc, argv, "--ctx", 4096);
    toolprompt_style style = TOOLPROMPT_TOOLN1;
    if (!model_path || (strcmp(suite, "bfcl") && strcmp(suite, "apibank") && strcmp(suite, "acebench")) || B < 1 ||
        max_new < 1 || n_ctx < 64 || toolprompt_style_parse(cli_opt(argc, argv, "--prompt", "tooln1"), &style)) {
        fprintf(stderr, "usage: toolrl eval --model M --suite bfcl|apibank|acebench [--categories a,b] [--limit N]\n"
                        "                   [--report FILE.json] [--journal FILE.jsonl] [--batch B] [--max-tokens N] [--ctx N]\n"
                        "                   [--prompt tooln1|hermes]\n");
        return 2;
    }
    cli_set_threads((int)cli_opt_int(argc, argv, "--threads", 2));
    model m;
    trl_err e = {{0}};
    if (model_load(&m, model_path, &e)) {
        fprintf(stderr, "toolrl eval: %s\n", e.msg);
        return 1;
    }
    const char *qn = cli_opt(argc, argv, "--quantize", NULL);
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
                   .categories = cli_opt(argc, argv, "--categories", NULL),
                   .limit = limit,
                   .batch = B,
                   .max_new = max_new,
                   .n_ctx = n_ctx,
                   .progress = progress,
                   .ctx = &b,
                   .journal = cli_opt(argc, argv, "--journal", NULL),
                   .journal_key = model_path,
                   .prompt_style = style};
    eval_run r;
    int rc = 0;
    if (eval_run_all(&r, &m, &o, &e)) {
        fprintf(stderr, "toolrl eval: %s\n", e.msg);
        rc = 1;
        goto done;
    }
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
    const char *db = cli_opt(argc, argv, "--db", NULL);
    if (!rc && db) {
        const char *base = strrchr(model_path, '/');
        const char *mid = cli_opt(argc, argv, "--model-id", base && base[1] ? base + 1 : model_path);
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
