// mix.h: one deduplicated training mix from every training source (toolrl data mix): each
// source converted (convert.h, with its filters), rows whose question is an evaluation question
// dropped (evalq.h), duplicates dropped, a seeded validation split, and the mix's composition.
//   * eval overlap: a row whose last user message, normalised (evalq_normalise), equals a
//     question of BFCL, API-Bank or ACEBench is dropped (eval_overlap);
//   * duplicates: the key is every user message (normalised, in order), the sorted tool names
//     and the sorted canonical calls of the answer (json.dumps(call, sort_keys=True)); the first
//     row with a key is kept, in source order;
//   * irrelevance twins (irrelevance_frac > 0): a seeded share of the single-turn rows with
//     calls enters a second time with the tools it calls removed and the answer [] (the model
//     must learn to decline when no listed tool fits); id "<id>-irr", the source's label;
//   * split: rows ordered by a hash of (seed, id); the first round(val_frac * n) are the
//     validation rows; both files keep the mix order.
// Evaluation sets are refused as inputs (convert_path refuses them by name and content).
#ifndef TOOLRL_MIX_H
#define TOOLRL_MIX_H

#include <stdio.h>

#include "data/convert.h"
#include "data/evalq.h"

#define MIX_MAX_SOURCES 24
#define MIX_MAX_PATHS 3

typedef struct {
    const char *label;                // name in the report (and the source override if override)
    convert_format format;
    const char *path[MIX_MAX_PATHS];  // files or folders; NULL-terminated when fewer
    int in_repo;                      // paths are relative to the repository, not the data folder
    int override;                     // write label as every row's "source"
} mix_source;

// The default sources: every shared training set. ToolRL's rlla_4k test split is parquet; the
// set-up (`make var/data/sources/toolrl_rlla4k_test.jsonl`, part of `make data` and `make check`)
// writes it as JSONL first (scripts/parquet-to-jsonl.py, pyarrow from PyPI in .venv-data).
extern const mix_source MIX_DEFAULT_SOURCES[];
extern const size_t MIX_DEFAULT_N;

typedef struct {
    const char *data_dir;     // the shared data folder (…/shared/data): sources and evaluation sets
    const char *repo_dir;     // for in_repo paths (NULL: ".")
    const char *out_dir;      // train.jsonl and val.jsonl go here (NULL: nothing is written)
    const mix_source *sources;
    size_t n_sources;
    double val_frac;
    unsigned long seed;
    double irrelevance_frac;  // share of single-turn rows with calls that also enter as their
                              // irrelevance twin: the tools they call removed, answer [] (0: none)
} mix_config;

#define MIX_CALL_BINS 6  // 0, 1, 2, 3, 4, 5+ calls
#define MIX_LEN_BINS 7   // prompt bytes: <1k, <2k, <4k, <8k, <16k, <32k, more

typedef struct {
    const char *label[MIX_MAX_SOURCES];
    convert_counts counts[MIX_MAX_SOURCES];  // the converter's counts
    long eval_overlap[MIX_MAX_SOURCES], duplicates[MIX_MAX_SOURCES], kept[MIX_MAX_SOURCES];
    long train_rows[MIX_MAX_SOURCES], val_rows[MIX_MAX_SOURCES];
    size_t n_sources;
    evalq_counts evalq;
    long eval_questions;  // distinct normalised evaluation questions
    long converted, eval_overlap_total, duplicates_total, total, train, val;
    long irrelevance_twins[MIX_MAX_SOURCES], irrelevance_twins_total;
    long calls[MIX_CALL_BINS];  // rows by number of calls in the answer
    long prompt_len[MIX_LEN_BINS];
    long prompt_median, prompt_p90, prompt_max;
} mix_report;

int mix_build(const mix_config *cfg, mix_report *rep, trl_err *e);
void mix_report_print(const mix_report *rep, FILE *f);
// The label of a default source, or NULL.
const mix_source *mix_default_source(const char *label);

#endif
