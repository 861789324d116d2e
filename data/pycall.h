// pycall.h: reading ToolACE's Python-style call lists, "[get_weather(city='Paris', days=3),
// news()]", into JSON calls. Tool-N1 reads them with regular expressions; this is a proper
// scanner that follows its rules except for one deliberate fix: an argument containing ")" is
// not cut short (Tool-N1's non-greedy "\((.*?)\)" truncates it).
//   * The whole text (stripped) must be "[" call ("," call)* "]", a call being a name of
//     letters, digits and "._?|-/" or spaces, then a parenthesised argument list whose
//     parentheses, brackets and braces balance outside quotes.
//   * Arguments are split at top-level commas; items without "=" are ignored; "key=value" keeps
//     the last value of a repeated key.
//   * A value is read as a Python literal (ast.literal_eval): strings (any quotes, escapes,
//     r-prefix, adjacent literals concatenated), ints, floats, True/False/None, lists, tuples
//     and sets (as lists) and dicts (non-string keys written as json.dumps would: 1 -> "1",
//     True -> "true"). Anything else (e.g. lowercase true, a bare word) becomes the raw text
//     with quote characters stripped from both ends, as Tool-N1 does.
#ifndef TOOLRL_PYCALL_H
#define TOOLRL_PYCALL_H

#include <cjson/cJSON.h>
#include <stddef.h>

// Parses a call list. Returns [{"name", "arguments"}, ...] or NULL if text is not one.
cJSON *pycall_parse_list(const char *text, size_t len);
// ast.literal_eval of text[0..len) as JSON; NULL if it is not a literal (or out of memory).
cJSON *pycall_literal(const char *text, size_t len);

#endif
