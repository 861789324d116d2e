// example.h: the unified training-example format, one JSON object per JSONL line (documented
// in docs/data.md):
//   {"id": "xlam-17", "source": "xlam",
//    "messages": [{"role": "user", "content": "..."},
//                 {"role": "assistant", "content": null, "tool_calls": [{"name": "f", "arguments": {...}}]},
//                 {"role": "tool", "content": "..."}, ...],        the conversation so far
//    "tools": [{"type": "function", "function": {"name": "f", "description": "...", "parameters": {...}}}, ...],
//    "answer": [{"name": "f", "arguments": {...}}, ...]}              ground-truth calls, maybe []
// Rules checked by example_validate_line (each failure names the field, e.g.
// "messages[2].role: ..."):
//   * the line is one JSON object (Python json rules, see pyjson.h); other top-level keys are
//     allowed and ignored;
//   * id and source: non-empty strings;
//   * messages: a non-empty list with at least one "user" message; each message an object with
//     role "system", "user", "assistant" or "tool" and a string content; an assistant message
//     may have tool_calls (a list of calls, see answer) and then content may be null or absent;
//     tool_calls on other roles are an error; other keys are allowed;
//   * tools: a list of {"type": "function", "function": {...}} whose function has a non-empty
//     string name, an optional string description and an optional object parameters (JSON
//     Schema, or xLAM's flat {param: {type, description, default}} map, kept as the source has
//     it); names should be unique, but repeated names are accepted (xLAM has rows that list
//     different tools under one name);
//   * answer: a list (possibly empty) of {"name": non-empty string, "arguments": object}; every
//     name is the name of one of the tools.
// OpenAI's fine-tuning shape is accepted too (example_validate_line, example_parse): a row
// without "answer" whose messages end with the assistant's reply,
//   {"messages": [..., {"role": "assistant", "tool_calls": [{"id": "call_1", "type": "function",
//    "function": {"name": "f", "arguments": "{\"x\": 1}"}}]}], "tools": [...]}
// is read as the unified row whose answer is that reply's calls ([] for a reply without calls)
// and whose messages are the ones before it; OpenAI-form tool_calls of earlier assistant
// messages are converted the same way; a missing id becomes "line-<n>" (n = the line number
// when the caller gives it, else "upload-<hash of the line>") and a missing source "upload".
// Every other rule applies unchanged to the result. example_validate (a parsed object) checks
// the unified form only.
// Numbers keep their token text (pyjson.h), so "arguments": {"x": 1.0} stays 1.0 on the way to
// the reward, which tells 1 from 1.0.
#ifndef TOOLRL_EXAMPLE_H
#define TOOLRL_EXAMPLE_H

#include <cjson/cJSON.h>
#include <stddef.h>

#include "base/util.h"

typedef struct {
    char *id;
    char *source;
    cJSON *messages;  // list of message objects
    cJSON *tools;     // list of {"type": "function", "function": {...}}
    cJSON *answer;    // list of {"name", "arguments"}
} example;

// Validates one JSONL line (a trailing newline or CR is fine). TRL_OK, or TRL_ERR with a message
// naming the offending field.
int example_validate_line(const char *line, size_t len, trl_err *e);
// Validates an already parsed object.
int example_validate(const cJSON *obj, trl_err *e);
// The same, knowing the line number (1-based) for a defaulted id.
int example_validate_line_at(const char *line, size_t len, long lineno, trl_err *e);
// Parses and validates one line into ex (free with example_free).
int example_parse(const char *line, size_t len, example *ex, trl_err *e);
int example_parse_at(const char *line, size_t len, long lineno, example *ex, trl_err *e);
void example_free(example *ex);
// The example as one JSON line (no newline; non-ASCII as UTF-8; numbers as their tokens).
char *example_to_json(const example *ex);
// The ground truth for the reward: json.dumps(answer). malloc'd.
char *example_answer_json(const example *ex);
// The function object of tools[i] ({"name", ...}), or NULL.
const cJSON *example_tool_function(const cJSON *tool);
// 1 if a tool of that name is in the list.
int example_has_tool(const cJSON *tools, const char *name);

// Builds an example object from parts (takes ownership of messages, tools and answer, also on
// failure). Returns NULL when out of memory.
cJSON *example_build(const char *id, const char *source, cJSON *messages, cJSON *tools, cJSON *answer);
// Wraps a function schema as a tool: {"type": "function", "function": fn} (takes fn).
cJSON *example_wrap_tool(cJSON *fn);
// A tool whose parameters are a JSON Schema object: {"type": "function", "function": {"name",
// "description" (unless NULL), "parameters": {"type": "object", "properties", "required"}}}
// (takes properties and required, also on failure). NULL when one of them is NULL or out of memory.
cJSON *example_make_tool(const char *name, const char *description, cJSON *properties, cJSON *required);
// {"name": name, "arguments": args} (takes args).
cJSON *example_make_call(const char *name, cJSON *args);
// {"role": role, "content": content}; content NULL gives JSON null.
cJSON *example_make_message(const char *role, const char *content);

#endif
