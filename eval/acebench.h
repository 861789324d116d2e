// acebench.h: ACEBench (English) as an evaluation suite: loading the shared files, turning a row
// into Tool-N1 chat messages, the official checker re-implemented in C (agreement with the
// official code on every shared row: tests/test_acebench.c), and the file / group means.
//
// Files: <dir>/data_en/data_<category>.json (JSONL {id, question, function, time|profile}) and
// <dir>/possible_answer_en/data_<category>.json ({id, ground_truth}), same ids, same order.
// Categories run: the 12 normal files (6 atom, 2 single-turn, 2 multi-turn, similar_api,
// preference) and the 3 special files. The 2 agent files are not run: they execute the calls
// against ACEBench's Python environment classes, and agent_multi_turn also needs an LLM that
// plays the user.
//
// Prompt: the Tool-N1 prompt (protocol/toolprompt.c) with the row's functions as tools. The
// official prompt puts `time` (when not empty) in its system prompt, and for normal_preference
// "Character Profile:\n<profile>"; both go in as the caller's system text. The question string
// "user: …\nsystem: …\n" becomes chat turns: "user:" -> user, "system:" -> assistant, a line not
// starting a turn continues the previous one; in the multi-turn files a "system:" turn that is a
// call list "[Api(k='v')]" becomes an assistant tool call and the "system:" turn right after it
// the tool's result.
//
// Normal rows (official eval_main.normal_single_turn_eval / normal_checker): the reply's first
// <tool_call> block (as for BFCL) must be a list of {"name": str, "arguments": dict}, else the
// row fails ("wrong_output_format"). The official pipeline deletes all whitespace from the
// model's raw output before parsing it, so spaces (U+0020) are removed from every string of the
// calls (names, keys, values); other whitespace inside strings is written as escapes in both
// Python's repr and JSON and survives there too. Then, for each alternative ground truth (a list
// of dicts; one dict otherwise), valid if any passes:
//   - as many calls as ground-truth functions; names (ground-truth keys with "_<digits>"
//     stripped) and their counts must be equal;
//   - each ground-truth function is checked against any call of that name (the first that
//     passes wins; one call may serve two answers), its schema being the first function whose
//     name is a substring of the unstripped key;
//   - a call with no arguments fails unless the schema's parameters are {}; every required
//     parameter present; no parameter outside the schema or the answer;
//   - types against the schema (string, integer, number (= int), float (an int is converted),
//     boolean, array, object, ...; the strings "true"/"false" count as booleans); a value whose
//     type is the answer's type but not the schema's is a "variable" and not compared;
//   - values: only strings, lists and dicts are compared. Strings: the answer, lower-cased and
//     without spaces and ,./-_*^ (BFCL's standardisation), must be a substring of the model's
//     string so treated. Lists: equal after the same standardisation of string items. Dicts:
//     same key count, every key known, nested dicts recursively, other values by Python's
//     str(answer) being a substring of str(value) (strings standardised first). Numbers and
//     booleans are only type-checked: a wrong number passes, as in the official code.
// Multi-turn rows are scored the same way, one turn each; a dialogue is correct only if all its
// turns are, and the file accuracy is over dialogues.
//
// Special rows: the official string checks on the raw reply ("strict"):
//   incomplete: "Missing necessary parameters", the function name and every missing parameter
//               name (raw substrings, stray spaces included);
//   error_param: "There is incorrect value" and every wrong value;
//   irrelevant: "the limitations of the function".
// The Tool-N1 prompt asks the model to point problems out in its own words, not in those fixed
// phrases, so the main verdict also accepts a reply that makes no call (no <tool_call> block, or
// one that is not a non-empty list of calls, BFCL's irrelevance rule) - for error_param only if
// the reply also contains every wrong value. A reply that passes the strict check is correct in
// both. docs/data.md ("ACEBench") gives the reasoning.
#ifndef TOOLRL_ACEBENCH_H
#define TOOLRL_ACEBENCH_H

#include <cjson/cJSON.h>
#include <stddef.h>
#include <stdio.h>

#include "base/util.h"

typedef enum {
    ACE_NORMAL = 0,       // single prompt, AST match
    ACE_MULTI_TURN,       // AST match per turn, dialogues scored
    ACE_SPECIAL_INCOMPLETE,
    ACE_SPECIAL_ERROR_PARAM,
    ACE_SPECIAL_IRRELEVANT,
    ACE_AGENT,            // not run
    ACE_UNKNOWN,
} acebench_kind;

// The kind of a category ("normal_atom_bool", "special_incomplete", ...).
acebench_kind acebench_category_kind(const char *category);
// 1 for the 15 categories this suite runs (12 normal, 3 special).
int acebench_category_known(const char *category);

typedef struct {
    int valid;            // the verdict the suite scores (for special rows: the Tool-N1 mapping)
    int strict;           // special rows: the official string check alone; normal rows: = valid
    char error_type[64];  // the official error_type ("lack_args", "value_error:string", ...)
    char error[400];      // a human-readable reason; "" when valid
} acebench_verdict;

// Checks a normal (or multi-turn) row. functions: the row's "function" list; ground_truth: its
// "ground_truth" (a dict, or a list of alternative dicts); calls: the parsed first <tool_call>
// block (NULL: none, or not JSON). TRL_ERR only where the official code itself would raise on
// this row (a malformed schema or answer); e says why.
int acebench_check_normal(const cJSON *functions, const cJSON *ground_truth, const cJSON *calls,
                          acebench_verdict *v, trl_err *e);
// Checks a special row's raw reply (kind: one of the ACE_SPECIAL_*). Sets v->strict from the
// official string check and v->valid from the mapping above. TRL_ERR as above.
int acebench_check_special(acebench_kind kind, const cJSON *ground_truth, const char *output, int prompt_style,
                           acebench_verdict *v, trl_err *e);

typedef struct {
    char *id;
    const char *category;  // points into the file it belongs to
    acebench_kind kind;
    long dialogue;         // multi-turn: the dialogue number from the id ("…_<dialogue>_<turn>"); else -1
    const cJSON *functions, *ground_truth;  // borrowed from row / answer
    cJSON *row, *answer;   // the question and answer rows (owned)
    cJSON *messages;       // chat: [{"role", "content"[, "tool_calls"]}], system text first if any
} acebench_row;

typedef struct {
    char category[64];
    acebench_kind kind;
    acebench_row *rows;
    size_t n;
} acebench_file;

// Loads one category from dir (the acebench/ folder). limit > 0 keeps the first limit rows, or,
// for the multi-turn files, every turn of the first limit dialogues.
int acebench_file_load(const char *dir, const char *category, int limit, acebench_file *f, trl_err *e);
void acebench_file_free(acebench_file *f);
// The prompt of a row in a prompt style (toolprompt_style; 0 is Tool-N1's), malloc'd, or NULL
// when out of memory.
char *acebench_row_prompt(const acebench_row *r, int prompt_style);
// Scores one reply to a row: parses it as written for that prompt style (toolcall_parse_reply)
// and runs the checker for its kind.
int acebench_score(const acebench_row *r, int prompt_style, const char *output, acebench_verdict *v, trl_err *e);

// The 15 categories run, in the leaderboard's order, and the 2 that are not.
extern const char *const ACEBENCH_CATEGORIES[15];
extern const char *const ACEBENCH_AGENT_CATEGORIES[2];
#define ACEBENCH_NOT_RUN_REASON                                                                       \
    "needs ACEBench's Python environment classes to execute the calls (agent_multi_turn also an LLM " \
    "playing the user)"

// One scored reply, for the tallies.
typedef struct {
    const acebench_row *row;
    int valid, strict;
} acebench_outcome;

typedef struct {
    const char *category;
    acebench_kind kind;
    long correct, total;        // rows; multi-turn: dialogues (all turns correct)
    long strict_correct;        // special files: by the official string check alone
    long turns_correct, turns;  // multi-turn files: per turn (the official "process accuracy")
} acebench_file_result;

typedef struct {
    acebench_file_result files[15];
    size_t n;
    // Unweighted means of file accuracies in [0, 1]; -1 when none of their files was run.
    double atom, single_turn, multi_turn;  // the leaderboard's sub-columns (6, 2, 2 files)
    double normal;          // the 12 normal files (those run; normal_parts says how many)
    double special;         // the 3 special files, Tool-N1 mapping
    double special_strict;  // the same with the official string checks
    double tooln1;          // Tool-N1's ACEBench number: the 6 atom and 2 single-turn files
    // How many files each mean covers (of 6, 2, 2, 12, 3, 3 and 8).
    int atom_parts, single_turn_parts, multi_turn_parts, normal_parts, special_parts, tooln1_parts;
} acebench_summary;

// Tallies outcomes (in file order; a multi-turn dialogue's turns consecutive, as loaded) per file
// and computes the means.
void acebench_summarize(const acebench_outcome *o, size_t n, acebench_summary *s);
// Prints the per-file table and the means (what `toolrl eval --suite acebench` shows).
void acebench_summary_print(FILE *f, const acebench_summary *s);
// The summary as JSON for the report. NULL when out of memory.
cJSON *acebench_summary_json(const acebench_summary *s);
// The summary lines stored with the per-file scores: up to 8 (name, value) pairs for the means
// that were measured ("normal", "special", "special_strict", "tooln1", "atom", ...). Returns n.
int acebench_summary_scores(const acebench_summary *s, const char *names[8], double values[8]);

#endif
