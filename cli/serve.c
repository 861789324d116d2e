// serve.c: `toolrl serve`: start the HTTP server, load the model, run until SIGINT/SIGTERM.
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "cli.h"
#include "server.h"

static volatile sig_atomic_t g_stop;
static void on_signal(int sig) {
    (void)sig;
    g_stop = 1;
}

int cli_serve(int argc, char **argv) {
    static const char *const known[] = {"--model", "--host", "--port", "--threads", NULL};
    cli_check_opts(argc, argv, known);
    server_config cfg = {cli_opt(argc, argv, "--host", "127.0.0.1"), (uint16_t)cli_opt_int(argc, argv, "--port", 8080),
                         (int)cli_opt_int(argc, argv, "--threads", 4), cli_opt(argc, argv, "--model", NULL)};
    if (!cfg.model_path) {
        fprintf(stderr, "toolrl serve: --model PATH is required\n");
        return 2;
    }
    cli_set_threads(2);
    signal(SIGINT, on_signal);
    signal(SIGTERM, on_signal);
    signal(SIGPIPE, SIG_IGN);
    server *s;
    trl_err e = {{0}};
    if (server_start(&s, &cfg, &e)) {
        fprintf(stderr, "toolrl serve: %s\n", e.msg);
        return 1;
    }
    fprintf(stderr, "toolrl serve: listening on http://%s:%u (loading %s)\n", cfg.host, server_port(s), cfg.model_path);
    if (server_load_model(s, &e)) {
        fprintf(stderr, "toolrl serve: cannot load model: %s\n", e.msg);
        server_stop(s);
        return 1;
    }
    fprintf(stderr, "toolrl serve: ready\n");
    while (!g_stop) pause();
    fprintf(stderr, "toolrl serve: stopping\n");
    server_stop(s);
    return 0;
}
