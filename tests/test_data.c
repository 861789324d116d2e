// test_data.c: the unified example format (validation, parsing, printing), the Python-style call
// parser, and the converters: on every shared training file (xlam, toolace, toolrl_rlla) with
// their filter counts, on synthetic rows of each format, refusing the BFCL, API-Bank and
// ACEBench evaluation files (with every format), and on garbage; rows in OpenAI's fine-tuning
// shape. The newer sources and the mix are in test_data_mix.c. Shared data: $TOOLRL_SHARED or ../shared.
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "tests/support/convert_check.h"

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/pyjson.h"
#include "data/convert.h"
#include "data/example.h"
#include "data/pycall.h"

// ---------------------------------------------------------------------------------------------
// Validation

#define TOOLS "\"tools\": [{\"type\": \"function\", \"function\": {\"name\": \"f\", \"description\": \"d\", \"parameters\": {\"type\": \"object\"}}}]"
#define MSGS "\"messages\": [{\"role\": \"user\", \"content\": \"hi\"}]"
#define ANS "\"answer\": [{\"name\": \"f\", \"arguments\": {\"x\": 1.0}}]"

static void expect_invalid(const char *line, const char *field) {
    trl_err e;
    int rc = example_validate_line(line, strlen(line), &e);
    if (rc == TRL_OK || !strstr(e.msg, field))
        fprintf(stderr, "line %s\n  -> rc %d '%s', wanted an error naming '%s'\n", line, rc, rc ? e.msg : "", field);
    assert_int_equal(rc, TRL_ERR);
    assert_non_null(strstr(e.msg, field));
}

static void expect_valid(const char *line) {
    trl_err e;
    int rc = example_validate_line(line, strlen(line), &e);
    if (rc) fprintf(stderr, "line %s\n  -> %s\n", line, e.msg);
    assert_int_equal(rc, TRL_OK);
}

static void test_validate(void **state) {
    (void)state;
    expect_valid("{\"id\": \"a\", \"source\": \"s\", " MSGS ", " TOOLS ", " ANS "}");
    expect_valid("{\"id\": \"a\", \"source\": \"s\", " MSGS ", " TOOLS ", \"answer\": []}\r\n");
    expect_valid("{\"id\": \"a\", \"source\": \"s\", \"meta\": {\"k\": 1}, " MSGS ", " TOOLS ", " ANS "}");
    expect_valid("{\"id\": \"a\", \"source\": \"s\", \"messages\": [{\"role\": \"system\", \"content\": \"x\"}, {\"role\": "
                 "\"user\", \"content\": \"q\"}, {\"role\": \"assistant\", \"content\": null, \"tool_calls\": [{\"name\": "
                 "\"f\", \"arguments\": {}}]}, {\"role\": \"tool\", \"content\": \"r\"}, {\"role\": \"assistant\", "
                 "\"tool_calls\": [{\"name\": \"other\", \"arguments\": {}}]}], " TOOLS ", " ANS "}");
    expect_invalid("", "line: empty");
    expect_invalid("  \n", "line: empty");
    expect_invalid("{\"id\": \"a\",}", "line: invalid JSON");
    expect_invalid("[1]", "line: expected a JSON object");
    expect_invalid("{\"source\": \"s\", " MSGS ", " TOOLS ", " ANS "}", "id:");
    expect_invalid("{\"id\": \"\", \"source\": \"s\", " MSGS ", " TOOLS ", " ANS "}", "id:");
    expect_invalid("{\"id\": \"a\", \"source\": 3, " MSGS ", " TOOLS ", " ANS "}", "source:");
    expect_invalid("{\"id\": \"a\", \"source\": \"s\", " TOOLS ", " ANS "}", "messages:");
    expect_invalid("{\"id\": \"a\", \"source\": \"s\", \"messages\": [], " TOOLS ", " ANS "}", "messages:");
    expect_invalid("{\"id\": \"a\", \"source\": \"s\", \"messages\": [\"hi\"], " TOOLS ", " ANS "}", "messages[0]:");
    expect_invalid("{\"id\": \"a\", \"source\": \"s\", \"messages\": [{\"role\": \"bot\", \"content\": \"x\"}], " TOOLS
                   ", " ANS "}",
                   "messages[0].role");
    expect_invalid("{\"id\": \"a\", \"source\": \"s\", \"messages\": [{\"role\": \"user\", \"content\": null}], " TOOLS
                   ", " ANS "}",
                   "messages[0].content");
    expect_invalid("{\"id\": \"a\", \"source\": \"s\", \"messages\": [{\"role\": \"user\", \"content\": \"q\"}, {\"role\": "
                   "\"assistant\", \"content\": null}], " TOOLS ", " ANS "}",
                   "messages[1].content");
    expect_invalid("{\"id\": \"a\", \"source\": \"s\", \"messages\": [{\"role\": \"user\", \"content\": \"q\", "
                   "\"tool_calls\": []}], " TOOLS ", " ANS "}",
                   "messages[0].tool_calls");
    expect_invalid("{\"id\": \"a\", \"source\": \"s\", \"messages\": [{\"role\": \"user\", \"content\": \"q\"}, {\"role\": "
                   "\"assistant\", \"content\": null, \"tool_calls\": [{\"name\": \"f\", \"arguments\": \"{}\"}]}], " TOOLS
                   ", " ANS "}",
                   "messages[1].tool_calls[0].arguments");
    expect_invalid("{\"id\": \"a\", \"source\": \"s\", \"messages\": [{\"role\": \"system\", \"content\": \"q\"}], " TOOLS
                   ", " ANS "}",
                   "at least one \"user\"");
    expect_invalid("{\"id\": \"a\", \"source\": \"s\", " MSGS ", \"tools\": {}, " ANS "}", "tools:");
    expect_invalid("{\"id\": \"a\", \"source\": \"s\", " MSGS ", \"tools\": [{\"function\": {\"name\": \"f\"}}], " ANS "}",
                   "tools[0].type");
    expect_invalid("{\"id\": \"a\", \"source\": \"s\", " MSGS
                   ", \"tools\": [{\"type\": \"function\", \"function\": {\"name\": \"\"}}], " ANS "}",
                   "tools[0].function.name");
    expect_invalid("{\"id\": \"a\", \"source\": \"s\", " MSGS
                   ", \"tools\": [{\"type\": \"function\", \"function\": {\"name\": \"f\", \"description\": 1}}], " ANS "}",
                   "tools[0].function.description");
    expect_invalid("{\"id\": \"a\", \"source\": \"s\", " MSGS
                   ", \"tools\": [{\"type\": \"function\", \"function\": {\"name\": \"f\", \"parameters\": []}}], " ANS "}",
                   "tools[0].function.parameters");
    expect_invalid("{\"id\": \"a\", \"source\": \"s\", " MSGS ", " TOOLS "}", "answer:");
    expect_invalid("{\"id\": \"a\", \"source\": \"s\", " MSGS ", " TOOLS ", \"answer\": [{\"name\": \"g\", \"arguments\": {}}]}",
                   "answer[0].name");
    expect_invalid("{\"id\": \"a\", \"source\": \"s\", " MSGS ", " TOOLS ", \"answer\": [{\"name\": \"f\", \"arguments\": []}]}",
                   "answer[0].arguments");
    expect_invalid("{\"id\": \"a\", \"source\": \"s\", " MSGS ", " TOOLS ", \"answer\": [{\"name\": \"f\"}]}",
                   "answer[0].arguments");
    expect_invalid("{\"id\": \"a\", \"source\": \"s\", " MSGS ", " TOOLS ", \"answer\": [\"f\"]}", "answer[0]:");
}

static void test_validate_robust(void **state) {
    (void)state;
    // A huge content string, then random mutations of a valid line: never a crash.
    size_t n = 8 << 20;
    char *big = malloc(n + 256);
    assert_non_null(big);
    size_t k = (size_t)sprintf(big, "{\"id\": \"a\", \"source\": \"s\", \"messages\": [{\"role\": \"user\", \"content\": \"");
    memset(big + k, 'y', n);
    k += n;
    k += (size_t)sprintf(big + k, "\"}], " TOOLS ", " ANS "}");
    trl_err e;
    assert_int_equal(example_validate_line(big, k, &e), TRL_OK);
    free(big);
    const char *base = "{\"id\": \"a\", \"source\": \"s\", " MSGS ", " TOOLS ", " ANS "}";
    size_t bl = strlen(base);
    char buf[1024];
    unsigned seed = 7;
    static const char junk[] = "{}[]\",:\\0123456789truefalsenull \xff\xc3";
    for (int it = 0; it < 20000; it++) {
        memcpy(buf, base, bl);
        size_t len = bl;
        int edits = 1 + (int)(rand_r(&seed) % 4);
        for (int j = 0; j < edits; j++) {
            size_t pos = rand_r(&seed) % len;
            int op = (int)(rand_r(&seed) % 3);
            if (op == 0) {
                buf[pos] = junk[rand_r(&seed) % (sizeof(junk) - 1)];
            } else if (op == 1 && len > 1) {
                memmove(buf + pos, buf + pos + 1, len - pos - 1);
                len--;
            } else if (len + 1 < sizeof(buf)) {
                memmove(buf + pos + 1, buf + pos, len - pos);
                buf[pos] = junk[rand_r(&seed) % (sizeof(junk) - 1)];
                len++;
            }
        }
        example_validate_line(buf, len, &e);
        example ex;
        if (example_parse(buf, len, &ex, &e) == TRL_OK) {
            char *s = example_to_json(&ex);
            assert_non_null(s);
            assert_int_equal(example_validate_line(s, strlen(s), &e), TRL_OK);
            free(s);
            example_free(&ex);
        }
    }
}

static void test_example_roundtrip(void **state) {
    (void)state;
    const char *line = "{\"id\": \"a\", \"source\": \"s\", \"x\": 1, " MSGS ", " TOOLS
                       ", \"answer\": [{\"name\": \"f\", \"arguments\": {\"x\": 1.0, \"y\": 1, \"z\": \"\\u00e9\"}}]}\n";
    example ex;
    trl_err e;
    assert_int_equal(example_parse(line, strlen(line), &ex, &e), TRL_OK);
    assert_string_equal(ex.id, "a");
    assert_string_equal(ex.source, "s");
    assert_int_equal(cJSON_GetArraySize(ex.messages), 1);
    char *gt = example_answer_json(&ex);
    assert_string_equal(gt, "[{\"name\": \"f\", \"arguments\": {\"x\": 1.0, \"y\": 1, \"z\": \"\xc3\xa9\"}}]");
    free(gt);
    char *s = example_to_json(&ex);
    assert_non_null(strstr(s, "\"x\":1.0,\"y\":1"));
    assert_null(strstr(s, "\"x\":1,"));  // the extra top-level key is not kept
    assert_int_equal(example_validate_line(s, strlen(s), &e), TRL_OK);
    free(s);
    assert_true(example_has_tool(ex.tools, "f"));
    assert_false(example_has_tool(ex.tools, "g"));
    example_free(&ex);
    assert_int_equal(example_parse("{}", 2, &ex, &e), TRL_ERR);
    assert_null(ex.id);
}

// An upload in OpenAI's fine-tuning shape is the unified row it stands for.
static void test_openai_shape(void **state) {
    (void)state;
    const char *tools = "\"tools\": [{\"type\": \"function\", \"function\": {\"name\": \"get_weather\", "
                        "\"description\": \"Weather\", \"parameters\": {\"type\": \"object\", \"properties\": "
                        "{\"city\": {\"type\": \"string\"}, \"days\": {\"type\": \"integer\"}}, \"required\": "
                        "[\"city\"]}}}]";
    char openai[2048], unified[2048];
    snprintf(openai, sizeof(openai),
             "{\"messages\": [{\"role\": \"system\", \"content\": \"Be brief.\"}, {\"role\": \"user\", "
             "\"content\": \"Weather in Paris?\"}, {\"role\": \"assistant\", \"content\": null, \"tool_calls\": "
             "[{\"id\": \"call_0\", \"type\": \"function\", \"function\": {\"name\": \"get_weather\", "
             "\"arguments\": \"{\\\"city\\\": \\\"Paris\\\"}\"}}]}, {\"role\": \"tool\", \"tool_call_id\": "
             "\"call_0\", \"content\": \"sunny\"}, {\"role\": \"user\", \"content\": \"And Oslo for 2.0 days?\"}, "
             "{\"role\": \"assistant\", \"tool_calls\": [{\"id\": \"call_1\", \"type\": \"function\", "
             "\"function\": {\"name\": \"get_weather\", \"arguments\": \"{\\\"city\\\": \\\"Oslo\\\", "
             "\\\"days\\\": 2.0}\"}}]}], %s, \"parallel_tool_calls\": false}\n",
             tools);
    snprintf(unified, sizeof(unified),
             "{\"id\": \"line-3\", \"source\": \"upload\", \"messages\": [{\"role\": \"system\", \"content\": "
             "\"Be brief.\"}, {\"role\": \"user\", \"content\": \"Weather in Paris?\"}, {\"role\": \"assistant\", "
             "\"content\": null, \"tool_calls\": [{\"name\": \"get_weather\", \"arguments\": {\"city\": \"Paris\"}}]}, "
             "{\"role\": \"tool\", \"tool_call_id\": \"call_0\", \"content\": \"sunny\"}, {\"role\": \"user\", "
             "\"content\": \"And Oslo for 2.0 days?\"}], %s, \"answer\": [{\"name\": \"get_weather\", "
             "\"arguments\": {\"city\": \"Oslo\", \"days\": 2.0}}]}",
             tools);
    expect_valid(openai);
    expect_valid(unified);
    example a, b;
    trl_err e;
    assert_int_equal(example_parse_at(openai, strlen(openai), 3, &a, &e), TRL_OK);
    assert_int_equal(example_parse(unified, strlen(unified), &b, &e), TRL_OK);
    assert_string_equal(a.id, "line-3");
    assert_string_equal(a.source, "upload");
    char *ja = example_to_json(&a), *jb = example_to_json(&b);
    assert_string_equal(ja, jb);
    free(ja);
    free(jb);
    char *gt = example_answer_json(&a);
    assert_string_equal(gt, "[{\"name\": \"get_weather\", \"arguments\": {\"city\": \"Oslo\", \"days\": 2.0}}]");
    free(gt);
    example_free(&a);
    example_free(&b);
    // Without a line number the id is a hash of the line; given id and source are kept.
    assert_int_equal(example_parse(openai, strlen(openai), &a, &e), TRL_OK);
    assert_true(!strncmp(a.id, "upload-", 7) && strlen(a.id) == 15);
    example_free(&a);
    const char *named = "{\"id\": \"r9\", \"source\": \"mine\", \"messages\": [{\"role\": \"user\", \"content\": "
                        "\"hi\"}, {\"role\": \"assistant\", \"content\": \"hello\"}], \"tools\": []}";
    assert_int_equal(example_parse(named, strlen(named), &a, &e), TRL_OK);
    assert_string_equal(a.id, "r9");
    assert_string_equal(a.source, "mine");
    assert_int_equal(cJSON_GetArraySize(a.answer), 0);  // a reply without calls: answer []
    assert_int_equal(cJSON_GetArraySize(a.messages), 1);
    example_free(&a);
    // The other checks still apply.
    const char *m = "{\"messages\": [{\"role\": \"user\", \"content\": \"q\"}, {\"role\": \"assistant\", "
                    "\"tool_calls\": [{\"type\": \"function\", \"function\": {\"name\": \"nope\", \"arguments\": "
                    "\"{}\"}}]}], \"tools\": []}";
    expect_invalid(m, "answer[0].name");
    expect_invalid("{\"messages\": [{\"role\": \"user\", \"content\": \"q\"}, {\"role\": \"assistant\", "
                   "\"tool_calls\": [{\"type\": \"function\", \"function\": {\"name\": \"f\", \"arguments\": "
                   "\"{bad\"}}]}], \"tools\": [{\"type\": \"function\", \"function\": {\"name\": \"f\"}}]}",
                   "messages[1].tool_calls[0].function.arguments");
    expect_invalid("{\"messages\": [{\"role\": \"user\", \"content\": \"q\"}, {\"role\": \"assistant\", "
                   "\"tool_calls\": [{\"type\": \"custom\", \"function\": {\"name\": \"f\", \"arguments\": \"{}\"}}]}], "
                   "\"tools\": []}",
                   "messages[1].tool_calls[0].type");
    expect_invalid("{\"messages\": [{\"role\": \"user\", \"content\": \"q\"}], \"tools\": []}", "answer:");
    expect_invalid("{\"messages\": [{\"role\": \"assistant\", \"content\": \"q\"}], \"tools\": []}", "messages:");
    expect_invalid("{\"messages\": [{\"role\": \"user\", \"content\": \"q\"}, {\"role\": \"assistant\", "
                   "\"content\": \"x\"}]}",
                   "tools:");
    expect_invalid("{\"id\": 5, \"messages\": [{\"role\": \"user\", \"content\": \"q\"}, {\"role\": "
                   "\"assistant\", \"content\": \"x\"}], \"tools\": []}",
                   "id:");
}

// ---------------------------------------------------------------------------------------------
// Python-style calls

static void expect_literal(const char *py, const char *json) {
    cJSON *v = pycall_literal(py, strlen(py));
    char *s = v ? pyjson_dump(v, 0) : NULL;
    if (!json) {
        if (v) fprintf(stderr, "literal %s parsed as %s\n", py, s);
        assert_null(v);
    } else {
        if (!s || strcmp(s, json)) fprintf(stderr, "literal %s -> %s, want %s\n", py, s ? s : "NULL", json);
        assert_non_null(s);
        assert_string_equal(s, json);
    }
    free(s);
    cJSON_Delete(v);
}

static void test_pycall(void **state) {
    (void)state;
    // ast.literal_eval, then json.dumps (Python 3.11)
    expect_literal("1", "1");
    expect_literal("-1", "-1");
    expect_literal("1.0", "1.0");
    expect_literal("1.", "1.0");
    expect_literal(".5", "0.5");
    expect_literal("1e3", "1000.0");
    expect_literal("1_000", "1000");
    expect_literal("0x1F", "31");
    expect_literal("True", "true");
    expect_literal("None", "null");
    expect_literal("'a\\'b'", "\"a'b\"");
    expect_literal("\"x\\ny\"", "\"x\\ny\"");
    expect_literal("r'\\d+'", "\"\\\\d+\"");
    expect_literal("'a' 'b'", "\"ab\"");
    expect_literal("[1, 'a', [True]]", "[1, \"a\", [true]]");
    expect_literal("(1, 2)", "[1, 2]");
    expect_literal("(1,)", "[1]");
    expect_literal("(1)", "1");
    expect_literal("()", "[]");
    expect_literal("{'a': 1, 2: 'b', True: None}", "{\"a\": 1, \"2\": \"b\", \"true\": null}");
    expect_literal("{}", "{}");
    expect_literal("{1, 2}", "[1, 2]");
    expect_literal("true", NULL);
    expect_literal("abc", NULL);
    expect_literal("012", NULL);
    expect_literal("[1, 2", NULL);
    expect_literal("1 2", NULL);

    const char *t = "[Weather.get(city='Paris, FR', days=3, units=\"metric\"), news() , x_y-z(q=f(1), flag=true, n=-2.5)]";
    cJSON *calls = pycall_parse_list(t, strlen(t));
    assert_non_null(calls);
    char *s = pyjson_dump(calls, 0);
    assert_string_equal(s, "[{\"name\": \"Weather.get\", \"arguments\": {\"city\": \"Paris, FR\", \"days\": 3, \"units\": \"metric\"}}, "
                           "{\"name\": \"news\", \"arguments\": {}}, "
                           "{\"name\": \"x_y-z\", \"arguments\": {\"q\": \"f(1)\", \"flag\": \"true\", \"n\": -2.5}}]");
    free(s);
    cJSON_Delete(calls);
    // An argument containing ')' is not truncated (Tool-N1's regex would cut it).
    t = "[Search API(query='a) b', limit=5)]";
    calls = pycall_parse_list(t, strlen(t));
    assert_non_null(calls);
    s = pyjson_dump(calls, 0);
    assert_string_equal(s, "[{\"name\": \"Search API\", \"arguments\": {\"query\": \"a) b\", \"limit\": 5}}]");
    free(s);
    cJSON_Delete(calls);
    static const char *const bad[] = {"", "[]", "f(a=1)", "[f(a=1]", "[f(a=1) g()]", "[(a=1)]", "[f(a='1)]x", "[f(a=1),]"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        cJSON *v = pycall_parse_list(bad[i], strlen(bad[i]));
        if (v) fprintf(stderr, "call list parsed: %s\n", bad[i]);
        assert_null(v);
    }
}

// ---------------------------------------------------------------------------------------------
// Converters

static void test_convert_xlam_shared(void **state) {
    (void)state;
    char path[1024];
    NEED_SHARED(path, "xlam/masking_sft_data_example.json");
    collect col;
    convert_counts c;
    collect_path(CONVERT_XLAM, path, NULL, &col, &c);
    expect_counts(&c, "rows=10 kept=10");
    assert_int_equal(filtered(&c), 0);
    assert_int_equal(convert_count_get(&c, "no_call_kept"), 2);
    const cJSON *x = find_example(col.kept, "xlam-4");
    assert_non_null(x);
    char *s = pyjson_dump(cJSON_GetObjectItemCaseSensitive(x, "answer"), 0);
    // float tokens survive exactly
    assert_non_null(strstr(s, "\"JQsHdN0KHB\": 1.9235063827453325"));
    assert_non_null(strstr(s, "\"jCT8uN0zv\": 12,"));
    free(s);
    cJSON_Delete(col.kept);
    convert_opts o = {.drop_no_call = 1};
    collect_path(CONVERT_XLAM, path, &o, &col, &c);
    expect_counts(&c, "kept=8 no_call_dropped=2");
    cJSON_Delete(col.kept);
}

static void test_convert_toolace_shared(void **state) {
    (void)state;
    char path[1024];
    NEED_SHARED(path, "toolace/sharegpt_func_fixed.json");
    collect col;
    convert_counts c;
    collect_path(CONVERT_TOOLACE, path, NULL, &col, &c);
    expect_counts(&c, "rows=100 samples=181 kept=176 empty_call=1 ambiguous_name=4 unknown_tool=0 "
                      "unparseable_call=0 repaired_names=157 repaired_by_observation=20");
    // "API" -> "Market Trends API" (the only tool whose last word is API... and the observation agrees)
    const cJSON *x = find_example(col.kept, "toolace-0-1");
    assert_non_null(x);
    const cJSON *a = cJSON_GetObjectItemCaseSensitive(x, "answer");
    assert_string_equal(cJSON_GetObjectItemCaseSensitive(a->child, "name")->valuestring, "Market Trends API");
    assert_string_equal(cJSON_GetObjectItemCaseSensitive(x, "source")->valuestring, "toolace_single_turn");
    // two "Number" calls told apart by the observation
    x = find_example(col.kept, "toolace-59-1");
    a = cJSON_GetObjectItemCaseSensitive(x, "answer");
    assert_string_equal(cJSON_GetObjectItemCaseSensitive(a->child, "name")->valuestring, "Format Number");
    assert_string_equal(cJSON_GetObjectItemCaseSensitive(a->child->next, "name")->valuestring, "Valistring Phone Number");
    // a later call: the context holds the earlier turns, earlier calls repaired too
    x = find_example(col.kept, "toolace-1-7");
    assert_non_null(x);
    const cJSON *m = cJSON_GetObjectItemCaseSensitive(x, "messages");
    assert_int_equal(cJSON_GetArraySize(m), 7);
    assert_string_equal(cJSON_GetObjectItemCaseSensitive(x, "source")->valuestring, "toolace_multiple_turn");
    const cJSON *m1 = cJSON_GetArrayItem(m, 1);
    assert_string_equal(cJSON_GetObjectItemCaseSensitive(m1, "role")->valuestring, "assistant");
    const cJSON *tc = cJSON_GetObjectItemCaseSensitive(m1, "tool_calls");
    assert_string_equal(cJSON_GetObjectItemCaseSensitive(tc->child, "name")->valuestring, "Quotes by Keywords");
    assert_string_equal(cJSON_GetObjectItemCaseSensitive(cJSON_GetArrayItem(m, 2), "role")->valuestring, "tool");
    // ambiguous names with no observation after them are dropped
    assert_null(find_example(col.kept, "toolace-0-9"));
    cJSON_Delete(col.kept);

    // Without repair the defect is only detected.
    convert_opts o = {.no_repair = 1};
    collect_path(CONVERT_TOOLACE, path, &o, &col, &c);
    print_counts("toolace/sharegpt_func_fixed.json --no-repair", &c);
    expect_counts(&c, "samples=181 repaired_names=0");
    assert_true(convert_count_get(&c, "unknown_tool") >= 140);
    assert_int_equal(convert_count_get(&c, "kept") + filtered(&c), 181);
    cJSON_Delete(col.kept);
}

static void test_convert_toolrl_shared(void **state) {
    (void)state;
    char path[1024];
    NEED_SHARED(path, "toolrl_rlla/rlla_sft.json");
    collect col;
    convert_counts c;
    collect_path(CONVERT_TOOLRL, path, NULL, &col, &c);
    // unknown_tool: row 130: a call cut at a ','
    expect_counts(&c, "rows=400 kept=399 unknown_tool=1 no_call_kept=54");
    assert_null(find_example(col.kept, "toolrl-130"));
    const cJSON *x = find_example(col.kept, "toolrl-0");
    const cJSON *a = cJSON_GetObjectItemCaseSensitive(x, "answer");
    char *s = pyjson_dump(a, 0);
    assert_string_equal(s, "[{\"name\": \"Search Managers\", \"arguments\": {\"name\": \"Alex Ferguson\"}}]");
    free(s);
    // row 10's thoughts mention "<tool_call>": the real block after </think> is used (4 calls)
    x = find_example(col.kept, "toolrl-10");
    assert_int_equal(cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(x, "answer")), 4);
    cJSON_Delete(col.kept);
}

// Every file in bfcl/ and apibank/ is refused, by name and by content.
static void refuse_dir(const char *rel, int *count) {
    char dir[1024];
    snprintf(dir, sizeof(dir), "%s/data/%s", shared_dir(), rel);
    DIR *d = opendir(dir);
    if (!d) return;
    struct dirent *de;
    while ((de = readdir(d))) {
        if (de->d_name[0] == '.') continue;
        char path[2048];
        snprintf(path, sizeof(path), "%s/%s", dir, de->d_name);
        size_t len;
        trl_err e;
        char *text = trl_read_file(path, &len, &e);
        if (!text) continue;  // a directory
        for (int f = 0; f < CONVERT_N_FORMATS; f++) {
            convert_counts c;
            convert_counts_init(&c);
            collect col = {0};
            assert_int_equal(convert_file((convert_format)f, path, NULL, collect_sink, &col, &c, &e), TRL_ERR);
            assert_non_null(strstr(e.msg, "evaluation"));
            assert_int_equal(col.n, 0);
            // the same content under any name
            convert_counts_init(&c);
            int rc = convert_text((convert_format)f, text, len, NULL, collect_sink, &col, &c, &e);
            if (rc != TRL_ERR) fprintf(stderr, "%s accepted as %s\n", path, convert_format_name((convert_format)f));
            assert_int_equal(rc, TRL_ERR);
            assert_int_equal(col.n, 0);
        }
        free(text);
        (*count)++;
    }
    closedir(d);
}

static void test_refuse_eval_sets(void **state) {
    (void)state;
    char path[1024];
    NEED_SHARED(path, "bfcl");
    int n = 0;
    refuse_dir("bfcl", &n);
    refuse_dir("bfcl/possible_answer", &n);
    refuse_dir("apibank", &n);
    refuse_dir("apibank/hammer", &n);
    refuse_dir("acebench/data_en", &n);
    refuse_dir("acebench/possible_answer_en", &n);
    printf("refused %d evaluation files\n", n);
    assert_true(n >= 21 + 17 + 17);
}

static void test_convert_xlam_native(void **state) {
    (void)state;
    const char *text =
        "{\"id\": 7, \"query\": \"Weather in Paris?\", \"tools\": \"[{\\\"name\\\": \\\"weather\\\", \\\"description\\\": "
        "\\\"w\\\", \\\"parameters\\\": {\\\"city\\\": {\\\"type\\\": \\\"str\\\"}}}]\", \"answers\": \"[{\\\"name\\\": "
        "\\\"weather\\\", \\\"arguments\\\": {\\\"city\\\": \\\"Paris\\\", \\\"days\\\": 2.0}}]\"}\n"
        "{\"query\": \"q\", \"tools\": [{\"name\": \"a\"}], \"answers\": [{\"name\": \"b\", \"arguments\": {}}]}\n"
        "{\"query\": \"q\", \"tools\": [{\"name\": \"a\"}], \"answers\": \"[{\\\"name\\\": \\\"a\\\"\"}\n"
        "{\"query\": \"q\", \"tools\": \"not json\", \"answers\": []}\n"
        "{\"tools\": [], \"answers\": []}\n"
        "this line is not JSON\n"
        "\n"
        "{\"query\": \"q\", \"tools\": [{\"name\": \"a\"}], \"answers\": [{\"name\": \"a\", \"arguments\": \"{\\\"k\\\": 1}\"}]}\n";
    collect col;
    convert_counts c;
    collect_text(CONVERT_XLAM, text, NULL, &col, &c);
    expect_counts(&c, "rows=7 kept=2 unknown_tool=1 unparseable_call=1 no_tools=1 malformed_row=2");
    const cJSON *x = find_example(col.kept, "xlam-7");
    assert_non_null(x);
    char *s = pyjson_dump(cJSON_GetObjectItemCaseSensitive(x, "answer"), 0);
    assert_string_equal(s, "[{\"name\": \"weather\", \"arguments\": {\"city\": \"Paris\", \"days\": 2.0}}]");
    free(s);
    cJSON_Delete(col.kept);
    // a broken JSON array is an error, not a count
    convert_counts_init(&c);
    trl_err e;
    assert_int_equal(convert_text(CONVERT_XLAM, "[{\"query\": 1}, {", 16, NULL, NULL, NULL, &c, &e), TRL_ERR);
    convert_counts_init(&c);
    assert_int_equal(convert_text(CONVERT_XLAM, "[]", 2, NULL, NULL, NULL, &c, &e), TRL_OK);
    assert_int_equal(convert_count_get(&c, "rows"), 0);
}

static void test_convert_toolace_pycalls(void **state) {
    (void)state;
    const char *text =
        "[{\"system\": \"You are an expert. Here is a list of functions in JSON format that you can invoke:\\n[{\\\"name\\\": "
        "\\\"get_weather\\\", \\\"description\\\": \\\"w\\\", \\\"parameters\\\": {\\\"type\\\": \\\"dict\\\", "
        "\\\"properties\\\": {\\\"city\\\": {\\\"type\\\": \\\"string\\\"}}, \\\"required\\\": [\\\"city\\\"]}}]. "
        "\\nShould you decide to return the function call(s). \\nPut it in the format of [func1(params)]\", "
        "\"conversations\": ["
        "{\"from\": \"user\", \"value\": \"Weather in Paris and Rome?\"},"
        "{\"from\": \"assistant\", \"value\": \"[get_weather(city='Paris'), get_weather(city=\\\"Rome\\\")]\"},"
        "{\"from\": \"tool\", \"value\": \"[{\\\"name\\\": \\\"get_weather\\\", \\\"results\\\": {}}]\"},"
        "{\"from\": \"assistant\", \"value\": \"Sunny in both.\"},"
        "{\"from\": \"user\", \"value\": \"And Oslo?\"},"
        "{\"from\": \"assistant\", \"value\": \"[get_weather()]\"},"
        "{\"from\": \"user\", \"value\": \"Thanks\"},"
        "{\"from\": \"assistant\", \"value\": \"[unknown_tool(x=1)]\"}]},"
        "{\"system\": \"no tools here\", \"conversations\": [{\"from\": \"human\", \"value\": \"hi\"}, {\"from\": "
        "\"function_call\", \"value\": \"{\\\"name\\\": \\\"f\\\", \\\"arguments\\\": {}}\"}]},"
        "{\"system\": \"x\", \"conversations\": [{\"from\": \"alien\", \"value\": \"hi\"}]}]";
    collect col;
    convert_counts c;
    collect_text(CONVERT_TOOLACE, text, NULL, &col, &c);
    print_counts("toolace synthetic", &c);
    expect_counts(&c, "rows=3 samples=4 kept=2 unknown_tool=1 no_tools=1 malformed_row=1 calls_missing_required=1");
    const cJSON *x = find_example(col.kept, "toolace-0-1");
    char *s = pyjson_dump(cJSON_GetObjectItemCaseSensitive(x, "answer"), 0);
    assert_string_equal(s, "[{\"name\": \"get_weather\", \"arguments\": {\"city\": \"Paris\"}}, {\"name\": \"get_weather\", "
                           "\"arguments\": {\"city\": \"Rome\"}}]");
    free(s);
    x = find_example(col.kept, "toolace-0-5");
    assert_int_equal(cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(x, "messages")), 5);
    cJSON_Delete(col.kept);
}

static void test_convert_openai(void **state) {
    (void)state;
    const char *tools = "\"tools\": [{\"type\": \"function\", \"function\": {\"name\": \"add\", \"parameters\": {\"type\": "
                        "\"object\", \"properties\": {\"a\": {\"type\": \"number\"}}}}}]";
    char text[4096];
    snprintf(text, sizeof(text),
             "{\"id\": \"r1\", \"messages\": [{\"role\": \"developer\", \"content\": \"be brief\"}, {\"role\": \"user\", "
             "\"content\": [{\"type\": \"text\", \"text\": \"add 1\"}, {\"type\": \"text\", \"text\": \" and 2\"}]}, "
             "{\"role\": \"assistant\", \"content\": null, \"tool_calls\": [{\"id\": \"c1\", \"type\": \"function\", "
             "\"function\": {\"name\": \"add\", \"arguments\": \"{\\\"a\\\": 1, \\\"b\\\": 2.0}\"}}]}, {\"role\": \"tool\", "
             "\"tool_call_id\": \"c1\", \"content\": \"3\"}, {\"role\": \"assistant\", \"content\": \"3\"}, {\"role\": "
             "\"user\", \"content\": \"again\"}, {\"role\": \"assistant\", \"content\": \"ok\", \"tool_calls\": [{\"name\": "
             "\"add\", \"arguments\": {\"a\": 5}}]}], %s}\n"
             "{\"messages\": [{\"role\": \"user\", \"content\": \"x\"}, {\"role\": \"assistant\", \"tool_calls\": "
             "[{\"function\": {\"name\": \"add\", \"arguments\": \"{bad\"}}]}, {\"role\": \"user\", \"content\": \"y\"}, "
             "{\"role\": \"assistant\", \"tool_calls\": [{\"function\": {\"name\": \"add\", \"arguments\": \"{}\"}}]}], %s}\n"
             "{\"messages\": [{\"role\": \"user\", \"content\": \"x\"}, {\"role\": \"assistant\", \"tool_calls\": "
             "[{\"function\": {\"name\": \"sub\", \"arguments\": \"{}\"}}]}], %s}\n"
             "{\"messages\": [{\"role\": \"user\", \"content\": \"x\"}, {\"role\": \"assistant\", \"tool_calls\": "
             "[{\"function\": {\"name\": \"add\", \"arguments\": \"{}\"}}]}]}\n"
             "{\"messages\": [{\"role\": \"user\", \"content\": \"just chat\"}, {\"role\": \"assistant\", \"content\": "
             "\"hi\"}], %s}\n"
             "{\"messages\": [{\"role\": \"wizard\", \"content\": \"x\"}], %s}\n",
             tools, tools, tools, tools, tools);
    collect col;
    convert_counts c;
    collect_text(CONVERT_OPENAI, text, NULL, &col, &c);
    print_counts("openai synthetic", &c);
    expect_counts(&c, "rows=6 samples=6 kept=2 unparseable_call=2 unknown_tool=1 no_tools=1 malformed_row=1 "
                      "rows_without_calls=1");
    const cJSON *x = find_example(col.kept, "r1-2");
    assert_non_null(x);
    const cJSON *m = cJSON_GetObjectItemCaseSensitive(x, "messages");
    assert_int_equal(cJSON_GetArraySize(m), 2);
    assert_string_equal(cJSON_GetObjectItemCaseSensitive(m->child, "role")->valuestring, "system");
    assert_string_equal(cJSON_GetObjectItemCaseSensitive(m->child->next, "content")->valuestring, "add 1 and 2");
    char *s = pyjson_dump(cJSON_GetObjectItemCaseSensitive(x, "answer"), 0);
    assert_string_equal(s, "[{\"name\": \"add\", \"arguments\": {\"a\": 1, \"b\": 2.0}}]");
    free(s);
    x = find_example(col.kept, "r1-6");
    m = cJSON_GetObjectItemCaseSensitive(x, "messages");
    assert_int_equal(cJSON_GetArraySize(m), 6);
    const cJSON *m2 = cJSON_GetArrayItem(m, 2);
    assert_null(cJSON_GetObjectItemCaseSensitive(m2, "tool_call_id"));
    assert_true(cJSON_IsNull(cJSON_GetObjectItemCaseSensitive(m2, "content")));
    assert_string_equal(cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(m2, "tool_calls")->child, "name")->valuestring,
                        "add");
    cJSON_Delete(col.kept);
}

static void test_convert_toolrl_synthetic(void **state) {
    (void)state;
    const char *instr = "You are a helpful assistant.\\n\\n**Available Tools**\\nIn your response, you can use:\\n"
                        "1. Name: Get Time\\nDescription: Time now.\\nSecond line.\\nParameters: {\\\"tz\\\": {\\\"type\\\": \\\"str\\\"}}\\n"
                        "2. Name: ping\\nDescription: Ping.\\nParameters: {}\\n\\n**Steps for Each Turn**\\n1. Think";
    char text[4096];
    snprintf(text, sizeof(text),
             "[{\"instruction\": \"%s\", \"input\": \"**Dialogue Records History**\\n<user> What time? </user>\\n\\n<think> x "
             "</think>\\n<tool_call>\\n{\\\"name\\\": \\\"Get Time\\\", \\\"parameters\\\": {\\\"tz\\\": \\\"UTC\\\"}}\\n</tool_call>\\n"
             "<obs> 12:00 </obs>\\n\\n<think> y </think>\\n<response> Noon. </response>\\n\\n<user> Ping? </user>\", \"output\": "
             "\"<think> mention <tool_call> here </think>\\n<tool_call>\\n{\\\"name\\\": \\\"ping\\\", \\\"parameters\\\": {}}\\n"
             "{\\\"name\\\": \\\"ping\\\", \\\"parameters\\\": {}}\\n</tool_call>\"},"
             "{\"instruction\": \"%s\", \"input\": \"<user> hi </user>\", \"output\": \"<think> t </think>\\n<response> hello "
             "</response>\"},"
             "{\"instruction\": \"%s\", \"input\": \"<user> hi </user>\", \"output\": \"<think> t </think>\\n<tool_call>\\n"
             "{\\\"name\\\": \\\"ping\\\"\\n</tool_call>\"},"
             "{\"instruction\": \"no tools\", \"input\": \"<user> hi </user>\", \"output\": \"\"},"
             "{\"instruction\": 5}]",
             instr, instr, instr);
    collect col;
    convert_counts c;
    collect_text(CONVERT_TOOLRL, text, NULL, &col, &c);
    print_counts("toolrl synthetic", &c);
    expect_counts(&c, "rows=5 kept=2 no_call_kept=1 unparseable_call=1 no_tools=1 malformed_row=1");
    const cJSON *x = find_example(col.kept, "toolrl-0");
    const cJSON *tools = cJSON_GetObjectItemCaseSensitive(x, "tools");
    assert_int_equal(cJSON_GetArraySize(tools), 2);
    const cJSON *fn = example_tool_function(tools->child);
    assert_string_equal(cJSON_GetObjectItemCaseSensitive(fn, "description")->valuestring, "Time now.\nSecond line.");
    const cJSON *m = cJSON_GetObjectItemCaseSensitive(x, "messages");
    assert_int_equal(cJSON_GetArraySize(m), 5);  // user, assistant(call), tool, assistant(response), user
    assert_string_equal(cJSON_GetObjectItemCaseSensitive(cJSON_GetArrayItem(m, 3), "content")->valuestring, "Noon.");
    assert_int_equal(cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(x, "answer")), 2);
    cJSON_Delete(col.kept);
}

// Garbage in: never a crash, whatever the format.
static void test_convert_garbage(void **state) {
    (void)state;
    static const char *const inputs[] = {
        "", "[", "]", "[,]", "[1, 2, 3]", "[null, \"x\", {}]", "{\"a\":", "\xff\xfe\x00\x01",
        "[{\"conversations\": [{\"from\": \"human\"}]}]", "[{\"conversations\": 7, \"system\": []}]",
        "[{\"instruction\": \"[BEGIN OF AVAILABLE TOOLS][END OF AVAILABLE TOOLS][BEGIN OF QUERY][END OF QUERY]\", "
        "\"output\": \"```\"}]",
        "[{\"instruction\": \"**Available Tools**\\n1. Name: x\\n\", \"input\": \"<user>\", \"output\": \"<tool_call>\"}]",
        "{\"messages\": [{\"role\": \"assistant\", \"tool_calls\": [null, 1, {\"function\": 3}]}], \"tools\": [1]}",
    };
    for (size_t i = 0; i < sizeof(inputs) / sizeof(inputs[0]); i++) {
        for (int f = 0; f < CONVERT_N_FORMATS; f++) {
            convert_counts c;
            convert_counts_init(&c);
            collect col = {0};
            trl_err e;
            convert_text((convert_format)f, inputs[i], strlen(inputs[i]), NULL, collect_sink, &col, &c, &e);
            assert_int_equal(col.invalid, 0);
        }
    }
    // deep nesting inside a record
    size_t n = 200000;
    char *deep = malloc(2 * n + 64);
    size_t k = (size_t)sprintf(deep, "[{\"query\": \"q\", \"tools\": ");
    memset(deep + k, '[', n);
    k += n;
    memset(deep + k, ']', n);
    k += n;
    k += (size_t)sprintf(deep + k, ", \"answers\": []}]");
    convert_counts c;
    convert_counts_init(&c);
    trl_err e;
    assert_int_equal(convert_text(CONVERT_XLAM, deep, k, NULL, NULL, NULL, &c, &e), TRL_ERR);
    free(deep);
    convert_format f;
    assert_int_equal(convert_format_parse("sharegpt", &f, &e), TRL_ERR);
    assert_int_equal(convert_format_parse("toolace", &f, &e), TRL_OK);
    assert_int_equal(f, CONVERT_TOOLACE);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_validate),
        cmocka_unit_test(test_validate_robust),
        cmocka_unit_test(test_example_roundtrip),
        cmocka_unit_test(test_openai_shape),
        cmocka_unit_test(test_pycall),
        cmocka_unit_test(test_convert_xlam_shared),
        cmocka_unit_test(test_convert_toolace_shared),
        cmocka_unit_test(test_convert_toolrl_shared),
        cmocka_unit_test(test_refuse_eval_sets),
        cmocka_unit_test(test_convert_xlam_native),
        cmocka_unit_test(test_convert_toolace_pycalls),
        cmocka_unit_test(test_convert_openai),
        cmocka_unit_test(test_convert_toolrl_synthetic),
        cmocka_unit_test(test_convert_garbage),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
