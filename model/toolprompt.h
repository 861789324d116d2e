// toolprompt.h: the Tool-N1 tool-calling prompt (one module for server, trainer, evaluator).
// The system turn lists the tools in <tools> as {"type":"function","function":…} lines and asks
// for <think>…</think> then <tool_call>[{"name":…,"arguments":{…}}]</tool_call>. Earlier assistant
// calls render as <tool_call> blocks and tool results as <tool_response> blocks inside a user turn
// (consecutive results merged, as Qwen2.5's template does); the chat is then ChatML (chat.h).
// Every JSON value (tool lines, calls) is written by pyjson_dump(v, PYJSON_ASCII), i.e. Python's
// json.dumps(v): pass trees parsed by pyjson_parse so that number tokens (1.0 vs 1) survive.
#ifndef TOOLRL_TOOLPROMPT_H
#define TOOLRL_TOOLPROMPT_H

#include <cjson/cJSON.h>

typedef struct {
    const char *role;        // "system", "user", "assistant", "tool"
    const char *content;     // may be NULL (assistant turn with only calls)
    const cJSON *tool_calls; // assistant only: array of {"name":…, "arguments":{…}} or NULL
} toolprompt_msg;

// The system prompt for these tools (array of {"type":"function","function":{…}} objects),
// with an optional caller system text put first. Returns malloc'd text or NULL (out of memory).
char *toolprompt_system(const cJSON *tools, const char *user_system);
// The whole prompt, ending with "<|im_start|>assistant\n". A first "system" message is merged
// into the tool system prompt. Returns malloc'd text or NULL (out of memory).
char *toolprompt_render(const cJSON *tools, const toolprompt_msg *msgs, int n);
// The same with an extra instruction appended to the system prompt (e.g. "call exactly one
// function"), or, with tools == NULL, a plain ChatML chat (the template's default system
// prompt when the first message is not a system one, jinja_template may be NULL) whose
// history calls and results still render as <tool_call> / <tool_response> blocks.
char *toolprompt_render_ex(const cJSON *tools, const char *instruction, const char *jinja_template,
                           const toolprompt_msg *msgs, int n);

#endif
