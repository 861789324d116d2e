-- 0002_eval_jobs.sql: evaluations run as queued jobs. The jobs table gains the method 'eval'
-- (an evaluation run: method_config holds {"suite", "categories", "limit", "max_tokens"} and
-- training_file the suite's name); eval results remember the run that produced them.
-- SQLite cannot change a CHECK in place: the table is rebuilt (create, copy, drop, rename),
-- which the store does with foreign keys off and checks with foreign_key_check afterwards.

CREATE TABLE jobs_new (
    seq              INTEGER PRIMARY KEY AUTOINCREMENT,
    id               TEXT    NOT NULL UNIQUE,           -- ftjob-… (evalrun-… for evaluations)
    model            TEXT    NOT NULL,                  -- the base model (the evaluated model)
    method           TEXT    NOT NULL CHECK (method IN ('reinforcement', 'supervised', 'eval')),
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
    started_at       INTEGER,
    finished_at      INTEGER,
    fine_tuned_model TEXT,
    error            TEXT    CHECK (error IS NULL OR json_valid(error)),
    trained_tokens   INTEGER NOT NULL DEFAULT 0,
    worker_id        TEXT,
    lease_expires_at INTEGER,
    heartbeat_at     INTEGER,
    attempts         INTEGER NOT NULL DEFAULT 0,
    max_attempts     INTEGER NOT NULL DEFAULT 3 CHECK (max_attempts >= 1),
    cancel_requested INTEGER NOT NULL DEFAULT 0 CHECK (cancel_requested IN (0, 1)),
    step             INTEGER NOT NULL DEFAULT 0,
    total_steps      INTEGER NOT NULL DEFAULT 0,
    CHECK ((status = 'running') = (lease_expires_at IS NOT NULL)),
    CHECK (status <> 'running' OR worker_id IS NOT NULL)
);
INSERT INTO jobs_new SELECT * FROM jobs;
DROP TABLE jobs;
ALTER TABLE jobs_new RENAME TO jobs;
CREATE INDEX jobs_queued ON jobs (seq) WHERE status = 'queued';
CREATE INDEX jobs_running ON jobs (lease_expires_at) WHERE status = 'running';
CREATE INDEX jobs_by_method ON jobs (method, seq);

ALTER TABLE eval_results ADD COLUMN job_id TEXT;  -- the evaluation run (NULL: toolrl eval --db)
CREATE INDEX eval_results_by_job ON eval_results (job_id, seq);
