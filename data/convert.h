// convert.h: conversion of public tool-calling datasets into unified examples (example.h), with
// the filters of the Tool-N1 pipeline and a count of what each filter removed.
//   xlam     xLAM function-calling-60k rows {query, tools, answers} (tools/answers as JSON text or
//            lists), and Hammer's {instruction, input, output} form of them;
//   toolace  ToolACE/ShareGPT dialogues {system, conversations: [{from, value}]}: tools from the
//            system prompt, one sample per assistant call turn with all earlier turns as
//            context (Tool-N1's multi-turn split); calls either as JSON (function_call turns) or as
//            Python-style "[f(a=1)]" assistant text (pycall.h). Names truncated to their last word
//            (a known defect of sharegpt_func_fixed.json) are repaired when the tool list (and,
//            when two tools share the last word, the following observation, which carries the
//            real name) leaves exactly one candidate;
//   toolrl   ToolRL's rlla files {instruction, input, output}: tools from the "N. Name: ..."
//            list, history from <user>/<tool_call>/<obs>/<response> tags, answer from the last
//            <tool_call> block of the output (one JSON object per call, "parameters" as args);
//   openai   chat rows {messages, tools}: one sample per assistant message with tool_calls
//            (arguments given as JSON text or objects), earlier messages as context;
//   seal     Seal-Tools rows {id, query, calling} (<split>.jsonl), candidate tools per row from
//            the side file dataset_for_finetune/<split>.json (convert_seal.c);
//   callnavi CallNavi Questions/<domain>.json, tools from the side file APISchema/<domain>.json;
//   glaive   LLaMA-Factory's glaive demos: ShareGPT rows (the call right after the first user
//            turn) and the reasoning demo's {messages: [{content: [parts]}]} rows;
//   toolalpaca Hammer's ToolAlpaca rows {query, tools, answers};
//   nestful  NESTFUL rows {input, output: [{name, arguments, label}]}, tools from the side file
//            <name>-spec.json;
//   sgd      Schema-Guided Dialogue dialogues_NNN.json, one sample per service call, tools from
//            the side file schema.json.
// The toolrl format also reads verl rows {prompt: [system, user], reward_model: {ground_truth}}
// (ToolRL's rlla_4k parquet files, turned into JSONL by scripts/parquet-to-jsonl.py).
// Side files are found next to the input (convert_side_path) unless convert_opts.side_path or
// convert_opts.side names them. Sequences whose later calls use earlier outputs (Seal-Tools'
// "API_call_N", CallNavi's "$$$", NESTFUL's "$varN...$") keep their first step: every call
// that uses no earlier output; a row with no such call is dropped (dependent_only).
// Input files are a JSON array (read item by item) or JSONL. Files that are evaluation sets
// (BFCL, API-Bank) are refused by name and by shape.
// Filters (a sample is dropped and counted under the first that applies):
//   malformed_row     the record lacks a required field or has the wrong types
//   no_tools          no tool list could be read (missing, not JSON, not a list of named tools)
//   unparseable_call  the ground-truth call text is not JSON / not a list of {name, arguments}
//   empty_call        a call turn that holds no call
//   unknown_tool      a call names a tool that is not in the list (after repair, for ToolACE)
//   ambiguous_name    ToolACE: a truncated name that fits several tools, with nothing to decide
//   dependent_only    every call of the row needs an earlier call's output
//   wildcard_value    CallNavi: an argument is "$$$" (any value, or an earlier output): no exact target
//   no_call_dropped   the answer is [] and --drop-no-call was given
//   invalid_example   the built example fails example_validate (a bug guard; expected 0)
#ifndef TOOLRL_CONVERT_H
#define TOOLRL_CONVERT_H

#include <cjson/cJSON.h>
#include <stddef.h>

#include "base/util.h"

#define CONVERT_MAX_COUNTS 40

typedef enum { CONVERT_TOTAL = 0, CONVERT_FILTER = 1, CONVERT_NOTE = 2 } convert_count_kind;

typedef struct {
    const char *name[CONVERT_MAX_COUNTS];
    long value[CONVERT_MAX_COUNTS];
    convert_count_kind kind[CONVERT_MAX_COUNTS];
    size_t n;
    char first_invalid[512];  // message of the first invalid_example, if any
} convert_counts;

// Registers the standard counters (totals, then filters, then notes) so they print in order.
void convert_counts_init(convert_counts *c);
// Adds by to counter name (a string literal); unknown names are added as notes.
void convert_count(convert_counts *c, const char *name, long by);
long convert_count_get(const convert_counts *c, const char *name);

typedef enum {
    CONVERT_XLAM = 0,
    CONVERT_TOOLACE,
    CONVERT_TOOLRL,
    CONVERT_OPENAI,
    CONVERT_SEAL,
    CONVERT_CALLNAVI,
    CONVERT_GLAIVE,
    CONVERT_TOOLALPACA,
    CONVERT_NESTFUL,
    CONVERT_SGD,
    CONVERT_N_FORMATS
} convert_format;
int convert_format_parse(const char *name, convert_format *f, trl_err *e);
const char *convert_format_name(convert_format f);
// The comma-separated list of format names (for usage messages).
const char *convert_format_list(void);

typedef struct {
    int drop_no_call;       // drop samples whose answer is [] (kept by default)
    int no_repair;          // ToolACE: do not repair truncated function names
    const char *side_path;  // the side file (tools) of seal, callnavi, nestful, sgd; NULL: next to the input
    const cJSON *side;      // or the side file already parsed (wins over side_path)
    const char *source;     // overrides every example's "source" when set
} convert_opts;

// 1 if the format needs a side file; then *out gets its default path for input path (and
// TRL_ERR if the input name does not say where it is).
int convert_needs_side(convert_format f);
int convert_side_path(convert_format f, const char *input, char *out, size_t outsz, trl_err *e);

// Receives each example; the object stays owned by the converter. TRL_ERR stops the run.
typedef int (*convert_sink)(void *ctx, const cJSON *example, trl_err *e);

// Converts a whole input text. Per-row problems are counted, not errors; TRL_ERR means the input
// cannot be read at all (a broken JSON array, an evaluation set) or the sink failed.
int convert_text(convert_format f, const char *text, size_t len, const convert_opts *o, convert_sink sink, void *ctx,
                 convert_counts *c, trl_err *e);
// Reads path and converts it; refuses evaluation sets by file name first. Loads the side file
// when the format needs one and o gives none.
int convert_file(convert_format f, const char *path, const convert_opts *o, convert_sink sink, void *ctx,
                 convert_counts *c, trl_err *e);
// convert_file on path, or, when path is a folder, on each of its input files in name order
// (seal: *.jsonl but tool.jsonl and field.jsonl; callnavi: *.json; nestful: *-data.json; sgd:
// dialogues_*.json; the others: *.json and *.jsonl), with the side file found per file.
int convert_path(convert_format f, const char *path, const convert_opts *o, convert_sink sink, void *ctx,
                 convert_counts *c, trl_err *e);
// TRL_ERR with a message if path names an evaluation set (bfcl, api-bank, ...).
int convert_refuse_path(const char *path, trl_err *e);
// TRL_ERR with a message if a record has the shape of a BFCL or API-Bank row.
int convert_refuse_record(const cJSON *rec, trl_err *e);

// ---- shared by the converters ----

typedef struct {
    const convert_opts *opts;
    convert_sink sink;
    void *sink_ctx;
    convert_counts *counts;
    const cJSON *side;      // the parsed side file, or NULL
    const char *stem;       // the input file's name without folder and extension ("" for text)
} convert_run;

// Validates and hands one example (taken) to the sink, applying --drop-no-call and counting.
int convert_emit(convert_run *r, cJSON *example, trl_err *e);
// Ends one sample: when drop names a filter (above), counts it and frees msgs, tools and answer;
// else builds the example from them (example_build) and emits it. The three are taken either
// way; one of them NULL when nothing is dropped means out of memory.
int convert_emit_sample(convert_run *r, const char *drop, const char *id, const char *source, cJSON *msgs,
                        cJSON *tools, cJSON *answer, trl_err *e);
// Converts one record; TRL_ERR only for fatal problems.
int convert_xlam_record(convert_run *r, const cJSON *rec, size_t index, trl_err *e);
int convert_toolace_record(convert_run *r, const cJSON *rec, size_t index, trl_err *e);
int convert_toolrl_record(convert_run *r, const cJSON *rec, size_t index, trl_err *e);
int convert_openai_record(convert_run *r, const cJSON *rec, size_t index, trl_err *e);
int convert_seal_record(convert_run *r, const cJSON *rec, size_t index, trl_err *e);
int convert_callnavi_record(convert_run *r, const cJSON *rec, size_t index, trl_err *e);
int convert_glaive_record(convert_run *r, const cJSON *rec, size_t index, trl_err *e);
int convert_toolalpaca_record(convert_run *r, const cJSON *rec, size_t index, trl_err *e);
int convert_nestful_record(convert_run *r, const cJSON *rec, size_t index, trl_err *e);
int convert_sgd_record(convert_run *r, const cJSON *rec, size_t index, trl_err *e);
// The xLAM {query, tools, answers} row as an example with the given id prefix and source.
int convert_query_row(convert_run *r, const cJSON *rec, size_t index, const char *prefix, const char *source,
                      trl_err *e);

// Reads a list of function schemas (a JSON list, or JSON text of one) into tools wrapped as
// {"type": "function", "function": ...}. Returns NULL unless every item is an object with a
// non-empty string name.
cJSON *convert_wrap_tools(const cJSON *list_or_text);
// Parses a list of calls (JSON list, a single call object, or JSON text of either) into
// [{"name", "arguments"}], reading the arguments from args_key (or "arguments"/"parameters"),
// where arguments given as JSON text are decoded. NULL if anything is not a call.
cJSON *convert_read_calls(const cJSON *v, const char *args_key);
// Exactly one call (convert_read_calls giving a list of one), taken out of the list; NULL if
// v is not that.
cJSON *convert_read_call(const cJSON *v, const char *args_key);
// Number of calls in answer whose names are not tools; the first such name in *bad.
int convert_unknown_names(const cJSON *answer, const cJSON *tools, const char **bad);
// 1 if any string inside v (at any depth) satisfies pred.
int convert_any_string(const cJSON *v, int (*pred)(const char *s));
// The first-step rule for a sequence's call (above): a call one of whose argument strings names
// an earlier output (uses_output) is cut and counted in *cut; any other is appended to answer as
// {name, arguments: a copy of args}. 0 when out of memory.
int convert_add_first_step(cJSON *answer, const char *name, const cJSON *args, int (*uses_output)(const char *s),
                           int *cut);
// [{"role": "user", "content": text}], or NULL when out of memory.
cJSON *convert_user_messages(const char *text);
// The text from a to b without the white space at either end, malloc'd (NULL when out of memory).
char *convert_dup_trimmed(const char *a, const char *b);

#endif
