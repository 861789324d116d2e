// test_server_http.c: the HTTP server on loopback, against raw sockets (no model is loaded:
// the routes used here answer without one).
// - Connections: idle connections from one address (127.0.0.2; Linux routes all of 127/8 to
//   lo, so a client socket can take any of those as its source) stop at the per-address limit
//   and cannot fill the connection table, another address (127.0.0.1) is still served; idle,
//   half-sent and keep-alive connections are closed after the request timeout, while a reply
//   the client reads slowly and a handler that works longer than that timeout are not cut.
// - Keys: compared in constant time (trl_secret_equal) with the same answers as before; `toolrl
//   serve` takes the key from TOOLRL_API_KEY, --api-key-file or --api-key (with a warning, and
//   blanked from its command line), and warns when it listens beyond loopback without a key.
// - Uploads: every rejected upload (bad line, no examples, too large, cut or malformed multipart,
//   wrong purpose, no file field, a client gone mid-body) leaves no file in the data folder and
//   no row in the store.
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <cmocka.h>

#include <sqlite3.h>

#include "base/util.h"
#include "server/server.h"
#include "tests/support/toolrl_bin.h"
#include "tests/support/tiny_model.h"

static char g_toolrl[512];  // the toolrl binary next to this test's build folder

typedef struct {
    char dir[256], db[300], files[300], web[300];
    server *s;
    uint16_t port;
} fx;

static int fx_setup(void **state) {
    fx *f = calloc(1, sizeof(*f));
    if (!f || tiny_model_tempdir(f->dir, sizeof(f->dir))) return -1;
    snprintf(f->db, sizeof(f->db), "%s/t.db", f->dir);
    snprintf(f->files, sizeof(f->files), "%s/files", f->dir);
    snprintf(f->web, sizeof(f->web), "%s/web", f->dir);
    if (mkdir(f->web, 0700)) return -1;
    *state = f;
    return 0;
}

static int fx_teardown(void **state) {
    fx *f = *state;
    server_stop(f->s);
    tiny_model_rmdir(f->dir);
    free(f);
    return 0;
}

// Starts the server of f on 127.0.0.1 with a job store; cfg's other fields as given.
static void fx_start(fx *f, server_config cfg) {
    cfg.host = "127.0.0.1";
    cfg.port = 0;
    cfg.db_path = f->db;
    cfg.data_dir = f->files;
    cfg.web_dir = f->web;
    trl_err e = {{0}};
    if (server_start(&f->s, &cfg, &e)) fail_msg("server_start: %s", e.msg);
    f->port = server_port(f->s);
    assert_true(f->port > 0);
}

// ---- a raw HTTP client ---------------------------------------------------------------------

// A TCP connection from src (a loopback address) to 127.0.0.1:port.
static int conn_open(const char *src, uint16_t port) {
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    assert_true(fd >= 0);
    struct sockaddr_in a = {.sin_family = AF_INET};
    assert_int_equal(inet_pton(AF_INET, src, &a.sin_addr), 1);
    assert_int_equal(bind(fd, (struct sockaddr *)&a, sizeof(a)), 0);
    a.sin_port = htons(port);
    assert_int_equal(inet_pton(AF_INET, "127.0.0.1", &a.sin_addr), 1);
    assert_int_equal(connect(fd, (struct sockaddr *)&a, sizeof(a)), 0);
    return fd;
}

static void send_all(int fd, const void *p, size_t n) {
    const char *c = p;
    while (n) {
        ssize_t w = send(fd, c, n, MSG_NOSIGNAL);
        if (w <= 0) fail_msg("send: %s", strerror(errno));
        c += w, n -= (size_t)w;
    }
}

static void nap(double s) {
    struct timespec ts = {(time_t)s, (long)((s - (double)(time_t)s) * 1e9)};
    while (nanosleep(&ts, &ts) && errno == EINTR) {
    }
}

// Waits until deadline (trl_now() seconds) for the server to close fd (EOF or reset; bytes that
// arrive first are read and dropped). Returns the trl_now() of the close, or -1 if still open.
static double closed_at(int fd, double deadline) {
    char b[4096];
    for (;;) {
        double left = deadline - trl_now();
        struct pollfd p = {.fd = fd, .events = POLLIN};
        int r = poll(&p, 1, left > 0 ? (int)(left * 1000) + 1 : 0);
        if (r < 0 && errno == EINTR) continue;
        if (r <= 0) return -1;
        ssize_t n = recv(fd, b, sizeof(b), MSG_DONTWAIT);
        if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR)) return trl_now();
    }
}

// Reads one response (headers, then Content-Length bytes of body) within max_s. Returns the
// status, or -1 when the connection closed or the time ran out first. The body (NUL-ended,
// truncated to fit) goes to body when it is not NULL.
static int read_response(int fd, char *body, size_t cap, double max_s) {
    size_t bcap = 1 << 16, n = 0;
    char *b = malloc(bcap);
    assert_non_null(b);
    double t0 = trl_now();
    long want = -1, head = -1;
    int status = -1;
    while (want < 0 || (long)n < head + want) {
        double left = max_s - (trl_now() - t0);
        struct pollfd p = {.fd = fd, .events = POLLIN};
        if (left <= 0 || poll(&p, 1, (int)(left * 1000) + 1) <= 0) break;
        if (n + 4096 > bcap) b = realloc(b, bcap *= 2), assert_non_null(b);
        ssize_t r = recv(fd, b + n, bcap - n - 1, 0);
        if (r <= 0) break;
        n += (size_t)r;
        b[n] = 0;
        char *end = head < 0 ? strstr(b, "\r\n\r\n") : NULL;
        if (end) {
            head = end + 4 - b;
            const char *cl = strcasestr(b, "\r\nContent-Length:");
            want = cl && cl < end ? strtol(cl + 17, NULL, 10) : 0;
        }
    }
    if (want >= 0 && (long)n >= head + want) {
        sscanf(b, "HTTP/1.1 %d", &status);
        if (body) snprintf(body, cap, "%.*s", (int)want, b + head);
    }
    free(b);
    return status;
}

// One request on a fresh connection from 127.0.0.1; the status (-1: no response).
static int request(uint16_t port, const char *method, const char *path, const char *headers, char *body,
                   size_t cap) {
    int fd = conn_open("127.0.0.1", port);
    char req[1024];
    snprintf(req, sizeof(req), "%s %s HTTP/1.1\r\nHost: t\r\nConnection: close\r\n%s\r\n", method, path,
             headers ? headers : "");
    send_all(fd, req, strlen(req));
    int st = read_response(fd, body, cap, 10);
    close(fd);
    return st;
}

// ---- connections ---------------------------------------------------------------------------

// The finding of issue 26: idle connections from one client filled the table (here 64: one
// HTTP thread) and every other client was turned away. Now one address holds at most
// conns_per_ip; the rest are closed at once, and 127.0.0.1 is served throughout.
static void test_idle_flood_from_one_address(void **state) {
    fx *f = *state;
    fx_start(f, (server_config){.threads = 1, .conns_per_ip = 4, .request_timeout = 30});
    enum { FLOOD = 100, LIMIT = 4 };
    int fds[FLOOD], open_[FLOOD], n_open = FLOOD;
    for (int i = 0; i < FLOOD; i++) fds[i] = conn_open("127.0.0.2", f->port), open_[i] = 1;
    // all but LIMIT are closed by the server at once; LIMIT stay (idle, under a 30 s timeout)
    for (double until = trl_now() + 10; n_open > LIMIT && trl_now() < until;)
        for (int i = 0; i < FLOOD; i++)
            if (open_[i] && closed_at(fds[i], 0) > 0) open_[i] = 0, n_open--;
    nap(0.3);
    for (int i = 0; i < FLOOD; i++)
        if (open_[i] && closed_at(fds[i], 0) > 0) open_[i] = 0, n_open--;
    assert_int_equal(n_open, LIMIT);
    // another address is served
    char body[4096];
    assert_int_equal(request(f->port, "GET", "/v1/models", NULL, body, sizeof(body)), 200);
    assert_non_null(strstr(body, "\"object\":\"list\""));
    // 127.0.0.2 is refused while it holds its LIMIT ...
    int extra = conn_open("127.0.0.2", f->port);
    assert_true(closed_at(extra, trl_now() + 2) > 0);
    close(extra);
    // ... and served again once it lets one go
    int first = -1;
    for (int i = 0; i < FLOOD; i++) {
        if (open_[i] && first < 0) first = i;
        else close(fds[i]);
    }
    close(fds[first]);
    int st = -1;
    for (int tries = 0; tries < 40 && st != 200; tries++) {  // until the server has seen the closes
        int fd = conn_open("127.0.0.2", f->port);
        const char *req = "GET /v1/models HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n";
        send_all(fd, req, strlen(req));
        st = read_response(fd, NULL, 0, 2);
        close(fd);
        if (st != 200) nap(0.05);
    }
    assert_int_equal(st, 200);
}

// A connection that sends nothing, one that stops in the middle of its headers, and one that
// stays open after a reply are all closed after the request timeout (1 s), not the old 600 s.
static void test_request_timeout(void **state) {
    fx *f = *state;
    fx_start(f, (server_config){.request_timeout = 1});
    double t0 = trl_now();
    int idle = conn_open("127.0.0.1", f->port);
    int half = conn_open("127.0.0.1", f->port);
    const char *part = "GET /v1/models HTTP/1.1\r\nHost: t\r\n";
    send_all(half, part, strlen(part));
    int kept = conn_open("127.0.0.1", f->port);
    const char *req = "GET /v1/models HTTP/1.1\r\nHost: t\r\n\r\n";
    send_all(kept, req, strlen(req));
    assert_int_equal(read_response(kept, NULL, 0, 5), 200);
    double t_kept0 = trl_now();
    double t_idle = closed_at(idle, t0 + 5) - t0, t_half = closed_at(half, t0 + 5) - t0;
    double t_kept = closed_at(kept, t0 + 5) - t_kept0;
    assert_true(t_idle > 0.9 && t_idle < 3.5);
    assert_true(t_half > 0.9 && t_half < 3.5);
    assert_true(t_kept > 0.9 && t_kept < 3.5);
    close(idle), close(half), close(kept);
}

// A reply the client reads slowly: it pauses 2.5 s, longer than the request timeout, while the
// server's socket buffers are full (a 24 MB file). The reply is under the send timeout (120 s),
// so every byte arrives.
static void test_slow_reader_gets_whole_reply(void **state) {
    fx *f = *state;
    enum { SIZE = 24 << 20 };
    char path[400];
    snprintf(path, sizeof(path), "%s/big.bin", f->web);
    FILE *o = fopen(path, "wb");
    assert_non_null(o);
    char *blk = calloc(1, 1 << 20);
    for (int i = 0; i < SIZE >> 20; i++) assert_int_equal(fwrite(blk, 1, 1 << 20, o), 1 << 20);
    free(blk);
    fclose(o);
    fx_start(f, (server_config){.request_timeout = 1});
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    int rcv = 4096;
    setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &rcv, sizeof(rcv));
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(f->port)};
    inet_pton(AF_INET, "127.0.0.1", &a.sin_addr);
    assert_int_equal(connect(fd, (struct sockaddr *)&a, sizeof(a)), 0);
    const char *req = "GET /web/big.bin HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n";
    send_all(fd, req, strlen(req));
    char b[65536];
    size_t got = 0;
    ssize_t r = recv(fd, b, 1000, 0);
    assert_true(r > 0);
    got += (size_t)r;
    nap(2.5);
    while ((r = recv(fd, b, sizeof(b), 0)) > 0) got += (size_t)r;
    close(fd);
    assert_true(got > SIZE);  // the headers and every byte of the file
    assert_true(got < SIZE + 1024);
}

typedef struct {
    double hold_s;
    sqlite3 *h;
} lock_holder;

// Holds the store's write lock for hold_s seconds.
static void *hold_lock(void *p) {
    lock_holder *l = p;
    nap(l->hold_s);
    sqlite3_exec(l->h, "COMMIT", NULL, NULL, NULL);
    return NULL;
}

static const char *ROW =
    "{\"id\": \"r%d\", \"source\": \"test\", \"messages\": [{\"role\": \"user\", \"content\": \"add %d\"}], "
    "\"tools\": [{\"type\": \"function\", \"function\": {\"name\": \"add\", \"parameters\": {\"type\": \"dict\", "
    "\"properties\": {\"a\": {\"type\": \"integer\"}}}}}], \"answer\": [{\"name\": \"add\", \"arguments\": {\"a\": "
    "%d}}]}\n";

// A multipart/form-data upload request (boundary XyZ) with the given fields; file may be NULL
// (no file field), purpose NULL (none); cut drops the closing boundary. malloc'd, *len its size.
static char *upload_request(const char *purpose, const char *file, size_t file_len, int cut, size_t *len) {
    size_t cap = file_len + 1024;
    char *body = malloc(cap), *req = malloc(cap + 512);
    assert_non_null(body);
    assert_non_null(req);
    size_t n = 0;
    if (purpose)
        n += (size_t)snprintf(body + n, cap - n,
                              "--XyZ\r\nContent-Disposition: form-data; name=\"purpose\"\r\n\r\n%s\r\n", purpose);
    if (file) {
        n += (size_t)snprintf(body + n, cap - n,
                              "--XyZ\r\nContent-Disposition: form-data; name=\"file\"; filename=\"t.jsonl\"\r\n"
                              "Content-Type: application/octet-stream\r\n\r\n");
        memcpy(body + n, file, file_len);
        n += file_len;
        n += (size_t)snprintf(body + n, cap - n, "\r\n");
    }
    if (!cut) n += (size_t)snprintf(body + n, cap - n, "--XyZ--\r\n");
    int h = snprintf(req, 512,
                     "POST /v1/files HTTP/1.1\r\nHost: t\r\nConnection: close\r\n"
                     "Content-Type: multipart/form-data; boundary=XyZ\r\nContent-Length: %zu\r\n\r\n", n);
    memcpy(req + h, body, n);
    free(body);
    *len = (size_t)h + n;
    return req;
}

static int upload(uint16_t port, const char *purpose, const char *file, int cut, char *resp, size_t cap) {
    size_t n;
    char *req = upload_request(purpose, file, file ? strlen(file) : 0, cut, &n);
    int fd = conn_open("127.0.0.1", port);
    send_all(fd, req, n);
    free(req);
    int st = read_response(fd, resp, cap, 20);
    close(fd);
    return st;
}

// A handler that works longer than the request timeout (here: waiting 2.5 s for the store's
// write lock, held by another connection) still gets its reply out, as a non-streamed chat
// completion that generates for minutes must: the timer restarts when the reply is queued.
static void test_slow_handler_answers(void **state) {
    fx *f = *state;
    fx_start(f, (server_config){.request_timeout = 1});
    lock_holder l = {.hold_s = 2.5};
    assert_int_equal(sqlite3_open(f->db, &l.h), SQLITE_OK);
    assert_int_equal(sqlite3_exec(l.h, "BEGIN IMMEDIATE", NULL, NULL, NULL), SQLITE_OK);
    pthread_t th;
    pthread_create(&th, NULL, hold_lock, &l);
    char row[1024], resp[4096];
    snprintf(row, sizeof(row), ROW, 1, 1, 1);
    double t0 = trl_now();
    int st = upload(f->port, "fine-tune", row, 0, resp, sizeof(resp));
    double took = trl_now() - t0;
    pthread_join(th, NULL);
    sqlite3_close(l.h);
    assert_int_equal(st, 200);
    assert_non_null(strstr(resp, "\"status\":\"processed\""));
    assert_true(took > 2.0);  // it did wait for the lock, longer than the request timeout
}

// ---- keys ----------------------------------------------------------------------------------

static void test_secret_equal(void **state) {
    (void)state;
    assert_true(trl_secret_equal("sekrit", "sekrit"));
    assert_false(trl_secret_equal("sekri", "sekrit"));
    assert_false(trl_secret_equal("sekritt", "sekrit"));
    assert_false(trl_secret_equal("sekriT", "sekrit"));
    assert_false(trl_secret_equal("Sekrit", "sekrit"));
    assert_false(trl_secret_equal("", "sekrit"));
    assert_false(trl_secret_equal("sekrit", ""));
    assert_true(trl_secret_equal("", ""));
    assert_false(trl_secret_equal("sekrit\xff", "sekrit"));
}

static void test_key_checked(void **state) {
    fx *f = *state;
    fx_start(f, (server_config){.api_key = "sekrit"});
    char body[4096];
    assert_int_equal(request(f->port, "GET", "/v1/models", NULL, body, sizeof(body)), 401);
    assert_non_null(strstr(body, "\"code\":\"invalid_api_key\""));
    assert_int_equal(request(f->port, "GET", "/v1/models", "Authorization: Bearer sekri\r\n", NULL, 0), 401);
    assert_int_equal(request(f->port, "GET", "/v1/models", "Authorization: Bearer sekritt\r\n", NULL, 0), 401);
    assert_int_equal(request(f->port, "GET", "/v1/models", "Authorization: Bearer Sekrit\r\n", NULL, 0), 401);
    assert_int_equal(request(f->port, "GET", "/v1/models", "Authorization: sekrit\r\n", NULL, 0), 401);
    assert_int_equal(request(f->port, "GET", "/v1/models", "X-Api-Key: sekri\r\n", NULL, 0), 401);
    assert_int_equal(request(f->port, "GET", "/v1/models", "Authorization: Bearer sekrit\r\n", NULL, 0), 200);
    assert_int_equal(request(f->port, "GET", "/v1/models", "X-Api-Key: sekrit\r\n", NULL, 0), 200);
    assert_int_equal(request(f->port, "GET", "/health", NULL, body, sizeof(body)), 503);  // public (loading: no model here)
    assert_non_null(strstr(body, "\"device\":\"cpu\""));  // no --device: the cpu
    assert_int_equal(request(f->port, "GET", "/metrics", "X-Api-Key: sekrit\r\n", body, sizeof(body)), 200);
    assert_non_null(strstr(body, "toolrl_device_info{device=\"cpu\",name=\"\"} 1"));
}

typedef struct {
    pid_t pid;
    uint16_t port;
    int status;   // exit status once it has exited; -2 while it runs
    char err[8192];  // its stderr up to "ready" (or the end)
} serve_proc;

// Starts `toolrl serve --model TINY --port 0 --no-db ARGS…` with TOOLRL_API_KEY = env (unset
// when NULL). Reads its stderr until "ready" (then port is set) or until it exits.
static void serve_start(serve_proc *p, const char *model, const char *env, const char *const *args) {
    const char *argv[32];
    int n = 0;
    argv[n++] = g_toolrl, argv[n++] = "serve", argv[n++] = "--model", argv[n++] = model;
    argv[n++] = "--port", argv[n++] = "0", argv[n++] = "--no-db", argv[n++] = "--compute-threads", argv[n++] = "1";
    for (; args && *args; args++) argv[n++] = *args;
    argv[n] = NULL;
    int pipefd[2];
    assert_int_equal(pipe(pipefd), 0);
    fflush(stdout), fflush(stderr);
    memset(p, 0, sizeof(*p));
    p->status = -2;
    p->pid = fork();
    assert_true(p->pid >= 0);
    if (p->pid == 0) {
        close(pipefd[0]);
        dup2(pipefd[1], 2);
        if (env) setenv("TOOLRL_API_KEY", env, 1);
        else unsetenv("TOOLRL_API_KEY");
        execv(g_toolrl, (char *const *)argv);
        _exit(127);
    }
    close(pipefd[1]);
    size_t len = 0;
    double t0 = trl_now();
    while (len + 1 < sizeof(p->err) && trl_now() - t0 < 60) {
        ssize_t r = read(pipefd[0], p->err + len, sizeof(p->err) - 1 - len);
        if (r <= 0) break;
        len += (size_t)r;
        p->err[len] = 0;
        if (strstr(p->err, "toolrl serve: ready")) break;
    }
    close(pipefd[0]);  // later lines (none expected) go to a closed pipe: SIGPIPE is ignored by serve
    const char *at = strstr(p->err, "listening on http://127.0.0.1:");
    if (at && strstr(p->err, "toolrl serve: ready")) {
        p->port = (uint16_t)atoi(at + strlen("listening on http://127.0.0.1:"));
        return;
    }
    int st;
    assert_int_equal(waitpid(p->pid, &st, 0), p->pid);
    p->status = WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

static void serve_stop(serve_proc *p) {
    if (p->status != -2) return;
    kill(p->pid, SIGTERM);
    int st;
    assert_int_equal(waitpid(p->pid, &st, 0), p->pid);
    p->status = WIFEXITED(st) ? WEXITSTATUS(st) : -1;
    assert_int_equal(p->status, 0);
}

static int models_with(uint16_t port, const char *key) {
    char h[256] = "";
    if (key) snprintf(h, sizeof(h), "Authorization: Bearer %s\r\n", key);
    return request(port, "GET", "/v1/models", h, NULL, 0);
}

static void test_serve_key_sources(void **state) {
    fx *f = *state;
    char model[400], keyfile[400], empty[400];
    snprintf(model, sizeof(model), "%s/tiny.gguf", f->dir);
    snprintf(keyfile, sizeof(keyfile), "%s/key", f->dir);
    snprintf(empty, sizeof(empty), "%s/empty", f->dir);
    tiny_model_spec spec = tiny_model_default(0);
    trl_err e = {{0}};
    assert_int_equal(tiny_model_write_gguf(&spec, 0, model, &e), TRL_OK);
    FILE *o = fopen(keyfile, "w");
    fputs("filekey\nsecond line\n", o);
    fclose(o);
    o = fopen(empty, "w");
    fputs("\n", o);
    fclose(o);
    serve_proc p;

    // no key on loopback: open, and no warning
    serve_start(&p, model, NULL, NULL);
    assert_int_equal(p.status, -2);
    assert_int_equal(models_with(p.port, NULL), 200);
    assert_null(strstr(p.err, "warning"));
    serve_stop(&p);

    // TOOLRL_API_KEY
    serve_start(&p, model, "envkey", NULL);
    assert_int_equal(p.status, -2);
    assert_int_equal(models_with(p.port, NULL), 401);
    assert_int_equal(models_with(p.port, "envke"), 401);
    assert_int_equal(models_with(p.port, "envkey"), 200);
    assert_null(strstr(p.err, "warning"));
    serve_stop(&p);

    // --api-key-file: its first line, ahead of the variable
    serve_start(&p, model, "envkey", (const char *[]){"--api-key-file", keyfile, NULL});
    assert_int_equal(p.status, -2);
    assert_int_equal(models_with(p.port, "filekey"), 200);
    assert_int_equal(models_with(p.port, "envkey"), 401);
    assert_int_equal(models_with(p.port, "second line"), 401);
    assert_null(strstr(p.err, "warning"));
    serve_stop(&p);

    // --api-key: accepted, with a warning, and gone from the process's command line
    serve_start(&p, model, NULL, (const char *[]){"--api-key", "argkey", NULL});
    assert_int_equal(p.status, -2);
    assert_int_equal(models_with(p.port, "argkey"), 200);
    assert_int_equal(models_with(p.port, NULL), 401);
    assert_non_null(strstr(p.err, "warning: --api-key"));
    char cmdline_path[64], cmdline[4096];
    snprintf(cmdline_path, sizeof(cmdline_path), "/proc/%d/cmdline", (int)p.pid);
    FILE *c = fopen(cmdline_path, "rb");
    assert_non_null(c);
    size_t n = fread(cmdline, 1, sizeof(cmdline), c);
    fclose(c);
    assert_true(n > 0);
    assert_null(memmem(cmdline, n, "argkey", 6));
    assert_non_null(memmem(cmdline, n, "--api-key", 9));
    serve_stop(&p);

    // usage errors: an empty key file, a missing one, both a file and a key, a key with a space
    serve_start(&p, model, NULL, (const char *[]){"--api-key-file", empty, NULL});
    assert_int_equal(p.status, 2);
    assert_non_null(strstr(p.err, "empty"));
    serve_start(&p, model, NULL, (const char *[]){"--api-key-file", "/nonexistent/key", NULL});
    assert_int_equal(p.status, 2);
    serve_start(&p, model, NULL, (const char *[]){"--api-key-file", keyfile, "--api-key", "x", NULL});
    assert_int_equal(p.status, 2);
    serve_start(&p, model, "a b", NULL);
    assert_int_equal(p.status, 2);
}

// Beyond loopback without a key: a warning. 192.0.2.1 (TEST-NET-1) is no address of this
// machine, so the bind fails right after it and nothing listens.
static void test_serve_warns_public_without_key(void **state) {
    fx *f = *state;
    char model[400], keyfile[400];
    snprintf(model, sizeof(model), "%s/tiny.gguf", f->dir);
    snprintf(keyfile, sizeof(keyfile), "%s/key", f->dir);
    FILE *o = fopen(keyfile, "w");
    fputs("k\n", o);
    fclose(o);
    serve_proc p;
    serve_start(&p, model, NULL, (const char *[]){"--host", "192.0.2.1", NULL});
    assert_int_equal(p.status, 1);
    assert_non_null(strstr(p.err, "warning: 192.0.2.1 is not a loopback address and there is no API key"));
    serve_start(&p, model, NULL, (const char *[]){"--host", "192.0.2.1", "--api-key-file", keyfile, NULL});
    assert_int_equal(p.status, 1);
    assert_null(strstr(p.err, "warning"));
    serve_start(&p, model, "k", (const char *[]){"--host", "192.0.2.1", NULL});
    assert_int_equal(p.status, 1);
    assert_null(strstr(p.err, "warning"));
    assert_int_equal(server_host_is_loopback("127.0.0.1"), 1);
    assert_int_equal(server_host_is_loopback("127.1.2.3"), 1);
    assert_int_equal(server_host_is_loopback("0.0.0.0"), 0);
    assert_int_equal(server_host_is_loopback("10.0.0.1"), 0);
    assert_int_equal(server_host_is_loopback("localhost"), -1);
}

// ---- uploads -------------------------------------------------------------------------------

static int count_entries(const char *dir) {
    DIR *d = opendir(dir);
    if (!d) return 0;
    int n = 0;
    struct dirent *de;
    while ((de = readdir(d)) != NULL) n += de->d_name[0] != '.';
    closedir(d);
    return n;
}

static int count_rows(const char *db) {
    sqlite3 *h;
    sqlite3_stmt *st;
    assert_int_equal(sqlite3_open(db, &h), SQLITE_OK);
    assert_int_equal(sqlite3_prepare_v2(h, "SELECT count(*) FROM files", -1, &st, NULL), SQLITE_OK);
    assert_int_equal(sqlite3_step(st), SQLITE_ROW);
    int n = sqlite3_column_int(st, 0);
    sqlite3_finalize(st);
    sqlite3_close(h);
    return n;
}

static void test_rejected_uploads_leave_nothing(void **state) {
    fx *f = *state;
    fx_start(f, (server_config){.max_upload = 8192});
    char good[4096] = "", resp[4096];
    for (int i = 0; i < 3; i++) snprintf(good + strlen(good), sizeof(good) - strlen(good), ROW, i, i, i);
    assert_int_equal(count_entries(f->files), 0);
    // a bad second line: 400 naming it
    char bad[4096];
    snprintf(bad, sizeof(bad), ROW, 0, 0, 0);
    strcat(bad, "{\"id\": 1}\n");
    assert_int_equal(upload(f->port, "fine-tune", bad, 0, resp, sizeof(resp)), 400);
    assert_non_null(strstr(resp, "line 2"));
    assert_non_null(strstr(resp, "\"param\":\"file\""));
    // no examples; not JSON at all
    assert_int_equal(upload(f->port, "fine-tune", "\n\n", 0, resp, sizeof(resp)), 400);
    assert_int_equal(upload(f->port, "fine-tune", "\x01\x02 binary", 0, resp, sizeof(resp)), 400);
    // over --max-upload
    char *big = malloc(20000);
    size_t nb = 0;
    while (nb + 1024 < 20000) nb += (size_t)snprintf(big + nb, 20000 - nb, ROW, 7, 7, 7);
    assert_int_equal(upload(f->port, "fine-tune", big, 0, resp, sizeof(resp)), 413);
    free(big);
    // a multipart body without its closing boundary; a wrong purpose; no purpose; no file
    assert_int_equal(upload(f->port, "fine-tune", good, 1, resp, sizeof(resp)), 400);
    assert_int_equal(upload(f->port, "assistants", good, 0, resp, sizeof(resp)), 400);
    assert_non_null(strstr(resp, "\"param\":\"purpose\""));
    assert_int_equal(upload(f->port, NULL, good, 0, resp, sizeof(resp)), 400);
    assert_int_equal(upload(f->port, "fine-tune", NULL, 0, resp, sizeof(resp)), 400);
    // a client that goes away in the middle of the body
    size_t n;
    char *req = upload_request("fine-tune", good, strlen(good), 0, &n);
    int fd = conn_open("127.0.0.1", f->port);
    send_all(fd, req, n - 40);
    free(req);
    nap(0.2);
    int during = count_entries(f->files);  // the upload's temporary file exists meanwhile
    close(fd);
    for (int i = 0; i < 100 && count_entries(f->files); i++) nap(0.02);
    assert_int_equal(during, 1);
    assert_int_equal(count_entries(f->files), 0);
    assert_int_equal(count_rows(f->db), 0);
    // and the good file is stored: one file, one row
    assert_int_equal(upload(f->port, "fine-tune", good, 0, resp, sizeof(resp)), 200);
    assert_non_null(strstr(resp, "\"line_count\":3"));
    assert_int_equal(count_entries(f->files), 1);
    assert_int_equal(count_rows(f->db), 1);
}

int main(int argc, char **argv) {
    (void)argc;
    signal(SIGPIPE, SIG_IGN);
    toolrl_bin_path(argv[0], g_toolrl, sizeof(g_toolrl));
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_idle_flood_from_one_address, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_request_timeout, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_slow_reader_gets_whole_reply, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_slow_handler_answers, fx_setup, fx_teardown),
        cmocka_unit_test(test_secret_equal),
        cmocka_unit_test_setup_teardown(test_key_checked, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_serve_key_sources, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_serve_warns_public_without_key, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_rejected_uploads_leave_nothing, fx_setup, fx_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
