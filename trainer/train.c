// train.c: the SFT and GRPO training steps over the fp32 model (see train.h).
#include "trainer/train.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "model/tokenizer.h"

// ---------------------------------------------------------------------------- set-up

static int lm_params_dup(lm_params *dst, const lm_params *src, const model_config *c, trl_err *e) {
    if (lm_params_alloc(dst, c, src->be, e)) return TRL_ERR;
    src->be->copy(dst->mem, src->mem, (int64_t)src->n);
    return TRL_OK;
}

int trainer_init(trainer *t, const train_config *cfg, const model *base, const task_set *tasks, const train_ops *be,
                 trl_err *e) {
    memset(t, 0, sizeof(*t));
    t->be = be ? be : &train_ops_cpu;
    t->cfg = *cfg;
    t->base = base;
    t->mc = base->cfg;
    t->tasks = tasks;
    const model_config *c = &t->mc;
    int S = cfg->method == TRAIN_GRPO ? cfg->batch_size * cfg->group_size : cfg->batch_size;
    int T = cfg->max_seq_tokens;
    // Activations for one sequence, or for a GRPO pack (a prompt and several replies, see
    // build_pack): room for group_size - 1 more replies of max_new_tokens, at most twice one
    // sequence (the activations take ~1.2 MB per token for the default model).
    int TA = T;
    if (cfg->method == TRAIN_GRPO) {
        long cap = (long)T + (long)(cfg->group_size - 1) * cfg->max_new_tokens;
        TA = cap < 2L * T ? (int)cap : 2 * T;
    }
    // Split: a seeded permutation; its last eval_examples (at most a fifth) are held back.
    int n = tasks->n, n_held = cfg->eval_examples < n / 5 ? cfg->eval_examples : n / 5;
    t->train_idx = malloc(sizeof(int) * (size_t)n);
    t->held_idx = malloc(sizeof(int) * (size_t)(n_held ? n_held : 1));
    t->order = malloc(sizeof(int) * (size_t)n);
    t->logp = malloc(sizeof(float) * (size_t)T);
    t->old_logp = malloc(sizeof(float) * (size_t)T * (size_t)S);
    t->ref_logp = malloc(sizeof(float) * (size_t)T * (size_t)S);
    t->dlogp = malloc(sizeof(float) * (size_t)TA);
    t->head = malloc(sizeof(float) * (size_t)TA);
    t->seq_tok = malloc(sizeof(int32_t) * (size_t)(TA + 1));
    t->seq_tgt = malloc(sizeof(int32_t) * (size_t)TA);
    int G = cfg->group_size > 0 ? cfg->group_size : 1;
    t->pack_s = malloc(sizeof(int) * (size_t)G);
    t->pack_len = malloc(sizeof(int) * (size_t)G);
    t->rewards = malloc(sizeof(double) * (size_t)S);
    t->adv = malloc(sizeof(float) * (size_t)S);
    t->perm = malloc(sizeof(int) * (size_t)S);
    if (!t->train_idx || !t->held_idx || !t->order || !t->logp || !t->old_logp || !t->ref_logp || !t->dlogp || !t->head ||
        !t->seq_tok || !t->seq_tgt || !t->pack_s || !t->pack_len || !t->rewards || !t->adv || !t->perm) {
        trainer_free(t);
        return trl_errf(e, "trainer: out of memory");
    }
    task_order(t->order, n, cfg->seed, -1);
    t->n_held = n_held;
    t->n_train = n - n_held;
    for (int i = 0; i < t->n_train; i++) t->train_idx[i] = t->order[i];
    for (int i = 0; i < n_held; i++) t->held_idx[i] = t->order[t->n_train + i];
    t->order_epoch = -1;
    t->steps_per_epoch = t->n_train / cfg->batch_size;
    if (t->steps_per_epoch < 1) t->steps_per_epoch = 1;
    t->total_steps = cfg->max_steps > 0 ? cfg->max_steps : cfg->n_epochs * t->steps_per_epoch;
    if (lm_params_alloc(&t->p, c, t->be, e) || lm_params_from_model(&t->p, base, e) ||
        lm_params_alloc(&t->g, c, t->be, e) || lm_params_alloc(&t->m, c, t->be, e) ||
        lm_params_alloc(&t->v, c, t->be, e) || lm_acts_alloc(&t->acts, c, TA, t->be, e)) {
        trainer_free(t);
        return TRL_ERR;
    }
    if (cfg->method == TRAIN_GRPO && cfg->kl_coef > 0 && lm_params_dup(&t->ref, &t->p, c, e)) {
        trainer_free(t);
        return TRL_ERR;
    }
    int ro_seqs = S > t->n_held ? S : (t->n_held > 0 ? t->n_held : 1);
    if (ro_seqs > 32) ro_seqs = 32;
    if (ro_seqs < S) ro_seqs = S;
    if (policy_view_init(&t->view, &t->p, base, e) || rollout_init(&t->ro, &t->view, t->be->mem, ro_seqs, T, cfg->max_new_tokens, e)) {
        trainer_free(t);
        return TRL_ERR;
    }
    return TRL_OK;
}

void trainer_free(trainer *t) {
    rollout_free(&t->ro);
    policy_view_free(&t->view);
    lm_params_free(&t->p);
    lm_params_free(&t->g);
    lm_params_free(&t->m);
    lm_params_free(&t->v);
    lm_params_free(&t->ref);
    lm_acts_free(&t->acts);
    free(t->train_idx), free(t->held_idx), free(t->order);
    free(t->logp), free(t->old_logp), free(t->ref_logp), free(t->dlogp), free(t->head), free(t->seq_tok);
    free(t->seq_tgt), free(t->pack_s), free(t->pack_len);
    free(t->rewards), free(t->adv), free(t->perm);
    memset(t, 0, sizeof(*t));
}

int trainer_set_params(trainer *t, const lm_params *p, trl_err *e) {
    if (p->n != t->p.n) return trl_errf(e, "trainer: %zu parameters given, the model has %zu", p->n, t->p.n);
    lm_params h;  // p on the host (itself when it is host memory)
    if (lm_params_host_begin(p, &t->mc, 1, &h, e)) return TRL_ERR;
    t->be->mem->upload(t->p.mem, h.mem, sizeof(float) * p->n);
    if (t->ref.mem) t->be->mem->upload(t->ref.mem, h.mem, sizeof(float) * p->n);
    lm_params_host_end(p, &h);
    return TRL_OK;
}

void trainer_take_params(trainer *t, lm_params *out) {
    rollout_free(&t->ro);  // the rollout engine and the view point into the weights
    policy_view_free(&t->view);
    *out = t->p;
    t->p = (lm_params){0};
}

int trainer_done(const trainer *t) { return t->step >= t->total_steps; }

static int aborted(const trainer *t);

int trainer_run(trainer *t, const trainer_hooks *h, trl_err *e) {
    const train_config *cfg = &t->cfg;
    int rc = TRL_OK;
    while (rc == TRL_OK && !trainer_done(t)) {
        cJSON *mx = cJSON_CreateObject();
        if (!mx) return trl_errf(e, "trainer: out of memory");
        rc = trainer_step(t, mx, e);
        if (rc == TRL_OK && cfg->eval_interval > 0 && t->n_held &&
            (t->step % cfg->eval_interval == 0 || trainer_done(t)))
            rc = trainer_eval(t, mx, e);
        if (rc == TRL_OK && h && h->on_step) rc = h->on_step(h->ctx, t, mx, e);
        int ckpt = (cfg->checkpoint_interval > 0 && t->step % cfg->checkpoint_interval == 0) || trainer_done(t);
        if (rc == TRL_OK && ckpt && h && h->on_checkpoint) rc = h->on_checkpoint(h->ctx, t, mx, e);
        cJSON_Delete(mx);
        if (rc == TRL_OK && aborted(t)) rc = TRL_ABORTED;
    }
    return rc;
}

// The task index of slot i of step `step`: epochs walk a fresh seeded order of the training
// tasks, so a run resumed at step s sees exactly the examples it would have seen.
static int task_at(trainer *t, int step, int i) {
    long k = (long)step * t->cfg.batch_size + i;
    int epoch = (int)(k / t->n_train), off = (int)(k % t->n_train);
    if (epoch != t->order_epoch) {
        task_order(t->order, t->n_train, t->cfg.seed, epoch);
        t->order_epoch = epoch;
    }
    return t->train_idx[t->order[off]];
}

static float current_lr(const trainer *t) {
    lr_schedule s = {t->cfg.schedule, t->cfg.lr, t->cfg.lr_min, t->cfg.warmup_steps, t->total_steps};
    return lr_schedule_at(&s, t->step);
}

// Clip, AdamW, zero the gradients. Returns the norm before clipping.
static double optimizer_step(trainer *t, float lr, int update_no) {
    const train_ops *be = t->be;
    float *g = t->g.mem;
    int64_t n = (int64_t)t->g.n;
    double norm = be->grad_norm(g, n);  // clipped as torch's clip_grad_norm_
    if (t->cfg.grad_clip > 0 && norm > t->cfg.grad_clip) be->scale(g, (float)(t->cfg.grad_clip / (norm + 1e-6)), n);
    adamw_params ap = {0.9f, 0.999f, 1e-8f, t->cfg.weight_decay};
    be->adamw_update(t->p.mem, g, t->m.mem, t->v.mem, n, lr, &ap, update_no);
    be->zero(g, n);
    return norm;
}

// Sequence = prompt ++ reply; the model reads tokens[0..T-1] and is scored on targets
// tokens[1..T]; the reply's n_reply tokens are the last n_reply targets.
static int build_seq(trainer *t, const int32_t *prompt, int n_prompt, const int32_t *reply, int n_reply, trl_err *e) {
    if (n_prompt + n_reply > t->cfg.max_seq_tokens + 1)
        return trl_errf(e, "trainer: sequence of %d tokens over max_seq_tokens", n_prompt + n_reply);
    memcpy(t->seq_tok, prompt, sizeof(int32_t) * (size_t)n_prompt);
    memcpy(t->seq_tok + n_prompt, reply, sizeof(int32_t) * (size_t)n_reply);
    return n_prompt + n_reply - 1;  // T
}

// Summed entropy (nats) of the model's next-token distribution over the last n positions of
// the forward just run (its logits and log-sum-exps are still in the activations).
static double entropy_tail(trainer *t, int T, int n) {
    lm_acts_head_stats(&t->acts, T - n, n, t->head, NULL);
    double h = 0;
    for (int i = 0; i < n; i++) h += t->head[i];
    return h;
}

// ---------------------------------------------------------------------------- SFT

static int aborted(const trainer *t) { return t->abort && *t->abort; }

static int step_sft(trainer *t, cJSON *mx, trl_err *e) {
    double t0 = trl_now();
    int B = t->cfg.batch_size;
    long n_tok = 0, seq_tokens = 0;
    for (int i = 0; i < B; i++) n_tok += t->tasks->v[task_at(t, t->step, i)].n_target;
    double loss = 0;
    int correct = 0;
    for (int i = 0; i < B; i++) {
        if (aborted(t)) return TRL_ERR;
        const task *k = &t->tasks->v[task_at(t, t->step, i)];
        int T = build_seq(t, k->prompt, k->n_prompt, k->target, k->n_target, e);
        if (T < 0) return TRL_ERR;
        // the prompt as an unscored prefix and the reply as its one segment: plain causal
        // attention, the head only where the loss is
        const int one = k->n_target;
        const lm_layout lay = {T - one, 1, &one};
        if (lm_forward_packed(&t->p, &t->acts, &t->mc, t->seq_tok, t->seq_tok + 1, T, &lay, e)) return TRL_ERR;
        const int r0 = T - k->n_target;
        float *lp = t->head, *hit = t->dlogp;  // (n_target) each; dlogp is rewritten below
        lm_acts_logp(&t->acts, lp, r0, k->n_target);
        lm_acts_head_stats(&t->acts, r0, k->n_target, NULL, hit);
        for (int j = 0; j < k->n_target; j++) loss -= lp[j], correct += hit[j] != 0;
        for (int j = 0; j < T; j++) t->dlogp[j] = j >= r0 ? -1.0f / (float)n_tok : 0;
        if (lm_backward(&t->p, &t->g, &t->acts, &t->mc, t->seq_tok, t->seq_tok + 1, t->dlogp, T, e)) return TRL_ERR;
        t->trained_tokens += T;
        seq_tokens += T;
    }
    float lr = current_lr(t);
    double norm = optimizer_step(t, lr, t->step + 1);
    double dt = trl_now() - t0;
    cJSON_AddNumberToObject(mx, "loss", loss / (double)n_tok);
    cJSON_AddNumberToObject(mx, "token_accuracy", (double)correct / (double)n_tok);
    cJSON_AddNumberToObject(mx, "target_tokens", (double)n_tok);
    cJSON_AddNumberToObject(mx, "tokens", (double)seq_tokens);
    cJSON_AddNumberToObject(mx, "lr", lr);
    cJSON_AddNumberToObject(mx, "grad_norm", norm);
    cJSON_AddNumberToObject(mx, "time_update", dt);
    return TRL_OK;
}

// ---------------------------------------------------------------------------- GRPO

// verl scores old, new and reference log-probs under the rollout temperature: log-softmax of
// logits / τ. After lm_forward, the last n positions' logits are rescaled in place, with their
// log-sum-exps and target log-probs (lm_acts_temperature); lm_backward reads exactly those, so
// it then computes the gradient with respect to logits / τ, and the caller divides dlogp by τ
// for the chain rule.
static void apply_temperature(trainer *t, int T, int n, float tau) { lm_acts_temperature(&t->acts, T - n, n, tau); }

// Packs replies cand[0..n_cand) of one prompt, from the first, as many as the activations
// hold (the first must fit max_seq_tokens, as a sequence of its own), for lm_forward_packed:
// the shared prefix is the prompt less its last token; segment k is that token and reply k
// less its last token, with reply k as its targets, so the segment's log-probs are reply k's,
// in order. Fills t->seq_tok, t->seq_tgt, t->pack_s, t->pack_len and *lay; *used gets the
// count packed (≥ 1). Returns T, or -1 (e says why).
static int build_pack(trainer *t, const int32_t *prompt, int n_prompt, const int *cand, int n_cand, int *used,
                      lm_layout *lay, trl_err *e) {
    const int P = n_prompt - 1, max_T = t->acts.max_T;
    int T = P, n = 0;
    if (P < 0 || P > max_T) return trl_errf(e, "trainer: prompt of %d tokens", n_prompt), -1;
    memcpy(t->seq_tok, prompt, sizeof(int32_t) * (size_t)P);
    for (int k = 0; k < P; k++) t->seq_tgt[k] = prompt[k + 1];
    for (; n < n_cand; n++) {
        const rollout_seq *o = &t->ro.out[cand[n]];
        if (o->n_tok < 1 || T + o->n_tok > (n ? max_T : t->cfg.max_seq_tokens)) break;
        for (int j = 0; j < o->n_tok; j++) {
            t->seq_tok[T + j] = j ? o->tok[j - 1] : prompt[P];
            t->seq_tgt[T + j] = o->tok[j];
        }
        t->pack_s[n] = cand[n], t->pack_len[n] = o->n_tok;
        T += o->n_tok;
    }
    if (n == 0)
        return trl_errf(e, "trainer: sequence of %d tokens over max_seq_tokens", n_prompt + t->ro.out[cand[0]].n_tok), -1;
    *lay = (lm_layout){P, n, t->pack_len};
    *used = n;
    return T;
}

// The log-probs of the last packed forward's segments into dst + sample · stride.
static void scatter_logp(const trainer *t, const lm_layout *lay, float *dst, int stride) {
    for (int k = 0, off = lay->n_shared; k < lay->n_seg; off += t->pack_len[k], k++)
        lm_acts_logp(&t->acts, dst + (size_t)t->pack_s[k] * (size_t)stride, off, t->pack_len[k]);
}

// Walks the packs of one mini-batch part t->perm[lo, hi) (sorted by prompt): each call builds
// the next pack of the current prompt's samples (build_pack) and returns its T, with the
// prompt's index in *pi; 0 once the part is done, -1 on an error.
typedef struct {
    int j0, i1, hi;  // the next sample, the end of its prompt's run, the end of the part
} pack_walk;

static int pack_next(trainer *t, pack_walk *w, const int32_t *const *prompts, const int *n_prompt, lm_layout *lay,
                     int *pi, trl_err *e) {
    const int G = t->cfg.group_size;
    if (w->j0 >= w->hi) return 0;
    *pi = t->perm[w->j0] / G;
    if (w->j0 >= w->i1)
        for (w->i1 = w->j0; w->i1 < w->hi && t->perm[w->i1] / G == *pi;) w->i1++;
    int n, T = build_pack(t, prompts[*pi], n_prompt[*pi], t->perm + w->j0, w->i1 - w->j0, &n, lay, e);
    if (T > 0) w->j0 += n;
    return T;
}

static int cmp_int(const void *a, const void *b) {
    int x = *(const int *)a, y = *(const int *)b;
    return (x > y) - (x < y);
}

static void score_sample(const trainer *t, const char *text, const char *gold, double *reward, int *exact, int *fmt) {
    reward_detail d = {0};
    double r = 0, bin = 0;
    trl_err e = {{0}};
    if (reward_score_text(t->cfg.reward, text, strlen(text), gold, &r, &d, &e)) r = 0;
    reward_detail d2 = {0};
    if (reward_score_text(REWARD_BINARY, text, strlen(text), gold, &bin, &d2, &e)) bin = 0;
    *reward = r;
    *exact = bin == 1.0;
    *fmt = d2.has_think && d2.found_block && d2.parsed && d2.format_ok;
}

static int step_grpo(trainer *t, cJSON *mx, trl_err *e) {
    const train_config *cf = &t->cfg;
    int B = cf->batch_size, G = cf->group_size, S = B * G, T_max = cf->max_seq_tokens;
    double t0 = trl_now();
    // 1. rollout
    const int32_t *prompts[256];
    int n_prompt[256];
    if (B > 256) return trl_errf(e, "trainer: batch_size over 256");
    for (int i = 0; i < B; i++) {
        const task *k = &t->tasks->v[task_at(t, t->step, i)];
        prompts[i] = k->prompt;
        n_prompt[i] = k->n_prompt;
    }
    uint64_t seed = cf->seed * 1000003ull + (uint64_t)t->step * 7919ull;
    if (rollout_run(&t->ro, prompts, n_prompt, B, G, cf->temperature, seed, e)) return TRL_ERR;
    double t1 = trl_now();
    // 2. rewards and advantages
    int n_exact = 0, n_fmt = 0, zero_std = 0;
    double r_sum = 0, len_sum = 0;
    for (int s = 0; s < S; s++) {
        const task *k = &t->tasks->v[task_at(t, t->step, s / G)];
        int ex, fm;
        score_sample(t, t->ro.out[s].text, k->gold, &t->rewards[s], &ex, &fm);
        n_exact += ex, n_fmt += fm;
        r_sum += t->rewards[s];
        len_sum += t->ro.out[s].n_tok;
    }
    for (int i = 0; i < B; i++) {
        grpo_advantages(t->rewards + i * G, G, cf->norm_adv_std, t->adv + i * G);
        int same = 1;
        for (int j = 1; j < G; j++) same &= t->rewards[i * G + j] == t->rewards[i * G];
        zero_std += same;
    }
    // 3. the samples shuffled (seeded) into mini_batches parts, each part's sorted by prompt:
    //    a part's samples of one prompt go through the model in packs behind that prompt
    //    (lm_forward_packed: the prompt computed once per pack). The reference and old
    //    log-probs are computed on the very packs the update uses, so at equal weights they
    //    are the update's own log-probs bit for bit (KL 0 and ratio 1 exactly, not rounding).
    task_order(t->perm, S, seed, 1);
    for (int mb = 0; mb < cf->mini_batches; mb++) {
        int lo = mb * S / cf->mini_batches, hi = (mb + 1) * S / cf->mini_batches;
        qsort(t->perm + lo, (size_t)(hi - lo), sizeof(int), cmp_int);
    }
    // Old log-probs only for the parts after the first: the first is updated from the
    // weights that sampled, whose log-probs its own forward gives (the same bits, above).
    int need_old = cf->mini_batches > 1;
    lm_layout lay;
    for (int mb = 0; mb < cf->mini_batches && (need_old || cf->kl_coef > 0); mb++) {
        pack_walk w = {mb * S / cf->mini_batches, 0, (mb + 1) * S / cf->mini_batches};
        for (int T, pi; (T = pack_next(t, &w, prompts, n_prompt, &lay, &pi, e)) != 0;) {
            if (T < 0 || aborted(t)) return TRL_ERR;
            if (cf->kl_coef > 0) {
                if (lm_forward_packed(&t->ref, &t->acts, &t->mc, t->seq_tok, t->seq_tgt, T, &lay, e)) return TRL_ERR;
                apply_temperature(t, T, T - lay.n_shared, cf->temperature);
                scatter_logp(t, &lay, t->ref_logp, T_max);
            }
            if (need_old && mb > 0) {
                if (lm_forward_packed(&t->p, &t->acts, &t->mc, t->seq_tok, t->seq_tgt, T, &lay, e)) return TRL_ERR;
                apply_temperature(t, T, T - lay.n_shared, cf->temperature);
                scatter_logp(t, &lay, t->old_logp, T_max);
            }
        }
    }
    double t2 = trl_now();
    // 4. updates, part by part, pack by pack as above (one forward and one backward per pack)
    grpo_loss_params lp = {cf->clip_eps, cf->kl_coef};
    float tau = cf->temperature > 0 ? cf->temperature : 1.0f;  // dlogp / τ: see apply_temperature
    grpo_stats st = {0};
    double ent = 0, norm_sum = 0;
    float lr = current_lr(t);
    int ent_n = 0;
    for (int mb = 0; mb < cf->mini_batches; mb++) {
        int lo = mb * S / cf->mini_batches, hi = (mb + 1) * S / cf->mini_batches;
        long n_tok = 0;
        for (int i = lo; i < hi; i++) n_tok += t->ro.out[t->perm[i]].n_tok;
        pack_walk w = {lo, 0, hi};
        for (int T, pi; (T = pack_next(t, &w, prompts, n_prompt, &lay, &pi, e)) != 0;) {
            if (T < 0 || aborted(t)) return TRL_ERR;
            if (lm_forward_packed(&t->p, &t->acts, &t->mc, t->seq_tok, t->seq_tgt, T, &lay, e)) return TRL_ERR;
            apply_temperature(t, T, T - lay.n_shared, cf->temperature);
            if (mb == 0 || need_old) {
                ent += entropy_tail(t, T, T - lay.n_shared);
                ent_n += T - lay.n_shared;
            }
            for (int j = 0; j < T; j++) t->dlogp[j] = 0;
            lm_acts_logp(&t->acts, t->head + lay.n_shared, lay.n_shared, T - lay.n_shared);
            for (int k = 0, off = lay.n_shared; k < lay.n_seg; off += t->pack_len[k], k++) {
                const int s = t->pack_s[k], m = t->pack_len[k];
                const float *lp_now = t->head + off;
                const float *old = mb > 0 ? t->old_logp + (size_t)s * T_max : lp_now;
                if (mb == 0) memcpy(t->logp, lp_now, sizeof(float) * (size_t)m), old = t->logp;
                grpo_token_grads(lp_now, old, cf->kl_coef > 0 ? t->ref_logp + (size_t)s * T_max : NULL, t->adv[s], m,
                                 1.0f / ((float)n_tok * tau), &lp, t->dlogp + off, &st);
                t->trained_tokens += n_prompt[pi] + m - 1;  // the tokens of its own sequence
            }
            if (lm_backward(&t->p, &t->g, &t->acts, &t->mc, t->seq_tok, t->seq_tgt, t->dlogp, T, e)) return TRL_ERR;
        }
        norm_sum += optimizer_step(t, lr, t->step * cf->mini_batches + mb + 1);
    }
    double t3 = trl_now();
    long tokens = 0;
    for (int s = 0; s < S; s++) tokens += n_prompt[s / G] + t->ro.out[s].n_tok;
    cJSON_AddNumberToObject(mx, "reward_mean", r_sum / S);
    cJSON_AddNumberToObject(mx, "exact_match", (double)n_exact / S);
    cJSON_AddNumberToObject(mx, "format_valid", (double)n_fmt / S);
    cJSON_AddNumberToObject(mx, "kl", st.n ? st.kl / st.n : 0);
    cJSON_AddNumberToObject(mx, "entropy", ent_n ? ent / ent_n : 0);
    cJSON_AddNumberToObject(mx, "clip_frac", st.n ? st.clipped / st.n : 0);
    cJSON_AddNumberToObject(mx, "ratio_mean", st.n ? st.ratio / st.n : 0);
    cJSON_AddNumberToObject(mx, "loss", st.n ? st.loss / st.n : 0);
    cJSON_AddNumberToObject(mx, "response_len", len_sum / S);
    cJSON_AddNumberToObject(mx, "zero_std_frac", (double)zero_std / B);
    cJSON_AddNumberToObject(mx, "lr", lr);
    cJSON_AddNumberToObject(mx, "grad_norm", norm_sum / cf->mini_batches);
    cJSON_AddNumberToObject(mx, "time_rollout", t1 - t0);
    cJSON_AddNumberToObject(mx, "time_reference", t2 - t1);
    cJSON_AddNumberToObject(mx, "time_update", t3 - t2);
    cJSON_AddNumberToObject(mx, "tokens", (double)tokens);
    return TRL_OK;
}

int trainer_step(trainer *t, cJSON *mx, trl_err *e) {
    if (trainer_done(t)) return trl_errf(e, "trainer: all %d steps done", t->total_steps);
    double t0 = trl_now();
    t->ro.abort = t->abort;
    int rc = t->cfg.method == TRAIN_GRPO ? step_grpo(t, mx, e) : step_sft(t, mx, e);
    if (rc && aborted(t)) return trl_errf(e, "trainer: step %d stopped", t->step + 1), TRL_ABORTED;
    if (rc) return rc;
    t->step++;
    double dt = trl_now() - t0;
    const cJSON *tok = cJSON_GetObjectItem(mx, "tokens");
    cJSON_AddNumberToObject(mx, "step", t->step);
    cJSON_AddNumberToObject(mx, "total_steps", t->total_steps);
    cJSON_AddNumberToObject(mx, "epoch", (double)((long)(t->step - 1) * t->cfg.batch_size / t->n_train) + 1);
    cJSON_AddNumberToObject(mx, "step_time", dt);
    if (tok) cJSON_AddNumberToObject(mx, "tokens_per_s", tok->valuedouble / dt);
    return TRL_OK;
}

int trainer_eval(trainer *t, cJSON *mx, trl_err *e) {
    int n = t->n_held, done = 0, n_exact = 0, n_fmt = 0;
    t->ro.abort = t->abort;
    double r_sum = 0;
    while (done < n) {
        int k = n - done < t->ro.max_seqs ? n - done : t->ro.max_seqs;
        const int32_t *prompts[64];
        int n_prompt[64];
        if (k > 64) k = 64;
        for (int i = 0; i < k; i++) {
            const task *tk = &t->tasks->v[t->held_idx[done + i]];
            prompts[i] = tk->prompt;
            n_prompt[i] = tk->n_prompt;
        }
        if (rollout_run(&t->ro, prompts, n_prompt, k, 1, 0.0f, 0, e)) return aborted(t) ? TRL_ABORTED : TRL_ERR;
        for (int i = 0; i < k; i++) {
            double r;
            int ex, fm;
            score_sample(t, t->ro.out[i].text, t->tasks->v[t->held_idx[done + i]].gold, &r, &ex, &fm);
            r_sum += r, n_exact += ex, n_fmt += fm;
        }
        done += k;
    }
    cJSON_AddNumberToObject(mx, "eval_reward_mean", n ? r_sum / n : 0);
    cJSON_AddNumberToObject(mx, "eval_exact_match", n ? (double)n_exact / n : 0);
    cJSON_AddNumberToObject(mx, "eval_format_valid", n ? (double)n_fmt / n : 0);
    cJSON_AddNumberToObject(mx, "eval_n", n);
    return TRL_OK;
}
