// fuzz_reply.c: libFuzzer target: any bytes as a model's reply, through the server's reply
// parser (fed whole, and split at a point the input chooses: both must give the same message),
// the training-time tool-call parser, and the reward.
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "eval/reward.h"
#include "protocol/toolcall_parse.h"
#include "server/chat_response.h"

static char *message_text(const uint8_t *d, size_t n, size_t split) {
    reply_message m = {0};
    reply_parser p;
    reply_parser_init(&p, NULL, reply_message_collect, &m);
    reply_parser_feed(&p, (const char *)d, split, 0);
    reply_parser_feed(&p, (const char *)d + split, n - split, 1);
    reply_parser_free(&p);
    cJSON *j = reply_message_json(&m);
    char *s = j ? cJSON_PrintUnformatted(j) : NULL;
    cJSON_Delete(j);
    reply_message_free(&m);
    return s;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size < 1) return 0;
    size_t split = data[0] % size;
    const uint8_t *d = data + 1;
    size_t n = size - 1;
    if (split > n) split = n;
    char *a = message_text(d, n, n), *b = message_text(d, n, split);
    if ((a == NULL) != (b == NULL) || (a && strcmp(a, b))) abort();  // streaming must not change the message
    free(a), free(b);
    toolcall_info info;
    cJSON *c = toolcall_parse_training((const char *)d, n, &info);
    cJSON_Delete(c);
    double score;
    reward_detail det;
    trl_err e = {{0}};
    reward_score_text(REWARD_BINARY, (const char *)d, n, "[{\"name\": \"f\", \"arguments\": {\"a\": 1}}]", &score, &det, &e);
    if (score != 0.0 && score != 1.0) abort();
    return 0;
}
