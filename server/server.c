// server.c: libmicrohttpd daemon with a thread pool, JSON responses built with cJSON, and
// errors in OpenAI's shape ({"error":{"message","type","param","code"}}).
#include "server.h"

#include <arpa/inet.h>
#include <cjson/cJSON.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct server {
    struct MHD_Daemon *d;
    server_config cfg;
    model m;
    atomic_int ready;   // 1 once the model is loaded
    char model_id[256];
};

static enum MHD_Result send_json(struct MHD_Connection *c, unsigned status, cJSON *j) {
    char *body = cJSON_PrintUnformatted(j);
    cJSON_Delete(j);
    if (!body) return MHD_NO;
    struct MHD_Response *r = MHD_create_response_from_buffer(strlen(body), body, MHD_RESPMEM_MUST_FREE);
    if (!r) {
        free(body);
        return MHD_NO;
    }
    MHD_add_response_header(r, "Content-Type", "application/json");
    enum MHD_Result ret = MHD_queue_response(c, status, r);
    MHD_destroy_response(r);
    return ret;
}

static enum MHD_Result send_error(struct MHD_Connection *c, unsigned status, const char *msg, const char *type,
                                  const char *code) {
    cJSON *j = cJSON_CreateObject(), *err = cJSON_AddObjectToObject(j, "error");
    cJSON_AddStringToObject(err, "message", msg);
    cJSON_AddStringToObject(err, "type", type);
    cJSON_AddNullToObject(err, "param");
    if (code) cJSON_AddStringToObject(err, "code", code);
    else cJSON_AddNullToObject(err, "code");
    return send_json(c, status, j);
}

static enum MHD_Result handle(void *cls, struct MHD_Connection *c, const char *url, const char *method,
                              const char *version, const char *upload, size_t *upload_size, void **req) {
    (void)version;
    (void)upload;
    server *s = cls;
    if (*req == NULL) {  // first call: headers only
        *req = (void *)1;
        return MHD_YES;
    }
    if (*upload_size) {  // no endpoint takes a body yet: drain it
        *upload_size = 0;
        return MHD_YES;
    }
    if (!strcmp(url, "/health")) {
        if (strcmp(method, "GET") && strcmp(method, "HEAD"))
            return send_error(c, MHD_HTTP_METHOD_NOT_ALLOWED, "use GET /health", "invalid_request_error", NULL);
        cJSON *j = cJSON_CreateObject();
        int ok = atomic_load(&s->ready);
        cJSON_AddStringToObject(j, "status", ok ? "ok" : "loading");
        if (ok) cJSON_AddStringToObject(j, "model", s->model_id);
        return send_json(c, ok ? MHD_HTTP_OK : MHD_HTTP_SERVICE_UNAVAILABLE, j);
    }
    return send_error(c, MHD_HTTP_NOT_FOUND, "unknown endpoint", "invalid_request_error", "not_found");
}

int server_start(server **out, const server_config *cfg, trl_err *e) {
    server *s = calloc(1, sizeof(*s));
    if (!s) return trl_errf(e, "out of memory");
    s->cfg = *cfg;
    struct sockaddr_in addr;
    memset(&addr, 0, sizeof(addr));
    addr.sin_family = AF_INET;
    addr.sin_port = htons(cfg->port);
    if (inet_pton(AF_INET, cfg->host ? cfg->host : "127.0.0.1", &addr.sin_addr) != 1) {
        free(s);
        return trl_errf(e, "bad --host address '%s' (IPv4 expected)", cfg->host);
    }
    s->d = MHD_start_daemon(MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_EPOLL, 0, NULL, NULL, handle, s,
                            MHD_OPTION_SOCK_ADDR, &addr, MHD_OPTION_THREAD_POOL_SIZE,
                            (unsigned)(cfg->threads > 0 ? cfg->threads : 4), MHD_OPTION_CONNECTION_TIMEOUT,
                            (unsigned)60, MHD_OPTION_END);
    if (!s->d) {
        free(s);
        return trl_errf(e, "cannot listen on %s:%u (port in use?)", cfg->host ? cfg->host : "127.0.0.1", cfg->port);
    }
    *out = s;
    return TRL_OK;
}

int server_load_model(server *s, trl_err *e) {
    if (model_load(&s->m, s->cfg.model_path, e)) return TRL_ERR;
    const char *base = strrchr(s->cfg.model_path, '/');
    snprintf(s->model_id, sizeof(s->model_id), "%s", base ? base + 1 : s->cfg.model_path);
    atomic_store(&s->ready, 1);
    return TRL_OK;
}

uint16_t server_port(const server *s) {
    const union MHD_DaemonInfo *i = MHD_get_daemon_info(s->d, MHD_DAEMON_INFO_BIND_PORT);
    return i ? i->port : 0;
}

void server_stop(server *s) {
    if (!s) return;
    MHD_stop_daemon(s->d);
    model_free(&s->m);
    free(s);
}
