// serve.c: `toolrl serve`: start the HTTP server, load the model, run until SIGINT/SIGTERM.
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli/cli.h"
#include "server/server.h"
#include "store/store.h"

static const cli_option SERVE_OPTIONS[] = {
    CLI_OPTION_MODEL,
    {.name = "--host", .arg = "ADDR", .def = "127.0.0.1", .help = "address to listen on"},
    {.name = "--port", .arg = "N", .def = "8080", .help = "TCP port; 0 picks a free one"},
    {.name = "--threads", .arg = "N", .def = "4", .help = "HTTP connection budget: at most 64*N open connections"},
    {.name = "--api-key-file", .arg = "PATH",
     .help = "key clients must send as 'Authorization: Bearer KEY', read from the file's first line (computed: "
             "else --api-key, else $TOOLRL_API_KEY, else no key)"},
    {.name = "--api-key", .arg = "KEY", .help = "the key itself; every user sees it in ps: prefer the file or the variable"},
    {.name = "--conns-per-ip", .arg = "N", .def = "32",
     .help = "open connections one client address may hold; 0: no limit (behind a reverse proxy)"},
    {.name = "--request-timeout", .arg = "S", .def = "10",
     .help = "seconds a connection may stay silent before its request is whole, or between requests; 0: none"},
    {.name = "--send-timeout", .arg = "S", .def = "120",
     .help = "seconds a reply may go without the client taking a byte; 0: none, else at least 20"},
    {.name = "--slots", .arg = "N", .def = "8", .help = "sequences decoded together by continuous batching"},
    {.name = "--ctx", .arg = "N", .def = "2048", .help = "context length of each sequence, in tokens"},
    {.name = "--max-queue", .arg = "N", .def = "64", .help = "requests waiting for a slot before 429"},
    {.name = "--max-tokens", .arg = "N", .def = "512", .help = "completion limit when a request sets none"},
    {.name = "--max-body", .arg = "BYTES", .def = "4194304", .help = "request body limit, 4 MiB by default"},
    {.name = "--compute-threads", .arg = "N", .def = "2", .help = "compute threads of the engine and of each worker"},
    CLI_OPTION_DEVICE,
    {.name = "--db", .arg = "PATH", .def = "var/toolrl.db",
     .help = "the job store (SQLite): files, fine-tuning jobs, models"},
    {.name = "--data-dir", .arg = "DIR", .def = "var/files", .help = "where uploaded files go"},
    {.name = "--max-upload", .arg = "BYTES", .def = "268435456", .help = "upload size limit, 256 MiB by default"},
    {.name = "--workers", .arg = "N", .def = "0",
     .help = "`toolrl worker` processes to start beside the server, at most 16"},
    {.name = "--out", .arg = "DIR", .def = "var/checkpoints", .help = "the workers' checkpoint folder"},
    {.name = "--no-db", .help = "serve only the model: no job store, no training API; --db is ignored"},
    {.name = "--web-dir", .arg = "DIR", .def = "web", .help = "the dashboard's files"},
    {0}};

static const cli_env SERVE_ENV[] = {
    {.name = "TOOLRL_API_KEY", .help = "the API key when neither --api-key-file nor --api-key is given"},
    {.name = "TOOLRL_SHARED", .help = "--workers: the shared benchmark data of evaluation jobs (default ../shared)"},
    {0}};

// The API key: the first line of --api-key-file, else --api-key (warned: other users see it in
// ps; it is blanked from the arguments at once, which only shortens that window), else
// $TOOLRL_API_KEY, else none (""). A key is visible ASCII without spaces. 0, or 2 after
// printing a usage error.
static int api_key_resolve(const cli_args *a, char *key, size_t cap) {
    const char *file = cli_get(a, "--api-key-file");
    int i = cli_get_next(a, "--api-key", 0);
    const char *env = getenv("TOOLRL_API_KEY");
    key[0] = 0;
    if (file && i) {
        fprintf(stderr, "toolrl serve: give --api-key-file or --api-key, not both\n");
        return 2;
    }
    const char *k = "";
    char *text = NULL;
    if (file) {
        trl_err e = {{0}};
        text = trl_read_file(file, NULL, &e);
        if (!text) {
            fprintf(stderr, "toolrl serve: --api-key-file: %s\n", e.msg);
            return 2;
        }
        text[strcspn(text, "\r\n")] = 0;
        if (!*text) {
            fprintf(stderr, "toolrl serve: --api-key-file: %s: the first line is empty\n", file);
            free(text);
            return 2;
        }
        k = text;
    } else if (i) {
        fprintf(stderr, "toolrl serve: warning: --api-key shows the key to every user of this machine (ps, "
                        "/proc/PID/cmdline); use --api-key-file PATH or TOOLRL_API_KEY\n");
        k = a->argv[i];
    } else if (env) {
        k = env;
    }
    int bad = strlen(k) >= cap;
    for (const char *p = k; *p && !bad; p++) bad = *p < 0x21 || *p > 0x7e;
    if (bad) fprintf(stderr, "toolrl serve: the API key must be at most %zu visible ASCII characters, no spaces\n",
                     cap - 1);
    else snprintf(key, cap, "%s", k);
    if (i) memset(a->argv[i], '*', strlen(a->argv[i]));
    free(text);
    return bad ? 2 : 0;
}

// 1 when the job store at db exists and has an active key (toolrl keys create): then the server
// asks every request for a key even without one of its own.
static int store_has_keys(const char *db) {
    store *st = NULL;
    trl_err e = {{0}};
    int64_t n = 0;
    if (!db || access(db, F_OK) || store_open(&st, db, &e)) return 0;
    if (store_key_count(st, 0, &n, &e)) n = 0;
    store_close(st);  // before the workers fork: a store handle never crosses fork()
    return n > 0;
}

// A timeout or limit option: 0 on the command line means none, which server_config spells < 0.
static int zero_is_none(long v) { return v == 0 ? -1 : (int)v; }

static int cli_serve(const cli_args *a) {
    static char api_key[1024];
    if (api_key_resolve(a, api_key, sizeof(api_key))) return 2;
    server_config cfg = {0};
    cfg.host = cli_get(a, "--host");
    cfg.port = (uint16_t)cli_get_int(a, "--port");
    cfg.threads = (int)cli_get_int(a, "--threads");
    cfg.model_path = cli_get(a, "--model");
    cfg.api_key = api_key[0] ? api_key : NULL;
    cfg.conns_per_ip = zero_is_none(cli_get_int(a, "--conns-per-ip"));
    cfg.request_timeout = zero_is_none(cli_get_int(a, "--request-timeout"));
    cfg.send_timeout = zero_is_none(cli_get_int(a, "--send-timeout"));
    cfg.n_slots = (int)cli_get_int(a, "--slots");
    cfg.n_ctx = (int)cli_get_int(a, "--ctx");
    cfg.max_queue = (int)cli_get_int(a, "--max-queue");
    cfg.max_tokens = (int)cli_get_int(a, "--max-tokens");
    cfg.max_body = (size_t)cli_get_int(a, "--max-body");
    cfg.compute_threads = (int)cli_get_int(a, "--compute-threads");
    cfg.db_path = cli_get_flag(a, "--no-db") ? NULL : cli_get(a, "--db");
    cfg.data_dir = cli_get(a, "--data-dir");
    cfg.web_dir = cli_get(a, "--web-dir");
    cfg.max_upload = (size_t)cli_get_int(a, "--max-upload");
    int n_workers = (int)cli_get_int(a, "--workers");
    const char *out_dir = cli_get(a, "--out");
    if (n_workers > 0 && !cfg.db_path) {
        fprintf(stderr, "toolrl serve: --workers needs the job store (drop --no-db)\n");
        return 2;
    }
    int stored_keys = store_has_keys(cfg.db_path);
    if (server_host_is_loopback(cfg.host) == 0 && !cfg.api_key && !stored_keys)
        fprintf(stderr, "toolrl serve: warning: %s is not a loopback address and there is no API key: anyone who "
                        "reaches it may use the API (set TOOLRL_API_KEY or --api-key-file, or make keys with "
                        "`toolrl keys create`)\n", cfg.host);
    cli_set_threads(cfg.compute_threads);
    device dev;
    if (cli_device_open(a, &dev)) return 2;
    cfg.dev = &dev;
    volatile sig_atomic_t *stop = cli_stop_on_signals();
    signal(SIGPIPE, SIG_IGN);
    server *s;
    trl_err e = {{0}};
    if (server_start(&s, &cfg, &e)) {
        fprintf(stderr, "toolrl serve: %s\n", e.msg);
        return 1;
    }
    fprintf(stderr, "toolrl serve: listening on http://%s:%u (loading %s on %s%s%s)\n", cfg.host, server_port(s),
            cfg.model_path, dev.name, dev.info[0] ? ", " : "", dev.info);
    if (server_load_model(s, &e)) {
        fprintf(stderr, "toolrl serve: cannot load model: %s\n", e.msg);
        server_stop(s);
        return 1;
    }
    fprintf(stderr, "toolrl serve: ready%s\n", (cfg.api_key && *cfg.api_key) || stored_keys ? " (API key required)" : "");
    pid_t workers[16];
    if (n_workers > 16) n_workers = 16;
    for (int i = 0; i < n_workers; i++) {
        workers[i] = cli_spawn_worker(cfg.db_path, cfg.model_path, out_dir, cfg.compute_threads);
        if (workers[i] < 0) fprintf(stderr, "toolrl serve: cannot start worker %d\n", i);
        else fprintf(stderr, "toolrl serve: worker %d is process %d\n", i, (int)workers[i]);
    }
    while (!*stop) pause();
    fprintf(stderr, "toolrl serve: stopping\n");
    for (int i = 0; i < n_workers; i++) cli_stop_worker(workers[i]);
    server_stop(s);
    return 0;
}

const cli_command CLI_SERVE = {.name = "serve",
                               .summary = "Serve a model over an OpenAI-compatible HTTP API, with fine-tuning jobs "
                                          "and the dashboard.",
                               .usage = "--model PATH [options]",
                               .options = SERVE_OPTIONS,
                               .env = SERVE_ENV,
                               .run = cli_serve};
