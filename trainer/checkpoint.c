// checkpoint.c: Hugging Face checkpoint directories for training runs (see checkpoint.h).
#include "trainer/checkpoint.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "model/quant.h"
#include "model/safetensors.h"
#include "model/tokenizer.h"

#define MAX_TENSORS_PER_LAYER 12

// One parameter tensor: its HF name, where it lives in lm_params, its shape, and whether
// its rows are RoPE-permuted (q/k of a GGUF llama base: n_heads heads of head_dim rows).
typedef struct {
    char name[96];
    float *data;
    int64_t rows, cols;
    int perm_heads;  // 0: stored as is
} ptensor;

static int list_tensors(const lm_params *p, const model_config *c, ptensor *out) {
    int n = 0, C = c->n_embd, F = c->n_ff, QD = c->n_head * c->head_dim, KVD = c->n_head_kv * c->head_dim;
    int perm = c->rope == ROPE_NORM;
#define ADD(nm, ptr, r, cc, ph)                                   \
    do {                                                          \
        snprintf(out[n].name, sizeof(out[n].name), "%s", nm);     \
        out[n].data = (ptr), out[n].rows = (r), out[n].cols = (cc); \
        out[n].perm_heads = (ph);                                 \
        n++;                                                      \
    } while (0)
    ADD("model.embed_tokens.weight", p->wte, c->n_vocab, C, 0);
    ADD("model.norm.weight", p->out_norm, 1, C, 0);
    if (!c->tied_embeddings) ADD("lm_head.weight", p->wout, c->n_vocab, C, 0);
    char nm[96];
    for (int l = 0; l < c->n_layer; l++) {
#define L(s) (snprintf(nm, sizeof(nm), "model.layers.%d.%s", l, s), nm)
        ADD(L("input_layernorm.weight"), p->attn_norm + (size_t)l * C, 1, C, 0);
        ADD(L("self_attn.q_proj.weight"), p->wq + (size_t)l * QD * C, QD, C, perm ? c->n_head : 0);
        ADD(L("self_attn.k_proj.weight"), p->wk + (size_t)l * KVD * C, KVD, C, perm ? c->n_head_kv : 0);
        ADD(L("self_attn.v_proj.weight"), p->wv + (size_t)l * KVD * C, KVD, C, 0);
        ADD(L("self_attn.o_proj.weight"), p->wo + (size_t)l * C * QD, C, QD, 0);
        if (c->has_qkv_bias) {
            ADD(L("self_attn.q_proj.bias"), p->bq + (size_t)l * QD, 1, QD, perm ? -c->n_head : 0);
            ADD(L("self_attn.k_proj.bias"), p->bk + (size_t)l * KVD, 1, KVD, perm ? -c->n_head_kv : 0);
            ADD(L("self_attn.v_proj.bias"), p->bv + (size_t)l * KVD, 1, KVD, 0);
        }
        ADD(L("post_attention_layernorm.weight"), p->ffn_norm + (size_t)l * C, 1, C, 0);
        ADD(L("mlp.gate_proj.weight"), p->w_gate + (size_t)l * F * C, F, C, 0);
        ADD(L("mlp.up_proj.weight"), p->w_up + (size_t)l * F * C, F, C, 0);
        ADD(L("mlp.down_proj.weight"), p->w_down + (size_t)l * C * F, C, F, 0);
#undef L
    }
#undef ADD
    return n;
}

// GGUF llama q/k rows are permuted per head: GGUF row 2b + a holds HF row a·(hd/2) + b.
// to_hf 1 maps GGUF order to HF order, 0 the other way. A bias is a (1, heads·hd) tensor:
// perm_heads < 0 marks it, and each "row" is then one element.
static void permute_rows(float *dst, const float *src, const ptensor *t, int head_dim, int to_hf) {
    int heads = t->perm_heads < 0 ? -t->perm_heads : t->perm_heads;
    int64_t w = t->perm_heads < 0 ? 1 : t->cols, half = head_dim / 2;
    for (int h = 0; h < heads; h++)
        for (int r = 0; r < head_dim; r++) {
            int64_t hf = (int64_t)h * head_dim + r, gg = (int64_t)h * head_dim + 2 * (r % half) + r / half;
            const float *s = src + (to_hf ? gg : hf) * w;
            float *d = dst + (to_hf ? hf : gg) * w;
            memcpy(d, s, sizeof(float) * (size_t)w);
        }
}

static int write_text(const char *path, const char *text, trl_err *e) {
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (fd < 0) return trl_errf(e, "%s: %s", path, strerror(errno));
    size_t n = strlen(text), done = 0;
    while (done < n) {
        ssize_t w = write(fd, text + done, n - done);
        if (w <= 0) {
            close(fd);
            return trl_errf(e, "%s: write failed: %s", path, strerror(errno));
        }
        done += (size_t)w;
    }
    if (fsync(fd) || close(fd)) return trl_errf(e, "%s: fsync failed", path);
    return TRL_OK;
}

static int write_json(const char *dir, const char *name, cJSON *o, trl_err *e) {
    char path[1200];
    snprintf(path, sizeof(path), "%s/%s", dir, name);
    char *s = cJSON_Print(o);
    cJSON_Delete(o);
    if (!s) return trl_errf(e, "out of memory");
    int rc = write_text(path, s, e);
    free(s);
    return rc;
}

static int rm_entry(const char *p, const struct stat *sb, int flag, struct FTW *ftw) {
    (void)sb, (void)flag, (void)ftw;
    return remove(p);
}

static void rm_tree(const char *dir) { nftw(dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS); }

static int fsync_dir(const char *dir) {
    int fd = open(dir, O_RDONLY | O_DIRECTORY);
    if (fd < 0) return -1;
    int rc = fsync(fd);
    close(fd);
    return rc;
}

static char *token_text(const tokenizer *t, int32_t id) {
    if (id < 0) return NULL;
    char buf[256];
    int n = tokenizer_decode(t, id, 1, buf, sizeof(buf));
    return n > 0 && n < (int)sizeof(buf) ? strndup(buf, (size_t)n) : NULL;
}

static cJSON *config_json(const model *base) {
    const model_config *c = &base->cfg;
    int qwen = c->arch == MODEL_ARCH_QWEN2;
    cJSON *o = cJSON_CreateObject();
    cJSON *a = cJSON_AddArrayToObject(o, "architectures");
    cJSON_AddItemToArray(a, cJSON_CreateString(qwen ? "Qwen2ForCausalLM" : "LlamaForCausalLM"));
    cJSON_AddStringToObject(o, "model_type", qwen ? "qwen2" : "llama");
    cJSON_AddNumberToObject(o, "hidden_size", c->n_embd);
    cJSON_AddNumberToObject(o, "intermediate_size", c->n_ff);
    cJSON_AddNumberToObject(o, "num_attention_heads", c->n_head);
    cJSON_AddNumberToObject(o, "num_key_value_heads", c->n_head_kv);
    cJSON_AddNumberToObject(o, "num_hidden_layers", c->n_layer);
    cJSON_AddNumberToObject(o, "head_dim", c->head_dim);
    cJSON_AddNumberToObject(o, "rms_norm_eps", c->rms_eps);
    cJSON_AddNumberToObject(o, "rope_theta", c->rope_theta);
    cJSON_AddNumberToObject(o, "vocab_size", c->n_vocab);
    cJSON_AddNumberToObject(o, "max_position_embeddings", c->n_ctx > 0 ? c->n_ctx : 2048);
    cJSON_AddBoolToObject(o, "tie_word_embeddings", c->tied_embeddings);
    cJSON_AddStringToObject(o, "hidden_act", "silu");
    if (!qwen) cJSON_AddBoolToObject(o, "attention_bias", 0);
    int32_t bos = tokenizer_bos(base->tok), eos = tokenizer_eos(base->tok);
    if (bos >= 0) cJSON_AddNumberToObject(o, "bos_token_id", bos);
    if (eos >= 0) cJSON_AddNumberToObject(o, "eos_token_id", eos);
    cJSON_AddStringToObject(o, "torch_dtype", "float32");
    return o;
}

static cJSON *tokenizer_config_json(const model *base) {
    cJSON *o = cJSON_CreateObject();
    char *bos = token_text(base->tok, tokenizer_bos(base->tok)), *eos = token_text(base->tok, tokenizer_eos(base->tok));
    if (bos) cJSON_AddStringToObject(o, "bos_token", bos);
    else cJSON_AddNullToObject(o, "bos_token");
    if (eos) cJSON_AddStringToObject(o, "eos_token", eos);
    cJSON_AddBoolToObject(o, "add_bos_token", tokenizer_add_bos(base->tok));
    cJSON_AddStringToObject(o, "tokenizer_class", "PreTrainedTokenizerFast");
    cJSON_AddNumberToObject(o, "model_max_length", base->cfg.n_ctx > 0 ? base->cfg.n_ctx : 2048);
    if (base->chat_template) cJSON_AddStringToObject(o, "chat_template", base->chat_template);
    free(bos), free(eos);
    return o;
}

static int save_host(const char *dir, const model *base, const lm_params *p, const lm_params *m, const lm_params *v,
                     const checkpoint_state *st, trl_err *e);

// The parameters and moments as host memory (lm_params_host_begin), then save_host.
int checkpoint_save(const char *dir, const model *base, const lm_params *p, const lm_params *m, const lm_params *v,
                    const checkpoint_state *st, trl_err *e) {
    const model_config *c = &base->cfg;
    lm_params hp = {0}, hm = {0}, hv = {0};
    int opt = m && v && m->mem && v->mem;
    int rc = lm_params_host_begin(p, c, 1, &hp, e) ||
             (opt && (lm_params_host_begin(m, c, 1, &hm, e) || lm_params_host_begin(v, c, 1, &hv, e)))
                 ? TRL_ERR
                 : save_host(dir, base, &hp, opt ? &hm : NULL, opt ? &hv : NULL, st, e);
    lm_params_host_end(p, &hp);
    if (opt) lm_params_host_end(m, &hm), lm_params_host_end(v, &hv);
    return rc;
}

static int save_host(const char *dir, const model *base, const lm_params *p, const lm_params *m, const lm_params *v,
                     const checkpoint_state *st, trl_err *e) {
    const model_config *c = &base->cfg;
    int cap = 3 + c->n_layer * MAX_TENSORS_PER_LAYER, rc = TRL_ERR;
    ptensor *pt = calloc((size_t)cap, sizeof(ptensor));
    safetensors_wtensor *wt = calloc((size_t)cap, sizeof(safetensors_wtensor));
    int64_t(*shapes)[2] = calloc((size_t)cap, sizeof(*shapes));
    float **tmp = calloc((size_t)cap, sizeof(float *));
    char tmpdir[1100], path[1200], old[1100];
    snprintf(tmpdir, sizeof(tmpdir), "%s.tmp", dir);
    snprintf(old, sizeof(old), "%s.old", dir);
    if (!pt || !wt || !shapes || !tmp) {
        trl_errf(e, "checkpoint: out of memory");
        goto out;
    }
    rm_tree(tmpdir);  // left over by a crash
    if (mkdir(tmpdir, 0755)) {
        trl_errf(e, "%s: %s", tmpdir, strerror(errno));
        goto out;
    }
    int n = list_tensors(p, c, pt);
    for (int i = 0; i < n; i++) {
        const float *data = pt[i].data;
        if (pt[i].perm_heads) {
            tmp[i] = malloc(sizeof(float) * (size_t)(pt[i].rows * pt[i].cols));
            if (!tmp[i]) {
                trl_errf(e, "checkpoint: out of memory");
                goto out;
            }
            permute_rows(tmp[i], pt[i].data, &pt[i], c->head_dim, 1);
            data = tmp[i];
        }
        int vec = pt[i].rows == 1;
        shapes[i][0] = vec ? pt[i].cols : pt[i].rows;
        shapes[i][1] = pt[i].cols;
        wt[i] = (safetensors_wtensor){pt[i].name, QTYPE_F32, vec ? 1 : 2, shapes[i], data};
    }
    static const char *const meta[] = {"format", "pt", NULL};
    snprintf(path, sizeof(path), "%s/model.safetensors", tmpdir);
    if (safetensors_write(path, wt, n, meta, e)) goto out;
    if (m && v && m->mem && v->mem) {
        int64_t flat = (int64_t)p->n;
        safetensors_wtensor ow[2] = {{"exp_avg", QTYPE_F32, 1, &flat, m->mem}, {"exp_avg_sq", QTYPE_F32, 1, &flat, v->mem}};
        static const char *const ometa[] = {"layout", "toolrl lm_params (flat, the base model's row order)", NULL};
        snprintf(path, sizeof(path), "%s/optimizer.safetensors", tmpdir);
        if (safetensors_write(path, ow, 2, ometa, e)) goto out;
    }
    if (write_json(tmpdir, "config.json", config_json(base), e)) goto out;
    cJSON *gen = cJSON_CreateObject();
    if (tokenizer_bos(base->tok) >= 0) cJSON_AddNumberToObject(gen, "bos_token_id", tokenizer_bos(base->tok));
    if (tokenizer_eos(base->tok) >= 0) cJSON_AddNumberToObject(gen, "eos_token_id", tokenizer_eos(base->tok));
    if (write_json(tmpdir, "generation_config.json", gen, e)) goto out;
    if (write_json(tmpdir, "tokenizer_config.json", tokenizer_config_json(base), e)) goto out;
    snprintf(path, sizeof(path), "%s/tokenizer.json", tmpdir);
    if (tokenizer_write_json(base->tok, path, e)) goto out;
    cJSON *ts = cJSON_CreateObject();
    cJSON_AddStringToObject(ts, "format", "toolrl-checkpoint-1");
    cJSON_AddNumberToObject(ts, "step", st ? st->step : 0);
    cJSON_AddNumberToObject(ts, "trained_tokens", st ? (double)st->trained_tokens : 0);
    cJSON_AddNumberToObject(ts, "seed", st ? (double)st->seed : 0);
    cJSON_AddStringToObject(ts, "rope_layout", c->rope == ROPE_NORM ? "gguf-norm" : "neox");
    cJSON *cfgj = st && st->config_json ? cJSON_Parse(st->config_json) : NULL;
    cJSON *mj = st && st->metrics_json ? cJSON_Parse(st->metrics_json) : NULL;
    cJSON_AddItemToObject(ts, "config", cfgj ? cfgj : cJSON_CreateNull());
    cJSON_AddItemToObject(ts, "metrics", mj ? mj : cJSON_CreateNull());
    if (write_json(tmpdir, "trainer_state.json", ts, e)) goto out;
    if (fsync_dir(tmpdir)) {
        trl_errf(e, "%s: fsync failed", tmpdir);
        goto out;
    }
    // Swap in: an existing checkpoint of that name is moved aside first, removed after.
    struct stat sb;
    int had_old = stat(dir, &sb) == 0;
    if (had_old) {
        rm_tree(old);
        if (rename(dir, old)) {
            trl_errf(e, "%s: %s", dir, strerror(errno));
            goto out;
        }
    }
    if (rename(tmpdir, dir)) {
        trl_errf(e, "%s: rename failed: %s", dir, strerror(errno));
        if (had_old) rename(old, dir);
        goto out;
    }
    char parent[1100];
    snprintf(parent, sizeof(parent), "%s", dir);
    char *slash = strrchr(parent, '/');
    if (slash) *slash = 0;
    (void)fsync_dir(slash ? parent : ".");
    if (had_old) rm_tree(old);
    rc = TRL_OK;
out:
    if (rc) rm_tree(tmpdir);
    for (int i = 0; tmp && i < cap; i++) free(tmp[i]);
    free(tmp), free(shapes), free(wt), free(pt);
    return rc;
}

static int load_flat(const safetensors_file *f, const char *name, float *dst, size_t n, trl_err *e) {
    const safetensors_tensor *t = safetensors_find(f, name);
    if (!t) return trl_errf(e, "%s: no tensor %s", f->path, name);
    if (t->type != QTYPE_F32 || (size_t)t->numel != n)
        return trl_errf(e, "%s: %s is %s with %lld elements, expected F32 with %zu", f->path, name,
                        safetensors_dtype_name(t->type), (long long)t->numel, n);
    memcpy(dst, t->data, sizeof(float) * n);
    return TRL_OK;
}

static int load_host(const char *dir, const model_config *c, lm_params *p, lm_params *m, lm_params *v,
                     checkpoint_state *st, trl_err *e);

// Reads into host memory (lm_params_host_begin) and uploads what was read.
int checkpoint_load(const char *dir, const model_config *c, lm_params *p, lm_params *m, lm_params *v,
                    checkpoint_state *st, trl_err *e) {
    lm_params hp = {0}, hm = {0}, hv = {0};
    int opt = m && v;
    int rc = lm_params_host_begin(p, c, 0, &hp, e) ||
             (opt && (lm_params_host_begin(m, c, 0, &hm, e) || lm_params_host_begin(v, c, 0, &hv, e)))
                 ? TRL_ERR
                 : load_host(dir, c, &hp, opt ? &hm : NULL, opt ? &hv : NULL, st, e);
    if (rc == TRL_OK) {
        lm_params_host_commit(p, &hp);
        if (opt) lm_params_host_commit(m, &hm), lm_params_host_commit(v, &hv);
    } else {
        lm_params_host_end(p, &hp);
        if (opt) lm_params_host_end(m, &hm), lm_params_host_end(v, &hv);
    }
    return rc;
}

static int load_host(const char *dir, const model_config *c, lm_params *p, lm_params *m, lm_params *v,
                     checkpoint_state *st, trl_err *e) {
    memset(st, 0, sizeof(*st));
    char path[1200];
    int cap = 3 + c->n_layer * MAX_TENSORS_PER_LAYER, rc = TRL_ERR;
    ptensor *pt = calloc((size_t)cap, sizeof(ptensor));
    safetensors_file f = {0};
    if (!pt) return trl_errf(e, "checkpoint: out of memory");
    snprintf(path, sizeof(path), "%s/model.safetensors", dir);
    if (safetensors_open(&f, path, e)) goto out;
    int n = list_tensors(p, c, pt);
    for (int i = 0; i < n; i++) {
        size_t cnt = (size_t)(pt[i].rows * pt[i].cols);
        if (load_flat(&f, pt[i].name, pt[i].data, cnt, e)) goto out;
        if (pt[i].perm_heads) {
            float *t = malloc(sizeof(float) * cnt);
            if (!t) {
                trl_errf(e, "checkpoint: out of memory");
                goto out;
            }
            memcpy(t, pt[i].data, sizeof(float) * cnt);
            permute_rows(pt[i].data, t, &pt[i], c->head_dim, 0);
            free(t);
        }
    }
    safetensors_close(&f);
    if (m && v) {
        snprintf(path, sizeof(path), "%s/optimizer.safetensors", dir);
        if (safetensors_open(&f, path, e) || load_flat(&f, "exp_avg", m->mem, m->n, e) ||
            load_flat(&f, "exp_avg_sq", v->mem, v->n, e))
            goto out;
        safetensors_close(&f);
    }
    snprintf(path, sizeof(path), "%s/trainer_state.json", dir);
    size_t len;
    char *txt = trl_read_file(path, &len, e);
    if (!txt) goto out;
    cJSON *ts = cJSON_ParseWithLength(txt, len);
    free(txt);
    const cJSON *stp = cJSON_GetObjectItem(ts, "step"), *lay = cJSON_GetObjectItem(ts, "rope_layout");
    if (!cJSON_IsNumber(stp) || !cJSON_IsString(lay)) {
        cJSON_Delete(ts);
        trl_errf(e, "%s: not a toolrl trainer state", path);
        goto out;
    }
    if (strcmp(lay->valuestring, c->rope == ROPE_NORM ? "gguf-norm" : "neox") != 0) {
        cJSON_Delete(ts);
        trl_errf(e, "%s: written for another base model layout (%s)", path, lay->valuestring);
        goto out;
    }
    st->step = stp->valueint;
    const cJSON *x = cJSON_GetObjectItem(ts, "trained_tokens");
    st->trained_tokens = cJSON_IsNumber(x) ? (int64_t)x->valuedouble : 0;
    x = cJSON_GetObjectItem(ts, "seed");
    st->seed = cJSON_IsNumber(x) ? (uint64_t)x->valuedouble : 0;
    x = cJSON_GetObjectItem(ts, "config");
    st->config_json = cJSON_IsObject(x) ? cJSON_PrintUnformatted(x) : NULL;
    x = cJSON_GetObjectItem(ts, "metrics");
    st->metrics_json = cJSON_IsObject(x) ? cJSON_PrintUnformatted(x) : NULL;
    cJSON_Delete(ts);
    rc = TRL_OK;
out:
    safetensors_close(&f);
    free(pt);
    return rc;
}

void checkpoint_state_free(checkpoint_state *st) {
    free(st->config_json);
    free(st->metrics_json);
    memset(st, 0, sizeof(*st));
}
