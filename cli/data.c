// data.c: `toolrl data`: dataset conversion into the unified training format and validation.
//   toolrl data convert --format FORMAT --in FILE|FOLDER --out FILE.jsonl [--tools FILE]
//                       [--source NAME] [--drop-no-call] [--no-repair]
//   toolrl data validate --in FILE.jsonl [--max-errors N]
//   toolrl data mix [--shared DIR] [--out-dir var/data] [--val-frac 0.02] [--seed 1]
//                   [--only LABEL,...] [--add LABEL=FORMAT:PATH]...
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "convert.h"
#include "example.h"
#include "mix.h"
#include "pyjson.h"

static void data_usage(FILE *f) {
    fprintf(f,
            "usage: toolrl data convert --format FORMAT --in FILE|FOLDER --out FILE.jsonl [--tools FILE]\n"
            "                           [--source NAME] [--drop-no-call] [--no-repair]\n"
            "         FORMAT: %s\n"
            "       toolrl data validate --in FILE.jsonl [--max-errors N]\n"
            "       toolrl data mix [--shared DIR] [--out-dir var/data] [--val-frac 0.02] [--seed 1]\n"
            "                       [--only LABEL,...] [--add LABEL=FORMAT:PATH]...\n",
            convert_format_list());
}

typedef struct {
    FILE *out;
    const char *path;
} file_sink;

static int write_line(void *ctx, const cJSON *ex, trl_err *e) {
    file_sink *fs = ctx;
    char *line = pyjson_dump(ex, PYJSON_COMPACT);
    if (!line) return trl_errf(e, "out of memory");
    int ok = fputs(line, fs->out) >= 0 && fputc('\n', fs->out) != EOF;
    free(line);
    return ok ? TRL_OK : trl_errf(e, "%s: write failed", fs->path);
}

static void print_counts(const convert_counts *c) {
    for (size_t i = 0; i < c->n; i++)
        if (c->kind[i] == CONVERT_TOTAL) printf("  %-28s %ld\n", c->name[i], c->value[i]);
    printf("  filtered out:\n");
    long total = 0;
    for (size_t i = 0; i < c->n; i++)
        if (c->kind[i] == CONVERT_FILTER) {
            printf("    %-26s %ld\n", c->name[i], c->value[i]);
            total += c->value[i];
        }
    printf("    %-26s %ld\n", "(total)", total);
    int notes = 0;
    for (size_t i = 0; i < c->n; i++)
        if (c->kind[i] == CONVERT_NOTE && c->value[i]) {
            if (!notes++) printf("  notes:\n");
            printf("    %-26s %ld\n", c->name[i], c->value[i]);
        }
    if (c->first_invalid[0]) printf("  first invalid example: %s\n", c->first_invalid);
}

static int data_convert(int argc, char **argv) {
    static const char *const known[] = {"--format",       "--in",        "--out", "--tools", "--source",
                                        "--drop-no-call!", "--no-repair!", NULL};
    cli_check_opts(argc, argv, known);
    const char *fmt = cli_opt(argc, argv, "--format", NULL);
    const char *in = cli_opt(argc, argv, "--in", NULL);
    const char *out = cli_opt(argc, argv, "--out", NULL);
    if (!fmt || !in || !out) {
        data_usage(stderr);
        return 2;
    }
    trl_err e;
    convert_format f;
    if (convert_format_parse(fmt, &f, &e)) {
        fprintf(stderr, "toolrl data convert: %s\n", e.msg);
        return 2;
    }
    if (convert_refuse_path(in, &e)) {
        fprintf(stderr, "toolrl data convert: %s\n", e.msg);
        return 1;
    }
    convert_opts o = {.drop_no_call = cli_flag(argc, argv, "--drop-no-call"),
                      .no_repair = cli_flag(argc, argv, "--no-repair"),
                      .side_path = cli_opt(argc, argv, "--tools", NULL),
                      .source = cli_opt(argc, argv, "--source", NULL)};
    FILE *fo = fopen(out, "w");
    if (!fo) {
        perror(out);
        return 1;
    }
    file_sink fs = {fo, out};
    convert_counts c;
    convert_counts_init(&c);
    int rc = convert_path(f, in, &o, write_line, &fs, &c, &e);
    if (fclose(fo) != 0 && rc == TRL_OK) rc = trl_errf(&e, "%s: write failed", out);
    if (rc) {
        fprintf(stderr, "toolrl data convert: %s\n", e.msg);
        remove(out);
        return 1;
    }
    printf("converted %s (%s) -> %s\n", in, convert_format_name(f), out);
    print_counts(&c);
    return 0;
}

static int data_validate(int argc, char **argv) {
    static const char *const known[] = {"--in", "--max-errors", NULL};
    cli_check_opts(argc, argv, known);
    const char *in = cli_opt(argc, argv, "--in", NULL);
    long max_err = cli_opt_int(argc, argv, "--max-errors", 20);
    if (!in) {
        data_usage(stderr);
        return 2;
    }
    trl_err e;
    size_t len;
    char *text = trl_read_file(in, &len, &e);
    if (!text) {
        fprintf(stderr, "toolrl data validate: %s\n", e.msg);
        return 1;
    }
    long lines = 0, bad = 0;
    size_t pos = 0;
    while (pos < len) {
        const char *nl = memchr(text + pos, '\n', len - pos);
        size_t end = nl ? (size_t)(nl - text) : len;
        lines++;
        if (example_validate_line_at(text + pos, end - pos, lines, &e)) {
            if (bad < max_err) printf("%s:%ld: %s\n", in, lines, e.msg);
            bad++;
        }
        pos = end + 1;
    }
    free(text);
    printf("%s: %ld lines, %ld valid, %ld invalid\n", in, lines, lines - bad, bad);
    return bad ? 1 : 0;
}

// Is label in the comma-separated list?
static int in_list(const char *list, const char *label) {
    size_t n = strlen(label);
    for (const char *p = list; p && *p;) {
        const char *c = strchr(p, ',');
        size_t l = c ? (size_t)(c - p) : strlen(p);
        if (l == n && !strncmp(p, label, n)) return 1;
        p = c ? c + 1 : NULL;
    }
    return 0;
}

static int data_mix(int argc, char **argv) {
    static const char *const known[] = {"--shared", "--out-dir", "--val-frac", "--seed", "--only", "--add", NULL};
    cli_check_opts(argc, argv, known);
    const char *env = getenv("TOOLRL_SHARED");
    const char *shared = cli_opt(argc, argv, "--shared", env && *env ? env : "../shared");
    const char *only = cli_opt(argc, argv, "--only", NULL);
    mix_source src[MIX_MAX_SOURCES];
    size_t n = 0;
    for (size_t i = 0; i < MIX_DEFAULT_N; i++)
        if (!only || in_list(only, MIX_DEFAULT_SOURCES[i].label)) src[n++] = MIX_DEFAULT_SOURCES[i];
    if (only) {  // every label named must exist
        for (const char *p = only; *p;) {
            const char *c = strchr(p, ',');
            char lab[64];
            snprintf(lab, sizeof(lab), "%.*s", (int)(c ? c - p : (long)strlen(p)), p);
            if (!mix_default_source(lab)) {
                fprintf(stderr, "toolrl data mix: --only: no source '%s'\n", lab);
                return 2;
            }
            p = c ? c + 1 : p + strlen(p);
        }
    }
    // --add LABEL=FORMAT:PATH, repeatable: a further source (a file or folder path as given).
    for (int i = 1; i + 1 < argc; i++) {
        if (strcmp(argv[i], "--add")) continue;
        char *spec = argv[++i], *eq = strchr(spec, '='), *colon = eq ? strchr(eq, ':') : NULL;
        trl_err fe;
        convert_format f;
        if (!eq || !colon || eq == spec || !colon[1]) {
            fprintf(stderr, "toolrl data mix: --add wants LABEL=FORMAT:PATH, got '%s'\n", spec);
            return 2;
        }
        *eq = 0;
        *colon = 0;
        if (convert_format_parse(eq + 1, &f, &fe)) {
            fprintf(stderr, "toolrl data mix: %s\n", fe.msg);
            return 2;
        }
        if (n == MIX_MAX_SOURCES) {
            fprintf(stderr, "toolrl data mix: at most %d sources\n", MIX_MAX_SOURCES);
            return 2;
        }
        src[n++] = (mix_source){.label = spec, .format = f, .path = {colon + 1}, .in_repo = 1, .override = 1};
    }
    char data_dir[4096];
    snprintf(data_dir, sizeof(data_dir), "%s/data", shared);
    mix_config cfg = {.data_dir = data_dir,
                      .repo_dir = ".",
                      .out_dir = cli_opt(argc, argv, "--out-dir", "var/data"),
                      .sources = src,
                      .n_sources = n,
                      .val_frac = cli_opt_float(argc, argv, "--val-frac", 0.02),
                      .seed = (unsigned long)cli_opt_int(argc, argv, "--seed", 1)};
    mix_report rep;
    trl_err e;
    if (mix_build(&cfg, &rep, &e)) {
        fprintf(stderr, "toolrl data mix: %s\n", e.msg);
        return 1;
    }
    mix_report_print(&rep, stdout);
    printf("wrote %s/train.jsonl (%ld rows) and %s/val.jsonl (%ld rows; --val-frac %g --seed %lu)\n", cfg.out_dir,
           rep.train, cfg.out_dir, rep.val, cfg.val_frac, cfg.seed);
    return 0;
}

int cli_data(int argc, char **argv) {
    if (argc < 2 || !strcmp(argv[1], "-h") || !strcmp(argv[1], "--help")) {
        data_usage(argc < 2 ? stderr : stdout);
        return argc < 2 ? 2 : 0;
    }
    if (!strcmp(argv[1], "convert")) return data_convert(argc - 1, argv + 1);
    if (!strcmp(argv[1], "validate")) return data_validate(argc - 1, argv + 1);
    if (!strcmp(argv[1], "mix")) return data_mix(argc - 1, argv + 1);
    fprintf(stderr, "toolrl data: unknown subcommand '%s'\n", argv[1]);
    data_usage(stderr);
    return 2;
}
