// rollout.c: GRPO's batched sampling on the one generator (see rollout.h).
#include "trainer/rollout.h"

#include <stdlib.h>
#include <string.h>

int rollout_init(rollout *r, const model *m, const ops *be, int max_seqs, int n_ctx, int max_new, trl_err *e) {
    memset(r, 0, sizeof(*r));
    if (max_seqs < 1 || max_new < 1 || n_ctx <= max_new) return trl_errf(e, "rollout: bad sizes");
    if (generator_init(&r->gen, m, be, max_seqs, n_ctx, 512 > max_seqs ? 512 : max_seqs, e)) return TRL_ERR;
    r->max_seqs = max_seqs, r->n_ctx = n_ctx, r->max_new = max_new;
    r->out = calloc((size_t)max_seqs, sizeof(rollout_seq));
    if (!r->out) {
        rollout_free(r);
        return trl_errf(e, "rollout: out of memory");
    }
    return TRL_OK;
}

void rollout_free(rollout *r) {
    if (r->gen.m) generator_free(&r->gen);
    for (int i = 0; r->out && i < r->max_seqs; i++) {
        free(r->out[i].tok);
        free(r->out[i].text);
    }
    free(r->out);
    memset(r, 0, sizeof(*r));
}

// Copies a finished slot into its result.
static int take(rollout *r, int s, const gen_slot *g) {
    rollout_seq *o = &r->out[s];
    o->tok = malloc(sizeof(int32_t) * (size_t)(g->n_tokens ? g->n_tokens : 1));
    o->text = strdup(g->text ? g->text : "");
    if (!o->tok || !o->text) return TRL_ERR;
    memcpy(o->tok, g->tokens, sizeof(int32_t) * (size_t)g->n_tokens);
    o->n_tok = g->n_tokens;
    o->finished = g->finish == GEN_STOP;
    return TRL_OK;
}

int rollout_run(rollout *r, const int32_t *const *prompts, const int *n_prompt, int n_prompts, int n_samples,
                float temperature, uint64_t seed, trl_err *e) {
    int S = n_prompts * n_samples, rc = TRL_OK;
    if (n_prompts < 1 || n_samples < 1 || S > r->max_seqs)
        return trl_errf(e, "rollout: %d x %d sequences (room for %d)", n_prompts, n_samples, r->max_seqs);
    for (int i = 0; i < n_prompts; i++)
        if (n_prompt[i] < 1 || n_prompt[i] >= r->n_ctx - 1)
            return trl_errf(e, "rollout: prompt %d has %d tokens (context %d)", i, n_prompt[i], r->n_ctx);
    for (int s = 0; s < S; s++) {
        rollout_seq *o = &r->out[s];
        free(o->tok), free(o->text);
        o->tok = NULL, o->text = NULL, o->n_tok = 0, o->finished = 0;
    }
    generator *g = &r->gen;
    for (int i = 0; i < g->n_slots; i++) generator_release(g, i);
    generator_forget(g);  // the policy's weights changed since the last run: no stale cache
    // Sample s runs in slot s with the generator seeded seed + s. Samples are started in order;
    // one whose prompt another slot is still prefilling waits for it and then copies its cache
    // (the same bits its own prefill would write).
    int next = 0, done = 0;
    while (rc == TRL_OK && done < S) {
        if (r->abort && *r->abort) {
            rc = trl_errf(e, "rollout: aborted");
            break;
        }
        while (next < S) {
            gen_params p = {.prompt = prompts[next / n_samples],
                            .n_prompt = n_prompt[next / n_samples],
                            .sp = {.temperature = temperature, .top_k = 0, .top_p = 1.0f, .seed = seed + (uint64_t)next},
                            .max_tokens = r->max_new,
                            .stop_at_tool_call = 1};
            int wait = 0;
            for (int i = 0; i < next && !wait; i++)  // prompts[i] prefilling in slot i
                wait = g->slots[i].state == GEN_PREFILL && prompts[i / n_samples] == p.prompt;
            if (wait) break;
            if (generator_start(g, next, &p, e)) {
                rc = TRL_ERR;
                break;
            }
            next++;
        }
        if (rc) break;
        if (generator_step(g, e) < 0) {
            rc = TRL_ERR;
            break;
        }
        for (int s = 0; s < next; s++) {
            if (g->slots[s].state != GEN_DONE) continue;
            if (take(r, s, &g->slots[s])) rc = trl_errf(e, "rollout: out of memory");
            generator_release(g, s);
            done++;
        }
    }
    return rc;
}
