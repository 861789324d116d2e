// generate.c: `toolrl generate`, `toolrl tokenize` and `toolrl info`: load a model, encode
// a prompt (optionally through the chat template), generate (model/generate.h), print as it goes.
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "model/generate.h"
#include "model/model.h"
#include "model/sampler.h"
#include "model/tokenizer.h"
#include "protocol/chat.h"

// Encodes text into a malloc'd id array; *n gets the count.
static int32_t *encode_alloc(const tokenizer *t, const char *text, int special, int *n) {
    int need = tokenizer_encode(t, text, strlen(text), special, NULL, 0);
    if (need < 0) return NULL;
    int32_t *ids = malloc(sizeof(int32_t) * (size_t)(need + 1));
    if (!ids) return NULL;
    *n = tokenizer_encode(t, text, strlen(text), special, ids, need + 1);
    return ids;
}

static const cli_option GENERATE_OPTIONS[] = {
    CLI_OPTION_MODEL,
    {.name = "--prompt", .arg = "TEXT", .required = 1, .help = "the prompt"},
    {.name = "--chat", .help = "wrap the prompt in the model's chat template as a user message"},
    {.name = "--system", .arg = "TEXT", .help = "with --chat: a system message first (default: none)"},
    {.name = "-n", .arg = "N", .def = "128", .help = "most tokens to generate"},
    {.name = "--temp", .arg = "T", .def = "0", .help = "sampling temperature (0: greedy)"},
    {.name = "--top-k", .arg = "K", .def = "0", .help = "sample from the K likeliest tokens (0: all)"},
    {.name = "--top-p", .arg = "P", .def = "1", .help = "nucleus sampling: the likeliest tokens up to probability P"},
    {.name = "--seed", .arg = "S", .def = "42", .help = "sampling seed"},
    CLI_OPTION_THREADS,
    CLI_OPTION_DEVICE,
    {.name = "--ref", .help = "use the reference (slow, plain C) kernels (instead of --device)"},
    {.name = "--ctx", .arg = "N", .help = "context length (computed: prompt tokens + n + 1)"},
    {0}};

static int cli_generate(const cli_args *a) {
    const char *prompt = cli_get(a, "--prompt");
    cli_set_threads((int)cli_get_int(a, "--threads"));
    device dev;
    if (cli_device_open(a, &dev)) return 2;
    model m;
    if (cli_model_load(a, &m)) return 1;
    char *text = NULL;
    if (cli_get_flag(a, "--chat")) {
        chat_msg msgs[2];
        int n = 0;
        const char *sys = cli_get(a, "--system");
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
    int n_gen = (int)cli_get_int(a, "-n");
    int n_ctx = cli_get(a, "--ctx") ? (int)cli_get_int(a, "--ctx") : n_prompt + n_gen + 1;
    generator g;
    trl_err e = {{0}};
    int rc = 0;
    const ops *kernels = cli_get_flag(a, "--ref") ? &ops_ref : dev.be;
    if (generator_init(&g, &m, kernels, 1, n_ctx, 256, &e) ||
        generator_start(&g, 0,
                        &(gen_params){.prompt = ids,
                                      .n_prompt = n_prompt,
                                      .sp = {.temperature = (float)cli_get_float(a, "--temp"),
                                             .top_k = (int)cli_get_int(a, "--top-k"),
                                             .top_p = (float)cli_get_float(a, "--top-p"),
                                             .seed = (uint64_t)cli_get_int(a, "--seed")},
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

const cli_command CLI_GENERATE = {.name = "generate",
                                  .summary = "Generate a completion of a prompt and print it as it comes.",
                                  .usage = "--model PATH --prompt TEXT [options]",
                                  .options = GENERATE_OPTIONS,
                                  .run = cli_generate};

static const cli_option TOKENIZE_OPTIONS[] = {
    CLI_OPTION_MODEL,
    {.name = "--text", .arg = "TEXT", .required = 1, .help = "the text to encode"},
    {.name = "--special", .help = "read special tokens (<|im_start|>, ...) in the text as themselves"},
    {0}};

static int cli_tokenize(const cli_args *a) {
    const char *text = cli_get(a, "--text");
    model m;
    if (cli_model_load(a, &m)) return 1;
    int n = 0;
    int32_t *ids = encode_alloc(m.tok, text, cli_get_flag(a, "--special"), &n);
    for (int i = 0; ids && i < n; i++) printf("%s%d", i ? " " : "", ids[i]);
    printf("\n");
    free(ids);
    model_free(&m);
    return ids ? 0 : 1;
}

const cli_command CLI_TOKENIZE = {.name = "tokenize",
                                  .summary = "Print the token ids of a text.",
                                  .usage = "--model PATH --text TEXT [--special]",
                                  .options = TOKENIZE_OPTIONS,
                                  .run = cli_tokenize};

static const cli_option INFO_OPTIONS[] = {CLI_OPTION_MODEL, {0}};

static int cli_info(const cli_args *a) {
    model m;
    if (cli_model_load(a, &m)) return 1;
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

const cli_command CLI_INFO = {.name = "info",
                              .summary = "Print a model's configuration.",
                              .usage = "--model PATH",
                              .options = INFO_OPTIONS,
                              .run = cli_info};
