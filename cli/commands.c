// commands.c: toolrl itself as a command: its subcommands, in the order `toolrl --help` lists
// them, and the environment every subcommand reads.
#include "cli/cli.h"

static const cli_command *const COMMANDS[] = {&CLI_GENERATE, &CLI_BENCH, &CLI_TOKENIZE, &CLI_INFO,
                                              &CLI_SERVE,    &CLI_EVAL,  &CLI_DATA,     &CLI_TRAIN,
                                              &CLI_WORKER,   &CLI_KEYS,  NULL};

static const cli_env ENV[] = {
    {.name = "OPENBLAS_CORETYPE",
     .help = "OpenBLAS's kernels; unset on a CPU OpenBLAS does not know, toolrl picks them by the CPU's features"},
    {0}};

const cli_command CLI_TOOLRL = {.name = "",
                                .summary = "Train small language models to call tools, and serve them over an "
                                           "OpenAI-compatible API.",
                                .usage = "<command> [options]",
                                .env = ENV,
                                .subcommands = COMMANDS};
