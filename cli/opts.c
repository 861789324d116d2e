// opts.c: the subcommands' option tables at work: parsing (required options included), --help,
// usage errors and the value getters (defaults come from the tables), dispatch to subcommands,
// and what the subcommands do the same way: loading the model, thread setup, stopping on signals.
#include <cblas.h>
#include <errno.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "cli/cli.h"

// "toolrl" or "toolrl NAME", for messages.
static const char *label(const cli_command *c, char *buf, size_t n) {
    snprintf(buf, n, "toolrl%s%s", c->name[0] ? " " : "", c->name);
    return buf;
}

static int is_help(const char *a) { return !strcmp(a, "--help") || !strcmp(a, "-h"); }

static const cli_option *find(const cli_command *c, const char *name) {
    for (const cli_option *o = c->options; o && o->name; o++)
        if (!strcmp(o->name, name)) return o;
    return NULL;
}

static const cli_option *must_find(const cli_command *c, const char *name) {
    const cli_option *o = find(c, name);
    if (!o) {
        char b[64];
        fprintf(stderr, "%s: internal error: option %s is not in the command's table\n", label(c, b, sizeof(b)), name);
        abort();
    }
    return o;
}

static void die_usage(const cli_command *c, const char *what, const char *arg) {
    char b[64];
    fprintf(stderr, "%s: %s '%s'; try '%s --help'\n", label(c, b, sizeof(b)), what, arg, b);
    exit(2);
}

void cli_usage_print(const cli_command *c, FILE *f) {
    char b[64];
    fprintf(f, "usage: %s %s\ntry '%s --help'\n", label(c, b, sizeof(b)), c->usage, b);
}

// The last word of a command's name ("mix" of "data mix").
static const char *last_word(const char *name) {
    const char *s = strrchr(name, ' ');
    return s ? s + 1 : name;
}

void cli_help_print(const cli_command *c, FILE *f) {
    char b[64];
    fprintf(f, "usage: %s %s\n\n%s\n", label(c, b, sizeof(b)), c->usage, c->summary);
    if (c->subcommands) {
        fprintf(f, "\ncommands:\n");
        for (const cli_command *const *s = c->subcommands; *s; s++)
            fprintf(f, "  %-10s %s\n", last_word((*s)->name), (*s)->summary);
    }
    fprintf(f, "\noptions:\n");
    for (const cli_option *o = c->options; o && o->name; o++) {
        char left[64];
        snprintf(left, sizeof(left), "%s%s%s", o->name, o->arg ? " " : "", o->arg ? o->arg : "");
        if (strlen(left) > 24) fprintf(f, "  %s\n  %-24s %s", left, "", o->help);  // a long one: help below
        else fprintf(f, "  %-24s %s", left, o->help);
        if (o->required) fprintf(f, " (required)");
        else if (o->def) fprintf(f, " (default: %s)", o->def);
        fputc('\n', f);
    }
    fprintf(f, "  %-24s %s\n", "-h, --help", "print this help and exit");
    if (c->env && c->env->name) {
        fprintf(f, "\nenvironment:\n");
        for (const cli_env *v = c->env; v->name; v++) fprintf(f, "  %-24s %s\n", v->name, v->help);
    }
    if (c->subcommands) fprintf(f, "\n'%s COMMAND --help' lists a command's options.\n", b);
}

cli_args cli_parse(const cli_command *c, int argc, char **argv) {
    int words = 0;
    for (int i = 1; i < argc; i++) {
        if (is_help(argv[i])) {
            cli_help_print(c, stdout);
            exit(0);
        }
        const cli_option *o = find(c, argv[i]);
        if (!o && c->n_args > 0 && argv[i][0] != '-') {  // one of the command's words
            if (++words > c->n_args) die_usage(c, "unexpected argument", argv[i]);
            continue;
        }
        if (!o) die_usage(c, "unknown option", argv[i]);
        if (o->arg && ++i >= argc) die_usage(c, "missing value for option", o->name);
    }
    cli_args a = {c, argc, argv};
    for (const cli_option *o = c->options; o && o->name; o++)
        if (o->required && !cli_get_next(&a, o->name, 0)) die_usage(c, "missing required option", o->name);
    if (words < c->n_args) {
        char b[64];
        fprintf(stderr, "%s: missing argument; usage: %s %s\n", label(c, b, sizeof(b)), b, c->usage);
        exit(2);
    }
    return a;
}

const char *cli_get_arg(const cli_args *a, int k) {
    for (int i = 1; i < a->argc; i++) {
        const cli_option *o = find(a->c, a->argv[i]);
        if (o) {
            if (o->arg) i++;
            continue;
        }
        if (k-- == 0) return a->argv[i];
    }
    return NULL;
}

static const cli_command *find_sub(const cli_command *c, const char *word) {
    for (const cli_command *const *p = c->subcommands; p && *p; p++)
        if (!strcmp(last_word((*p)->name), word)) return *p;
    return NULL;
}

int cli_dispatch(const cli_command *c, int argc, char **argv) {
    if (argc < 2) {
        cli_help_print(c, stderr);
        return 2;
    }
    if (is_help(argv[1]) || !strcmp(argv[1], "help")) {  // also `toolrl help CMD [SUB]`
        const cli_command *t = c;
        for (int i = 2; i < argc; i++) {
            const cli_command *s = find_sub(t, argv[i]);
            if (!s) die_usage(t, t->name[0] ? "unknown subcommand" : "unknown command", argv[i]);
            t = s;
        }
        cli_help_print(t, stdout);
        return 0;
    }
    const cli_command *s = find_sub(c, argv[1]);
    if (!s) die_usage(c, c->name[0] ? "unknown subcommand" : "unknown command", argv[1]);
    if (s->subcommands) return cli_dispatch(s, argc - 1, argv + 1);
    if (!s->run) {
        char b[64];
        fprintf(stderr, "%s: internal error: nothing to run\n", label(s, b, sizeof(b)));
        abort();
    }
    cli_args a = cli_parse(s, argc - 1, argv + 1);
    return s->run(&a);
}

int cli_get_next(const cli_args *a, const char *name, int after) {
    must_find(a->c, name);
    for (int i = 1; i < a->argc; i++) {
        const cli_option *o = find(a->c, a->argv[i]);
        if (!o) continue;  // cli_parse has rejected it already
        if (i > after && !strcmp(o->name, name)) return o->arg ? (i + 1 < a->argc ? i + 1 : 0) : i;
        if (o->arg) i++;
    }
    return 0;
}

const char *cli_get(const cli_args *a, const char *name) {
    const cli_option *o = must_find(a->c, name);
    int i = cli_get_next(a, name, 0);
    return i ? a->argv[i] : o->def;
}

int cli_get_flag(const cli_args *a, const char *name) { return cli_get_next(a, name, 0) != 0; }

static const char *get_some(const cli_args *a, const char *name) {
    const char *v = cli_get(a, name);
    if (!v) {
        char b[64];
        fprintf(stderr, "%s: internal error: option %s has no value and no default\n", label(a->c, b, sizeof(b)),
                name);
        abort();
    }
    return v;
}

long cli_get_int(const cli_args *a, const char *name) {
    const char *v = get_some(a, name);
    char *end, b[64];
    errno = 0;
    long x = strtol(v, &end, 10);
    if (errno || *end || end == v) {
        fprintf(stderr, "%s: option %s expects an integer, got '%s'\n", label(a->c, b, sizeof(b)), name, v);
        exit(2);
    }
    return x;
}

double cli_get_float(const cli_args *a, const char *name) {
    const char *v = get_some(a, name);
    char *end, b[64];
    errno = 0;
    double x = strtod(v, &end);
    if (errno || *end || end == v) {
        fprintf(stderr, "%s: option %s expects a number, got '%s'\n", label(a->c, b, sizeof(b)), name, v);
        exit(2);
    }
    return x;
}

int cli_model_load(const cli_args *a, model *m) {
    trl_err e = {{0}};
    if (model_load(m, cli_get(a, "--model"), &e)) {
        char b[64];
        fprintf(stderr, "%s: cannot load model: %s\n", label(a->c, b, sizeof(b)), e.msg);
        return 1;
    }
    return 0;
}

int cli_device_open(const cli_args *a, device *d) {
    trl_err e = {{0}};
    char b[64];
    if (device_open(d, cli_get(a, "--device"), &e)) {
        fprintf(stderr, "%s: --device: %s\n", label(a->c, b, sizeof(b)), e.msg);
        return 2;
    }
    if (d->note[0]) fprintf(stderr, "%s: %s\n", label(a->c, b, sizeof(b)), d->note);
    return 0;
}

static volatile sig_atomic_t g_stop;
static void on_stop_signal(int sig) {
    (void)sig;
    g_stop = 1;
}

volatile sig_atomic_t *cli_stop_on_signals(void) {
    signal(SIGINT, on_stop_signal);
    signal(SIGTERM, on_stop_signal);
    return &g_stop;
}

void cli_set_threads(int n) {
    if (n < 1) n = 1;
    omp_set_num_threads(n);
    openblas_set_num_threads(n);
}

// Two libraries read their settings from the environment once, when they load, before main:
// - OpenBLAS picks its kernels by the CPU model. Debian 12's OpenBLAS 0.3.21 does not know
//   newer Intel models (Sapphire Rapids) and falls back to its Prescott (SSE3) kernels: sgemm
//   there is ~2x slower (bench_train on the default model: 20.5 → 56 tokens/s at T=64 / T=256
//   with SkylakeX kernels). On a CPU with AVX-512 or AVX2 the kernels are then chosen by the
//   CPU's features (OPENBLAS_CORETYPE). A set OPENBLAS_CORETYPE is left alone.
// - libgomp's threads wait at the end of every parallel region by spinning GOMP_SPINCOUNT
//   times (300,000 unless OMP_WAIT_POLICY or GOMP_SPINCOUNT say otherwise: milliseconds)
//   before they sleep. On a host where other processes want the cores, a thread whose partner
//   was preempted spins away the time the partner needs (perf: most of a request's time in
//   libgomp), so toolrl sets CLI_SPINCOUNT unless either variable is set (docs: README,
//   Configuration). Setting either one by hand restores libgomp's own choice.
// When either setting has to change, the process runs itself again, once, with it set.
void cli_runtime_setup(char **argv) {
    int again = 0;
    if (!getenv("OMP_WAIT_POLICY") && !getenv("GOMP_SPINCOUNT")) {
        setenv("GOMP_SPINCOUNT", CLI_SPINCOUNT, 1);
        again = 1;
    }
    const char *core = getenv("OPENBLAS_CORETYPE") ? NULL : openblas_get_corename();
    if (core && strcasecmp(core, "prescott") == 0) {
        __builtin_cpu_init();
        const char *want = NULL;
        if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
            __builtin_cpu_supports("avx512dq") && __builtin_cpu_supports("avx512vl") &&
            __builtin_cpu_supports("avx512cd"))
            want = "SkylakeX";
        else if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma"))
            want = "Haswell";
        if (want) setenv("OPENBLAS_CORETYPE", want, 1), again = 1;
    }
    if (again) execv("/proc/self/exe", argv);  // only returns on failure: go on as loaded
}
