// chat_response.h: turning generated text into an OpenAI reply. One incremental parser
// (reply_parser) serves both modes, so streamed and non-streamed replies always agree:
//   <think>…</think>         → reasoning_content (never content)
//   <tool_call>[…]</tool_call> → tool calls: only well-formed calls to known tools, filtered by
//                               tool_choice / parallel_tool_calls; anything else is dropped
//   other text              → content, trimmed of leading/trailing whitespace
#ifndef TOOLRL_CHAT_RESPONSE_H
#define TOOLRL_CHAT_RESPONSE_H

#include <cjson/cJSON.h>
#include <stddef.h>

#include "server/chat_request.h"

typedef enum { REPLY_CONTENT = 0, REPLY_REASONING = 1, REPLY_TOOL_CALL = 2 } reply_event_kind;

// One event: a text delta (content or reasoning), or one whole tool call.
typedef void (*reply_event_fn)(void *ud, reply_event_kind kind, const char *text, size_t len, const char *call_id,
                               const char *name, const char *args_json);

typedef struct {
    // configuration
    const char *const *tool_names;
    int n_tools;
    int calls_allowed;       // 0 with tool_choice none or without tools
    const char *only_name;   // named tool_choice
    int max_calls;           // 1 when parallel_tool_calls is false
    reply_event_fn emit;
    void *ud;
    // state
    char *text;
    size_t len, cap, pos;
    int mode;                // 0 text, 1 think, 2 tool_call
    int started[2];          // a delta of this kind was emitted
    char *pend[2];           // whitespace held back per kind
    size_t pend_len[2], pend_cap[2];
    int n_calls;
    int oom;
} reply_parser;

// Sets up a parser for a request's tool settings (req may be NULL: no tools).
void reply_parser_init(reply_parser *p, const chat_request *req, reply_event_fn emit, void *ud);
// Feeds generated text; with final, flushes everything (an unfinished block is dropped).
// Returns 0, or -1 when out of memory.
int reply_parser_feed(reply_parser *p, const char *s, size_t n, int final);
void reply_parser_free(reply_parser *p);

// A unique "call_…" id (24 random alphanumerics) into buf (>= 32 bytes).
void reply_call_id(char *buf);
// A unique "chatcmpl-…" id into buf (>= 40 bytes).
void reply_completion_id(char *buf);

// Accumulates a whole reply (non-streaming) from parser events.
typedef struct {
    char *content, *reasoning;   // malloc'd, NULL when empty
    size_t content_len, reasoning_len;
    cJSON *tool_calls;           // OpenAI array [{id,type,function:{name,arguments}}] or NULL
    int oom;
} reply_message;

void reply_message_collect(void *ud, reply_event_kind kind, const char *text, size_t len, const char *call_id,
                           const char *name, const char *args_json);
// The "message" object of a choice (consumes nothing; caller owns the result).
cJSON *reply_message_json(const reply_message *m);
void reply_message_free(reply_message *m);

#endif
