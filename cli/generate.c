// generate.c: `toolrl generate`, `toolrl tokenize` and `toolrl info`: load a model, encode
// a prompt (optionally through the chat template), generate (model/generate.h), print as it goes.
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "chat.h"
#include "cli.h"
#include "generate.h"
#include "model.h"
#include "sampler.h"
#include "tokenizer.h"

static int load_or_die(model *m, const char *path) {
    trl_err e = {{0}};
    if (!path) {
        fprintf(stderr, "toolrl: --model PATH is required\n");
        return 2;
    }
    if (model_load(m, path, &e)) {
        fprintf(stderr, "toolrl: cannot load model: %s\n", e.msg);
        return 1;
    }
    return 0;
}

// Encodes text into a malloc'd id array; *n gets the count.
static int32_t *encode_alloc(const tokenizer *t, const char *text, int special, int *n) {
    int need = tokenizer_encode(t, text, strlen(text), special, NULL, 0);
    if (need < 0) return NULL;
    int32_t *ids = malloc(sizeof(int32_t) * (size_t)(need + 1));
    if (!ids) return NULL;
    *n = tokenizer_encode(t, text, strlen(text), special, ids, need + 1);
    return ids;
}

int cli_generate(int argc, char **argv) {
    static const char *const known[] = {"--model", "--prompt", "--chat!", "--system", "-n", "--temp", "--top-k",
                                        "--top-p", "--seed", "--threads", "--ref!", "--ctx", NULL};
    cli_check_opts(argc, argv, known);
    const char *prompt = cli_opt(argc, argv, "--prompt", NULL);
    if (!prompt) {
        fprintf(stderr, "toolrl generate: --prompt TEXT is required\n");
        return 2;
    }
    cli_set_threads((int)cli_opt_int(argc, argv, "--threads", 2));
    model m;
    int rc = load_or_die(&m, cli_opt(argc, argv, "--model", NULL));
    if (rc) return rc;
    char *text = NULL;
    if (cli_flag(argc, argv, "--chat")) {
        chat_msg msgs[2];
        int n = 0;
        const char *sys = cli_opt(argc, argv, "--system", NULL);
        if (sys) msgs[n++] = (chat_msg){"system", sys};
        msgs[n++] = (chat_msg){"user", prompt};
        text = chat_render(m.chat_template, msgs, n, 1);
    } else {
        text = strdup(prompt);
    }
    int n_prompt = 0;
    int32_t *ids = text ? encode_alloc(m.tok, text, 1, &n_prompt) : NULL;
    if (!ids || n_prompt == 0) {
        fprintf(stderr, "toolrl generate: could not encode the prompt\n");
        free(text);
        model_free(&m);
        return 1;
    }
    int n_gen = (int)cli_opt_int(argc, argv, "-n", 128);
    int n_ctx = (int)cli_opt_int(argc, argv, "--ctx", n_prompt + n_gen + 1);
    generator g;
    trl_err e = {{0}};
    if (generator_init(&g, &m, cli_flag(argc, argv, "--ref") ? &ops_ref : &ops_cpu, 1, n_ctx, 256, &e) ||
        generator_start(&g, 0,
                        &(gen_params){.prompt = ids,
                                      .n_prompt = n_prompt,
                                      .sp = {.temperature = (float)cli_opt_float(argc, argv, "--temp", 0.0),
                                             .top_k = (int)cli_opt_int(argc, argv, "--top-k", 0),
                                             .top_p = (float)cli_opt_float(argc, argv, "--top-p", 1.0),
                                             .seed = (uint64_t)cli_opt_int(argc, argv, "--seed", 42)},
                                      .max_tokens = n_gen},
                        &e)) {
        fprintf(stderr, "toolrl generate: %s\n", e.msg);
        rc = 1;
    }
    size_t shown = 0;  // print the text as it becomes final
    while (!rc && g.slots[0].state != GEN_DONE) {
        if (generator_step(&g, &e) < 0) {
            fprintf(stderr, "\ntoolrl generate: %s\n", e.msg);
            rc = 1;
        }
        const gen_slot *s = &g.slots[0];
        fwrite(s->text + shown, 1, s->safe - shown, stdout);
        fflush(stdout);
        shown = s->safe;
    }
    fputc('\n', stdout);
    if (g.m) generator_free(&g);
    free(ids);
    free(text);
    model_free(&m);
    return rc;
}

int cli_tokenize(int argc, char **argv) {
    static const char *const known[] = {"--model", "--text", "--special!", NULL};
    cli_check_opts(argc, argv, known);
    const char *text = cli_opt(argc, argv, "--text", NULL);
    if (!text) {
        fprintf(stderr, "toolrl tokenize: --text TEXT is required\n");
        return 2;
    }
    model m;
    int rc = load_or_die(&m, cli_opt(argc, argv, "--model", NULL));
    if (rc) return rc;
    int n = 0;
    int32_t *ids = encode_alloc(m.tok, text, cli_flag(argc, argv, "--special"), &n);
    for (int i = 0; ids && i < n; i++) printf("%s%d", i ? " " : "", ids[i]);
    printf("\n");
    free(ids);
    model_free(&m);
    return ids ? 0 : 1;
}

int cli_info(int argc, char **argv) {
    static const char *const known[] = {"--model", NULL};
    cli_check_opts(argc, argv, known);
    model m;
    int rc = load_or_die(&m, cli_opt(argc, argv, "--model", NULL));
    if (rc) return rc;
    const model_config *c = &m.cfg;
    printf("arch %s\nvocab %d\nembd %d\nlayers %d\nheads %d\nkv_heads %d\nhead_dim %d\nff %d\nctx %d\n"
           "rope_theta %g\nrms_eps %g\nrope %s\ntied %d\nqkv_bias %d\nweights %s\n",
           c->arch == MODEL_ARCH_LLAMA ? "llama" : "qwen2", c->n_vocab, c->n_embd, c->n_layer, c->n_head,
           c->n_head_kv, c->head_dim, c->n_ff, c->n_ctx, c->rope_theta, c->rms_eps,
           c->rope == ROPE_NORM ? "norm" : "neox", c->tied_embeddings, c->has_qkv_bias,
           m.layers[0].wq.type == 0 ? "f32" : "quantized");
    model_free(&m);
    return 0;
}
