// test_constrain.c: constrained decoding. The recognizer accepts exactly the tool-call frame
// with allowed names and valid JSON arguments, and arguments that follow the tool's schema;
// the token mask equals a brute-force walk of every vocabulary token; and greedy decoding of
// the default model under the mask writes a call to an allowed tool, with schema-valid
// arguments, that the reply parser accepts (the untrained model writes none by itself).
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "eval/reward.h"
#include "model/forward.h"
#include "model/generate.h"
#include "model/model.h"
#include "protocol/constrain.h"
#include "protocol/toolprompt.h"

static void spec_tools(constrain_spec *s, int max_calls) {
    memset(s, 0, sizeof(*s));
    s->mode = CONSTRAIN_TOOL_CALL;
    s->names[0] = strdup("get_weather");
    s->names[1] = strdup("get_time");
    s->n_names = 2;
    s->max_calls = max_calls;
    s->think_budget = 64;
}

static int run(const constrain_spec *s, const char *text, int *complete) {
    constrain_state st;
    constrain_start(s, &st);
    int r = constrain_feed(s, &st, text, strlen(text));
    if (complete) *complete = constrain_complete(&st);
    return r;
}

static void test_tool_call_grammar(void **state) {
    (void)state;
    constrain_spec s;
    spec_tools(&s, 0);
    int done;
    const char *good[] = {
        "<think>x</think>\n<tool_call>[{\"name\": \"get_weather\", \"arguments\": {\"city\": \"Paris\"}}]</tool_call>",
        "<think></think><tool_call>[{\"name\":\"get_time\",\"arguments\":{}}]</tool_call>",
        "<think>a < b </thin</think> <tool_call> [ {\"name\": \"get_time\", \"arguments\": {\"n\": -1.5e3, \"ok\": true, "
        "\"z\": null, \"f\": false, \"a\": [1, 0, 0.25, {\"q\": \"\\u00e9\\\"x\\n\"}, []], \"o\": {}}} , "
        "{\"name\": \"get_weather\", \"arguments\": {\"c\": \"\xc3\xa9\"}} ]</tool_call>",
    };
    for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
        assert_int_equal(run(&s, good[i], &done), 0);
        assert_true(done);
    }
    // prefixes are alive but not complete
    assert_int_equal(run(&s, "<think>hmm</think>\n<tool_call>[{\"name\": \"get_w", &done), 0);
    assert_false(done);
    const char *bad[] = {
        "<tool_call>",                                                                             // no think
        "<think>x</think>\n<tool_call>[]</tool_call>",                                               // no call
        "<think>x</think>\n<tool_call>[{\"name\": \"get_wind\"",                                    // unknown name
        "<think>x</think>\n<tool_call>[{\"name\": \"get_weather2\"",                                // too long
        "<think>x</think>\n<tool_call>[{\"name\": \"get_\"",                                       // a prefix only
        "<think>x</think>\n<tool_call>[{\"arguments\": {}, \"name\": \"get_time\"}]",              // key order
        "<think>x</think>\n<tool_call>[{\"name\": \"get_time\", \"arguments\": {\"a\": 01}}]",       // leading zero
        "<think>x</think>\n<tool_call>[{\"name\": \"get_time\", \"arguments\": {\"a\": 1,}}]",       // trailing comma
        "<think>x</think>\n<tool_call>[{\"name\": \"get_time\", \"arguments\": {\"a\": tru}}]",      // literal
        "<think>x</think>\n<tool_call>[{\"name\": \"get_time\", \"arguments\": {\"a\": \"\x01\"}}]", // control char
        "<think>x</think>\n<tool_call>[{\"name\": \"get_time\", \"arguments\": {\"a\": \"\\x\"}}]",  // bad escape
        "<think>x</think>\n<tool_call>[{\"name\": \"get_time\", \"arguments\": [1]}]",               // not an object
        "<think>x</think>\n<tool_call>[{\"name\": \"get_time\", \"arguments\": {}}]</tool_call>x",   // after the end
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) assert_int_equal(run(&s, bad[i], NULL), -1);
    // past the arguments budget the object may only close: no new element, but the closers
    char longa[4096] = "<think>x</think><tool_call>[{\"name\": \"get_time\", \"arguments\": {\"a\": [1";
    for (int i = 0; i < 200; i++) strcat(longa, ", 1");
    assert_int_equal(run(&s, longa, NULL), -1);
    char closed[4096] = "<think>x</think><tool_call>[{\"name\": \"get_time\", \"arguments\": {\"a\": [1";
    for (int i = 0; i < 120; i++) strcat(closed, ", 1");  // 368 bytes: under the budget
    strcat(closed, "]}}]</tool_call>");
    assert_int_equal(run(&s, closed, &done), 0);
    assert_true(done);
    constrain_spec_free(&s);
    // parallel_tool_calls false: one call at most
    spec_tools(&s, 1);
    assert_int_equal(run(&s, "<think>x</think><tool_call>[{\"name\": \"get_time\", \"arguments\": {}}, {", NULL), -1);
    assert_int_equal(run(&s, "<think>x</think><tool_call>[{\"name\": \"get_time\", \"arguments\": {}}]</tool_call>", &done), 0);
    assert_true(done);
    // the reasoning budget forces "</think>"
    s.think_budget = 5;
    assert_int_equal(run(&s, "<think>abcde</think><tool_call>[", NULL), 0);
    assert_int_equal(run(&s, "<think>abcdef", NULL), -1);
    assert_int_equal(run(&s, "<think>abcde<", NULL), 0);
    constrain_spec_free(&s);
}

static void test_json_object_grammar(void **state) {
    (void)state;
    constrain_spec s = {0};
    s.mode = CONSTRAIN_JSON_OBJECT;
    int done;
    assert_int_equal(run(&s, " {\"a\": [1, 2.5, \"x\"], \"b\": {\"c\": null}}\n", &done), 0);
    assert_true(done);
    assert_int_equal(run(&s, "{\"a\": 1", &done), 0);
    assert_false(done);
    assert_int_equal(run(&s, "[1]", NULL), -1);
    assert_int_equal(run(&s, "{\"a\": 1} x", NULL), -1);
    assert_int_equal(run(&s, "{a: 1}", NULL), -1);
    // nesting deeper than the limit is refused rather than overflowing
    char deep[200] = "{\"a\": ";
    for (int i = 0; i < 40; i++) strcat(deep, "[");
    assert_int_equal(run(&s, deep, NULL), -1);
}

// Tool arguments under the tool's parameters schema: types, enums, integer vs number,
// declared keys only (each once), required keys before the object may close, array items.
static const char *WEATHER_SCHEMA =
    "{\"type\": \"object\", \"properties\": {"
    "\"city\": {\"type\": \"string\"}, "
    "\"unit\": {\"type\": \"string\", \"enum\": [\"celsius\", \"fahrenheit\"]}, "
    "\"days\": {\"type\": \"integer\"}, "
    "\"lat\": {\"type\": \"number\"}, "
    "\"hourly\": {\"type\": \"boolean\"}, "
    "\"tags\": {\"type\": \"array\", \"items\": {\"type\": \"string\"}, \"minItems\": 1, \"maxItems\": 2}, "
    "\"opts\": {\"type\": \"dict\", \"properties\": {\"lang\": {\"type\": \"string\"}}, \"required\": [\"lang\"]}, "
    "\"note\": {\"type\": [\"string\", \"null\"]}, "
    "\"level\": {\"enum\": [1, 10, 2.5, true, null]}, "
    "\"anything\": {}}, "
    "\"required\": [\"city\", \"unit\"]}";

static int run_args(const constrain_spec *s, const char *args, int *complete) {
    char buf[2048];
    snprintf(buf, sizeof(buf), "<think></think><tool_call>[{\"name\": \"get_weather\", \"arguments\": %s}]</tool_call>", args);
    return run(s, buf, complete);
}

static void test_schema_arguments(void **state) {
    (void)state;
    constrain_spec s = {0};
    s.mode = CONSTRAIN_TOOL_CALL;
    s.think_budget = 64;
    cJSON *sch = cJSON_Parse(WEATHER_SCHEMA), *other = cJSON_Parse("{\"type\": \"object\", \"properties\": {}}");
    assert_int_equal(constrain_spec_add_tool(&s, "get_weather", sch), 0);
    assert_int_equal(constrain_spec_add_tool(&s, "get_time", other), 0);
    int done;
    const char *good[] = {
        "{\"city\": \"Paris\", \"unit\": \"celsius\"}",
        "{\"unit\": \"fahrenheit\", \"city\": \"Oslo\", \"days\": 3, \"lat\": -1.5e2, \"hourly\": false}",
        "{\"city\": \"x\", \"unit\": \"celsius\", \"tags\": [\"a\", \"b\"], \"opts\": {\"lang\": \"fr\"}, \"note\": null}",
        "{\"city\": \"x\", \"unit\": \"celsius\", \"note\": \"hi\", \"level\": 10, \"anything\": [1, {\"k\": null}]}",
        "{\"city\": \"x\", \"unit\": \"celsius\", \"level\": 2.5}",
        "{\"city\": \"x\", \"unit\": \"celsius\", \"level\": 1, \"days\": 0}",
    };
    for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
        assert_int_equal(run_args(&s, good[i], &done), 0);
        assert_true(done);
    }
    const char *bad[] = {
        "{\"city\": \"Paris\"}",                                      // required unit missing
        "{}",                                                        // required missing
        "{\"city\": \"Paris\", \"unit\": \"kelvin\"}",                // not in the enum
        "{\"city\": \"Paris\", \"unit\": \"celsiu\"}",                // a prefix of an enum value
        "{\"city\": 3, \"unit\": \"celsius\"}",                       // string expected
        "{\"city\": \"P\", \"unit\": \"celsius\", \"days\": 2.5}",    // integer expected
        "{\"city\": \"P\", \"unit\": \"celsius\", \"days\": 1e3}",
        "{\"city\": \"P\", \"unit\": \"celsius\", \"hourly\": \"yes\"}",
        "{\"city\": \"P\", \"unit\": \"celsius\", \"country\": \"FR\"}",  // undeclared key
        "{\"city\": \"P\", \"city\": \"Q\", \"unit\": \"celsius\"}",      // a key twice
        "{\"city\": \"P\", \"unit\": \"celsius\", \"tags\": [\"a\", 1]}",  // items
        "{\"city\": \"P\", \"unit\": \"celsius\", \"tags\": []}",         // minItems
        "{\"city\": \"P\", \"unit\": \"celsius\", \"tags\": [\"a\", \"b\", \"c\"]}",  // maxItems
        "{\"city\": \"P\", \"unit\": \"celsius\", \"opts\": {}}",         // nested required
        "{\"city\": \"P\", \"unit\": \"celsius\", \"note\": 5}",
        "{\"city\": \"P\", \"unit\": \"celsius\", \"level\": 3}",
        "{\"city\": \"P\", \"unit\": \"celsius\", \"level\": 100}",
        "{\"city\": \"P\", \"unit\": \"celsius\", \"level\": false}",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) assert_int_equal(run_args(&s, bad[i], NULL), -1);
    // the other tool takes no arguments at all
    assert_int_equal(run(&s, "<think></think><tool_call>[{\"name\": \"get_time\", \"arguments\": {}}]</tool_call>", &done), 0);
    assert_true(done);
    assert_int_equal(run(&s, "<think></think><tool_call>[{\"name\": \"get_time\", \"arguments\": {\"", NULL), -1);
    // a copy behaves the same and owns its memory
    constrain_spec c;
    assert_int_equal(constrain_spec_copy(&c, &s), 0);
    constrain_spec_free(&s);
    assert_int_equal(run_args(&c, good[2], &done), 0);
    assert_true(done);
    assert_int_equal(run_args(&c, bad[2], NULL), -1);
    constrain_spec_free(&c);
    cJSON_Delete(sch), cJSON_Delete(other);
}

// response_format json_schema: the same rules on a top-level object; open objects allow any key.
static void test_schema_json_object(void **state) {
    (void)state;
    constrain_spec s = {0};
    s.mode = CONSTRAIN_JSON_OBJECT;
    cJSON *sch = cJSON_Parse("{\"type\": \"object\", \"properties\": {\"name\": {\"type\": \"string\"}, \"age\": "
                             "{\"type\": \"integer\"}}, \"required\": [\"name\", \"age\"], \"additionalProperties\": true}");
    int root = constrain_schema_add(&s, sch);
    assert_true(root > 0);
    s.root = (uint16_t)root;
    int done;
    assert_int_equal(run(&s, "{\"name\": \"Ada\", \"age\": 36}", &done), 0);
    assert_true(done);
    assert_int_equal(run(&s, "{\"age\": 36, \"name\": \"Ada\", \"extra\": [1]}", &done), 0);
    assert_true(done);
    assert_int_equal(run(&s, "{\"name\": \"Ada\"}", NULL), -1);
    assert_int_equal(run(&s, "{\"name\": \"Ada\", \"age\": \"36\"}", NULL), -1);
    // unknown keywords are not enforced: such a node takes any value
    cJSON *loose = cJSON_Parse("{\"type\": \"object\", \"properties\": {\"v\": {\"anyOf\": [{\"type\": \"string\"}]}}}");
    constrain_spec l = {0};
    l.mode = CONSTRAIN_JSON_OBJECT;
    l.root = (uint16_t)constrain_schema_add(&l, loose);
    assert_int_equal(run(&l, "{\"v\": [true]}", &done), 0);
    assert_true(done);
    constrain_spec_free(&s), constrain_spec_free(&l);
    cJSON_Delete(sch), cJSON_Delete(loose);
}

// ---- with the default model --------------------------------------------------------------

static const char *MODEL = "models/SmolLM2-135M-Instruct.Q4_1.gguf";

// The default model and its vocabulary for the mask; skips the test when the model is not
// there (`make model` fetches it).
static void default_model_open(model *m, constrain_vocab *v) {
    if (access(MODEL, R_OK)) skip();
    trl_err e = {{0}};
    assert_int_equal(model_load(m, MODEL, &e), TRL_OK);
    assert_int_equal(constrain_vocab_init(v, m->tok, &e), TRL_OK);
}

static void default_model_close(model *m, constrain_vocab *v) {
    constrain_vocab_free(v);
    model_free(m);
}

static void test_mask_equals_brute_force(void **state) {
    (void)state;
    model m;
    constrain_vocab v;
    default_model_open(&m, &v);
    float *lg = malloc(sizeof(float) * (size_t)v.n);
    for (int with_schema = 0; with_schema < 2; with_schema++) {
    constrain_spec s;
    spec_tools(&s, 0);
    if (with_schema) {
        cJSON *sch = cJSON_Parse(WEATHER_SCHEMA);
        constrain_spec_free(&s);
        s.mode = CONSTRAIN_TOOL_CALL;
        assert_int_equal(constrain_spec_add_tool(&s, "get_weather", sch), 0);
        cJSON_Delete(sch);
    }
    const char *text = "<think>It asks for weather.</think>\n<tool_call>[{\"name\": \"get_weather\", \"arguments\": "
                       "{\"city\": \"Paris\", \"days\": 3, \"unit\": \"celsius\", \"level\": 10}}]</tool_call>";
    size_t n = strlen(text);
    for (size_t cut = 0; cut <= n; cut += (cut < 20 ? 1 : cut > 100 ? 3 : 7)) {  // many states along the way
        constrain_state st;
        constrain_start(&s, &st);
        assert_int_equal(constrain_feed(&s, &st, text, cut), 0);
        for (int i = 0; i < v.n; i++) lg[i] = 0;
        int allowed = constrain_mask(&s, &st, &v, lg);
        int brute = 0;
        for (int i = 0; i < v.n; i++) {
            int ok;
            if (v.is_eog[i]) ok = constrain_complete(&st);
            else if (v.special[i] || !v.len[i]) ok = 0;
            else {
                constrain_state x = st;
                ok = constrain_feed(&s, &x, v.bytes + v.off[i], v.len[i]) == 0;
            }
            brute += ok;
            assert_int_equal(ok, lg[i] == 0.0f);
        }
        assert_int_equal(allowed, brute);
        assert_true(allowed >= 1);
    }
    constrain_spec_free(&s);
    }
    free(lg);
    default_model_close(&m, &v);
}

// Random walks through the grammar on the real vocabulary: the mask never leaves a state
// without an allowed token, and every walk ends (the budgets force the frame to close).
static void test_no_dead_ends(void **state) {
    (void)state;
    model m;
    constrain_vocab v;
    default_model_open(&m, &v);
    float *lg = malloc(sizeof(float) * (size_t)v.n);
    int *ok = malloc(sizeof(int) * (size_t)v.n);
    uint64_t rng = 12345;
    for (int walk = 0; walk < 12; walk++) {
        constrain_spec s;
        spec_tools(&s, 2);
        if (walk % 3 == 2) constrain_spec_free(&s), s.mode = CONSTRAIN_JSON_OBJECT;
        if (walk % 3 == 1) {  // under a schema: required keys, enums, nested objects
            constrain_spec_free(&s);
            s.mode = CONSTRAIN_TOOL_CALL, s.max_calls = 2, s.think_budget = 64;
            cJSON *sch = cJSON_Parse(WEATHER_SCHEMA);
            assert_int_equal(constrain_spec_add_tool(&s, "get_weather", sch), 0);
            cJSON_Delete(sch);
        }
        constrain_state st;
        constrain_start(&s, &st);
        int steps = 0, ended = 0;
        for (; steps < 6000 && !ended; steps++) {
            for (int i = 0; i < v.n; i++) lg[i] = 0;
            int n = constrain_mask(&s, &st, &v, lg);
            assert_true(n > 0);
            int k = 0;
            for (int i = 0; i < v.n; i++)
                if (lg[i] == 0.0f) ok[k++] = i;
            rng = rng * 6364136223846793005ull + 1442695040888963407ull;
            int32_t tok = ok[(rng >> 33) % (uint64_t)k];
            if (v.is_eog[tok]) ended = 1;
            else assert_int_equal(constrain_feed(&s, &st, v.bytes + v.off[tok], v.len[tok]), 0);
        }
        assert_true(ended);
        constrain_spec_free(&s);
    }
    free(lg), free(ok);
    default_model_close(&m, &v);
}

static void test_default_model_writes_a_call_under_the_mask(void **state) {
    (void)state;
    trl_err e = {{0}};
    model m;
    constrain_vocab v;
    default_model_open(&m, &v);
    cJSON *tools = cJSON_Parse("[{\"type\": \"function\", \"function\": {\"name\": \"get_weather\", \"description\": "
                               "\"Current weather of a city.\", \"parameters\": {\"type\": \"object\", \"properties\": "
                               "{\"city\": {\"type\": \"string\"}}, \"required\": [\"city\"]}}}, {\"type\": \"function\", "
                               "\"function\": {\"name\": \"get_time\", \"parameters\": {\"type\": \"object\", "
                               "\"properties\": {}}}}]");
    toolprompt_msg msg = {"user", "What is the weather in Paris?", NULL};
    char *prompt = toolprompt_render(tools, &msg, 1);
    int32_t ids[2048];
    int n = tokenizer_encode(m.tok, prompt, strlen(prompt), 1, ids, 2048);
    assert_true(n > 0 && n < 1800);
    engine en;
    assert_int_equal(engine_init(&en, &m, &ops_cpu, 1, 2048, 512, &e), TRL_OK);
    float *lg = malloc(sizeof(float) * (size_t)m.cfg.n_vocab);
    assert_int_equal(engine_feed(&en, 0, ids, n, lg, &e), TRL_OK);
    constrain_spec s = {0};  // both tools, each with its parameters schema, one call
    s.mode = CONSTRAIN_TOOL_CALL, s.max_calls = 1, s.think_budget = 64;
    const cJSON *t;
    cJSON_ArrayForEach(t, tools) {
        const cJSON *fn = cJSON_GetObjectItem(t, "function");
        assert_int_equal(constrain_spec_add_tool(&s, cJSON_GetObjectItem(fn, "name")->valuestring,
                                                 cJSON_GetObjectItem(fn, "parameters")), 0);
    }
    constrain_state st;
    constrain_start(&s, &st);
    char out[4096] = "";
    size_t len = 0;
    double t_mask = 0;
    int steps = 0, ended = 0;
    for (; steps < 200; steps++) {
        double t0 = trl_now();
        assert_true(constrain_mask(&s, &st, &v, lg) > 0);
        t_mask += trl_now() - t0;
        int32_t tok = 0;
        for (int i = 1; i < m.cfg.n_vocab; i++)
            if (lg[i] > lg[tok]) tok = i;
        if (v.is_eog[tok]) {
            ended = 1;
            break;
        }
        assert_int_equal(constrain_feed(&s, &st, v.bytes + v.off[tok], v.len[tok]), 0);
        memcpy(out + len, v.bytes + v.off[tok], v.len[tok]);
        len += v.len[tok];
        out[len] = 0;
        assert_int_equal(engine_feed(&en, 0, &tok, 1, lg, &e), TRL_OK);
    }
    fprintf(stderr, "constrained reply (%d tokens, mask %.2f ms/token): %s\n", steps, 1e3 * t_mask / (steps + 1), out);
    assert_true(ended && constrain_complete(&st));
    // the reward's parser reads one call to an allowed tool with an arguments object
    cJSON *calls = NULL;
    const char *blk = strstr(out, "<tool_call>");
    assert_non_null(blk);
    const char *end = strstr(blk, "</tool_call>");
    calls = cJSON_ParseWithLength(blk + 11, (size_t)(end - blk - 11));
    assert_non_null(calls);
    assert_int_equal(cJSON_GetArraySize(calls), 1);
    const cJSON *name = cJSON_GetObjectItem(cJSON_GetArrayItem(calls, 0), "name");
    const cJSON *args = cJSON_GetObjectItem(cJSON_GetArrayItem(calls, 0), "arguments");
    assert_true(cJSON_IsObject(args));
    // and the arguments follow that tool's schema: get_weather needs a string city, get_time nothing
    if (!strcmp(name->valuestring, "get_weather")) {
        assert_int_equal(cJSON_GetArraySize(args), 1);
        assert_true(cJSON_IsString(cJSON_GetObjectItem(args, "city")));
    } else {
        assert_string_equal(name->valuestring, "get_time");
        assert_int_equal(cJSON_GetArraySize(args), 0);
    }
    cJSON_Delete(calls);
    free(lg), free(prompt);
    cJSON_Delete(tools);
    engine_free(&en);
    constrain_spec_free(&s);
    default_model_close(&m, &v);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_tool_call_grammar),
        cmocka_unit_test(test_json_object_grammar),
        cmocka_unit_test(test_schema_arguments),
        cmocka_unit_test(test_schema_json_object),
        cmocka_unit_test(test_mask_equals_brute_force),
        cmocka_unit_test(test_no_dead_ends),
        cmocka_unit_test(test_default_model_writes_a_call_under_the_mask),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
