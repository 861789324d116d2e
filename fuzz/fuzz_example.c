// fuzz_example.c: libFuzzer target: any bytes as one line of an uploaded training file.
#include <stddef.h>
#include <stdint.h>

#include "data/example.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    trl_err e = {{0}};
    example ex;
    if (example_parse((const char *)data, size, &ex, &e) == 0) example_free(&ex);
    example_validate_line((const char *)data, size, &e);
    return 0;
}
