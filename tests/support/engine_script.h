// engine_script.h (test support): one fixed engine script run on a backend, for comparing
// backends' logits: a prefill longer than max_batch (two chunks of 8), a shorter one, a copied
// cache, then three sequences decoding together with logits for some rows.
#ifndef TOOLRL_TEST_ENGINE_SCRIPT_H
#define TOOLRL_TEST_ENGINE_SCRIPT_H

#include <stddef.h>
#include <stdint.h>

#include "model/model.h"
#include "model/ops.h"

extern const int32_t ENGINE_SCRIPT_PROMPT[12];  // token ids < 256: every tiny model has them

// Runs the script through an engine on be; every logits row it asked for, concatenated, in a
// calloc'd buffer (*n_out floats), or NULL with e set.
float *engine_script_run(const model *m, const ops *be, size_t *n_out, trl_err *e);

#endif
