// cli.h: the subcommands of the toolrl binary, their option tables, and the helpers they share.
#ifndef TOOLRL_CLI_H
#define TOOLRL_CLI_H

#include <signal.h>
#include <stdio.h>
#include <sys/types.h>

#include "model/device.h"
#include "model/model.h"

// One option of a subcommand: the single source of its name, value placeholder, default and
// help. The tables end with {0}.
typedef struct {
    const char *name;  // "--port", "-n"
    const char *arg;   // the value's placeholder ("N", "PATH"); NULL: a flag without a value
    const char *def;   // the default as text; NULL: none (or computed: the help says how)
    const char *help;  // one line
    int required;      // cli_parse refuses a command line without it; the help says "(required)"
} cli_option;

// Options several commands share, defined once.
#define CLI_OPTION_MODEL \
    {.name = "--model", .arg = "PATH", .required = 1, .help = "model file (GGUF) or Hugging Face folder"}
#define CLI_OPTION_THREADS {.name = "--threads", .arg = "N", .def = "2", .help = "compute threads"}
#define CLI_OPTION_DEVICE                                                                                     \
    {.name = "--device", .arg = "DEV", .def = "cpu",                                                          \
     .help = "where the model runs: cpu, or cuda:N in a build made with CUDA=1 (else, or without a GPU: the " \
             "cpu, with a message)"}

// An environment variable a subcommand reads ({0}-terminated lists).
typedef struct {
    const char *name;
    const char *help;
} cli_env;

// A command line accepted by cli_parse: what a command's run function reads its options from.
typedef struct {
    const struct cli_command *c;
    int argc;
    char **argv;  // argv[0] is the command's last word
} cli_args;

typedef struct cli_command {
    const char *name;                              // "serve", "data mix"; "" for toolrl itself
    const char *summary;                           // one line
    const char *usage;                             // what follows "toolrl NAME" on the usage line
    const cli_option *options;                     // {0}-terminated; NULL: none
    int n_args;                                    // words it takes besides its options (all required)
    const cli_env *env;                            // {0}-terminated; NULL: none
    const struct cli_command *const *subcommands;  // NULL-terminated (toolrl, toolrl data)
    int (*run)(const cli_args *a);                 // the command line, accepted by cli_parse
} cli_command;

// toolrl itself, whose subcommands are every command (commands.c), and the commands.
extern const cli_command CLI_TOOLRL;
extern const cli_command CLI_GENERATE, CLI_BENCH, CLI_TOKENIZE, CLI_INFO, CLI_SERVE, CLI_DATA, CLI_EVAL,
    CLI_TRAIN, CLI_WORKER, CLI_KEYS;

// Runs the subcommand named by argv[1] of a command with subcommands, after cli_parse; answers
// --help, -h and `help [CMD...]` (exit status 0), no or an unknown subcommand (2).
int cli_dispatch(const cli_command *c, int argc, char **argv);
// Checks argv[1..] against c's table and returns the accepted command line. Exits: 0 after
// printing the help on --help/-h; 2 with a one-line error on an unknown option, a missing value,
// a required option not given, or other than c->n_args words that are no option (CLI code only).
cli_args cli_parse(const cli_command *c, int argc, char **argv);
// The full help (usage, summary, options with defaults, environment, subcommands).
void cli_help_print(const cli_command *c, FILE *f);
// The usage line and "try 'toolrl CMD --help'", for a usage error.
void cli_usage_print(const cli_command *c, FILE *f);

// Option values (after cli_parse). The value given, else the table's default (cli_get may give
// NULL; the others abort when there is neither). A name not in the command's table aborts: a
// programming error. cli_get_int and cli_get_float exit 2 on a value that is not a number.
const char *cli_get(const cli_args *a, const char *name);
long cli_get_int(const cli_args *a, const char *name);
double cli_get_float(const cli_args *a, const char *name);
int cli_get_flag(const cli_args *a, const char *name);
// A repeatable option: the argv index of the value of its first occurrence after argv[after]
// (start with 0), or 0 when there is none.
int cli_get_next(const cli_args *a, const char *name, int after);
// The k-th word (from 0) that is neither an option nor an option's value; NULL past the last.
const char *cli_get_arg(const cli_args *a, int k);

// Loads the model the command's --model option names; on failure prints "toolrl CMD: cannot
// load model: ..." and returns 1 (an exit status), else 0.
int cli_model_load(const cli_args *a, model *m);

// The device the command's --device option names (model/device.h). When a CUDA device was asked
// for and the cpu runs instead, prints why ("toolrl CMD: cuda:0 is not available (...); running
// on the cpu"). 0, or 2 after printing a usage error (a name that is no device).
int cli_device_open(const cli_args *a, device *d);

// Sets OpenMP and OpenBLAS thread counts.
void cli_set_threads(int n);
// Makes SIGINT and SIGTERM set the returned flag (the process goes on; the caller stops when it
// sees the flag) instead of ending the process.
volatile sig_atomic_t *cli_stop_on_signals(void);
// Re-executes the process, once, with OPENBLAS_CORETYPE set when OpenBLAS fell back to its
// generic kernels on a CPU it does not know, and GOMP_SPINCOUNT set to CLI_SPINCOUNT unless
// OMP_WAIT_POLICY or GOMP_SPINCOUNT is set (see cli/opts.c). Call first thing in main.
#define CLI_SPINCOUNT "20000"
void cli_runtime_setup(char **argv);

// `toolrl worker` processes started by `toolrl serve --workers N` (spawn.c).
pid_t cli_spawn_worker(const char *db, const char *model, const char *out_dir, int threads);
void cli_stop_worker(pid_t pid);  // SIGTERM, wait up to 30 s, then SIGKILL

#endif
