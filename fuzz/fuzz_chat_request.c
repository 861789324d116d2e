// fuzz_chat_request.c: libFuzzer target: any bytes as a POST /v1/chat/completions body. The
// parser must accept or reject (with an error naming the field) without crashing; an
// accepted request must render to a prompt.
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include "protocol/toolprompt.h"
#include "server/chat_request.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    chat_request r;
    api_error err;
    if (chat_request_parse((const char *)data, size, &r, &err) == 0) {
        char *p = toolprompt_render_ex(r.n_tools ? r.tools : NULL, NULL, NULL, r.msgs, r.n_msgs);
        free(p);
        chat_request_free(&r);
    } else if (err.status < 400 || err.status > 499) {
        abort();  // bad input must be a 4xx
    }
    return 0;
}
