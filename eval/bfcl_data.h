// bfcl_data.h: loading BFCL category files (questions + possible answers) and turning
// per-category accuracies into the summary numbers Tool-N1 reports.
// Files: <dir>/BFCL_v4_<category>.json (or BFCL_v3_...), JSONL rows {id, question, function};
// <dir>/possible_answer/<same name>, rows {id, ground_truth}, same ids in the same order
// (relevance and irrelevance categories have none).
// Summary (tool-n1.md section 5):
//   Non-live simple = unweighted mean of simple_python, simple_java, simple_javascript (only the
//                     categories given; the shared data has simple_python only);
//   Non-live        = unweighted mean of simple, multiple, parallel, parallel_multiple;
//   Live            = count-weighted mean of live_simple, live_multiple, live_parallel,
//                     live_parallel_multiple (sum correct / sum total);
//   Overall         = (Non-live + Live) / 2, Tool-N1's "Overall".
// Irrelevance and relevance categories are not part of these averages (as in the paper).
#ifndef TOOLRL_BFCL_DATA_H
#define TOOLRL_BFCL_DATA_H

#include <cjson/cJSON.h>
#include <stddef.h>

#include "base/util.h"

typedef struct {
    char *id;
    cJSON *question;      // list of turns, each a list of {role, content}
    cJSON *functions;     // list of function schemas
    cJSON *ground_truth;  // list of {func_name: {param: [allowed values]}}, or NULL
} bfcl_entry;

typedef struct {
    char category[64];
    bfcl_entry *entries;
    size_t n;
} bfcl_dataset;

// Loads one category from dir (the folder holding the BFCL_v4_*.json files). Version 3 file
// names are tried when the v4 one is missing ("simple_python" also tries v3's "simple").
int bfcl_dataset_load(const char *dir, const char *category, bfcl_dataset *ds, trl_err *e);
void bfcl_dataset_free(bfcl_dataset *ds);
const bfcl_entry *bfcl_dataset_find(const bfcl_dataset *ds, const char *id);
// The first turn's messages of an entry (single-turn categories have exactly one turn).
const cJSON *bfcl_entry_messages(const bfcl_entry *en);

typedef struct {
    const char *category;
    long correct;
    long total;
} bfcl_category_result;

typedef struct {
    double simple, multiple, parallel, parallel_multiple;  // non-live columns (-1 if absent)
    double live_simple, live_multiple, live_parallel, live_parallel_multiple;  // (-1 if absent)
    double non_live;  // -1 when none of its columns is present
    double live;      // -1 when none of its categories is present
    double overall;   // (non_live + live) / 2; the one present if only one is; -1 if neither
    int simple_parts;     // how many of the three simple languages were given
    int non_live_parts;   // how many of the four non-live columns were given
    long live_total;      // rows behind the live mean
} bfcl_summary;

// Accuracy in [0, 1] per column; categories not in the list are ignored (irrelevance etc.).
void bfcl_summarize(const bfcl_category_result *r, size_t n, bfcl_summary *s);

#endif
