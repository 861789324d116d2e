// chat_request.h: a POST /v1/chat/completions body parsed and validated into a C struct.
// Every rejection is an OpenAI error (status, message, type, param path, code), never a crash.
#ifndef TOOLRL_CHAT_REQUEST_H
#define TOOLRL_CHAT_REQUEST_H

#include <cjson/cJSON.h>
#include <stdint.h>

#include "protocol/toolprompt.h"

typedef struct {
    int status;          // HTTP status
    char message[512];
    char param[128];     // "" = null
    const char *type;    // "invalid_request_error", ...
    const char *code;    // NULL = null
} api_error;

typedef enum { TOOL_CHOICE_NONE = 0, TOOL_CHOICE_AUTO, TOOL_CHOICE_REQUIRED, TOOL_CHOICE_NAMED } tool_choice_kind;

#define CHAT_MAX_STOP 4

typedef struct {
    cJSON *root;               // the parsed body (owns everything the fields below point into)
    const char *model;
    toolprompt_msg *msgs;      // n_msgs; content strings owned by root or by `owned`
    int n_msgs;
    cJSON *tools;              // normalised copies: array of {"type":"function","function":{…}}, or NULL
    int n_tools;
    const char **tool_names;   // n_tools, point into tools
    cJSON *history_calls;      // owned arrays of {"name","arguments"} referenced by msgs[].tool_calls
    tool_choice_kind tool_choice;
    const char *tool_choice_name;  // TOOL_CHOICE_NAMED
    int parallel_tool_calls;
    int n;
    double temperature, top_p;
    int max_tokens;            // -1 = not given
    const char *stop[CHAT_MAX_STOP];
    int n_stop;
    int has_seed;
    uint64_t seed;
    int stream, include_usage;
    int logprobs;              // report each generated token's log-probability
    int top_logprobs;          // and this many alternatives (0..20)
    int json_object;           // response_format {"type": "json_object"}: the reply is one JSON object
    const cJSON *json_schema;  // response_format {"type": "json_schema"}: the object's schema (in root), or NULL
    char **owned;              // strings built from content-part arrays
    int n_owned;
} chat_request;

// Parses body (len bytes). Returns 0 on success (free with chat_request_free) or fills err and
// returns -1 (nothing to free). Model-name checks are the caller's (404 model_not_found).
int chat_request_parse(const char *body, size_t len, chat_request *req, api_error *err);
void chat_request_free(chat_request *req);
// Fills err; returns -1.
int api_error_set(api_error *err, int status, const char *type, const char *param, const char *code,
                  const char *fmt, ...) __attribute__((format(printf, 6, 7)));
// {"error":{"message","type","param","code"}} (caller frees with cJSON_Delete).
cJSON *api_error_json(const api_error *err);

#endif
