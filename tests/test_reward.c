// test_reward.c: Tool-N1's reward and everything under it: Python-compatible JSON (pyjson),
// <tool_call> extraction, every rule of compute_score_v0 and the ablation variants. The table of
// cases was scored with the original verl/utils/reward_score/toolcall.py (NVlabs/Tool-N1 f9b4849)
// under Python 3.11; the one case where Python raises is marked.
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/pyjson.h"
#include "eval/reward.h"
#include "protocol/toolcall_parse.h"

// ---------------------------------------------------------------------------------------------
// pyjson

static char *dump_text(const char *text, unsigned flags) {
    trl_err e;
    cJSON *v = pyjson_parse(text, strlen(text), &e);
    if (!v) return NULL;
    char *s = pyjson_dump(v, flags);
    cJSON_Delete(v);
    return s;
}

static void expect_dump(const char *text, const char *want) {
    char *s = dump_text(text, 0);
    if (!s || strcmp(s, want)) fprintf(stderr, "dump(%s) = %s, want %s\n", text, s ? s : "(parse error)", want);
    assert_non_null(s);
    assert_string_equal(s, want);
    free(s);
}

static void test_pyjson_numbers(void **state) {
    (void)state;
    // json.dumps(json.loads(token)) in Python 3.11
    static const char *const cases[][2] = {
        {"1", "1"}, {"1.0", "1.0"}, {"1e0", "1.0"}, {"1E2", "100.0"}, {"-0", "0"}, {"-0.0", "-0.0"},
        {"0.0001", "0.0001"}, {"0.00001", "1e-05"}, {"1e16", "1e+16"}, {"1e15", "1000000000000000.0"},
        {"1.5e300", "1.5e+300"}, {"0.1", "0.1"}, {"2.5e-7", "2.5e-07"}, {"1e22", "1e+22"},
        {"100000000000000000.0", "1e+17"}, {"1234567890123456.7", "1234567890123456.8"},
        {"123456789012345678901234567890", "123456789012345678901234567890"},
        {"3.14159265358979", "3.14159265358979"}, {"5e-324", "5e-324"},
        {"1.7976931348623157e308", "1.7976931348623157e+308"}, {"1e400", "Infinity"}, {"-1e400", "-Infinity"},
        {"12.50", "12.5"}, {"0e0", "0.0"}, {"-12.0e-3", "-0.012"}, {"NaN", "NaN"}, {"-Infinity", "-Infinity"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) expect_dump(cases[i][0], cases[i][1]);
    // The token survives cJSON_Print too.
    cJSON *v = pyjson_parse("[1.0, 1, 1e0]", 13, NULL);
    char *p = cJSON_PrintUnformatted(v);
    assert_string_equal(p, "[1.0,1,1e0]");
    free(p);
    assert_int_equal(pyjson_typeof(v->child), PYJ_FLOAT);
    assert_int_equal(pyjson_typeof(v->child->next), PYJ_INT);
    assert_true(pyjson_equal(v->child, v->child->next));  // 1.0 == 1 in Python
    cJSON_Delete(v);
}

static void test_pyjson_strict(void **state) {
    (void)state;
    static const char *const bad[] = {
        "", "   ", "[1,]", "{\"a\":1,}", "[01]", "[1.]", "[.5]", "[+1]", "{'a': 1}", "[1] x", "\"a\tb\"",
        "\"\\x41\"", "\"\\u12\"", "[true, True]", "nul", "\"unterminated", "{\"a\" 1}", "{1: 2}", "\xef\xbb\xbf[]",
        "[1 2]", "-", "1e", "[-Infinity, -NaN]",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        trl_err e;
        cJSON *v = pyjson_parse(bad[i], strlen(bad[i]), &e);
        if (v) fprintf(stderr, "parsed but should not: %s\n", bad[i]);
        assert_null(v);
        assert_true(strlen(e.msg) > 0);
    }
    static const char *const good[] = {" \t\n[1, 2]\r\n", "{}", "[]", "\"\"", "null", "-0", "[NaN, Infinity, -Infinity]",
                                       "{\"a\": {\"b\": [1, {\"c\": null}]}}", "\"\\ud83d\\ude00\\ud800 \\u0000\""};
    for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
        cJSON *v = pyjson_parse(good[i], strlen(good[i]), NULL);
        if (!v) fprintf(stderr, "failed to parse: %s\n", good[i]);
        assert_non_null(v);
        cJSON_Delete(v);
    }
    // Duplicate keys: last value, first position (a Python dict).
    expect_dump("{\"a\": 1, \"b\": 2, \"a\": 3}", "{\"a\": 3, \"b\": 2}");
    // Strings: surrogates, NUL and escapes survive; json.dumps escapes non-ASCII by default.
    char *s = dump_text("\"\\ud83d\\ude00\\ud800 \\u0000 \\u00e9\"", PYJSON_ASCII);
    assert_string_equal(s, "\"\\ud83d\\ude00\\ud800 \\u0000 \\u00e9\"");
    free(s);
    // Invalid UTF-8 inside a string becomes U+FFFD.
    s = dump_text("\"a\xff" "b\"", PYJSON_ASCII);
    assert_string_equal(s, "\"a\\ufffdb\"");
    free(s);
    // Nesting limit.
    char deep[2 * PYJSON_MAX_DEPTH + 10];
    memset(deep, '[', PYJSON_MAX_DEPTH + 1);
    memset(deep + PYJSON_MAX_DEPTH + 1, ']', PYJSON_MAX_DEPTH + 1);
    assert_null(pyjson_parse(deep, 2 * PYJSON_MAX_DEPTH + 2, NULL));
    assert_non_null(s = (char *)pyjson_parse(deep + 1, 2 * PYJSON_MAX_DEPTH, NULL));
    cJSON_Delete((cJSON *)s);
}

static void test_pyjson_dump(void **state) {
    (void)state;
    const char *in = "{\"b\": 1, \"a\": [1.0, \"\xc3\xa9\xf0\x9f\x98\x80\x7f\\u0000\"], \"B\": null, \"\xc3\xa9\": true}";
    // json.dumps(v, sort_keys=True) and with ensure_ascii=False, from Python 3.11
    char *s = dump_text(in, PYJSON_SORT_KEYS | PYJSON_ASCII);
    assert_string_equal(s, "{\"B\": null, \"a\": [1.0, \"\\u00e9\\ud83d\\ude00\\u007f\\u0000\"], \"b\": 1, \"\\u00e9\": true}");
    free(s);
    s = dump_text(in, PYJSON_SORT_KEYS);
    assert_string_equal(s, "{\"B\": null, \"a\": [1.0, \"\xc3\xa9\xf0\x9f\x98\x80\x7f\\u0000\"], \"b\": 1, \"\xc3\xa9\": true}");
    free(s);
    s = dump_text(in, PYJSON_COMPACT);
    assert_string_equal(s, "{\"b\":1,\"a\":[1.0,\"\xc3\xa9\xf0\x9f\x98\x80\x7f\\u0000\"],\"B\":null,\"\xc3\xa9\":true}");
    free(s);
    // Round trip through the parser keeps everything.
    s = dump_text(in, 0);
    char *t = dump_text(s, 0);
    assert_string_equal(s, t);
    free(s);
    free(t);
    // Native cJSON numbers: integral ones print as ints.
    cJSON *a = cJSON_CreateArray();
    cJSON_AddItemToArray(a, cJSON_CreateNumber(3));
    cJSON_AddItemToArray(a, cJSON_CreateNumber(0.5));
    s = pyjson_dump(a, 0);
    assert_string_equal(s, "[3, 0.5]");
    free(s);
    cJSON_Delete(a);
}

static void test_pyjson_equal(void **state) {
    (void)state;
    static const struct {
        const char *a, *b;
        int eq;
    } cases[] = {
        {"1", "1.0", 1}, {"true", "1", 1}, {"true", "1.0", 1}, {"false", "0", 1}, {"1", "\"1\"", 0}, {"null", "null", 1},
        {"[1, 2]", "[1.0, 2]", 1}, {"[1, 2]", "[2, 1]", 0}, {"{\"a\": 1, \"b\": 2}", "{\"b\": 2, \"a\": 1}", 1},
        {"{\"a\": 1}", "{\"a\": 1, \"b\": 2}", 0}, {"NaN", "NaN", 0}, {"1e400", "Infinity", 1},
        {"18446744073709551616", "18446744073709551616.0", 1}, {"18446744073709551617", "18446744073709551617.0", 0},
        {"12345678901234567890", "12345678901234567890.0", 0},
        {"\"a\"", "\"a\"", 1}, {"-0", "0.0", 1}, {"[]", "{}", 0},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        cJSON *a = pyjson_parse(cases[i].a, strlen(cases[i].a), NULL), *b = pyjson_parse(cases[i].b, strlen(cases[i].b), NULL);
        assert_non_null(a);
        assert_non_null(b);
        if (pyjson_equal(a, b) != cases[i].eq) fprintf(stderr, "%s == %s\n", cases[i].a, cases[i].b);
        assert_int_equal(pyjson_equal(a, b), cases[i].eq);
        cJSON_Delete(a);
        cJSON_Delete(b);
    }
}

// ---------------------------------------------------------------------------------------------
// <tool_call> extraction

static void test_toolcall_parse(void **state) {
    (void)state;
    const char *t = "x <tool_call>[1]</tool_call> y <tool_call> [2] </tool_call> z";
    toolcall_info info;
    cJSON *v = toolcall_parse_training(t, strlen(t), &info);
    assert_non_null(v);
    assert_int_equal(pyjson_number(v->child), 2);
    cJSON_Delete(v);
    v = toolcall_parse_bfcl(t, strlen(t), &info);
    assert_int_equal(pyjson_number(v->child), 1);
    cJSON_Delete(v);
    // the training reading double-decodes and wraps; the BFCL one does neither
    const char *d = "<tool_call>\"{\\\"name\\\": \\\"f\\\", \\\"arguments\\\": {}}\"</tool_call>";
    v = toolcall_parse_training(d, strlen(d), NULL);
    assert_true(cJSON_IsArray(v) && cJSON_IsObject(v->child));
    cJSON_Delete(v);
    v = toolcall_parse_bfcl(d, strlen(d), NULL);
    assert_true(cJSON_IsString(v));
    cJSON_Delete(v);
    // no closing tag, no block, null, garbage
    assert_null(toolcall_parse_training("<tool_call>[]", 13, &info));
    assert_int_equal(info.found_block, 0);
    assert_null(toolcall_parse_training("<tool_call>null</tool_call>", 27, &info));
    assert_int_equal(info.found_block, 1);
    assert_null(toolcall_parse_training("<tool_call>[</tool_call>", 24, &info));
    assert_int_equal(info.json_ok, 0);
    assert_null(toolcall_parse_training(NULL, 0, &info));
    // marker: only the text after the last one is searched
    const char *m = "<tool_call>[1]</tool_call><|im_start|>assistant\nno call";
    assert_null(toolcall_parse_training(m, strlen(m), &info));
    assert_true(info.scope_len == strlen("<|im_start|>assistant\nno call"));
    // Python's str.strip: Unicode spaces go, other characters stay
    const char *s = "\xe3\x80\x80 \xc2\xa0x\xe2\x80\x83\n";
    size_t sl = strlen(s);
    toolcall_strip(&s, &sl);
    assert_int_equal(sl, 1);
    assert_int_equal(s[0], 'x');
    static const char *const fmt[][2] = {{"[]", "1"}, {"[{\"name\": 1, \"arguments\": 2, \"x\": 3}]", "1"},
                                         {"[{\"name\": \"f\"}]", "0"}, {"[1]", "0"}, {"{}", "0"}, {"\"\"", "0"}};
    for (size_t i = 0; i < sizeof(fmt) / sizeof(fmt[0]); i++) {
        cJSON *f = pyjson_parse(fmt[i][0], strlen(fmt[i][0]), NULL);
        assert_int_equal(toolcall_valid_format(f), fmt[i][1][0] - '0');
        cJSON_Delete(f);
    }
}

// ---------------------------------------------------------------------------------------------
// The reward, case by case against the original

#define GOLD_PARSE(text, e) reward_gold_parse(text, strlen(text), e)

typedef struct {
    const char *name, *completion, *gold;
    double want[6];  // binary, no_think, partial, partial_funcname, lexico, llama
} reward_case;

static const reward_case CASES[] = {
    {"think + exact",
     "<think>r</think><tool_call>[{\"name\": \"f\", \"arguments\": {\"a\": 1, \"b\": \"x\"}}]</tool_call>",
     "[{\"name\": \"f\", \"arguments\": {\"a\": 1, \"b\": \"x\"}}]",
     {1.0, 1.0, 1.0, 1.0, 1.2, 1.0}},
    {"no think tags",
     "<tool_call>[{\"name\": \"f\", \"arguments\": {\"a\": 1, \"b\": \"x\"}}]</tool_call>",
     "[{\"name\": \"f\", \"arguments\": {\"a\": 1, \"b\": \"x\"}}]",
     {0.0, 1.0, 0.8, 0.8, 1.0, 0.0}},
    {"missing </think>",
     "<think>r<tool_call>[{\"name\": \"f\", \"arguments\": {\"a\": 1, \"b\": \"x\"}}]</tool_call>",
     "[{\"name\": \"f\", \"arguments\": {\"a\": 1, \"b\": \"x\"}}]",
     {0.0, 1.0, 0.8, 0.8, 1.0, 0.0}},
    {"missing <think>",
     "r</think><tool_call>[{\"name\": \"f\", \"arguments\": {\"a\": 1, \"b\": \"x\"}}]</tool_call>",
     "[{\"name\": \"f\", \"arguments\": {\"a\": 1, \"b\": \"x\"}}]",
     {0.0, 1.0, 0.8, 0.8, 1.0, 0.0}},
    {"tags reversed still count",
     "</think>x<think><tool_call>[{\"name\": \"f\", \"arguments\": {\"a\": 1, \"b\": \"x\"}}]</tool_call>",
     "[{\"name\": \"f\", \"arguments\": {\"a\": 1, \"b\": \"x\"}}]",
     {1.0, 1.0, 1.0, 1.0, 1.2, 1.0}},
    {"missing </tool_call>",
     "<think>r</think><tool_call>[{\"name\": \"f\", \"arguments\": {\"a\": 1, \"b\": \"x\"}}]",
     "[{\"name\": \"f\", \"arguments\": {\"a\": 1, \"b\": \"x\"}}]",
     {0.0, 0.0, 0.2, 0.2, 0.0, 0.0}},
    {"invalid JSON",
     "<think>r</think><tool_call>[{\"name\": \"f\", \"arguments\": {\"a\": 1, \"b\": \"x\"}]</tool_call>",
     "[{\"name\": \"f\", \"arguments\": {\"a\": 1, \"b\": \"x\"}}]",
     {0.0, 0.0, 0.2, 0.2, 0.0, 0.0}},
    {"single quotes are not JSON",
     "<think>r</think><tool_call>[{'name': 'f', 'arguments': {'a': 1, 'b': 'x'}}]</tool_call>",
     "[{\"name\": \"f\", \"arguments\": {\"a\": 1, \"b\": \"x\"}}]",
     {0.0, 0.0, 0.2, 0.2, 0.0, 0.0}},
    {"double-encoded JSON",
     "<think>r</think><tool_call>\"[{\\\"name\\\": \\\"f\\\", \\\"arguments\\\": {\\\"a\\\": 1, \\\"b\\\": \\\"x\\\"}}]\"</tool_call>",
     "[{\"name\": \"f\", \"arguments\": {\"a\": 1, \"b\": \"x\"}}]",
     {1.0, 1.0, 1.0, 1.0, 1.2, 1.0}},
    {"triple-encoded JSON",
     "<think>r</think><tool_call>\"\\\"[{\\\\\\\"name\\\\\\\": \\\\\\\"f\\\\\\\", \\\\\\\"arguments\\\\\\\": {\\\\\\\"a\\\\\\\": 1, \\\\\\\"b\\\\\\\": \\\\\\\"x\\\\\\\"}}]\\\"\"</tool_call>",
     "[{\"name\": \"f\", \"arguments\": {\"a\": 1, \"b\": \"x\"}}]",
     {0.0, 0.0, 0.2, 0.2, -0.2, 0.0}},
    {"dict instead of list",
     "<think>r</think><tool_call>{\"name\": \"f\", \"arguments\": {\"a\": 1, \"b\": \"x\"}}</tool_call>",
     "[{\"name\": \"f\", \"arguments\": {\"a\": 1, \"b\": \"x\"}}]",
     {1.0, 1.0, 1.0, 1.0, 1.2, 1.0}},
    {"double-encoded dict",
     "<think>r</think><tool_call>\"{\\\"name\\\": \\\"f\\\", \\\"arguments\\\": {\\\"a\\\": 1, \\\"b\\\": \\\"x\\\"}}\"</tool_call>",
     "[{\"name\": \"f\", \"arguments\": {\"a\": 1, \"b\": \"x\"}}]",
     {1.0, 1.0, 1.0, 1.0, 1.2, 1.0}},
    {"extra keys in a call",
     "<think>r</think><tool_call>[{\"name\": \"f\", \"arguments\": {\"a\": 1, \"b\": \"x\"}, \"id\": 7}]</tool_call>",
     "[{\"name\": \"f\", \"arguments\": {\"a\": 1, \"b\": \"x\"}}]",
     {1.0, 1.0, 1.0, 1.0, 1.2, 1.0}},
    {"no arguments key",
     "<think>r</think><tool_call>[{\"name\": \"f\", \"parameters\": {\"a\": 1, \"b\": \"x\"}}]</tool_call>",
     "[{\"name\": \"f\", \"arguments\": {\"a\": 1, \"b\": \"x\"}}]",
     {0.0, 0.0, 0.2, 0.2, -0.2, 0.0}},
    {"item not a dict",
     "<think>r</think><tool_call>[[\"f\", {\"a\": 1}]]</tool_call>",
     "[{\"name\": \"f\", \"arguments\": {\"a\": 1, \"b\": \"x\"}}]",
     {0.0, 0.0, 0.2, 0.2, -0.2, 0.0}},
    {"number result",
     "<think>r</think><tool_call>5</tool_call>",
     "[{\"name\": \"f\", \"arguments\": {\"a\": 1, \"b\": \"x\"}}]",
     {0.0, 0.0, 0.2, 0.2, -0.2, 0.0}},  // Python raises (iterating an int): format failure here
    {"null result",
     "<think>r</think><tool_call>null</tool_call>",
     "[{\"name\": \"f\", \"arguments\": {\"a\": 1, \"b\": \"x\"}}]",
     {0.0, 0.0, 0.2, 0.2, 0.0, 0.0}},
    {"empty both",
     "<think>r</think><tool_call>[]</tool_call>",
     "[]",
     {1.0, 1.0, 1.0, 1.0, 1.2, 1.0}},
    {"empty pred",
     "<think>r</think><tool_call>[]</tool_call>",
     "[{\"name\": \"f\", \"arguments\": {\"a\": 1, \"b\": \"x\"}}]",
     {0.0, 0.0, 0.2, 0.2, -0.2, 0.0}},
    {"empty gold",
     "<think>r</think><tool_call>[{\"name\": \"f\", \"arguments\": {}}]</tool_call>",
     "[]",
     {0.0, 0.0, 0.2, 0.2, -0.2, 0.0}},
    {"no block, empty gold",
     "<think>r</think>no call needed",
     "[]",
     {0.0, 0.0, 0.2, 0.2, 0.0, 1.0}},
    {"empty string double-decoded",
     "<think>r</think><tool_call>\"\\\"\\\"\"</tool_call>",
     "[]",
     {1.0, 1.0, 1.0, 1.0, 1.2, 1.0}},
    {"call order ignored",
     "<think>r</think><tool_call>[{\"name\": \"g\", \"arguments\": {\"d\": {\"z\": 2, \"y\": 1}, \"l\": [1, 2]}}, {\"name\": \"f\", \"arguments\": {\"a\": 1}}]</tool_call>",
     "[{\"name\": \"f\", \"arguments\": {\"a\": 1}}, {\"name\": \"g\", \"arguments\": {\"l\": [1, 2], \"d\": {\"y\": 1, \"z\": 2}}}]",
     {1.0, 1.0, 1.0, 1.0, 1.2, 1.0}},
    {"list order matters",
     "<think>r</think><tool_call>[{\"name\": \"f\", \"arguments\": {\"a\": 1}}, {\"name\": \"g\", \"arguments\": {\"l\": [2, 1], \"d\": {\"y\": 1, \"z\": 2}}}]</tool_call>",
     "[{\"name\": \"f\", \"arguments\": {\"a\": 1}}, {\"name\": \"g\", \"arguments\": {\"l\": [1, 2], \"d\": {\"y\": 1, \"z\": 2}}}]",
     {0.0, 0.0, 0.2, 0.4, -0.2, 0.0}},
    {"duplicate call",
     "<think>r</think><tool_call>[{\"name\": \"f\", \"arguments\": {\"a\": 1}}, {\"name\": \"f\", \"arguments\": {\"a\": 1}}]</tool_call>",
     "[{\"name\": \"f\", \"arguments\": {\"a\": 1}}, {\"name\": \"g\", \"arguments\": {\"l\": [1, 2], \"d\": {\"y\": 1, \"z\": 2}}}]",
     {0.0, 0.0, 0.2, 0.2, -0.2, 0.0}},
    {"names only match",
     "<think>r</think><tool_call>[{\"name\": \"f\", \"arguments\": {\"a\": 2}}, {\"name\": \"g\", \"arguments\": {}}]</tool_call>",
     "[{\"name\": \"f\", \"arguments\": {\"a\": 1}}, {\"name\": \"g\", \"arguments\": {\"l\": [1, 2], \"d\": {\"y\": 1, \"z\": 2}}}]",
     {0.0, 0.0, 0.2, 0.4, -0.2, 0.0}},
    {"int vs float",
     "<think>r</think><tool_call>[{\"name\": \"f\", \"arguments\": {\"a\": 1}}]</tool_call>",
     "[{\"name\": \"f\", \"arguments\": {\"a\": 1.0}}]",
     {0.0, 0.0, 0.2, 0.4, -0.2, 0.0}},
    {"float vs float",
     "<think>r</think><tool_call>[{\"name\": \"f\", \"arguments\": {\"a\": 1.0}}]</tool_call>",
     "[{\"name\": \"f\", \"arguments\": {\"a\": 1.0}}]",
     {1.0, 1.0, 1.0, 1.0, 1.2, 1.0}},
    {"1e0 is the float 1.0",
     "<think>r</think><tool_call>[{\"name\": \"f\", \"arguments\": {\"a\": 1e0}}]</tool_call>",
     "[{\"name\": \"f\", \"arguments\": {\"a\": 1.0}}]",
     {1.0, 1.0, 1.0, 1.0, 1.2, 1.0}},
    {"1.00 is 1.0",
     "<think>r</think><tool_call>[{\"name\": \"f\", \"arguments\": {\"a\": 1.00}}]</tool_call>",
     "[{\"name\": \"f\", \"arguments\": {\"a\": 1.0}}]",
     {1.0, 1.0, 1.0, 1.0, 1.2, 1.0}},
    {"string vs int",
     "<think>r</think><tool_call>[{\"name\": \"f\", \"arguments\": {\"a\": \"1\", \"b\": \"x\"}}]</tool_call>",
     "[{\"name\": \"f\", \"arguments\": {\"a\": 1, \"b\": \"x\"}}]",
     {0.0, 0.0, 0.2, 0.4, -0.2, 0.0}},
    {"bool vs string",
     "<think>r</think><tool_call>[{\"name\": \"f\", \"arguments\": {\"a\": \"true\"}}]</tool_call>",
     "[{\"name\": \"f\", \"arguments\": {\"a\": true}}]",
     {0.0, 0.0, 0.2, 0.4, -0.2, 0.0}},
    {"bool vs bool",
     "<think>r</think><tool_call>[{\"name\": \"f\", \"arguments\": {\"a\": true}}]</tool_call>",
     "[{\"name\": \"f\", \"arguments\": {\"a\": true}}]",
     {1.0, 1.0, 1.0, 1.0, 1.2, 1.0}},
    {"bool vs int 1",
     "<think>r</think><tool_call>[{\"name\": \"f\", \"arguments\": {\"a\": 1}}]</tool_call>",
     "[{\"name\": \"f\", \"arguments\": {\"a\": true}}]",
     {0.0, 0.0, 0.2, 0.4, -0.2, 0.0}},
    {"missing optional argument",
     "<think>r</think><tool_call>[{\"name\": \"f\", \"arguments\": {\"a\": 1}}]</tool_call>",
     "[{\"name\": \"f\", \"arguments\": {\"a\": 1, \"b\": \"x\"}}]",
     {0.0, 0.0, 0.2, 0.4, -0.2, 0.0}},
    {"extra argument",
     "<think>r</think><tool_call>[{\"name\": \"f\", \"arguments\": {\"a\": 1, \"b\": \"x\", \"c\": null}}]</tool_call>",
     "[{\"name\": \"f\", \"arguments\": {\"a\": 1, \"b\": \"x\"}}]",
     {0.0, 0.0, 0.2, 0.4, -0.2, 0.0}},
    {"last block wins",
     "<think>r</think><tool_call>[{\"name\": \"f\", \"arguments\": {\"a\": 1, \"b\": \"x\"}}]</tool_call> then <tool_call>[]</tool_call>",
     "[{\"name\": \"f\", \"arguments\": {\"a\": 1, \"b\": \"x\"}}]",
     {0.0, 0.0, 0.2, 0.2, -0.2, 0.0}},
    {"last block wins (2)",
     "<think>r</think><tool_call>[]</tool_call><tool_call>[{\"name\": \"f\", \"arguments\": {\"a\": 1, \"b\": \"x\"}}]</tool_call>",
     "[{\"name\": \"f\", \"arguments\": {\"a\": 1, \"b\": \"x\"}}]",
     {1.0, 1.0, 1.0, 1.0, 1.2, 1.0}},
    {"bad last block",
     "<think>r</think><tool_call>[{\"name\": \"f\", \"arguments\": {\"a\": 1, \"b\": \"x\"}}]</tool_call><tool_call>oops</tool_call>",
     "[{\"name\": \"f\", \"arguments\": {\"a\": 1, \"b\": \"x\"}}]",
     {0.0, 0.0, 0.2, 0.2, 0.0, 0.0}},
    {"text around tags",
     "Sure! <think>r</think> I will call it:\n<tool_call>\n  [{\"name\": \"f\", \"arguments\": {\"b\": \"x\", \"a\": 1}}]\n</tool_call>\nDone.",
     "[{\"name\": \"f\", \"arguments\": {\"a\": 1, \"b\": \"x\"}}]",
     {1.0, 1.0, 1.0, 1.0, 1.2, 1.0}},
    {"unicode spaces stripped",
     "<think>r</think><tool_call>\xe3""\x80""\x80""\xc2""\xa0""[{\"name\": \"f\", \"arguments\": {\"a\": 1, \"b\": \"x\"}}]\xe2""\x80""\x83""</tool_call>",
     "[{\"name\": \"f\", \"arguments\": {\"a\": 1, \"b\": \"x\"}}]",
     {1.0, 1.0, 1.0, 1.0, 1.2, 1.0}},
    {"nested open tag",
     "<think>r</think><tool_call><tool_call>[{\"name\": \"f\", \"arguments\": {\"a\": 1, \"b\": \"x\"}}]</tool_call>",
     "[{\"name\": \"f\", \"arguments\": {\"a\": 1, \"b\": \"x\"}}]",
     {0.0, 0.0, 0.2, 0.2, 0.0, 0.0}},
    {"assistant marker: think before it ignored",
     "<|im_start|>system\n<think>x</think><|im_end|><|im_start|>assistant\n<tool_call>[{\"name\": \"f\", \"arguments\": {\"a\": 1, \"b\": \"x\"}}]</tool_call>",
     "[{\"name\": \"f\", \"arguments\": {\"a\": 1, \"b\": \"x\"}}]",
     {0.0, 1.0, 0.8, 0.8, 1.0, 1.0}},
    {"assistant marker: block before it ignored",
     "<think>r</think><tool_call>[{\"name\": \"f\", \"arguments\": {\"a\": 1, \"b\": \"x\"}}]</tool_call><|im_start|>assistant\n<think>r</think>",
     "[{\"name\": \"f\", \"arguments\": {\"a\": 1, \"b\": \"x\"}}]",
     {0.0, 0.0, 0.2, 0.2, 0.0, 1.0}},
    {"duplicate keys: last wins",
     "<think>r</think><tool_call>[{\"name\": \"f\", \"arguments\": {\"a\": 2, \"b\": \"x\", \"a\": 1}}]</tool_call>",
     "[{\"name\": \"f\", \"arguments\": {\"a\": 1, \"b\": \"x\"}}]",
     {1.0, 1.0, 1.0, 1.0, 1.2, 1.0}},
    {"unicode escape equals raw",
     "<think>r</think><tool_call>[{\"name\": \"f\", \"arguments\": {\"a\": 1, \"b\": \"\\u0078\"}}]</tool_call>",
     "[{\"name\": \"f\", \"arguments\": {\"a\": 1, \"b\": \"x\"}}]",
     {1.0, 1.0, 1.0, 1.0, 1.2, 1.0}},
    {"raw control char in string",
     "<think>r</think><tool_call>[{\"name\": \"f\", \"arguments\": {\"a\": 1, \"b\": \"x\ty\"}}]</tool_call>",
     "[{\"name\": \"f\", \"arguments\": {\"a\": 1, \"b\": \"x\"}}]",
     {0.0, 0.0, 0.2, 0.2, 0.0, 0.0}},
    {"unhashable name",
     "<think>r</think><tool_call>[{\"name\": [\"f\"], \"arguments\": {\"a\": 1, \"b\": \"x\"}}]</tool_call>",
     "[{\"name\": \"f\", \"arguments\": {\"a\": 1, \"b\": \"x\"}}]",
     {0.0, 0.0, 0.2, 0.2, -0.2, 0.0}},
    {"name 1 vs gold",
     "<think>r</think><tool_call>[{\"name\": 1, \"arguments\": {\"a\": 1, \"b\": \"x\"}}]</tool_call>",
     "[{\"name\": \"f\", \"arguments\": {\"a\": 1, \"b\": \"x\"}}]",
     {0.0, 0.0, 0.2, 0.2, -0.2, 0.0}},
    {"llama header",
     "<|start_header_id|>assistant<|end_header_id|><think>r</think><tool_call>[{\"name\": \"f\", \"arguments\": {\"a\": 1, \"b\": \"x\"}}]</tool_call>",
     "[{\"name\": \"f\", \"arguments\": {\"a\": 1, \"b\": \"x\"}}]",
     {1.0, 1.0, 1.0, 1.0, 1.2, 1.0}},
    {"llama no block, empty gold",
     "<|start_header_id|>assistant<|end_header_id|>nothing to call",
     "[]",
     {0.0, 0.0, 0.0, 0.0, 0.0, 1.0}},
    {"trailing comma",
     "<think>r</think><tool_call>[{\"name\": \"f\", \"arguments\": {\"a\": 1, \"b\": \"x\"}},]</tool_call>",
     "[{\"name\": \"f\", \"arguments\": {\"a\": 1, \"b\": \"x\"}}]",
     {0.0, 0.0, 0.2, 0.2, 0.0, 0.0}},
    {"NaN accepted by json.loads",
     "<think>r</think><tool_call>[{\"name\": \"f\", \"arguments\": {\"a\": NaN}}]</tool_call>",
     "[{\"name\": \"f\", \"arguments\": {\"a\": 1.0}}]",
     {0.0, 0.0, 0.2, 0.4, -0.2, 0.0}},
};

static void test_reward_table(void **state) {
    (void)state;
    static const reward_kind kinds[6] = {REWARD_BINARY, REWARD_NO_THINK, REWARD_PARTIAL, REWARD_PARTIAL_FUNCNAME,
                                         REWARD_LEXICO, REWARD_LLAMA};
    int bad = 0;
    for (size_t i = 0; i < sizeof(CASES) / sizeof(CASES[0]); i++) {
        for (int k = 0; k < 6; k++) {
            double s;
            trl_err e;
            int rc = reward_score_text(kinds[k], CASES[i].completion, strlen(CASES[i].completion), CASES[i].gold, &s, NULL, &e);
            assert_int_equal(rc, TRL_OK);
            if (fabs(s - CASES[i].want[k]) > 1e-9) {
                fprintf(stderr, "%s [%s]: got %.2f, want %.2f\n", CASES[i].name, reward_kind_name(kinds[k]), s,
                        CASES[i].want[k]);
                bad++;
            }
        }
    }
    assert_int_equal(bad, 0);
}

static void test_reward_detail(void **state) {
    (void)state;
    const char *c = "<think>a</think><tool_call>[{\"name\": \"f\", \"arguments\": {\"a\": 2}}]</tool_call>";
    cJSON *gold = GOLD_PARSE("[{\"name\": \"f\", \"arguments\": {\"a\": 1}}]", NULL);
    assert_non_null(gold);
    double s;
    reward_detail d;
    assert_int_equal(reward_score(REWARD_PARTIAL_FUNCNAME, c, strlen(c), gold, &s, &d, NULL), TRL_OK);
    assert_true(d.has_think && d.found_block && d.parsed && d.format_ok);
    assert_int_equal(d.match, 1);
    assert_true(fabs(s - 0.4) < 1e-12);
    assert_int_equal(reward_score(REWARD_BINARY, c, strlen(c), gold, &s, &d, NULL), TRL_OK);
    assert_true(s == 0.0);
    cJSON_Delete(gold);
}

static void test_reward_gold(void **state) {
    (void)state;
    trl_err e;
    cJSON *g = GOLD_PARSE("\"[{\\\"name\\\": \\\"f\\\", \\\"arguments\\\": {}}]\"", &e);  // double-encoded
    assert_non_null(g);
    cJSON_Delete(g);
    assert_null(GOLD_PARSE("[{\"name\": \"f\"}]", &e));
    assert_null(GOLD_PARSE("{\"name\": \"f\", \"arguments\": {}}", &e));
    assert_null(GOLD_PARSE("nope", &e));
    double s = 1;
    assert_int_equal(reward_score_text(REWARD_BINARY, "x", 1, "[1]", &s, NULL, &e), TRL_ERR);
    assert_true(s == 0.0);
    assert_int_equal(reward_score_text(REWARD_BINARY, "x", 1, NULL, &s, NULL, &e), TRL_ERR);
}

static void test_reward_kinds(void **state) {
    (void)state;
    static const char *const names[][2] = {{"binary", "qwen"},
                                           {"no_think", "qwen_wo_reason"},
                                           {"partial", "qwen_partial_reason"},
                                           {"partial_funcname", "qwen_partial_reason_funcname"},
                                           {"lexico", "qwen_lexico"},
                                           {"llama", "llama"}};
    for (int i = 0; i < 6; i++) {
        reward_kind a, b;
        assert_int_equal(reward_kind_parse(names[i][0], &a, NULL), TRL_OK);
        assert_int_equal(reward_kind_parse(names[i][1], &b, NULL), TRL_OK);
        assert_int_equal(a, b);
        assert_string_equal(reward_kind_name(a), names[i][0]);
    }
    reward_kind k;
    trl_err e;
    assert_int_equal(reward_kind_parse("v9", &k, &e), TRL_ERR);
    assert_non_null(strstr(e.msg, "v9"));
    assert_int_equal(reward_kind_parse(NULL, &k, &e), TRL_ERR);
}

// Bad input never crashes: huge texts, many tags, random bytes.
static void test_reward_robust(void **state) {
    (void)state;
    cJSON *gold = GOLD_PARSE("[{\"name\": \"f\", \"arguments\": {\"a\": 1}}]", NULL);
    size_t n = 4 << 20;
    char *big = malloc(n + 1);
    assert_non_null(big);
    // many unterminated blocks
    for (size_t i = 0; i < n; i++) big[i] = "<tool_call>["[i % 12];
    big[n] = 0;
    double s;
    assert_int_equal(reward_score(REWARD_BINARY, big, n, gold, &s, NULL, NULL), TRL_OK);
    assert_true(s == 0.0);
    // many complete blocks, the last one right
    const char *blk = "<tool_call>[]</tool_call>";
    size_t bl = strlen(blk), k = 0;
    while (k + bl < n - 200) {
        memcpy(big + k, blk, bl);
        k += bl;
    }
    k += (size_t)sprintf(big + k, "<think></think><tool_call>[{\"name\": \"f\", \"arguments\": {\"a\": 1}}]</tool_call>");
    assert_int_equal(reward_score(REWARD_BINARY, big, k, gold, &s, NULL, NULL), TRL_OK);
    assert_true(s == 1.0);
    // a huge string argument and deep nesting
    k = (size_t)sprintf(big, "<think></think><tool_call>[{\"name\": \"f\", \"arguments\": {\"a\": \"");
    memset(big + k, 'x', n / 2);
    k += n / 2;
    k += (size_t)sprintf(big + k, "\"}}]</tool_call>");
    assert_int_equal(reward_score(REWARD_BINARY, big, k, gold, &s, NULL, NULL), TRL_OK);
    assert_true(s == 0.0);
    k = (size_t)sprintf(big, "<think></think><tool_call>");
    for (int i = 0; i < 100000; i++) big[k++] = '[';
    k += (size_t)sprintf(big + k, "</tool_call>");
    assert_int_equal(reward_score(REWARD_BINARY, big, k, gold, &s, NULL, NULL), TRL_OK);
    assert_true(s == 0.0);
    // random bytes with tag fragments
    unsigned seed = 12345;
    static const char *const frags[] = {"<tool_call>", "</tool_call>", "<think>", "</think>", "[", "]", "{", "}",
                                        "\"name\"", "\"arguments\"", ":", ",", "\"f\"", "1", "\\", "\"", "\xff", "\xc3"};
    for (int iter = 0; iter < 2000; iter++) {
        size_t len = 0;
        int parts = (int)(rand_r(&seed) % 40);
        for (int p = 0; p < parts; p++) {
            const char *f = frags[rand_r(&seed) % (sizeof(frags) / sizeof(frags[0]))];
            size_t fl = strlen(f);
            memcpy(big + len, f, fl);
            len += fl;
        }
        for (int kind = 0; kind < 6; kind++)
            assert_int_equal(reward_score((reward_kind)kind, big, len, gold, &s, NULL, NULL), TRL_OK);
    }
    free(big);
    cJSON_Delete(gold);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_pyjson_numbers), cmocka_unit_test(test_pyjson_strict), cmocka_unit_test(test_pyjson_dump),
        cmocka_unit_test(test_pyjson_equal),   cmocka_unit_test(test_toolcall_parse), cmocka_unit_test(test_reward_table),
        cmocka_unit_test(test_reward_detail),  cmocka_unit_test(test_reward_gold),   cmocka_unit_test(test_reward_kinds),
        cmocka_unit_test(test_reward_robust),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
