-- 0001_init.sql: the first schema of the job store: uploaded files, fine-tuning jobs with
-- their queue columns, job events, checkpoints, models and eval results.
-- Conventions: ids are "<prefix>-<24 base62 chars>"; times are unix seconds (NULL: not yet);
-- JSON columns are checked with json_valid(); every listed table has an AUTOINCREMENT seq
-- that gives lists a stable newest-first order even when created_at ties.

CREATE TABLE files (
    seq        INTEGER PRIMARY KEY AUTOINCREMENT,
    id         TEXT    NOT NULL UNIQUE,                 -- file-…
    bytes      INTEGER NOT NULL DEFAULT 0 CHECK (bytes >= 0),
    created_at INTEGER NOT NULL,
    filename   TEXT    NOT NULL,
    purpose    TEXT    NOT NULL,
    status     TEXT    NOT NULL DEFAULT 'uploaded'
                       CHECK (status IN ('uploaded', 'processed', 'error')),
    sha256     TEXT,
    path       TEXT,                                    -- where the bytes live on disk
    line_count INTEGER NOT NULL DEFAULT 0 CHECK (line_count >= 0),
    error      TEXT                                     -- why validation failed
);
CREATE INDEX files_by_purpose ON files (purpose, seq);

CREATE TABLE jobs (
    seq              INTEGER PRIMARY KEY AUTOINCREMENT,
    id               TEXT    NOT NULL UNIQUE,           -- ftjob-…
    model            TEXT    NOT NULL,                  -- the base model
    method           TEXT    NOT NULL CHECK (method IN ('reinforcement', 'supervised')),
    method_config    TEXT    CHECK (method_config IS NULL OR json_valid(method_config)),
    hyperparameters  TEXT    NOT NULL DEFAULT '{}' CHECK (json_valid(hyperparameters)),
    training_file    TEXT    NOT NULL,
    validation_file  TEXT,
    suffix           TEXT,
    metadata         TEXT    CHECK (metadata IS NULL OR json_valid(metadata)),
    seed             INTEGER NOT NULL DEFAULT 0,
    status           TEXT    NOT NULL CHECK (status IN ('validating_files', 'queued', 'running',
                                                        'succeeded', 'failed', 'cancelled')),
    created_at       INTEGER NOT NULL,
    started_at       INTEGER,                           -- first claim
    finished_at      INTEGER,
    fine_tuned_model TEXT,
    error            TEXT    CHECK (error IS NULL OR json_valid(error)),  -- {code, message, param}
    trained_tokens   INTEGER NOT NULL DEFAULT 0,
    -- the queue
    worker_id        TEXT,                              -- holder of the lease (last holder once finished)
    lease_expires_at INTEGER,                           -- set exactly while running
    heartbeat_at     INTEGER,
    attempts         INTEGER NOT NULL DEFAULT 0,        -- claims so far
    max_attempts     INTEGER NOT NULL DEFAULT 3 CHECK (max_attempts >= 1),
    cancel_requested INTEGER NOT NULL DEFAULT 0 CHECK (cancel_requested IN (0, 1)),
    step             INTEGER NOT NULL DEFAULT 0,        -- progress: steps done
    total_steps      INTEGER NOT NULL DEFAULT 0,        -- progress: steps planned (0: unknown)
    CHECK ((status = 'running') = (lease_expires_at IS NOT NULL)),
    CHECK (status <> 'running' OR worker_id IS NOT NULL)
);
CREATE INDEX jobs_queued ON jobs (seq) WHERE status = 'queued';
CREATE INDEX jobs_running ON jobs (lease_expires_at) WHERE status = 'running';

CREATE TABLE job_events (
    seq        INTEGER PRIMARY KEY AUTOINCREMENT,
    id         TEXT    NOT NULL UNIQUE,                 -- ftevent-…
    job_id     TEXT    NOT NULL REFERENCES jobs (id) ON DELETE CASCADE,
    created_at INTEGER NOT NULL,
    level      TEXT    NOT NULL CHECK (level IN ('info', 'warn', 'error')),
    type       TEXT    NOT NULL DEFAULT 'message' CHECK (type IN ('message', 'metrics')),
    message    TEXT    NOT NULL,
    data       TEXT    CHECK (data IS NULL OR json_valid(data))   -- metrics for type 'metrics'
);
CREATE INDEX job_events_by_job ON job_events (job_id, seq);

CREATE TABLE checkpoints (
    seq        INTEGER PRIMARY KEY AUTOINCREMENT,
    id         TEXT    NOT NULL UNIQUE,                 -- ftckpt-…
    job_id     TEXT    NOT NULL REFERENCES jobs (id) ON DELETE CASCADE,
    step       INTEGER NOT NULL CHECK (step >= 0),
    metrics    TEXT    NOT NULL DEFAULT '{}' CHECK (json_valid(metrics)),
    path       TEXT    NOT NULL,                        -- the checkpoint on disk
    model_name TEXT,                                    -- fine_tuned_model_checkpoint
    created_at INTEGER NOT NULL,
    UNIQUE (job_id, step)
);

CREATE TABLE models (
    id         TEXT    PRIMARY KEY,                     -- the name clients send as "model"
    kind       TEXT    NOT NULL CHECK (kind IN ('base', 'fine-tuned')),
    base_model TEXT,                                    -- what a fine-tuned model started from
    job_id     TEXT,                                    -- the job that made it
    path       TEXT    NOT NULL,
    created_at INTEGER NOT NULL,
    served     INTEGER NOT NULL DEFAULT 0 CHECK (served IN (0, 1))
);
CREATE UNIQUE INDEX models_one_served ON models (served) WHERE served = 1;

CREATE TABLE eval_results (
    seq         INTEGER PRIMARY KEY AUTOINCREMENT,
    id          TEXT    NOT NULL UNIQUE,                -- eval-…
    model       TEXT    NOT NULL,
    suite       TEXT    NOT NULL,                       -- e.g. bfcl
    category    TEXT    NOT NULL,                       -- e.g. simple, multiple; "overall" for the total
    score       REAL    NOT NULL,
    n_cases     INTEGER NOT NULL DEFAULT 0,
    report_path TEXT,
    created_at  INTEGER NOT NULL
);
CREATE INDEX eval_results_by_model ON eval_results (model, suite, seq);
