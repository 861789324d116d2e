// server.c: the HTTP side of `toolrl serve` (libmicrohttpd, one thread per connection): the
// daemon, per-connection state, route lookup in the table (routes.c), bearer auth (the
// server's own key, or a stored key of a project) and body limits before a body is read, JSON
// bodies collected and multipart uploads streamed, the reply a handler fills sent as HTTP,
// OpenAI error bodies, the metrics counters; and the server's own small endpoints (health,
// metrics, models, the dashboard's files), which read its state. The chat completion itself is
// chat_completion.c; the training API, api_*.c.
#include "server/server.h"

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

#include "base/strbuf.h"
#include "server/api.h"
#include "server/chat_completion.h"
#include "server/registry.h"
#include "server/routes.h"
#include "server/scheduler.h"
#include "server/static.h"

// The streamed body of an api_reply is handed to libmicrohttpd as is.
_Static_assert(API_STREAM_END == MHD_CONTENT_READER_END_OF_STREAM, "api.h stream end");
_Static_assert(API_STREAM_ERROR == MHD_CONTENT_READER_END_WITH_ERROR, "api.h stream error");

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
    unsigned request_timeout, send_timeout;  // seconds, 0 = none (resolved from cfg)
    device dev;  // where the models run (cfg.dev's copy)
};

// Per-connection state, freed in the request-completed callback.
typedef struct {
    routes_result found;  // the route, looked up from the request line
    route_match m;
    int answered;         // a response is queued already (401, 413 from the headers)
    api_principal who;    // whom the request acts for (authenticate)
    strbuf body;          // ROUTE_BODY_JSON: the body so far (other routes only count its length)
    size_t len;           // bytes of the body so far
    int too_big;          // over --max-body
    // ROUTE_BODY_UPLOAD: the multipart body streams through pp into up
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

static const char *query_arg(void *ctx, const char *name) {
    return MHD_lookup_connection_value((struct MHD_Connection *)ctx, MHD_GET_ARGUMENT_KIND, name);
}

// A handler's reply as HTTP (frees what it owns, sent or not).
static enum MHD_Result send_reply(server *s, struct MHD_Connection *c, api_reply *r) {
    if (r->status == 0) {  // a handler that answered nothing: a bug, not the client's
        if (r->stream_free) r->stream_free(r->stream);
        if (r->fd >= 0) close(r->fd);
        free(r->text);
        cJSON_Delete(r->json);
        return send_error(s, c, 500, "server_error", NULL, NULL, "no reply");
    }
    if (!r->read && r->fd < 0 && !r->text) return send_json(s, c, (unsigned)r->status, r->json);
    count_status(s, (unsigned)r->status);
    struct MHD_Response *resp;
    if (r->read) {
        resp = MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, 16384, r->read, r->stream, r->stream_free);
        if (!resp) r->stream_free(r->stream);
    } else if (r->fd >= 0) {
        resp = MHD_create_response_from_fd(r->size, r->fd);  // closes fd
        if (!resp) close(r->fd);
    } else {
        resp = MHD_create_response_from_buffer(strlen(r->text), r->text, MHD_RESPMEM_MUST_FREE);
        if (!resp) free(r->text);
    }
    if (!resp) return MHD_NO;
    MHD_add_response_header(resp, "Content-Type", r->ctype ? r->ctype : "application/octet-stream");
    if (r->no_cache) MHD_add_response_header(resp, "Cache-Control", "no-cache");
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

// ---- the server's own endpoints (routes.c) --------------------------------------------------

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
    P("# HELP toolrl_device_info Where the models run (device: cpu or cuda:N; name: the GPU's).\n"
      "# TYPE toolrl_device_info gauge\ntoolrl_device_info{device=\"%s\",name=\"%s\"} 1\n", s->dev.name,
      s->dev.info);
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


// GET /metrics
void server_get_metrics(server *s, const api_request *rq, api_reply *r) {
    (void)rq;
    r->status = 200;
    r->text = metrics_text(s);
    r->ctype = "text/plain; version=0.0.4";
}

// GET /health (public): 503 while the model loads.
void server_get_health(server *s, const api_request *rq, api_reply *r) {
    (void)rq;
    cJSON *j = cJSON_CreateObject();
    int ok = atomic_load(&s->ready);
    cJSON_AddStringToObject(j, "status", ok ? "ok" : "loading");
    if (ok) cJSON_AddStringToObject(j, "model", s->model_id);
    cJSON_AddStringToObject(j, "device", s->dev.name);
    if (s->dev.info[0]) cJSON_AddStringToObject(j, "device_name", s->dev.info);
    r->status = ok ? MHD_HTTP_OK : MHD_HTTP_SERVICE_UNAVAILABLE;
    r->json = j;
}

// GET /v1/models: the base model (once loaded) and the fine-tuned ones of the store.
void server_list_models(server *s, const api_request *rq, api_reply *r) {
    (void)rq;
    cJSON *j = cJSON_CreateObject();
    cJSON *data = j ? cJSON_AddArrayToObject(j, "data") : NULL;
    if (j) cJSON_AddStringToObject(j, "object", "list");
    if (data && atomic_load(&s->ready)) cJSON_AddItemToArray(data, model_object(s));
    if (data && s->api) api_models_append(s->api, rq->who, data);
    r->status = 200;
    r->json = j;
}

// GET /v1/models/{model}
void server_get_model(server *s, const api_request *rq, api_reply *r) {
    const char *id = rq->params[0];
    cJSON *m = atomic_load(&s->ready) && model_matches(s, id) ? model_object(s) : NULL;
    if (!m && s->api) m = api_model_object(s->api, rq->who, id);
    if (m) {
        r->status = 200;
        r->json = m;
        return;
    }
    api_reply_error(r, 404, "invalid_request_error", "model", "model_not_found",
                    "The model `%.200s` does not exist or you do not have access to it.", id);
}

static void observe_completion(void *ctx, double seconds) { observe_latency(ctx, seconds); }

// POST /v1/chat/completions (chat_completion.c)
void server_create_chat_completion(server *s, const api_request *rq, api_reply *r) {
    atomic_fetch_add(&s->met.chat_requests, 1);
    if (!atomic_load(&s->ready)) {
        api_reply_error(r, 503, "server_error", NULL, "model_loading", "the model is still loading");
        return;
    }
    chat_completion_env env = {.reg = s->reg,
                               .model_id = s->model_id,
                               .model_stem = s->model_stem,
                               .max_tokens = s->cfg.max_tokens,
                               .observe = observe_completion,
                               .observe_ctx = s,
                               .api = s->api,
                               .who = rq->who};
    chat_completion_handle(&env, rq->body, rq->len, r);
}

// GET /, /index.html, /web/…, /vendor/dygraphs/… (public: the dashboard's API calls carry the key)
void server_get_static(server *s, const api_request *rq, api_reply *r) {
    char path[1200];
    const char *ctype = NULL;
    int fd = -1;
    struct stat sb;
    if (static_resolve(s->cfg.web_dir ? s->cfg.web_dir : "web", rq->path, path, sizeof(path), &ctype) > 0)
        fd = open(path, O_RDONLY);
    if (fd < 0 || fstat(fd, &sb)) {
        if (fd >= 0) close(fd);
        api_reply_error(r, 404, "invalid_request_error", NULL, "not_found", "no such file");
        return;
    }
    r->status = 200;
    r->fd = fd;
    r->size = (uint64_t)sb.st_size;
    r->ctype = ctype;
    r->no_cache = 1;
}

// ---- requests ------------------------------------------------------------------------------

// Who a request acts for, from the key it presents (Authorization: Bearer KEY, or X-Api-Key):
// - the server's own key (--api-key-file, TOOLRL_API_KEY), compared in constant time
//   (trl_secret_equal: how long the comparison takes says nothing about how much of a guess was
//   right), is an admin of the project "default";
// - a stored key (toolrl keys create) is found by the SHA-256 of what was presented (an index
//   lookup, nothing secret compared byte by byte): its project, admin or not; a revoked one
//   is refused whatever the mode;
// - with neither a server key nor an active stored key (the keyless mode, meant for loopback),
//   every request is an admin of "default", as before keys existed.
// NULL with p filled, or the message of a 401.
static const char *authenticate(server *s, struct MHD_Connection *c, api_principal *p) {
    const char *h = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Authorization");
    const char *given[2] = {h && !strncmp(h, "Bearer ", 7) ? h + 7 : NULL,
                            MHD_lookup_connection_value(c, MHD_HEADER_KIND, "X-Api-Key")};
    const char *key = s->cfg.api_key && *s->cfg.api_key ? s->cfg.api_key : NULL;
    *p = api_keyless;
    for (int i = 0; i < 2 && key; i++)
        if (given[i] && trl_secret_equal(given[i], key)) return NULL;
    for (int i = 0; i < 2 && s->api; i++) {
        if (!given[i] || !*given[i]) continue;
        api_key_result k = api_key_check(s->api, given[i], p);
        if (k == API_KEY_OK) return NULL;
        if (k == API_KEY_REVOKED) return "This API key has been revoked.";
    }
    *p = api_keyless;
    if (!key && !(s->api && api_keys_required(s->api))) return NULL;  // the keyless mode
    return "Incorrect or missing API key (send Authorization: Bearer <key>).";
}

// A connection's timeout is MHD's: seconds without a byte received or sent. Until its request
// is whole (and between keep-alive requests) it is the short request timeout, so idle or
// half-sent connections cannot hold the connection table. Once the request is admitted and its
// handler has answered, the reply gets the send timeout: a stream may wait for a slot (it sends
// a keep-alive every 10 s) and a client may read slowly. The handler's own time does not count:
// libmicrohttpd restarts the timer when a reply is queued (a non-streamed completion generates
// inside the handler for as long as it takes).
static void timeout_set(struct MHD_Connection *c, unsigned seconds) {
    MHD_set_connection_option(c, MHD_CONNECTION_OPTION_TIMEOUT, seconds);
}

static enum MHD_Result send_too_large(server *s, struct MHD_Connection *c) {
    char m[128];
    snprintf(m, sizeof(m), "the request body is larger than %zu bytes", s->cfg.max_body);
    return send_error(s, c, 413, "invalid_request_error", NULL, "request_too_large", m);
}

// 405 for a known path: "method not allowed; use GET or POST /v1/fine_tuning/jobs", with Allow.
static enum MHD_Result send_method_not_allowed(server *s, struct MHD_Connection *c, const route_match *m) {
    api_error err;
    api_error_set(&err, 405, "invalid_request_error", NULL, "method_not_allowed", "method not allowed; use %s %s",
                  m->use, m->path_route->path);
    cJSON *j = api_error_json(&err);
    char *body = j ? cJSON_PrintUnformatted(j) : NULL;
    cJSON_Delete(j);
    count_status(s, 405);
    if (!body) return MHD_NO;
    struct MHD_Response *r = MHD_create_response_from_buffer(strlen(body), body, MHD_RESPMEM_MUST_FREE);
    if (!r) {
        free(body);
        return MHD_NO;
    }
    MHD_add_response_header(r, "Content-Type", "application/json");
    MHD_add_response_header(r, "Allow", m->allow);
    enum MHD_Result ret = MHD_queue_response(c, 405, r);
    MHD_destroy_response(r);
    return ret;
}

// The whole request is in: answers from the table.
static enum MHD_Result dispatch(server *s, struct MHD_Connection *c, const char *url, const char *method,
                                conn_state *cs) {
    const route_match *m = &cs->m;
    if (cs->found == ROUTES_NOT_FOUND)
        return send_error(s, c, 404, "invalid_request_error", NULL, "not_found", "unknown endpoint");
    if (m->path_route->store && !s->api)
        return send_error(s, c, 404, "invalid_request_error", NULL, "not_found",
                          "this server runs without a job store (start it with --db PATH)");
    if (cs->found == ROUTES_BAD_METHOD) return send_method_not_allowed(s, c, m);
    const route *rt = m->route;
    if (cs->too_big && strcmp(rt->method, "GET")) return send_too_large(s, c);  // GET routes ignore bodies
    if (cs->body.oom) return send_error(s, c, 500, "server_error", NULL, NULL, "out of memory");
    api_request rq = {.method = method,
                      .path = url,
                      .n_params = m->n_params,
                      .body = rt->body == ROUTE_BODY_JSON ? cs->body.buf : NULL,
                      .len = rt->body == ROUTE_BODY_JSON ? cs->len : 0,
                      .arg = query_arg,
                      .arg_ctx = c,
                      .who = &cs->who};
    memcpy(rq.params, m->params, sizeof(rq.params));
    if (rt->body == ROUTE_BODY_UPLOAD) {
        if (!cs->up && cs->pp_failed)
            return send_error(s, c, 500, "server_error", NULL, NULL, "cannot store the upload (disk?)");
        if (cs->up) {
            rq.upload_complete = MHD_destroy_post_processor(cs->pp) == MHD_YES && !cs->pp_failed;
            cs->pp = NULL;
            rq.upload = cs->up;  // the handler finishes (and frees) it
            cs->up = NULL;
        }
    }
    api_reply r;
    api_reply_init(&r);
    if (rt->store) rt->store(s->api, &rq, &r);
    else rt->serve(s, &rq, &r);
    return send_reply(s, c, &r);
}

// The request line and headers are in: route, auth, and the body's fate.
static enum MHD_Result begin(server *s, struct MHD_Connection *c, const char *url, const char *method,
                             conn_state *cs) {
    cs->found = routes_match(routes_table, routes_count, method, url, &cs->m);
    const route *rt = cs->m.path_route;  // a path's entries share its auth (routes.c)
    const char *refused = rt && rt->auth == ROUTE_AUTH_PUBLIC ? NULL : authenticate(s, c, &cs->who);
    if (refused) {
        cs->answered = 1;
        return send_error(s, c, 401, "authentication_error", NULL, "invalid_api_key", refused);
    }
    rt = cs->m.route;
    if (rt && rt->body == ROUTE_BODY_UPLOAD && s->api) {
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
    const char *cl = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Content-Length");
    if (cl && strtoull(cl, NULL, 10) > s->cfg.max_body) {
        cs->answered = 1;
        return send_too_large(s, c);
    }
    return MHD_YES;
}

// A piece of the body: kept for ROUTE_BODY_JSON routes, counted for the others.
static void body_append(server *s, conn_state *cs, const char *data, size_t n) {
    if (cs->too_big) return;
    if (cs->len + n > s->cfg.max_body) {
        cs->too_big = 1;
        return;
    }
    if (cs->m.route && cs->m.route->body == ROUTE_BODY_JSON) strbuf_add(&cs->body, data, n);
    cs->len += n;
}

static enum MHD_Result handle(void *cls, struct MHD_Connection *c, const char *url, const char *method,
                              const char *version, const char *upload, size_t *upload_size, void **req) {
    (void)version;
    server *s = cls;
    if (*req == NULL) {  // first call: the request line and headers
        conn_state *cs = calloc(1, sizeof(*cs));
        if (!cs) return MHD_NO;
        *req = cs;
        atomic_fetch_add(&s->met.requests, 1);
        return begin(s, c, url, method, cs);
    }
    conn_state *cs = *req;
    if (*upload_size) {
        size_t n = *upload_size;
        *upload_size = 0;
        if (cs->answered) return MHD_YES;
        if (cs->pp) {
            if (MHD_post_process(cs->pp, upload, n) != MHD_YES) cs->pp_failed = 1;
        } else if (!(cs->m.route && cs->m.route->body == ROUTE_BODY_UPLOAD && s->api)) {
            body_append(s, cs, upload, n);
        }  // else a non-multipart upload: ignored, answered with 400 at the end
        return MHD_YES;
    }
    if (cs->answered) return MHD_YES;  // a response is queued already
    enum MHD_Result ret = dispatch(s, c, url, method, cs);
    timeout_set(c, s->send_timeout);  // the reply's (see timeout_set)
    return ret;
}

static void completed(void *cls, struct MHD_Connection *c, void **req, enum MHD_RequestTerminationCode toe) {
    server *s = cls;
    // sent: the connection may wait for its next request, under the request timeout again
    if (toe == MHD_REQUEST_TERMINATED_COMPLETED_OK) timeout_set(c, s->request_timeout);
    conn_state *cs = *req;
    if (!cs) return;
    if (cs->pp) MHD_destroy_post_processor(cs->pp);
    api_upload_abort(cs->up);  // a cut upload leaves nothing behind
    strbuf_free(&cs->body);
    free(cs);
    *req = NULL;
}

// ---- the daemon ----------------------------------------------------------------------------

int server_start(server **out, const server_config *cfg, trl_err *e) {
    server *s = calloc(1, sizeof(*s));
    if (!s) return trl_errf(e, "out of memory");
    s->cfg = *cfg;
    if (cfg->dev) s->dev = *cfg->dev;
    else device_open(&s->dev, "cpu", NULL);
    s->cfg.dev = &s->dev;
    if (s->cfg.n_slots <= 0) s->cfg.n_slots = 8;
    if (s->cfg.n_ctx <= 0) s->cfg.n_ctx = 2048;
    if (s->cfg.max_queue <= 0) s->cfg.max_queue = 64;
    if (s->cfg.max_tokens <= 0) s->cfg.max_tokens = 512;
    if (s->cfg.max_body == 0) s->cfg.max_body = 4u << 20;
    s->created = time(NULL);
    if (s->cfg.conns_per_ip == 0) s->cfg.conns_per_ip = 32;
    if (s->cfg.request_timeout == 0) s->cfg.request_timeout = 10;
    if (s->cfg.send_timeout == 0) s->cfg.send_timeout = 120;
    if (s->cfg.send_timeout > 0 && s->cfg.send_timeout < 20) {
        free(s);
        return trl_errf(e, "the send timeout must be at least 20 s (a stream waiting for a slot sends a keep-alive "
                           "every 10 s), got %d", cfg->send_timeout);
    }
    s->request_timeout = s->cfg.request_timeout > 0 ? (unsigned)s->cfg.request_timeout : 0;
    s->send_timeout = s->cfg.send_timeout > 0 ? (unsigned)s->cfg.send_timeout : 0;
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
    unsigned per_ip = s->cfg.conns_per_ip > 0 ? (unsigned)s->cfg.conns_per_ip : 0;  // MHD: 0 = no limit
    // New connections start under the request timeout; timeout_set switches it per connection.
    s->d = MHD_start_daemon(MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_THREAD_PER_CONNECTION | MHD_USE_POLL, 0, NULL,
                            NULL, handle, s, MHD_OPTION_SOCK_ADDR, &addr, MHD_OPTION_CONNECTION_LIMIT, limit,
                            MHD_OPTION_PER_IP_CONNECTION_LIMIT, per_ip, MHD_OPTION_CONNECTION_TIMEOUT,
                            s->request_timeout, MHD_OPTION_NOTIFY_COMPLETED, completed, s, MHD_OPTION_END);
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
                                    .n_threads = s->cfg.compute_threads,
                                    .be = s->dev.be},
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

int server_host_is_loopback(const char *host) {
    struct in_addr a;
    if (!host || inet_pton(AF_INET, host, &a) != 1) return -1;
    return (ntohl(a.s_addr) >> 24) == 127;
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
