// main.c: the `toolrl` command: one binary, one subcommand per job.
//   toolrl generate --model PATH --prompt TEXT [--chat] ...   print a completion
//   toolrl bench    --model PATH [--prompt-tokens P] ...      prefill/decode tokens/s (JSON)
//   toolrl tokenize --model PATH --text TEXT [--special]      print token ids
//   toolrl info     --model PATH                              print the model's configuration
//   toolrl serve    --model PATH [--port N]                   HTTP server
//   toolrl eval --model M --suite bfcl|apibank|acebench        benchmark scores
//   toolrl data convert --format F --in FILE --out FILE        training data in the unified format
//   toolrl train --model M --data F.jsonl --method M           one SFT / GRPO run, no job store
//   toolrl worker --db var/toolrl.db --model M                 trains jobs submitted over REST
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"

static void usage(FILE *f) {
    fprintf(f,
            "usage: toolrl <command> [options]\n"
            "commands:\n"
            "  generate  --model PATH --prompt TEXT [--chat] [--system TEXT] [-n N] [--temp T]\n"
            "            [--top-k K] [--top-p P] [--seed S] [--threads N] [--ref]\n"
            "  bench     --model PATH [--prompt-tokens P] [--gen-tokens N] [--threads N] [--reps R] [--batch B]\n"
            "  tokenize  --model PATH --text TEXT [--special]\n"
            "  info      --model PATH\n"
            "  serve     --model PATH [--host ADDR] [--port N] [--threads N]\n"
            "  eval      --model M --suite bfcl|apibank|acebench [--categories a,b] [--limit N] [--report F]\n"
            "  data      convert --format xlam|toolace|toolrl|openai --in FILE --out FILE.jsonl\n"
            "  train     --model M --data F.jsonl [--method reinforcement|supervised] [--hyper JSON]\n"
            "  worker    --db var/toolrl.db --model M [--out var/checkpoints] [--max-jobs N]\n");
}

int main(int argc, char **argv) {
    cli_blas_setup(argv);
    if (argc < 2 || !strcmp(argv[1], "-h") || !strcmp(argv[1], "--help") || !strcmp(argv[1], "help")) {
        usage(argc < 2 ? stderr : stdout);
        return argc < 2 ? 2 : 0;
    }
    const char *cmd = argv[1];
    if (!strcmp(cmd, "generate")) return cli_generate(argc - 1, argv + 1);
    if (!strcmp(cmd, "bench")) return cli_bench(argc - 1, argv + 1);
    if (!strcmp(cmd, "tokenize")) return cli_tokenize(argc - 1, argv + 1);
    if (!strcmp(cmd, "info")) return cli_info(argc - 1, argv + 1);
    if (!strcmp(cmd, "serve")) return cli_serve(argc - 1, argv + 1);
    if (!strcmp(cmd, "data")) return cli_data(argc - 1, argv + 1);
    if (!strcmp(cmd, "eval")) return cli_eval(argc - 1, argv + 1);
    if (!strcmp(cmd, "train")) return cli_train(argc - 1, argv + 1);
    if (!strcmp(cmd, "worker")) return cli_worker(argc - 1, argv + 1);
    fprintf(stderr, "toolrl: unknown command '%s'\n", cmd);
    usage(stderr);
    return 2;
}
