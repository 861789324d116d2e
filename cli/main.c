// main.c: the `toolrl` command: one binary, one subcommand per job (commands.c lists them;
// `toolrl --help`, `toolrl help CMD` and `toolrl CMD --help` describe them).
#include "cli/cli.h"

int main(int argc, char **argv) {
    cli_runtime_setup(argv);
    return cli_dispatch(&CLI_TOOLRL, argc, argv);
}
