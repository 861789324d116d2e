// test_cli.c: every subcommand's option table reaches its --help: the built `toolrl` (next to
// this test's folder) answers `toolrl CMD --help` with exit status 0 and lists every option of
// CMD's table with its placeholder, help and default; `toolrl help CMD` says the same; an
// unknown option, a missing value and a missing required option exit 2 with one line naming
// the command. The commands are walked from the same tables (CLI_TOOLRL), so a new command or
// option is covered at once. The getters take defaults from the table and find repeated options.
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>
#include <cmocka.h>

#include "cli/cli.h"
#include "data/convert.h"

static char g_toolrl[4200];

typedef struct {
    int status;      // exit status; -1 when it did not exit normally
    char *out, *err;  // malloc'd
} run_result;

static char *slurp(FILE *f) {
    fflush(f);
    long n = ftell(f);
    char *s = malloc((size_t)n + 1);
    assert_non_null(s);
    rewind(f);
    size_t r = fread(s, 1, (size_t)n, f);
    s[r] = 0;
    fclose(f);
    return s;
}

// Runs toolrl with the words of `words` (space-separated) and then the extra arguments.
static run_result run(const char *words, const char *a1, const char *a2) {
    char buf[256], *argv[16];
    int n = 0;
    argv[n++] = g_toolrl;
    snprintf(buf, sizeof(buf), "%s", words);
    for (char *w = strtok(buf, " "); w && n < 12; w = strtok(NULL, " ")) argv[n++] = w;
    if (a1) argv[n++] = (char *)a1;
    if (a2) argv[n++] = (char *)a2;
    argv[n] = NULL;
    FILE *out = tmpfile(), *err = tmpfile();
    assert_non_null(out);
    assert_non_null(err);
    fflush(stdout);
    fflush(stderr);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        dup2(fileno(out), 1);
        dup2(fileno(err), 2);
        execv(g_toolrl, argv);
        _exit(127);
    }
    int st;
    assert_int_equal(waitpid(pid, &st, 0), pid);
    fseek(out, 0, SEEK_END);
    fseek(err, 0, SEEK_END);
    return (run_result){.status = WIFEXITED(st) ? WEXITSTATUS(st) : -1, .out = slurp(out), .err = slurp(err)};
}

static void run_free(run_result *r) {
    free(r->out);
    free(r->err);
}

// The option's line in a help text: "  NAME ARG", then (maybe on the next line) its help, then
// " (required)" for a required option, else " (default: DEF)" when it has one.
static void check_option_listed(const char *cmd, const char *help, const cli_option *o) {
    char left[128], want[1024];
    snprintf(left, sizeof(left), "\n  %s%s%s", o->name, o->arg ? " " : "", o->arg ? o->arg : "");
    const char *at = strstr(help, left);
    if (!at) fail_msg("toolrl %s --help does not list %s", cmd, left + 3);
    at += strlen(left);
    if (*at != ' ' && *at != '\n') fail_msg("toolrl %s --help: %s is followed by '%.10s'", cmd, left + 3, at);
    if (!o->help || !o->help[0]) fail_msg("toolrl %s: option %s has no help", cmd, o->name);
    while (*at == ' ' || *at == '\n') at++;
    if (o->required)
        snprintf(want, sizeof(want), "%s (required)\n", o->help);
    else
        snprintf(want, sizeof(want), "%s%s%s%s", o->help, o->def ? " (default: " : "", o->def ? o->def : "",
                 o->def ? ")\n" : "\n");
    if (strncmp(at, want, strlen(want)))
        fail_msg("toolrl %s --help: %s: want '%s', got '%.*s'", cmd, o->name, want, (int)strlen(want), at);
}

static void check_command(const cli_command *c) {
    const char *cmd = c->name;
    run_result r = run(cmd, "--help", NULL);
    if (r.status != 0) fail_msg("toolrl %s --help: exit status %d (%s)", cmd, r.status, r.err);
    char usage[256];
    snprintf(usage, sizeof(usage), "usage: toolrl%s%s %s\n", cmd[0] ? " " : "", cmd, c->usage);
    if (strncmp(r.out, usage, strlen(usage))) fail_msg("toolrl %s --help: no usage line '%s'", cmd, usage);
    assert_non_null(c->summary);
    assert_non_null(strstr(r.out, c->summary));
    for (const cli_option *o = c->options; o && o->name; o++) check_option_listed(cmd, r.out, o);
    for (const cli_env *v = c->env; v && v->name; v++) {
        char line[256];
        snprintf(line, sizeof(line), "\n  %-24s %s\n", v->name, v->help);
        if (!strstr(r.out, line)) fail_msg("toolrl %s --help does not list %s", cmd, v->name);
    }
    for (const cli_command *const *s = c->subcommands; s && *s; s++) {
        const char *w = strrchr((*s)->name, ' ');
        char line[512];
        snprintf(line, sizeof(line), "\n  %-10s %s\n", w ? w + 1 : (*s)->name, (*s)->summary);
        if (!strstr(r.out, line)) fail_msg("toolrl %s --help does not list %s", cmd, (*s)->name);
    }
    // `toolrl help CMD` and -h say the same.
    char words[128];
    snprintf(words, sizeof(words), "help %s", cmd);
    run_result h = run(words, NULL, NULL), h2 = run(cmd, "-h", NULL);
    assert_int_equal(h.status, 0);
    assert_int_equal(h2.status, 0);
    assert_string_equal(h.out, r.out);
    assert_string_equal(h2.out, r.out);
    run_free(&h);
    run_free(&h2);
    run_free(&r);

    // An unknown option (or subcommand): exit 2, one line naming the command and its --help.
    char name[96], want[256];
    snprintf(name, sizeof(name), "toolrl%s%s", cmd[0] ? " " : "", cmd);
    r = run(cmd, "--no-such-option", NULL);
    assert_int_equal(r.status, 2);
    snprintf(want, sizeof(want), "%s: unknown %s '--no-such-option'; try '%s --help'\n", name,
             !c->subcommands ? "option" : cmd[0] ? "subcommand" : "command", name);
    assert_string_equal(r.err, want);
    assert_string_equal(r.out, "");
    run_free(&r);

    // Every option that takes a value, given none: exit 2 naming the command and the option.
    for (const cli_option *o = c->options; o && o->name; o++) {
        if (!o->arg) continue;
        r = run(cmd, o->name, NULL);
        assert_int_equal(r.status, 2);
        snprintf(want, sizeof(want), "%s: missing value for option '%s'; try '%s --help'\n", name, o->name, name);
        assert_string_equal(r.err, want);
        run_free(&r);
    }
    // Without its required options: exit 2 naming the first of them, before anything runs.
    for (const cli_option *o = c->options; o && o->name; o++) {
        if (!o->required) continue;
        r = run(cmd, NULL, NULL);
        assert_int_equal(r.status, 2);
        snprintf(want, sizeof(want), "%s: missing required option '%s'; try '%s --help'\n", name, o->name, name);
        assert_string_equal(r.err, want);
        assert_string_equal(r.out, "");
        run_free(&r);
        break;
    }
    for (const cli_command *const *s = c->subcommands; s && *s; s++) check_command(*s);
}

static void test_every_command_help(void **state) {
    (void)state;
    check_command(&CLI_TOOLRL);
}

static void test_help_lists_convert_formats(void **state) {
    (void)state;
    run_result r = run("data convert", "--help", NULL);
    assert_int_equal(r.status, 0);
    assert_non_null(strstr(r.out, convert_format_list()));  // the table's list is the converters' list
    run_free(&r);
}

static void test_integer_checked(void **state) {
    (void)state;
    run_result r = run("serve --model m", "--port", "eighty");
    assert_int_equal(r.status, 2);
    assert_string_equal(r.err, "toolrl serve: option --port expects an integer, got 'eighty'\n");
    run_free(&r);
    r = run("data mix", "--val-frac", "x");
    assert_int_equal(r.status, 2);
    assert_string_equal(r.err, "toolrl data mix: option --val-frac expects a number, got 'x'\n");
    run_free(&r);
}

static void test_getters(void **state) {
    (void)state;
    char *none[] = {"serve", NULL};
    cli_args a = {&CLI_SERVE, 1, none};
    assert_string_equal(cli_get(&a, "--host"), "127.0.0.1");
    assert_int_equal(cli_get_int(&a, "--port"), 8080);
    assert_null(cli_get(&a, "--api-key"));
    assert_int_equal(cli_get_flag(&a, "--no-db"), 0);
    // A value that looks like an option is a value; an option is found only where one can be.
    char *some[] = {"serve", "--model", "--port", "--no-db", "--port", "81", "--host", "h", NULL};
    a = (cli_args){&CLI_SERVE, 8, some};
    assert_string_equal(cli_get(&a, "--model"), "--port");
    assert_int_equal(cli_get_int(&a, "--port"), 81);
    assert_int_equal(cli_get_flag(&a, "--no-db"), 1);
    assert_string_equal(cli_get(&a, "--host"), "h");
    char *gen[] = {"generate", "-n", "3", NULL};
    a = (cli_args){&CLI_GENERATE, 3, gen};
    assert_null(cli_get(&a, "--ctx"));  // computed by the command
    assert_float_equal(cli_get_float(&a, "--top-p"), 1.0, 0);
    assert_int_equal(cli_get_int(&a, "-n"), 3);
}

static void test_repeated_option(void **state) {
    (void)state;
    const cli_command *mix = NULL;
    for (const cli_command *const *s = CLI_DATA.subcommands; *s; s++)
        if (!strcmp((*s)->name, "data mix")) mix = *s;
    assert_non_null(mix);
    char *argv[] = {"mix", "--add", "a=xlam:x", "--seed", "2", "--add", "b=xlam:y", NULL};
    cli_args a = {mix, 7, argv};
    int i = cli_get_next(&a, "--add", 0);
    assert_int_equal(i, 2);
    i = cli_get_next(&a, "--add", i);
    assert_int_equal(i, 6);
    assert_int_equal(cli_get_next(&a, "--add", i), 0);
}

int main(void) {
    char self[4096];
    ssize_t n = readlink("/proc/self/exe", self, sizeof(self) - 1);
    if (n <= 0) return 1;
    self[n] = 0;
    *strrchr(self, '/') = 0;  // BUILD/tests
    snprintf(g_toolrl, sizeof(g_toolrl), "%s/../toolrl", self);
    if (access(g_toolrl, X_OK)) {
        fprintf(stderr, "test_cli: %s is not built\n", g_toolrl);
        return 1;
    }
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_every_command_help), cmocka_unit_test(test_help_lists_convert_formats),
        cmocka_unit_test(test_integer_checked),    cmocka_unit_test(test_getters),
        cmocka_unit_test(test_repeated_option),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
