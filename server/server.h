// server.h: the HTTP server (libmicrohttpd, one thread per connection): start, load the
// model, stop. Its endpoints are the table in routes.c (docs/api.md); errors use OpenAI's
// {"error":{…}} body.
#ifndef TOOLRL_SERVER_H
#define TOOLRL_SERVER_H

#include <stddef.h>
#include <stdint.h>

#include "base/util.h"
#include "model/device.h"
#include "model/model.h"

typedef struct server server;

typedef struct {
    const char *host;        // bind address, default 127.0.0.1
    uint16_t port;           // 0 picks a free port (see server_port)
    int threads;             // most concurrent HTTP connections / 64 (0 = default)
    int conns_per_ip;        // most open connections from one client address (0 = default 32, < 0 = no limit)
    int request_timeout;     // seconds a connection may stay silent until its request (headers and body)
                             // is whole, and between keep-alive requests (0 = default 10, < 0 = none)
    int send_timeout;        // seconds an admitted request's reply may go without a byte sent; it starts when
                             // the handler has answered, however long it worked (0 = default 120, < 0 = none;
                             // else at least 20: a stream waiting for a slot sends a keep-alive every 10 s)
    const char *model_path;
    const char *api_key;     // NULL or "" = no auth; else Bearer key for all but /health (compared in
                             // constant time)
    int n_slots;             // sequences decoded together (default 8)
    int n_ctx;               // context per sequence (default 2048)
    int max_queue;           // waiting requests before 429 (default 64)
    int max_tokens;          // default completion limit (default 512)
    size_t max_body;         // request body limit in bytes (default 4 MiB)
    int compute_threads;     // OpenMP threads of the engine (0 = OpenMP default)
    const char *db_path;     // the job store: enables /v1/files, /v1/fine_tuning and fine-tuned models
    const char *data_dir;    // uploaded files (default var/files)
    size_t max_upload;       // upload size limit in bytes (default 256 MiB)
    const char *web_dir;     // the dashboard's files (default "web", relative to the working folder)
    const device *dev;       // where the models run (copied; /health and /metrics name it); NULL: the cpu
} server_config;

// Starts listening at once; the model is loaded afterwards by server_load_model so that
// /health answers 503 during the load.
int server_start(server **out, const server_config *cfg, trl_err *e);
int server_load_model(server *s, trl_err *e);
uint16_t server_port(const server *s);
// 1 when host (an IPv4 address as --host takes it) is a loopback address (127.0.0.0/8), 0 when
// not (0.0.0.0 listens on every interface), -1 when it is no IPv4 address.
int server_host_is_loopback(const char *host);
void server_stop(server *s);

#endif
