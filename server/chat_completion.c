// chat_completion.c: POST /v1/chat/completions on top of the scheduler (continuous batching),
// toolprompt (the Tool-N1 prompt), constrain (token masks) and chat_response (reply parsing):
// one scheduler request per choice, answered whole (chat.completion) or as an SSE stream of
// chat.completion.chunk events (see chat_completion.h, docs/api.md).
#include "server/chat_completion.h"

#include <cjson/cJSON.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "base/strbuf.h"
#include "model/tokenizer.h"
#include "protocol/constrain.h"
#include "protocol/toolprompt.h"
#include "server/chat_request.h"
#include "server/chat_response.h"
#include "server/scheduler.h"

typedef struct completion completion;
// One chat completion: its request, the scheduler requests of its n choices, and, streaming,
// the SSE text made so far. Freed by completion_free (streaming: when the reply is done or the
// client went away, which cancels what still runs).
struct completion {
    chat_completion_env env;  // a copy (the registry, the base model's names, limits, observer)
    served_model *sm;    // the weights answering (a reference, released in completion_free)
    chat_request req;
    sched_req **choices;  // one scheduler request per choice
    int n_choices;
    int n_prompt;
    char id[48];
    time_t created;
    double t0;
    // streaming
    reply_parser *parsers;
    int *done;           // per choice: finished and finish chunk sent
    int *n_calls;        // per choice: tool calls sent so far
    size_t *seen;
    int phase;           // 0 role chunks, 1 generating, 2 usage/[DONE] written, 3 end
    strbuf out;          // SSE text produced, sent from out_pos on
    size_t out_pos;
    int cur_choice;      // choice whose events are being written
    int lp_sent[128];    // per choice: logprob records already sent (streaming)
    int oom;
    double last_write;
};

static cJSON *logprobs_json(completion *cc, int i, int *from, int need_new);

static void completion_free(completion *cc) {
    if (!cc) return;
    for (int i = 0; i < cc->n_choices; i++) sched_req_release(cc->choices[i]);
    if (cc->parsers)
        for (int i = 0; i < cc->n_choices; i++) reply_parser_free(&cc->parsers[i]);
    free(cc->parsers);
    free(cc->done);
    free(cc->n_calls);
    free(cc->seen);
    free(cc->choices);
    strbuf_free(&cc->out);
    chat_request_free(&cc->req);
    if (cc->sm) registry_release(cc->env.reg, cc->sm);
    free(cc);
}

static const char *choice_instruction(const chat_request *r) {
    static _Thread_local char buf[256];
    if (r->tool_choice == TOOL_CHOICE_NAMED) {
        snprintf(buf, sizeof(buf), "\nYou must call the function \"%.64s\" exactly once.", r->tool_choice_name);
        return buf;
    }
    if (r->tool_choice == TOOL_CHOICE_REQUIRED)
        return r->parallel_tool_calls ? "\nYou must call at least one function." : "\nYou must call exactly one function.";
    if (!r->parallel_tool_calls) return "\nCall at most one function.";
    return NULL;
}

// Renders and tokenizes the prompt, then queues one generation per choice.
static int completion_start(completion *cc, api_error *err) {
    chat_request *r = &cc->req;
    int use_tools = r->n_tools && r->tool_choice != TOOL_CHOICE_NONE;
    char *prompt = toolprompt_render_ex(use_tools ? r->tools : NULL, use_tools ? choice_instruction(r) : NULL,
                                        cc->sm->m.chat_template, r->msgs, r->n_msgs);
    if (!prompt) return api_error_set(err, 500, "server_error", NULL, NULL, "out of memory");
    size_t plen = strlen(prompt);
    int need = tokenizer_encode(cc->sm->m.tok, prompt, plen, 1, NULL, 0);
    int32_t *ids = need > 0 ? malloc(sizeof(int32_t) * (size_t)need) : NULL;
    if (!ids) {
        free(prompt);
        return api_error_set(err, 500, "server_error", NULL, NULL, "cannot tokenize the prompt");
    }
    tokenizer_encode(cc->sm->m.tok, prompt, plen, 1, ids, need);
    free(prompt);
    int n_ctx = scheduler_n_ctx(cc->sm->sched);
    if (need >= n_ctx - 1) {
        free(ids);
        return api_error_set(err, 400, "invalid_request_error", "messages", "context_length_exceeded",
                             "the prompt is %d tokens; this server's context is %d tokens", need, n_ctx);
    }
    int max_tokens = r->max_tokens > 0 ? r->max_tokens : cc->env.max_tokens;
    if (max_tokens > n_ctx - 1 - need) max_tokens = n_ctx - 1 - need;
    cc->n_prompt = need;
    cc->choices = calloc((size_t)r->n, sizeof(*cc->choices));
    if (!cc->choices) {
        free(ids);
        return api_error_set(err, 500, "server_error", NULL, NULL, "out of memory");
    }
    // tool_choice required / named, and response_format json_object, are enforced by a token
    // mask (protocol/constrain.h), not by the prompt alone
    constrain_spec spec = {0};
    int constrained = 0;
    if (use_tools && (r->tool_choice == TOOL_CHOICE_REQUIRED || r->tool_choice == TOOL_CHOICE_NAMED)) {
        spec.mode = CONSTRAIN_TOOL_CALL;
        spec.max_calls = r->parallel_tool_calls ? 0 : 1;
        spec.think_budget = 200;  // bytes of reasoning before "</think>" is forced, leaving room for the call
        // each allowed tool with its parameters schema: argument names, types and enums hold
        for (int i = 0; i < r->n_tools && spec.n_names < CONSTRAIN_MAX_NAMES; i++) {
            if (r->tool_choice == TOOL_CHOICE_NAMED && strcmp(r->tool_names[i], r->tool_choice_name)) continue;
            const cJSON *fn = cJSON_GetObjectItemCaseSensitive(cJSON_GetArrayItem(r->tools, i), "function");
            if (constrain_spec_add_tool(&spec, r->tool_names[i], cJSON_GetObjectItemCaseSensitive(fn, "parameters"))) {
                constrain_spec_free(&spec);
                free(ids);
                return api_error_set(err, 500, "server_error", NULL, NULL, "out of memory");
            }
        }
        constrained = 1;
    } else if ((r->json_object || r->json_schema) && !use_tools) {
        spec.mode = CONSTRAIN_JSON_OBJECT;
        int root = r->json_schema ? constrain_schema_add(&spec, r->json_schema) : 0;
        if (root < 0) {
            constrain_spec_free(&spec);
            free(ids);
            return api_error_set(err, 500, "server_error", NULL, NULL, "out of memory");
        }
        spec.root = (uint16_t)root;
        constrained = 1;
    }
    uint64_t seed = r->has_seed ? r->seed : ((uint64_t)time(NULL) * 2654435761u) ^ (uint64_t)(uintptr_t)cc;
    for (int i = 0; i < r->n; i++) {
        sampler_params sp = {.temperature = (float)r->temperature,
                             .top_k = 0,
                             .top_p = (float)r->top_p,
                             .seed = seed + (uint64_t)i};
        sched_req *q = sched_req_new(ids, need, &sp, max_tokens, r->stop, r->n_stop);
        if (q && r->logprobs) sched_req_want_logprobs(q, r->top_logprobs);
        if (q && constrained && sched_req_constrain(q, &spec)) {
            sched_req_release(q);
            q = NULL;
        }
        if (!q) {
            free(ids);
            constrain_spec_free(&spec);
            return api_error_set(err, 500, "server_error", NULL, NULL, "out of memory");
        }
        if (scheduler_submit(cc->sm->sched, q)) {
            sched_req_release(q);
            free(ids);
            constrain_spec_free(&spec);
            return api_error_set(err, 429, "rate_limit_error", NULL, "rate_limit_exceeded",
                                 "the server is busy (request queue full); retry later");
        }
        cc->choices[cc->n_choices++] = q;
    }
    free(ids);
    constrain_spec_free(&spec);
    return 0;
}

static cJSON *usage_json(completion *cc) {
    int comp = 0;
    for (int i = 0; i < cc->n_choices; i++) comp += sched_req_completion_tokens(cc->choices[i]);
    cJSON *u = cJSON_CreateObject();
    if (!u) return NULL;
    cJSON_AddNumberToObject(u, "prompt_tokens", cc->n_prompt);
    cJSON_AddNumberToObject(u, "completion_tokens", comp);
    cJSON_AddNumberToObject(u, "total_tokens", cc->n_prompt + comp);
    // OpenAI's field for prompt caching: the leading prompt tokens not computed again.
    cJSON *d = cJSON_AddObjectToObject(u, "prompt_tokens_details");
    if (d) cJSON_AddNumberToObject(d, "cached_tokens", cc->n_choices > 0 ? sched_req_cached_tokens(cc->choices[0]) : 0);
    return u;
}

static void observe_latency(completion *cc) {
    if (cc->env.observe) cc->env.observe(cc->env.observe_ctx, trl_now() - cc->t0);
}

static void reply_error(api_reply *r, const api_error *err) {
    r->status = err->status;
    r->json = api_error_json(err);
}

// Waits for every choice to finish and answers one chat.completion object. Frees cc.
static void completion_wait(completion *cc, api_reply *r) {
    cJSON *resp = cJSON_CreateObject(), *choices = cJSON_CreateArray();
    if (!resp || !choices) {
        cJSON_Delete(resp);
        cJSON_Delete(choices);
        completion_free(cc);
        return api_reply_error(r, 500, "server_error", NULL, NULL, "out of memory");
    }
    cJSON_AddStringToObject(resp, "id", cc->id);
    cJSON_AddStringToObject(resp, "object", "chat.completion");
    cJSON_AddNumberToObject(resp, "created", (double)cc->created);
    cJSON_AddStringToObject(resp, "model", cc->sm->id);
    cJSON_AddItemToObject(resp, "choices", choices);
    const char *fail = NULL;
    for (int i = 0; i < cc->n_choices && !fail; i++) {
        reply_message msg = {0};
        reply_parser p;
        reply_parser_init(&p, &cc->req, reply_message_collect, &msg);
        size_t seen = 0;
        for (;;) {
            char *chunk;
            size_t n;
            int rc = sched_req_take(cc->choices[i], &seen, &chunk, &n, 1000);
            if (rc < 0) {
                fail = "out of memory";
                break;
            }
            if (chunk) reply_parser_feed(&p, chunk, n, 0);
            free(chunk);
            if (rc == 1) break;
        }
        reply_parser_feed(&p, "", 0, 1);
        if (!fail && sched_req_error(cc->choices[i])) fail = sched_req_error(cc->choices[i]);
        if (!fail && (p.oom || msg.oom)) fail = "out of memory";
        cJSON *ch = cJSON_CreateObject();
        if (!fail && ch) {
            cJSON_AddNumberToObject(ch, "index", i);
            cJSON_AddItemToObject(ch, "message", reply_message_json(&msg));
            int from = 0;
            cJSON *lp = logprobs_json(cc, i, &from, 0);
            if (lp) cJSON_AddItemToObject(ch, "logprobs", lp);
            else cJSON_AddNullToObject(ch, "logprobs");
            cJSON_AddStringToObject(ch, "finish_reason",
                                    msg.tool_calls ? "tool_calls" : sched_req_finish_reason(cc->choices[i]));
            cJSON_AddItemToArray(choices, ch);
        } else cJSON_Delete(ch);
        reply_parser_free(&p);
        reply_message_free(&msg);
    }
    if (fail) {
        cJSON_Delete(resp);
        char m[300];
        snprintf(m, sizeof(m), "generation failed: %s", fail);
        completion_free(cc);
        return api_reply_error(r, 503, "server_error", NULL, NULL, "%s", m);
    }
    cJSON_AddItemToObject(resp, "usage", usage_json(cc));
    observe_latency(cc);
    completion_free(cc);
    r->status = 200;
    r->json = resp;
}

// ---- streaming ---------------------------------------------------------------------------

static void out_put(completion *cc, const char *p, size_t n) {
    if (cc->oom) return;
    strbuf_add(&cc->out, p, n);
    if (cc->out.oom) cc->oom = 1;
}

static void out_event(completion *cc, cJSON *obj) {
    char *t = obj ? cJSON_PrintUnformatted(obj) : NULL;
    cJSON_Delete(obj);
    if (!t) {
        cc->oom = 1;
        return;
    }
    out_put(cc, "data: ", 6);
    out_put(cc, t, strlen(t));
    out_put(cc, "\n\n", 2);
    free(t);
}

// A token's text for the logprobs objects: its bytes, with invalid UTF-8 shown as U+FFFD
// (the exact bytes go in "bytes").
static cJSON *token_entry(const tokenizer *t, int32_t tok, float lp) {
    char buf[256], txt[768];
    int n = tokenizer_decode(t, tok, 1, buf, sizeof(buf));
    if (n < 0 || n > (int)sizeof(buf)) n = 0;
    size_t o = 0;
    for (int i = 0; i < n;) {
        unsigned char c = (unsigned char)buf[i];
        int k = c < 0x80 ? 1 : (c >> 5) == 6 ? 2 : (c >> 4) == 14 ? 3 : (c >> 3) == 30 ? 4 : 0;
        int ok = k > 0 && i + k <= n;
        for (int m = 1; ok && m < k; m++) ok = ((unsigned char)buf[i + m] & 0xc0) == 0x80;
        if (ok) memcpy(txt + o, buf + i, (size_t)k), o += (size_t)k, i += k;
        else memcpy(txt + o, "\xef\xbf\xbd", 3), o += 3, i++;
    }
    txt[o] = 0;
    cJSON *e = cJSON_CreateObject(), *bytes = cJSON_CreateArray();
    cJSON_AddStringToObject(e, "token", txt);
    cJSON_AddNumberToObject(e, "logprob", lp);
    for (int i = 0; i < n; i++) cJSON_AddItemToArray(bytes, cJSON_CreateNumber((unsigned char)buf[i]));
    cJSON_AddItemToObject(e, "bytes", bytes);
    return e;
}

// {"content": [...], "refusal": null} for the records of choice i from *from on, or NULL when
// logprobs were not asked for (or, streaming, when there is nothing new).
static cJSON *logprobs_json(completion *cc, int i, int *from, int need_new) {
    if (!cc->req.logprobs) return NULL;
    sched_logprob *recs;
    int n = sched_req_logprobs(cc->choices[i], *from, &recs);
    if (n == 0 && need_new) return NULL;
    cJSON *o = cJSON_CreateObject(), *content = cJSON_AddArrayToObject(o, "content");
    const tokenizer *t = cc->sm->m.tok;
    for (int k = 0; k < n; k++) {
        cJSON *e = token_entry(t, recs[k].tok, recs[k].logprob), *top = cJSON_AddArrayToObject(e, "top_logprobs");
        for (int m = 0; m < recs[k].n_top; m++) cJSON_AddItemToArray(top, token_entry(t, recs[k].top_tok[m], recs[k].top_lp[m]));
        cJSON_AddItemToArray(content, e);
    }
    cJSON_AddNullToObject(o, "refusal");
    *from += n;
    free(recs);
    return o;
}

// A chunk with one choice; delta is consumed (NULL = {}).
static cJSON *chunk_new(completion *cc, int index, cJSON *delta, const char *finish) {
    cJSON *o = cJSON_CreateObject(), *choices = cJSON_CreateArray(), *ch = cJSON_CreateObject();
    if (!delta) delta = cJSON_CreateObject();
    if (!o || !choices || !ch || !delta) {
        cJSON_Delete(o);
        cJSON_Delete(choices);
        cJSON_Delete(ch);
        cJSON_Delete(delta);
        return NULL;
    }
    cJSON_AddStringToObject(o, "id", cc->id);
    cJSON_AddStringToObject(o, "object", "chat.completion.chunk");
    cJSON_AddNumberToObject(o, "created", (double)cc->created);
    cJSON_AddStringToObject(o, "model", cc->sm->id);
    cJSON_AddNumberToObject(ch, "index", index);
    cJSON_AddItemToObject(ch, "delta", delta);
    cJSON *lp = index < cc->n_choices && index < 128 ? logprobs_json(cc, index, &cc->lp_sent[index], 1) : NULL;
    if (lp) cJSON_AddItemToObject(ch, "logprobs", lp);
    else cJSON_AddNullToObject(ch, "logprobs");
    if (finish) cJSON_AddStringToObject(ch, "finish_reason", finish);
    else cJSON_AddNullToObject(ch, "finish_reason");
    cJSON_AddItemToArray(choices, ch);
    cJSON_AddItemToObject(o, "choices", choices);
    if (cc->req.include_usage) cJSON_AddNullToObject(o, "usage");
    return o;
}

static void stream_event(void *ud, reply_event_kind kind, const char *text, size_t len, const char *call_id,
                         const char *name, const char *args_json) {
    completion *cc = ud;
    int i = cc->cur_choice;
    cJSON *d = cJSON_CreateObject();
    if (!d) {
        cc->oom = 1;
        return;
    }
    if (kind != REPLY_TOOL_CALL) {
        char *t = malloc(len + 1);
        if (!t) {
            cJSON_Delete(d);
            cc->oom = 1;
            return;
        }
        memcpy(t, text, len);
        t[len] = 0;
        cJSON_AddStringToObject(d, kind == REPLY_CONTENT ? "content" : "reasoning_content", t);
        free(t);
        out_event(cc, chunk_new(cc, i, d, NULL));
        return;
    }
    // a call: index/id/type/name once (arguments ""), then the arguments as a fragment
    cJSON *arr = cJSON_AddArrayToObject(d, "tool_calls"), *tc = cJSON_CreateObject(), *fn = cJSON_CreateObject();
    if (!arr || !tc || !fn) {
        cJSON_Delete(tc);
        cJSON_Delete(fn);
        cJSON_Delete(d);
        cc->oom = 1;
        return;
    }
    cJSON_AddNumberToObject(tc, "index", cc->n_calls[i]);
    cJSON_AddStringToObject(tc, "id", call_id);
    cJSON_AddStringToObject(tc, "type", "function");
    cJSON_AddStringToObject(fn, "name", name);
    cJSON_AddStringToObject(fn, "arguments", "");
    cJSON_AddItemToObject(tc, "function", fn);
    cJSON_AddItemToArray(arr, tc);
    out_event(cc, chunk_new(cc, i, d, NULL));
    cJSON *d2 = cJSON_CreateObject(), *arr2 = d2 ? cJSON_AddArrayToObject(d2, "tool_calls") : NULL;
    cJSON *tc2 = cJSON_CreateObject(), *fn2 = cJSON_CreateObject();
    if (!arr2 || !tc2 || !fn2) {
        cJSON_Delete(d2);
        cJSON_Delete(tc2);
        cJSON_Delete(fn2);
        cc->oom = 1;
        return;
    }
    cJSON_AddNumberToObject(tc2, "index", cc->n_calls[i]);
    cJSON_AddStringToObject(fn2, "arguments", args_json);
    cJSON_AddItemToObject(tc2, "function", fn2);
    cJSON_AddItemToArray(arr2, tc2);
    out_event(cc, chunk_new(cc, i, d2, NULL));
    cc->n_calls[i]++;
}

// Produces more SSE text into cc->out; blocks until some is ready (or a keep-alive is due).
static void stream_produce(completion *cc) {
    if (cc->phase == 0) {
        for (int i = 0; i < cc->n_choices; i++) {
            cJSON *d = cJSON_CreateObject();
            if (d) {
                cJSON_AddStringToObject(d, "role", "assistant");
                cJSON_AddStringToObject(d, "content", "");
            }
            out_event(cc, chunk_new(cc, i, d, NULL));
        }
        cc->phase = 1;
        return;
    }
    if (cc->phase == 1) {
        int all_done = 1;
        for (int i = 0; i < cc->n_choices; i++) {
            if (cc->done[i]) continue;
            all_done = 0;
            char *chunk;
            size_t n;
            int rc = sched_req_take(cc->choices[i], &cc->seen[i], &chunk, &n, cc->n_choices > 1 ? 20 : 500);
            cc->cur_choice = i;
            if (rc < 0) cc->oom = 1;
            if (chunk) reply_parser_feed(&cc->parsers[i], chunk, n, 0);
            free(chunk);
            if (rc == 1) {
                reply_parser_feed(&cc->parsers[i], "", 0, 1);
                const char *err = sched_req_error(cc->choices[i]);
                if (err) {
                    api_error e;
                    api_error_set(&e, 503, "server_error", NULL, NULL, "generation failed: %s", err);
                    out_event(cc, api_error_json(&e));
                    cc->phase = 2;
                    out_put(cc, "data: [DONE]\n\n", 14);
                    return;
                }
                out_event(cc, chunk_new(cc, i, NULL,
                                       cc->n_calls[i] ? "tool_calls" : sched_req_finish_reason(cc->choices[i])));
                cc->done[i] = 1;
            }
        }
        if (all_done) {
            if (cc->req.include_usage) {
                cJSON *o = cJSON_CreateObject();
                if (o) {
                    cJSON_AddStringToObject(o, "id", cc->id);
                    cJSON_AddStringToObject(o, "object", "chat.completion.chunk");
                    cJSON_AddNumberToObject(o, "created", (double)cc->created);
                    cJSON_AddStringToObject(o, "model", cc->sm->id);
                    cJSON_AddArrayToObject(o, "choices");
                    cJSON_AddItemToObject(o, "usage", usage_json(cc));
                }
                out_event(cc, o);
            }
            out_put(cc, "data: [DONE]\n\n", 14);
            observe_latency(cc);
            cc->phase = 2;
        } else if (cc->out.len == cc->out_pos && trl_now() - cc->last_write > 10) {
            out_put(cc, ": keep-alive\n\n", 14);  // lets a dead client be noticed while waiting
        }
    }
}

// The stream's reader (api.h): more SSE text into buf, blocking until some is ready.
static ssize_t stream_read(void *cls, uint64_t pos, char *buf, size_t max) {
    (void)pos;
    completion *cc = cls;
    while (cc->out_pos == cc->out.len) {
        cc->out_pos = cc->out.len = 0;
        if (cc->phase >= 2 || cc->oom) return API_STREAM_END;
        stream_produce(cc);
    }
    if (cc->oom) return API_STREAM_ERROR;
    size_t n = cc->out.len - cc->out_pos;
    if (n > max) n = max;
    memcpy(buf, cc->out.buf + cc->out_pos, n);
    cc->out_pos += n;
    cc->last_write = trl_now();
    return (ssize_t)n;
}

// Called when the reply is done or the client went away: cancels what still runs.
static void stream_free(void *cls) { completion_free(cls); }

// Answers an SSE stream of chat.completion.chunk events; cc belongs to the stream from here on.
static void completion_stream(completion *cc, api_reply *r) {
    int n = cc->n_choices;
    cc->parsers = calloc((size_t)n, sizeof(*cc->parsers));
    cc->done = calloc((size_t)n, sizeof(int));
    cc->n_calls = calloc((size_t)n, sizeof(int));
    cc->seen = calloc((size_t)n, sizeof(size_t));
    if (!cc->parsers || !cc->done || !cc->n_calls || !cc->seen) {
        completion_free(cc);
        return api_reply_error(r, 500, "server_error", NULL, NULL, "out of memory");
    }
    for (int i = 0; i < n; i++) reply_parser_init(&cc->parsers[i], &cc->req, stream_event, cc);
    cc->last_write = trl_now();
    r->status = 200;
    r->read = stream_read;
    r->stream_free = stream_free;
    r->stream = cc;
    r->ctype = "text/event-stream";
    r->no_cache = 1;
}

void chat_completion_handle(const chat_completion_env *env, const char *body, size_t len, api_reply *r) {
    completion *cc = calloc(1, sizeof(*cc));
    if (!cc) return api_reply_error(r, 500, "server_error", NULL, NULL, "out of memory");
    cc->env = *env;
    cc->t0 = trl_now();
    cc->created = time(NULL);
    reply_completion_id(cc->id);
    api_error err;
    if (chat_request_parse(body ? body : "", len, &cc->req, &err)) {
        free(cc);
        return reply_error(r, &err);
    }
    int status = 404;
    trl_err e = {{0}};
    int base = !strcmp(cc->req.model, env->model_id) || !strcmp(cc->req.model, env->model_stem);
    int hidden = !base && env->api && !api_model_visible(env->api, env->who, cc->req.model);
    cc->sm = hidden ? NULL : registry_acquire(env->reg, base ? env->model_id : cc->req.model, &status, &e);
    if (!cc->sm) {
        if (status == 404)
            api_error_set(&err, 404, "invalid_request_error", "model", "model_not_found",
                          "The model `%.128s` does not exist or you do not have access to it.", cc->req.model);
        else api_error_set(&err, status, "server_error", "model", "model_unavailable", "%.400s", e.msg);
        completion_free(cc);
        return reply_error(r, &err);
    }
    if (completion_start(cc, &err)) {
        completion_free(cc);
        return reply_error(r, &err);
    }
    if (cc->req.stream) completion_stream(cc, r);
    else completion_wait(cc, r);
}
