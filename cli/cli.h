// cli.h: the subcommands of the toolrl binary and the option helpers they share.
#ifndef TOOLRL_CLI_H
#define TOOLRL_CLI_H

int cli_generate(int argc, char **argv);
int cli_bench(int argc, char **argv);
int cli_tokenize(int argc, char **argv);
int cli_info(int argc, char **argv);
int cli_serve(int argc, char **argv);
int cli_data(int argc, char **argv);
int cli_eval(int argc, char **argv);
int cli_train(int argc, char **argv);
int cli_worker(int argc, char **argv);

// Option parsing: "--name VALUE" pairs. Returns the value or def; exits with a usage
// message on a missing value (CLI code only).
const char *cli_opt(int argc, char **argv, const char *name, const char *def);
int cli_flag(int argc, char **argv, const char *name);
long cli_opt_int(int argc, char **argv, const char *name, long def);
double cli_opt_float(int argc, char **argv, const char *name, double def);
// Rejects options not in the NULL-terminated list (flags marked with a trailing '!').
void cli_check_opts(int argc, char **argv, const char *const *known);
// Sets OpenMP and OpenBLAS thread counts.
void cli_set_threads(int n);
// Re-executes the process with OPENBLAS_CORETYPE set when OpenBLAS fell back to its generic
// kernels on a CPU it does not know (see cli/opts.c). Call first thing in main.
void cli_blas_setup(char **argv);

// `toolrl worker` processes started by `toolrl serve --workers N` (spawn.c).
#include <sys/types.h>
pid_t cli_spawn_worker(const char *db, const char *model, const char *out_dir, int threads);
void cli_stop_worker(pid_t pid);  // SIGTERM, wait up to 30 s, then SIGKILL

#endif
