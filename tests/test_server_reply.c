// test_server_reply.c: the reply parser: <think> → reasoning, <tool_call> blocks → only
// well-formed calls to known tools (filtered by tool_choice / parallel_tool_calls), trimmed
// content, and the same result whether the text arrives whole or byte by byte (stream == JSON).
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "server/chat_response.h"

static const char *NAMES[] = {"get_weather", "search"};

static chat_request tools_req(tool_choice_kind tc, const char *named, int parallel) {
    chat_request r;
    memset(&r, 0, sizeof(r));
    r.tool_names = NAMES;
    r.n_tools = 2;
    r.tool_choice = tc;
    r.tool_choice_name = named;
    r.parallel_tool_calls = parallel;
    return r;
}

// Parses text whole (step 0) or in pieces of `step` bytes.
static void run(const chat_request *req, const char *text, size_t step, reply_message *m) {
    memset(m, 0, sizeof(*m));
    reply_parser p;
    reply_parser_init(&p, req, reply_message_collect, m);
    size_t n = strlen(text);
    if (!step) reply_parser_feed(&p, text, n, 0);
    else
        for (size_t i = 0; i < n; i += step) reply_parser_feed(&p, text + i, i + step <= n ? step : n - i, 0);
    reply_parser_feed(&p, "", 0, 1);
    assert_int_equal(p.oom, 0);
    reply_parser_free(&p);
}

static char *message_string(const reply_message *m) {
    cJSON *j = reply_message_json(m);
    // ids are random: blank them for comparisons
    cJSON *calls = cJSON_GetObjectItem(j, "tool_calls");
    for (cJSON *c = calls ? calls->child : NULL; c; c = c->next) {
        const char *id = cJSON_GetObjectItem(c, "id")->valuestring;
        assert_int_equal(strncmp(id, "call_", 5), 0);
        assert_int_equal(strlen(id), 29);
        cJSON_ReplaceItemInObject(c, "id", cJSON_CreateString("X"));
    }
    char *s = cJSON_PrintUnformatted(j);
    cJSON_Delete(j);
    return s;
}

static void check(const chat_request *req, const char *text, const char *expect) {
    size_t steps[] = {0, 1, 2, 3, 7};
    for (size_t k = 0; k < sizeof(steps) / sizeof(steps[0]); k++) {
        reply_message m;
        run(req, text, steps[k], &m);
        char *s = message_string(&m);
        if (strcmp(s, expect) != 0) fail_msg("step %zu:\n got  %s\n want %s", steps[k], s, expect);
        free(s);
        reply_message_free(&m);
    }
}

static void test_plain_text(void **state) {
    (void)state;
    check(NULL, "  Hello there.\n\n", "{\"role\":\"assistant\",\"content\":\"Hello there.\",\"refusal\":null}");
    check(NULL, "", "{\"role\":\"assistant\",\"content\":\"\",\"refusal\":null}");
    check(NULL, "a < b and <tool", "{\"role\":\"assistant\",\"content\":\"a < b and <tool\",\"refusal\":null}");
}

static void test_think_and_call(void **state) {
    (void)state;
    chat_request r = tools_req(TOOL_CHOICE_AUTO, NULL, 1);
    check(&r,
          "<think> I need the weather. </think>\n<tool_call>[{\"name\": \"get_weather\", \"arguments\": "
          "{\"city\": \"Paris\", \"days\": 2}}]</tool_call>",
          "{\"role\":\"assistant\",\"content\":null,\"reasoning_content\":\"I need the weather.\",\"refusal\":null,"
          "\"tool_calls\":[{\"id\":\"X\",\"type\":\"function\",\"function\":{\"name\":\"get_weather\","
          "\"arguments\":\"{\\\"city\\\":\\\"Paris\\\",\\\"days\\\":2}\"}}]}");
}

static void test_single_object_and_string_args(void **state) {
    (void)state;
    chat_request r = tools_req(TOOL_CHOICE_AUTO, NULL, 1);
    check(&r, "<tool_call>{\"name\":\"search\",\"arguments\":\"{\\\"q\\\":\\\"x\\\"}\"}</tool_call>",
          "{\"role\":\"assistant\",\"content\":null,\"refusal\":null,\"tool_calls\":[{\"id\":\"X\",\"type\":"
          "\"function\",\"function\":{\"name\":\"search\",\"arguments\":\"{\\\"q\\\":\\\"x\\\"}\"}}]}");
}

static void test_bad_calls_dropped(void **state) {
    (void)state;
    chat_request r = tools_req(TOOL_CHOICE_AUTO, NULL, 1);
    // unknown tool, missing arguments, arguments not an object, broken JSON, unfinished block
    check(&r, "Sure. <tool_call>[{\"name\":\"rm_rf\",\"arguments\":{}},{\"name\":\"search\"},"
              "{\"name\":\"search\",\"arguments\":[1]}]</tool_call> <tool_call>[{\"name\": </tool_call> ok "
              "<tool_call>[{\"name\":\"search\",\"arguments\":{}}]",
          "{\"role\":\"assistant\",\"content\":\"Sure.   ok\",\"refusal\":null}");
}

static void test_filters(void **state) {
    (void)state;
    const char *two = "<tool_call>[{\"name\":\"search\",\"arguments\":{\"q\":1}},{\"name\":\"get_weather\","
                      "\"arguments\":{\"city\":\"Oslo\"}}]</tool_call>";
    chat_request none = tools_req(TOOL_CHOICE_NONE, NULL, 1);
    check(&none, two, "{\"role\":\"assistant\",\"content\":\"\",\"refusal\":null}");
    chat_request named = tools_req(TOOL_CHOICE_NAMED, "get_weather", 1);
    check(&named, two,
          "{\"role\":\"assistant\",\"content\":null,\"refusal\":null,\"tool_calls\":[{\"id\":\"X\",\"type\":"
          "\"function\",\"function\":{\"name\":\"get_weather\",\"arguments\":\"{\\\"city\\\":\\\"Oslo\\\"}\"}}]}");
    chat_request single = tools_req(TOOL_CHOICE_AUTO, NULL, 0);
    check(&single, two,
          "{\"role\":\"assistant\",\"content\":null,\"refusal\":null,\"tool_calls\":[{\"id\":\"X\",\"type\":"
          "\"function\",\"function\":{\"name\":\"search\",\"arguments\":\"{\\\"q\\\":1}\"}}]}");
    chat_request par = tools_req(TOOL_CHOICE_REQUIRED, NULL, 1);
    reply_message m;
    run(&par, two, 1, &m);
    assert_int_equal(cJSON_GetArraySize(m.tool_calls), 2);
    const char *id0 = cJSON_GetObjectItem(cJSON_GetArrayItem(m.tool_calls, 0), "id")->valuestring;
    const char *id1 = cJSON_GetObjectItem(cJSON_GetArrayItem(m.tool_calls, 1), "id")->valuestring;
    assert_string_not_equal(id0, id1);
    reply_message_free(&m);
}

static void test_calls_without_tools_are_text_free(void **state) {
    (void)state;
    // without tools, a call block is never returned as a call and never leaks into content
    check(NULL, "<think>x</think>Hi<tool_call>[{\"name\":\"f\",\"arguments\":{}}]</tool_call>",
          "{\"role\":\"assistant\",\"content\":\"Hi\",\"reasoning_content\":\"x\",\"refusal\":null}");
}

static void test_ids(void **state) {
    (void)state;
    char a[40], b[40];
    reply_completion_id(a);
    reply_completion_id(b);
    assert_int_equal(strncmp(a, "chatcmpl-", 9), 0);
    assert_string_not_equal(a, b);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_plain_text),
        cmocka_unit_test(test_think_and_call),
        cmocka_unit_test(test_single_object_and_string_args),
        cmocka_unit_test(test_bad_calls_dropped),
        cmocka_unit_test(test_filters),
        cmocka_unit_test(test_calls_without_tools_are_text_free),
        cmocka_unit_test(test_ids),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
