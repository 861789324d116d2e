// server.h: the HTTP server (libmicrohttpd). For now it serves GET /health: 503 while the
// model loads, 200 once it can answer. The OpenAI-compatible endpoints build on this.
#ifndef TOOLRL_SERVER_H
#define TOOLRL_SERVER_H

#include <stdint.h>

#include "model.h"
#include "util.h"

typedef struct server server;

typedef struct {
    const char *host;   // bind address, default 127.0.0.1
    uint16_t port;      // 0 picks a free port (see server_port)
    int threads;        // HTTP worker threads
    const char *model_path;
} server_config;

// Starts listening at once; the model is loaded afterwards by server_load_model so that
// /health answers 503 during the load.
int server_start(server **out, const server_config *cfg, trl_err *e);
int server_load_model(server *s, trl_err *e);
uint16_t server_port(const server *s);
void server_stop(server *s);

#endif
