// store_files.c: the store's simple tables: uploaded files, models (which one is served)
// and eval results. Jobs, their queue, events and checkpoints are in store_jobs.c; API keys
// in store_keys.c.
#include "store/store_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

// ---- files ----------------------------------------------------------------------------

#define FILE_COLS "id, bytes, created_at, filename, purpose, status, sha256, path, line_count, error, project"

// The columns of FILE_COLS, in order.
static const store_field FILE_FIELDS[] = {
    {STORE_TEXT, offsetof(store_file, id)},
    {STORE_I64, offsetof(store_file, bytes)},
    {STORE_I64, offsetof(store_file, created_at)},
    {STORE_TEXT, offsetof(store_file, filename)},
    {STORE_TEXT, offsetof(store_file, purpose)},
    {STORE_TEXT, offsetof(store_file, status)},
    {STORE_TEXT, offsetof(store_file, sha256)},
    {STORE_TEXT, offsetof(store_file, path)},
    {STORE_I64, offsetof(store_file, line_count)},
    {STORE_TEXT, offsetof(store_file, error)},
    {STORE_TEXT, offsetof(store_file, project)},
};
static const store_row FILE_ROW = STORE_ROW(store_file, FILE_FIELDS);

void store_file_clear(store_file *f) { store_row_clear(&FILE_ROW, f); }

void store_files_free(store_files *l) {
    if (!l) return;
    store_rows_free(&FILE_ROW, l->items, l->n);
    memset(l, 0, sizeof *l);
}

static int file_status_ok(const char *st) {
    return st && (!strcmp(st, "uploaded") || !strcmp(st, "processed") || !strcmp(st, "error"));
}

int store_file_get(store *s, const char *id, store_file *out, trl_err *e) {
    memset(out, 0, sizeof *out);
    sqlite3_stmt *st = store_stmt(s, "SELECT " FILE_COLS " FROM files WHERE id = ?1", e);
    if (!st) return TRL_ERR;
    store_bind_text(st, 1, id);
    int rc = store_get_run(s, st, &FILE_ROW, out, "get file", e);
    if (rc == TRL_NOT_FOUND) trl_errf(e, "store: no file with id '%s'", id);
    return rc;
}

int store_file_create(store *s, const store_file_new *in, store_file *out, trl_err *e) {
    if (out) memset(out, 0, sizeof *out);
    if (!in->filename || !in->purpose) return trl_errf(e, "store: a file needs a filename and a purpose");
    const char *status = in->status ? in->status : "uploaded";
    if (!file_status_ok(status))
        return trl_errf(e, "store: file status must be uploaded, processed or error, not '%s'", status);
    if (in->bytes < 0 || in->line_count < 0) return trl_errf(e, "store: file sizes must not be negative");
    const char *project = in->project ? in->project : STORE_DEFAULT_PROJECT;
    if (!store_project_name_ok(project)) return trl_errf(e, "store: bad project name '%.80s'", project);
    char id[STORE_ID_MAX];
    if (in->id && strlen(in->id) >= sizeof id) return trl_errf(e, "store: file id '%.60s…' too long", in->id);
    if (in->id) snprintf(id, sizeof id, "%s", in->id);
    else if (store_id_new("file", id, e) != TRL_OK) return TRL_ERR;

    if (store_tx_begin(s, e) != TRL_OK) return TRL_ERR;
    sqlite3_stmt *st = store_stmt(s,
                                  "INSERT INTO files (id, bytes, created_at, filename, purpose, status, sha256, path,"
                                  " line_count, project) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
                                  e);
    if (!st) {
        store_tx_rollback(s);
        return TRL_ERR;
    }
    store_bind_text(st, 1, id);
    sqlite3_bind_int64(st, 2, in->bytes);
    sqlite3_bind_int64(st, 3, store_now(s));
    store_bind_text(st, 4, in->filename);
    store_bind_text(st, 5, in->purpose);
    store_bind_text(st, 6, status);
    store_bind_text(st, 7, in->sha256);
    store_bind_text(st, 8, in->path);
    sqlite3_bind_int64(st, 9, in->line_count);
    store_bind_text(st, 10, project);
    int rc = store_step_done(s, st, "create file", e);
    if (rc == TRL_OK && out) rc = store_file_get(s, id, out, e);
    if (rc != TRL_OK) {
        store_tx_rollback(s);
        return rc;
    }
    if (store_tx_commit(s, e) != TRL_OK) {
        if (out) store_file_clear(out);
        return TRL_ERR;
    }
    return TRL_OK;
}

int store_file_list(store *s, const char *purpose, const store_page *page, store_files *out, trl_err *e) {
    memset(out, 0, sizeof *out);
    char sql[512];
    int rc = store_list_sql(s, sql, sizeof sql, FILE_COLS, "files", purpose ? "purpose = :purpose" : NULL, page, e);
    if (rc != TRL_OK) return rc;
    sqlite3_stmt *st = store_stmt(s, sql, e);
    if (!st) return TRL_ERR;
    int limit = store_page_limit(page);
    store_list_bind(st, page, limit);
    if (purpose) store_bind_text(st, sqlite3_bind_parameter_index(st, ":purpose"), purpose);
    return store_list_run(s, st, limit, &FILE_ROW, (void **)&out->items, &out->n, &out->has_more, "list files", e);
}

// Runs a one-row write (UPDATE / DELETE on an id) in its own transaction; TRL_NOT_FOUND
// when no row changed.
static int write_one(store *s, sqlite3_stmt *st, const char *what, const char *kind, const char *id, trl_err *e) {
    if (store_tx_begin(s, e) != TRL_OK) {
        store_stmt_done(st);
        return TRL_ERR;
    }
    int rc = store_step_done(s, st, what, e);
    if (rc == TRL_OK && sqlite3_changes(s->db) == 0) rc = TRL_NOT_FOUND;
    if (rc != TRL_OK) {
        store_tx_rollback(s);
        if (rc == TRL_NOT_FOUND) trl_errf(e, "store: no %s with id '%s'", kind, id);
        return rc;
    }
    return store_tx_commit(s, e);
}

int store_file_delete(store *s, const char *id, trl_err *e) {
    sqlite3_stmt *st = store_stmt(s, "DELETE FROM files WHERE id = ?1", e);
    if (!st) return TRL_ERR;
    store_bind_text(st, 1, id);
    return write_one(s, st, "delete file", "file", id, e);
}

int store_file_set_status(store *s, const char *id, const char *status, int64_t line_count, const char *error,
                          trl_err *e) {
    if (!file_status_ok(status))
        return trl_errf(e, "store: file status must be uploaded, processed or error, not '%s'", status ? status : "(null)");
    sqlite3_stmt *st = store_stmt(s,
                                  "UPDATE files SET status = ?2, error = ?3,"
                                  " line_count = CASE WHEN ?4 >= 0 THEN ?4 ELSE line_count END WHERE id = ?1",
                                  e);
    if (!st) return TRL_ERR;
    store_bind_text(st, 1, id);
    store_bind_text(st, 2, status);
    store_bind_text(st, 3, error);
    sqlite3_bind_int64(st, 4, line_count);
    return write_one(s, st, "set file status", "file", id, e);
}

// ---- models ---------------------------------------------------------------------------

#define MODEL_COLS "id, kind, base_model, job_id, path, created_at, served, project"

// The columns of MODEL_COLS, in order.
static const store_field MODEL_FIELDS[] = {
    {STORE_TEXT, offsetof(store_model, id)},
    {STORE_TEXT, offsetof(store_model, kind)},
    {STORE_TEXT, offsetof(store_model, base_model)},
    {STORE_TEXT, offsetof(store_model, job_id)},
    {STORE_TEXT, offsetof(store_model, path)},
    {STORE_I64, offsetof(store_model, created_at)},
    {STORE_INT, offsetof(store_model, served)},
    {STORE_TEXT, offsetof(store_model, project)},
};
static const store_row MODEL_ROW = STORE_ROW(store_model, MODEL_FIELDS);

void store_model_clear(store_model *m) { store_row_clear(&MODEL_ROW, m); }

void store_models_free(store_models *l) {
    if (!l) return;
    store_rows_free(&MODEL_ROW, l->items, l->n);
    memset(l, 0, sizeof *l);
}

int store_model_upsert(store *s, const store_model_new *in, trl_err *e) {
    if (!in->id || !in->path || !in->kind) return trl_errf(e, "store: a model needs an id, a kind and a path");
    if (strcmp(in->kind, "base") && strcmp(in->kind, "fine-tuned"))
        return trl_errf(e, "store: model kind must be base or fine-tuned, not '%s'", in->kind);
    if (in->project && !store_project_name_ok(in->project))
        return trl_errf(e, "store: bad project name '%.80s'", in->project);
    // The project: the one given, else the job's (a worker's checkpoint is its job's project's).
    sqlite3_stmt *st = store_stmt(s,
                                  "INSERT INTO models (id, kind, base_model, job_id, path, created_at, project)"
                                  " VALUES (?1, ?2, ?3, ?4, ?5, ?6, COALESCE(?7, (SELECT project FROM jobs"
                                  " WHERE id = ?4), '" STORE_DEFAULT_PROJECT "')) ON CONFLICT (id) DO UPDATE SET"
                                  " kind = excluded.kind, base_model = excluded.base_model,"
                                  " job_id = excluded.job_id, path = excluded.path",
                                  e);
    if (!st) return TRL_ERR;
    if (store_tx_begin(s, e) != TRL_OK) return TRL_ERR;
    store_bind_text(st, 1, in->id);
    store_bind_text(st, 2, in->kind);
    store_bind_text(st, 3, in->base_model);
    store_bind_text(st, 4, in->job_id);
    store_bind_text(st, 5, in->path);
    sqlite3_bind_int64(st, 6, store_now(s));
    store_bind_text(st, 7, in->project);
    int rc = store_step_done(s, st, "upsert model", e);
    if (rc != TRL_OK) {
        store_tx_rollback(s);
        return rc;
    }
    return store_tx_commit(s, e);
}

int store_model_get(store *s, const char *id, store_model *out, trl_err *e) {
    memset(out, 0, sizeof *out);
    sqlite3_stmt *st = store_stmt(s, "SELECT " MODEL_COLS " FROM models WHERE id = ?1", e);
    if (!st) return TRL_ERR;
    store_bind_text(st, 1, id);
    int rc = store_get_run(s, st, &MODEL_ROW, out, "get model", e);
    if (rc == TRL_NOT_FOUND) trl_errf(e, "store: no model '%s'", id);
    return rc;
}

int store_model_served(store *s, store_model *out, trl_err *e) {
    memset(out, 0, sizeof *out);
    sqlite3_stmt *st = store_stmt(s, "SELECT " MODEL_COLS " FROM models WHERE served = 1", e);
    if (!st) return TRL_ERR;
    int rc = store_get_run(s, st, &MODEL_ROW, out, "get served model", e);
    if (rc == TRL_NOT_FOUND) trl_errf(e, "store: no model is marked served");
    return rc;
}

int store_model_list(store *s, store_models *out, trl_err *e) {
    memset(out, 0, sizeof *out);
    sqlite3_stmt *st = store_stmt(s, "SELECT " MODEL_COLS " FROM models ORDER BY created_at, rowid", e);
    if (!st) return TRL_ERR;
    return store_list_run(s, st, 1 << 30, &MODEL_ROW, (void **)&out->items, &out->n, &out->has_more, "list models", e);
}

int store_model_set_served(store *s, const char *id, trl_err *e) {
    if (store_tx_begin(s, e) != TRL_OK) return TRL_ERR;
    sqlite3_stmt *st = store_stmt(s, "UPDATE models SET served = 0 WHERE served = 1 AND id <> ?1", e);
    int rc = TRL_ERR;
    if (st) {
        store_bind_text(st, 1, id);
        rc = store_step_done(s, st, "unmark served model", e);
    }
    if (rc == TRL_OK) {
        st = store_stmt(s, "UPDATE models SET served = 1 WHERE id = ?1", e);
        rc = TRL_ERR;
        if (st) {
            store_bind_text(st, 1, id);
            rc = store_step_done(s, st, "mark served model", e);
            if (rc == TRL_OK && sqlite3_changes(s->db) == 0) {
                trl_errf(e, "store: no model '%s'", id);
                rc = TRL_NOT_FOUND;
            }
        }
    }
    if (rc != TRL_OK) {
        store_tx_rollback(s);
        return rc;
    }
    return store_tx_commit(s, e);
}

// ---- eval results ---------------------------------------------------------------------

#define EVAL_COLS "id, model, suite, category, score, n_cases, report_path, created_at, job_id, project"

// The columns of EVAL_COLS, in order.
static const store_field EVAL_FIELDS[] = {
    {STORE_TEXT, offsetof(store_eval, id)},
    {STORE_TEXT, offsetof(store_eval, model)},
    {STORE_TEXT, offsetof(store_eval, suite)},
    {STORE_TEXT, offsetof(store_eval, category)},
    {STORE_REAL, offsetof(store_eval, score)},
    {STORE_I64, offsetof(store_eval, n_cases)},
    {STORE_TEXT, offsetof(store_eval, report_path)},
    {STORE_I64, offsetof(store_eval, created_at)},
    {STORE_TEXT, offsetof(store_eval, job_id)},
    {STORE_TEXT, offsetof(store_eval, project)},
};
static const store_row EVAL_ROW = STORE_ROW(store_eval, EVAL_FIELDS);

void store_eval_clear(store_eval *r) { store_row_clear(&EVAL_ROW, r); }

void store_evals_free(store_evals *l) {
    if (!l) return;
    store_rows_free(&EVAL_ROW, l->items, l->n);
    memset(l, 0, sizeof *l);
}

int store_eval_add(store *s, const store_eval_new *in, store_eval *out, trl_err *e) {
    if (out) memset(out, 0, sizeof *out);
    if (!in->model || !in->suite || !in->category)
        return trl_errf(e, "store: an eval result needs a model, a suite and a category");
    if (in->project && !store_project_name_ok(in->project))
        return trl_errf(e, "store: bad project name '%.80s'", in->project);
    char id[STORE_ID_MAX];
    if (store_id_new("eval", id, e) != TRL_OK) return TRL_ERR;
    sqlite3_stmt *st = store_stmt(s,
                                  "INSERT INTO eval_results (id, model, suite, category, score, n_cases, report_path,"
                                  " created_at, job_id, project) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9,"
                                  " COALESCE(?10, (SELECT project FROM jobs WHERE id = ?9), '" STORE_DEFAULT_PROJECT
                                  "'))",
                                  e);
    if (!st) return TRL_ERR;
    if (store_tx_begin(s, e) != TRL_OK) return TRL_ERR;
    store_bind_text(st, 1, id);
    store_bind_text(st, 2, in->model);
    store_bind_text(st, 3, in->suite);
    store_bind_text(st, 4, in->category);
    sqlite3_bind_double(st, 5, in->score);
    sqlite3_bind_int64(st, 6, in->n_cases);
    store_bind_text(st, 7, in->report_path);
    sqlite3_bind_int64(st, 8, store_now(s));
    store_bind_text(st, 9, in->job_id);
    store_bind_text(st, 10, in->project);
    int rc = store_step_done(s, st, "add eval result", e);
    if (rc == TRL_OK && out) {
        sqlite3_stmt *g = store_stmt(s, "SELECT " EVAL_COLS " FROM eval_results WHERE id = ?1", e);
        rc = TRL_ERR;
        if (g) {
            store_bind_text(g, 1, id);
            rc = store_get_run(s, g, &EVAL_ROW, out, "get eval result", e);
        }
    }
    if (rc != TRL_OK) {
        store_tx_rollback(s);
        return rc == TRL_NOT_FOUND ? TRL_ERR : rc;
    }
    if (store_tx_commit(s, e) != TRL_OK) {
        if (out) store_eval_clear(out);
        return TRL_ERR;
    }
    return TRL_OK;
}

int store_eval_list(store *s, const char *model, const char *suite, const store_page *page, store_evals *out,
                    trl_err *e) {
    memset(out, 0, sizeof *out);
    const char *where = model && suite ? "model = :model AND suite = :suite"
                        : model        ? "model = :model"
                        : suite        ? "suite = :suite"
                                       : NULL;
    char sql[512];
    int rc = store_list_sql(s, sql, sizeof sql, EVAL_COLS, "eval_results", where, page, e);
    if (rc != TRL_OK) return rc;
    sqlite3_stmt *st = store_stmt(s, sql, e);
    if (!st) return TRL_ERR;
    int limit = store_page_limit(page);
    store_list_bind(st, page, limit);
    if (model) store_bind_text(st, sqlite3_bind_parameter_index(st, ":model"), model);
    if (suite) store_bind_text(st, sqlite3_bind_parameter_index(st, ":suite"), suite);
    return store_list_run(s, st, limit, &EVAL_ROW, (void **)&out->items, &out->n, &out->has_more,
                          "list eval results", e);
}

int store_eval_list_job(store *s, const char *job_id, store_evals *out, trl_err *e) {
    memset(out, 0, sizeof *out);
    store_page page = {NULL, 100, 1, NULL};
    char sql[512];
    int rc = store_list_sql(s, sql, sizeof sql, EVAL_COLS, "eval_results", "job_id = :job", &page, e);
    if (rc != TRL_OK) return rc;
    sqlite3_stmt *st = store_stmt(s, sql, e);
    if (!st) return TRL_ERR;
    store_list_bind(st, &page, 100);
    store_bind_text(st, sqlite3_bind_parameter_index(st, ":job"), job_id);
    return store_list_run(s, st, 100, &EVAL_ROW, (void **)&out->items, &out->n, &out->has_more, "list eval results", e);
}
