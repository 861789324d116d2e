// model_hf.c: loading a Hugging Face model directory: config.json → model_config,
// model.safetensors (or a sharded index) → weights, tokenizer.json → tokenizer.
// HF checkpoints keep Q/K rows in their original order, so RoPE is always NEOX here.
// Every tensor's shape is checked against config.json before it is adopted; the mappings
// are handed to the model (m->maps), which unmaps them in model_free.
#include <cjson/cJSON.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "model/model.h"
#include "model/quant.h"
#include "model/safetensors.h"
#include "model/tokenizer.h"

// ---- config.json ----

static const cJSON *jget(const cJSON *o, const char *k) { return cJSON_GetObjectItemCaseSensitive(o, k); }

// An integer field in [lo, INT32_MAX]; def when absent or null (unless required).
static int cfg_int(const cJSON *root, const char *key, int def, int required, int *out, const char *path,
                   trl_err *e) {
    const cJSON *v = jget(root, key);
    if (!v || cJSON_IsNull(v)) {
        if (required) return trl_errf(e, "%s: missing \"%s\"", path, key);
        *out = def;
        return TRL_OK;
    }
    double d = cJSON_IsNumber(v) ? v->valuedouble : -1;
    if (!(d >= 0 && d <= INT32_MAX) || (double)(int)d != d)
        return trl_errf(e, "%s: \"%s\" is not a non-negative integer", path, key);
    *out = (int)d;
    return TRL_OK;
}

static int cfg_float(const cJSON *root, const char *key, double *out, const char *path, trl_err *e) {
    const cJSON *v = jget(root, key);
    if (!v || cJSON_IsNull(v)) return TRL_OK;  // keep the default
    if (!cJSON_IsNumber(v)) return trl_errf(e, "%s: \"%s\" is not a number", path, key);
    *out = v->valuedouble;
    return TRL_OK;
}

static int cfg_bool(const cJSON *root, const char *key, int def) {
    const cJSON *v = jget(root, key);
    return cJSON_IsBool(v) ? cJSON_IsTrue(v) : def;
}

// Rejects rope scaling schemes the engine does not implement ("default" / null are fine).
static int check_rope_type(const cJSON *o, const char *path, trl_err *e) {
    if (!o || cJSON_IsNull(o)) return TRL_OK;
    if (!cJSON_IsObject(o)) return trl_errf(e, "%s: rope scaling is not an object", path);
    const cJSON *t = jget(o, "rope_type");
    if (!t) t = jget(o, "type");
    if (!t || cJSON_IsNull(t)) return TRL_OK;
    if (!cJSON_IsString(t) || strcmp(t->valuestring, "default") != 0)
        return trl_errf(e, "%s: rope scaling \"%.40s\" is not supported (only plain RoPE)", path,
                        cJSON_IsString(t) ? t->valuestring : "?");
    return TRL_OK;
}

static int hf_read_config(model_config *c, const char *path, trl_err *e) {
    size_t len;
    char *buf = trl_read_file(path, &len, e);
    if (!buf) return TRL_ERR;
    cJSON *root = cJSON_ParseWithLength(buf, len);
    free(buf);
    int rc = TRL_ERR;
    if (!cJSON_IsObject(root)) {
        trl_errf(e, "%s: not a JSON object", path);
        goto done;
    }
    const cJSON *mt = jget(root, "model_type");
    const cJSON *archs = jget(root, "architectures");
    const cJSON *a0 = cJSON_IsArray(archs) ? cJSON_GetArrayItem(archs, 0) : NULL;
    const char *name = cJSON_IsString(mt) ? mt->valuestring : cJSON_IsString(a0) ? a0->valuestring : NULL;
    if (!name) {
        trl_errf(e, "%s: neither \"model_type\" nor \"architectures\" says what the model is", path);
        goto done;
    }
    if (strcmp(name, "llama") == 0 || strcmp(name, "LlamaForCausalLM") == 0) c->arch = MODEL_ARCH_LLAMA;
    else if (strcmp(name, "qwen2") == 0 || strcmp(name, "Qwen2ForCausalLM") == 0) c->arch = MODEL_ARCH_QWEN2;
    else {
        trl_errf(e, "%s: model type \"%.64s\" is not supported (llama, qwen2)", path, name);
        goto done;
    }
    if (cfg_int(root, "hidden_size", 0, 1, &c->n_embd, path, e) ||
        cfg_int(root, "num_hidden_layers", 0, 1, &c->n_layer, path, e) ||
        cfg_int(root, "num_attention_heads", 0, 1, &c->n_head, path, e) ||
        cfg_int(root, "num_key_value_heads", c->n_head, 0, &c->n_head_kv, path, e) ||
        cfg_int(root, "intermediate_size", 0, 1, &c->n_ff, path, e) ||
        cfg_int(root, "vocab_size", 0, 1, &c->n_vocab, path, e) ||
        cfg_int(root, "max_position_embeddings", 2048, 0, &c->n_ctx, path, e))
        goto done;
    if (c->n_head <= 0) {
        trl_errf(e, "%s: num_attention_heads must be positive", path);
        goto done;
    }
    const cJSON *hd = jget(root, "head_dim");
    if (!hd || cJSON_IsNull(hd)) {
        if (c->n_embd % c->n_head != 0) {
            trl_errf(e, "%s: hidden_size %d is not a multiple of %d heads and no head_dim is given", path, c->n_embd,
                     c->n_head);
            goto done;
        }
        c->head_dim = c->n_embd / c->n_head;
    } else if (cfg_int(root, "head_dim", 0, 1, &c->head_dim, path, e)) {
        goto done;
    }
    double eps = 1e-6, theta = 10000.0;
    const cJSON *rp = jget(root, "rope_parameters");
    if (cfg_float(root, "rms_norm_eps", &eps, path, e) || cfg_float(root, "rope_theta", &theta, path, e)) goto done;
    if (!jget(root, "rope_theta") && cJSON_IsObject(rp) && cfg_float(rp, "rope_theta", &theta, path, e)) goto done;
    if (check_rope_type(jget(root, "rope_scaling"), path, e) || check_rope_type(rp, path, e)) goto done;
    c->rms_eps = (float)eps;
    c->rope_theta = (float)theta;
    c->rope = ROPE_NEOX;
    c->has_qkv_bias = c->arch == MODEL_ARCH_QWEN2;
    c->tied_embeddings = cfg_bool(root, "tie_word_embeddings", 0);
    const cJSON *act = jget(root, "hidden_act");
    if (act && !(cJSON_IsString(act) && strcmp(act->valuestring, "silu") == 0)) {
        trl_errf(e, "%s: hidden_act \"%.40s\" is not supported (silu only)", path,
                 cJSON_IsString(act) ? act->valuestring : "?");
        goto done;
    }
    if (cfg_bool(root, "attention_bias", 0) && c->arch == MODEL_ARCH_LLAMA) {
        trl_errf(e, "%s: attention_bias=true is not supported for llama", path);
        goto done;
    }
    if (cfg_bool(root, "mlp_bias", 0)) {
        trl_errf(e, "%s: mlp_bias=true is not supported", path);
        goto done;
    }
    if (cfg_bool(root, "use_sliding_window", 0)) {
        trl_errf(e, "%s: sliding-window attention is not supported", path);
        goto done;
    }
    rc = TRL_OK;
done:
    cJSON_Delete(root);
    return rc;
}

// ---- tensors ----

typedef struct {
    model *m;
    const safetensors_set *set;
    const char *dir;
    trl_err *e;
} hf_ctx;

static void fmt_shape(char *buf, size_t cap, const int64_t *shape, int n) {
    size_t k = (size_t)snprintf(buf, cap, "[");
    for (int i = 0; i < n && k < cap; i++) k += (size_t)snprintf(buf + k, cap - k, i ? ", %lld" : "%lld", (long long)shape[i]);
    if (k < cap) snprintf(buf + k, cap - k, "]");
}

// Finds a tensor and checks its shape ([rows, cols], or [rows] when cols is 0). The data
// pointer is copied into an aligned owned buffer in the rare file whose offsets misalign it.
static const void *hf_want(hf_ctx *x, const char *name, int64_t rows, int64_t cols, uint32_t *type) {
    const safetensors_tensor *t = safetensors_set_find(x->set, name);
    if (!t) {
        trl_errf(x->e, "%s: missing tensor %s", x->dir, name);
        return NULL;
    }
    int64_t want[2] = {rows, cols};
    int nd = cols ? 2 : 1;
    if (t->n_dims != nd || t->shape[0] != rows || (nd == 2 && t->shape[1] != cols)) {
        char got[96], exp[64];
        fmt_shape(got, sizeof(got), t->shape, t->n_dims);
        fmt_shape(exp, sizeof(exp), want, nd);
        trl_errf(x->e, "%s: tensor %s has shape %s, but config.json implies %s", x->dir, name, got, exp);
        return NULL;
    }
    *type = t->type;
    size_t esize = t->type == QTYPE_F32 ? 4 : 2;
    if ((uintptr_t)t->data % esize == 0) return t->data;
    void *copy = malloc(t->nbytes ? t->nbytes : 1);
    if (!copy || model_own(x->m, copy)) {
        free(copy);
        trl_errf(x->e, "%s: out of memory", name);
        return NULL;
    }
    memcpy(copy, t->data, t->nbytes);
    return copy;
}

static int hf_mat(hf_ctx *x, model_tensor *dst, const char *name, int64_t rows, int64_t cols) {
    uint32_t type;
    const void *d = hf_want(x, name, rows, cols, &type);
    if (!d) return TRL_ERR;
    return model_tensor_adopt(x->m, dst, type, rows, cols, d, name, x->e);
}

static int hf_vec(hf_ctx *x, const float **dst, const char *name, int64_t n) {
    uint32_t type;
    const void *d = hf_want(x, name, n, 0, &type);
    if (!d) return TRL_ERR;
    return model_vector_adopt(x->m, dst, type, n, d, name, x->e);
}

static int hf_layer(hf_ctx *x, int l) {
    const model_config *c = &x->m->cfg;
    model_layer *L = &x->m->layers[l];
    int64_t C = c->n_embd, QD = (int64_t)c->n_head * c->head_dim, KVD = (int64_t)c->n_head_kv * c->head_dim,
            F = c->n_ff;
    char n[128];
#define NAME(s) (snprintf(n, sizeof(n), "model.layers.%d.%s", l, s), n)
    if (hf_vec(x, &L->attn_norm, NAME("input_layernorm.weight"), C) ||
        hf_mat(x, &L->wq, NAME("self_attn.q_proj.weight"), QD, C) ||
        hf_mat(x, &L->wk, NAME("self_attn.k_proj.weight"), KVD, C) ||
        hf_mat(x, &L->wv, NAME("self_attn.v_proj.weight"), KVD, C) ||
        hf_mat(x, &L->wo, NAME("self_attn.o_proj.weight"), C, QD) ||
        hf_vec(x, &L->ffn_norm, NAME("post_attention_layernorm.weight"), C) ||
        hf_mat(x, &L->w_gate, NAME("mlp.gate_proj.weight"), F, C) ||
        hf_mat(x, &L->w_up, NAME("mlp.up_proj.weight"), F, C) ||
        hf_mat(x, &L->w_down, NAME("mlp.down_proj.weight"), C, F))
        return TRL_ERR;
    if (c->has_qkv_bias &&
        (hf_vec(x, &L->bq, NAME("self_attn.q_proj.bias"), QD) || hf_vec(x, &L->bk, NAME("self_attn.k_proj.bias"), KVD) ||
         hf_vec(x, &L->bv, NAME("self_attn.v_proj.bias"), KVD)))
        return TRL_ERR;
#undef NAME
    return TRL_OK;
}

// The chat template, for information: chat_template.jinja, else tokenizer_config.json's
// "chat_template" (a string, or a list of {name, template} holding "default"). Never fails.
static char *hf_chat_template(const char *dir) {
    trl_err ignore;
    size_t len;
    char *p = trl_path_join(dir, "chat_template.jinja");
    char *buf = p ? trl_read_file(p, &len, &ignore) : NULL;
    free(p);
    if (buf) return buf;
    p = trl_path_join(dir, "tokenizer_config.json");
    buf = p ? trl_read_file(p, &len, &ignore) : NULL;
    free(p);
    if (!buf) return NULL;
    cJSON *root = cJSON_ParseWithLength(buf, len);
    free(buf);
    const cJSON *t = cJSON_IsObject(root) ? jget(root, "chat_template") : NULL;
    const char *s = NULL;
    if (cJSON_IsString(t)) {
        s = t->valuestring;
    } else if (cJSON_IsArray(t)) {
        const cJSON *it;
        cJSON_ArrayForEach(it, t) {
            const cJSON *nm = jget(it, "name"), *tp = jget(it, "template");
            if (cJSON_IsString(nm) && cJSON_IsString(tp) && strcmp(nm->valuestring, "default") == 0) s = tp->valuestring;
        }
    }
    char *out = NULL;
    if (s) {
        size_t n = strlen(s) + 1;
        out = malloc(n);
        if (out) memcpy(out, s, n);
    }
    cJSON_Delete(root);
    return out;
}

int model_load_hf_dir(model *m, const char *dir, trl_err *e) {
    memset(m, 0, sizeof(*m));
    safetensors_set set = {0};
    model_config *c = &m->cfg;
    char *p = trl_path_join(dir, "config.json");
    if (!p) return trl_errf(e, "out of memory");
    int r = hf_read_config(c, p, e);
    free(p);
    if (r != TRL_OK || model_config_validate(c, e) != TRL_OK) goto fail;
    if (safetensors_set_open_dir(&set, dir, e) != TRL_OK) goto fail;
    // The model owns the mappings from here on; the tensors keep pointing into them.
    m->maps = calloc((size_t)set.n_files, sizeof(void *));
    m->map_sizes = calloc((size_t)set.n_files, sizeof(size_t));
    if (!m->maps || !m->map_sizes) {
        trl_errf(e, "out of memory");
        goto fail;
    }
    for (int i = 0; i < set.n_files; i++) {
        m->maps[i] = safetensors_take_map(&set.files[i], &m->map_sizes[i]);
        m->n_maps++;
    }
    hf_ctx x = {m, &set, dir, e};
    int64_t V = c->n_vocab, C = c->n_embd;
    if (hf_mat(&x, &m->tok_embd, "model.embed_tokens.weight", V, C)) goto fail;
    if (!c->tied_embeddings && safetensors_set_find(&set, "lm_head.weight")) {
        if (hf_mat(&x, &m->output, "lm_head.weight", V, C)) goto fail;
    } else {
        c->tied_embeddings = 1;  // tied by config, or no lm_head in the checkpoint
        m->output = m->tok_embd;
    }
    if (hf_vec(&x, &m->out_norm, "model.norm.weight", C)) goto fail;
    m->layers = calloc((size_t)c->n_layer, sizeof(model_layer));
    if (!m->layers) {
        trl_errf(e, "out of memory");
        goto fail;
    }
    for (int l = 0; l < c->n_layer; l++)
        if (hf_layer(&x, l)) goto fail;
    safetensors_set_close(&set);  // names and tables only: the mappings belong to m

    p = trl_path_join(dir, "tokenizer.json");
    if (!p) {
        trl_errf(e, "out of memory");
        goto fail;
    }
    r = tokenizer_init_json(&m->tok, p, e);
    free(p);
    if (r != TRL_OK) goto fail;
    if (tokenizer_n_vocab(m->tok) > c->n_vocab) {
        trl_errf(e, "%s: tokenizer has %d tokens but the embedding only %d rows", dir, tokenizer_n_vocab(m->tok),
                 c->n_vocab);
        goto fail;
    }
    m->chat_template = hf_chat_template(dir);
    if (model_config_validate(c, e) != TRL_OK) goto fail;
    return TRL_OK;
fail:
    safetensors_set_close(&set);
    model_free(m);
    return TRL_ERR;
}
