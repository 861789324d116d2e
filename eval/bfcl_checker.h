// bfcl_checker.h: the BFCL (Berkeley Function Calling Leaderboard) AST checker for Python
// categories, re-implemented in C from the rules of the `bfcl-eval` package (checked against it
// row by row by tests/test_bfcl.c), plus the relevance/irrelevance rule and Tool-N1's decoding
// of a model reply.
//
// Pipeline for one entry, as BFCL runs it with Tool-N1's handler (eval/bfcl_handler.py):
//   model_result = the JSON value of the FIRST <tool_call> block (toolcall_parse_bfcl), or
//                  NULL when there is none or it is not JSON;
//   decode       = [{call["name"]: call["arguments"]} for call in model_result]; anything that
//                  makes this raise in Python (not a list, an item without "name"/"arguments",
//                  an unhashable name) is "ast_decoder:decoder_failed";
//   AST categories (simple*, multiple*, parallel*, live_*): the decoded list must be a list of
//                  one-key dicts whose value is a dict ("ast_decoder:decoder_wrong_output_format"),
//                  then ast_checker: a category containing "parallel" matches calls to expected
//                  calls in any order (greedy, as BFCL does), one containing "multiple" needs
//                  exactly one call to the expected function, others ("simple") exactly one call.
//                  Per call: right function name; every required parameter present; no parameter
//                  absent from the schema or from the possible answer; types checked against the
//                  schema (string, integer, float - an int is accepted and converted -, boolean,
//                  array/tuple with their item type one level deep, dict, any = string; bool is
//                  not an int); values must be in the possible-answer list, strings compared after
//                  BFCL's standardisation (drop spaces and , . / - _ * ^, lowercase, ' -> "),
//                  lists element-wise with strings standardised, dicts key by key; a possible
//                  answer "" marks a parameter that may be omitted; every other parameter of the
//                  possible answer must be present. A value whose type equals the possible
//                  answers' type but not the schema's counts as a "variable" and is compared with
//                  == only. Python's == is used throughout (1 == 1.0 == True).
//   irrelevance categories: correct iff the reply has no call (decode fails, or decodes to an
//                  empty list, or to something not in call format);
//   relevance categories: correct iff it has at least one call.
// The verdict carries bfcl-eval's error_type strings ("simple_function_checker:missing_required",
// "type_error:simple", "value_error:string", ...). Function names are compared as they are (the
// checker's underscore_to_dot renaming applies only to API models, not to prompting models).
#ifndef TOOLRL_BFCL_CHECKER_H
#define TOOLRL_BFCL_CHECKER_H

#include <cjson/cJSON.h>
#include <stddef.h>

#include "base/util.h"

typedef struct {
    int valid;
    char error_type[80];  // bfcl-eval's error_type; "" when valid
    char error[400];      // a human-readable reason; "" when valid
} bfcl_verdict;

// One decoded call: pointers into the model result (not owned).
typedef struct {
    const cJSON *name;  // usually a string; any hashable JSON value survives decoding
    const cJSON *args;  // usually a dict
} bfcl_call;

typedef enum { BFCL_AST = 0, BFCL_IRRELEVANCE, BFCL_RELEVANCE } bfcl_kind;

// How a category is scored: "irrelevance"/"live_irrelevance" -> BFCL_IRRELEVANCE,
// "live_relevance" -> BFCL_RELEVANCE, anything else -> BFCL_AST.
bfcl_kind bfcl_category_kind(const char *category);

// Tool-N1's decode_ast. On success *calls is a malloc'd array (free() it; NULL when *n == 0).
// Returns TRL_ERR with the reason when Python would raise.
int bfcl_decode(const cJSON *model_result, bfcl_call **calls, size_t *n, trl_err *e);

// Checks one entry. functions: the entry's "function" list; ground_truth: its possible-answer
// "ground_truth" list (NULL for relevance/irrelevance); model_result: the parsed first
// <tool_call> block or NULL. Fills v. Returns TRL_ERR only when the dataset row is malformed
// in a way that makes bfcl-eval itself crash (unknown type name, missing schema field, ...).
int bfcl_check(const char *category, const cJSON *functions, const cJSON *ground_truth, const cJSON *model_result,
               bfcl_verdict *v, trl_err *e);

// BFCL's standardize_string on a UTF-8 string: removes ' ', ',', '.', '/', '-', '_', '*', '^',
// lowercases (Unicode, as Python's str.lower()), then replaces ' with ". Returns malloc'd text.
char *bfcl_standardize(const char *s);
// A new node: v with bfcl_standardize applied when it is a string, else a copy (NULL when out of
// memory). ACEBench's checker standardises the same way.
cJSON *bfcl_standardize_value(const cJSON *v);

#endif
