// chat.h: the model's own chat template (ChatML, as SmolLM2 and Qwen2 use) rendered from
// role/content messages. The tool-calling prompt of Tool-N1 builds on this (later issue).
#ifndef TOOLRL_CHAT_H
#define TOOLRL_CHAT_H

typedef struct {
    const char *role;     // "system", "user", "assistant", "tool"
    const char *content;
} chat_msg;

// Renders messages as ChatML. When the first message is not a system message, the
// template's default system prompt (read from the model's Jinja template when it has one,
// e.g. SmolLM2's) is inserted. Returns a malloc'd string, or NULL when out of memory.
char *chat_render(const char *jinja_template, const chat_msg *msgs, int n, int add_generation_prompt);

// The default system prompt embedded in a ChatML Jinja template, or NULL (malloc'd).
char *chat_default_system(const char *jinja_template);

#endif
