// test_tenants.c: API keys and projects, through a real server on a free loopback port and a
// real SQLite file. Keys of two projects (alpha, beta), an admin key and a revoked key; each
// project uploads a file, creates a fine-tuning job and an eval run through the API; the store
// gets a checkpoint, a fine-tuned model and eval results for each job; a file of before keys
// lies in the project "default".
// - Every route that names or lists an object: project alpha cannot list, retrieve, download,
//   delete, cancel, serve, chat with, train on, or see the events and checkpoints of beta's
//   files, jobs, models and eval runs; the answer is the 404 (or 400) an id that does not exist
//   gets, byte for byte but the id. Beta reaches its own; the admin key reaches both and the
//   default project's row, as does the server's own key.
// - Keys: unknown, missing or revoked keys are 401 invalid_api_key; without stored keys or a
//   server key the server is open (the keyless mode), and the first stored key closes it at once.
// - `toolrl keys create|list|revoke` through the built binary against the server's store: the
//   key is printed once and works at once, list never shows it, revoke makes it 401.
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>
#include <cmocka.h>

#include <cjson/cJSON.h>

#include "base/util.h"
#include "server/server.h"
#include "store/store.h"
#include "tests/support/tiny_model.h"
#include "tests/support/toolrl_bin.h"

static char g_toolrl[512];

#define BODY_CAP (1 << 18)

typedef struct {
    char dir[256], db[300], files[300], web[300], model[300], ckpt[300];
    server *s;
    uint16_t port;
    char ka[STORE_KEY_MAX], kb[STORE_KEY_MAX], kadmin[STORE_KEY_MAX], krev[STORE_KEY_MAX];
    char fa[STORE_ID_MAX], fb[STORE_ID_MAX], fd[STORE_ID_MAX];  // files: alpha, beta, default
    char ja[STORE_ID_MAX], jb[STORE_ID_MAX];                     // fine-tuning jobs
    char ra[STORE_ID_MAX], rb[STORE_ID_MAX];                     // eval runs (bfcl)
    char cka[STORE_ID_MAX], ckb[STORE_ID_MAX];                   // checkpoints of ja, jb
    char ma[200], mb[200];                                       // fine-tuned models of ja, jb
    char body[BODY_CAP];
} world;

// ---- HTTP ----------------------------------------------------------------------------------

static void send_all(int fd, const void *p, size_t n) {
    const char *c = p;
    while (n) {
        ssize_t w = send(fd, c, n, MSG_NOSIGNAL);
        if (w <= 0) fail_msg("send: %s", strerror(errno));
        c += w, n -= (size_t)w;
    }
}

// Sends req (n bytes) to 127.0.0.1:port on a fresh connection and reads one response; its status
// (-1: none) and its body into body (NUL-ended).
static int exchange(uint16_t port, const char *req, size_t n, char *body, size_t cap) {
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    assert_true(fd >= 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(port)};
    inet_pton(AF_INET, "127.0.0.1", &a.sin_addr);
    assert_int_equal(connect(fd, (struct sockaddr *)&a, sizeof(a)), 0);
    send_all(fd, req, n);
    size_t bcap = 1 << 16, got = 0;
    char *b = malloc(bcap);
    assert_non_null(b);
    long want = -1, head = -1;
    int status = -1;
    double t0 = trl_now();
    while (want < 0 || (long)got < head + want) {
        struct pollfd p = {.fd = fd, .events = POLLIN};
        double left = 30 - (trl_now() - t0);
        if (left <= 0 || poll(&p, 1, (int)(left * 1000) + 1) <= 0) break;
        if (got + 4096 > bcap) b = realloc(b, bcap *= 2), assert_non_null(b);
        ssize_t r = recv(fd, b + got, bcap - got - 1, 0);
        if (r <= 0) break;
        got += (size_t)r;
        b[got] = 0;
        char *end = head < 0 ? strstr(b, "\r\n\r\n") : NULL;
        if (end) {
            head = end + 4 - b;
            const char *cl = strcasestr(b, "\r\nContent-Length:");
            want = cl && cl < end ? strtol(cl + 17, NULL, 10) : 0;
        }
    }
    close(fd);
    if (want >= 0 && (long)got >= head + want) {
        sscanf(b, "HTTP/1.1 %d", &status);
        snprintf(body, cap, "%.*s", (int)want, b + head);
    } else {
        body[0] = 0;
    }
    free(b);
    return status;
}

// method path with Bearer key (NULL: none) and a JSON body (NULL: none); the body into w->body.
static int http(world *w, const char *key, const char *method, const char *path, const char *json) {
    char req[8192];
    int n = snprintf(req, sizeof(req), "%s %s HTTP/1.1\r\nHost: t\r\nConnection: close\r\n", method, path);
    if (key) n += snprintf(req + n, sizeof(req) - (size_t)n, "Authorization: Bearer %s\r\n", key);
    if (json)
        n += snprintf(req + n, sizeof(req) - (size_t)n, "Content-Type: application/json\r\nContent-Length: %zu\r\n\r\n%s",
                      strlen(json), json);
    else n += snprintf(req + n, sizeof(req) - (size_t)n, "\r\n");
    assert_true((size_t)n < sizeof(req));
    return exchange(w->port, req, (size_t)n, w->body, sizeof(w->body));
}

static const char *ROW =
    "{\"id\": \"r%d\", \"source\": \"test\", \"messages\": [{\"role\": \"user\", \"content\": \"add %d\"}], "
    "\"tools\": [{\"type\": \"function\", \"function\": {\"name\": \"add\", \"parameters\": {\"type\": \"dict\", "
    "\"properties\": {\"a\": {\"type\": \"integer\"}}}}}], \"answer\": [{\"name\": \"add\", \"arguments\": {\"a\": "
    "%d}}]}\n";

// POST /v1/files with key: a one-example fine-tuning file; its id into id.
static void upload(world *w, const char *key, int n, char id[STORE_ID_MAX]) {
    char row[1024], body[2048], req[4096];
    snprintf(row, sizeof(row), ROW, n, n, n);
    int bn = snprintf(body, sizeof(body),
                      "--XyZ\r\nContent-Disposition: form-data; name=\"purpose\"\r\n\r\nfine-tune\r\n"
                      "--XyZ\r\nContent-Disposition: form-data; name=\"file\"; filename=\"t.jsonl\"\r\n"
                      "Content-Type: application/octet-stream\r\n\r\n%s\r\n--XyZ--\r\n", row);
    int n2 = snprintf(req, sizeof(req),
                      "POST /v1/files HTTP/1.1\r\nHost: t\r\nConnection: close\r\nAuthorization: Bearer %s\r\n"
                      "Content-Type: multipart/form-data; boundary=XyZ\r\nContent-Length: %d\r\n\r\n%s", key, bn, body);
    assert_int_equal(exchange(w->port, req, (size_t)n2, w->body, sizeof(w->body)), 200);
    cJSON *j = cJSON_Parse(w->body);
    assert_true(cJSON_IsString(cJSON_GetObjectItem(j, "id")));
    snprintf(id, STORE_ID_MAX, "%s", cJSON_GetObjectItem(j, "id")->valuestring);
    cJSON_Delete(j);
}

// The "id" of the JSON object in w->body.
static void body_id(world *w, char id[STORE_ID_MAX]) {
    cJSON *j = cJSON_Parse(w->body);
    const cJSON *v = cJSON_GetObjectItem(j, "id");
    if (!cJSON_IsString(v)) fail_msg("no id in %s", w->body);
    snprintf(id, STORE_ID_MAX, "%s", v->valuestring);
    cJSON_Delete(j);
}

// s with every `from` replaced by `to` (malloc'd).
static char *replaced(const char *s, const char *from, const char *to) {
    size_t nf = strlen(from), nt = strlen(to), n = 0;
    char *out = malloc(strlen(s) * (nt + 1) + 1);
    assert_non_null(out);
    while (*s) {
        if (!strncmp(s, from, nf)) memcpy(out + n, to, nt), n += nt, s += nf;
        else out[n++] = *s++;
    }
    out[n] = 0;
    return out;
}

// A made-up id of id's shape: its prefix and zeros.
static void fake_of(const char *id, char *out, size_t cap) {
    snprintf(out, cap, "%s", id);
    char *dash = strrchr(out, '-');
    for (char *p = dash ? dash + 1 : out; *p; p++) *p = '0';
}

// key's request (path and json naming `id` as "%s"... both may hold it: every "{ID}" is id) is
// answered exactly as the same request naming an id that does not exist: same status (want),
// same body but the id.
static void expect_as_missing(world *w, const char *key, const char *method, const char *path_t, const char *json_t,
                              const char *id, int want) {
    char fake[STORE_ID_MAX + 200];
    fake_of(id, fake, sizeof(fake));
    char *p1 = replaced(path_t, "{ID}", id), *p2 = replaced(path_t, "{ID}", fake);
    char *j1 = json_t ? replaced(json_t, "{ID}", id) : NULL, *j2 = json_t ? replaced(json_t, "{ID}", fake) : NULL;
    int st = http(w, key, method, p1, j1);
    char *b1 = replaced(w->body, id, fake);
    if (st != want) fail_msg("%s %s: %d, want %d (%s)", method, p1, st, want, w->body);
    st = http(w, key, method, p2, j2);
    assert_int_equal(st, want);
    if (strcmp(b1, w->body)) fail_msg("%s %s: the answer differs from a missing id's:\n%s\n%s", method, p1, b1, w->body);
    free(p1), free(p2), free(j1), free(j2), free(b1);
}

// The ids of the list at path, as key sees it, joined by spaces (into out).
static void list_ids(world *w, const char *key, const char *path, char *out, size_t cap) {
    int st = http(w, key, "GET", path, NULL);
    if (st != 200) fail_msg("GET %s: %d %s", path, st, w->body);
    cJSON *j = cJSON_Parse(w->body);
    const cJSON *it;
    size_t n = 0;
    out[0] = 0;
    cJSON_ArrayForEach(it, cJSON_GetObjectItem(j, "data")) {
        const cJSON *id = cJSON_GetObjectItem(it, "id");
        if (cJSON_IsString(id)) n += (size_t)snprintf(out + n, cap - n, "%s ", id->valuestring);
    }
    cJSON_Delete(j);
}

static int listed(const char *ids, const char *id) {
    char want[512];
    snprintf(want, sizeof(want), "%s ", id);
    return strstr(ids, want) != NULL;
}

// ---- the world: two projects, an admin, a revoked key --------------------------------------

static void world_paths(world *w) {
    assert_int_equal(tiny_model_tempdir(w->dir, sizeof(w->dir)), 0);
    snprintf(w->db, sizeof(w->db), "%s/t.db", w->dir);
    snprintf(w->files, sizeof(w->files), "%s/files", w->dir);
    snprintf(w->web, sizeof(w->web), "%s/web", w->dir);
    snprintf(w->model, sizeof(w->model), "%s/tiny.gguf", w->dir);
    snprintf(w->ckpt, sizeof(w->ckpt), "%s/step-1", w->dir);
    assert_int_equal(mkdir(w->web, 0700), 0);
}

static void world_start(world *w, const char *server_key) {
    server_config cfg = {.host = "127.0.0.1",
                         .db_path = w->db,
                         .data_dir = w->files,
                         .web_dir = w->web,
                         .model_path = w->model,
                         .api_key = server_key,
                         .n_slots = 2,
                         .n_ctx = 256,
                         .compute_threads = 1};
    trl_err e = {{0}};
    if (server_start(&w->s, &cfg, &e)) fail_msg("server_start: %s", e.msg);
    w->port = server_port(w->s);
    if (server_load_model(w->s, &e)) fail_msg("server_load_model: %s", e.msg);
}

static int world_setup(void **state) {
    world *w = calloc(1, sizeof(*w));
    assert_non_null(w);
    world_paths(w);
    tiny_model_spec spec = tiny_model_default(0);
    trl_err e = {{0}};
    assert_int_equal(tiny_model_write_gguf(&spec, 0, w->model, &e), TRL_OK);
    assert_int_equal(mkdir(w->ckpt, 0700), 0);
    assert_int_equal(tiny_model_write_hf(&spec, w->ckpt, &e), TRL_OK);

    // the store before the server: a file of before keys, and the keys
    store *st;
    assert_int_equal(store_open(&st, w->db, &e), TRL_OK);
    char old_path[400];
    snprintf(old_path, sizeof(old_path), "%s/old.jsonl", w->dir);
    FILE *o = fopen(old_path, "w");
    fprintf(o, ROW, 9, 9, 9);
    fclose(o);
    store_file_new fn = {.filename = "old.jsonl", .purpose = "fine-tune", .status = "processed", .path = old_path,
                         .bytes = 10, .line_count = 1};
    store_file f;
    assert_int_equal(store_file_create(st, &fn, &f, &e), TRL_OK);
    snprintf(w->fd, sizeof(w->fd), "%s", f.id);
    store_file_clear(&f);
    store_key k;
    assert_int_equal(store_key_create(st, "alpha", "a", 0, w->ka, NULL, &e), TRL_OK);
    assert_int_equal(store_key_create(st, "beta", "b", 0, w->kb, NULL, &e), TRL_OK);
    assert_int_equal(store_key_create(st, "ops", NULL, 1, w->kadmin, NULL, &e), TRL_OK);
    assert_int_equal(store_key_create(st, "alpha", "old", 0, w->krev, &k, &e), TRL_OK);
    assert_int_equal(store_key_revoke(st, k.id, &e), TRL_OK);
    store_key_clear(&k);
    store_close(st);

    world_start(w, NULL);
    // each project's file, job and eval run, through the API
    upload(w, w->ka, 1, w->fa);
    upload(w, w->kb, 2, w->fb);
    char json[512];
    snprintf(json, sizeof(json), "{\"model\": \"tiny.gguf\", \"training_file\": \"%s\", \"suffix\": \"a\"}", w->fa);
    assert_int_equal(http(w, w->ka, "POST", "/v1/fine_tuning/jobs", json), 200);
    body_id(w, w->ja);
    snprintf(json, sizeof(json), "{\"model\": \"tiny.gguf\", \"training_file\": \"%s\", \"suffix\": \"b\"}", w->fb);
    assert_int_equal(http(w, w->kb, "POST", "/v1/fine_tuning/jobs", json), 200);
    body_id(w, w->jb);
    assert_int_equal(http(w, w->ka, "POST", "/v1/evals/bfcl/runs", "{\"model\": \"tiny.gguf\", \"limit\": 1}"), 200);
    body_id(w, w->ra);
    assert_int_equal(http(w, w->kb, "POST", "/v1/evals/bfcl/runs", "{\"model\": \"tiny.gguf\", \"limit\": 1}"), 200);
    body_id(w, w->rb);

    // what a worker would write: a checkpoint and a fine-tuned model per job, results per run
    assert_int_equal(store_open(&st, w->db, &e), TRL_OK);
    const char *jobs[2] = {w->ja, w->jb}, *runs[2] = {w->ra, w->rb};
    char *models[2] = {w->ma, w->mb}, *ckpts[2] = {w->cka, w->ckb};
    for (int i = 0; i < 2; i++) {
        snprintf(models[i], sizeof(w->ma), "ft:tiny.gguf:%c:%s", 'a' + i, jobs[i]);
        char ck_name[300];
        snprintf(ck_name, sizeof(ck_name), "%s:ckpt-step-1", models[i]);
        store_checkpoint_new cn = {.step = 1, .path = w->ckpt, .model_name = ck_name};
        store_checkpoint c;
        assert_int_equal(store_checkpoint_add(st, jobs[i], NULL, &cn, &c, &e), TRL_OK);
        snprintf(ckpts[i], STORE_ID_MAX, "%s", c.id);
        store_checkpoint_clear(&c);
        store_model_new mn = {.id = models[i], .kind = "fine-tuned", .base_model = "tiny.gguf", .job_id = jobs[i],
                              .path = w->ckpt};
        assert_int_equal(store_model_upsert(st, &mn, &e), TRL_OK);
        store_eval_new en = {.model = "tiny.gguf", .suite = "bfcl", .category = "overall", .score = 0.5,
                             .job_id = runs[i]};
        assert_int_equal(store_eval_add(st, &en, NULL, &e), TRL_OK);
    }
    store_close(st);
    *state = w;
    return 0;
}

static int world_teardown(void **state) {
    world *w = *state;
    if (!w) return 0;  // the set-up failed before it was made
    server_stop(w->s);
    tiny_model_rmdir(w->dir);
    free(w);
    return 0;
}

// ---- isolation, route by route -------------------------------------------------------------

// Files: list (and its cursor), retrieve, content, delete, and training on another's file.
static void test_files_isolated(void **state) {
    world *w = *state;
    char ids[8192];
    list_ids(w, w->ka, "/v1/files", ids, sizeof(ids));
    assert_true(listed(ids, w->fa));
    assert_false(listed(ids, w->fb));
    assert_false(listed(ids, w->fd));
    list_ids(w, w->kb, "/v1/files", ids, sizeof(ids));
    assert_true(listed(ids, w->fb));
    assert_false(listed(ids, w->fa));
    assert_false(listed(ids, w->fd));
    expect_as_missing(w, w->ka, "GET", "/v1/files?after={ID}", NULL, w->fb, 404);
    expect_as_missing(w, w->ka, "GET", "/v1/files/{ID}", NULL, w->fb, 404);
    expect_as_missing(w, w->ka, "GET", "/v1/files/{ID}/content", NULL, w->fb, 404);
    expect_as_missing(w, w->ka, "DELETE", "/v1/files/{ID}", NULL, w->fb, 404);
    expect_as_missing(w, w->ka, "GET", "/v1/files/{ID}", NULL, w->fd, 404);  // the default project's
    expect_as_missing(w, w->ka, "POST", "/v1/fine_tuning/jobs",
                      "{\"model\": \"tiny.gguf\", \"training_file\": \"{ID}\"}", w->fb, 400);
    expect_as_missing(w, w->ka, "POST", "/v1/fine_tuning/jobs",
                      "{\"model\": \"tiny.gguf\", \"training_file\": \"{ID}\", \"validation_file\": \"{ID}\"}", w->fd,
                      400);
    // beta's own: every route answers, and the file is still there
    char path[200];
    snprintf(path, sizeof(path), "/v1/files/%s", w->fb);
    assert_int_equal(http(w, w->kb, "GET", path, NULL), 200);
    snprintf(path, sizeof(path), "/v1/files/%s/content", w->fb);
    assert_int_equal(http(w, w->kb, "GET", path, NULL), 200);
    assert_non_null(strstr(w->body, "\"add 2\""));
}

// Fine-tuning jobs: list (and cursor), retrieve, cancel, events, checkpoints, serving a
// checkpoint, and a job on another's fine-tuned model.
static void test_jobs_isolated(void **state) {
    world *w = *state;
    char ids[16384], path[300];
    list_ids(w, w->ka, "/v1/fine_tuning/jobs", ids, sizeof(ids));
    assert_true(listed(ids, w->ja));
    assert_false(listed(ids, w->jb));
    list_ids(w, w->kb, "/v1/fine_tuning/jobs", ids, sizeof(ids));
    assert_true(listed(ids, w->jb));
    assert_false(listed(ids, w->ja));
    expect_as_missing(w, w->ka, "GET", "/v1/fine_tuning/jobs?after={ID}", NULL, w->jb, 404);
    expect_as_missing(w, w->ka, "GET", "/v1/fine_tuning/jobs/{ID}", NULL, w->jb, 404);
    expect_as_missing(w, w->ka, "POST", "/v1/fine_tuning/jobs/{ID}/cancel", NULL, w->jb, 404);
    expect_as_missing(w, w->ka, "GET", "/v1/fine_tuning/jobs/{ID}/events", NULL, w->jb, 404);
    expect_as_missing(w, w->ka, "GET", "/v1/fine_tuning/jobs/{ID}/checkpoints", NULL, w->jb, 404);
    snprintf(path, sizeof(path), "/v1/fine_tuning/jobs/{ID}/checkpoints/%s/serve", w->ckb);
    expect_as_missing(w, w->ka, "POST", path, NULL, w->jb, 404);
    char json[512];
    snprintf(json, sizeof(json), "{\"model\": \"ft:tiny.gguf:b:{ID}\", \"training_file\": \"%s\"}", w->fa);
    expect_as_missing(w, w->ka, "POST", "/v1/fine_tuning/jobs", json, w->jb, 404);
    // beta's job is untouched, and beta reaches all of it
    snprintf(path, sizeof(path), "/v1/fine_tuning/jobs/%s", w->jb);
    assert_int_equal(http(w, w->kb, "GET", path, NULL), 200);
    assert_non_null(strstr(w->body, "\"status\":\"queued\""));
    snprintf(path, sizeof(path), "/v1/fine_tuning/jobs/%s/events", w->jb);
    assert_int_equal(http(w, w->kb, "GET", path, NULL), 200);
    assert_non_null(strstr(w->body, "Created fine-tuning job"));
    snprintf(path, sizeof(path), "/v1/fine_tuning/jobs/%s/checkpoints", w->jb);
    assert_int_equal(http(w, w->kb, "GET", path, NULL), 200);
    assert_non_null(strstr(w->body, w->ckb));
    snprintf(path, sizeof(path), "/v1/fine_tuning/jobs/%s/checkpoints/%s/serve", w->jb, w->ckb);
    assert_int_equal(http(w, w->kb, "POST", path, NULL), 200);
    assert_non_null(strstr(w->body, ":ckpt-step-1\""));
    snprintf(json, sizeof(json), "{\"model\": \"%s\", \"training_file\": \"%s\"}", w->mb, w->fb);
    assert_int_equal(http(w, w->kb, "POST", "/v1/fine_tuning/jobs", json), 200);
    char extra[STORE_ID_MAX];
    body_id(w, extra);
    snprintf(path, sizeof(path), "/v1/fine_tuning/jobs/%s/cancel", extra);
    assert_int_equal(http(w, w->kb, "POST", path, NULL), 200);
    assert_non_null(strstr(w->body, "\"status\":\"cancelled\""));
}

// Fine-tuned models: the list, retrieve, chat completions, and eval runs of them.
static void test_models_isolated(void **state) {
    world *w = *state;
    char ids[8192], ck_model[300];
    snprintf(ck_model, sizeof(ck_model), "%s:ckpt-step-1", w->mb);
    list_ids(w, w->ka, "/v1/models", ids, sizeof(ids));
    assert_true(listed(ids, "tiny.gguf"));
    assert_true(listed(ids, w->ma));
    assert_false(listed(ids, w->mb));
    assert_false(listed(ids, ck_model));
    list_ids(w, w->kb, "/v1/models", ids, sizeof(ids));
    assert_true(listed(ids, w->mb));
    assert_false(listed(ids, w->ma));
    expect_as_missing(w, w->ka, "GET", "/v1/models/ft:tiny.gguf:b:{ID}", NULL, w->jb, 404);
    const char *chat = "{\"model\": \"ft:tiny.gguf:b:{ID}\", \"max_tokens\": 2, "
                       "\"messages\": [{\"role\": \"user\", \"content\": \"hi\"}]}";
    expect_as_missing(w, w->ka, "POST", "/v1/chat/completions", chat, w->jb, 404);
    assert_non_null(strstr(w->body, "model_not_found"));
    expect_as_missing(w, w->ka, "POST", "/v1/evals/bfcl/runs", "{\"model\": \"ft:tiny.gguf:b:{ID}\"}", w->jb, 404);
    // beta's own model answers beta
    char path[300], json[512];
    snprintf(path, sizeof(path), "/v1/models/%s", w->mb);
    assert_int_equal(http(w, w->kb, "GET", path, NULL), 200);
    snprintf(json, sizeof(json), "{\"model\": \"%s\", \"max_tokens\": 2, \"temperature\": 0, "
             "\"messages\": [{\"role\": \"user\", \"content\": \"hi\"}]}", w->mb);
    assert_int_equal(http(w, w->kb, "POST", "/v1/chat/completions", json), 200);
    assert_non_null(strstr(w->body, "\"object\":\"chat.completion\""));
    assert_int_equal(http(w, w->ka, "POST", "/v1/chat/completions", json), 404);  // not once it is loaded either
}

// Eval runs and results: the lists, retrieve, cancel, events.
static void test_eval_runs_isolated(void **state) {
    world *w = *state;
    char ids[16384];
    list_ids(w, w->ka, "/v1/evals/bfcl/runs", ids, sizeof(ids));
    assert_true(listed(ids, w->ra));
    assert_false(listed(ids, w->rb));
    list_ids(w, w->kb, "/v1/evals/bfcl/runs", ids, sizeof(ids));
    assert_true(listed(ids, w->rb));
    assert_false(listed(ids, w->ra));
    expect_as_missing(w, w->ka, "GET", "/v1/evals/bfcl/runs?after={ID}", NULL, w->rb, 404);
    expect_as_missing(w, w->ka, "GET", "/v1/evals/bfcl/runs/{ID}", NULL, w->rb, 404);
    expect_as_missing(w, w->ka, "POST", "/v1/evals/bfcl/runs/{ID}", NULL, w->rb, 404);
    expect_as_missing(w, w->ka, "GET", "/v1/evals/bfcl/runs/{ID}/events", NULL, w->rb, 404);
    // the results of runs: each project sees its own run's
    int st = http(w, w->ka, "GET", "/v1/evals", NULL);
    assert_int_equal(st, 200);
    assert_non_null(strstr(w->body, w->ra));
    assert_null(strstr(w->body, w->rb));
    assert_int_equal(http(w, w->kb, "GET", "/v1/evals", NULL), 200);
    assert_non_null(strstr(w->body, w->rb));
    assert_null(strstr(w->body, w->ra));
    char path[200];
    snprintf(path, sizeof(path), "/v1/evals/bfcl/runs/%s/events", w->rb);
    assert_int_equal(http(w, w->kb, "GET", path, NULL), 200);
    snprintf(path, sizeof(path), "/v1/evals/bfcl/runs/%s", w->rb);
    assert_int_equal(http(w, w->kb, "GET", path, NULL), 200);
    assert_non_null(strstr(w->body, "\"status\":\"queued\""));  // alpha's cancel did not reach it
}

// The admin key sees both projects and the default one, in lists and by id.
static void test_admin_sees_all(void **state) {
    world *w = *state;
    char ids[32768], path[300];
    list_ids(w, w->kadmin, "/v1/files", ids, sizeof(ids));
    assert_true(listed(ids, w->fa) && listed(ids, w->fb) && listed(ids, w->fd));
    list_ids(w, w->kadmin, "/v1/fine_tuning/jobs", ids, sizeof(ids));
    assert_true(listed(ids, w->ja) && listed(ids, w->jb));
    list_ids(w, w->kadmin, "/v1/evals/bfcl/runs", ids, sizeof(ids));
    assert_true(listed(ids, w->ra) && listed(ids, w->rb));
    list_ids(w, w->kadmin, "/v1/models", ids, sizeof(ids));
    assert_true(listed(ids, w->ma) && listed(ids, w->mb));
    const char *files[3] = {w->fa, w->fb, w->fd};
    for (int i = 0; i < 3; i++) {
        snprintf(path, sizeof(path), "/v1/files/%s/content", files[i]);
        assert_int_equal(http(w, w->kadmin, "GET", path, NULL), 200);
    }
    const char *jobs[2] = {w->ja, w->jb}, *runs[2] = {w->ra, w->rb}, *cks[2] = {w->cka, w->ckb};
    for (int i = 0; i < 2; i++) {
        snprintf(path, sizeof(path), "/v1/fine_tuning/jobs/%s", jobs[i]);
        assert_int_equal(http(w, w->kadmin, "GET", path, NULL), 200);
        snprintf(path, sizeof(path), "/v1/fine_tuning/jobs/%s/events", jobs[i]);
        assert_int_equal(http(w, w->kadmin, "GET", path, NULL), 200);
        snprintf(path, sizeof(path), "/v1/fine_tuning/jobs/%s/checkpoints", jobs[i]);
        assert_int_equal(http(w, w->kadmin, "GET", path, NULL), 200);
        assert_non_null(strstr(w->body, cks[i]));
        snprintf(path, sizeof(path), "/v1/evals/bfcl/runs/%s", runs[i]);
        assert_int_equal(http(w, w->kadmin, "GET", path, NULL), 200);
        snprintf(path, sizeof(path), "/v1/models/%s", i ? w->mb : w->ma);
        assert_int_equal(http(w, w->kadmin, "GET", path, NULL), 200);
    }
    assert_int_equal(http(w, w->kadmin, "GET", "/v1/evals", NULL), 200);
    assert_non_null(strstr(w->body, w->ra));
    assert_non_null(strstr(w->body, w->rb));
    // what the admin makes goes to its own project, which alpha does not see
    char fo[STORE_ID_MAX];
    upload(w, w->kadmin, 5, fo);
    list_ids(w, w->ka, "/v1/files", ids, sizeof(ids));
    assert_false(listed(ids, fo));
}

// Unknown, missing and revoked keys: 401 invalid_api_key on every kind of route.
static void test_bad_keys_refused(void **state) {
    world *w = *state;
    char unknown[STORE_KEY_MAX];
    snprintf(unknown, sizeof(unknown), "%s", w->ka);
    unknown[15] = unknown[15] == 'A' ? 'B' : 'A';
    const char *paths[4] = {"/v1/models", "/v1/files", "/v1/fine_tuning/jobs", "/v1/evals/bfcl/runs"};
    const char *keys[3] = {w->krev, unknown, NULL};
    for (int k = 0; k < 3; k++)
        for (int i = 0; i < 4; i++) {
            int st = http(w, keys[k], "GET", paths[i], NULL);
            if (st != 401) fail_msg("key %d, GET %s: %d", k, paths[i], st);
            assert_non_null(strstr(w->body, "\"code\":\"invalid_api_key\""));
            assert_non_null(strstr(w->body, "\"type\":\"authentication_error\""));
        }
    assert_int_equal(http(w, w->krev, "POST", "/v1/chat/completions", "{}"), 401);
    assert_non_null(strstr(w->body, "revoked"));
    assert_int_equal(http(w, NULL, "GET", "/health", NULL), 200);  // public
    // X-Api-Key works as Bearer does
    char req[512];
    int n = snprintf(req, sizeof(req), "GET /v1/files HTTP/1.1\r\nHost: t\r\nConnection: close\r\nX-Api-Key: %s\r\n\r\n",
                     w->kb);
    assert_int_equal(exchange(w->port, req, (size_t)n, w->body, sizeof(w->body)), 200);
    assert_non_null(strstr(w->body, w->fb));
    assert_null(strstr(w->body, w->fa));
}

// ---- modes ---------------------------------------------------------------------------------

// No stored key and no server key: open (the keyless mode, as before keys). The first stored key
// closes it for the next request; revoking it does not open it again (a store that has had a
// key stays closed: revoking a leaked last key must not hand the server to everyone).
static void test_keyless_mode(void **state) {
    (void)state;
    world *w = calloc(1, sizeof(*w));
    world_paths(w);
    tiny_model_spec spec = tiny_model_default(0);
    trl_err e = {{0}};
    assert_int_equal(tiny_model_write_gguf(&spec, 0, w->model, &e), TRL_OK);
    world_start(w, NULL);
    assert_int_equal(http(w, NULL, "GET", "/v1/files", NULL), 200);
    assert_int_equal(http(w, "anything", "GET", "/v1/files", NULL), 200);
    upload(w, "anything", 1, w->fd);  // the default project's
    store *st;
    assert_int_equal(store_open(&st, w->db, &e), TRL_OK);
    store_key k;
    assert_int_equal(store_key_create(st, "alpha", NULL, 0, w->ka, &k, &e), TRL_OK);
    assert_int_equal(http(w, NULL, "GET", "/v1/files", NULL), 401);
    assert_int_equal(http(w, "anything", "GET", "/v1/files", NULL), 401);
    assert_int_equal(http(w, w->ka, "GET", "/v1/files", NULL), 200);
    assert_null(strstr(w->body, w->fd));  // the default project is not alpha's
    assert_int_equal(store_key_revoke(st, k.id, &e), TRL_OK);
    assert_int_equal(http(w, NULL, "GET", "/v1/files", NULL), 401);
    assert_int_equal(http(w, "anything", "GET", "/v1/files", NULL), 401);
    assert_int_equal(http(w, w->ka, "GET", "/v1/files", NULL), 401);
    store_key_clear(&k);
    store_close(st);
    world_teardown((void **)&w);
}

// The server's own key (--api-key-file, TOOLRL_API_KEY) beside stored keys: an admin.
static void test_server_key_is_admin(void **state) {
    world *w = *state;
    server_stop(w->s);
    world_start(w, "server-sekrit");
    char ids[32768];
    list_ids(w, "server-sekrit", "/v1/files", ids, sizeof(ids));
    assert_true(listed(ids, w->fa) && listed(ids, w->fb) && listed(ids, w->fd));
    list_ids(w, w->ka, "/v1/files", ids, sizeof(ids));  // stored keys still work
    assert_true(listed(ids, w->fa));
    assert_false(listed(ids, w->fb));
    assert_int_equal(http(w, "server-sekri", "GET", "/v1/files", NULL), 401);
    assert_int_equal(http(w, NULL, "GET", "/v1/files", NULL), 401);
    server_stop(w->s);
    world_start(w, NULL);
}

// ---- toolrl keys ---------------------------------------------------------------------------

// Runs toolrl with argv (NULL-terminated, without argv[0]); stdout and stderr into out/err.
static int run_toolrl(const char *const *args, char *out, size_t ocap, char *err, size_t ecap) {
    const char *argv[16];
    int n = 0;
    argv[n++] = g_toolrl;
    for (; *args; args++) argv[n++] = *args;
    argv[n] = NULL;
    FILE *fo = tmpfile(), *fe = tmpfile();
    fflush(stdout), fflush(stderr);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        dup2(fileno(fo), 1);
        dup2(fileno(fe), 2);
        execv(g_toolrl, (char *const *)argv);
        _exit(127);
    }
    int stt;
    assert_int_equal(waitpid(pid, &stt, 0), pid);
    rewind(fo), rewind(fe);
    size_t a = fread(out, 1, ocap - 1, fo), b = fread(err, 1, ecap - 1, fe);
    out[a] = 0, err[b] = 0;
    fclose(fo), fclose(fe);
    return WIFEXITED(stt) ? WEXITSTATUS(stt) : -1;
}

static void test_keys_cli(void **state) {
    world *w = *state;
    char out[8192], err[8192], key[256], id[STORE_ID_MAX];
    int rc = run_toolrl((const char *[]){"keys", "create", "--project", "gamma", "--name", "ci-bot", "--db", w->db, NULL},
                        out, sizeof(out), err, sizeof(err));
    if (rc) fail_msg("keys create: %d %s", rc, err);
    // stdout is the key alone, on one line
    assert_int_equal(strlen(out), strlen(STORE_KEY_PREFIX) + 43 + 1);
    assert_memory_equal(out, STORE_KEY_PREFIX, strlen(STORE_KEY_PREFIX));
    snprintf(key, sizeof(key), "%.*s", (int)strcspn(out, "\n"), out);
    assert_null(strstr(err, key));
    const char *k = strstr(err, "key-");
    assert_non_null(k);
    snprintf(id, sizeof(id), "%.28s", k);
    // it works at once, for its project
    char ids[8192];
    list_ids(w, key, "/v1/files", ids, sizeof(ids));
    assert_string_equal(ids, "");
    char fg[STORE_ID_MAX];
    upload(w, key, 3, fg);
    list_ids(w, key, "/v1/files", ids, sizeof(ids));
    assert_true(listed(ids, fg));
    assert_false(listed(ids, w->fa));
    // an admin key by the CLI sees everything
    rc = run_toolrl((const char *[]){"keys", "create", "--project", "ops", "--admin", "--db", w->db, NULL}, out,
                    sizeof(out), err, sizeof(err));
    assert_int_equal(rc, 0);
    char admin[256];
    snprintf(admin, sizeof(admin), "%.*s", (int)strcspn(out, "\n"), out);
    list_ids(w, admin, "/v1/files", ids, sizeof(ids));
    assert_true(listed(ids, fg) && listed(ids, w->fa) && listed(ids, w->fb));
    // list: id, project, name, admin, created, revoked; never a key
    rc = run_toolrl((const char *[]){"keys", "list", "--db", w->db, NULL}, out, sizeof(out), err, sizeof(err));
    assert_int_equal(rc, 0);
    assert_non_null(strstr(out, "PROJECT"));
    assert_null(strstr(out, STORE_KEY_PREFIX));
    const char *line = strstr(out, id);
    assert_non_null(line);
    char row[512];
    snprintf(row, sizeof(row), "%.*s", (int)strcspn(line, "\n"), line);
    assert_non_null(strstr(row, " gamma "));
    assert_non_null(strstr(row, " ci-bot "));
    assert_non_null(strstr(row, " no "));
    assert_true(row[strlen(row) - 1] == '-');  // not revoked
    // revoke: 401 from the next request; twice, or an unknown id: exit 1
    rc = run_toolrl((const char *[]){"keys", "revoke", id, "--db", w->db, NULL}, out, sizeof(out), err, sizeof(err));
    assert_int_equal(rc, 0);
    assert_int_equal(http(w, key, "GET", "/v1/files", NULL), 401);
    assert_int_equal(http(w, admin, "GET", "/v1/files", NULL), 200);
    rc = run_toolrl((const char *[]){"keys", "revoke", id, "--db", w->db, NULL}, out, sizeof(out), err, sizeof(err));
    assert_int_equal(rc, 1);
    rc = run_toolrl((const char *[]){"keys", "revoke", "key-nope", "--db", w->db, NULL}, out, sizeof(out), err,
                    sizeof(err));
    assert_int_equal(rc, 1);
    rc = run_toolrl((const char *[]){"keys", "list", "--db", w->db, NULL}, out, sizeof(out), err, sizeof(err));
    line = strstr(out, id);
    snprintf(row, sizeof(row), "%.*s", (int)strcspn(line, "\n"), line);
    assert_true(row[strlen(row) - 1] == 'Z');  // its revocation time
    // a key for the default project must be an admin's
    rc = run_toolrl((const char *[]){"keys", "create", "--project", "default", "--db", w->db, NULL}, out, sizeof(out),
                    err, sizeof(err));
    assert_int_equal(rc, 1);
    assert_string_equal(out, "");
}

int main(int argc, char **argv) {
    (void)argc;
    signal(SIGPIPE, SIG_IGN);
    toolrl_bin_path(argv[0], g_toolrl, sizeof(g_toolrl));
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_files_isolated),     cmocka_unit_test(test_jobs_isolated),
        cmocka_unit_test(test_models_isolated),    cmocka_unit_test(test_eval_runs_isolated),
        cmocka_unit_test(test_admin_sees_all),     cmocka_unit_test(test_bad_keys_refused),
        cmocka_unit_test(test_server_key_is_admin), cmocka_unit_test(test_keys_cli),
        cmocka_unit_test(test_keyless_mode),
    };
    return cmocka_run_group_tests(tests, world_setup, world_teardown);
}
