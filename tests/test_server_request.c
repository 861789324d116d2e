// test_server_request.c: chat completion request validation (400s with param paths, defaults,
// tool_choice forms, history checks) and the Tool-N1 prompt rendering. No model needed.
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "protocol/toolprompt.h"
#include "server/chat_request.h"

#define TOOLS                                                                                                  \
    "\"tools\":[{\"type\":\"function\",\"function\":{\"name\":\"get_weather\",\"description\":\"Weather\","     \
    "\"parameters\":{\"type\":\"object\",\"properties\":{\"city\":{\"type\":\"string\"}}}}}]"

static void expect_error(const char *body, int status, const char *param, const char *code) {
    chat_request r;
    api_error e;
    int rc = chat_request_parse(body, strlen(body), &r, &e);
    if (rc == 0) {
        chat_request_free(&r);
        fail_msg("accepted: %s", body);
    }
    assert_int_equal(e.status, status);
    assert_string_equal(e.param, param ? param : "");
    if (code) assert_string_equal(e.code, code);
    else assert_null(e.code);
    assert_string_equal(e.type, "invalid_request_error");
    assert_true(strlen(e.message) > 0);
}

static void parse_ok(const char *body, chat_request *r) {
    api_error e;
    int rc = chat_request_parse(body, strlen(body), r, &e);
    if (rc) fail_msg("rejected (%s): %s", e.param, e.message);
}

static void test_minimal_defaults(void **state) {
    (void)state;
    chat_request r;
    parse_ok("{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}]}", &r);
    assert_string_equal(r.model, "m");
    assert_int_equal(r.n_msgs, 1);
    assert_string_equal(r.msgs[0].role, "user");
    assert_string_equal(r.msgs[0].content, "hi");
    assert_int_equal(r.n, 1);
    assert_true(r.temperature == 1.0 && r.top_p == 1.0);
    assert_int_equal(r.max_tokens, -1);
    assert_int_equal(r.tool_choice, TOOL_CHOICE_NONE);
    assert_int_equal(r.parallel_tool_calls, 1);
    assert_int_equal(r.stream, 0);
    chat_request_free(&r);
}

static void test_fields(void **state) {
    (void)state;
    chat_request r;
    parse_ok("{\"model\":\"m\",\"messages\":[{\"role\":\"developer\",\"content\":[{\"type\":\"text\",\"text\":\"a\"},"
             "{\"type\":\"text\",\"text\":\"b\"}]},{\"role\":\"user\",\"content\":\"q\"}],\"n\":2,\"temperature\":0,"
             "\"top_p\":0.5,\"max_completion_tokens\":7,\"stop\":[\"x\",\"yy\"],\"seed\":3,\"stream\":true,"
             "\"stream_options\":{\"include_usage\":true},\"user\":\"u\",\"metadata\":{}}",
             &r);
    assert_string_equal(r.msgs[0].role, "system");
    assert_string_equal(r.msgs[0].content, "ab");
    assert_int_equal(r.n, 2);
    assert_true(r.temperature == 0 && r.top_p == 0.5);
    assert_int_equal(r.max_tokens, 7);
    assert_int_equal(r.n_stop, 2);
    assert_string_equal(r.stop[1], "yy");
    assert_int_equal(r.has_seed, 1);
    assert_int_equal((int)r.seed, 3);
    assert_int_equal(r.stream, 1);
    assert_int_equal(r.include_usage, 1);
    chat_request_free(&r);
}

static void test_tools_and_choice(void **state) {
    (void)state;
    chat_request r;
    parse_ok("{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}]," TOOLS "}", &r);
    assert_int_equal(r.n_tools, 1);
    assert_string_equal(r.tool_names[0], "get_weather");
    assert_int_equal(r.tool_choice, TOOL_CHOICE_AUTO);
    chat_request_free(&r);
    parse_ok("{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}]," TOOLS
             ",\"tool_choice\":{\"type\":\"function\",\"function\":{\"name\":\"get_weather\"}},"
             "\"parallel_tool_calls\":false}",
             &r);
    assert_int_equal(r.tool_choice, TOOL_CHOICE_NAMED);
    assert_string_equal(r.tool_choice_name, "get_weather");
    assert_int_equal(r.parallel_tool_calls, 0);
    chat_request_free(&r);
    parse_ok("{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}]," TOOLS
             ",\"tool_choice\":\"required\"}",
             &r);
    assert_int_equal(r.tool_choice, TOOL_CHOICE_REQUIRED);
    chat_request_free(&r);
    parse_ok("{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}],\"tool_choice\":\"none\"}", &r);
    assert_int_equal(r.tool_choice, TOOL_CHOICE_NONE);
    chat_request_free(&r);
}

static void test_history_with_results(void **state) {
    (void)state;
    chat_request r;
    parse_ok("{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":\"w?\"},{\"role\":\"assistant\","
             "\"content\":null,\"tool_calls\":[{\"id\":\"call_1\",\"type\":\"function\",\"function\":{\"name\":"
             "\"get_weather\",\"arguments\":\"{\\\"city\\\":\\\"Paris\\\"}\"}}]},{\"role\":\"tool\","
             "\"tool_call_id\":\"call_1\",\"name\":\"get_weather\",\"content\":\"sunny\"}]," TOOLS "}",
             &r);
    assert_int_equal(r.n_msgs, 3);
    assert_null(r.msgs[1].content);
    assert_non_null(r.msgs[1].tool_calls);
    char *s = toolprompt_render(r.tools, r.msgs, r.n_msgs);
    assert_non_null(s);
    assert_non_null(strstr(s, "<|im_start|>assistant\n<tool_call>[{\"name\": \"get_weather\", \"arguments\": "
                              "{\"city\": \"Paris\"}}]</tool_call><|im_end|>\n"));
    assert_non_null(strstr(s, "<|im_start|>user\n<tool_response>\nsunny\n</tool_response><|im_end|>\n"));
    assert_non_null(strstr(s, "<tools>\n{\"type\": \"function\", \"function\": {\"name\": \"get_weather\", "
                              "\"description\": \"Weather\", \"parameters\": {\"type\": \"object\", \"properties\": "
                              "{\"city\": {\"type\": \"string\"}}}}}\n</tools>"));
    assert_true(strlen(s) > 20 && !strcmp(s + strlen(s) - 22, "<|im_start|>assistant\n"));
    free(s);
    chat_request_free(&r);
}

static void test_errors(void **state) {
    (void)state;
    expect_error("{\"model\":", 400, NULL, NULL);
    expect_error("[]", 400, NULL, NULL);
    expect_error("{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":\"a\"}]} trailing", 400, NULL, NULL);
    expect_error("{\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}]}", 400, "model", NULL);
    expect_error("{\"model\":1,\"messages\":[]}", 400, "model", NULL);
    expect_error("{\"model\":\"m\"}", 400, "messages", NULL);
    expect_error("{\"model\":\"m\",\"messages\":[]}", 400, "messages", NULL);
    expect_error("{\"model\":\"m\",\"messages\":{}}", 400, "messages", NULL);
    expect_error("{\"model\":\"m\",\"messages\":[{\"role\":\"wizard\",\"content\":\"x\"}]}", 400, "messages[0].role",
                 NULL);
    expect_error("{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":5}]}", 400, "messages[0].content",
                 NULL);
    expect_error("{\"model\":\"m\",\"messages\":[{\"role\":\"user\"}]}", 400, "messages[0].content", NULL);
    expect_error("{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":\"a\"}],\"tools\":[]}", 400, "tools",
                 NULL);
    expect_error("{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":\"a\"}],\"tools\":[{\"type\":"
                 "\"function\",\"function\":{\"name\":\"bad name\"}}]}",
                 400, "tools[0].function.name", NULL);
    expect_error("{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":\"a\"}],\"tool_choice\":\"auto\"}",
                 400, "tool_choice", NULL);
    expect_error("{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":\"a\"}]," TOOLS
                 ",\"tool_choice\":{\"type\":\"function\",\"function\":{\"name\":\"nope\"}}}",
                 400, "tool_choice.function.name", NULL);
    expect_error("{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":\"a\"}]," TOOLS
                 ",\"tool_choice\":\"sometimes\"}",
                 400, "tool_choice", NULL);
    expect_error("{\"model\":\"m\",\"messages\":[{\"role\":\"tool\",\"tool_call_id\":\"x\",\"content\":\"a\"}]}", 400,
                 "messages[0].role", NULL);
    expect_error("{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":\"a\"},{\"role\":\"assistant\","
                 "\"tool_calls\":[{\"id\":\"c1\",\"type\":\"function\",\"function\":{\"name\":\"f\",\"arguments\":"
                 "\"{\"}}]}]}",
                 400, "messages[1].tool_calls[0].function.arguments", NULL);
    expect_error("{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":\"a\"},{\"role\":\"assistant\","
                 "\"tool_calls\":[{\"id\":\"c1\",\"type\":\"function\",\"function\":{\"name\":\"f\",\"arguments\":"
                 "\"{}\"}}]},{\"role\":\"tool\",\"tool_call_id\":\"c2\",\"content\":\"r\"}]}",
                 400, "messages[2].tool_call_id", NULL);
    expect_error("{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":\"a\"}],\"temperature\":\"hot\"}", 400,
                 "temperature", NULL);
    expect_error("{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":\"a\"}],\"temperature\":3}", 400,
                 "temperature", NULL);
    expect_error("{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":\"a\"}],\"n\":0}", 400, "n", NULL);
    expect_error("{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":\"a\"}],\"max_tokens\":1.5}", 400,
                 "max_tokens", NULL);
    expect_error("{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":\"a\"}],\"stop\":[1]}", 400, "stop[0]",
                 NULL);
    expect_error("{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":\"a\"}],\"stop\":[\"a\",\"b\",\"c\","
                 "\"d\",\"e\"]}",
                 400, "stop", NULL);
    expect_error("{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":\"a\"}],\"stream\":\"yes\"}", 400,
                 "stream", NULL);
    expect_error("{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":\"a\"}],\"stream_options\":"
                 "{\"include_usage\":true}}",
                 400, "stream_options", NULL);
    expect_error("{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":\"a\"}],\"response_format\":"
                 "{\"type\":\"json_schema\"}}",
                 400, "response_format.json_schema", NULL);
    expect_error("{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":\"a\"}],\"response_format\":"
                 "{\"type\":\"json_schema\",\"json_schema\":{\"name\":\"x\",\"schema\":{\"type\":\"string\"}}}}",
                 400, "response_format.json_schema.schema.type", NULL);
    expect_error("{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":\"a\"}],\"response_format\":"
                 "{\"type\":\"xml\"}}",
                 400, "response_format.type", NULL);
}

static void test_error_json(void **state) {
    (void)state;
    api_error e;
    api_error_set(&e, 404, "invalid_request_error", "model", "model_not_found", "no %s", "x");
    cJSON *j = api_error_json(&e);
    char *s = cJSON_PrintUnformatted(j);
    assert_string_equal(s, "{\"error\":{\"message\":\"no x\",\"type\":\"invalid_request_error\",\"param\":\"model\","
                           "\"code\":\"model_not_found\"}}");
    free(s);
    cJSON_Delete(j);
    api_error_set(&e, 400, "invalid_request_error", NULL, NULL, "bad");
    j = api_error_json(&e);
    s = cJSON_PrintUnformatted(j);
    assert_string_equal(s, "{\"error\":{\"message\":\"bad\",\"type\":\"invalid_request_error\",\"param\":null,"
                           "\"code\":null}}");
    free(s);
    cJSON_Delete(j);
}

static void test_plain_render_keeps_blocks(void **state) {
    (void)state;
    cJSON *calls = cJSON_Parse("[{\"name\":\"f\",\"arguments\":{}}]");
    toolprompt_msg m[] = {{"user", "hi", NULL}, {"assistant", NULL, calls}, {"tool", "ok", NULL}};
    char *s = toolprompt_render_ex(NULL, NULL, NULL, m, 3);
    assert_string_equal(s, "<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n<tool_call>[{\"name\": \"f\", "
                           "\"arguments\": {}}]</tool_call><|im_end|>\n<|im_start|>user\n<tool_response>\nok\n"
                           "</tool_response><|im_end|>\n<|im_start|>assistant\n");
    free(s);
    cJSON_Delete(calls);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_minimal_defaults),  cmocka_unit_test(test_fields),
        cmocka_unit_test(test_tools_and_choice),  cmocka_unit_test(test_history_with_results),
        cmocka_unit_test(test_errors),            cmocka_unit_test(test_error_json),
        cmocka_unit_test(test_plain_render_keeps_blocks),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
