// test_protocol_json.c: tool-call JSON prints the same everywhere, and as Python's json.dumps does.
// The reference is tests/fixtures/pydumps.jsonl (written by tests/ref/make_pydumps_fixture.py with
// Python's json module): floats (1.0, 0.1, 1e-05, 1e+16), big and negative-zero ints, non-ASCII,
// astral and control characters, nested schemas, a duplicate key. Each case goes through
//   * the training prompt (toolprompt_system over a pyjson-parsed tool list, as trainer/task.c),
//   * the server's prompt (chat_request_parse of an OpenAI request, then toolprompt_render_ex),
//   * the SFT target (task_sft_reply) and an earlier assistant turn's tool_calls in a request,
// and must print exactly the fixture's line. Then every SFT target of the training mix (every
// shared training source, `toolrl data mix`) must score 1.0 under the binary reward.
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "base/pyjson.h"
#include "base/strbuf.h"
#include "data/convert.h"
#include "data/example.h"
#include "data/mix.h"
#include "eval/reward.h"
#include "protocol/toolcall_parse.h"
#include "protocol/toolprompt.h"
#include "server/chat_request.h"
#include "tests/support/shared_data.h"
#include "trainer/task.h"

typedef struct {
    char kind[16];
    char *input, *expected;
} fixture_case;

static fixture_case cases[64];
static int n_cases;

static void load_fixture(void) {
    if (n_cases) return;
    FILE *f = fopen("tests/fixtures/pydumps.jsonl", "rb");
    assert_non_null(f);
    char *line = NULL;
    size_t cap = 0;
    ssize_t len;
    while ((len = getline(&line, &cap, f)) > 0 && n_cases < 64) {
        cJSON *o = pyjson_parse(line, (size_t)len, NULL);
        assert_non_null(o);
        fixture_case *c = &cases[n_cases++];
        snprintf(c->kind, sizeof(c->kind), "%s", cJSON_GetObjectItem(o, "kind")->valuestring);
        c->input = strdup(cJSON_GetObjectItem(o, "input")->valuestring);
        c->expected = strdup(cJSON_GetObjectItem(o, "expected")->valuestring);
        cJSON_Delete(o);
    }
    free(line);
    fclose(f);
    assert_true(n_cases >= 8);
}

static int count_kind(const char *kind) {
    int n = 0;
    for (int i = 0; i < n_cases; i++) n += !strcmp(cases[i].kind, kind);
    return n;
}

// "\n<line>\n" or "<tools>\n<line>\n" etc.: the tool's whole line, not a part of a longer one.
static void assert_has_line(const char *text, const char *line, const char *before, const char *after) {
    strbuf b;
    strbuf_init(&b);
    strbuf_adds(&b, before);
    strbuf_adds(&b, line);
    strbuf_adds(&b, after);
    char *want = strbuf_take(&b);
    if (!strstr(text, want)) fail_msg("expected %s\nin\n%s", want, text);
    free(want);
}

static void test_tool_line_training_prompt(void **state) {
    (void)state;
    load_fixture();
    for (int i = 0; i < n_cases; i++) {
        if (strcmp(cases[i].kind, "tool")) continue;
        strbuf b;
        strbuf_init(&b);
        strbuf_adds(&b, "[{\"type\": \"function\", \"function\": ");
        strbuf_adds(&b, cases[i].input);
        strbuf_adds(&b, "}]");
        char *txt = strbuf_take(&b);
        cJSON *tools = pyjson_parse(txt, strlen(txt), NULL);
        assert_non_null(tools);
        char *sys = toolprompt_system(tools, NULL);
        assert_non_null(sys);
        assert_has_line(sys, cases[i].expected, "<tools>\n", "\n</tools>");
        free(sys);
        cJSON_Delete(tools);
        free(txt);
    }
}

static void test_tool_line_server_prompt(void **state) {
    (void)state;
    load_fixture();
    for (int i = 0; i < n_cases; i++) {
        if (strcmp(cases[i].kind, "tool")) continue;
        strbuf b;
        strbuf_init(&b);
        strbuf_adds(&b, "{\"model\": \"m\", \"messages\": [{\"role\": \"user\", \"content\": \"hi\"}], "
                        "\"tools\": [{\"type\": \"function\", \"function\": ");
        strbuf_adds(&b, cases[i].input);
        strbuf_adds(&b, "}]}");
        char *body = strbuf_take(&b);
        chat_request r;
        api_error err;
        int rc = chat_request_parse(body, strlen(body), &r, &err);
        if (rc) fail_msg("case %d: %s", i, err.message);
        char *prompt = toolprompt_render_ex(r.tools, NULL, NULL, r.msgs, r.n_msgs);
        assert_non_null(prompt);
        assert_has_line(prompt, cases[i].expected, "<tools>\n", "\n</tools>");
        free(prompt);
        chat_request_free(&r);
        free(body);
    }
}

// The SFT target holds json.dumps(answer) between the tags, and the binary reward gives it 1.
static void test_answer_sft_target(void **state) {
    (void)state;
    load_fixture();
    assert_true(count_kind("answer") >= 3);
    for (int i = 0; i < n_cases; i++) {
        if (strcmp(cases[i].kind, "answer")) continue;
        char *reply = task_sft_reply(cases[i].input);
        assert_non_null(reply);
        assert_has_line(reply, cases[i].expected, "<tool_call>", "</tool_call>");
        double score = -1;
        trl_err e = {{0}};
        assert_int_equal(reward_score_text(REWARD_BINARY, reply, strlen(reply), cases[i].input, &score, NULL, &e),
                         TRL_OK);
        assert_true(score == 1.0);
        free(reply);
    }
}

// An earlier assistant turn of a request (arguments as JSON text, OpenAI's form) prints its
// calls in the prompt exactly as json.dumps does.
static void test_answer_server_history(void **state) {
    (void)state;
    load_fixture();
    for (int i = 0; i < n_cases; i++) {
        if (strcmp(cases[i].kind, "answer")) continue;
        cJSON *calls = pyjson_parse(cases[i].input, strlen(cases[i].input), NULL);
        assert_non_null(calls);
        if (!cJSON_GetArraySize(calls)) {
            cJSON_Delete(calls);
            continue;
        }
        strbuf b;
        strbuf_init(&b);
        strbuf_adds(&b, "{\"model\": \"m\", \"tools\": [");
        int k = 0;
        for (const cJSON *c = calls->child; c; c = c->next, k++)
            strbuf_addf(&b, "%s{\"type\": \"function\", \"function\": {\"name\": \"%s\"}}", k ? ", " : "",
                        cJSON_GetObjectItem(c, "name")->valuestring);
        strbuf_adds(&b, "], \"messages\": [{\"role\": \"user\", \"content\": \"hi\"}, {\"role\": \"assistant\", "
                        "\"content\": null, \"tool_calls\": [");
        k = 0;
        for (const cJSON *c = calls->child; c; c = c->next, k++) {
            char *args = pyjson_dump(cJSON_GetObjectItem(c, "arguments"), 0);
            cJSON *s = cJSON_CreateString(args);
            char *quoted = cJSON_PrintUnformatted(s);
            strbuf_addf(&b, "%s{\"id\": \"c%d\", \"type\": \"function\", \"function\": {\"name\": \"%s\", \"arguments\": %s}}",
                        k ? ", " : "", k, cJSON_GetObjectItem(c, "name")->valuestring, quoted);
            free(quoted);
            cJSON_Delete(s);
            free(args);
        }
        strbuf_adds(&b, "]}");
        k = 0;
        for (const cJSON *c = calls->child; c; c = c->next, k++)
            strbuf_addf(&b, ", {\"role\": \"tool\", \"tool_call_id\": \"c%d\", \"content\": \"ok\"}", k);
        strbuf_adds(&b, "]}");
        char *body = strbuf_take(&b);
        chat_request r;
        api_error err;
        if (chat_request_parse(body, strlen(body), &r, &err)) fail_msg("case %d: %s\n%s", i, err.message, body);
        char *prompt = toolprompt_render_ex(r.tools, NULL, NULL, r.msgs, r.n_msgs);
        assert_non_null(prompt);
        assert_has_line(prompt, cases[i].expected, "<tool_call>", "</tool_call>");
        free(prompt);
        chat_request_free(&r);
        free(body);
        cJSON_Delete(calls);
    }
}

// Qwen2.5's own tool template (the "hermes" prompt style), written out by hand from its Jinja
// source: system text, "# Tools", tojson lines (non-ASCII kept), one block per earlier call,
// results merged into a user turn.
static void test_hermes_render(void **state) {
    (void)state;
    const char *tools_txt = "[{\"type\": \"function\", \"function\": {\"name\": \"w\", \"parameters\": "
                            "{\"x\": 1.0, \"c\": \"\u00e9\"}}}]";
    cJSON *tools = pyjson_parse(tools_txt, strlen(tools_txt), NULL);
    cJSON *calls = pyjson_parse("[{\"name\": \"w\", \"arguments\": {\"x\": 2.0}}, {\"name\": \"w\", \"arguments\": {}}]", 72, NULL);
    assert_non_null(tools);
    assert_non_null(calls);
    toolprompt_msg m[4] = {{"user", "hi", NULL}, {"assistant", NULL, calls}, {"tool", "r1", NULL}, {"tool", "r2", NULL}};
    char *p = toolprompt_render_style(TOOLPROMPT_HERMES, tools, m, 4);
    const char *want =
        "<|im_start|>system\nYou are Qwen, created by Alibaba Cloud. You are a helpful assistant.\n\n# Tools\n\n"
        "You may call one or more functions to assist with the user query.\n\nYou are provided with function "
        "signatures within <tools></tools> XML tags:\n<tools>\n"
        "{\"type\": \"function\", \"function\": {\"name\": \"w\", \"parameters\": {\"x\": 1.0, \"c\": \"\xc3\xa9\"}}}\n"
        "</tools>\n\nFor each function call, return a json object with function name and arguments within "
        "<tool_call></tool_call> XML tags:\n<tool_call>\n{\"name\": <function-name>, \"arguments\": "
        "<args-json-object>}\n</tool_call><|im_end|>\n"
        "<|im_start|>user\nhi<|im_end|>\n"
        "<|im_start|>assistant\n<tool_call>\n{\"name\": \"w\", \"arguments\": {\"x\": 2.0}}\n</tool_call>\n"
        "<tool_call>\n{\"name\": \"w\", \"arguments\": {}}\n</tool_call><|im_end|>\n"
        "<|im_start|>user\n<tool_response>\nr1\n</tool_response>\n<tool_response>\nr2\n</tool_response><|im_end|>\n"
        "<|im_start|>assistant\n";
    assert_string_equal(p, want);
    free(p);
    toolprompt_style st;
    assert_int_equal(toolprompt_style_parse("hermes", &st), 0);
    assert_int_equal(st, TOOLPROMPT_HERMES);
    assert_int_equal(toolprompt_style_parse("jinja", &st), -1);
    cJSON_Delete(tools);
    cJSON_Delete(calls);
}

// Hermes replies: every block, one call each (or a list), non-JSON blocks skipped.
static void test_hermes_parse(void **state) {
    (void)state;
    const char *r = "ok <tool_call>\n{\"name\": \"a\", \"arguments\": {\"x\": 1.0}}\n</tool_call>\n"
                    "<tool_call>not json</tool_call><tool_call>[{\"name\": \"b\", \"arguments\": {}}]</tool_call>";
    cJSON *v = toolcall_parse_hermes(r, strlen(r), NULL);
    assert_non_null(v);
    char *s = pyjson_dump(v, 0);
    assert_string_equal(s, "[{\"name\": \"a\", \"arguments\": {\"x\": 1.0}}, {\"name\": \"b\", \"arguments\": {}}]");
    free(s);
    cJSON_Delete(v);
    assert_null(toolcall_parse_hermes("```json\n{\"name\": \"a\"}\n```", 25, NULL));
    assert_null(toolcall_parse_hermes("<tool_call>{</tool_call>", 24, NULL));
}

// ---- every SFT target of the training data scores 1.0 ----

typedef struct {
    long rows, ones;
    char first_bad[512];
} sft_tally;

static int score_example(void *ctx, const cJSON *obj, trl_err *e) {
    sft_tally *t = ctx;
    char *line = pyjson_dump(obj, PYJSON_COMPACT);
    example ex;
    trl_err le = {{0}};
    if (!line || example_parse(line, strlen(line), &ex, &le)) {
        free(line);
        return trl_errf(e, "example does not parse: %s", le.msg);
    }
    char *gold = example_answer_json(&ex);
    char *reply = gold ? task_sft_reply(gold) : NULL;
    double score = -1;
    if (reply) reward_score_text(REWARD_BINARY, reply, strlen(reply), gold, &score, NULL, &le);
    t->rows++;
    if (score == 1.0) t->ones++;
    else if (!t->first_bad[0])
        snprintf(t->first_bad, sizeof(t->first_bad), "%s: gold %.200s reply %.200s", ex.id, gold ? gold : "?",
                 reply ? reply : "?");
    free(reply);
    free(gold);
    example_free(&ex);
    free(line);
    return TRL_OK;
}

// The whole training mix (toolrl data mix over every shared training source, both files).
static void test_every_sft_target_scores_one(void **state) {
    (void)state;
    char probe[1100], data_dir[1024];
    NEED_SHARED(probe, "PROVENANCE.md");
    snprintf(data_dir, sizeof(data_dir), "%s/data", shared_dir());
    char tmp[] = "/tmp/toolrl-sft-XXXXXX";
    assert_non_null(mkdtemp(tmp));
    mix_config cfg = {.data_dir = data_dir, .repo_dir = ".", .out_dir = tmp, .sources = MIX_DEFAULT_SOURCES,
                      .n_sources = MIX_DEFAULT_N, .val_frac = 0.02, .seed = 1};
    mix_report rep;
    trl_err e = {{0}};
    if (mix_build(&cfg, &rep, &e)) fail_msg("mix: %s", e.msg);
    sft_tally t = {0};
    const char *files[] = {"train.jsonl", "val.jsonl"};
    for (int f = 0; f < 2; f++) {
        char path[1100];
        snprintf(path, sizeof(path), "%s/%s", tmp, files[f]);
        FILE *in = fopen(path, "rb");
        assert_non_null(in);
        char *line = NULL;
        size_t cap = 0;
        ssize_t len;
        while ((len = getline(&line, &cap, in)) > 0) {
            cJSON *obj = pyjson_parse(line, (size_t)len, NULL);
            assert_non_null(obj);
            assert_int_equal(score_example(&t, obj, &e), TRL_OK);
            cJSON_Delete(obj);
        }
        free(line);
        fclose(in);
        remove(path);
    }
    rmdir(tmp);
    printf("  %ld SFT targets of the mix (%ld sources), %ld score 1.0\n", t.rows, (long)rep.n_sources, t.ones);
    if (t.ones != t.rows) fail_msg("%ld of %ld targets score below 1, first: %s", t.rows - t.ones, t.rows, t.first_bad);
    assert_int_equal(t.rows, rep.total);
    assert_true(t.rows > 10000);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_tool_line_training_prompt), cmocka_unit_test(test_tool_line_server_prompt),
        cmocka_unit_test(test_answer_sft_target),         cmocka_unit_test(test_answer_server_history),
        cmocka_unit_test(test_hermes_render),             cmocka_unit_test(test_hermes_parse),
        cmocka_unit_test(test_every_sft_target_scores_one),
    };
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    for (int i = 0; i < n_cases; i++) free(cases[i].input), free(cases[i].expected);
    return rc;
}
