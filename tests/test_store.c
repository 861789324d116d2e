// test_store.c: the job store. Migrations apply on an empty database, re-opening changes
// nothing, a newer or foreign schema is refused, a failing migration rolls back whole, and the
// compiled-in migrations match migrations/*.sql; every call of the API (files, jobs, events,
// checkpoints, models, eval results) and its not-found / conflict answers; cursor pagination;
// cancel while queued and while running; claim order; heartbeat, finish and lease loss; lease
// expiry requeues from the last checkpoint and gives up after max_attempts; four forked workers
// claiming 200 jobs take each exactly once; six processes creating one database at once apply
// each migration once.
#include <dirent.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>
#include <cmocka.h>

#include <sqlite3.h>

#include "store/store.h"
#include "tests/support/tiny_model.h"  // tiny_model_tempdir, tiny_model_rmdir

// ---- fixtures: a fresh database in a temporary directory per test ------------------------

typedef struct {
    char dir[256];
    char path[300];
    store *s;
} fx;

static int setup(void **state) {
    fx *f = calloc(1, sizeof *f);
    if (!f) return -1;
    if (tiny_model_tempdir(f->dir, sizeof f->dir) != TRL_OK) return -1;
    snprintf(f->path, sizeof f->path, "%s/jobs.db", f->dir);
    trl_err e = {{0}};
    if (store_open(&f->s, f->path, &e) != TRL_OK) {
        fprintf(stderr, "%s\n", e.msg);
        return -1;
    }
    *state = f;
    return 0;
}

static int teardown(void **state) {
    fx *f = *state;
    store_close(f->s);
    tiny_model_rmdir(f->dir);
    free(f);
    return 0;
}

// Runs one SQL statement on a separate raw connection (to tamper with the file).
static void raw_exec(const char *path, const char *sql) {
    sqlite3 *db = NULL;
    assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
    char *msg = NULL;
    int rc = sqlite3_exec(db, sql, NULL, NULL, &msg);
    if (rc != SQLITE_OK) fprintf(stderr, "raw_exec: %s\n", msg ? msg : "?");
    sqlite3_free(msg);
    assert_int_equal(rc, SQLITE_OK);
    sqlite3_close(db);
}

static int64_t raw_i64(const char *path, const char *sql) {
    sqlite3 *db = NULL;
    sqlite3_stmt *st = NULL;
    assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
    assert_int_equal(sqlite3_prepare_v2(db, sql, -1, &st, NULL), SQLITE_OK);
    int64_t v = -1;
    if (sqlite3_step(st) == SQLITE_ROW) v = sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
    sqlite3_close(db);
    return v;
}

static void make_job(store *s, const char *model, store_job *out) {
    trl_err e = {{0}};
    store_job_new in = {.model = model, .method = "reinforcement", .training_file = "file-x"};
    int rc = store_job_create(s, &in, out, &e);
    if (rc != TRL_OK) fprintf(stderr, "%s\n", e.msg);
    assert_int_equal(rc, TRL_OK);
}

// ---- migrations -------------------------------------------------------------------------

static void test_migrations_fresh(void **state) {
    fx *f = *state;
    trl_err e = {{0}};
    int v = -1;
    assert_int_equal(store_schema_version(f->s, &v, &e), TRL_OK);
    assert_true(store_migrations_count >= 1);
    assert_int_equal(v, store_migrations[store_migrations_count - 1].version);
    assert_int_equal(raw_i64(f->path, "SELECT count(*) FROM schema_migrations"), store_migrations_count);
    assert_int_equal(raw_i64(f->path, "SELECT count(*) FROM sqlite_schema WHERE type = 'table' AND name IN"
                                      " ('files','jobs','job_events','checkpoints','models','eval_results')"),
                     6);
    sqlite3 *db;
    assert_int_equal(sqlite3_open(f->path, &db), SQLITE_OK);
    sqlite3_stmt *st;
    assert_int_equal(sqlite3_prepare_v2(db, "PRAGMA journal_mode", -1, &st, NULL), SQLITE_OK);
    assert_int_equal(sqlite3_step(st), SQLITE_ROW);
    assert_string_equal((const char *)sqlite3_column_text(st, 0), "wal");
    sqlite3_finalize(st);
    sqlite3_close(db);
    assert_int_equal(store_integrity_check(f->s, &e), TRL_OK);
}

static void test_reopen_noop(void **state) {
    fx *f = *state;
    trl_err e = {{0}};
    raw_exec(f->path, "UPDATE schema_migrations SET applied_at = 12345");
    int64_t n_obj = raw_i64(f->path, "SELECT count(*) FROM sqlite_schema");
    store_close(f->s);
    f->s = NULL;
    for (int i = 0; i < 3; i++) {
        assert_int_equal(store_open(&f->s, f->path, &e), TRL_OK);
        store_close(f->s);
        f->s = NULL;
    }
    assert_int_equal(raw_i64(f->path, "SELECT count(*) FROM schema_migrations"), store_migrations_count);
    assert_int_equal(raw_i64(f->path, "SELECT count(*) FROM schema_migrations WHERE applied_at = 12345"),
                     store_migrations_count);
    assert_int_equal(raw_i64(f->path, "SELECT count(*) FROM sqlite_schema"), n_obj);
    assert_int_equal(store_open(&f->s, f->path, &e), TRL_OK);
}

static void test_newer_schema_refused(void **state) {
    fx *f = *state;
    trl_err e = {{0}};
    store_close(f->s);
    f->s = NULL;
    raw_exec(f->path, "INSERT INTO schema_migrations VALUES (9999, 'from_the_future', 1)");
    assert_int_equal(store_open(&f->s, f->path, &e), TRL_ERR);
    assert_null(f->s);
    assert_non_null(strstr(e.msg, "schema version 9999"));
    assert_non_null(strstr(e.msg, "newer"));
    // A recorded migration whose name differs from the compiled one is refused as well.
    raw_exec(f->path, "DELETE FROM schema_migrations WHERE version = 9999;"
                      "UPDATE schema_migrations SET name = 'other' WHERE version = 1");
    assert_int_equal(store_open(&f->s, f->path, &e), TRL_ERR);
    assert_non_null(strstr(e.msg, "'other'"));
    raw_exec(f->path, "UPDATE schema_migrations SET name = 'init' WHERE version = 1");
    assert_int_equal(store_open(&f->s, f->path, &e), TRL_OK);
}

static void test_migration_failure_rolls_back(void **state) {
    fx *f = *state;
    trl_err e = {{0}};
    char path[320];
    snprintf(path, sizeof path, "%s/custom.db", f->dir);
    store_migration bad[] = {
        {1, "one", "CREATE TABLE t1 (x INTEGER);"},
        {2, "two", "CREATE TABLE t2 (x INTEGER); INSERT INTO t2 VALUES (1); THIS IS NOT SQL;"},
    };
    store *s = NULL;
    assert_int_equal(store_open_migrations(&s, path, bad, 2, &e), TRL_ERR);
    assert_non_null(strstr(e.msg, "0002_two"));
    assert_int_equal(raw_i64(path, "SELECT MAX(version) FROM schema_migrations"), 1);
    assert_int_equal(raw_i64(path, "SELECT count(*) FROM sqlite_schema WHERE name = 't2'"), 0);
    store_migration good[] = {
        {1, "one", "CREATE TABLE t1 (x INTEGER);"},
        {2, "two", "CREATE TABLE t2 (x INTEGER); INSERT INTO t2 VALUES (1);"},
        {1000, "three", "ALTER TABLE t2 ADD COLUMN y TEXT; UPDATE t2 SET y = 'z';"},
    };
    assert_int_equal(store_open_migrations(&s, path, good, 3, &e), TRL_OK);
    int v = 0;
    assert_int_equal(store_schema_version(s, &v, &e), TRL_OK);
    assert_int_equal(v, 1000);
    store_close(s);
    assert_int_equal(raw_i64(path, "SELECT count(*) FROM t2 WHERE y = 'z'"), 1);
    // Out-of-order lists are a programming error, reported.
    store_migration unordered[] = {{2, "b", "SELECT 1;"}, {1, "a", "SELECT 1;"}};
    assert_int_equal(store_open_migrations(&s, path, unordered, 2, &e), TRL_ERR);
    assert_non_null(strstr(e.msg, "order"));
    // The binary's own list on this database: version 1000 is "newer".
    assert_int_equal(store_open(&s, path, &e), TRL_ERR);
    assert_non_null(strstr(e.msg, "newer"));
}

// 0002 rebuilds the jobs table: a database filled at version 1 keeps every job, event and
// checkpoint (the DROP must not cascade), the sequence goes on, and eval runs can be queued.
// 0003 gives every row of before the project 'default'. The version-1 rows are written with
// SQL (this binary's calls write the newest schema's columns).
static void test_migration_2_keeps_rows(void **state) {
    fx *f = *state;
    trl_err e = {{0}};
    char path[320];
    snprintf(path, sizeof path, "%s/v1.db", f->dir);
    store *s = NULL;
    assert_int_equal(store_open_migrations(&s, path, store_migrations, 1, &e), TRL_OK);
    store_close(s);
    const char *jid = "ftjob-AAAAAAAAAAAAAAAAAAAAAAAA";
    raw_exec(path,
             "INSERT INTO jobs (id, model, method, training_file, status, created_at, worker_id, lease_expires_at,"
             " attempts) VALUES ('ftjob-AAAAAAAAAAAAAAAAAAAAAAAA', 'm', 'reinforcement', 'file-x', 'running', 1,"
             " 'w1', 4000000000, 1);"
             "INSERT INTO job_events (id, job_id, created_at, level, message) VALUES"
             " ('ftevent-1', 'ftjob-AAAAAAAAAAAAAAAAAAAAAAAA', 1, 'info', 'hello'),"
             " ('ftevent-2', 'ftjob-AAAAAAAAAAAAAAAAAAAAAAAA', 1, 'info', 'hello'),"
             " ('ftevent-3', 'ftjob-AAAAAAAAAAAAAAAAAAAAAAAA', 1, 'info', 'hello');"
             "INSERT INTO checkpoints (id, job_id, step, path, created_at) VALUES"
             " ('ftckpt-1', 'ftjob-AAAAAAAAAAAAAAAAAAAAAAAA', 5, 'p', 1);"
             "INSERT INTO files (id, created_at, filename, purpose) VALUES ('file-1', 1, 'a.jsonl', 'fine-tune');"
             "INSERT INTO models (id, kind, job_id, path, created_at) VALUES"
             " ('ft:m:x:ftjob-AAAAAAAAAAAAAAAAAAAAAAAA', 'fine-tuned', 'ftjob-AAAAAAAAAAAAAAAAAAAAAAAA', 'p', 1);"
             "INSERT INTO eval_results (id, model, suite, category, score, created_at) VALUES"
             " ('eval-1', 'm', 'bfcl', 'overall', 0.5, 1);");
    int64_t events = raw_i64(path, "SELECT count(*) FROM job_events"), seq = raw_i64(path, "SELECT seq FROM jobs");
    assert_int_equal(events, 3);
    assert_int_equal(store_open(&s, path, &e), TRL_OK);  // migrates to the latest version
    assert_int_equal(raw_i64(path, "SELECT count(*) FROM job_events"), events);
    assert_int_equal(raw_i64(path, "SELECT count(*) FROM checkpoints"), 1);
    store_job j = {0};
    assert_int_equal(store_job_get(s, jid, &j, &e), TRL_OK);
    assert_string_equal(j.project, STORE_DEFAULT_PROJECT);
    store_file fl;
    assert_int_equal(store_file_get(s, "file-1", &fl, &e), TRL_OK);
    assert_string_equal(fl.project, STORE_DEFAULT_PROJECT);
    store_file_clear(&fl);
    store_model md;
    assert_int_equal(store_model_get(s, "ft:m:x:ftjob-AAAAAAAAAAAAAAAAAAAAAAAA", &md, &e), TRL_OK);
    assert_string_equal(md.project, STORE_DEFAULT_PROJECT);
    store_model_clear(&md);
    assert_int_equal(raw_i64(path, "SELECT count(*) FROM eval_results WHERE project = 'default'"), 1);
    store_job g;
    assert_int_equal(store_job_get(s, j.id, &g, &e), TRL_OK);
    assert_string_equal(g.status, "running");
    assert_string_equal(g.worker_id, "w1");
    store_job_clear(&g);
    store_job_new ev = {.model = "m", .method = "eval", .training_file = "bfcl"};
    assert_int_equal(store_job_create(s, &ev, &g, &e), TRL_OK);
    assert_memory_equal(g.id, "evalrun-", 8);
    assert_int_equal(raw_i64(path, "SELECT max(seq) FROM jobs"), seq + 1);
    store_jobs l;
    assert_int_equal(store_job_list(s, NULL, &l, &e), TRL_OK);  // fine-tuning jobs only
    assert_int_equal(l.n, 1);
    assert_string_equal(l.items[0].id, j.id);
    store_jobs_free(&l);
    assert_int_equal(store_job_list_kind(s, 1, "bfcl", NULL, &l, &e), TRL_OK);
    assert_int_equal(l.n, 1);
    assert_string_equal(l.items[0].id, g.id);
    store_jobs_free(&l);
    assert_int_equal(store_job_list_kind(s, 1, "apibank", NULL, &l, &e), TRL_OK);
    assert_int_equal(l.n, 0);
    store_jobs_free(&l);
    store_job_clear(&g);
    store_job_clear(&j);
    assert_int_equal(store_integrity_check(s, &e), TRL_OK);
    store_close(s);
}

// The compiled-in migrations are exactly migrations/NNNN_name.sql (run from the repo root).
static void test_embedded_matches_files(void **state) {
    (void)state;
    struct dirent **names = NULL;
    int n = scandir("migrations", &names, NULL, alphasort);
    if (n < 0) skip();
    int k = 0;
    for (int i = 0; i < n; i++) {
        const char *nm = names[i]->d_name;
        size_t len = strlen(nm);
        int is_mig = len > 9 && nm[4] == '_' && strcmp(nm + len - 4, ".sql") == 0;
        for (int c = 0; c < 4 && is_mig; c++) is_mig = nm[c] >= '0' && nm[c] <= '9';
        if (is_mig) {
            assert_true(k < store_migrations_count);
            const store_migration *m = &store_migrations[k];
            assert_int_equal(atoi(nm), m->version);
            char name[256];
            snprintf(name, sizeof name, "%.*s", (int)(len - 9), nm + 5);
            assert_string_equal(name, m->name);
            char p[300];
            snprintf(p, sizeof p, "migrations/%s", nm);
            size_t sz = 0;
            trl_err e = {{0}};
            char *text = trl_read_file(p, &sz, &e);
            assert_non_null(text);
            if (sz && text[sz - 1] != '\n') {  // the embedder ends every line with \n
                char *t2 = realloc(text, sz + 2);
                assert_non_null(t2);
                text = t2;
                text[sz] = '\n';
                text[sz + 1] = 0;
            }
            if (strcmp(text, m->sql) != 0)
                fail_msg("store/migrations.c is stale for %s: run scripts/embed-migrations.sh", p);
            free(text);
            k++;
        }
        free(names[i]);
    }
    free(names);
    assert_int_equal(k, store_migrations_count);
}

// ---- ids ---------------------------------------------------------------------------------

static int cmp_str(const void *a, const void *b) {
    return strcmp((const char *)a, (const char *)b);
}

static void test_ids(void **state) {
    (void)state;
    enum { N = 5000 };
    char(*ids)[STORE_ID_MAX] = malloc(sizeof(*ids) * N);
    assert_non_null(ids);
    trl_err e = {{0}};
    int hist[62 + 1] = {0};
    for (int i = 0; i < N; i++) {
        assert_int_equal(store_id_new("ftjob", ids[i], &e), TRL_OK);
        assert_int_equal(strlen(ids[i]), 6 + STORE_ID_CHARS);
        assert_memory_equal(ids[i], "ftjob-", 6);
        for (int c = 6; c < 6 + STORE_ID_CHARS; c++) {
            char ch = ids[i][c];
            int idx = ch >= '0' && ch <= '9'   ? ch - '0'
                      : ch >= 'A' && ch <= 'Z' ? 10 + ch - 'A'
                      : ch >= 'a' && ch <= 'z' ? 36 + ch - 'a'
                                               : 62;
            assert_true(idx < 62);
            hist[idx]++;
        }
    }
    qsort(ids, N, sizeof *ids, cmp_str);
    for (int i = 1; i < N; i++) assert_true(strcmp(ids[i - 1], ids[i]) != 0);
    // 120000 characters over 62 symbols: each near 1935; far outside this means a biased draw.
    for (int c = 0; c < 62; c++) assert_true(hist[c] > 1600 && hist[c] < 2300);
    char big[STORE_ID_MAX];
    assert_int_equal(store_id_new("a-prefix-that-is-much-too-long-for-ids", big, &e), TRL_ERR);
    free(ids);
}

// ---- files -------------------------------------------------------------------------------

static void test_files(void **state) {
    fx *f = *state;
    trl_err e = {{0}};
    store_set_now(f->s, 1700000000);
    store_file_new in = {.filename = "train.jsonl", .purpose = "fine-tune", .bytes = 1234,
                         .sha256 = "ab12", .path = "data/files/x", .line_count = 10};
    store_file a;
    assert_int_equal(store_file_create(f->s, &in, &a, &e), TRL_OK);
    assert_memory_equal(a.id, "file-", 5);
    assert_int_equal(a.bytes, 1234);
    assert_int_equal(a.created_at, 1700000000);
    assert_string_equal(a.status, "uploaded");
    assert_string_equal(a.sha256, "ab12");
    assert_string_equal(a.path, "data/files/x");
    assert_int_equal(a.line_count, 10);
    assert_null(a.error);

    store_file g;
    assert_int_equal(store_file_get(f->s, a.id, &g, &e), TRL_OK);
    assert_string_equal(g.filename, "train.jsonl");
    assert_string_equal(g.purpose, "fine-tune");
    store_file_clear(&g);

    // A caller-made id (so the bytes can be written to disk under it first), and its reuse.
    char id[STORE_ID_MAX];
    assert_int_equal(store_id_new("file", id, &e), TRL_OK);
    store_file_new in2 = {.id = id, .filename = "eval.jsonl", .purpose = "evals", .status = "processed"};
    assert_int_equal(store_file_create(f->s, &in2, NULL, &e), TRL_OK);
    assert_int_equal(store_file_create(f->s, &in2, NULL, &e), TRL_CONFLICT);
    in2.status = "bogus";
    in2.id = NULL;
    assert_int_equal(store_file_create(f->s, &in2, NULL, &e), TRL_ERR);
    assert_non_null(strstr(e.msg, "bogus"));

    store_files l;
    assert_int_equal(store_file_list(f->s, NULL, NULL, &l, &e), TRL_OK);
    assert_int_equal(l.n, 2);
    assert_string_equal(l.items[0].id, id);  // newest first
    assert_string_equal(l.items[1].id, a.id);
    assert_false(l.has_more);
    store_files_free(&l);
    assert_int_equal(store_file_list(f->s, "fine-tune", NULL, &l, &e), TRL_OK);
    assert_int_equal(l.n, 1);
    assert_string_equal(l.items[0].id, a.id);
    store_files_free(&l);

    assert_int_equal(store_file_set_status(f->s, a.id, "error", -1, "line 3: not JSON", &e), TRL_OK);
    assert_int_equal(store_file_get(f->s, a.id, &g, &e), TRL_OK);
    assert_string_equal(g.status, "error");
    assert_string_equal(g.error, "line 3: not JSON");
    assert_int_equal(g.line_count, 10);
    store_file_clear(&g);
    assert_int_equal(store_file_set_status(f->s, a.id, "processed", 12, NULL, &e), TRL_OK);
    assert_int_equal(store_file_get(f->s, a.id, &g, &e), TRL_OK);
    assert_string_equal(g.status, "processed");
    assert_null(g.error);
    assert_int_equal(g.line_count, 12);
    store_file_clear(&g);
    assert_int_equal(store_file_set_status(f->s, a.id, "nope", -1, NULL, &e), TRL_ERR);
    assert_int_equal(store_file_set_status(f->s, "file-missing", "processed", -1, NULL, &e), TRL_NOT_FOUND);

    assert_int_equal(store_file_delete(f->s, a.id, &e), TRL_OK);
    assert_int_equal(store_file_get(f->s, a.id, &g, &e), TRL_NOT_FOUND);
    assert_non_null(strstr(e.msg, a.id));
    assert_int_equal(store_file_delete(f->s, a.id, &e), TRL_NOT_FOUND);
    store_file_clear(&a);
}

// ---- pagination --------------------------------------------------------------------------

static void test_pagination(void **state) {
    fx *f = *state;
    trl_err e = {{0}};
    enum { N = 45 };
    char ids[N][STORE_ID_MAX];
    store_set_now(f->s, 1700000000);  // every created_at ties: order must still be stable
    for (int i = 0; i < N; i++) {
        store_job j;
        make_job(f->s, "base", &j);
        snprintf(ids[i], sizeof ids[i], "%s", j.id);
        store_job_clear(&j);
    }
    // Newest first, 20 at a time, following the last id like the OpenAI SDK.
    int seen = 0, pages = 0;
    char after[STORE_ID_MAX] = "";
    for (;;) {
        store_page pg = {.after = *after ? after : NULL, .limit = 20};
        store_jobs l;
        assert_int_equal(store_job_list(f->s, &pg, &l, &e), TRL_OK);
        pages++;
        for (int i = 0; i < l.n; i++) assert_string_equal(l.items[i].id, ids[N - 1 - seen - i]);
        seen += l.n;
        assert_int_equal(l.has_more, seen < N);
        if (l.n) snprintf(after, sizeof after, "%s", l.items[l.n - 1].id);
        int more = l.has_more;
        store_jobs_free(&l);
        if (!more) break;
    }
    assert_int_equal(seen, N);
    assert_int_equal(pages, 3);

    // Oldest first, limit 0 = default 20, and a page that ends exactly at the end.
    store_page pg = {.ascending = 1};
    store_jobs l;
    assert_int_equal(store_job_list(f->s, &pg, &l, &e), TRL_OK);
    assert_int_equal(l.n, STORE_DEFAULT_LIMIT);
    assert_string_equal(l.items[0].id, ids[0]);
    assert_true(l.has_more);
    store_jobs_free(&l);
    pg = (store_page){.after = ids[39], .limit = 5, .ascending = 1};
    assert_int_equal(store_job_list(f->s, &pg, &l, &e), TRL_OK);
    assert_int_equal(l.n, 5);
    assert_string_equal(l.items[4].id, ids[44]);
    assert_false(l.has_more);
    store_jobs_free(&l);
    pg = (store_page){.after = ids[0], .limit = 100000};  // clamped, and nothing older than the first
    assert_int_equal(store_job_list(f->s, &pg, &l, &e), TRL_OK);
    assert_int_equal(l.n, 0);
    assert_false(l.has_more);
    store_jobs_free(&l);
    pg = (store_page){.after = "ftjob-doesnotexist"};
    assert_int_equal(store_job_list(f->s, &pg, &l, &e), TRL_NOT_FOUND);
    assert_non_null(strstr(e.msg, "ftjob-doesnotexist"));
    assert_int_equal(l.n, 0);
}

// ---- jobs --------------------------------------------------------------------------------

static void test_job_create_get(void **state) {
    fx *f = *state;
    trl_err e = {{0}};
    store_set_now(f->s, 1700000100);
    store_job_new in = {.model = "SmolLM2-135M-Instruct",
                        .method = "supervised",
                        .method_config = "{\"type\":\"supervised\",\"supervised\":{}}",
                        .hyperparameters = "{\"n_epochs\":2,\"batch_size\":\"auto\"}",
                        .training_file = "file-a",
                        .validation_file = "file-b",
                        .suffix = "tools",
                        .metadata = "{\"team\":\"x\"}",
                        .seed = 42,
                        .validate = 1,
                        .max_attempts = 5};
    store_job j;
    assert_int_equal(store_job_create(f->s, &in, &j, &e), TRL_OK);
    assert_memory_equal(j.id, "ftjob-", 6);
    assert_string_equal(j.status, "validating_files");
    assert_string_equal(j.model, "SmolLM2-135M-Instruct");
    assert_string_equal(j.method, "supervised");
    assert_string_equal(j.hyperparameters, in.hyperparameters);
    assert_string_equal(j.method_config, in.method_config);
    assert_string_equal(j.training_file, "file-a");
    assert_string_equal(j.validation_file, "file-b");
    assert_string_equal(j.suffix, "tools");
    assert_string_equal(j.metadata, in.metadata);
    assert_int_equal(j.seed, 42);
    assert_int_equal(j.created_at, 1700000100);
    assert_int_equal(j.started_at, 0);
    assert_int_equal(j.finished_at, 0);
    assert_null(j.fine_tuned_model);
    assert_null(j.error);
    assert_null(j.worker_id);
    assert_int_equal(j.attempts, 0);
    assert_int_equal(j.max_attempts, 5);
    store_job g;
    assert_int_equal(store_job_get(f->s, j.id, &g, &e), TRL_OK);
    assert_string_equal(g.id, j.id);
    assert_string_equal(g.status, "validating_files");
    store_job_clear(&g);

    // Not claimable while validating; validated → queued.
    store_job c;
    assert_int_equal(store_job_claim(f->s, "w1", 60, &c, &e), TRL_NOT_FOUND);
    assert_int_equal(store_job_validated(f->s, j.id, NULL, &e), TRL_OK);
    assert_int_equal(store_job_get(f->s, j.id, &g, &e), TRL_OK);
    assert_string_equal(g.status, "queued");
    store_job_clear(&g);
    assert_int_equal(store_job_validated(f->s, j.id, NULL, &e), TRL_CONFLICT);
    assert_int_equal(store_job_validated(f->s, "ftjob-nope", NULL, &e), TRL_NOT_FOUND);

    // A failed validation.
    store_job k;
    in.validate = 1;
    assert_int_equal(store_job_create(f->s, &in, &k, &e), TRL_OK);
    const char *err = "{\"code\":\"invalid_training_file\",\"message\":\"line 2 is not JSON\",\"param\":\"training_file\"}";
    assert_int_equal(store_job_validated(f->s, k.id, err, &e), TRL_OK);
    assert_int_equal(store_job_get(f->s, k.id, &g, &e), TRL_OK);
    assert_string_equal(g.status, "failed");
    assert_string_equal(g.error, err);
    assert_int_equal(g.finished_at, 1700000100);
    store_job_clear(&g);
    assert_int_equal(store_job_validated(f->s, k.id, "not json", &e), TRL_ERR);

    // Bad input.
    store_job_new bad = in;
    bad.method = "dpo";
    assert_int_equal(store_job_create(f->s, &bad, NULL, &e), TRL_ERR);
    assert_non_null(strstr(e.msg, "dpo"));
    bad = in;
    bad.hyperparameters = "{oops";
    assert_int_equal(store_job_create(f->s, &bad, NULL, &e), TRL_ERR);
    assert_non_null(strstr(e.msg, "hyperparameters"));
    bad = in;
    bad.training_file = NULL;
    assert_int_equal(store_job_create(f->s, &bad, NULL, &e), TRL_ERR);
    bad = in;
    bad.id = j.id;
    assert_int_equal(store_job_create(f->s, &bad, NULL, &e), TRL_CONFLICT);
    assert_int_equal(store_job_get(f->s, "ftjob-nope", &g, &e), TRL_NOT_FOUND);

    // The creation event is there.
    store_events ev;
    assert_int_equal(store_event_list(f->s, j.id, NULL, &ev, &e), TRL_OK);
    assert_int_equal(ev.n, 2);
    assert_non_null(strstr(ev.items[1].message, "Created fine-tuning job"));
    assert_non_null(strstr(ev.items[0].message, "validated"));
    store_events_free(&ev);
    store_job_clear(&j);
    store_job_clear(&k);
}

static void test_cancel_queued(void **state) {
    fx *f = *state;
    trl_err e = {{0}};
    store_job j, c;
    make_job(f->s, "m", &j);
    assert_int_equal(store_job_cancel(f->s, j.id, &c, &e), TRL_OK);
    assert_string_equal(c.status, "cancelled");
    assert_true(c.finished_at > 0);
    store_job_clear(&c);
    assert_int_equal(store_job_claim(f->s, "w", 60, &c, &e), TRL_NOT_FOUND);
    assert_int_equal(store_job_cancel(f->s, j.id, NULL, &e), TRL_CONFLICT);
    assert_non_null(strstr(e.msg, "cancelled"));
    assert_int_equal(store_job_cancel(f->s, "ftjob-nope", NULL, &e), TRL_NOT_FOUND);
    store_job_clear(&j);
    // validating_files is cancelled at once too.
    store_job_new in = {.model = "m", .method = "supervised", .training_file = "f", .validate = 1};
    assert_int_equal(store_job_create(f->s, &in, &j, &e), TRL_OK);
    assert_int_equal(store_job_cancel(f->s, j.id, &c, &e), TRL_OK);
    assert_string_equal(c.status, "cancelled");
    store_job_clear(&c);
    store_job_clear(&j);
}

static void test_cancel_running(void **state) {
    fx *f = *state;
    trl_err e = {{0}};
    store_job j, c;
    make_job(f->s, "m", &j);
    assert_int_equal(store_job_claim(f->s, "w1", 60, &c, &e), TRL_OK);
    assert_string_equal(c.id, j.id);
    store_job_clear(&c);
    int cancel = -1;
    assert_int_equal(store_job_heartbeat(f->s, j.id, "w1", 60, NULL, &cancel, &e), TRL_OK);
    assert_int_equal(cancel, 0);
    assert_int_equal(store_job_cancel(f->s, j.id, &c, &e), TRL_OK);
    assert_string_equal(c.status, "running");  // the worker has to stop first
    assert_int_equal(c.cancel_requested, 1);
    store_job_clear(&c);
    assert_int_equal(store_job_cancel(f->s, j.id, NULL, &e), TRL_OK);  // asking twice is fine
    assert_int_equal(store_job_heartbeat(f->s, j.id, "w1", 60, NULL, &cancel, &e), TRL_OK);
    assert_int_equal(cancel, 1);
    assert_int_equal(store_job_finish(f->s, j.id, "w1", "cancelled", NULL, NULL, &e), TRL_OK);
    assert_int_equal(store_job_get(f->s, j.id, &c, &e), TRL_OK);
    assert_string_equal(c.status, "cancelled");
    assert_int_equal(c.lease_expires_at, 0);
    assert_true(c.finished_at > 0);
    store_job_clear(&c);
    assert_int_equal(store_job_cancel(f->s, j.id, NULL, &e), TRL_CONFLICT);
    store_events ev;
    assert_int_equal(store_event_list(f->s, j.id, NULL, &ev, &e), TRL_OK);
    assert_int_equal(ev.n, 4);  // created, started, cancellation requested, cancelled
    assert_string_equal(ev.items[0].message, "Job cancelled");
    assert_non_null(strstr(ev.items[1].message, "Cancellation requested"));
    store_events_free(&ev);
    store_job_clear(&j);
}

static void test_claim_order(void **state) {
    fx *f = *state;
    trl_err e = {{0}};
    store_job a, b, c, x;
    store_set_now(f->s, 1700000000);
    make_job(f->s, "m", &a);
    make_job(f->s, "m", &b);
    make_job(f->s, "m", &c);
    assert_int_equal(store_job_claim(f->s, "w1", 30, &x, &e), TRL_OK);
    assert_string_equal(x.id, a.id);
    assert_string_equal(x.status, "running");
    assert_string_equal(x.worker_id, "w1");
    assert_int_equal(x.attempts, 1);
    assert_int_equal(x.started_at, 1700000000);
    assert_int_equal(x.lease_expires_at, 1700000030);
    store_job_clear(&x);
    assert_int_equal(store_job_claim(f->s, "w2", 30, &x, &e), TRL_OK);
    assert_string_equal(x.id, b.id);
    store_job_clear(&x);
    assert_int_equal(store_job_claim(f->s, "w3", 30, &x, &e), TRL_OK);
    assert_string_equal(x.id, c.id);
    store_job_clear(&x);
    assert_int_equal(store_job_claim(f->s, "w4", 30, &x, &e), TRL_NOT_FOUND);
    assert_int_equal(store_job_claim(f->s, "", 30, &x, &e), TRL_ERR);
    assert_int_equal(store_job_claim(f->s, "w4", 0, &x, &e), TRL_ERR);
    store_job_clear(&a);
    store_job_clear(&b);
    store_job_clear(&c);
}

static void test_heartbeat_finish(void **state) {
    fx *f = *state;
    trl_err e = {{0}};
    store_job j, x;
    store_set_now(f->s, 1000);
    make_job(f->s, "base", &j);
    assert_int_equal(store_job_claim(f->s, "w1", 10, &x, &e), TRL_OK);
    store_job_clear(&x);
    store_set_now(f->s, 1008);
    store_progress p = {.step = 7, .total_steps = 100, .trained_tokens = 5000};
    int cancel = -1;
    assert_int_equal(store_job_heartbeat(f->s, j.id, "w1", 10, &p, &cancel, &e), TRL_OK);
    assert_int_equal(store_job_get(f->s, j.id, &x, &e), TRL_OK);
    assert_int_equal(x.lease_expires_at, 1018);
    assert_int_equal(x.heartbeat_at, 1008);
    assert_int_equal(x.step, 7);
    assert_int_equal(x.total_steps, 100);
    assert_int_equal(x.trained_tokens, 5000);
    store_job_clear(&x);
    store_progress keep = {.step = -1, .total_steps = -1, .trained_tokens = -1};
    assert_int_equal(store_job_heartbeat(f->s, j.id, "w1", 10, &keep, NULL, &e), TRL_OK);
    assert_int_equal(store_job_get(f->s, j.id, &x, &e), TRL_OK);
    assert_int_equal(x.step, 7);
    store_job_clear(&x);

    // Another worker cannot heartbeat or finish it.
    assert_int_equal(store_job_heartbeat(f->s, j.id, "w2", 10, NULL, &cancel, &e), TRL_LEASE_LOST);
    assert_non_null(strstr(e.msg, "w1 holds it"));
    assert_int_equal(store_job_finish(f->s, j.id, "w2", "succeeded", NULL, NULL, &e), TRL_LEASE_LOST);
    assert_int_equal(store_job_finish(f->s, j.id, "w1", "running", NULL, NULL, &e), TRL_ERR);
    assert_int_equal(store_job_finish(f->s, "ftjob-nope", "w1", "failed", NULL, NULL, &e), TRL_NOT_FOUND);
    assert_int_equal(store_job_heartbeat(f->s, "ftjob-nope", "w1", 10, NULL, NULL, &e), TRL_NOT_FOUND);

    assert_int_equal(store_job_finish(f->s, j.id, "w1", "succeeded", "ft:base:tools:abc", NULL, &e), TRL_OK);
    assert_int_equal(store_job_get(f->s, j.id, &x, &e), TRL_OK);
    assert_string_equal(x.status, "succeeded");
    assert_string_equal(x.fine_tuned_model, "ft:base:tools:abc");
    assert_int_equal(x.finished_at, 1008);
    assert_int_equal(x.lease_expires_at, 0);
    assert_string_equal(x.worker_id, "w1");
    store_job_clear(&x);
    // Finished: the lease is gone.
    assert_int_equal(store_job_heartbeat(f->s, j.id, "w1", 10, NULL, &cancel, &e), TRL_LEASE_LOST);
    assert_non_null(strstr(e.msg, "succeeded"));
    assert_int_equal(store_job_finish(f->s, j.id, "w1", "succeeded", NULL, NULL, &e), TRL_LEASE_LOST);
    store_job_clear(&j);

    // A failure with its error object.
    make_job(f->s, "base", &j);
    assert_int_equal(store_job_claim(f->s, "w1", 10, &x, &e), TRL_OK);
    store_job_clear(&x);
    const char *err = "{\"code\":\"nan_loss\",\"message\":\"loss became NaN at step 3\",\"param\":null}";
    assert_int_equal(store_job_finish(f->s, j.id, "w1", "failed", NULL, "{bad", &e), TRL_ERR);
    assert_int_equal(store_job_finish(f->s, j.id, "w1", "failed", NULL, err, &e), TRL_OK);
    assert_int_equal(store_job_get(f->s, j.id, &x, &e), TRL_OK);
    assert_string_equal(x.status, "failed");
    assert_string_equal(x.error, err);
    store_job_clear(&x);
    store_events ev;
    assert_int_equal(store_event_list(f->s, j.id, NULL, &ev, &e), TRL_OK);
    assert_string_equal(ev.items[0].level, "error");
    assert_string_equal(ev.items[0].data, err);
    store_events_free(&ev);
    store_job_clear(&j);
}

static void test_lease_expiry(void **state) {
    fx *f = *state;
    trl_err e = {{0}};
    store_job j, x;
    store_set_now(f->s, 5000);
    store_job_new in = {.model = "m", .method = "reinforcement", .training_file = "f", .max_attempts = 2};
    assert_int_equal(store_job_create(f->s, &in, &j, &e), TRL_OK);
    assert_int_equal(store_job_claim(f->s, "w1", 10, &x, &e), TRL_OK);
    store_job_clear(&x);
    store_checkpoint_new ck = {.step = 40, .metrics = "{\"reward\":0.5}", .path = "ckpt/40"};
    assert_int_equal(store_checkpoint_add(f->s, j.id, "w1", &ck, NULL, &e), TRL_OK);
    store_progress p = {.step = 55, .total_steps = 100, .trained_tokens = -1};
    assert_int_equal(store_job_heartbeat(f->s, j.id, "w1", 10, &p, NULL, &e), TRL_OK);  // lease → 5010

    // Nothing expired yet at 5009.
    store_requeue_counts n;
    assert_int_equal(store_jobs_requeue_expired(f->s, 5009, &n, &e), TRL_OK);
    assert_int_equal(n.requeued + n.failed + n.cancelled, 0);

    // At 5010 the lease has ended: the worker's heartbeat fails even before anyone requeues.
    store_set_now(f->s, 5010);
    assert_int_equal(store_job_heartbeat(f->s, j.id, "w1", 10, NULL, NULL, &e), TRL_LEASE_LOST);
    assert_non_null(strstr(e.msg, "expired"));
    assert_int_equal(store_checkpoint_add(f->s, j.id, "w1", &(store_checkpoint_new){.step = 60, .path = "c"}, NULL, &e),
                     TRL_LEASE_LOST);
    assert_int_equal(store_jobs_requeue_expired(f->s, 5010, &n, &e), TRL_OK);
    assert_int_equal(n.requeued, 1);
    assert_int_equal(store_job_get(f->s, j.id, &x, &e), TRL_OK);
    assert_string_equal(x.status, "queued");
    assert_null(x.worker_id);
    assert_int_equal(x.lease_expires_at, 0);
    assert_int_equal(x.step, 40);  // back to the last checkpoint
    assert_int_equal(x.attempts, 1);
    store_job_clear(&x);
    assert_int_equal(store_job_heartbeat(f->s, j.id, "w1", 10, NULL, NULL, &e), TRL_LEASE_LOST);
    assert_non_null(strstr(e.msg, "queued"));

    // The next worker resumes from that checkpoint.
    assert_int_equal(store_job_claim(f->s, "w2", 10, &x, &e), TRL_OK);
    assert_string_equal(x.id, j.id);
    assert_int_equal(x.attempts, 2);
    assert_int_equal(x.step, 40);
    assert_int_equal(x.started_at, 5000);  // the first start is kept
    store_job_clear(&x);
    store_checkpoint c;
    assert_int_equal(store_checkpoint_latest(f->s, j.id, &c, &e), TRL_OK);
    assert_string_equal(c.path, "ckpt/40");
    store_checkpoint_clear(&c);
    assert_int_equal(store_job_heartbeat(f->s, j.id, "w1", 10, NULL, NULL, &e), TRL_LEASE_LOST);
    assert_non_null(strstr(e.msg, "w2 holds it"));

    // It dies as well: out of attempts, the job fails with a clear error. claim requeues too.
    store_set_now(f->s, 5020);
    assert_int_equal(store_job_claim(f->s, "w3", 10, &x, &e), TRL_NOT_FOUND);
    assert_int_equal(store_job_get(f->s, j.id, &x, &e), TRL_OK);
    assert_string_equal(x.status, "failed");
    assert_non_null(strstr(x.error, "\"code\":\"worker_lost\""));
    assert_non_null(strstr(x.error, "2 attempts"));
    assert_int_equal(x.finished_at, 5020);
    store_job_clear(&x);

    // A job whose cancel was requested and whose worker died ends cancelled, not requeued.
    store_job k;
    make_job(f->s, "m", &k);
    assert_int_equal(store_job_claim(f->s, "w4", 10, &x, &e), TRL_OK);
    store_job_clear(&x);
    assert_int_equal(store_job_cancel(f->s, k.id, NULL, &e), TRL_OK);
    assert_int_equal(store_jobs_requeue_expired(f->s, 5030, &n, &e), TRL_OK);
    assert_int_equal(n.cancelled, 1);
    assert_int_equal(n.requeued + n.failed, 0);
    assert_int_equal(store_job_get(f->s, k.id, &x, &e), TRL_OK);
    assert_string_equal(x.status, "cancelled");
    store_job_clear(&x);
    assert_int_equal(raw_i64(f->path, "SELECT count(*) FROM jobs WHERE status = 'running'"), 0);
    store_job_clear(&k);
    store_job_clear(&j);
}

// ---- events and checkpoints --------------------------------------------------------------

static void test_events(void **state) {
    fx *f = *state;
    trl_err e = {{0}};
    store_job j, x;
    make_job(f->s, "m", &j);
    store_event ev;
    store_event_new in = {.level = "warn", .message = "GPU is warm"};
    assert_int_equal(store_event_append(f->s, j.id, NULL, &in, &ev, &e), TRL_OK);
    assert_memory_equal(ev.id, "ftevent-", 8);
    assert_string_equal(ev.job_id, j.id);
    assert_string_equal(ev.level, "warn");
    assert_string_equal(ev.type, "message");
    assert_null(ev.data);
    store_event_clear(&ev);
    // Metrics events carry their data; a worker must hold the lease to write.
    assert_int_equal(store_job_claim(f->s, "w1", 60, &x, &e), TRL_OK);
    store_job_clear(&x);
    for (int i = 0; i < 30; i++) {
        char data[96];
        snprintf(data, sizeof data, "{\"step\":%d,\"reward_mean\":%.2f,\"kl\":0.01}", i, 0.1 * i);
        store_event_new m = {.type = "metrics", .message = "step", .data = data};
        assert_int_equal(store_event_append(f->s, j.id, "w1", &m, NULL, &e), TRL_OK);
    }
    store_event_new m = {.type = "metrics", .message = "step", .data = "{}"};
    assert_int_equal(store_event_append(f->s, j.id, "w2", &m, NULL, &e), TRL_LEASE_LOST);
    assert_int_equal(store_event_append(f->s, "ftjob-nope", NULL, &m, NULL, &e), TRL_NOT_FOUND);
    m.level = "debug";
    assert_int_equal(store_event_append(f->s, j.id, NULL, &m, NULL, &e), TRL_ERR);
    m.level = NULL;
    m.type = "log";
    assert_int_equal(store_event_append(f->s, j.id, NULL, &m, NULL, &e), TRL_ERR);
    m.type = NULL;
    m.data = "[1,";
    assert_int_equal(store_event_append(f->s, j.id, NULL, &m, NULL, &e), TRL_ERR);

    // created, warn, started, 30 metrics = 33, newest first.
    store_events l;
    store_page pg = {.limit = 10};
    assert_int_equal(store_event_list(f->s, j.id, &pg, &l, &e), TRL_OK);
    assert_int_equal(l.n, 10);
    assert_true(l.has_more);
    assert_string_equal(l.items[0].type, "metrics");
    assert_non_null(strstr(l.items[0].data, "\"step\":29"));
    pg.after = l.items[9].id;
    store_events l2;
    assert_int_equal(store_event_list(f->s, j.id, &pg, &l2, &e), TRL_OK);
    assert_non_null(strstr(l2.items[0].data, "\"step\":19"));
    store_events_free(&l2);
    store_events_free(&l);
    pg = (store_page){.limit = 100, .ascending = 1};
    assert_int_equal(store_event_list(f->s, j.id, &pg, &l, &e), TRL_OK);
    assert_int_equal(l.n, 33);
    assert_false(l.has_more);
    assert_non_null(strstr(l.items[0].message, "Created"));
    store_events_free(&l);
    assert_int_equal(store_event_list(f->s, "ftjob-nope", NULL, &l, &e), TRL_NOT_FOUND);
    store_job_clear(&j);
}

static void test_checkpoints(void **state) {
    fx *f = *state;
    trl_err e = {{0}};
    store_job j, x;
    make_job(f->s, "m", &j);
    store_checkpoint c;
    assert_int_equal(store_checkpoint_latest(f->s, j.id, &c, &e), TRL_NOT_FOUND);
    assert_int_equal(store_job_claim(f->s, "w1", 60, &x, &e), TRL_OK);
    store_job_clear(&x);
    for (int step = 10; step <= 50; step += 10) {
        char path[64], metrics[64];
        snprintf(path, sizeof path, "runs/%s/ckpt-%d", j.id, step);
        snprintf(metrics, sizeof metrics, "{\"step\":%d,\"train_loss\":%.1f}", step, 5.0 - step / 10.0);
        store_checkpoint_new in = {.step = step, .metrics = metrics, .path = path, .model_name = "ft:m:ckpt"};
        assert_int_equal(store_checkpoint_add(f->s, j.id, "w1", &in, &c, &e), TRL_OK);
        assert_memory_equal(c.id, "ftckpt-", 7);
        assert_int_equal(c.step, step);
        assert_string_equal(c.path, path);
        assert_string_equal(c.metrics, metrics);
        assert_string_equal(c.model_name, "ft:m:ckpt");
        store_checkpoint_clear(&c);
    }
    store_checkpoint_new dup = {.step = 30, .path = "again"};
    assert_int_equal(store_checkpoint_add(f->s, j.id, "w1", &dup, NULL, &e), TRL_CONFLICT);
    assert_non_null(strstr(e.msg, "step 30"));
    assert_int_equal(store_checkpoint_add(f->s, j.id, NULL, &(store_checkpoint_new){.step = 1}, NULL, &e), TRL_ERR);
    assert_int_equal(store_checkpoint_add(f->s, "ftjob-nope", NULL, &dup, NULL, &e), TRL_NOT_FOUND);
    assert_int_equal(store_checkpoint_latest(f->s, j.id, &c, &e), TRL_OK);
    assert_int_equal(c.step, 50);
    assert_string_equal(c.metrics, "{\"step\":50,\"train_loss\":0.0}");
    store_checkpoint_clear(&c);
    store_checkpoints l;
    store_page pg = {.limit = 3};
    assert_int_equal(store_checkpoint_list(f->s, j.id, &pg, &l, &e), TRL_OK);
    assert_int_equal(l.n, 3);
    assert_true(l.has_more);
    assert_int_equal(l.items[0].step, 50);
    assert_int_equal(l.items[2].step, 30);
    store_checkpoints_free(&l);
    assert_int_equal(store_checkpoint_list(f->s, "ftjob-nope", NULL, &l, &e), TRL_NOT_FOUND);
    store_job_clear(&j);
}

// ---- models and evals --------------------------------------------------------------------

static void test_models(void **state) {
    fx *f = *state;
    trl_err e = {{0}};
    store_model m;
    assert_int_equal(store_model_served(f->s, &m, &e), TRL_NOT_FOUND);
    store_set_now(f->s, 100);
    store_model_new base = {.id = "SmolLM2-135M-Instruct", .kind = "base", .path = "models/a.gguf"};
    assert_int_equal(store_model_upsert(f->s, &base, &e), TRL_OK);
    store_set_now(f->s, 200);
    store_model_new ft = {.id = "ft:SmolLM2:tools:abc", .kind = "fine-tuned", .base_model = base.id,
                          .job_id = "ftjob-abc", .path = "runs/abc/final"};
    assert_int_equal(store_model_upsert(f->s, &ft, &e), TRL_OK);
    assert_int_equal(store_model_set_served(f->s, base.id, &e), TRL_OK);
    // Upsert keeps created_at and served, updates the rest.
    store_set_now(f->s, 300);
    base.path = "models/b.gguf";
    assert_int_equal(store_model_upsert(f->s, &base, &e), TRL_OK);
    assert_int_equal(store_model_get(f->s, base.id, &m, &e), TRL_OK);
    assert_string_equal(m.path, "models/b.gguf");
    assert_int_equal(m.created_at, 100);
    assert_int_equal(m.served, 1);
    assert_null(m.base_model);
    store_model_clear(&m);

    store_models l;
    assert_int_equal(store_model_list(f->s, &l, &e), TRL_OK);
    assert_int_equal(l.n, 2);
    assert_string_equal(l.items[0].id, base.id);
    assert_string_equal(l.items[1].id, ft.id);
    assert_string_equal(l.items[1].kind, "fine-tuned");
    assert_string_equal(l.items[1].base_model, base.id);
    assert_string_equal(l.items[1].job_id, "ftjob-abc");
    store_models_free(&l);

    assert_int_equal(store_model_set_served(f->s, ft.id, &e), TRL_OK);
    assert_int_equal(store_model_served(f->s, &m, &e), TRL_OK);
    assert_string_equal(m.id, ft.id);
    store_model_clear(&m);
    assert_int_equal(raw_i64(f->path, "SELECT count(*) FROM models WHERE served = 1"), 1);
    assert_int_equal(store_model_set_served(f->s, "nope", &e), TRL_NOT_FOUND);
    assert_int_equal(store_model_served(f->s, &m, &e), TRL_OK);  // unchanged by the failed call
    assert_string_equal(m.id, ft.id);
    store_model_clear(&m);
    assert_int_equal(store_model_set_served(f->s, ft.id, &e), TRL_OK);  // again: still one
    assert_int_equal(store_model_get(f->s, "nope", &m, &e), TRL_NOT_FOUND);
    store_model_new bad = {.id = "x", .kind = "lora", .path = "p"};
    assert_int_equal(store_model_upsert(f->s, &bad, &e), TRL_ERR);
}

static void test_evals(void **state) {
    fx *f = *state;
    trl_err e = {{0}};
    const char *models[] = {"base", "ft:a"};
    const char *cats[] = {"simple", "multiple", "overall"};
    for (int mi = 0; mi < 2; mi++)
        for (int ci = 0; ci < 3; ci++) {
            store_eval_new in = {.model = models[mi], .suite = "bfcl", .category = cats[ci],
                                 .score = 0.25 * (mi + 1) + 0.01 * ci, .n_cases = 100, .report_path = "r.json"};
            store_eval r;
            assert_int_equal(store_eval_add(f->s, &in, &r, &e), TRL_OK);
            assert_memory_equal(r.id, "eval-", 5);
            assert_string_equal(r.category, cats[ci]);
            assert_true(r.score == in.score);
            store_eval_clear(&r);
        }
    store_eval_new other = {.model = "base", .suite = "toolbench", .category = "overall", .score = 0.5};
    assert_int_equal(store_eval_add(f->s, &other, NULL, &e), TRL_OK);
    store_evals l;
    assert_int_equal(store_eval_list(f->s, NULL, NULL, NULL, &l, &e), TRL_OK);
    assert_int_equal(l.n, 7);
    store_evals_free(&l);
    assert_int_equal(store_eval_list(f->s, "base", NULL, NULL, &l, &e), TRL_OK);
    assert_int_equal(l.n, 4);
    assert_string_equal(l.items[0].suite, "toolbench");
    store_evals_free(&l);
    assert_int_equal(store_eval_list(f->s, "ft:a", "bfcl", NULL, &l, &e), TRL_OK);
    assert_int_equal(l.n, 3);
    assert_string_equal(l.items[0].category, "overall");
    assert_true(l.items[0].score == 0.52);
    assert_int_equal(l.items[0].n_cases, 100);
    assert_string_equal(l.items[0].report_path, "r.json");
    store_evals_free(&l);
    assert_int_equal(store_eval_list(f->s, NULL, "toolbench", NULL, &l, &e), TRL_OK);
    assert_int_equal(l.n, 1);
    assert_null(l.items[0].report_path);
    store_evals_free(&l);
    store_eval_new bad = {.model = "m"};
    assert_int_equal(store_eval_add(f->s, &bad, NULL, &e), TRL_ERR);
}

// ---- API keys and projects ---------------------------------------------------------------

// Keys: the text is shown once and never stored (only its SHA-256); it is found by its text,
// revoked or not; revoking twice or an unknown id are refused; the active count follows.
static void test_keys(void **state) {
    fx *f = *state;
    trl_err e = {{0}};
    char k1[STORE_KEY_MAX], k2[STORE_KEY_MAX];
    store_key a, b, g;
    int64_t n = -1;
    assert_int_equal(store_key_count(f->s, 1, &n, &e), TRL_OK);
    assert_int_equal(n, 0);
    assert_int_equal(store_key_create(f->s, "alpha", "ci", 0, k1, &a, &e), TRL_OK);
    assert_int_equal(store_key_create(f->s, "beta", NULL, 1, k2, &b, &e), TRL_OK);
    assert_int_equal(strlen(k1), strlen(STORE_KEY_PREFIX) + 43);
    assert_memory_equal(k1, STORE_KEY_PREFIX, strlen(STORE_KEY_PREFIX));
    assert_int_equal(strspn(k1 + strlen(STORE_KEY_PREFIX),
                            "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"), 43);
    assert_string_not_equal(k1, k2);
    assert_memory_equal(a.id, "key-", 4);
    assert_string_equal(a.project, "alpha");
    assert_string_equal(a.name, "ci");
    assert_int_equal(a.admin, 0);
    assert_int_equal(b.admin, 1);
    assert_null(b.name);
    assert_int_equal(a.revoked_at, 0);
    // the text is nowhere in the file, its hash is
    char q[256];
    snprintf(q, sizeof q, "SELECT count(*) FROM api_keys WHERE hash LIKE '%%%s%%' OR id = '%s'", k1 + 10, k1);
    assert_int_equal(raw_i64(f->path, q), 0);
    assert_int_equal(raw_i64(f->path, "SELECT count(*) FROM api_keys WHERE length(hash) = 64"), 2);
    assert_int_equal(store_key_find(f->s, k1, &g, &e), TRL_OK);
    assert_string_equal(g.id, a.id);
    store_key_clear(&g);
    assert_int_equal(store_key_find(f->s, k2, &g, &e), TRL_OK);
    assert_string_equal(g.project, "beta");
    store_key_clear(&g);
    k1[20] ^= 1;
    assert_int_equal(store_key_find(f->s, k1, &g, &e), TRL_NOT_FOUND);
    assert_int_equal(store_key_find(f->s, "", &g, &e), TRL_NOT_FOUND);
    k1[20] ^= 1;
    assert_int_equal(store_key_count(f->s, 1, &n, &e), TRL_OK);
    assert_int_equal(n, 2);
    // revoke
    assert_int_equal(store_key_revoke(f->s, a.id, &e), TRL_OK);
    assert_int_equal(store_key_revoke(f->s, a.id, &e), TRL_CONFLICT);
    assert_int_equal(store_key_revoke(f->s, "key-nope", &e), TRL_NOT_FOUND);
    assert_int_equal(store_key_find(f->s, k1, &g, &e), TRL_OK);
    assert_true(g.revoked_at > 0);
    store_key_clear(&g);
    assert_int_equal(store_key_count(f->s, 1, &n, &e), TRL_OK);
    assert_int_equal(n, 1);
    assert_int_equal(store_key_count(f->s, 0, &n, &e), TRL_OK);  // revoked keys still count here
    assert_int_equal(n, 2);
    store_keys l;
    assert_int_equal(store_key_list(f->s, &l, &e), TRL_OK);
    assert_int_equal(l.n, 2);
    assert_string_equal(l.items[0].id, a.id);
    assert_true(l.items[0].revoked_at > 0);
    assert_int_equal(l.items[1].revoked_at, 0);
    store_keys_free(&l);
    // project names; the default project is for admins only
    assert_int_equal(store_key_create(f->s, "", NULL, 0, k1, NULL, &e), TRL_ERR);
    assert_int_equal(store_key_create(f->s, "a b", NULL, 0, k1, NULL, &e), TRL_ERR);
    assert_int_equal(store_key_create(f->s, "a'b", NULL, 0, k1, NULL, &e), TRL_ERR);
    assert_int_equal(store_key_create(f->s, STORE_DEFAULT_PROJECT, NULL, 0, k1, NULL, &e), TRL_ERR);
    assert_string_equal(k1, "");
    assert_int_equal(store_key_create(f->s, STORE_DEFAULT_PROJECT, NULL, 1, k1, NULL, &e), TRL_OK);
    assert_true(store_project_name_ok("team-1.a_b"));
    assert_false(store_project_name_ok("x/y"));
    store_key_clear(&a);
    store_key_clear(&b);
}

// Rows carry their project; page.project keeps a list to one project, and a cursor from another
// project is an unknown cursor. Models and eval results of a job take the job's project.
static void test_projects(void **state) {
    fx *f = *state;
    trl_err e = {{0}};
    store_file fa, fb;
    store_file_new na = {.filename = "a", .purpose = "fine-tune", .project = "alpha"};
    store_file_new nb = {.filename = "b", .purpose = "fine-tune", .project = "beta"};
    assert_int_equal(store_file_create(f->s, &na, &fa, &e), TRL_OK);
    assert_int_equal(store_file_create(f->s, &nb, &fb, &e), TRL_OK);
    store_file_new bad = {.filename = "c", .purpose = "fine-tune", .project = "no spaces"};
    assert_int_equal(store_file_create(f->s, &bad, NULL, &e), TRL_ERR);
    assert_string_equal(fa.project, "alpha");
    store_files l;
    store_page pg = {.project = "alpha"};
    assert_int_equal(store_file_list(f->s, NULL, &pg, &l, &e), TRL_OK);
    assert_int_equal(l.n, 1);
    assert_string_equal(l.items[0].id, fa.id);
    store_files_free(&l);
    pg.after = fb.id;  // beta's file as alpha's cursor
    assert_int_equal(store_file_list(f->s, NULL, &pg, &l, &e), TRL_NOT_FOUND);
    pg = (store_page){0};
    assert_int_equal(store_file_list(f->s, NULL, &pg, &l, &e), TRL_OK);
    assert_int_equal(l.n, 2);
    store_files_free(&l);
    // jobs and eval runs
    store_job ja, jb, jd;
    store_job_new in = {.model = "m", .method = "supervised", .training_file = fa.id, .project = "alpha"};
    assert_int_equal(store_job_create(f->s, &in, &ja, &e), TRL_OK);
    in.project = "beta";
    assert_int_equal(store_job_create(f->s, &in, &jb, &e), TRL_OK);
    in.project = NULL;
    assert_int_equal(store_job_create(f->s, &in, &jd, &e), TRL_OK);
    assert_string_equal(jd.project, STORE_DEFAULT_PROJECT);
    store_job_new ev = {.model = "m", .method = "eval", .training_file = "bfcl", .project = "beta"};
    store_job rb;
    assert_int_equal(store_job_create(f->s, &ev, &rb, &e), TRL_OK);
    store_jobs jl;
    pg.project = "beta";
    assert_int_equal(store_job_list(f->s, &pg, &jl, &e), TRL_OK);
    assert_int_equal(jl.n, 1);
    assert_string_equal(jl.items[0].id, jb.id);
    store_jobs_free(&jl);
    assert_int_equal(store_job_list_kind(f->s, 1, "bfcl", &pg, &jl, &e), TRL_OK);
    assert_int_equal(jl.n, 1);
    store_jobs_free(&jl);
    pg.project = "alpha";
    assert_int_equal(store_job_list_kind(f->s, 1, "bfcl", &pg, &jl, &e), TRL_OK);
    assert_int_equal(jl.n, 0);
    store_jobs_free(&jl);
    pg.after = jb.id;
    assert_int_equal(store_job_list(f->s, &pg, &jl, &e), TRL_NOT_FOUND);
    // a job's model and eval results are the job's project's
    store_model_new mn = {.id = "ft:m:x:b", .kind = "fine-tuned", .job_id = jb.id, .path = "p"};
    assert_int_equal(store_model_upsert(f->s, &mn, &e), TRL_OK);
    mn.project = "alpha";  // an update keeps the project
    assert_int_equal(store_model_upsert(f->s, &mn, &e), TRL_OK);
    store_model_new base = {.id = "base", .kind = "base", .path = "p"};
    assert_int_equal(store_model_upsert(f->s, &base, &e), TRL_OK);
    store_model m;
    assert_int_equal(store_model_get(f->s, "ft:m:x:b", &m, &e), TRL_OK);
    assert_string_equal(m.project, "beta");
    store_model_clear(&m);
    assert_int_equal(store_model_get(f->s, "base", &m, &e), TRL_OK);
    assert_string_equal(m.project, STORE_DEFAULT_PROJECT);
    store_model_clear(&m);
    store_eval_new er = {.model = "m", .suite = "bfcl", .category = "overall", .job_id = rb.id};
    store_eval r1;
    assert_int_equal(store_eval_add(f->s, &er, &r1, &e), TRL_OK);
    assert_string_equal(r1.project, "beta");
    store_eval_clear(&r1);
    er.job_id = NULL;
    assert_int_equal(store_eval_add(f->s, &er, &r1, &e), TRL_OK);
    assert_string_equal(r1.project, STORE_DEFAULT_PROJECT);
    store_eval_clear(&r1);
    store_evals el;
    pg = (store_page){.project = "beta"};
    assert_int_equal(store_eval_list(f->s, NULL, "bfcl", &pg, &el, &e), TRL_OK);
    assert_int_equal(el.n, 1);
    store_evals_free(&el);
    store_file_clear(&fa), store_file_clear(&fb);
    store_job_clear(&ja), store_job_clear(&jb), store_job_clear(&jd), store_job_clear(&rb);
}

// ---- concurrency: forked workers ----------------------------------------------------------

enum { N_JOBS = 200, N_WORKERS = 4 };

// A worker process: its own connection; claims until the queue is empty, reports each
// claimed id on the pipe only after the claim committed, and finishes the job. (SQLite's busy
// handler sleeps, so a worker that never pauses would starve the rest: real ones train between.)
static void claim_worker(const char *path, int w, int fd) {
    trl_err e = {{0}};
    store *s = NULL;
    if (store_open(&s, path, &e) != TRL_OK) _exit(2);
    char worker[32];
    snprintf(worker, sizeof worker, "worker-%d", w);
    for (;;) {
        store_job j;
        int rc = store_job_claim(s, worker, 300, &j, &e);
        if (rc == TRL_NOT_FOUND) break;
        if (rc != TRL_OK) {
            fprintf(stderr, "%s: %s\n", worker, e.msg);
            _exit(3);
        }
        char line[STORE_ID_MAX + 2];
        int n = snprintf(line, sizeof line, "%s\n", j.id);
        if (write(fd, line, (size_t)n) != n) _exit(4);
        if (store_job_finish(s, j.id, worker, "succeeded", NULL, NULL, &e) != TRL_OK) {
            fprintf(stderr, "%s: %s\n", worker, e.msg);
            _exit(5);
        }
        store_job_clear(&j);
        usleep(300);  // "work" outside any transaction, so the others get the lock too
    }
    store_close(s);
    _exit(0);
}

static void test_concurrent_claims(void **state) {
    fx *f = *state;
    trl_err e = {{0}};
    char (*ids)[STORE_ID_MAX] = calloc(N_JOBS, STORE_ID_MAX);
    assert_non_null(ids);
    for (int i = 0; i < N_JOBS; i++) {
        store_job j;
        make_job(f->s, "m", &j);
        snprintf(ids[i], STORE_ID_MAX, "%s", j.id);
        store_job_clear(&j);
    }
    store_close(f->s);  // no connection crosses fork()
    f->s = NULL;
    int fds[N_WORKERS][2];
    pid_t pids[N_WORKERS];
    for (int w = 0; w < N_WORKERS; w++) {
        assert_int_equal(pipe(fds[w]), 0);
        pids[w] = fork();
        assert_true(pids[w] >= 0);
        if (pids[w] == 0) {
            for (int k = 0; k <= w; k++) close(fds[k][0]);
            claim_worker(f->path, w, fds[w][1]);
        }
        close(fds[w][1]);
    }
    int *count = calloc(N_JOBS, sizeof *count);
    int per_worker[N_WORKERS] = {0};
    assert_non_null(count);
    for (int w = 0; w < N_WORKERS; w++) {
        FILE *in = fdopen(fds[w][0], "r");
        assert_non_null(in);
        char line[128];
        while (fgets(line, sizeof line, in)) {
            line[strcspn(line, "\n")] = 0;
            int k = 0;
            while (k < N_JOBS && strcmp(ids[k], line) != 0) k++;
            assert_true(k < N_JOBS);
            count[k]++;
            per_worker[w]++;
        }
        fclose(in);
        int status = 0;
        assert_int_equal(waitpid(pids[w], &status, 0), pids[w]);
        assert_true(WIFEXITED(status));
        assert_int_equal(WEXITSTATUS(status), 0);
    }
    for (int k = 0; k < N_JOBS; k++) assert_int_equal(count[k], 1);
    int busy = 0;
    for (int w = 0; w < N_WORKERS; w++) busy += per_worker[w] > 0;
    print_message("claims per worker: %d %d %d %d\n", per_worker[0], per_worker[1], per_worker[2], per_worker[3]);
    assert_true(busy >= 2);  // they really ran side by side
    assert_int_equal(store_open(&f->s, f->path, &e), TRL_OK);
    assert_int_equal(raw_i64(f->path, "SELECT count(*) FROM jobs WHERE status = 'succeeded' AND attempts = 1"),
                     N_JOBS);
    assert_int_equal(store_integrity_check(f->s, &e), TRL_OK);
    free(count);
    free(ids);
}

// Several processes opening one fresh file at once: each migration is applied exactly once.
static void test_concurrent_first_open(void **state) {
    fx *f = *state;
    char path[320];
    snprintf(path, sizeof path, "%s/fresh.db", f->dir);
    enum { N = 6 };
    pid_t pids[N];
    for (int i = 0; i < N; i++) {
        pids[i] = fork();
        assert_true(pids[i] >= 0);
        if (pids[i] == 0) {
            trl_err e = {{0}};
            store *s = NULL;
            if (store_open(&s, path, &e) != TRL_OK) {
                fprintf(stderr, "open %d: %s\n", i, e.msg);
                _exit(1);
            }
            store_job j;
            make_job(s, "m", &j);
            store_job_clear(&j);
            store_close(s);
            _exit(0);
        }
    }
    for (int i = 0; i < N; i++) {
        int status = 0;
        assert_int_equal(waitpid(pids[i], &status, 0), pids[i]);
        assert_true(WIFEXITED(status));
        assert_int_equal(WEXITSTATUS(status), 0);
    }
    assert_int_equal(raw_i64(path, "SELECT count(*) FROM schema_migrations"), store_migrations_count);
    assert_int_equal(raw_i64(path, "SELECT count(*) FROM jobs"), N);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_migrations_fresh, setup, teardown),
        cmocka_unit_test_setup_teardown(test_reopen_noop, setup, teardown),
        cmocka_unit_test_setup_teardown(test_newer_schema_refused, setup, teardown),
        cmocka_unit_test_setup_teardown(test_migration_failure_rolls_back, setup, teardown),
        cmocka_unit_test_setup_teardown(test_migration_2_keeps_rows, setup, teardown),
        cmocka_unit_test(test_embedded_matches_files),
        cmocka_unit_test(test_ids),
        cmocka_unit_test_setup_teardown(test_files, setup, teardown),
        cmocka_unit_test_setup_teardown(test_pagination, setup, teardown),
        cmocka_unit_test_setup_teardown(test_job_create_get, setup, teardown),
        cmocka_unit_test_setup_teardown(test_cancel_queued, setup, teardown),
        cmocka_unit_test_setup_teardown(test_cancel_running, setup, teardown),
        cmocka_unit_test_setup_teardown(test_claim_order, setup, teardown),
        cmocka_unit_test_setup_teardown(test_heartbeat_finish, setup, teardown),
        cmocka_unit_test_setup_teardown(test_lease_expiry, setup, teardown),
        cmocka_unit_test_setup_teardown(test_events, setup, teardown),
        cmocka_unit_test_setup_teardown(test_checkpoints, setup, teardown),
        cmocka_unit_test_setup_teardown(test_models, setup, teardown),
        cmocka_unit_test_setup_teardown(test_evals, setup, teardown),
        cmocka_unit_test_setup_teardown(test_keys, setup, teardown),
        cmocka_unit_test_setup_teardown(test_projects, setup, teardown),
        cmocka_unit_test_setup_teardown(test_concurrent_claims, setup, teardown),
        cmocka_unit_test_setup_teardown(test_concurrent_first_open, setup, teardown),
    };
    return cmocka_run_group_tests_name("store", tests, NULL, NULL);
}
