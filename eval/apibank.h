// apibank.h: API-Bank level-1 ("Call" mode) evaluation: parsing API requests the way API-Bank's
// own evaluator does (api_call_extraction.py), and the call-matching rule we use.
//
// Parsing (same regular expressions as the original, Python `re` semantics via PCRE2 with
// Unicode \w and \s, '.' not crossing newlines):
//   call:   the first match of  \[(\w+)\((.*)\)\]   (greedy, one line) -> name, parameter text
//   params: each match of  (\w+)\s*=\s*['"](.+?)['"] | (\w+)\s*=\s*(\[.*\]) | (\w+)\s*=\s*(\w+)
//           left to right; a later duplicate key overwrites. Every value is a string, cut at the
//           next quote of either kind, exactly as the original (so "health_data='[{'name'...'"
//           yields "[{").
// Matching rule (the original executes the API against a simulated backend and compares the
// results, which is not reproducible here): a predicted call {name, arguments} is rendered as
// API-Bank renders a call in its own data, "[Name(k1='str(v1)', k2='str(v2)')]" with Python's
// str() of each value (strings as they are, 12, 1.5, True, None, lists and dicts as Python
// prints them), and parsed back with the rules above. It matches iff the API name is equal and
// both parameter dicts have the same keys with equal string values. Values are thus compared as
// strings, exactly and case-sensitively: 1234 and "1234" agree, "NFLX" and "nflx" do not;
// missing or extra parameters fail (the original raises on them).
#ifndef TOOLRL_APIBANK_H
#define TOOLRL_APIBANK_H

#include <cjson/cJSON.h>
#include <stddef.h>

#include "base/util.h"

typedef struct {
    char *name;
    size_t nparams;
    char **keys;
    char **values;
} apibank_call;

// Parses the first "[ApiName(...)]" in text. TRL_ERR if there is none.
int apibank_parse_request(const char *text, apibank_call *c, trl_err *e);
void apibank_call_free(apibank_call *c);
// "[Name(k='v', ...)]" for a JSON call, values rendered with Python's str(). malloc'd.
char *apibank_render_call(const char *name, const cJSON *args);
// Python's str(v) (repr = 0) or repr(v) (repr = 1) of a JSON value, as above. malloc'd.
char *apibank_py_str(const cJSON *v, int repr);
// 1 if the predicted call matches expected_output ("API-Request: [...]"), 0 if not (or name is
// NULL / args not a dict), -1 with a message if expected_output itself cannot be parsed.
int apibank_match(const char *expected_output, const char *name, const cJSON *args, trl_err *e);
// Same for a reply written in API-Bank's own text format: the first [Name(...)] in it.
int apibank_match_text(const char *expected_output, const char *reply, trl_err *e);

typedef struct {
    char *file;             // source dialogue file
    long id;                // API-call index within it
    char *instruction;      // API-Bank's prompt with the API descriptions
    char *input;            // dialogue history as text
    char *expected_output;  // "API-Request: [...]"
    cJSON *messages;        // the dialogue as chat messages (Hammer's twin: user/assistant)
    cJSON *tools;           // the candidate APIs as function schemas (Hammer's twin, as is)
    cJSON *answer;          // Hammer's JSON form of the expected call: [{"name", "arguments"}]
} apibank_row;

typedef struct {
    apibank_row *rows;
    size_t n;
} apibank_dataset;

// Loads <dir>/level-1-api.json and its row-by-row twin <dir>/hammer/apibank_l1.json (checked:
// same length, same API name in every row).
int apibank_dataset_load(const char *dir, apibank_dataset *ds, trl_err *e);
void apibank_dataset_free(apibank_dataset *ds);

#endif
