// test_bfcl.c: the BFCL AST checker (agreement with bfcl-eval on every row of
// tests/fixtures/bfcl_verdicts.jsonl, plus hand-made cases), the BFCL summary arithmetic, and
// API-Bank level-1 call matching. Shared data is read from $TOOLRL_SHARED or ../shared.
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/pyjson.h"
#include "eval/apibank.h"
#include "eval/bfcl_checker.h"
#include "eval/bfcl_data.h"
#include "protocol/toolcall_parse.h"
#include "tests/support/shared_data.h"

static cJSON *J(const char *text) {
    cJSON *v = pyjson_parse(text, strlen(text), NULL);
    assert_non_null(v);
    return v;
}

// ---------------------------------------------------------------------------------------------
// Agreement with bfcl-eval

static const char *const CATEGORIES[] = {
    "simple_python", "multiple", "parallel", "parallel_multiple", "live_simple", "live_multiple",
    "live_parallel", "live_parallel_multiple", "irrelevance", "live_irrelevance", "live_relevance",
};
#define NCAT (sizeof(CATEGORIES) / sizeof(CATEGORIES[0]))

static void test_fixture_agreement(void **state) {
    (void)state;
    char dir[1024];
    NEED_SHARED(dir, "bfcl");
    size_t len;
    trl_err e;
    char *fx = fixture_read("tests/fixtures/bfcl_verdicts.jsonl", &len);
    bfcl_dataset ds[NCAT];
    for (size_t c = 0; c < NCAT; c++) {
        int rc = bfcl_dataset_load(dir, CATEGORIES[c], &ds[c], &e);
        if (rc) fprintf(stderr, "%s\n", e.msg);
        assert_int_equal(rc, TRL_OK);
    }
    size_t rows = 0, mismatches = 0, raw_rows = 0, valid_rows = 0;
    size_t per_cat[NCAT] = {0};
    size_t pos = 0;
    for (cJSON *row; (row = fixture_next_row(fx, len, &pos));) {
        const char *cat = cJSON_GetObjectItemCaseSensitive(row, "category")->valuestring;
        const char *id = cJSON_GetObjectItemCaseSensitive(row, "id")->valuestring;
        const cJSON *mr = cJSON_GetObjectItemCaseSensitive(row, "model_result");
        const cJSON *raw = cJSON_GetObjectItemCaseSensitive(row, "raw");
        const cJSON *valid = cJSON_GetObjectItemCaseSensitive(row, "valid");
        const char *etype = cJSON_GetObjectItemCaseSensitive(row, "error_type")->valuestring;
        size_t c = 0;
        while (c < NCAT && strcmp(CATEGORIES[c], cat)) c++;
        assert_true(c < NCAT);
        const bfcl_entry *en = bfcl_dataset_find(&ds[c], id);
        assert_non_null(en);
        const cJSON *model_result = cJSON_IsNull(mr) ? NULL : mr;
        if (cJSON_IsString(raw)) {  // our reading of the raw reply must give the same value
            cJSON *parsed = toolcall_parse_bfcl(raw->valuestring, strlen(raw->valuestring), NULL);
            int same = (!parsed && !model_result) || (parsed && model_result && pyjson_equal(parsed, model_result));
            if (!same) fprintf(stderr, "raw parse differs: %s %s\n", cat, id);
            assert_true(same);
            cJSON_Delete(parsed);
            raw_rows++;
        }
        bfcl_verdict v;
        int rc = bfcl_check(cat, en->functions, en->ground_truth, model_result, &v, &e);
        int ok;
        if (cJSON_IsNull(valid)) {
            ok = rc == TRL_ERR;  // bfcl-eval raised on this row
        } else {
            ok = rc == TRL_OK && v.valid == cJSON_IsTrue(valid) && !strcmp(v.error_type, etype);
            valid_rows += cJSON_IsTrue(valid);
        }
        if (!ok) {
            mismatches++;
            if (mismatches <= 10) {
                char *m = pyjson_dump(mr, 0);
                fprintf(stderr, "MISMATCH %s %s (%s): bfcl-eval %s/%s, ours rc=%d %s/%s %s\n  output: %.300s\n", cat,
                        id, cJSON_GetObjectItemCaseSensitive(row, "variant")->valuestring,
                        cJSON_IsTrue(valid) ? "valid" : "invalid", etype, rc, v.valid ? "valid" : "invalid",
                        v.error_type, rc ? e.msg : v.error, m ? m : "");
                free(m);
            }
        }
        per_cat[c]++;
        rows++;
        cJSON_Delete(row);
    }
    free(fx);
    for (size_t c = 0; c < NCAT; c++) bfcl_dataset_free(&ds[c]);
    printf("bfcl-eval agreement: %zu rows (%zu valid, %zu from raw text), %zu mismatches\n", rows, valid_rows,
           raw_rows, mismatches);
    assert_int_equal(mismatches, 0);
    assert_true(rows >= 500);
    for (size_t c = 0; c < NCAT; c++) assert_true(per_cat[c] > 0);
}

// ---------------------------------------------------------------------------------------------
// Hand-made checker cases

static const char *FUNCS =
    "[{\"name\": \"calc.area\", \"parameters\": {\"type\": \"dict\", \"properties\": {"
    "\"base\": {\"type\": \"integer\"}, \"height\": {\"type\": \"float\"}, \"unit\": {\"type\": \"string\"},"
    "\"flags\": {\"type\": \"array\", \"items\": {\"type\": \"string\"}}, \"exact\": {\"type\": \"boolean\"},"
    "\"opts\": {\"type\": \"dict\", \"properties\": {}}}, \"required\": [\"base\", \"height\"]}}]";
static const char *GT =
    "[{\"calc.area\": {\"base\": [10], \"height\": [5.0, 5.5], \"unit\": [\"square meters\", \"\"],"
    "\"flags\": [[\"Fast\", \"exact-mode\"], \"\"], \"exact\": [true, \"\"], \"opts\": [{\"k\": [\"v\"], \"z\": [\"\", 1]}, \"\"]}}]";

static void check_case(const char *cat, const char *funcs, const char *gt, const char *out, int want_valid,
                       const char *want_type) {
    cJSON *f = J(funcs), *g = gt ? J(gt) : NULL, *m = out ? J(out) : NULL;
    bfcl_verdict v;
    trl_err e;
    assert_int_equal(bfcl_check(cat, f, g, m, &v, &e), TRL_OK);
    if (v.valid != want_valid || strcmp(v.error_type, want_type))
        fprintf(stderr, "case %s -> %d %s (%s), wanted %d %s\n", out ? out : "None", v.valid, v.error_type, v.error,
                want_valid, want_type);
    assert_int_equal(v.valid, want_valid);
    assert_string_equal(v.error_type, want_type);
    cJSON_Delete(f);
    cJSON_Delete(g);
    cJSON_Delete(m);
}

static void test_checker_rules(void **state) {
    (void)state;
    const char *c = "simple_python";
    check_case(c, FUNCS, GT, "[{\"name\": \"calc.area\", \"arguments\": {\"base\": 10, \"height\": 5}}]", 1, "");
    check_case(c, FUNCS, GT, "[{\"name\": \"calc.area\", \"arguments\": {\"base\": 10, \"height\": 5.5}}]", 1, "");
    // an int is accepted for a float parameter, not a float for an int one, nor a bool
    check_case(c, FUNCS, GT, "[{\"name\": \"calc.area\", \"arguments\": {\"base\": 10.0, \"height\": 5}}]", 0,
               "type_error:simple");
    check_case(c, FUNCS, GT, "[{\"name\": \"calc.area\", \"arguments\": {\"base\": true, \"height\": 5}}]", 0,
               "type_error:simple");
    check_case(c, FUNCS, GT, "[{\"name\": \"calc.area\", \"arguments\": {\"base\": \"10\", \"height\": 5}}]", 0,
               "type_error:simple");
    check_case(c, FUNCS, GT, "[{\"name\": \"calc.area\", \"arguments\": {\"base\": 11, \"height\": 5}}]", 0,
               "value_error:others");
    // strings: case, spaces and , . / - _ * ^ do not matter
    check_case(c, FUNCS, GT,
               "[{\"name\": \"calc.area\", \"arguments\": {\"base\": 10, \"height\": 5, \"unit\": \"Square-Meters.\"}}]",
               1, "");
    check_case(c, FUNCS, GT,
               "[{\"name\": \"calc.area\", \"arguments\": {\"base\": 10, \"height\": 5, \"unit\": \"square feet\"}}]", 0,
               "value_error:string");
    // lists: element-wise, strings standardised, order kept
    check_case(c, FUNCS, GT,
               "[{\"name\": \"calc.area\", \"arguments\": {\"base\": 10, \"height\": 5, \"flags\": [\"fast\", \"EXACT MODE\"]}}]",
               1, "");
    check_case(c, FUNCS, GT,
               "[{\"name\": \"calc.area\", \"arguments\": {\"base\": 10, \"height\": 5, \"flags\": [\"exact-mode\", \"Fast\"]}}]",
               0, "value_error:list/tuple");
    // BFCL quirk: the nested type check passes as soon as one possible answer is not a list
    // (here ""), so wrong item types surface as a value error
    check_case(c, FUNCS, GT,
               "[{\"name\": \"calc.area\", \"arguments\": {\"base\": 10, \"height\": 5, \"flags\": [1, 2]}}]", 0,
               "value_error:list/tuple");
    check_case(c, FUNCS, "[{\"calc.area\": {\"base\": [10], \"height\": [5.0], \"flags\": [[\"a\"]]}}]",
               "[{\"name\": \"calc.area\", \"arguments\": {\"base\": 10, \"height\": 5, \"flags\": [1]}}]", 0,
               "type_error:nested");
    // booleans: "true" is not true
    check_case(c, FUNCS, GT,
               "[{\"name\": \"calc.area\", \"arguments\": {\"base\": 10, \"height\": 5, \"exact\": \"true\"}}]", 0,
               "type_error:simple");
    // dicts: key by key, "" marks an optional key
    check_case(c, FUNCS, GT,
               "[{\"name\": \"calc.area\", \"arguments\": {\"base\": 10, \"height\": 5, \"opts\": {\"k\": \"V\"}}}]", 1,
               "");
    check_case(c, FUNCS, GT,
               "[{\"name\": \"calc.area\", \"arguments\": {\"base\": 10, \"height\": 5, \"opts\": {\"z\": 1}}}]", 0,
               "value_error:dict_key");
    check_case(c, FUNCS, GT,
               "[{\"name\": \"calc.area\", \"arguments\": {\"base\": 10, \"height\": 5, \"opts\": {\"k\": \"w\"}}}]", 0,
               "value_error:dict_value");
    // required / unexpected / wrong name / count / format
    check_case(c, FUNCS, GT, "[{\"name\": \"calc.area\", \"arguments\": {\"base\": 10}}]", 0,
               "simple_function_checker:missing_required");
    check_case(c, FUNCS, GT, "[{\"name\": \"calc.area\", \"arguments\": {\"base\": 10, \"height\": 5, \"x\": 1}}]", 0,
               "simple_function_checker:unexpected_param");
    check_case(c, FUNCS, GT, "[{\"name\": \"calc_area\", \"arguments\": {\"base\": 10, \"height\": 5}}]", 0,
               "simple_function_checker:wrong_func_name");
    check_case(c, FUNCS, GT, "[]", 0, "simple_function_checker:wrong_count");
    check_case(c, FUNCS, GT, "[{\"name\": \"calc.area\", \"arguments\": \"base=10\"}]", 0,
               "ast_decoder:decoder_wrong_output_format");
    check_case(c, FUNCS, GT, NULL, 0, "ast_decoder:decoder_failed");
    check_case(c, FUNCS, GT, "{\"name\": \"calc.area\", \"arguments\": {}}", 0, "ast_decoder:decoder_failed");
    check_case(c, FUNCS, GT, "[{\"name\": [\"calc.area\"], \"arguments\": {}}]", 0, "ast_decoder:decoder_failed");
    // a parameter whose possible answers lack "" must be given
    const char *gt2 = "[{\"calc.area\": {\"base\": [10], \"height\": [5.0], \"unit\": [\"m\"]}}]";
    check_case(c, FUNCS, gt2, "[{\"name\": \"calc.area\", \"arguments\": {\"base\": 10, \"height\": 5}}]", 0,
               "simple_function_checker:missing_optional");
    // parallel: any order, exact count
    const char *fp = "[{\"name\": \"f\", \"parameters\": {\"type\": \"dict\", \"properties\": {\"a\": {\"type\": "
                     "\"integer\"}}, \"required\": [\"a\"]}}]";
    const char *gp = "[{\"f\": {\"a\": [1]}}, {\"f\": {\"a\": [2]}}]";
    check_case("parallel", fp, gp,
               "[{\"name\": \"f\", \"arguments\": {\"a\": 2}}, {\"name\": \"f\", \"arguments\": {\"a\": 1}}]", 1, "");
    check_case("parallel", fp, gp, "[{\"name\": \"f\", \"arguments\": {\"a\": 2}}]", 0,
               "parallel_function_checker_no_order:wrong_count");
    check_case("parallel", fp, gp,
               "[{\"name\": \"f\", \"arguments\": {\"a\": 2}}, {\"name\": \"f\", \"arguments\": {\"a\": 2}}]", 0,
               "parallel_function_checker_no_order:cannot_find_match");
    // irrelevance: no call is right; relevance: a call is right
    check_case("irrelevance", fp, NULL, "[]", 1, "");
    check_case("irrelevance", fp, NULL, NULL, 1, "");
    check_case("irrelevance", fp, NULL, "[{\"name\": \"f\", \"arguments\": {}}]", 0, "irrelevance_error:decoder_success");
    check_case("live_relevance", fp, NULL, "[{\"name\": \"g\", \"arguments\": {}}]", 1, "");
    check_case("live_relevance", fp, NULL, "[]", 0, "relevance_error:decoder_failed");
}

static void test_checker_bad_rows(void **state) {
    (void)state;
    bfcl_verdict v;
    trl_err e;
    cJSON *f = J("[{\"name\": \"f\", \"parameters\": {\"type\": \"dict\", \"properties\": {\"a\": {\"type\": "
                 "\"weird\"}}, \"required\": []}}]");
    cJSON *g = J("[{\"f\": {\"a\": [1]}}]");
    cJSON *m = J("[{\"name\": \"f\", \"arguments\": {\"a\": 1}}]");
    assert_int_equal(bfcl_check("simple_python", f, g, m, &v, &e), TRL_ERR);
    assert_non_null(strstr(e.msg, "type"));
    assert_int_equal(bfcl_check("simple_python", NULL, g, m, &v, &e), TRL_ERR);
    assert_int_equal(bfcl_check("simple_python", f, NULL, m, &v, &e), TRL_ERR);
    assert_int_equal(bfcl_check("simple_java", f, g, m, &v, &e), TRL_ERR);
    cJSON *empty = J("[]");
    assert_int_equal(bfcl_check("multiple", empty, g, m, &v, &e), TRL_ERR);
    cJSON_Delete(f);
    cJSON_Delete(g);
    cJSON_Delete(m);
    cJSON_Delete(empty);
}

static void test_standardize(void **state) {
    (void)state;
    const char *cases[][2] = {
        {"New York, NY", "newyorkny"}, {"It's", "it\"s"}, {"a_b-c.d/e*f^g", "abcdefg"},
        {"\xc3\x89T\xc3\x89", "\xc3\xa9t\xc3\xa9"},  // ÉTÉ -> été
        {"\xc4\xb0", "i\xcc\x87"},                  // İ -> i + combining dot
        {"", ""},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char *s = bfcl_standardize(cases[i][0]);
        assert_non_null(s);
        assert_string_equal(s, cases[i][1]);
        free(s);
    }
}

static void test_summary(void **state) {
    (void)state;
    // Tool-N1-7B's BFCL row (tool-n1.md section 6), with the v3 category sizes.
    bfcl_category_result r[] = {
        {"simple_python", 308, 400},  {"multiple", 190, 200},     {"parallel", 189, 200},
        {"parallel_multiple", 181, 200}, {"live_simple", 212, 258}, {"live_multiple", 847, 1053},
        {"live_parallel", 10, 16},    {"live_parallel_multiple", 17, 24}, {"irrelevance", 1, 240},
    };
    bfcl_summary s;
    bfcl_summarize(r, sizeof(r) / sizeof(r[0]), &s);
    assert_int_equal(s.simple_parts, 1);
    assert_int_equal(s.non_live_parts, 4);
    assert_true(fabs(s.simple - 0.77) < 1e-9);
    assert_true(fabs(s.non_live - (0.77 + 0.95 + 0.945 + 0.905) / 4) < 1e-9);  // 89.25
    assert_true(fabs(s.live - (212.0 + 847 + 10 + 17) / 1351) < 1e-9);           // 80.38
    assert_true(fabs(s.non_live * 100 - 89.25) < 0.005);
    assert_true(fabs(s.live * 100 - 80.38) < 0.01);
    assert_true(fabs(s.overall * 100 - 84.82) < 0.01);
    assert_int_equal(s.live_total, 1351);
    bfcl_summarize(r, 1, &s);
    assert_true(s.live < 0 && fabs(s.overall - 0.77) < 1e-9);
}

static void test_dataset_load(void **state) {
    (void)state;
    char dir[1024];
    NEED_SHARED(dir, "bfcl");
    bfcl_dataset ds;
    trl_err e;
    assert_int_equal(bfcl_dataset_load(dir, "simple_python", &ds, &e), TRL_OK);
    assert_int_equal(ds.n, 280);
    const bfcl_entry *en = bfcl_dataset_find(&ds, "simple_python_0");
    assert_non_null(en);
    assert_non_null(en->ground_truth);
    const cJSON *msgs = bfcl_entry_messages(en);
    assert_true(cJSON_IsArray(msgs));
    bfcl_dataset_free(&ds);
    assert_int_equal(bfcl_dataset_load(dir, "live_irrelevance", &ds, &e), TRL_OK);
    assert_true(ds.n > 0);
    assert_null(ds.entries[0].ground_truth);
    bfcl_dataset_free(&ds);
    assert_int_equal(bfcl_dataset_load(dir, "no_such_category", &ds, &e), TRL_ERR);
}

// ---------------------------------------------------------------------------------------------
// API-Bank

static void test_apibank_parse(void **state) {
    (void)state;
    apibank_call c;
    trl_err e;
    assert_int_equal(apibank_parse_request("API-Request: [ModifyRegistration(appointment_id='34567890', "
                                           "new_appointment_date='2023-03-26', new_appointment_doctor='Dr. Lee')]",
                                           &c, &e),
                     TRL_OK);
    assert_string_equal(c.name, "ModifyRegistration");
    assert_int_equal(c.nparams, 3);
    assert_string_equal(c.keys[2], "new_appointment_doctor");
    assert_string_equal(c.values[2], "Dr. Lee");
    apibank_call_free(&c);
    // the original regex stops a quoted value at the next quote of either kind
    assert_int_equal(apibank_parse_request("[RecordHealthData(user_id='1234', health_data='[{'name': 'bp'}]')]", &c, &e),
                     TRL_OK);
    assert_int_equal(c.nparams, 2);
    assert_string_equal(c.values[1], "[{");
    apibank_call_free(&c);
    // unquoted words and lists
    assert_int_equal(apibank_parse_request("[F(a=12, b=[1, 2], c=True)]", &c, &e), TRL_OK);
    assert_int_equal(c.nparams, 3);
    assert_string_equal(c.values[0], "12");
    assert_string_equal(c.values[1], "[1, 2]");
    assert_string_equal(c.values[2], "True");
    apibank_call_free(&c);
    assert_int_equal(apibank_parse_request("no call here", &c, &e), TRL_ERR);
}

static void test_apibank_match(void **state) {
    (void)state;
    const char *exp = "API-Request: [QueryStock(stock_code='NFLX', date='2022-02-23')]";
    cJSON *ok = J("{\"stock_code\": \"NFLX\", \"date\": \"2022-02-23\"}");
    cJSON *bad = J("{\"stock_code\": \"nflx\", \"date\": \"2022-02-23\"}");
    cJSON *missing = J("{\"stock_code\": \"NFLX\"}");
    trl_err e;
    assert_int_equal(apibank_match(exp, "QueryStock", ok, &e), 1);
    assert_int_equal(apibank_match(exp, "QueryStocks", ok, &e), 0);
    assert_int_equal(apibank_match(exp, "QueryStock", bad, &e), 0);
    assert_int_equal(apibank_match(exp, "QueryStock", missing, &e), 0);
    // values are compared as strings: 1234 and '1234' agree, as they would in the original
    cJSON *num = J("{\"user_id\": 1234}");
    assert_int_equal(apibank_match("API-Request: [GetUser(user_id='1234')]", "GetUser", num, &e), 1);
    assert_int_equal(apibank_match("API-Request: [GetUser(user_id='1234')]", NULL, num, &e), 0);
    assert_int_equal(apibank_match("garbage", "GetUser", num, &e), -1);
    cJSON_Delete(ok);
    cJSON_Delete(bad);
    cJSON_Delete(missing);
    cJSON_Delete(num);
}

// Hammer's JSON twin of every shared row must match its expected_output under our rule.
static void test_apibank_shared(void **state) {
    (void)state;
    char dir[1024];
    NEED_SHARED(dir, "apibank/level-1-api.json");
    shared_file(dir, sizeof(dir), "apibank");
    apibank_dataset ds;
    trl_err e;
    int rc = apibank_dataset_load(dir, &ds, &e);
    if (rc) fprintf(stderr, "%s\n", e.msg);
    assert_int_equal(rc, TRL_OK);
    assert_int_equal(ds.n, 279);
    size_t matched = 0;
    for (size_t i = 0; i < ds.n; i++) {
        const apibank_row *r = &ds.rows[i];
        assert_true(cJSON_IsArray(r->messages));
        assert_true(cJSON_IsArray(r->tools));
        const cJSON *call = cJSON_GetArrayItem(r->answer, 0);
        const cJSON *name = cJSON_GetObjectItemCaseSensitive(call, "name");
        int m = apibank_match(r->expected_output, name->valuestring, cJSON_GetObjectItemCaseSensitive(call, "arguments"), &e);
        if (m != 1) fprintf(stderr, "row %zu: %s vs %s\n", i, r->expected_output, name->valuestring);
        matched += m == 1;
    }
    printf("API-Bank: %zu/%zu Hammer answers match expected_output\n", matched, ds.n);
    assert_int_equal(matched, ds.n);
    apibank_dataset_free(&ds);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_fixture_agreement), cmocka_unit_test(test_checker_rules),
        cmocka_unit_test(test_checker_bad_rows),  cmocka_unit_test(test_standardize),
        cmocka_unit_test(test_summary),           cmocka_unit_test(test_dataset_load),
        cmocka_unit_test(test_apibank_parse),     cmocka_unit_test(test_apibank_match),
        cmocka_unit_test(test_apibank_shared),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
