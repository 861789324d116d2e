// store_jobs.c: fine-tuning jobs and the work queue built on them (claim, heartbeat, finish,
// requeue of expired leases), plus job events and checkpoints. Every state change is one
// BEGIN IMMEDIATE transaction that also appends the event describing it.
#include "store/store_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define JOB_COLS                                                                                          \
    "id, model, method, method_config, hyperparameters, training_file, validation_file, suffix, metadata," \
    " seed, status, created_at, started_at, finished_at, fine_tuned_model, error, trained_tokens,"        \
    " worker_id, lease_expires_at, heartbeat_at, attempts, max_attempts, cancel_requested, step, total_steps," \
    " project"
#define EVENT_COLS "id, job_id, created_at, level, type, message, data"
#define CKPT_COLS "id, job_id, step, metrics, path, model_name, created_at"

// ---- rows -----------------------------------------------------------------------------

// The columns of JOB_COLS, in order.
static const store_field JOB_FIELDS[] = {
    {STORE_TEXT, offsetof(store_job, id)},
    {STORE_TEXT, offsetof(store_job, model)},
    {STORE_TEXT, offsetof(store_job, method)},
    {STORE_TEXT, offsetof(store_job, method_config)},
    {STORE_TEXT, offsetof(store_job, hyperparameters)},
    {STORE_TEXT, offsetof(store_job, training_file)},
    {STORE_TEXT, offsetof(store_job, validation_file)},
    {STORE_TEXT, offsetof(store_job, suffix)},
    {STORE_TEXT, offsetof(store_job, metadata)},
    {STORE_I64, offsetof(store_job, seed)},
    {STORE_TEXT, offsetof(store_job, status)},
    {STORE_I64, offsetof(store_job, created_at)},
    {STORE_I64, offsetof(store_job, started_at)},
    {STORE_I64, offsetof(store_job, finished_at)},
    {STORE_TEXT, offsetof(store_job, fine_tuned_model)},
    {STORE_TEXT, offsetof(store_job, error)},
    {STORE_I64, offsetof(store_job, trained_tokens)},
    {STORE_TEXT, offsetof(store_job, worker_id)},
    {STORE_I64, offsetof(store_job, lease_expires_at)},
    {STORE_I64, offsetof(store_job, heartbeat_at)},
    {STORE_INT, offsetof(store_job, attempts)},
    {STORE_INT, offsetof(store_job, max_attempts)},
    {STORE_INT, offsetof(store_job, cancel_requested)},
    {STORE_I64, offsetof(store_job, step)},
    {STORE_I64, offsetof(store_job, total_steps)},
    {STORE_TEXT, offsetof(store_job, project)},
};
static const store_row JOB_ROW = STORE_ROW(store_job, JOB_FIELDS);

void store_job_clear(store_job *j) { store_row_clear(&JOB_ROW, j); }

void store_jobs_free(store_jobs *l) {
    if (!l) return;
    store_rows_free(&JOB_ROW, l->items, l->n);
    memset(l, 0, sizeof *l);
}

// The columns of EVENT_COLS, in order.
static const store_field EVENT_FIELDS[] = {
    {STORE_TEXT, offsetof(store_event, id)},
    {STORE_TEXT, offsetof(store_event, job_id)},
    {STORE_I64, offsetof(store_event, created_at)},
    {STORE_TEXT, offsetof(store_event, level)},
    {STORE_TEXT, offsetof(store_event, type)},
    {STORE_TEXT, offsetof(store_event, message)},
    {STORE_TEXT, offsetof(store_event, data)},
};
static const store_row EVENT_ROW = STORE_ROW(store_event, EVENT_FIELDS);

void store_event_clear(store_event *ev) { store_row_clear(&EVENT_ROW, ev); }

void store_events_free(store_events *l) {
    if (!l) return;
    store_rows_free(&EVENT_ROW, l->items, l->n);
    memset(l, 0, sizeof *l);
}

// The columns of CKPT_COLS, in order.
static const store_field CKPT_FIELDS[] = {
    {STORE_TEXT, offsetof(store_checkpoint, id)},
    {STORE_TEXT, offsetof(store_checkpoint, job_id)},
    {STORE_I64, offsetof(store_checkpoint, step)},
    {STORE_TEXT, offsetof(store_checkpoint, metrics)},
    {STORE_TEXT, offsetof(store_checkpoint, path)},
    {STORE_TEXT, offsetof(store_checkpoint, model_name)},
    {STORE_I64, offsetof(store_checkpoint, created_at)},
};
static const store_row CKPT_ROW = STORE_ROW(store_checkpoint, CKPT_FIELDS);

void store_checkpoint_clear(store_checkpoint *c) { store_row_clear(&CKPT_ROW, c); }

void store_checkpoints_free(store_checkpoints *l) {
    if (!l) return;
    store_rows_free(&CKPT_ROW, l->items, l->n);
    memset(l, 0, sizeof *l);
}

// ---- helpers used inside transactions ---------------------------------------------------

// Appends an event (inside the caller's transaction); id_out (may be NULL) gets its id.
static int event_insert(store *s, const char *job_id, const char *level, const char *type, const char *message,
                        const char *data, char *id_out, trl_err *e) {
    char id[STORE_ID_MAX];
    if (store_id_new("ftevent", id, e) != TRL_OK) return TRL_ERR;
    sqlite3_stmt *st = store_stmt(s,
                                  "INSERT INTO job_events (id, job_id, created_at, level, type, message, data)"
                                  " VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                                  e);
    if (!st) return TRL_ERR;
    store_bind_text(st, 1, id);
    store_bind_text(st, 2, job_id);
    sqlite3_bind_int64(st, 3, store_now(s));
    store_bind_text(st, 4, level);
    store_bind_text(st, 5, type);
    store_bind_text(st, 6, message);
    store_bind_text(st, 7, data);
    int rc = store_step_done(s, st, "append event", e);
    if (rc == TRL_OK && id_out) memcpy(id_out, id, sizeof id);
    return rc;
}

// TRL_OK if worker holds a live lease on the job at now; otherwise TRL_NOT_FOUND or
// TRL_LEASE_LOST with the reason.
static int lease_check(store *s, const char *job_id, const char *worker, int64_t now, trl_err *e) {
    sqlite3_stmt *st = store_stmt(s, "SELECT status, worker_id, lease_expires_at FROM jobs WHERE id = ?1", e);
    if (!st) return TRL_ERR;
    store_bind_text(st, 1, job_id);
    int rc = sqlite3_step(st), ret = TRL_OK;
    if (rc == SQLITE_DONE) {
        ret = TRL_NOT_FOUND;
        trl_errf(e, "store: no job with id '%s'", job_id);
    } else if (rc != SQLITE_ROW) {
        ret = store_sql_fail(s, "check lease", e);
    } else {
        const char *status = (const char *)sqlite3_column_text(st, 0);
        const char *holder = (const char *)sqlite3_column_text(st, 1);
        int64_t until = sqlite3_column_int64(st, 2);
        ret = TRL_LEASE_LOST;
        if (!status || strcmp(status, "running") != 0)
            trl_errf(e, "store: worker %s lost job %s: the job is %s", worker, job_id, status ? status : "?");
        else if (!holder || strcmp(holder, worker) != 0)
            trl_errf(e, "store: worker %s lost job %s: worker %s holds it now", worker, job_id, holder ? holder : "?");
        else if (until <= now)
            trl_errf(e, "store: worker %s lost job %s: its lease expired at %lld (now %lld)", worker, job_id,
                     (long long)until, (long long)now);
        else
            ret = TRL_OK;
    }
    store_stmt_done(st);
    return ret;
}

// TRL_NOT_FOUND unless the job exists.
static int job_exists(store *s, const char *job_id, trl_err *e) {
    sqlite3_stmt *st = store_stmt(s, "SELECT 1 FROM jobs WHERE id = ?1", e);
    if (!st) return TRL_ERR;
    store_bind_text(st, 1, job_id);
    int rc = sqlite3_step(st), ret = TRL_OK;
    if (rc == SQLITE_DONE) {
        trl_errf(e, "store: no job with id '%s'", job_id);
        ret = TRL_NOT_FOUND;
    } else if (rc != SQLITE_ROW) {
        ret = store_sql_fail(s, "find job", e);
    }
    store_stmt_done(st);
    return ret;
}

// Reads one integer from a statement with up to one text parameter.
static int query_i64(store *s, const char *sql, const char *arg, int64_t *out, trl_err *e) {
    sqlite3_stmt *st = store_stmt(s, sql, e);
    if (!st) return TRL_ERR;
    if (arg) store_bind_text(st, 1, arg);
    int rc = sqlite3_step(st), ret = TRL_OK;
    if (rc == SQLITE_ROW) *out = sqlite3_column_int64(st, 0);
    else if (rc == SQLITE_DONE) ret = TRL_NOT_FOUND;
    else ret = store_sql_fail(s, "query", e);
    store_stmt_done(st);
    return ret;
}

// The "message" of an error object (JSON text), or "" when it has none.
static int error_message(store *s, const char *error_json, char *out, size_t cap, trl_err *e) {
    out[0] = 0;
    if (!error_json) return TRL_OK;
    sqlite3_stmt *st = store_stmt(s, "SELECT json_extract(?1, '$.message')", e);
    if (!st) return TRL_ERR;
    store_bind_text(st, 1, error_json);
    int rc = sqlite3_step(st), ret = TRL_OK;
    if (rc == SQLITE_ROW) {
        const unsigned char *t = sqlite3_column_text(st, 0);
        if (t) snprintf(out, cap, "%s", (const char *)t);
    } else {
        ret = store_sql_fail(s, "read the error's message", e);
    }
    store_stmt_done(st);
    return ret;
}

// Ends a write transaction: commits if rc is TRL_OK, else rolls back; returns the outcome.
static int tx_end(store *s, int rc, trl_err *e) {
    if (rc != TRL_OK) {
        store_tx_rollback(s);
        return rc;
    }
    return store_tx_commit(s, e);
}

static int valid_json_or_null(store *s, const char *json, const char *what, trl_err *e) {
    if (!json) return TRL_OK;
    int64_t ok = 0;
    sqlite3_stmt *st = store_stmt(s, "SELECT json_valid(?1)", e);
    if (!st) return TRL_ERR;
    store_bind_text(st, 1, json);
    if (sqlite3_step(st) == SQLITE_ROW) ok = sqlite3_column_int64(st, 0);
    store_stmt_done(st);
    return ok ? TRL_OK : trl_errf(e, "store: %s is not valid JSON: %.80s", what, json);
}

// ---- jobs -----------------------------------------------------------------------------

int store_job_get(store *s, const char *id, store_job *out, trl_err *e) {
    memset(out, 0, sizeof *out);
    sqlite3_stmt *st = store_stmt(s, "SELECT " JOB_COLS " FROM jobs WHERE id = ?1", e);
    if (!st) return TRL_ERR;
    store_bind_text(st, 1, id);
    int rc = store_get_run(s, st, &JOB_ROW, out, "get job", e);
    if (rc == TRL_NOT_FOUND) trl_errf(e, "store: no job with id '%s'", id);
    return rc;
}

int store_job_list(store *s, const store_page *page, store_jobs *out, trl_err *e) {
    return store_job_list_kind(s, 0, NULL, page, out, e);
}

int store_job_list_kind(store *s, int evals, const char *suite, const store_page *page, store_jobs *out, trl_err *e) {
    memset(out, 0, sizeof *out);
    char sql[1024];
    const char *where = !evals ? "method <> 'eval'" : suite ? "method = 'eval' AND training_file = :suite" : "method = 'eval'";
    int rc = store_list_sql(s, sql, sizeof sql, JOB_COLS, "jobs", where, page, e);
    if (rc != TRL_OK) return rc;
    sqlite3_stmt *st = store_stmt(s, sql, e);
    if (!st) return TRL_ERR;
    int limit = store_page_limit(page);
    store_list_bind(st, page, limit);
    if (evals && suite) store_bind_text(st, sqlite3_bind_parameter_index(st, ":suite"), suite);
    return store_list_run(s, st, limit, &JOB_ROW, (void **)&out->items, &out->n, &out->has_more, "list jobs", e);
}

int store_job_create(store *s, const store_job_new *in, store_job *out, trl_err *e) {
    if (out) memset(out, 0, sizeof *out);
    if (!in->model || !in->training_file || !in->method)
        return trl_errf(e, "store: a job needs a model, a method and a training file");
    if (strcmp(in->method, "reinforcement") && strcmp(in->method, "supervised") && strcmp(in->method, "eval"))
        return trl_errf(e, "store: job method must be reinforcement, supervised or eval, not '%s'", in->method);
    if (in->max_attempts < 0) return trl_errf(e, "store: max_attempts must not be negative");
    if (in->id && strlen(in->id) >= STORE_ID_MAX) return trl_errf(e, "store: job id '%.60s…' too long", in->id);
    const char *project = in->project ? in->project : STORE_DEFAULT_PROJECT;
    if (!store_project_name_ok(project)) return trl_errf(e, "store: bad project name '%.80s'", project);
    char id[STORE_ID_MAX];
    if (in->id) snprintf(id, sizeof id, "%s", in->id);
    else if (store_id_new(strcmp(in->method, "eval") ? "ftjob" : "evalrun", id, e) != TRL_OK) return TRL_ERR;
    if (valid_json_or_null(s, in->hyperparameters, "hyperparameters", e) != TRL_OK ||
        valid_json_or_null(s, in->method_config, "method", e) != TRL_OK ||
        valid_json_or_null(s, in->metadata, "metadata", e) != TRL_OK)
        return TRL_ERR;

    if (store_tx_begin(s, e) != TRL_OK) return TRL_ERR;
    sqlite3_stmt *st = store_stmt(s,
                                  "INSERT INTO jobs (id, model, method, method_config, hyperparameters, training_file,"
                                  " validation_file, suffix, metadata, seed, status, created_at, max_attempts, project)"
                                  " VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14)",
                                  e);
    int rc = TRL_ERR;
    if (st) {
        store_bind_text(st, 1, id);
        store_bind_text(st, 2, in->model);
        store_bind_text(st, 3, in->method);
        store_bind_text(st, 4, in->method_config);
        store_bind_text(st, 5, in->hyperparameters ? in->hyperparameters : "{}");
        store_bind_text(st, 6, in->training_file);
        store_bind_text(st, 7, in->validation_file);
        store_bind_text(st, 8, in->suffix);
        store_bind_text(st, 9, in->metadata);
        sqlite3_bind_int64(st, 10, in->seed);
        store_bind_text(st, 11, in->validate ? "validating_files" : "queued");
        sqlite3_bind_int64(st, 12, store_now(s));
        sqlite3_bind_int(st, 13, in->max_attempts ? in->max_attempts : STORE_DEFAULT_MAX_ATTEMPTS);
        store_bind_text(st, 14, project);
        rc = store_step_done(s, st, "create job", e);
    }
    if (rc == TRL_OK) {
        char msg[96];
        snprintf(msg, sizeof msg, "Created fine-tuning job: %s", id);
        rc = event_insert(s, id, "info", "message", msg, NULL, NULL, e);
    }
    if (rc == TRL_OK && out) rc = store_job_get(s, id, out, e);
    rc = tx_end(s, rc, e);
    if (rc != TRL_OK && out) store_job_clear(out);
    return rc == TRL_NOT_FOUND ? TRL_ERR : rc;
}

int store_job_validated(store *s, const char *id, const char *error_json, trl_err *e) {
    if (valid_json_or_null(s, error_json, "error", e) != TRL_OK) return TRL_ERR;
    if (store_tx_begin(s, e) != TRL_OK) return TRL_ERR;
    sqlite3_stmt *st = store_stmt(s,
                                  "UPDATE jobs SET status = CASE WHEN ?2 IS NULL THEN 'queued' ELSE 'failed' END,"
                                  " error = ?2, finished_at = CASE WHEN ?2 IS NULL THEN NULL ELSE ?3 END"
                                  " WHERE id = ?1 AND status = 'validating_files'",
                                  e);
    int rc = TRL_ERR;
    if (st) {
        store_bind_text(st, 1, id);
        store_bind_text(st, 2, error_json);
        sqlite3_bind_int64(st, 3, store_now(s));
        rc = store_step_done(s, st, "mark job validated", e);
    }
    if (rc == TRL_OK && sqlite3_changes(s->db) == 0) {
        rc = job_exists(s, id, e);
        if (rc == TRL_OK) {
            trl_errf(e, "store: job %s is not validating files", id);
            rc = TRL_CONFLICT;
        }
    }
    if (rc == TRL_OK)
        rc = error_json ? event_insert(s, id, "error", "message", "File validation failed", error_json, NULL, e)
                        : event_insert(s, id, "info", "message", "Files validated, moving job to queued state", NULL,
                                       NULL, e);
    return tx_end(s, rc, e);
}

int store_job_cancel(store *s, const char *id, store_job *out, trl_err *e) {
    if (out) memset(out, 0, sizeof *out);
    if (store_tx_begin(s, e) != TRL_OK) return TRL_ERR;
    store_job j;
    int rc = store_job_get(s, id, &j, e);
    if (rc == TRL_OK) {
        sqlite3_stmt *st = NULL;
        char msg[160] = "";
        if (!strcmp(j.status, "queued") || !strcmp(j.status, "validating_files")) {
            st = store_stmt(s, "UPDATE jobs SET status = 'cancelled', finished_at = ?2 WHERE id = ?1", e);
            snprintf(msg, sizeof msg, "Job cancelled");
        } else if (!strcmp(j.status, "running")) {
            st = store_stmt(s, "UPDATE jobs SET cancel_requested = 1 WHERE id = ?1", e);
            snprintf(msg, sizeof msg, "Cancellation requested; worker %.80s stops at its next heartbeat", j.worker_id);
        } else {
            rc = TRL_CONFLICT;
            trl_errf(e, "store: job %s cannot be cancelled: it has already %s", id, j.status);
        }
        if (rc == TRL_OK && !(j.cancel_requested && !strcmp(j.status, "running"))) {
            rc = TRL_ERR;
            if (st) {
                store_bind_text(st, 1, id);
                sqlite3_bind_int64(st, 2, store_now(s));
                rc = store_step_done(s, st, "cancel job", e);
            }
            if (rc == TRL_OK) rc = event_insert(s, id, "info", "message", msg, NULL, NULL, e);
        }
        store_job_clear(&j);
    }
    if (rc == TRL_OK && out) rc = store_job_get(s, id, out, e);
    rc = tx_end(s, rc, e);
    if (rc != TRL_OK && out) store_job_clear(out);
    return rc;
}

// The requeue pass, inside the caller's transaction.
static int requeue_locked(store *s, int64_t now, store_requeue_counts *counts, trl_err *e) {
    typedef struct {
        char id[STORE_ID_MAX];
        char worker[128];
        int attempts, max_attempts, cancel;
        int64_t until;
    } expired;
    expired *x = NULL;
    int n = 0, cap = 0, rc;
    sqlite3_stmt *st = store_stmt(s,
                                  "SELECT id, worker_id, attempts, max_attempts, cancel_requested, lease_expires_at"
                                  " FROM jobs WHERE status = 'running' AND lease_expires_at <= ?1 ORDER BY seq",
                                  e);
    if (!st) return TRL_ERR;
    sqlite3_bind_int64(st, 1, now);
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        if (n == cap) {
            int nc = cap ? cap * 2 : 8;
            expired *nx = realloc(x, (size_t)nc * sizeof *nx);
            if (!nx) {
                store_stmt_done(st);
                free(x);
                return trl_errf(e, "store: requeue: out of memory");
            }
            x = nx;
            cap = nc;
        }
        const char *id = (const char *)sqlite3_column_text(st, 0);
        const char *w = (const char *)sqlite3_column_text(st, 1);
        snprintf(x[n].id, sizeof x[n].id, "%s", id ? id : "");
        snprintf(x[n].worker, sizeof x[n].worker, "%s", w ? w : "?");
        x[n].attempts = sqlite3_column_int(st, 2);
        x[n].max_attempts = sqlite3_column_int(st, 3);
        x[n].cancel = sqlite3_column_int(st, 4);
        x[n].until = sqlite3_column_int64(st, 5);
        n++;
    }
    int ret = rc == SQLITE_DONE ? TRL_OK : store_sql_fail(s, "find expired leases", e);
    store_stmt_done(st);

    for (int i = 0; i < n && ret == TRL_OK; i++) {
        char msg[480] = "", err[320] = "";
        const char *level = "warn";
        const char *data = NULL;
        if (x[i].cancel) {
            st = store_stmt(s, "UPDATE jobs SET status = 'cancelled', finished_at = ?2, lease_expires_at = NULL"
                               " WHERE id = ?1", e);
            snprintf(msg, sizeof msg, "Job cancelled (worker %s stopped heartbeating)", x[i].worker);
            level = "info";
            if (counts) counts->cancelled++;
        } else if (x[i].attempts >= x[i].max_attempts) {
            st = store_stmt(s, "UPDATE jobs SET status = 'failed', finished_at = ?2, lease_expires_at = NULL,"
                               " error = json_object('code', 'worker_lost', 'message', ?3, 'param', NULL)"
                               " WHERE id = ?1", e);
            snprintf(err, sizeof err, "the job's worker stopped heartbeating on each of its %d attempts (last: %s)",
                     x[i].attempts, x[i].worker);
            snprintf(msg, sizeof msg, "The job failed: %s", err);
            level = "error";
            if (counts) counts->failed++;
        } else {
            st = store_stmt(s, "UPDATE jobs SET status = 'queued', lease_expires_at = NULL, worker_id = NULL,"
                               " heartbeat_at = NULL, step = (SELECT COALESCE(MAX(step), 0) FROM checkpoints"
                               " WHERE job_id = ?1) WHERE id = ?1", e);
            if (counts) counts->requeued++;
        }
        if (!st) {
            ret = TRL_ERR;
            break;
        }
        int np = sqlite3_bind_parameter_count(st);
        store_bind_text(st, 1, x[i].id);
        if (np >= 2) sqlite3_bind_int64(st, 2, store_now(s));
        if (np >= 3) store_bind_text(st, 3, err);
        ret = store_step_done(s, st, "requeue job", e);
        if (ret != TRL_OK) break;
        if (!x[i].cancel && x[i].attempts < x[i].max_attempts) {
            int64_t step = 0;
            ret = query_i64(s, "SELECT step FROM jobs WHERE id = ?1", x[i].id, &step, e);
            if (ret != TRL_OK) break;
            snprintf(msg, sizeof msg,
                     "Worker %s stopped heartbeating (lease ended at %lld); job queued again after attempt %d of %d,"
                     " to resume from step %lld",
                     x[i].worker, (long long)x[i].until, x[i].attempts, x[i].max_attempts, (long long)step);
        }
        ret = event_insert(s, x[i].id, level, "message", msg, data, NULL, e);
    }
    free(x);
    return ret;
}

int store_jobs_requeue_expired(store *s, int64_t now, store_requeue_counts *counts, trl_err *e) {
    if (counts) memset(counts, 0, sizeof *counts);
    if (store_tx_begin(s, e) != TRL_OK) return TRL_ERR;
    int rc = requeue_locked(s, now, counts, e);
    rc = tx_end(s, rc, e);
    if (rc != TRL_OK && counts) memset(counts, 0, sizeof *counts);
    return rc;
}

int store_job_claim(store *s, const char *worker_id, int lease_seconds, store_job *out, trl_err *e) {
    memset(out, 0, sizeof *out);
    if (!worker_id || !*worker_id) return trl_errf(e, "store: claim needs a worker id");
    if (lease_seconds < 1) return trl_errf(e, "store: lease must be at least 1 second, not %d", lease_seconds);
    if (store_tx_begin(s, e) != TRL_OK) return TRL_ERR;
    int64_t now = store_now(s);
    int rc = requeue_locked(s, now, NULL, e);
    char id[STORE_ID_MAX] = "";
    if (rc == TRL_OK) {
        sqlite3_stmt *st = store_stmt(s, "SELECT id FROM jobs WHERE status = 'queued' ORDER BY seq LIMIT 1", e);
        rc = TRL_ERR;
        if (st) {
            int r = sqlite3_step(st);
            if (r == SQLITE_ROW) {
                snprintf(id, sizeof id, "%s", (const char *)sqlite3_column_text(st, 0));
                rc = TRL_OK;
            } else if (r == SQLITE_DONE) {
                rc = TRL_NOT_FOUND;
            } else {
                rc = store_sql_fail(s, "find queued job", e);
            }
            store_stmt_done(st);
        }
    }
    if (rc == TRL_NOT_FOUND) {
        // Nothing to claim, but keep what the requeue pass did.
        rc = store_tx_commit(s, e);
        if (rc == TRL_OK) trl_errf(e, "store: no queued job");
        return rc == TRL_OK ? TRL_NOT_FOUND : rc;
    }
    if (rc == TRL_OK) {
        sqlite3_stmt *st = store_stmt(s,
                                      "UPDATE jobs SET status = 'running', worker_id = ?2, lease_expires_at = ?3 + ?4,"
                                      " heartbeat_at = ?3, started_at = COALESCE(started_at, ?3),"
                                      " attempts = attempts + 1 WHERE id = ?1 AND status = 'queued'",
                                      e);
        rc = TRL_ERR;
        if (st) {
            store_bind_text(st, 1, id);
            store_bind_text(st, 2, worker_id);
            sqlite3_bind_int64(st, 3, now);
            sqlite3_bind_int64(st, 4, lease_seconds);
            rc = store_step_done(s, st, "claim job", e);
            if (rc == TRL_OK && sqlite3_changes(s->db) != 1) rc = trl_errf(e, "store: claim of %s changed nothing", id);
        }
    }
    if (rc == TRL_OK) rc = store_job_get(s, id, out, e);
    if (rc == TRL_OK) {
        char msg[300];
        int k = snprintf(msg, sizeof msg, "Job started by worker %.100s (attempt %d of %d)", worker_id, out->attempts,
                         out->max_attempts);
        if (out->step > 0 && k > 0 && (size_t)k < sizeof msg)
            snprintf(msg + k, sizeof msg - (size_t)k, ", resuming from step %lld", (long long)out->step);
        rc = event_insert(s, id, "info", "message", msg, NULL, NULL, e);
    }
    rc = tx_end(s, rc, e);
    if (rc != TRL_OK) store_job_clear(out);
    return rc == TRL_NOT_FOUND ? TRL_ERR : rc;
}

int store_job_heartbeat(store *s, const char *id, const char *worker_id, int lease_seconds, const store_progress *p,
                        int *cancel_requested, trl_err *e) {
    if (cancel_requested) *cancel_requested = 0;
    if (!worker_id) return trl_errf(e, "store: heartbeat needs a worker id");
    if (lease_seconds < 1) return trl_errf(e, "store: lease must be at least 1 second, not %d", lease_seconds);
    if (store_tx_begin(s, e) != TRL_OK) return TRL_ERR;
    int64_t now = store_now(s);
    int rc = lease_check(s, id, worker_id, now, e);
    if (rc == TRL_OK) {
        sqlite3_stmt *st = store_stmt(s,
                                      "UPDATE jobs SET lease_expires_at = ?3 + ?4, heartbeat_at = ?3,"
                                      " step = CASE WHEN ?5 >= 0 THEN ?5 ELSE step END,"
                                      " total_steps = CASE WHEN ?6 >= 0 THEN ?6 ELSE total_steps END,"
                                      " trained_tokens = CASE WHEN ?7 >= 0 THEN ?7 ELSE trained_tokens END"
                                      " WHERE id = ?1 AND worker_id = ?2 AND status = 'running'",
                                      e);
        rc = TRL_ERR;
        if (st) {
            store_bind_text(st, 1, id);
            store_bind_text(st, 2, worker_id);
            sqlite3_bind_int64(st, 3, now);
            sqlite3_bind_int64(st, 4, lease_seconds);
            sqlite3_bind_int64(st, 5, p ? p->step : -1);
            sqlite3_bind_int64(st, 6, p ? p->total_steps : -1);
            sqlite3_bind_int64(st, 7, p ? p->trained_tokens : -1);
            rc = store_step_done(s, st, "heartbeat", e);
        }
    }
    int64_t cancel = 0;
    if (rc == TRL_OK) rc = query_i64(s, "SELECT cancel_requested FROM jobs WHERE id = ?1", id, &cancel, e);
    rc = tx_end(s, rc, e);
    if (rc == TRL_OK && cancel_requested) *cancel_requested = (int)cancel;
    return rc;
}

int store_job_finish(store *s, const char *id, const char *worker_id, const char *status,
                     const char *fine_tuned_model, const char *error_json, trl_err *e) {
    if (!status || (strcmp(status, "succeeded") && strcmp(status, "failed") && strcmp(status, "cancelled")))
        return trl_errf(e, "store: a job finishes as succeeded, failed or cancelled, not '%s'",
                        status ? status : "(null)");
    if (!worker_id) return trl_errf(e, "store: finish needs a worker id");
    if (valid_json_or_null(s, error_json, "error", e) != TRL_OK) return TRL_ERR;
    if (store_tx_begin(s, e) != TRL_OK) return TRL_ERR;
    int64_t now = store_now(s);
    int rc = lease_check(s, id, worker_id, now, e);
    if (rc == TRL_OK) {
        sqlite3_stmt *st = store_stmt(s,
                                      "UPDATE jobs SET status = ?3, finished_at = ?4, lease_expires_at = NULL,"
                                      " fine_tuned_model = COALESCE(?5, fine_tuned_model), error = ?6"
                                      " WHERE id = ?1 AND worker_id = ?2 AND status = 'running'",
                                      e);
        rc = TRL_ERR;
        if (st) {
            store_bind_text(st, 1, id);
            store_bind_text(st, 2, worker_id);
            store_bind_text(st, 3, status);
            sqlite3_bind_int64(st, 4, now);
            store_bind_text(st, 5, fine_tuned_model);
            store_bind_text(st, 6, error_json);
            rc = store_step_done(s, st, "finish job", e);
        }
    }
    // The job's one closing event, written with the status it announces (workers write none).
    if (rc == TRL_OK) {
        if (!strcmp(status, "succeeded")) {
            rc = event_insert(s, id, "info", "message", "The job has successfully completed", NULL, NULL, e);
        } else if (!strcmp(status, "failed")) {
            char why[400], msg[480] = "The job failed";
            rc = error_message(s, error_json, why, sizeof why, e);
            if (why[0]) snprintf(msg, sizeof msg, "The job failed: %s", why);
            if (rc == TRL_OK) rc = event_insert(s, id, "error", "message", msg, error_json, NULL, e);
        } else {
            rc = event_insert(s, id, "info", "message", "Job cancelled", NULL, NULL, e);
        }
    }
    return tx_end(s, rc, e);
}

// ---- events ---------------------------------------------------------------------------

static int event_get(store *s, const char *id, store_event *out, trl_err *e) {
    memset(out, 0, sizeof *out);
    sqlite3_stmt *st = store_stmt(s, "SELECT " EVENT_COLS " FROM job_events WHERE id = ?1", e);
    if (!st) return TRL_ERR;
    store_bind_text(st, 1, id);
    int rc = store_get_run(s, st, &EVENT_ROW, out, "get event", e);
    if (rc == TRL_NOT_FOUND) rc = trl_errf(e, "store: event %s vanished", id);
    return rc;
}

// With a worker, it must hold the lease; without one, the job must exist.
static int job_guard(store *s, const char *job_id, const char *worker_id, trl_err *e) {
    return worker_id ? lease_check(s, job_id, worker_id, store_now(s), e) : job_exists(s, job_id, e);
}

int store_event_append(store *s, const char *job_id, const char *worker_id, const store_event_new *in,
                       store_event *out, trl_err *e) {
    if (out) memset(out, 0, sizeof *out);
    const char *level = in->level ? in->level : "info";
    const char *type = in->type ? in->type : "message";
    if (strcmp(level, "info") && strcmp(level, "warn") && strcmp(level, "error"))
        return trl_errf(e, "store: event level must be info, warn or error, not '%s'", level);
    if (strcmp(type, "message") && strcmp(type, "metrics"))
        return trl_errf(e, "store: event type must be message or metrics, not '%s'", type);
    if (!in->message) return trl_errf(e, "store: an event needs a message");
    if (valid_json_or_null(s, in->data, "event data", e) != TRL_OK) return TRL_ERR;
    if (store_tx_begin(s, e) != TRL_OK) return TRL_ERR;
    int rc = job_guard(s, job_id, worker_id, e);
    char id[STORE_ID_MAX];
    if (rc == TRL_OK) rc = event_insert(s, job_id, level, type, in->message, in->data, id, e);
    if (rc == TRL_OK && out) rc = event_get(s, id, out, e);
    rc = tx_end(s, rc, e);
    if (rc != TRL_OK && out) store_event_clear(out);
    return rc;
}

int store_event_list(store *s, const char *job_id, const store_page *page, store_events *out, trl_err *e) {
    memset(out, 0, sizeof *out);
    int rc = job_exists(s, job_id, e);
    if (rc != TRL_OK) return rc;
    char sql[512];
    rc = store_list_sql(s, sql, sizeof sql, EVENT_COLS, "job_events", "job_id = :job", page, e);
    if (rc != TRL_OK) return rc;
    sqlite3_stmt *st = store_stmt(s, sql, e);
    if (!st) return TRL_ERR;
    int limit = store_page_limit(page);
    store_list_bind(st, page, limit);
    store_bind_text(st, sqlite3_bind_parameter_index(st, ":job"), job_id);
    return store_list_run(s, st, limit, &EVENT_ROW, (void **)&out->items, &out->n, &out->has_more, "list events", e);
}

// ---- checkpoints ----------------------------------------------------------------------

static int ckpt_get(store *s, const char *sql, const char *arg, store_checkpoint *out, trl_err *e) {
    memset(out, 0, sizeof *out);
    sqlite3_stmt *st = store_stmt(s, sql, e);
    if (!st) return TRL_ERR;
    store_bind_text(st, 1, arg);
    int rc = store_get_run(s, st, &CKPT_ROW, out, "get checkpoint", e);
    return rc;
}

int store_checkpoint_add(store *s, const char *job_id, const char *worker_id, const store_checkpoint_new *in,
                         store_checkpoint *out, trl_err *e) {
    if (out) memset(out, 0, sizeof *out);
    if (!in->path) return trl_errf(e, "store: a checkpoint needs a path");
    if (in->step < 0) return trl_errf(e, "store: checkpoint step must not be negative");
    if (valid_json_or_null(s, in->metrics, "checkpoint metrics", e) != TRL_OK) return TRL_ERR;
    char id[STORE_ID_MAX];
    if (store_id_new("ftckpt", id, e) != TRL_OK) return TRL_ERR;
    if (store_tx_begin(s, e) != TRL_OK) return TRL_ERR;
    int rc = job_guard(s, job_id, worker_id, e);
    if (rc == TRL_OK) {
        sqlite3_stmt *st = store_stmt(s,
                                      "INSERT INTO checkpoints (id, job_id, step, metrics, path, model_name, created_at)"
                                      " VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                                      e);
        rc = TRL_ERR;
        if (st) {
            store_bind_text(st, 1, id);
            store_bind_text(st, 2, job_id);
            sqlite3_bind_int64(st, 3, in->step);
            store_bind_text(st, 4, in->metrics ? in->metrics : "{}");
            store_bind_text(st, 5, in->path);
            store_bind_text(st, 6, in->model_name);
            sqlite3_bind_int64(st, 7, store_now(s));
            rc = store_step_done(s, st, "add checkpoint", e);
            if (rc == TRL_CONFLICT)
                trl_errf(e, "store: job %s already has a checkpoint at step %lld", job_id, (long long)in->step);
        }
    }
    if (rc == TRL_OK && out) {
        rc = ckpt_get(s, "SELECT " CKPT_COLS " FROM checkpoints WHERE id = ?1", id, out, e);
        if (rc == TRL_NOT_FOUND) rc = trl_errf(e, "store: checkpoint %s vanished", id);
    }
    rc = tx_end(s, rc, e);
    if (rc != TRL_OK && out) store_checkpoint_clear(out);
    return rc;
}

int store_checkpoint_list(store *s, const char *job_id, const store_page *page, store_checkpoints *out,
                          trl_err *e) {
    memset(out, 0, sizeof *out);
    int rc = job_exists(s, job_id, e);
    if (rc != TRL_OK) return rc;
    char sql[512];
    rc = store_list_sql(s, sql, sizeof sql, CKPT_COLS, "checkpoints", "job_id = :job", page, e);
    if (rc != TRL_OK) return rc;
    sqlite3_stmt *st = store_stmt(s, sql, e);
    if (!st) return TRL_ERR;
    int limit = store_page_limit(page);
    store_list_bind(st, page, limit);
    store_bind_text(st, sqlite3_bind_parameter_index(st, ":job"), job_id);
    return store_list_run(s, st, limit, &CKPT_ROW, (void **)&out->items, &out->n, &out->has_more,
                          "list checkpoints", e);
}

int store_checkpoint_latest(store *s, const char *job_id, store_checkpoint *out, trl_err *e) {
    int rc = ckpt_get(s, "SELECT " CKPT_COLS " FROM checkpoints WHERE job_id = ?1 ORDER BY step DESC LIMIT 1", job_id,
                      out, e);
    if (rc == TRL_NOT_FOUND) trl_errf(e, "store: job %s has no checkpoint", job_id);
    return rc;
}
