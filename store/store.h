// store.h: the SQLite job store: uploaded files, fine-tuning jobs and their work queue, job
// events, checkpoints, models, eval results and API keys. The schema comes from migrations/
// (compiled in).
//
// Projects: every file, job, model and eval result belongs to one project (the project of the
// API key that made it; "default" for rows from before keys and for the keyless mode). The
// store records it and filters lists by it (store_page.project); who may see which project is
// the REST layer's decision (server/api.c).
//
// Rules: one store handle per thread or process, never shared and never carried across fork();
// every write is one BEGIN IMMEDIATE transaction; times are unix seconds (0 stands for SQL NULL
// in the records below); text fields that are NULL in the database are NULL pointers; JSON
// columns hold JSON text. Every call returns TRL_OK, TRL_ERR or one of the STORE_* codes below,
// and fills the error message whenever it does not return TRL_OK. Records filled by a call own
// their strings: release them with store_<thing>_clear (one record) or store_<things>_free
// (a list); both accept zeroed records.
#ifndef TOOLRL_STORE_H
#define TOOLRL_STORE_H

#include <stdint.h>

#include "base/util.h"

// Calls return the project's status codes (base/util.h): TRL_OK, TRL_ERR, TRL_NOT_FOUND,
// TRL_CONFLICT, TRL_LEASE_LOST.

#define STORE_ID_MAX 48              // room for any id with its NUL ("ftevent-" + 24 chars)
#define STORE_ID_CHARS 24            // random base62 characters after the prefix
#define STORE_DEFAULT_LIMIT 20       // page size when store_page.limit is 0
#define STORE_MAX_LIMIT 10000        // larger limits are clamped
#define STORE_DEFAULT_MAX_ATTEMPTS 3 // claims a job gets before a lost lease fails it
#define STORE_BUSY_TIMEOUT_MS 5000   // how long a write waits for another writer
#define STORE_DEFAULT_PROJECT "default"  // the project of rows made without a key
#define STORE_PROJECT_MAX 65         // room for a project name with its NUL

typedef struct store store;

// ---- open / close / schema -------------------------------------------------------------

// One schema step: migrations/NNNN_name.sql, version NNNN.
typedef struct {
    int version;
    const char *name;
    const char *sql;
} store_migration;

// The migrations compiled into this binary (store/migrations.c, generated), in order.
extern const store_migration store_migrations[];
extern const int store_migrations_count;

// Opens (creating if needed) the database at path: WAL, busy_timeout, foreign keys,
// synchronous=FULL, then applies the missing migrations. Refuses a database whose schema
// is newer than this binary, or whose recorded migrations differ from the compiled ones.
int store_open(store **out, const char *path, trl_err *e);
// The same with an explicit migration list (tests and tools); m must be in increasing order.
int store_open_migrations(store **out, const char *path, const store_migration *m, int n, trl_err *e);
void store_close(store *s);  // NULL is a no-op; finalizes every cached statement

int store_schema_version(store *s, int *version, trl_err *e);
int store_integrity_check(store *s, trl_err *e);  // PRAGMA integrity_check; TRL_OK if "ok"

// The clock every call uses: unix time, or the value pinned by store_set_now (0 unpins).
int64_t store_now(const store *s);
void store_set_now(store *s, int64_t now);

// Writes prefix "-" and STORE_ID_CHARS random base62 characters (getrandom) into out.
int store_id_new(const char *prefix, char out[STORE_ID_MAX], trl_err *e);

// Cursor pagination, as in the OpenAI lists: items after the one with id `after`
// (NULL: from the start), newest first unless ascending. limit 0 means STORE_DEFAULT_LIMIT.
// An `after` id that does not exist gives TRL_NOT_FOUND. project (NULL: every project) keeps
// only that project's rows, and an `after` id of another project is one that does not exist.
typedef struct {
    const char *after;
    int limit;
    int ascending;
    const char *project;
} store_page;

// 1 when name may name a project: 1 to 64 of [A-Za-z0-9._-].
int store_project_name_ok(const char *name);

// ---- files -----------------------------------------------------------------------------

typedef struct {
    char *id;        // file-…
    int64_t bytes;
    int64_t created_at;
    char *filename;
    char *purpose;   // fine-tune, evals, …
    char *status;    // uploaded | processed | error
    char *sha256;
    char *path;      // where the bytes are on disk
    int64_t line_count;
    char *error;     // why validation failed, or NULL
    char *project;
} store_file;

typedef struct {
    const char *id;  // NULL: a new random id (or make one first with store_id_new("file", …))
    const char *filename;
    const char *purpose;
    const char *status;  // NULL: "uploaded"
    const char *sha256;  // may be NULL
    const char *path;    // may be NULL
    int64_t bytes;
    int64_t line_count;
    const char *project;  // NULL: STORE_DEFAULT_PROJECT
} store_file_new;

typedef struct {
    store_file *items;
    int n;
    int has_more;
} store_files;

int store_file_create(store *s, const store_file_new *in, store_file *out, trl_err *e);  // out may be NULL
int store_file_get(store *s, const char *id, store_file *out, trl_err *e);
// purpose NULL lists every purpose.
int store_file_list(store *s, const char *purpose, const store_page *page, store_files *out, trl_err *e);
int store_file_delete(store *s, const char *id, trl_err *e);
// Sets status (uploaded | processed | error), the line count (if >= 0) and the error (NULL clears it).
int store_file_set_status(store *s, const char *id, const char *status, int64_t line_count,
                          const char *error, trl_err *e);
void store_file_clear(store_file *f);
void store_files_free(store_files *l);

// ---- jobs and the queue ----------------------------------------------------------------

typedef struct {
    char *id;               // ftjob-… (evalrun-… for method eval)
    char *model;            // base model
    char *method;           // reinforcement | supervised | eval
    char *method_config;    // the request's whole "method" object (JSON) or NULL
    char *hyperparameters;  // JSON object
    char *training_file;
    char *validation_file;  // or NULL
    char *suffix;           // or NULL
    char *metadata;         // JSON or NULL
    int64_t seed;
    char *status;           // validating_files | queued | running | succeeded | failed | cancelled
    int64_t created_at, started_at, finished_at;
    char *fine_tuned_model; // or NULL
    char *error;            // JSON {code, message, param} or NULL
    int64_t trained_tokens;
    char *worker_id;        // lease holder while running; last holder once finished
    int64_t lease_expires_at, heartbeat_at;
    int attempts, max_attempts;
    int cancel_requested;
    int64_t step, total_steps;
    char *project;
} store_job;

typedef struct {
    const char *id;               // NULL: a new random id
    const char *model;
    const char *method;           // reinforcement | supervised
    const char *method_config;    // JSON or NULL
    const char *hyperparameters;  // JSON object or NULL ("{}")
    const char *training_file;
    const char *validation_file;  // may be NULL
    const char *suffix;           // may be NULL
    const char *metadata;         // JSON or NULL
    int64_t seed;
    int validate;                 // 1: starts as validating_files (see store_job_validated); 0: queued
    int max_attempts;             // 0: STORE_DEFAULT_MAX_ATTEMPTS
    const char *project;          // NULL: STORE_DEFAULT_PROJECT
} store_job_new;

typedef struct {
    store_job *items;
    int n;
    int has_more;
} store_jobs;

// What a heartbeat reports; a negative field leaves the stored value unchanged.
typedef struct {
    int64_t step, total_steps, trained_tokens;
} store_progress;

typedef struct {
    int requeued;   // back to queued, to resume from their last checkpoint
    int failed;     // out of attempts
    int cancelled;  // cancel had been requested
} store_requeue_counts;

// Creates a job (status queued, or validating_files if in->validate) and its first event.
int store_job_create(store *s, const store_job_new *in, store_job *out, trl_err *e);  // out may be NULL
int store_job_get(store *s, const char *id, store_job *out, trl_err *e);
int store_job_list(store *s, const store_page *page, store_jobs *out, trl_err *e);  // fine-tuning jobs
// evals 1: the evaluation runs (method eval, their suite in training_file; suite NULL: any);
// 0: every other job (store_job_list).
int store_job_list_kind(store *s, int evals, const char *suite, const store_page *page, store_jobs *out, trl_err *e);
// validating_files → queued (error_json NULL) or failed with that error.
// TRL_CONFLICT if the job is not validating_files.
int store_job_validated(store *s, const char *id, const char *error_json, trl_err *e);
// validating_files or queued → cancelled at once; running → cancel_requested (the worker sees it
// at its next heartbeat and finishes the job as cancelled). TRL_CONFLICT if already finished.
// out (may be NULL) gets the job as it is after the call.
int store_job_cancel(store *s, const char *id, store_job *out, trl_err *e);

// Atomically claims the oldest queued job for worker_id with a lease of lease_seconds: it becomes
// running, attempts+1. Expired leases are requeued first (as store_jobs_requeue_expired(now)).
// TRL_NOT_FOUND when nothing is queued. out gets the claimed job.
int store_job_claim(store *s, const char *worker_id, int lease_seconds, store_job *out, trl_err *e);
// Extends the lease to now + lease_seconds, records progress (p may be NULL) and sets
// *cancel_requested. TRL_LEASE_LOST if the job is not running under this worker with a live lease.
int store_job_heartbeat(store *s, const char *id, const char *worker_id, int lease_seconds,
                        const store_progress *p, int *cancel_requested, trl_err *e);
// Ends a job the worker holds: status succeeded | failed | cancelled, with the fine-tuned model's
// name and/or the error JSON (either may be NULL). TRL_LEASE_LOST as for the heartbeat. Writes
// the job's one closing event in the same transaction ("The job has successfully completed",
// "The job failed: <the error's message>" with the error as data, "Job cancelled").
int store_job_finish(store *s, const char *id, const char *worker_id, const char *status,
                     const char *fine_tuned_model, const char *error_json, trl_err *e);
// Every running job whose lease ended at or before now: cancelled if cancel was requested, failed
// if it has had max_attempts claims, otherwise queued again with its step reset to its last
// checkpoint's. counts may be NULL.
int store_jobs_requeue_expired(store *s, int64_t now, store_requeue_counts *counts, trl_err *e);
void store_job_clear(store_job *j);
void store_jobs_free(store_jobs *l);

// ---- job events ------------------------------------------------------------------------

typedef struct {
    char *id;  // ftevent-…
    char *job_id;
    int64_t created_at;
    char *level;    // info | warn | error
    char *type;     // message | metrics
    char *message;
    char *data;     // JSON or NULL (metrics for type metrics)
} store_event;

typedef struct {
    const char *level;    // NULL: info
    const char *type;     // NULL: message
    const char *message;
    const char *data;     // JSON or NULL
} store_event_new;

typedef struct {
    store_event *items;
    int n;
    int has_more;
} store_events;

// Appends an event to a job. With worker_id, the worker must hold the job's lease
// (TRL_LEASE_LOST otherwise), so a worker that lost its job cannot write into its history.
int store_event_append(store *s, const char *job_id, const char *worker_id, const store_event_new *in,
                       store_event *out, trl_err *e);  // out may be NULL
int store_event_list(store *s, const char *job_id, const store_page *page, store_events *out, trl_err *e);
void store_event_clear(store_event *ev);
void store_events_free(store_events *l);

// ---- checkpoints -----------------------------------------------------------------------

typedef struct {
    char *id;  // ftckpt-…
    char *job_id;
    int64_t step;
    char *metrics;     // JSON object
    char *path;
    char *model_name;  // fine_tuned_model_checkpoint, or NULL
    int64_t created_at;
} store_checkpoint;

typedef struct {
    int64_t step;
    const char *metrics;     // JSON or NULL ("{}")
    const char *path;
    const char *model_name;  // may be NULL
} store_checkpoint_new;

typedef struct {
    store_checkpoint *items;
    int n;
    int has_more;
} store_checkpoints;

// Records a checkpoint; with worker_id the worker must hold the lease (as for events).
// TRL_CONFLICT if the job already has one at that step.
int store_checkpoint_add(store *s, const char *job_id, const char *worker_id, const store_checkpoint_new *in,
                         store_checkpoint *out, trl_err *e);  // out may be NULL
int store_checkpoint_list(store *s, const char *job_id, const store_page *page, store_checkpoints *out,
                          trl_err *e);
// The job's checkpoint with the highest step (where a resumed job starts); TRL_NOT_FOUND if none.
int store_checkpoint_latest(store *s, const char *job_id, store_checkpoint *out, trl_err *e);
void store_checkpoint_clear(store_checkpoint *c);
void store_checkpoints_free(store_checkpoints *l);

// ---- models ----------------------------------------------------------------------------

typedef struct {
    char *id;          // the name clients send as "model"
    char *kind;        // base | fine-tuned
    char *base_model;  // or NULL
    char *job_id;      // or NULL
    char *path;
    int64_t created_at;
    int served;        // at most one model has served = 1
    char *project;     // a fine-tuned model's: its job's
} store_model;

typedef struct {
    const char *id;
    const char *kind;
    const char *base_model;  // may be NULL
    const char *job_id;      // may be NULL
    const char *path;
    const char *project;     // NULL: the project of the job job_id names, else STORE_DEFAULT_PROJECT
} store_model_new;

typedef struct {
    store_model *items;
    int n;
    int has_more;  // always 0: models are listed whole
} store_models;

// Inserts a model or updates kind, base, job and path of the one with that id
// (created_at, served and project are kept).
int store_model_upsert(store *s, const store_model_new *in, trl_err *e);
int store_model_get(store *s, const char *id, store_model *out, trl_err *e);
int store_model_list(store *s, store_models *out, trl_err *e);  // oldest first
int store_model_set_served(store *s, const char *id, trl_err *e);   // and unmarks the previous one
int store_model_served(store *s, store_model *out, trl_err *e);     // TRL_NOT_FOUND if none
void store_model_clear(store_model *m);
void store_models_free(store_models *l);

// ---- eval results ----------------------------------------------------------------------

typedef struct {
    char *id;  // eval-…
    char *model;
    char *suite;
    char *category;
    double score;
    int64_t n_cases;
    char *report_path;  // or NULL
    int64_t created_at;
    char *job_id;       // the evaluation run, or NULL
    char *project;      // the run's
} store_eval;

typedef struct {
    const char *model;
    const char *suite;
    const char *category;
    double score;
    int64_t n_cases;
    const char *report_path;  // may be NULL
    const char *job_id;       // may be NULL
    const char *project;      // NULL: the project of the job job_id names, else STORE_DEFAULT_PROJECT
} store_eval_new;

typedef struct {
    store_eval *items;
    int n;
    int has_more;
} store_evals;

int store_eval_add(store *s, const store_eval_new *in, store_eval *out, trl_err *e);  // out may be NULL
// model and/or suite NULL: no filter on it.
int store_eval_list(store *s, const char *model, const char *suite, const store_page *page, store_evals *out,
                    trl_err *e);
// Every result of one evaluation run, oldest first.
int store_eval_list_job(store *s, const char *job_id, store_evals *out, trl_err *e);
void store_eval_clear(store_eval *r);
void store_evals_free(store_evals *l);

// ---- API keys (store_keys.c) -------------------------------------------------------------

// A key is "sk-toolrl-" and 43 base64url characters (256 random bits from getrandom). The store
// keeps only its SHA-256 (hex): the text is shown once, by store_key_create, and a presented
// key is found by the hash of what was presented (an index lookup: nothing secret is compared
// byte by byte). Unsalted SHA-256 is enough for keys this random: no dictionary holds them.
#define STORE_KEY_PREFIX "sk-toolrl-"
#define STORE_KEY_MAX 64  // room for a key's text with its NUL

typedef struct {
    char *id;            // key-…
    char *project;
    char *name;          // or NULL
    int admin;           // sees every project
    int64_t created_at;
    int64_t revoked_at;  // 0: active
} store_key;

typedef struct {
    store_key *items;
    int n;
    int has_more;  // always 0: keys are listed whole
} store_keys;

// Makes a key for project (store_project_name_ok; STORE_DEFAULT_PROJECT only for an admin key,
// as that project's rows are for admins alone) with an optional label, and writes its text into
// key_out: the only time it exists outside the caller's hands. out (may be NULL) gets the row.
int store_key_create(store *s, const char *project, const char *name, int admin, char key_out[STORE_KEY_MAX],
                     store_key *out, trl_err *e);
// The key whose text is key, revoked or not (revoked_at says): TRL_NOT_FOUND when there is none.
int store_key_find(store *s, const char *key, store_key *out, trl_err *e);
int store_key_list(store *s, store_keys *out, trl_err *e);  // oldest first
// Revokes a key for good: TRL_NOT_FOUND for an unknown id, TRL_CONFLICT if revoked already.
int store_key_revoke(store *s, const char *id, trl_err *e);
// How many keys are not revoked (active_only) or were ever made (a store that has had a key
// never goes back to the keyless mode: revoking the last key locks it, it does not open it).
int store_key_count(store *s, int active_only, int64_t *n, trl_err *e);
void store_key_clear(store_key *k);
void store_keys_free(store_keys *l);

#endif
