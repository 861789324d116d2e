// tiny_model.c (test tool): `build/tiny-model gguf PATH` or `build/tiny-model hf DIR` writes the
// tiny random model of tests/support/tiny_model.h (a 2-layer Llama with a byte-level BPE
// tokenizer and ChatML specials), so Python integration tests can train and serve a model
// that runs in seconds. Option --ctx N sets its context length (default 4096).
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "model/model.h"
#include "tests/support/tiny_model.h"

int main(int argc, char **argv) {
    if (argc < 3 || (strcmp(argv[1], "gguf") && strcmp(argv[1], "hf"))) {
        fprintf(stderr, "usage: tiny-model gguf PATH | hf DIR [--ctx N]\n");
        return 2;
    }
    tiny_model_spec s = tiny_model_default(MODEL_ARCH_LLAMA);
    s.n_ctx = argc >= 5 && !strcmp(argv[3], "--ctx") ? atoi(argv[4]) : 4096;
    trl_err e = {{0}};
    int rc;
    if (!strcmp(argv[1], "gguf")) rc = tiny_model_write_gguf(&s, 0 /* F32 */, argv[2], &e);
    else rc = (mkdir(argv[2], 0755) && 0) || tiny_model_write_hf(&s, argv[2], &e);
    if (rc) {
        fprintf(stderr, "tiny-model: %s\n", e.msg);
        return 1;
    }
    return 0;
}
