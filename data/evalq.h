// evalq.h: the user questions of the evaluation sets (BFCL, API-Bank level-1, ACEBench), as a
// blocklist for the training mix: no training row's question may equal one of them.
// Questions are compared normalised: ASCII letters lower-cased, every run of whitespace one
// space, no leading or trailing space.
#ifndef TOOLRL_EVALQ_H
#define TOOLRL_EVALQ_H

#include <stddef.h>

#include "base/strset.h"
#include "base/util.h"

typedef struct {
    long bfcl;     // questions read from bfcl/BFCL_v4_*.json (every user message of every turn)
    long apibank;  // from apibank/hammer/apibank_l1.json and apibank/level-1-api.json (user turns)
    long acebench; // from acebench/data_en/*.json (each "user: " turn, and the whole question text)
    long files;
} evalq_counts;

// The normalised form of s, malloc'd (NULL when out of memory).
char *evalq_normalise(const char *s);
// Adds the normalised questions of every evaluation file under data_dir (the shared "data"
// folder) to set. TRL_ERR if a file cannot be read or parsed, or no evaluation file is found.
int evalq_load(const char *data_dir, strset *set, evalq_counts *c, trl_err *e);

#endif
