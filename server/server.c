// server.c: the libmicrohttpd daemon: routing, bearer auth, body limits, OpenAI error bodies,
// /v1/models, /metrics, and POST /v1/chat/completions in JSON and SSE form on top of the
// scheduler (continuous batching), toolprompt (Tool-N1 prompt) and chat_response (reply parsing).
#include "server.h"

#include <arpa/inet.h>
#include <cjson/cJSON.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <strings.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "api.h"
#include "chat_request.h"
#include "chat_response.h"
#include "registry.h"
#include "scheduler.h"
#include "static.h"
#include "tokenizer.h"
#include "toolprompt.h"

#define N_LAT_BUCKETS 10
static const double LAT_BUCKETS[N_LAT_BUCKETS] = {0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60};

typedef struct {
    atomic_long requests, chat_requests, status_2xx, status_4xx, status_5xx, rejected_429;
    atomic_long lat_bucket[N_LAT_BUCKETS + 1];
    atomic_long lat_count;
    _Atomic double lat_sum;
} server_metrics;

struct server {
    struct MHD_Daemon *d;
    server_config cfg;
    registry *reg;     // the base model and the fine-tuned ones, hot-swapped (registry.h)
    api *api;          // the training REST API over the job store (api.h); NULL without --db
    atomic_int ready;  // 1 once the model is loaded
    char model_id[256];
    char model_stem[256];
    time_t created;
    server_metrics met;
};

// Per-connection state, freed in the request-completed callback.
typedef struct {
    char *body;
    size_t len, cap;
    int too_big;
    int oom;
    // POST /v1/files: the multipart body streams through pp into up
    struct MHD_PostProcessor *pp;
    api_upload *up;
    int pp_failed;
} conn_state;

static void count_status(server *s, unsigned status) {
    if (status < 300) atomic_fetch_add(&s->met.status_2xx, 1);
    else if (status < 500) atomic_fetch_add(&s->met.status_4xx, 1);
    else atomic_fetch_add(&s->met.status_5xx, 1);
    if (status == 429) atomic_fetch_add(&s->met.rejected_429, 1);
}

static void observe_latency(server *s, double secs) {
    int b = 0;
    while (b < N_LAT_BUCKETS && secs > LAT_BUCKETS[b]) b++;
    atomic_fetch_add(&s->met.lat_bucket[b], 1);
    atomic_fetch_add(&s->met.lat_count, 1);
    double old = atomic_load(&s->met.lat_sum);
    while (!atomic_compare_exchange_weak(&s->met.lat_sum, &old, old + secs)) {
    }
}

static enum MHD_Result send_text(server *s, struct MHD_Connection *c, unsigned status, char *body,
                                 const char *ctype) {
    count_status(s, status);
    if (!body) return MHD_NO;
    struct MHD_Response *r = MHD_create_response_from_buffer(strlen(body), body, MHD_RESPMEM_MUST_FREE);
    if (!r) {
        free(body);
        return MHD_NO;
    }
    MHD_add_response_header(r, "Content-Type", ctype);
    enum MHD_Result ret = MHD_queue_response(c, status, r);
    MHD_destroy_response(r);
    return ret;
}

static enum MHD_Result send_json(server *s, struct MHD_Connection *c, unsigned status, cJSON *j) {
    char *body = j ? cJSON_PrintUnformatted(j) : NULL;
    cJSON_Delete(j);
    return send_text(s, c, status, body, "application/json");
}

static enum MHD_Result send_api_error(server *s, struct MHD_Connection *c, const api_error *err) {
    return send_json(s, c, (unsigned)err->status, api_error_json(err));
}

static enum MHD_Result send_error(server *s, struct MHD_Connection *c, unsigned status, const char *type,
                                  const char *param, const char *code, const char *msg) {
    api_error err;
    api_error_set(&err, (int)status, type, param, code, "%s", msg);
    return send_api_error(s, c, &err);
}

// ---- the training API (api.h) ------------------------------------------------------------

static const char *query_arg(void *ctx, const char *name) {
    return MHD_lookup_connection_value((struct MHD_Connection *)ctx, MHD_GET_ARGUMENT_KIND, name);
}

static enum MHD_Result send_api_reply(server *s, struct MHD_Connection *c, api_reply *r) {
    if (r->fd < 0) return send_json(s, c, (unsigned)r->status, r->json);
    count_status(s, (unsigned)r->status);
    struct MHD_Response *resp = MHD_create_response_from_fd((uint64_t)r->size, r->fd);  // closes fd
    if (!resp) {
        close(r->fd);
        return MHD_NO;
    }
    MHD_add_response_header(resp, "Content-Type", "application/octet-stream");
    enum MHD_Result ret = MHD_queue_response(c, (unsigned)r->status, resp);
    MHD_destroy_response(resp);
    return ret;
}

static enum MHD_Result upload_field(void *cls, enum MHD_ValueKind kind, const char *key, const char *filename,
                                    const char *content_type, const char *transfer_encoding, const char *data,
                                    uint64_t off, size_t size) {
    (void)kind, (void)content_type, (void)transfer_encoding, (void)off;
    conn_state *cs = cls;
    if (cs->up && key) api_upload_data(cs->up, key, filename, data, size);
    return MHD_YES;
}

// ---- /v1/models ------------------------------------------------------------------------

static cJSON *model_object(server *s) {
    cJSON *o = cJSON_CreateObject();
    if (!o) return NULL;
    cJSON_AddStringToObject(o, "id", s->model_id);
    cJSON_AddStringToObject(o, "object", "model");
    cJSON_AddNumberToObject(o, "created", (double)s->created);
    cJSON_AddStringToObject(o, "owned_by", "toolrl");
    return o;
}

static int model_matches(server *s, const char *id) {
    return !strcmp(id, s->model_id) || !strcmp(id, s->model_stem);
}

// ---- /metrics ---------------------------------------------------------------------------

static char *metrics_text(server *s) {
    size_t cap = 8192;
    char *b = malloc(cap);
    if (!b) return NULL;
    size_t n = 0;
#define P(...) n += (size_t)snprintf(b + n, n < cap ? cap - n : 0, __VA_ARGS__)
    server_metrics *m = &s->met;
    P("# HELP toolrl_http_requests_total HTTP requests by status class.\n# TYPE toolrl_http_requests_total counter\n");
    P("toolrl_http_requests_total{code=\"2xx\"} %ld\n", atomic_load(&m->status_2xx));
    P("toolrl_http_requests_total{code=\"4xx\"} %ld\n", atomic_load(&m->status_4xx));
    P("toolrl_http_requests_total{code=\"5xx\"} %ld\n", atomic_load(&m->status_5xx));
    P("# HELP toolrl_chat_requests_total Chat completion requests received.\n# TYPE toolrl_chat_requests_total counter\n");
    P("toolrl_chat_requests_total %ld\n", atomic_load(&m->chat_requests));
    P("# HELP toolrl_rejected_requests_total Requests refused with 429 (queue full).\n"
      "# TYPE toolrl_rejected_requests_total counter\ntoolrl_rejected_requests_total %ld\n",
      atomic_load(&m->rejected_429));
    if (s->reg) {
        const scheduler_stats *st = scheduler_get_stats(registry_base(s->reg)->sched);
        long steps = atomic_load(&st->steps), bt = atomic_load(&st->batch_tokens);
        P("# HELP toolrl_prompt_tokens_total Prompt tokens of admitted requests.\n"
          "# TYPE toolrl_prompt_tokens_total counter\ntoolrl_prompt_tokens_total %ld\n",
          atomic_load(&st->prompt_tokens));
        P("# HELP toolrl_prompt_tokens_cached_total Of those, tokens a slot's cache already held (not prefilled).\n"
          "# TYPE toolrl_prompt_tokens_cached_total counter\ntoolrl_prompt_tokens_cached_total %ld\n",
          atomic_load(&st->prompt_tokens_cached));
        P("# HELP toolrl_prompt_tokens_copied_total Of the cached ones, tokens copied from another slot's cache.\n"
          "# TYPE toolrl_prompt_tokens_copied_total counter\ntoolrl_prompt_tokens_copied_total %ld\n",
          atomic_load(&st->prompt_tokens_copied));
        P("# HELP toolrl_completion_tokens_total Tokens generated.\n# TYPE toolrl_completion_tokens_total counter\n"
          "toolrl_completion_tokens_total %ld\n", atomic_load(&st->completion_tokens));
        P("# HELP toolrl_queue_depth Requests waiting for a sequence slot.\n# TYPE toolrl_queue_depth gauge\n"
          "toolrl_queue_depth %ld\n", atomic_load(&st->queue_depth));
        P("# HELP toolrl_active_sequences Sequences in prefill or decode.\n# TYPE toolrl_active_sequences gauge\n"
          "toolrl_active_sequences %ld\n", atomic_load(&st->active));
        P("# HELP toolrl_engine_steps_total Batched forward passes.\n# TYPE toolrl_engine_steps_total counter\n"
          "toolrl_engine_steps_total %ld\n", steps);
        P("# HELP toolrl_batch_tokens_total Tokens over all forward passes.\n# TYPE toolrl_batch_tokens_total counter\n"
          "toolrl_batch_tokens_total %ld\n", bt);
        P("# HELP toolrl_batch_size Tokens in the latest forward pass.\n# TYPE toolrl_batch_size gauge\n"
          "toolrl_batch_size %ld\n", atomic_load(&st->last_batch));
    }
    P("# HELP toolrl_request_duration_seconds Chat completion latency (to the last byte generated).\n"
      "# TYPE toolrl_request_duration_seconds histogram\n");
    long cum = 0;
    for (int i = 0; i < N_LAT_BUCKETS; i++) {
        cum += atomic_load(&m->lat_bucket[i]);
        P("toolrl_request_duration_seconds_bucket{le=\"%g\"} %ld\n", LAT_BUCKETS[i], cum);
    }
    cum += atomic_load(&m->lat_bucket[N_LAT_BUCKETS]);
    P("toolrl_request_duration_seconds_bucket{le=\"+Inf\"} %ld\n", cum);
    P("toolrl_request_duration_seconds_sum %.6f\n", atomic_load(&m->lat_sum));
    P("toolrl_request_duration_seconds_count %ld\n", atomic_load(&m->lat_count));
    if (s->reg)
        P("# HELP toolrl_model_swaps_total Newer checkpoints swapped in without a restart.\n"
          "# TYPE toolrl_model_swaps_total counter\ntoolrl_model_swaps_total %ld\n", registry_swaps(s->reg));
#undef P
    if (n >= cap) {  // cannot happen with the fixed set above; keep it safe anyway
        b[cap - 1] = 0;
    }
    return b;
}

// ---- chat completions ------------------------------------------------------------------

typedef struct {
    server *s;
    served_model *sm;    // the weights answering (a reference, released in job_free)
    chat_request req;
    sched_req **jobs;
    int n_jobs;
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
    char *out;
    size_t out_len, out_cap, out_pos;
    int cur_choice;      // choice whose events are being written
    int lp_sent[128];    // per choice: logprob records already sent (streaming)
    int oom;
    double last_write;
} chat_job;

static cJSON *logprobs_json(chat_job *j, int i, int *from, int need_new);

static void job_free(chat_job *j) {
    if (!j) return;
    for (int i = 0; i < j->n_jobs; i++) sched_req_release(j->jobs[i]);
    if (j->parsers)
        for (int i = 0; i < j->n_jobs; i++) reply_parser_free(&j->parsers[i]);
    free(j->parsers);
    free(j->done);
    free(j->n_calls);
    free(j->seen);
    free(j->jobs);
    free(j->out);
    chat_request_free(&j->req);
    if (j->sm) registry_release(j->s->reg, j->sm);
    free(j);
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
static int job_start(chat_job *j, api_error *err) {
    server *s = j->s;
    chat_request *r = &j->req;
    int use_tools = r->n_tools && r->tool_choice != TOOL_CHOICE_NONE;
    char *prompt = toolprompt_render_ex(use_tools ? r->tools : NULL, use_tools ? choice_instruction(r) : NULL,
                                        j->sm->m.chat_template, r->msgs, r->n_msgs);
    if (!prompt) return api_error_set(err, 500, "server_error", NULL, NULL, "out of memory");
    size_t plen = strlen(prompt);
    int need = tokenizer_encode(j->sm->m.tok, prompt, plen, 1, NULL, 0);
    int32_t *ids = need > 0 ? malloc(sizeof(int32_t) * (size_t)need) : NULL;
    if (!ids) {
        free(prompt);
        return api_error_set(err, 500, "server_error", NULL, NULL, "cannot tokenize the prompt");
    }
    tokenizer_encode(j->sm->m.tok, prompt, plen, 1, ids, need);
    free(prompt);
    int n_ctx = scheduler_n_ctx(j->sm->sched);
    if (need >= n_ctx - 1) {
        free(ids);
        return api_error_set(err, 400, "invalid_request_error", "messages", "context_length_exceeded",
                             "the prompt is %d tokens; this server's context is %d tokens", need, n_ctx);
    }
    int max_tokens = r->max_tokens > 0 ? r->max_tokens : s->cfg.max_tokens;
    if (max_tokens > n_ctx - 1 - need) max_tokens = n_ctx - 1 - need;
    j->n_prompt = need;
    j->jobs = calloc((size_t)r->n, sizeof(*j->jobs));
    if (!j->jobs) {
        free(ids);
        return api_error_set(err, 500, "server_error", NULL, NULL, "out of memory");
    }
    // tool_choice required / named, and response_format json_object, are enforced by a token
    // mask (model/constrain.h), not by the prompt alone
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
    uint64_t seed = r->has_seed ? r->seed : ((uint64_t)time(NULL) * 2654435761u) ^ (uint64_t)(uintptr_t)j;
    for (int i = 0; i < r->n; i++) {
        sampler_params sp = {(float)r->temperature, 0, (float)r->top_p, seed + (uint64_t)i};
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
        if (scheduler_submit(j->sm->sched, q)) {
            sched_req_release(q);
            free(ids);
            constrain_spec_free(&spec);
            return api_error_set(err, 429, "rate_limit_error", NULL, "rate_limit_exceeded",
                                 "the server is busy (request queue full); retry later");
        }
        j->jobs[j->n_jobs++] = q;
    }
    free(ids);
    constrain_spec_free(&spec);
    return 0;
}

static cJSON *usage_json(chat_job *j) {
    int comp = 0;
    for (int i = 0; i < j->n_jobs; i++) comp += sched_req_completion_tokens(j->jobs[i]);
    cJSON *u = cJSON_CreateObject();
    if (!u) return NULL;
    cJSON_AddNumberToObject(u, "prompt_tokens", j->n_prompt);
    cJSON_AddNumberToObject(u, "completion_tokens", comp);
    cJSON_AddNumberToObject(u, "total_tokens", j->n_prompt + comp);
    // OpenAI's field for prompt caching: the leading prompt tokens not computed again.
    cJSON *d = cJSON_AddObjectToObject(u, "prompt_tokens_details");
    if (d) cJSON_AddNumberToObject(d, "cached_tokens", j->n_jobs > 0 ? sched_req_cached_tokens(j->jobs[0]) : 0);
    return u;
}

static enum MHD_Result chat_blocking(server *s, struct MHD_Connection *c, chat_job *j) {
    cJSON *resp = cJSON_CreateObject(), *choices = cJSON_CreateArray();
    if (!resp || !choices) {
        cJSON_Delete(resp);
        cJSON_Delete(choices);
        job_free(j);
        return send_error(s, c, 500, "server_error", NULL, NULL, "out of memory");
    }
    cJSON_AddStringToObject(resp, "id", j->id);
    cJSON_AddStringToObject(resp, "object", "chat.completion");
    cJSON_AddNumberToObject(resp, "created", (double)j->created);
    cJSON_AddStringToObject(resp, "model", j->sm->id);
    cJSON_AddItemToObject(resp, "choices", choices);
    const char *fail = NULL;
    for (int i = 0; i < j->n_jobs && !fail; i++) {
        reply_message msg = {0};
        reply_parser p;
        reply_parser_init(&p, &j->req, reply_message_collect, &msg);
        size_t seen = 0;
        for (;;) {
            char *chunk;
            size_t n;
            int rc = sched_req_take(j->jobs[i], &seen, &chunk, &n, 1000);
            if (rc < 0) {
                fail = "out of memory";
                break;
            }
            if (chunk) reply_parser_feed(&p, chunk, n, 0);
            free(chunk);
            if (rc == 1) break;
        }
        reply_parser_feed(&p, "", 0, 1);
        if (!fail && sched_req_error(j->jobs[i])) fail = sched_req_error(j->jobs[i]);
        if (!fail && (p.oom || msg.oom)) fail = "out of memory";
        cJSON *ch = cJSON_CreateObject();
        if (!fail && ch) {
            cJSON_AddNumberToObject(ch, "index", i);
            cJSON_AddItemToObject(ch, "message", reply_message_json(&msg));
            int from = 0;
            cJSON *lp = logprobs_json(j, i, &from, 0);
            if (lp) cJSON_AddItemToObject(ch, "logprobs", lp);
            else cJSON_AddNullToObject(ch, "logprobs");
            cJSON_AddStringToObject(ch, "finish_reason",
                                    msg.tool_calls ? "tool_calls" : sched_req_finish_reason(j->jobs[i]));
            cJSON_AddItemToArray(choices, ch);
        } else cJSON_Delete(ch);
        reply_parser_free(&p);
        reply_message_free(&msg);
    }
    if (fail) {
        cJSON_Delete(resp);
        char m[300];
        snprintf(m, sizeof(m), "generation failed: %s", fail);
        job_free(j);
        return send_error(s, c, 503, "server_error", NULL, NULL, m);
    }
    cJSON_AddItemToObject(resp, "usage", usage_json(j));
    observe_latency(s, trl_now() - j->t0);
    job_free(j);
    return send_json(s, c, 200, resp);
}

// ---- streaming ---------------------------------------------------------------------------

static void out_put(chat_job *j, const char *p, size_t n) {
    if (j->oom) return;
    if (j->out_len + n + 1 > j->out_cap) {
        size_t cap = j->out_cap ? j->out_cap : 4096;
        while (cap < j->out_len + n + 1) cap *= 2;
        char *nb = realloc(j->out, cap);
        if (!nb) {
            j->oom = 1;
            return;
        }
        j->out = nb;
        j->out_cap = cap;
    }
    memcpy(j->out + j->out_len, p, n);
    j->out_len += n;
}

static void out_event(chat_job *j, cJSON *obj) {
    char *t = obj ? cJSON_PrintUnformatted(obj) : NULL;
    cJSON_Delete(obj);
    if (!t) {
        j->oom = 1;
        return;
    }
    out_put(j, "data: ", 6);
    out_put(j, t, strlen(t));
    out_put(j, "\n\n", 2);
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
static cJSON *logprobs_json(chat_job *j, int i, int *from, int need_new) {
    if (!j->req.logprobs) return NULL;
    sched_logprob *recs;
    int n = sched_req_logprobs(j->jobs[i], *from, &recs);
    if (n == 0 && need_new) return NULL;
    cJSON *o = cJSON_CreateObject(), *content = cJSON_AddArrayToObject(o, "content");
    const tokenizer *t = j->sm->m.tok;
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
static cJSON *chunk_new(chat_job *j, int index, cJSON *delta, const char *finish) {
    cJSON *o = cJSON_CreateObject(), *choices = cJSON_CreateArray(), *ch = cJSON_CreateObject();
    if (!delta) delta = cJSON_CreateObject();
    if (!o || !choices || !ch || !delta) {
        cJSON_Delete(o);
        cJSON_Delete(choices);
        cJSON_Delete(ch);
        cJSON_Delete(delta);
        return NULL;
    }
    cJSON_AddStringToObject(o, "id", j->id);
    cJSON_AddStringToObject(o, "object", "chat.completion.chunk");
    cJSON_AddNumberToObject(o, "created", (double)j->created);
    cJSON_AddStringToObject(o, "model", j->sm->id);
    cJSON_AddNumberToObject(ch, "index", index);
    cJSON_AddItemToObject(ch, "delta", delta);
    cJSON *lp = index < j->n_jobs && index < 128 ? logprobs_json(j, index, &j->lp_sent[index], 1) : NULL;
    if (lp) cJSON_AddItemToObject(ch, "logprobs", lp);
    else cJSON_AddNullToObject(ch, "logprobs");
    if (finish) cJSON_AddStringToObject(ch, "finish_reason", finish);
    else cJSON_AddNullToObject(ch, "finish_reason");
    cJSON_AddItemToArray(choices, ch);
    cJSON_AddItemToObject(o, "choices", choices);
    if (j->req.include_usage) cJSON_AddNullToObject(o, "usage");
    return o;
}

static void stream_event(void *ud, reply_event_kind kind, const char *text, size_t len, const char *call_id,
                         const char *name, const char *args_json) {
    chat_job *j = ud;
    int i = j->cur_choice;
    cJSON *d = cJSON_CreateObject();
    if (!d) {
        j->oom = 1;
        return;
    }
    if (kind != REPLY_TOOL_CALL) {
        char *t = malloc(len + 1);
        if (!t) {
            cJSON_Delete(d);
            j->oom = 1;
            return;
        }
        memcpy(t, text, len);
        t[len] = 0;
        cJSON_AddStringToObject(d, kind == REPLY_CONTENT ? "content" : "reasoning_content", t);
        free(t);
        out_event(j, chunk_new(j, i, d, NULL));
        return;
    }
    // a call: index/id/type/name once (arguments ""), then the arguments as a fragment
    cJSON *arr = cJSON_AddArrayToObject(d, "tool_calls"), *tc = cJSON_CreateObject(), *fn = cJSON_CreateObject();
    if (!arr || !tc || !fn) {
        cJSON_Delete(tc);
        cJSON_Delete(fn);
        cJSON_Delete(d);
        j->oom = 1;
        return;
    }
    cJSON_AddNumberToObject(tc, "index", j->n_calls[i]);
    cJSON_AddStringToObject(tc, "id", call_id);
    cJSON_AddStringToObject(tc, "type", "function");
    cJSON_AddStringToObject(fn, "name", name);
    cJSON_AddStringToObject(fn, "arguments", "");
    cJSON_AddItemToObject(tc, "function", fn);
    cJSON_AddItemToArray(arr, tc);
    out_event(j, chunk_new(j, i, d, NULL));
    cJSON *d2 = cJSON_CreateObject(), *arr2 = d2 ? cJSON_AddArrayToObject(d2, "tool_calls") : NULL;
    cJSON *tc2 = cJSON_CreateObject(), *fn2 = cJSON_CreateObject();
    if (!arr2 || !tc2 || !fn2) {
        cJSON_Delete(d2);
        cJSON_Delete(tc2);
        cJSON_Delete(fn2);
        j->oom = 1;
        return;
    }
    cJSON_AddNumberToObject(tc2, "index", j->n_calls[i]);
    cJSON_AddStringToObject(fn2, "arguments", args_json);
    cJSON_AddItemToObject(tc2, "function", fn2);
    cJSON_AddItemToArray(arr2, tc2);
    out_event(j, chunk_new(j, i, d2, NULL));
    j->n_calls[i]++;
}

// Produces more SSE text into j->out; blocks until some is ready (or a keep-alive is due).
static void stream_produce(chat_job *j) {
    if (j->phase == 0) {
        for (int i = 0; i < j->n_jobs; i++) {
            cJSON *d = cJSON_CreateObject();
            if (d) {
                cJSON_AddStringToObject(d, "role", "assistant");
                cJSON_AddStringToObject(d, "content", "");
            }
            out_event(j, chunk_new(j, i, d, NULL));
        }
        j->phase = 1;
        return;
    }
    if (j->phase == 1) {
        int all_done = 1;
        for (int i = 0; i < j->n_jobs; i++) {
            if (j->done[i]) continue;
            all_done = 0;
            char *chunk;
            size_t n;
            int rc = sched_req_take(j->jobs[i], &j->seen[i], &chunk, &n, j->n_jobs > 1 ? 20 : 500);
            j->cur_choice = i;
            if (rc < 0) j->oom = 1;
            if (chunk) reply_parser_feed(&j->parsers[i], chunk, n, 0);
            free(chunk);
            if (rc == 1) {
                reply_parser_feed(&j->parsers[i], "", 0, 1);
                const char *err = sched_req_error(j->jobs[i]);
                if (err) {
                    api_error e;
                    api_error_set(&e, 503, "server_error", NULL, NULL, "generation failed: %s", err);
                    out_event(j, api_error_json(&e));
                    j->phase = 2;
                    out_put(j, "data: [DONE]\n\n", 14);
                    return;
                }
                out_event(j, chunk_new(j, i, NULL,
                                       j->n_calls[i] ? "tool_calls" : sched_req_finish_reason(j->jobs[i])));
                j->done[i] = 1;
            }
        }
        if (all_done) {
            if (j->req.include_usage) {
                cJSON *o = cJSON_CreateObject();
                if (o) {
                    cJSON_AddStringToObject(o, "id", j->id);
                    cJSON_AddStringToObject(o, "object", "chat.completion.chunk");
                    cJSON_AddNumberToObject(o, "created", (double)j->created);
                    cJSON_AddStringToObject(o, "model", j->sm->id);
                    cJSON_AddArrayToObject(o, "choices");
                    cJSON_AddItemToObject(o, "usage", usage_json(j));
                }
                out_event(j, o);
            }
            out_put(j, "data: [DONE]\n\n", 14);
            observe_latency(j->s, trl_now() - j->t0);
            j->phase = 2;
        } else if (j->out_len == j->out_pos && trl_now() - j->last_write > 10) {
            out_put(j, ": keep-alive\n\n", 14);  // lets a dead client be noticed while waiting
        }
    }
}

static ssize_t stream_reader(void *cls, uint64_t pos, char *buf, size_t max) {
    (void)pos;
    chat_job *j = cls;
    while (j->out_pos == j->out_len) {
        j->out_pos = j->out_len = 0;
        if (j->phase >= 2 || j->oom) return MHD_CONTENT_READER_END_OF_STREAM;
        stream_produce(j);
    }
    if (j->oom) return MHD_CONTENT_READER_END_WITH_ERROR;
    size_t n = j->out_len - j->out_pos;
    if (n > max) n = max;
    memcpy(buf, j->out + j->out_pos, n);
    j->out_pos += n;
    j->last_write = trl_now();
    return (ssize_t)n;
}

// Called by MHD when the response is done or the client went away: cancels what still runs.
static void stream_free(void *cls) { job_free(cls); }

static enum MHD_Result chat_stream(server *s, struct MHD_Connection *c, chat_job *j) {
    int n = j->n_jobs;
    j->parsers = calloc((size_t)n, sizeof(*j->parsers));
    j->done = calloc((size_t)n, sizeof(int));
    j->n_calls = calloc((size_t)n, sizeof(int));
    j->seen = calloc((size_t)n, sizeof(size_t));
    if (!j->parsers || !j->done || !j->n_calls || !j->seen) {
        job_free(j);
        return send_error(s, c, 500, "server_error", NULL, NULL, "out of memory");
    }
    for (int i = 0; i < n; i++) reply_parser_init(&j->parsers[i], &j->req, stream_event, j);
    j->last_write = trl_now();
    struct MHD_Response *r = MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, 16384, stream_reader, j, stream_free);
    if (!r) {
        job_free(j);
        return MHD_NO;
    }
    MHD_add_response_header(r, "Content-Type", "text/event-stream");
    MHD_add_response_header(r, "Cache-Control", "no-cache");
    count_status(s, 200);
    enum MHD_Result ret = MHD_queue_response(c, 200, r);
    MHD_destroy_response(r);
    return ret;
}

static enum MHD_Result handle_chat(server *s, struct MHD_Connection *c, conn_state *cs) {
    atomic_fetch_add(&s->met.chat_requests, 1);
    if (!atomic_load(&s->ready))
        return send_error(s, c, 503, "server_error", NULL, "model_loading", "the model is still loading");
    chat_job *j = calloc(1, sizeof(*j));
    if (!j) return send_error(s, c, 500, "server_error", NULL, NULL, "out of memory");
    j->s = s;
    j->t0 = trl_now();
    j->created = time(NULL);
    reply_completion_id(j->id);
    api_error err;
    if (chat_request_parse(cs->body ? cs->body : "", cs->len, &j->req, &err)) {
        free(j);
        return send_api_error(s, c, &err);
    }
    int status = 404;
    trl_err e = {{0}};
    const char *want = model_matches(s, j->req.model) ? s->model_id : j->req.model;
    j->sm = registry_acquire(s->reg, want, &status, &e);
    if (!j->sm) {
        if (status == 404)
            api_error_set(&err, 404, "invalid_request_error", "model", "model_not_found",
                          "The model `%.128s` does not exist or you do not have access to it.", j->req.model);
        else api_error_set(&err, status, "server_error", "model", "model_unavailable", "%.400s", e.msg);
        job_free(j);
        return send_api_error(s, c, &err);
    }
    if (job_start(j, &err)) {
        job_free(j);
        return send_api_error(s, c, &err);
    }
    return j->req.stream ? chat_stream(s, c, j) : chat_blocking(s, c, j);
}

// ---- routing -----------------------------------------------------------------------------

static int authorized(server *s, struct MHD_Connection *c) {
    const char *key = s->cfg.api_key;
    if (!key || !*key) return 1;
    const char *h = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Authorization");
    if (h && !strncmp(h, "Bearer ", 7) && !strcmp(h + 7, key)) return 1;
    const char *x = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "X-Api-Key");
    return x && !strcmp(x, key);
}

static enum MHD_Result method_not_allowed(server *s, struct MHD_Connection *c, const char *what) {
    char m[128];
    snprintf(m, sizeof(m), "method not allowed; use %s", what);
    return send_error(s, c, 405, "invalid_request_error", NULL, "method_not_allowed", m);
}

static enum MHD_Result send_file(server *s, struct MHD_Connection *c, const char *path, const char *ctype) {
    int fd = open(path, O_RDONLY);
    struct stat sb;
    if (fd < 0 || fstat(fd, &sb)) {
        if (fd >= 0) close(fd);
        return send_error(s, c, 404, "invalid_request_error", NULL, "not_found", "no such file");
    }
    count_status(s, 200);
    struct MHD_Response *r = MHD_create_response_from_fd((uint64_t)sb.st_size, fd);
    if (!r) {
        close(fd);
        return MHD_NO;
    }
    MHD_add_response_header(r, "Content-Type", ctype);
    MHD_add_response_header(r, "Cache-Control", "no-cache");
    enum MHD_Result ret = MHD_queue_response(c, 200, r);
    MHD_destroy_response(r);
    return ret;
}

static enum MHD_Result route(server *s, struct MHD_Connection *c, const char *url, const char *method,
                             conn_state *cs) {
    int get = !strcmp(method, "GET") || !strcmp(method, "HEAD");
    if (get) {  // the dashboard (public: its API calls carry the key)
        char path[1200];
        const char *ctype = NULL;
        int st = static_resolve(s->cfg.web_dir ? s->cfg.web_dir : "web", url, path, sizeof(path), &ctype);
        if (st > 0) return send_file(s, c, path, ctype);
        if (st < 0) return send_error(s, c, 404, "invalid_request_error", NULL, "not_found", "no such file");
    }
    if (!strcmp(url, "/health")) {
        if (!get) return method_not_allowed(s, c, "GET /health");
        cJSON *j = cJSON_CreateObject();
        int ok = atomic_load(&s->ready);
        cJSON_AddStringToObject(j, "status", ok ? "ok" : "loading");
        if (ok) cJSON_AddStringToObject(j, "model", s->model_id);
        return send_json(s, c, ok ? MHD_HTTP_OK : MHD_HTTP_SERVICE_UNAVAILABLE, j);
    }
    if (!strcmp(url, "/metrics")) {
        if (!get) return method_not_allowed(s, c, "GET /metrics");
        return send_text(s, c, 200, metrics_text(s), "text/plain; version=0.0.4");
    }
    if (!strcmp(url, "/v1/models")) {
        if (!get) return method_not_allowed(s, c, "GET /v1/models");
        cJSON *j = cJSON_CreateObject();
        cJSON *data = j ? cJSON_AddArrayToObject(j, "data") : NULL;
        if (j) cJSON_AddStringToObject(j, "object", "list");
        if (data && atomic_load(&s->ready)) cJSON_AddItemToArray(data, model_object(s));
        if (data && s->api) api_models_append(s->api, data);
        return send_json(s, c, 200, j);
    }
    if (!strncmp(url, "/v1/models/", 11)) {
        if (!get) return method_not_allowed(s, c, "GET /v1/models/{id}");
        if (atomic_load(&s->ready) && model_matches(s, url + 11)) return send_json(s, c, 200, model_object(s));
        cJSON *fm = s->api ? api_model_object(s->api, url + 11) : NULL;
        if (fm) return send_json(s, c, 200, fm);
        char m[400];
        snprintf(m, sizeof(m), "The model `%.200s` does not exist or you do not have access to it.", url + 11);
        return send_error(s, c, 404, "invalid_request_error", "model", "model_not_found", m);
    }
    if (!strcmp(url, "/v1/chat/completions")) {
        if (strcmp(method, "POST") != 0) return method_not_allowed(s, c, "POST /v1/chat/completions");
        if (cs->too_big) {
            char m[128];
            snprintf(m, sizeof(m), "the request body is larger than %zu bytes", s->cfg.max_body);
            return send_error(s, c, 413, "invalid_request_error", NULL, "request_too_large", m);
        }
        if (cs->oom) return send_error(s, c, 500, "server_error", NULL, NULL, "out of memory");
        return handle_chat(s, c, cs);
    }
    if (!strcmp(url, "/v1/files") && !strcmp(method, "POST")) {
        api_reply r = {0};
        if (!cs->up) {
            if (cs->pp_failed)
                return send_error(s, c, 500, "server_error", NULL, NULL, "cannot store the upload (disk?)");
            return send_error(s, c, 400, "invalid_request_error", "file", "invalid_content_type",
                              "POST /v1/files takes multipart/form-data with 'file' and 'purpose' fields");
        }
        int complete = MHD_destroy_post_processor(cs->pp) == MHD_YES && !cs->pp_failed;
        cs->pp = NULL;
        api_upload_finish(cs->up, complete, &r);
        cs->up = NULL;
        return send_api_reply(s, c, &r);
    }
    if (s->api) {
        if (cs->too_big && strcmp(method, "GET")) {
            char m[128];
            snprintf(m, sizeof(m), "the request body is larger than %zu bytes", s->cfg.max_body);
            return send_error(s, c, 413, "invalid_request_error", NULL, "request_too_large", m);
        }
        api_reply r = {0};
        if (api_handle(s->api, method, url, cs->body, cs->len, query_arg, c, &r)) return send_api_reply(s, c, &r);
    } else if (!strncmp(url, "/v1/files", 9) || !strncmp(url, "/v1/fine_tuning", 15)) {
        return send_error(s, c, 404, "invalid_request_error", NULL, "not_found",
                          "this server runs without a job store (start it with --db PATH)");
    }
    return send_error(s, c, 404, "invalid_request_error", NULL, "not_found", "unknown endpoint");
}

static enum MHD_Result handle(void *cls, struct MHD_Connection *c, const char *url, const char *method,
                              const char *version, const char *upload, size_t *upload_size, void **req) {
    (void)version;
    server *s = cls;
    if (*req == NULL) {  // first call: headers only
        conn_state *cs = calloc(1, sizeof(*cs));
        if (!cs) return MHD_NO;
        *req = cs;
        atomic_fetch_add(&s->met.requests, 1);
        int is_static = !strcmp(url, "/") || !strncmp(url, "/web/", 5) || !strncmp(url, "/vendor/", 8) ||
                        !strcmp(url, "/index.html");
        if (strcmp(url, "/health") != 0 && !is_static && !authorized(s, c)) {
            cs->too_big = -1;  // answered already
            return send_error(s, c, 401, "authentication_error", NULL, "invalid_api_key",
                              "Incorrect or missing API key (send Authorization: Bearer <key>).");
        }
        const char *cl = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Content-Length");
        if (s->api && !strcmp(url, "/v1/files") && !strcmp(method, "POST")) {
            const char *ct = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Content-Type");
            if (ct && !strncasecmp(ct, "multipart/form-data", 19)) {
                cs->pp = MHD_create_post_processor(c, 64 * 1024, upload_field, cs);
                cs->up = cs->pp ? api_upload_begin(s->api) : NULL;
                if (!cs->up) {
                    if (cs->pp) MHD_destroy_post_processor(cs->pp);
                    cs->pp = NULL;
                    cs->pp_failed = 1;
                }
            }
            return MHD_YES;  // the size limit is the upload limit, enforced as bytes arrive
        }
        if (cl && strtoull(cl, NULL, 10) > s->cfg.max_body) {
            cs->too_big = -1;
            char m[128];
            snprintf(m, sizeof(m), "the request body is larger than %zu bytes", s->cfg.max_body);
            return send_error(s, c, 413, "invalid_request_error", NULL, "request_too_large", m);
        }
        return MHD_YES;
    }
    conn_state *cs = *req;
    if (*upload_size && cs->pp) {
        if (MHD_post_process(cs->pp, upload, *upload_size) != MHD_YES) cs->pp_failed = 1;
        *upload_size = 0;
        return MHD_YES;
    }
    if (*upload_size && (cs->up || cs->pp_failed || (s->api && !strcmp(url, "/v1/files")))) {
        *upload_size = 0;  // a non-multipart upload: ignored, answered with 400 at the end
        return MHD_YES;
    }
    if (*upload_size) {
        size_t n = *upload_size;
        *upload_size = 0;
        if (cs->too_big) return MHD_YES;
        if (cs->len + n > s->cfg.max_body) {
            cs->too_big = 1;
            return MHD_YES;
        }
        if (cs->len + n + 1 > cs->cap) {
            size_t cap = cs->cap ? cs->cap : 4096;
            while (cap < cs->len + n + 1) cap *= 2;
            char *nb = realloc(cs->body, cap);
            if (!nb) {
                cs->oom = 1;
                return MHD_YES;
            }
            cs->body = nb;
            cs->cap = cap;
        }
        memcpy(cs->body + cs->len, upload, n);
        cs->len += n;
        cs->body[cs->len] = 0;
        return MHD_YES;
    }
    if (cs->too_big < 0) return MHD_YES;  // a response is already queued
    return route(s, c, url, method, cs);
}

static void completed(void *cls, struct MHD_Connection *c, void **req, enum MHD_RequestTerminationCode toe) {
    (void)cls;
    (void)c;
    (void)toe;
    conn_state *cs = *req;
    if (!cs) return;
    if (cs->pp) MHD_destroy_post_processor(cs->pp);
    api_upload_abort(cs->up);  // a cut upload leaves nothing behind
    free(cs->body);
    free(cs);
    *req = NULL;
}

int server_start(server **out, const server_config *cfg, trl_err *e) {
    server *s = calloc(1, sizeof(*s));
    if (!s) return trl_errf(e, "out of memory");
    s->cfg = *cfg;
    if (s->cfg.n_slots <= 0) s->cfg.n_slots = 8;
    if (s->cfg.n_ctx <= 0) s->cfg.n_ctx = 2048;
    if (s->cfg.max_queue <= 0) s->cfg.max_queue = 64;
    if (s->cfg.max_tokens <= 0) s->cfg.max_tokens = 512;
    if (s->cfg.max_body == 0) s->cfg.max_body = 4u << 20;
    s->created = time(NULL);
    if (cfg->db_path && api_init(&s->api, cfg->db_path, cfg->data_dir ? cfg->data_dir : "var/files", cfg->max_upload, e)) {
        free(s);
        return TRL_ERR;
    }
    struct sockaddr_in addr;
    memset(&addr, 0, sizeof(addr));
    addr.sin_family = AF_INET;
    addr.sin_port = htons(cfg->port);
    if (inet_pton(AF_INET, cfg->host ? cfg->host : "127.0.0.1", &addr.sin_addr) != 1) {
        free(s);
        return trl_errf(e, "bad --host address '%s' (IPv4 expected)", cfg->host);
    }
    unsigned limit = (unsigned)(cfg->threads > 0 ? cfg->threads * 64 : 256);
    s->d = MHD_start_daemon(MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_THREAD_PER_CONNECTION | MHD_USE_POLL, 0, NULL,
                            NULL, handle, s, MHD_OPTION_SOCK_ADDR, &addr, MHD_OPTION_CONNECTION_LIMIT, limit,
                            MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)600, MHD_OPTION_NOTIFY_COMPLETED, completed, s,
                            MHD_OPTION_END);
    if (!s->d) {
        api_free(s->api);
        free(s);
        return trl_errf(e, "cannot listen on %s:%u (port in use?)", cfg->host ? cfg->host : "127.0.0.1", cfg->port);
    }
    *out = s;
    return TRL_OK;
}

int server_load_model(server *s, trl_err *e) {
    model m;
    if (model_load(&m, s->cfg.model_path, e)) return TRL_ERR;
    const char *base = strrchr(s->cfg.model_path, '/');
    snprintf(s->model_id, sizeof(s->model_id), "%s", base ? base + 1 : s->cfg.model_path);
    snprintf(s->model_stem, sizeof(s->model_stem), "%s", s->model_id);
    char *dot = strstr(s->model_stem, ".gguf");
    if (dot) *dot = 0;
    registry_config rc = {.db_path = s->cfg.db_path,
                          .sched = {.n_slots = s->cfg.n_slots,
                                    .n_ctx = s->cfg.n_ctx,
                                    .max_batch = 512,
                                    .max_queue = s->cfg.max_queue,
                                    .n_threads = s->cfg.compute_threads},
                          .quantize = "q8_0",
                          .poll_ms = 1000,
                          .max_resident = 2};
    if (registry_init(&s->reg, &rc, &m, s->model_id, s->model_stem, e)) {
        model_free(&m);
        return TRL_ERR;
    }
    if (s->api) api_set_base_model(s->api, s->model_id, s->model_stem, s->cfg.model_path);
    atomic_store(&s->ready, 1);
    return TRL_OK;
}

uint16_t server_port(const server *s) {
    const union MHD_DaemonInfo *i = MHD_get_daemon_info(s->d, MHD_DAEMON_INFO_BIND_PORT);
    return i ? i->port : 0;
}

void server_stop(server *s) {
    if (!s) return;
    atomic_store(&s->ready, 0);
    if (s->reg) registry_shutdown(s->reg);  // every waiting request ends with an error; submits fail
    MHD_stop_daemon(s->d);                 // joins the connection threads
    registry_free(s->reg);
    api_free(s->api);
    free(s);
}
