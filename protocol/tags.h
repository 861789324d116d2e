// tags.h: the literal tags of the tool-call protocol and of ChatML, written once. Everything
// that writes, constrains, parses or scores a reply uses these (string-literal concatenation
// keeps them usable inside longer literals: TAG_TOOL_CALL "\n{").
//
// Kept as literal text on purpose: the instruction sentences of the two system prompts in
// protocol/toolprompt.c that quote the tags ("... within <tool_call></tool_call> XML tags",
// the Tool-N1 reply example), which are verbatim prompt text from Tool-N1 and Qwen2.5; the
// tests and the fuzz seeds, which pin the wire format independently of these macros;
// model/tokenizer.c's list of end-of-generation token names across model families; help text
// and comments.
#ifndef TOOLRL_TAGS_H
#define TOOLRL_TAGS_H

#define TAG_THINK "<think>"
#define TAG_THINK_END "</think>"
#define TAG_TOOL_CALL "<tool_call>"
#define TAG_TOOL_CALL_END "</tool_call>"
#define TAG_TOOL_RESPONSE "<tool_response>"
#define TAG_TOOL_RESPONSE_END "</tool_response>"
#define TAG_TOOLS "<tools>"
#define TAG_TOOLS_END "</tools>"

// ChatML turn delimiters (SmolLM2, Qwen2.5).
#define TAG_IM_START "<|im_start|>"
#define TAG_IM_END "<|im_end|>"

// Length of a tag, without its NUL (a compile-time constant).
#define TAG_LEN(tag) (sizeof(tag) - 1)

#endif
