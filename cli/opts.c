// opts.c: tiny option parsing shared by the subcommands, and thread setup.
#include <cblas.h>
#include <errno.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "cli.h"

const char *cli_opt(int argc, char **argv, const char *name, const char *def) {
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], name) != 0) continue;
        if (i + 1 >= argc) {
            fprintf(stderr, "toolrl: option %s needs a value\n", name);
            exit(2);
        }
        return argv[i + 1];
    }
    return def;
}

int cli_flag(int argc, char **argv, const char *name) {
    for (int i = 1; i < argc; i++)
        if (!strcmp(argv[i], name)) return 1;
    return 0;
}

long cli_opt_int(int argc, char **argv, const char *name, long def) {
    const char *v = cli_opt(argc, argv, name, NULL);
    if (!v) return def;
    char *end;
    errno = 0;
    long x = strtol(v, &end, 10);
    if (errno || *end || end == v) {
        fprintf(stderr, "toolrl: option %s expects an integer, got '%s'\n", name, v);
        exit(2);
    }
    return x;
}

double cli_opt_float(int argc, char **argv, const char *name, double def) {
    const char *v = cli_opt(argc, argv, name, NULL);
    if (!v) return def;
    char *end;
    errno = 0;
    double x = strtod(v, &end);
    if (errno || *end || end == v) {
        fprintf(stderr, "toolrl: option %s expects a number, got '%s'\n", name, v);
        exit(2);
    }
    return x;
}

void cli_check_opts(int argc, char **argv, const char *const *known) {
    for (int i = 1; i < argc; i++) {
        int ok = 0;
        for (const char *const *k = known; *k; k++) {
            size_t n = strlen(*k);
            int is_flag = (*k)[n - 1] == '!';
            if (strncmp(argv[i], *k, is_flag ? n - 1 : n) == 0 && argv[i][is_flag ? n - 1 : n] == 0) {
                ok = 1;
                if (!is_flag) i++;
                break;
            }
        }
        if (!ok) {
            fprintf(stderr, "toolrl %s: unknown option '%s'\n", argv[0], argv[i]);
            exit(2);
        }
    }
}

void cli_set_threads(int n) {
    if (n < 1) n = 1;
    omp_set_num_threads(n);
    openblas_set_num_threads(n);
}

// OpenBLAS picks its kernels by the CPU model when it loads. Debian 12's OpenBLAS 0.3.21 does
// not know newer Intel models (Sapphire Rapids) and falls back to its Prescott (SSE3) kernels:
// sgemm there is ~2x slower (bench_train on the default model: 20.5 → 56 tokens/s at T=64 /
// T=256 with SkylakeX kernels). When that happens on a CPU with AVX-512 or AVX2, choose the
// kernels by the CPU's features instead: OpenBLAS reads OPENBLAS_CORETYPE only when it loads,
// so the process runs itself again, once, with it set. A set OPENBLAS_CORETYPE is left alone.
void cli_blas_setup(char **argv) {
    if (getenv("OPENBLAS_CORETYPE")) return;
    const char *core = openblas_get_corename();
    if (!core || strcasecmp(core, "prescott") != 0) return;
    __builtin_cpu_init();
    const char *want = NULL;
    if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
        __builtin_cpu_supports("avx512dq") && __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512cd"))
        want = "SkylakeX";
    else if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma"))
        want = "Haswell";
    if (!want) return;
    setenv("OPENBLAS_CORETYPE", want, 1);
    execv("/proc/self/exe", argv);  // only returns on failure: go on with the generic kernels
}
