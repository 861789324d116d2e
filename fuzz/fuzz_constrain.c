// fuzz_constrain.c: libFuzzer target: any bytes through the constrained-decoding recognizer
// (both grammars). It must never read out of bounds, and a complete text must stay rejected
// once a byte is refused.
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "constrain.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    static char n0[] = "get_weather", n1[] = "get_time", n2[] = "g";
    constrain_spec s = {0};
    s.mode = size && (data[0] & 1) ? CONSTRAIN_JSON_OBJECT : CONSTRAIN_TOOL_CALL;
    s.names[0] = n0, s.names[1] = n1, s.names[2] = n2;
    s.n_names = 3;
    s.max_calls = size > 1 ? data[1] % 3 : 0;
    s.think_budget = 32;
    constrain_state st;
    constrain_start(&s, &st);
    for (size_t i = 0; i < size; i++) {
        char c = (char)data[i];
        if (constrain_feed(&s, &st, &c, 1) < 0) {
            if (constrain_complete(&st) || constrain_feed(&s, &st, "{", 1) == 0) abort();
            break;
        }
    }
    return 0;
}
