// test_eval_journal.c: the evaluation journal (eval/runner.h) on the tiny model and the real
// BFCL files: a run stopped part way (its journal cut, the last line half written) and
// started again generates only what is missing and reports exactly what one uninterrupted
// run reports; a journal written under other settings is refused.
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "eval/runner.h"
#include "model/model.h"
#include "tests/support/tiny_model.h"

typedef struct {
    tiny_model_fixture t;
    char dir[256], journal[300], cut[300];
} fx;

static int setup(void **state) {
    fx *f = calloc(1, sizeof(*f));
    if (!f || tiny_model_fixture_open(&f->t, 4096)) return -1;
    snprintf(f->dir, sizeof(f->dir), "%s", f->t.dir);
    snprintf(f->journal, sizeof(f->journal), "%s/j.jsonl", f->dir);
    snprintf(f->cut, sizeof(f->cut), "%s/cut.jsonl", f->dir);
    *state = f;
    return 0;
}

static int teardown(void **state) {
    fx *f = *state;
    tiny_model_fixture_close(&f->t);
    free(f);
    return 0;
}

static int calls;  // progress callbacks with a newly finished example
static void count(void *ctx, int done, int total) {
    (void)total;
    int *last = ctx;
    if (done > *last) calls += done - *last;
    *last = done;
}

static char *report_rows(const eval_run *r, const char *path) {
    trl_err e = {{0}};
    assert_int_equal(eval_run_report(r, path, "tiny", &e), TRL_OK);
    char *txt = trl_read_file(path, NULL, &e);
    assert_non_null(txt);
    return txt;
}

static int count_lines(const char *path) {
    FILE *f = fopen(path, "r");
    int n = 0, c;
    while (f && (c = fgetc(f)) != EOF) n += c == '\n';
    if (f) fclose(f);
    return n;
}

static void test_resume_matches_one_run(void **state) {
    fx *f = *state;
    trl_err e = {{0}};
    int last = 0;
    eval_opts o = {.suite = "bfcl", .categories = "simple_python,irrelevance", .limit = 3, .batch = 2, .max_new = 6,
                   .n_ctx = 4096, .progress = count, .ctx = &last, .journal = f->journal, .journal_key = "tiny"};
    eval_run r;
    calls = 0;
    assert_int_equal(eval_run_all(&r, &f->t.m, &o, &e), TRL_OK);
    assert_int_equal(eval_run_count(&r), 6);
    assert_int_equal(calls, 6);
    char p1[320];
    snprintf(p1, sizeof(p1), "%s/r1.json", f->dir);
    char *one = report_rows(&r, p1);
    eval_run_free(&r);
    assert_int_equal(count_lines(f->journal), 7);  // the header and six examples

    // Keep the header and two examples, then half a line, as a kill in mid-write leaves it.
    FILE *in = fopen(f->journal, "r"), *out = fopen(f->cut, "w");
    char line[65536];
    for (int i = 0; i < 3 && fgets(line, sizeof(line), in); i++) fputs(line, out);
    assert_non_null(fgets(line, sizeof(line), in));
    fwrite(line, 1, strlen(line) / 2, out);
    fclose(in);
    fclose(out);

    o.journal = f->cut;
    last = 0;
    calls = 0;
    assert_int_equal(eval_run_all(&r, &f->t.m, &o, &e), TRL_OK);
    assert_int_equal(last, 6);
    assert_int_equal(calls, 6);  // two came from the journal (the first callback), four were generated
    char p2[320];
    snprintf(p2, sizeof(p2), "%s/r2.json", f->dir);
    char *two = report_rows(&r, p2);
    eval_run_free(&r);
    assert_string_equal(one, two);
    free(one);
    free(two);
    // The half line stays unreadable on its own line; the four new examples follow it.
    assert_int_equal(count_lines(f->cut), 8);

    // A third run finds everything done and generates nothing.
    last = 0;
    assert_int_equal(eval_run_all(&r, &f->t.m, &o, &e), TRL_OK);
    assert_int_equal(count_lines(f->cut), 8);
    eval_run_free(&r);
}

static void test_other_settings_refused(void **state) {
    fx *f = *state;
    trl_err e = {{0}};
    int last = 0;
    char path[320];
    snprintf(path, sizeof(path), "%s/other.jsonl", f->dir);
    eval_opts o = {.suite = "bfcl", .categories = "irrelevance", .limit = 1, .batch = 1, .max_new = 4, .n_ctx = 4096,
                   .progress = count, .ctx = &last, .journal = path, .journal_key = "tiny"};
    eval_run r;
    assert_int_equal(eval_run_all(&r, &f->t.m, &o, &e), TRL_OK);
    eval_run_free(&r);
    o.max_new = 5;
    assert_int_equal(eval_run_all(&r, &f->t.m, &o, &e), TRL_ERR);
    assert_non_null(strstr(e.msg, "written by another run"));
    eval_run_free(&r);
    o.max_new = 4;
    o.journal_key = "another model";
    assert_int_equal(eval_run_all(&r, &f->t.m, &o, &e), TRL_ERR);
    eval_run_free(&r);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_resume_matches_one_run),
        cmocka_unit_test(test_other_settings_refused),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
