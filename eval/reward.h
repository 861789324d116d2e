// reward.h: Tool-N1's rule-based reward (verl/utils/reward_score/toolcall.py) and its ablation
// variants, reproduced rule for rule. The binary variant (compute_score_v0) is the one Tool-N1
// trains with:
//   1. parse the reply as toolcall_parse_training does (text after the last
//      "<|im_start|>assistant", LAST <tool_call> block, json.loads, a string decoded again, a
//      dict wrapped in a list);
//   2. if there is a result and the scored text lacks "<think>" or "</think>" -> 0 (substring
//      checks only: order, count and text outside the tags do not matter);
//   3. no result (no block, invalid JSON, JSON null) -> 0;
//   4. validate_format: a list of dicts that all have "name" and "arguments" (extra keys are
//      fine, [] passes) - otherwise 0. A JSON string left after the second decode counts as
//      Python iterates it: "" passes as an empty list, any other string fails. A number or bool
//      makes Python raise; here it fails the format check;
//   5. validate_result: if either list is empty, they match only if both are; otherwise the
//      multisets of (name, json.dumps(arguments, sort_keys=True)) must be equal. Call order and
//      key order do not matter, list order does, and there is no type coercion: 1, 1.0 and "1"
//      all differ (pyjson.h keeps number tokens to get this right), as do true and "true".
//      A name that is a list or dict makes Python's Counter raise TypeError, which the original
//      catches: no match.
// Variants (selected by name; Tool-N1's prompt_type names are accepted as aliases):
//   binary            v0, "qwen"                          the above, 1.0 or 0.0
//   no_think          v2, "qwen_wo_reason"                 step 2 dropped
//   partial           v3, "qwen_partial_reason"            0.2 if both think tags are present
//                                                          (always checked) + 0.8 if calls match
//   partial_funcname  v4, "qwen_partial_reason_funcname"   v3, plus 0.2 instead of 0.8 when only
//                                                          the multiset of names matches
//   lexico            v1, "qwen_lexico"                    1.2 correct+think, 1.0 correct,
//                                                          -0.2 wrong+think, 0 otherwise
//   llama             "llama"                              marker
//                     "<|start_header_id|>assistant<|end_header_id|>"; a reply with no block is
//                     scored as [] (1 iff the gold list is empty); otherwise the think check
//                     comes first, then as v0.
#ifndef TOOLRL_REWARD_H
#define TOOLRL_REWARD_H

#include <cjson/cJSON.h>
#include <stddef.h>

#include "base/util.h"

typedef enum {
    REWARD_BINARY = 0,
    REWARD_NO_THINK,
    REWARD_PARTIAL,
    REWARD_PARTIAL_FUNCNAME,
    REWARD_LEXICO,
    REWARD_LLAMA,
} reward_kind;

// Accepts "binary", "no_think", "partial", "partial_funcname", "lexico", "llama" and the
// Tool-N1 prompt_type names listed above.
int reward_kind_parse(const char *name, reward_kind *out, trl_err *e);
const char *reward_kind_name(reward_kind k);

typedef struct {
    int has_think;    // both "<think>" and "</think>" occur in the scored text
    int found_block;  // a <tool_call>...</tool_call> block was found
    int parsed;       // the result was not None
    int format_ok;    // validate_format passed
    int match;        // validate_result: 2 calls match, 1 only the names match, 0 neither
} reward_detail;

// Parses a ground truth as compute_score does (json.loads, and again if that gave a string).
// It must be a list of {"name", "arguments"} dicts (possibly empty). Free with cJSON_Delete.
cJSON *reward_gold_parse(const char *ground_truth, size_t len, trl_err *e);
// Scores one completion against a parsed gold list. TRL_ERR only for a bad gold list.
int reward_score(reward_kind k, const char *completion, size_t len, const cJSON *gold, double *score,
                 reward_detail *detail, trl_err *e);
// Same with the ground truth as JSON text (what a training row stores).
int reward_score_text(reward_kind k, const char *completion, size_t len, const char *ground_truth,
                      double *score, reward_detail *detail, trl_err *e);
// validate_result(pred, gold) on two lists (a JSON string counts as its characters: "" is
// empty). Returns 2, 1 or 0.
int reward_compare_calls(const cJSON *pred, const cJSON *gold);

#endif
