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

// Which prompt asks for the calls. TOOLN1 is the one above (the project's, trained for).
// HERMES is Qwen2.5's own chat template for tools (tokenizer_config.json of the Qwen2.5 and
// Qwen2.5-Coder Instruct models): "# Tools" in the system turn, each tool as json.dumps(tool,
// ensure_ascii=False) inside <tools></tools>, and one <tool_call>\n{"name": …, "arguments": …}\n
// </tool_call> block per call; with no system message its default system text is
// TOOLPROMPT_QWEN_SYSTEM. Used to measure a base model with the prompt it was tuned on.
typedef enum { TOOLPROMPT_TOOLN1 = 0, TOOLPROMPT_HERMES = 1 } toolprompt_style;
#define TOOLPROMPT_QWEN_SYSTEM "You are Qwen, created by Alibaba Cloud. You are a helpful assistant."
// "tooln1" or "hermes"; returns 0, or -1 for an unknown name.
int toolprompt_style_parse(const char *name, toolprompt_style *out);
const char *toolprompt_style_name(toolprompt_style s);
// The whole prompt in the given style (TOOLN1: toolprompt_render). Malloc'd, NULL if out of memory.
char *toolprompt_render_style(toolprompt_style style, const cJSON *tools, const toolprompt_msg *msgs, int n);

#endif
