// fuzz_constrain.c: libFuzzer target: any bytes through the constrained-decoding recognizer
// (both grammars, with and without a schema), and any JSON compiled as a schema. It must
// never read out of bounds, and a complete text must stay rejected once a byte is refused.
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "protocol/constrain.h"

static const char *SCHEMA =
    "{\"type\": \"object\", \"properties\": {\"city\": {\"type\": \"string\"}, \"unit\": {\"enum\": [\"c\", \"f\", 1, "
    "null]}, \"n\": {\"type\": \"integer\"}, \"tags\": {\"type\": \"array\", \"items\": {\"type\": [\"string\", "
    "\"null\"]}, \"maxItems\": 2}, \"o\": {\"type\": \"dict\", \"properties\": {\"k\": {}}, \"required\": [\"k\"]}}, "
    "\"required\": [\"city\"]}";

// data[0]: bit 0 grammar (tool call / JSON object), bit 1 under SCHEMA, bit 2 the rest is a
// schema to compile (then a few fixed texts are fed).
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    constrain_spec s = {0};
    s.mode = size && (data[0] & 1) ? CONSTRAIN_JSON_OBJECT : CONSTRAIN_TOOL_CALL;
    s.max_calls = size > 1 ? data[1] % 3 : 0;
    s.think_budget = 32;
    cJSON *sch = NULL;
    if (size > 2 && (data[0] & 4)) sch = cJSON_ParseWithLength((const char *)data + 2, size - 2);
    else if (size && (data[0] & 2)) sch = cJSON_Parse(SCHEMA);
    if (constrain_spec_add_tool(&s, "get_weather", sch) || constrain_spec_add_tool(&s, "get_time", NULL) ||
        constrain_spec_add_tool(&s, "g", sch))
        abort();
    int root = constrain_schema_add(&s, sch);
    if (root < 0) abort();
    s.root = (uint16_t)root;
    constrain_state st;
    if (sch && (data[0] & 4)) {  // the fuzz input was the schema: walk some texts under it
        static const char *texts[] = {
            "{\"a\": 1, \"b\": [true, null, \"x\"], \"c\": {\"d\": -2.5e3}}",
            "<think></think><tool_call>[{\"name\": \"g\", \"arguments\": {\"a\": \"b\"}}]</tool_call>", "{}"};
        for (int i = 0; i < 3; i++) {
            constrain_start(&s, &st);
            constrain_feed(&s, &st, texts[i], strlen(texts[i]));
        }
    } else {
        constrain_start(&s, &st);
        for (size_t i = 0; i < size; i++) {
            char c = (char)data[i];
            if (constrain_feed(&s, &st, &c, 1) < 0) {
                if (constrain_complete(&st) || constrain_feed(&s, &st, "{", 1) == 0) abort();
                break;
            }
        }
    }
    constrain_spec c;
    if (constrain_spec_copy(&c, &s) == 0) constrain_spec_free(&c);
    constrain_spec_free(&s);
    cJSON_Delete(sch);
    return 0;
}
