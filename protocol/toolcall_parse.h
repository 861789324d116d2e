// toolcall_parse.h: finding and decoding the tool calls in a model's reply, the way Tool-N1's
// reward (extract_solution_v0, training) and its BFCL handler (evaluation) do it.
//   1. Optionally keep only the text after the LAST occurrence of a marker
//      ("<|im_start|>assistant" for Qwen ChatML); without the marker the whole text is used.
//   2. Find the <tool_call>(.*?)</tool_call> blocks (non-greedy, across newlines, scanned left to
//      right without overlap) and take the LAST one (training) or the FIRST one (BFCL handler).
//   3. Strip it like Python's str.strip() (all Unicode whitespace) and parse it with json.loads
//      semantics (pyjson.h: numbers keep their token text).
//   4. Training only: a JSON string is parsed once more (a failure makes the result NULL), and
//      a dict becomes a one-element list.
// JSON null counts as "no result", exactly as Python's None does.
#ifndef TOOLRL_TOOLCALL_PARSE_H
#define TOOLRL_TOOLCALL_PARSE_H

#include <cjson/cJSON.h>
#include <stddef.h>

#include "protocol/tags.h"

#define TOOLCALL_MARKER_QWEN TAG_IM_START "assistant"
#define TOOLCALL_MARKER_LLAMA "<|start_header_id|>assistant<|end_header_id|>"

enum {
    TOOLCALL_FIRST_BLOCK = 1,  // take the first block instead of the last
    TOOLCALL_REDECODE = 2,     // parse a JSON string result again
    TOOLCALL_WRAP_DICT = 4,    // turn a dict result into a one-element list
};

typedef struct {
    const char *scope;  // the text searched after applying the marker (points into the input)
    size_t scope_len;
    int found_block;  // a complete <tool_call>...</tool_call> block was found
    int json_ok;      // its contents parsed (before the optional second decode)
} toolcall_info;

// Returns the text after the last occurrence of marker (from the marker on, as Tool-N1 slices
// it), or the whole text if marker is NULL or absent.
const char *toolcall_scope(const char *text, size_t len, const char *marker, size_t *out_len);
// Finds the first or last block; sets *body/*body_len to the text between the tags.
// Returns 1 if found, 0 if not.
int toolcall_find_block(const char *text, size_t len, int first, const char **body, size_t *body_len);
// Python's str.strip() on a UTF-8 span: shrinks [*s, *s + *len) in place.
void toolcall_strip(const char **s, size_t *len);
// Runs steps 1-4 with the given marker and TOOLCALL_* flags. Returns the decoded value (free
// with cJSON_Delete) or NULL for "None" (no block, invalid JSON, JSON null). info may be NULL.
cJSON *toolcall_parse(const char *text, size_t len, const char *marker, unsigned flags, toolcall_info *info);
// The training reward's reading: Qwen marker, last block, second decode, dict wrap.
cJSON *toolcall_parse_training(const char *text, size_t len, toolcall_info *info);
// The Tool-N1 BFCL handler's reading of a completion: first block, json.loads once.
cJSON *toolcall_parse_bfcl(const char *text, size_t len, toolcall_info *info);
// Qwen2.5's own (Hermes) format: every <tool_call> block in order, each one JSON object
// {"name", "arguments"} (a list of such objects is taken item by item); blocks that are not JSON
// are skipped. Returns the list of calls, or NULL when no block parsed.
cJSON *toolcall_parse_hermes(const char *text, size_t len, toolcall_info *info);
// The calls of an evaluated reply written for a prompt style (toolprompt_style): Tool-N1's
// (0) is read as its BFCL handler reads it (the first block, json.loads once); Hermes (1) as
// toolcall_parse_hermes. NULL for no result.
cJSON *toolcall_parse_reply(int prompt_style, const char *text, size_t len, toolcall_info *info);
// Tool-N1's validate_format: v is a list whose items are all dicts holding "name" and
// "arguments" (other keys allowed; an empty list passes). Returns 1 or 0.
int toolcall_valid_format(const cJSON *v);

#endif
