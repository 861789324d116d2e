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
    static const char *const known[] = {"--model",   "--host",      "--port",      "--threads",  "--api-key",
                                        "--slots",   "--ctx",       "--max-queue", "--max-tokens", "--max-body",
                                        "--compute-threads", "--db", "--data-dir", "--max-upload", "--workers",
                                        "--out", "--no-db!", "--web-dir", NULL};
    cli_check_opts(argc, argv, known);
    server_config cfg = {0};
    cfg.host = cli_opt(argc, argv, "--host", "127.0.0.1");
    cfg.port = (uint16_t)cli_opt_int(argc, argv, "--port", 8080);
    cfg.threads = (int)cli_opt_int(argc, argv, "--threads", 4);
    cfg.model_path = cli_opt(argc, argv, "--model", NULL);
    cfg.api_key = cli_opt(argc, argv, "--api-key", getenv("TOOLRL_API_KEY"));
    cfg.n_slots = (int)cli_opt_int(argc, argv, "--slots", 8);
    cfg.n_ctx = (int)cli_opt_int(argc, argv, "--ctx", 2048);
    cfg.max_queue = (int)cli_opt_int(argc, argv, "--max-queue", 64);
    cfg.max_tokens = (int)cli_opt_int(argc, argv, "--max-tokens", 512);
    cfg.max_body = (size_t)cli_opt_int(argc, argv, "--max-body", 4L << 20);
    if (!cfg.model_path) {
        fprintf(stderr, "toolrl serve: --model PATH is required\n");
        return 2;
    }
    cfg.compute_threads = (int)cli_opt_int(argc, argv, "--compute-threads", 2);
    cfg.db_path = cli_flag(argc, argv, "--no-db") ? NULL : cli_opt(argc, argv, "--db", "var/toolrl.db");
    cfg.data_dir = cli_opt(argc, argv, "--data-dir", "var/files");
    cfg.web_dir = cli_opt(argc, argv, "--web-dir", "web");
    cfg.max_upload = (size_t)cli_opt_int(argc, argv, "--max-upload", 256L << 20);
    int n_workers = (int)cli_opt_int(argc, argv, "--workers", 0);
    const char *out_dir = cli_opt(argc, argv, "--out", "var/checkpoints");
    if (n_workers > 0 && !cfg.db_path) {
        fprintf(stderr, "toolrl serve: --workers needs the job store (drop --no-db)\n");
        return 2;
    }
    cli_set_threads(cfg.compute_threads);
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
    fprintf(stderr, "toolrl serve: ready%s\n", cfg.api_key && *cfg.api_key ? " (API key required)" : "");
    pid_t workers[16];
    if (n_workers > 16) n_workers = 16;
    for (int i = 0; i < n_workers; i++) {
        workers[i] = cli_spawn_worker(cfg.db_path, cfg.model_path, out_dir, cfg.compute_threads);
        if (workers[i] < 0) fprintf(stderr, "toolrl serve: cannot start worker %d\n", i);
        else fprintf(stderr, "toolrl serve: worker %d is process %d\n", i, (int)workers[i]);
    }
    while (!g_stop) pause();
    fprintf(stderr, "toolrl serve: stopping\n");
    for (int i = 0; i < n_workers; i++) cli_stop_worker(workers[i]);
    server_stop(s);
    return 0;
}
