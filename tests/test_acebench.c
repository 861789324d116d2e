// test_acebench.c: the ACEBench checker (agreement with the official ACEBench evaluation code
// on every candidate of tests/fixtures/acebench_verdicts.jsonl, which covers every shared row),
// the Tool-N1 mapping of the special files, the question -> chat conversion and prompts, and
// the tallies. Shared data is read from $TOOLRL_SHARED or ../shared.
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/pyjson.h"
#include "data/pycall.h"
#include "eval/acebench.h"
#include "eval/runner.h"
#include "model/model.h"
#include "protocol/toolprompt.h"
#include "store/store.h"
#include "tests/support/shared_data.h"
#include "tests/support/tiny_model.h"

static cJSON *J(const char *text) {
    cJSON *v = pyjson_parse(text, strlen(text), NULL);
    assert_non_null(v);
    return v;
}

// A candidate in the official output format as the calls our checker takes: the Python call
// list read by data/pycall.c ("[]" is an empty list; text that is no call list gives NULL, as
// the official decoder fails on it). Spaces stay: the checker removes them itself.
static cJSON *candidate_calls(const char *text) {
    size_t n = strlen(text);
    const char *s = text;
    while (n && (*s == ' ' || *s == '\n')) s++, n--;
    while (n && (s[n - 1] == ' ' || s[n - 1] == '\n')) n--;
    if (n == 2 && s[0] == '[' && s[1] == ']') return cJSON_CreateArray();
    return pycall_parse_list(s, n);
}

// ---------------------------------------------------------------------------------------------
// Agreement with the official code

static void test_fixture_agreement(void **state) {
    (void)state;
    char dir[1024];
    NEED_SHARED(dir, "acebench");
    size_t len;
    trl_err e;
    char *fx = fixture_read("tests/fixtures/acebench_verdicts.jsonl", &len);
    acebench_file files[15];
    size_t shared_rows = 0;
    for (size_t c = 0; c < 15; c++) {
        int rc = acebench_file_load(dir, ACEBENCH_CATEGORIES[c], 0, &files[c], &e);
        if (rc) fprintf(stderr, "%s\n", e.msg);
        assert_int_equal(rc, TRL_OK);
        shared_rows += files[c].n;
    }
    // seen[c][i]: candidates of row i of file c
    size_t *seen[15];
    for (size_t c = 0; c < 15; c++) assert_non_null(seen[c] = calloc(files[c].n + 1, sizeof(size_t)));
    size_t cands = 0, agree = 0, valid = 0, raised = 0, pos = 0;
    for (cJSON *row; (row = fixture_next_row(fx, len, &pos));) {
        const char *cat = cJSON_GetObjectItemCaseSensitive(row, "category")->valuestring;
        const char *id = cJSON_GetObjectItemCaseSensitive(row, "id")->valuestring;
        const char *out = cJSON_GetObjectItemCaseSensitive(row, "output")->valuestring;
        const cJSON *want = cJSON_GetObjectItemCaseSensitive(row, "valid");
        const char *etype = cJSON_GetObjectItemCaseSensitive(row, "error_type")->valuestring;
        size_t c = 0;
        while (c < 15 && strcmp(ACEBENCH_CATEGORIES[c], cat)) c++;
        assert_true(c < 15);
        size_t i = 0;
        while (i < files[c].n && strcmp(files[c].rows[i].id, id)) i++;
        assert_true(i < files[c].n);
        const acebench_row *r = &files[c].rows[i];
        seen[c][i]++;
        acebench_verdict v;
        int rc, got;
        if (r->kind == ACE_NORMAL || r->kind == ACE_MULTI_TURN) {
            cJSON *calls = candidate_calls(out);
            rc = acebench_check_normal(r->functions, r->ground_truth, calls, &v, &e);
            got = v.valid;
            cJSON_Delete(calls);
        } else {
            rc = acebench_check_special(r->kind, r->ground_truth, out, TOOLPROMPT_TOOLN1, &v, &e);
            got = v.strict;
        }
        int ok;
        if (cJSON_IsNull(want)) {
            ok = rc == TRL_ERR;  // the official code raised on this row
            raised++;
        } else {
            ok = rc == TRL_OK && got == cJSON_IsTrue(want) && !strcmp(got ? "" : v.error_type, etype);
            valid += cJSON_IsTrue(want);
        }
        if (ok) {
            agree++;
        } else if (cands - agree < 10) {
            fprintf(stderr, "MISMATCH %s (%s): official %s/%s, ours rc=%d %s/%s %s\n  output: %.400s\n", id,
                    cJSON_GetObjectItemCaseSensitive(row, "variant")->valuestring,
                    cJSON_IsTrue(want) ? "valid" : "invalid", etype, rc, got ? "valid" : "invalid", v.error_type,
                    rc ? e.msg : v.error, out);
        }
        cands++;
        cJSON_Delete(row);
    }
    free(fx);
    size_t uncovered = 0;
    for (size_t c = 0; c < 15; c++) {
        for (size_t i = 0; i < files[c].n; i++) uncovered += seen[c][i] == 0;
        free(seen[c]);
        acebench_file_free(&files[c]);
    }
    printf("official ACEBench agreement: %zu shared rows, %zu candidates (%zu valid, %zu raised), %zu agree\n",
           shared_rows, cands, valid, raised, agree);
    assert_int_equal(agree, cands);
    assert_int_equal(uncovered, 0);  // every shared row has candidates
    assert_true(cands >= 3 * shared_rows);
}

// ---------------------------------------------------------------------------------------------
// Hand-made cases

static const char *FUNCS =
    "[{\"name\": \"trip.plan\", \"parameters\": {\"type\": \"object\", \"properties\": {"
    "\"city\": {\"type\": \"string\"}, \"days\": {\"type\": \"integer\"}, \"budget\": {\"type\": \"float\"},"
    "\"tags\": {\"type\": \"array\", \"items\": {\"type\": \"string\"}}, \"opts\": {\"type\": \"object\","
    "\"properties\": {\"pace\": {\"type\": \"string\"}, \"sites\": {\"type\": \"array\"}}}, \"fast\": {\"type\": \"boolean\"}},"
    "\"required\": [\"city\"]}}, {\"name\": \"ping\", \"parameters\": {}}]";

static void normal_case(const char *gt, const char *calls, int want, const char *want_type) {
    cJSON *f = J(FUNCS), *g = J(gt), *c = calls ? J(calls) : NULL;
    acebench_verdict v;
    trl_err e;
    assert_int_equal(acebench_check_normal(f, g, c, &v, &e), TRL_OK);
    if (v.valid != want || strcmp(v.error_type, want_type))
        fprintf(stderr, "case %s -> %d %s (%s), wanted %d %s\n", calls ? calls : "None", v.valid, v.error_type,
                v.error, want, want_type);
    assert_int_equal(v.valid, want);
    assert_string_equal(v.error_type, want_type);
    cJSON_Delete(f);
    cJSON_Delete(g);
    cJSON_Delete(c);
}

static void test_normal_rules(void **state) {
    (void)state;
    const char *gt = "{\"trip.plan\": {\"city\": \"New York\", \"days\": 3, \"tags\": [\"Art\", \"food-trucks\"]}}";
    normal_case(gt, "[{\"name\": \"trip.plan\", \"arguments\": {\"city\": \"New York\", \"days\": 3}}]", 1, "");
    // strings: the answer, standardised, is a substring of the value, standardised
    normal_case(gt, "[{\"name\": \"trip.plan\", \"arguments\": {\"city\": \"new-york city\"}}]", 1, "");
    normal_case(gt, "[{\"name\": \"trip.plan\", \"arguments\": {\"city\": \"York\"}}]", 0, "value_error:string");
    // numbers are only type-checked, as in the official code
    normal_case(gt, "[{\"name\": \"trip.plan\", \"arguments\": {\"city\": \"NY New York\", \"days\": 30}}]", 1, "");
    normal_case(gt, "[{\"name\": \"trip.plan\", \"arguments\": {\"city\": \"New York\", \"days\": \"3\"}}]", 0, "type_error");
    // lists: equal after standardisation, in order
    normal_case(gt, "[{\"name\": \"trip.plan\", \"arguments\": {\"city\": \"New York\", \"tags\": [\"art\", \"Food Trucks\"]}}]", 1, "");
    normal_case(gt, "[{\"name\": \"trip.plan\", \"arguments\": {\"city\": \"New York\", \"tags\": [\"food-trucks\", \"Art\"]}}]", 0,
                "value_error:list/tuple");
    // required, extra and unknown parameters; no arguments
    normal_case(gt, "[{\"name\": \"trip.plan\", \"arguments\": {\"days\": 3}}]", 0, "lack_args");
    normal_case(gt, "[{\"name\": \"trip.plan\", \"arguments\": {\"city\": \"New York\", \"budget\": 9.5}}]", 0, "addition_args");
    normal_case(gt, "[{\"name\": \"trip.plan\", \"arguments\": {}}]", 0, "wrong_param");
    // names and counts
    normal_case(gt, "[{\"name\": \"trip.plans\", \"arguments\": {\"city\": \"New York\"}}]", 0, "function_mismatch");
    normal_case(gt, "[]", 0, "wrong functions number");
    normal_case(gt, NULL, 0, "wrong_output_format");
    normal_case(gt, "[{\"name\": \"trip.plan\", \"arguments\": \"{}\"}]", 0, "wrong_output_format");
    // "_<n>" suffixes are stripped; parallel calls in any order
    const char *par = "{\"trip.plan_1\": {\"city\": \"Rome\"}, \"trip.plan_2\": {\"city\": \"Oslo\"}}";
    normal_case(par, "[{\"name\": \"trip.plan\", \"arguments\": {\"city\": \"Oslo\"}}, {\"name\": \"trip.plan\", \"arguments\": {\"city\": \"Rome\"}}]", 1, "");
    normal_case(par, "[{\"name\": \"trip.plan\", \"arguments\": {\"city\": \"Oslo\"}}]", 0, "wrong functions number");
    // alternatives: any one passes
    normal_case("[{\"trip.plan\": {\"city\": \"Rome\"}}, {\"trip.plan\": {\"city\": \"Oslo\"}}]",
                "[{\"name\": \"trip.plan\", \"arguments\": {\"city\": \"Oslo\"}}]", 1, "");
    // dicts: key by key; str(answer) in str(value) for non-dict values; spaces are removed from
    // the model's strings first, so a list of strings with spaces inside a dict never matches
    const char *dgt = "{\"trip.plan\": {\"city\": \"Rome\", \"opts\": {\"pace\": \"slow\", \"sites\": [\"Old Town\"]}}}";
    normal_case(dgt, "[{\"name\": \"trip.plan\", \"arguments\": {\"city\": \"Rome\", \"opts\": {\"pace\": \"Slow\", \"sites\": [\"Old Town\"]}}}]",
                0, "value_error");
    normal_case("{\"trip.plan\": {\"city\": \"Rome\", \"opts\": {\"pace\": \"slow\", \"sites\": [\"Forum\"]}}}",
                "[{\"name\": \"trip.plan\", \"arguments\": {\"city\": \"Rome\", \"opts\": {\"pace\": \"Slow\", \"sites\": [\"Forum\"]}}}]", 1, "");
    normal_case(dgt, "[{\"name\": \"trip.plan\", \"arguments\": {\"city\": \"Rome\", \"opts\": {\"pace\": \"slow\"}}}]", 0, "value_error");
    // a function without parameters takes none
    normal_case("{\"ping\": {}}", "[{\"name\": \"ping\", \"arguments\": {}}]", 1, "");
}

static void special_case(acebench_kind k, const char *gt, const char *out, int want_valid, int want_strict) {
    cJSON *g = J(gt);
    acebench_verdict v;
    trl_err e;
    assert_int_equal(acebench_check_special(k, g, out, TOOLPROMPT_TOOLN1, &v, &e), TRL_OK);
    if (v.valid != want_valid || v.strict != want_strict)
        fprintf(stderr, "special %s -> valid %d strict %d, wanted %d %d\n", out, v.valid, v.strict, want_valid, want_strict);
    assert_int_equal(v.valid, want_valid);
    assert_int_equal(v.strict, want_strict);
    cJSON_Delete(g);
}

static void test_special_mapping(void **state) {
    (void)state;
    const char *call = "<think>ok</think><tool_call>[{\"name\": \"f\", \"arguments\": {\"a\": 1}}]</tool_call>";
    const char *irr = "\"Due to the limitations of the function, I cannot solve this problem.\"";
    special_case(ACE_SPECIAL_IRRELEVANT, irr, "Due to the limitations of the function, I cannot solve this problem.", 1, 1);
    special_case(ACE_SPECIAL_IRRELEVANT, irr, "<think>no tool fits</think>None of the functions can do this.", 1, 0);
    special_case(ACE_SPECIAL_IRRELEVANT, irr, "<tool_call>[]</tool_call>", 1, 0);
    special_case(ACE_SPECIAL_IRRELEVANT, irr, call, 0, 0);
    const char *inc = "{\"book_flight\": [\"date\", \"seat\"]}";
    special_case(ACE_SPECIAL_INCOMPLETE, inc, "Missing necessary parameters (date, seat) for the api (book_flight)", 1, 1);
    special_case(ACE_SPECIAL_INCOMPLETE, inc, "Missing necessary parameters (date) for the api (book_flight)", 1, 0);
    special_case(ACE_SPECIAL_INCOMPLETE, inc, "Which date, and which seat?", 1, 0);
    special_case(ACE_SPECIAL_INCOMPLETE, inc, call, 0, 0);
    const char *err = "{\"date\": [\"31-Feb-2021\"]}";
    special_case(ACE_SPECIAL_ERROR_PARAM, err, "There is incorrect value (31-Feb-2021) for the parameters (date).", 1, 1);
    special_case(ACE_SPECIAL_ERROR_PARAM, err, "31-Feb-2021 is not a valid date; which day do you mean?", 1, 0);
    special_case(ACE_SPECIAL_ERROR_PARAM, err, "That date is not valid.", 0, 0);
    special_case(ACE_SPECIAL_ERROR_PARAM, err, "There is incorrect value for the parameters (date).", 0, 0);
    char buf[256];
    snprintf(buf, sizeof(buf), "31-Feb-2021 %s", call);
    special_case(ACE_SPECIAL_ERROR_PARAM, err, buf, 0, 0);
    // a non-string value makes the official code raise
    cJSON *g = J("{\"n\": [5]}");
    acebench_verdict v;
    trl_err e;
    assert_int_equal(acebench_check_special(ACE_SPECIAL_ERROR_PARAM, g, "There is incorrect value", TOOLPROMPT_TOOLN1, &v, &e), TRL_ERR);
    cJSON_Delete(g);
}

// ---------------------------------------------------------------------------------------------
// The runner: `toolrl eval --suite acebench` on the tiny random model

static void test_runner_suite(void **state) {
    (void)state;
    char ace[1024];
    NEED_SHARED(ace, "acebench");
    char dir[256], path[320], rep[320], db[320];
    trl_err e = {{0}};
    assert_int_equal(tiny_model_tempdir(dir, sizeof(dir)), TRL_OK);
    snprintf(path, sizeof(path), "%s/tiny.gguf", dir);
    snprintf(rep, sizeof(rep), "%s/report.json", dir);
    snprintf(db, sizeof(db), "%s/store.db", dir);
    tiny_model_spec spec = tiny_model_default(0);
    spec.n_ctx = 8192;
    model m;
    assert_int_equal(tiny_model_write_gguf(&spec, 0, path, &e), TRL_OK);
    assert_int_equal(model_load(&m, path, &e), TRL_OK);
    eval_opts o = {.suite = "acebench",
                   .categories = "normal_atom_bool,normal_multi_turn_user_switch,special_irrelevant",
                   .limit = 1,
                   .batch = 2,
                   .max_new = 4,
                   .n_ctx = 8192};
    eval_run r;
    assert_int_equal(eval_run_all(&r, &m, &o, &e), TRL_OK);
    assert_true(r.is_acebench);
    assert_int_equal(r.nres, 3);
    assert_string_equal(r.res[1].category, "normal_multi_turn_user_switch");
    for (size_t c = 0; c < 3; c++) assert_int_equal(r.res[c].total, 1);  // multi-turn: one dialogue
    assert_true(eval_run_count(&r) > 3);                                // ... of several turns
    assert_int_equal(r.ace.files[1].turns, eval_run_count(&r) - 2);
    // a tiny random model makes no call: the irrelevant row is right by the mapping, not strictly
    assert_int_equal(r.res[2].correct, 1);
    assert_int_equal(r.ace.files[2].strict_correct, 0);
    assert_true(r.ace.special > 0.99 && r.ace.special_strict < 0.01);
    assert_int_equal(r.ace.tooln1_parts, 1);
    assert_int_equal(eval_run_report(&r, rep, "tiny", &e), TRL_OK);
    char *txt = trl_read_file(rep, NULL, &e);
    cJSON *j = txt ? cJSON_Parse(txt) : NULL;
    assert_non_null(j);
    const cJSON *sum = cJSON_GetObjectItemCaseSensitive(j, "summary");
    assert_non_null(cJSON_GetObjectItemCaseSensitive(sum, "tooln1"));
    assert_int_equal(cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(sum, "files")), 3);
    const cJSON *last = cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(j, "rows"), eval_run_count(&r) - 1);
    assert_true(cJSON_IsBool(cJSON_GetObjectItemCaseSensitive(last, "strict_correct")));
    cJSON_Delete(j);
    free(txt);
    // stored: the 3 files and the means that were measured
    store *s = NULL;
    assert_int_equal(store_open(&s, db, &e), TRL_OK);
    assert_int_equal(eval_run_store(&r, s, "tiny", rep, NULL, &e), TRL_OK);
    store_page page = {0};
    page.limit = 100;
    store_evals l;
    assert_int_equal(store_eval_list(s, "tiny", "acebench", &page, &l, &e), TRL_OK);
    int special_strict = 0, tooln1 = 0, files = 0;
    for (int i = 0; i < l.n; i++) {
        special_strict += !strcmp(l.items[i].category, "special_strict") && l.items[i].score < 0.01;
        tooln1 += !strcmp(l.items[i].category, "tooln1");
        files += acebench_category_known(l.items[i].category);
    }
    assert_int_equal(special_strict, 1);
    assert_int_equal(tooln1, 1);
    assert_int_equal(files, 3);
    store_evals_free(&l);
    store_close(s);
    eval_run_free(&r);
    // agent files are refused, saying why
    eval_opts bad = o;
    bad.categories = "agent_multi_turn";
    assert_int_equal(eval_run_all(&r, &m, &bad, &e), TRL_ERR);
    assert_non_null(strstr(e.msg, "LLM"));
    eval_run_free(&r);
    model_free(&m);
    tiny_model_rmdir(dir);
}

// ---------------------------------------------------------------------------------------------
// Files, chat messages, prompts

static const acebench_row *find_row(const acebench_file *f, const char *id) {
    for (size_t i = 0; i < f->n; i++)
        if (!strcmp(f->rows[i].id, id)) return &f->rows[i];
    return NULL;
}

static const char *role_at(const cJSON *msgs, int i) {
    return cJSON_GetObjectItemCaseSensitive(cJSON_GetArrayItem(msgs, i), "role")->valuestring;
}

static void test_files_and_prompts(void **state) {
    (void)state;
    char dir[1024];
    NEED_SHARED(dir, "acebench");
    trl_err e;
    acebench_file f;
    // agent files are refused with the reason
    assert_int_equal(acebench_file_load(dir, "agent_multi_step", 0, &f, &e), TRL_ERR);
    assert_non_null(strstr(e.msg, "environment classes"));
    assert_int_equal(acebench_file_load(dir, "normal_atom_nothing", 0, &f, &e), TRL_ERR);
    size_t rows = 0, history_calls = 0;
    for (size_t c = 0; c < 15; c++) {
        assert_int_equal(acebench_file_load(dir, ACEBENCH_CATEGORIES[c], 0, &f, &e), TRL_OK);
        assert_true(f.n > 0);
        for (size_t i = 0; i < f.n; i++) {
            const acebench_row *r = &f.rows[i];
            char *p = acebench_row_prompt(r, TOOLPROMPT_TOOLN1);
            assert_non_null(p);
            assert_non_null(strstr(p, "<|im_start|>assistant\n"));
            // the time line or the profile is in the system prompt
            const cJSON *t = cJSON_GetObjectItemCaseSensitive(r->row, "time");
            if (cJSON_IsString(t) && t->valuestring[0]) assert_non_null(strstr(p, t->valuestring));
            if (!strcmp(f.category, "normal_preference")) assert_non_null(strstr(p, "Character Profile:\n"));
            // the first chat turn after the system text is the user's
            const cJSON *m0 = cJSON_GetArrayItem(r->messages, 0);
            const char *role0 = cJSON_GetObjectItemCaseSensitive(m0, "role")->valuestring;
            assert_string_equal(!strcmp(role0, "system") ? role_at(r->messages, 1) : role0, "user");
            // every call list in the history became a tool call
            for (const cJSON *m = r->messages->child; m; m = m->next) {
                const cJSON *c = cJSON_GetObjectItemCaseSensitive(m, "content");
                size_t cl = cJSON_IsString(c) ? strlen(c->valuestring) : 0;
                int call_text = cl > 2 && c->valuestring[0] == '[' && c->valuestring[cl - 1] == ']' &&
                                strchr(c->valuestring, '(');
                if (call_text) fprintf(stderr, "%s: call text left as text: %.200s\n", r->id, c->valuestring);
                assert_false(call_text);
                history_calls += cJSON_GetObjectItemCaseSensitive(m, "tool_calls") != NULL;
            }
            free(p);
            rows++;
        }
        if (f.kind == ACE_MULTI_TURN) {  // a later turn carries the earlier call as a tool call
            const acebench_row *r = find_row(&f, "normal_multi_turn_user_adjust_0_1");
            if (r) {
                int calls = 0, tools = 0;
                for (const cJSON *m = r->messages->child; m; m = m->next) {
                    calls += cJSON_GetObjectItemCaseSensitive(m, "tool_calls") != NULL;
                    tools += !strcmp(cJSON_GetObjectItemCaseSensitive(m, "role")->valuestring, "tool");
                }
                assert_int_equal(calls, 1);
                assert_int_equal(tools, 1);
                char *p = acebench_row_prompt(r, TOOLPROMPT_TOOLN1);
                assert_non_null(strstr(p, "<tool_call>"));
                assert_non_null(strstr(p, "branding_createPressRelease"));
                assert_non_null(strstr(p, "<tool_response>"));
                free(p);
            }
        }
        acebench_file_free(&f);
    }
    assert_true(rows > 600);
    assert_true(history_calls >= 150);
    // --limit: rows, or dialogues in the multi-turn files
    assert_int_equal(acebench_file_load(dir, "normal_atom_bool", 3, &f, &e), TRL_OK);
    assert_int_equal(f.n, 3);
    acebench_file_free(&f);
    assert_int_equal(acebench_file_load(dir, "normal_multi_turn_user_switch", 2, &f, &e), TRL_OK);
    assert_true(f.n >= 2);
    long dialogues = 1;
    for (size_t i = 1; i < f.n; i++) dialogues += f.rows[i].dialogue != f.rows[i - 1].dialogue;
    assert_int_equal(dialogues, 2);
    acebench_file_free(&f);
}

static void write_text(const char *path, const char *text) {
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
}

// A file made by hand: multi-line turns, a call and its result, a time line; then the tallies.
static void test_question_turns(void **state) {
    (void)state;
    char dir[] = "/tmp/toolrl-ace-XXXXXX", p[600], a[600];
    assert_non_null(mkdtemp(dir));
    snprintf(p, sizeof(p), "%s/data_en", dir);
    snprintf(a, sizeof(a), "%s/possible_answer_en", dir);
    assert_int_equal(mkdir(p, 0700), 0);
    assert_int_equal(mkdir(a, 0700), 0);
    const char *cat = "normal_multi_turn_user_adjust";
    snprintf(p, sizeof(p), "%s/data_en/data_%s.json", dir, cat);
    snprintf(a, sizeof(a), "%s/possible_answer_en/data_%s.json", dir, cat);
    write_text(p, "{\"id\": \"normal_multi_turn_user_adjust_7_0\", \"time\": \"\", \"function\": [], "
                  "\"question\": \"user: hi\\n\"}\n"
                  "{\"id\": \"normal_multi_turn_user_adjust_7_1\", \"time\": \"Today is 2024-05-01.\", \"function\": [], "
                  "\"question\": \"user: plan it:\\n- a\\n- b\\nsystem: [f(x='1 2', n=3)]\\nsystem: done, id 9\\n"
                  "user: and now?\\nsystem: Which one?\\nuser: the first\\n\"}\n"
                  "{\"id\": \"normal_multi_turn_user_adjust_8_0\", \"time\": \"\", \"function\": [], "
                  "\"question\": \"user: bye\"}\n");
    write_text(a, "{\"id\": \"normal_multi_turn_user_adjust_7_0\", \"ground_truth\": {}}\n"
                  "{\"id\": \"normal_multi_turn_user_adjust_7_1\", \"ground_truth\": {}}\n"
                  "{\"id\": \"normal_multi_turn_user_adjust_8_0\", \"ground_truth\": {}}\n");
    acebench_file f;
    trl_err e;
    assert_int_equal(acebench_file_load(dir, cat, 1, &f, &e), TRL_OK);  // --limit 1: one dialogue
    assert_int_equal(f.n, 2);
    acebench_file_free(&f);
    assert_int_equal(acebench_file_load(dir, cat, 0, &f, &e), TRL_OK);
    unlink(p);
    unlink(a);
    assert_int_equal(f.n, 3);
    assert_int_equal(f.rows[1].dialogue, 7);
    assert_int_equal(f.rows[2].dialogue, 8);
    char *m = pyjson_dump(f.rows[1].messages, 0);
    assert_string_equal(m,
                        "[{\"role\": \"system\", \"content\": \"Today is 2024-05-01.\"}, "
                        "{\"role\": \"user\", \"content\": \"plan it:\\n- a\\n- b\"}, "
                        "{\"role\": \"assistant\", \"tool_calls\": [{\"name\": \"f\", \"arguments\": {\"x\": \"1 2\", \"n\": 3}}]}, "
                        "{\"role\": \"tool\", \"content\": \"done, id 9\"}, "
                        "{\"role\": \"user\", \"content\": \"and now?\"}, "
                        "{\"role\": \"assistant\", \"content\": \"Which one?\"}, "
                        "{\"role\": \"user\", \"content\": \"the first\"}]");
    free(m);
    m = pyjson_dump(f.rows[0].messages, 0);  // no time: no system text
    assert_string_equal(m, "[{\"role\": \"user\", \"content\": \"hi\"}]");
    free(m);
    // tallies: dialogue 7 has a wrong turn, dialogue 8 is right
    acebench_outcome o[3] = {{&f.rows[0], 1, 1}, {&f.rows[1], 0, 0}, {&f.rows[2], 1, 1}};
    acebench_summary s;
    acebench_summarize(o, 3, &s);
    assert_int_equal(s.n, 1);
    assert_int_equal(s.files[0].correct, 1);
    assert_int_equal(s.files[0].total, 2);
    assert_int_equal(s.files[0].turns_correct, 2);
    assert_int_equal(s.files[0].turns, 3);
    assert_true(s.multi_turn > 0.49 && s.multi_turn < 0.51);
    assert_true(s.normal > 0.49 && s.normal < 0.51);
    assert_int_equal(s.normal_parts, 1);
    assert_true(s.atom < 0 && s.special < 0 && s.tooln1 < 0);
    acebench_file_free(&f);
    snprintf(p, sizeof(p), "%s/data_en", dir);
    rmdir(p);
    snprintf(p, sizeof(p), "%s/possible_answer_en", dir);
    rmdir(p);
    rmdir(dir);
}

// The means: atom, single-turn, Tool-N1's 8-file mean, special with and without the mapping.
static void test_summary_means(void **state) {
    (void)state;
    static acebench_row rows[15];
    acebench_outcome o[30];
    size_t n = 0;
    for (size_t c = 0; c < 15; c++) {
        rows[c] = (acebench_row){.category = ACEBENCH_CATEGORIES[c], .kind = acebench_category_kind(ACEBENCH_CATEGORIES[c]),
                                 .dialogue = (long)c};
        // file c: 2 rows (dialogues), the first right; the atom files both right
        o[n++] = (acebench_outcome){&rows[c], 1, c >= 12 ? 0 : 1};
        o[n++] = (acebench_outcome){&rows[c], c < 6, 0};
    }
    // two rows of a multi-turn file with the same dialogue are one dialogue: make them differ
    acebench_row second[15];
    for (size_t c = 0; c < 15; c++) {
        second[c] = rows[c];
        second[c].dialogue = 100 + (long)c;
        o[2 * c + 1].row = &second[c];
    }
    acebench_summary s;
    acebench_summarize(o, n, &s);
    assert_int_equal(s.n, 15);
    assert_true(s.atom > 0.999);
    assert_true(s.single_turn > 0.499 && s.single_turn < 0.501);
    assert_true(s.tooln1 > (6 + 0.5 * 2) / 8.0 - 1e-9 && s.tooln1 < (6 + 0.5 * 2) / 8.0 + 1e-9);
    assert_true(s.normal > (6 + 0.5 * 6) / 12.0 - 1e-9 && s.normal < (6 + 0.5 * 6) / 12.0 + 1e-9);
    assert_true(s.special > 0.499 && s.special < 0.501);
    assert_true(s.special_strict < 1e-9 && s.special_strict > -1e-9);
    assert_int_equal(s.normal_parts, 12);
    assert_int_equal(s.atom_parts + s.single_turn_parts + s.multi_turn_parts + s.special_parts + s.tooln1_parts,
                     6 + 2 + 2 + 3 + 8);
    char *buf = NULL;
    size_t blen = 0;
    FILE *mf = open_memstream(&buf, &blen);
    acebench_summary_print(mf, &s);
    fclose(mf);
    assert_non_null(strstr(buf, "Tool-N1 ACEBench (6 atom + 2 single-turn)"));
    assert_non_null(strstr(buf, "not run: agent_multi_turn, agent_multi_step"));
    assert_null(strstr(buf, "not run here"));
    assert_null(strstr(buf, " of 12 files"));
    free(buf);
    const char *names[8];
    double values[8];
    assert_int_equal(acebench_summary_scores(&s, names, values), 7);
    cJSON *j = acebench_summary_json(&s);
    assert_non_null(j);
    assert_int_equal(cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(j, "files")), 15);
    cJSON_Delete(j);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_fixture_agreement),
        cmocka_unit_test(test_normal_rules),
        cmocka_unit_test(test_special_mapping),
        cmocka_unit_test(test_files_and_prompts),
        cmocka_unit_test(test_runner_suite),
        cmocka_unit_test(test_question_turns),
        cmocka_unit_test(test_summary_means),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
