-- 0003_tenants.sql: API keys and projects. A key belongs to a project; files, jobs (fine-tuning
-- jobs and eval runs, with their events and checkpoints through job_id), fine-tuned models and
-- eval results carry the project of the key that made them. Rows from before this step belong
-- to the project 'default', which only admin keys and the keyless mode see.
-- A key is stored as the hex SHA-256 of its text, never the text: keys are random
-- (sk-toolrl-<256 random bits, base64url>), so an unsalted hash cannot be reversed by guessing
-- and a lookup by hash compares nothing secret byte by byte.

CREATE TABLE api_keys (
    seq        INTEGER PRIMARY KEY AUTOINCREMENT,
    id         TEXT    NOT NULL UNIQUE,                 -- key-… (what `toolrl keys revoke` takes)
    project    TEXT    NOT NULL CHECK (length(project) BETWEEN 1 AND 64),
    name       TEXT,                                    -- a label for people
    admin      INTEGER NOT NULL DEFAULT 0 CHECK (admin IN (0, 1)),  -- sees every project
    hash       TEXT    NOT NULL UNIQUE CHECK (length(hash) = 64),   -- sha256(key), lower-case hex
    created_at INTEGER NOT NULL,
    revoked_at INTEGER                                  -- NULL: active
);
CREATE INDEX api_keys_active ON api_keys (revoked_at) WHERE revoked_at IS NULL;

ALTER TABLE files ADD COLUMN project TEXT NOT NULL DEFAULT 'default';
ALTER TABLE jobs ADD COLUMN project TEXT NOT NULL DEFAULT 'default';
ALTER TABLE models ADD COLUMN project TEXT NOT NULL DEFAULT 'default';
ALTER TABLE eval_results ADD COLUMN project TEXT NOT NULL DEFAULT 'default';
CREATE INDEX files_by_project ON files (project, seq);
CREATE INDEX jobs_by_project ON jobs (project, method, seq);
CREATE INDEX eval_results_by_project ON eval_results (project, seq);
