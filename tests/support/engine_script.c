// engine_script.c (test support): the fixed engine script of engine_script.h.
#include "tests/support/engine_script.h"

#include <stdlib.h>

#include "model/forward.h"

const int32_t ENGINE_SCRIPT_PROMPT[12] = {5, 77, 3, 120, 250, 9, 64, 33, 200, 1, 17, 90};

float *engine_script_run(const model *m, const ops *be, size_t *n_out, trl_err *e) {
    const int32_t *P = ENGINE_SCRIPT_PROMPT;
    const int NP = 12;
    int V = m->cfg.n_vocab;
    engine en;
    if (engine_init(&en, m, be, 3, 64, 8, e)) return NULL;
    float *out = calloc((size_t)V * 64, sizeof(float));
    size_t k = 0;
    int rc = out ? TRL_OK : trl_errf(e, "out of memory");
    // A prefill longer than max_batch (two chunks) and a shorter one.
    if (!rc) rc = engine_feed(&en, 0, P, NP, out + k, e), k += (size_t)V;
    if (!rc) rc = engine_feed(&en, 1, P + 2, 5, out + k, e), k += (size_t)V;
    // Sequence 2 gets a copy of sequence 0's first 6 positions.
    if (!rc) rc = engine_seq_copy(&en, 2, 0, 6, e);
    // Three sequences decode together; logits of rows 0 and 2 only, then of all three.
    for (int step = 0; !rc && step < 3; step++) {
        int32_t tok[3] = {P[step], P[(step + 4) % NP], P[(step + 9) % NP]}, seq[3] = {0, 1, 2};
        int32_t pos[3] = {en.seq_len[0], en.seq_len[1], en.seq_len[2]};
        int8_t want[3] = {1, (int8_t)(step == 2), 1};
        engine_batch b = {3, tok, seq, pos, want};
        rc = engine_forward(&en, &b, out + k, e);
        k += (size_t)V * (step == 2 ? 3 : 2);
    }
    engine_free(&en);
    if (rc) {
        free(out);
        return NULL;
    }
    *n_out = k;
    return out;
}
