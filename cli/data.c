// data.c: `toolrl data`: dataset conversion into the unified training format (convert),
// validation (validate) and the training mix of every shared source (mix).
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/pyjson.h"
#include "cli/cli.h"
#include "data/convert.h"
#include "data/example.h"
#include "data/mix.h"

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

static const cli_option CONVERT_OPTIONS[] = {
    {.name = "--format", .arg = "FORMAT",
     .required = 1,
     .help = "the source's format: xlam, toolace, toolrl, openai, seal, callnavi, glaive, toolalpaca, nestful, sgd"},
    {.name = "--in", .arg = "FILE|FOLDER", .required = 1, .help = "the source file or folder"},
    {.name = "--out", .arg = "FILE.jsonl", .required = 1, .help = "the converted examples"},
    {.name = "--tools", .arg = "FILE",
     .help = "the tools side file of seal, callnavi, nestful, sgd (default: found next to the input)"},
    {.name = "--source", .arg = "NAME", .help = "write NAME as every example's \"source\" (default: the converter's)"},
    {.name = "--drop-no-call", .help = "drop examples whose answer is [] (no call; kept by default)"},
    {.name = "--no-repair", .help = "ToolACE: do not repair truncated function names"},
    {0}};

static int data_convert(const cli_args *a) {
    const char *fmt = cli_get(a, "--format");
    const char *in = cli_get(a, "--in");
    const char *out = cli_get(a, "--out");
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
    convert_opts o = {.drop_no_call = cli_get_flag(a, "--drop-no-call"),
                      .no_repair = cli_get_flag(a, "--no-repair"),
                      .side_path = cli_get(a, "--tools"),
                      .source = cli_get(a, "--source")};
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

static const cli_command DATA_CONVERT = {.name = "data convert",
                                         .summary = "Convert a dataset into the unified training format (JSONL).",
                                         .usage = "--format FORMAT --in FILE|FOLDER --out FILE.jsonl [options]",
                                         .options = CONVERT_OPTIONS,
                                         .run = data_convert};

static const cli_option VALIDATE_OPTIONS[] = {
    {.name = "--in", .arg = "FILE.jsonl", .required = 1, .help = "the file to check"},
    {.name = "--max-errors", .arg = "N", .def = "20", .help = "invalid lines printed (all are counted)"},
    {0}};

static int data_validate(const cli_args *a) {
    const char *in = cli_get(a, "--in");
    long max_err = cli_get_int(a, "--max-errors");
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

static const cli_command DATA_VALIDATE = {.name = "data validate",
                                          .summary = "Check every line of a unified-format JSONL file.",
                                          .usage = "--in FILE.jsonl [--max-errors N]",
                                          .options = VALIDATE_OPTIONS,
                                          .run = data_validate};

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

static const cli_option MIX_OPTIONS[] = {
    {.name = "--shared", .arg = "DIR", .help = "the shared data folder (computed: $TOOLRL_SHARED, else ../shared)"},
    {.name = "--out-dir", .arg = "DIR", .def = "var/data", .help = "where train.jsonl and val.jsonl go"},
    {.name = "--val-frac", .arg = "F", .def = "0.02", .help = "fraction of the examples held out for validation"},
    {.name = "--seed", .arg = "S", .def = "1", .help = "seed of the split (and of which rows get an irrelevance twin)"},
    {.name = "--irrelevance", .arg = "F", .def = "0",
     .help = "share of single-turn rows with calls that also enter as an irrelevance twin: the tools they call removed, "
             "answer []"},
    {.name = "--only", .arg = "LABEL,...", .help = "only these default sources (default: all)"},
    {.name = "--add", .arg = "LABEL=FORMAT:PATH",
     .help = "a further source, a file or folder; repeatable (default: none)"},
    {0}};

static const cli_env MIX_ENV[] = {
    {.name = "TOOLRL_SHARED", .help = "the shared data folder when --shared is not given"}, {0}};

static int data_mix(const cli_args *a) {
    const char *env = getenv("TOOLRL_SHARED");
    const char *shared = cli_get(a, "--shared");
    if (!shared) shared = env && *env ? env : "../shared";
    const char *only = cli_get(a, "--only");
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
    for (int i = 0; (i = cli_get_next(a, "--add", i));) {
        char *spec = a->argv[i], *eq = strchr(spec, '='), *colon = eq ? strchr(eq, ':') : NULL;
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
                      .out_dir = cli_get(a, "--out-dir"),
                      .sources = src,
                      .n_sources = n,
                      .val_frac = cli_get_float(a, "--val-frac"),
                      .seed = (unsigned long)cli_get_int(a, "--seed"),
                      .irrelevance_frac = cli_get_float(a, "--irrelevance")};
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

static const cli_command DATA_MIX = {.name = "data mix",
                                     .summary = "Build the training mix from every shared source: converted, filtered, "
                                                "deduplicated, evaluation questions dropped, split.",
                                     .usage = "[--shared DIR] [--out-dir var/data] [options]",
                                     .options = MIX_OPTIONS,
                                     .env = MIX_ENV,
                                     .run = data_mix};

static const cli_command *const DATA_COMMANDS[] = {&DATA_CONVERT, &DATA_VALIDATE, &DATA_MIX, NULL};

const cli_command CLI_DATA = {.name = "data",
                              .summary = "Training data: convert datasets, validate files, build the training mix.",
                              .usage = "convert|validate|mix [options]",
                              .subcommands = DATA_COMMANDS};
