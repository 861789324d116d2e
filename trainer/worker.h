// worker.h: the training worker (`toolrl worker`): a process that claims the oldest queued
// fine-tuning job from the store with a lease, trains it (train.h), and reports back.
//
// While a job runs, a heartbeat thread (its own store handle) renews the lease every few
// seconds, records progress and watches for cancellation; the training loop stops within one
// sequence of a cancel or a lost lease. Every step appends a `metrics` event; checkpoints are
// written at the job's interval and at the end and registered with the store (checkpoints
// table, and the fine-tuned model's row in models pointing at the newest one, which is what
// the server serves and hot-swaps). A job claimed again after its worker died resumes from its
// last checkpoint with the same data order. Errors in a job (bad file, bad hyperparameters,
// model not found) fail that job with a message; the worker itself keeps going.
#ifndef TOOLRL_WORKER_H
#define TOOLRL_WORKER_H

#include <signal.h>

#include "base/util.h"
#include "model/ops.h"

typedef struct {
    const char *db_path;
    const char *out_dir;          // checkpoints go to <out_dir>/<job id>/step-<N>
    const char *default_model;    // path of the base model to use when the store has no row for a job's model
    const char *worker_id;        // NULL: "<hostname>-<pid>"
    int lease_seconds;            // 0: 60
    int heartbeat_ms;             // 0: 2000
    int poll_ms;                  // 0: 1000 (idle wait between claims)
    int max_jobs;                 // stop after this many jobs (0: run until *stop)
    volatile sig_atomic_t *stop;  // set by a signal handler to stop after the current step
    const ops *eval_be;           // the backend evaluation jobs run on (model/device.h); NULL: ops_cpu.
                                  // Training runs on the cpu (trainer/ops_train.h has no GPU table yet).
} worker_config;

// Runs until *stop (or max_jobs jobs). TRL_ERR only when the store cannot be opened or used.
int worker_run(const worker_config *cfg, trl_err *e);

// The fine-tuned model name a job produces: "ft:<base model>:<suffix or toolrl>:<job id>",
// and its checkpoint names: that + ":ckpt-step-<N>". out has cap bytes.
void worker_model_name(char *out, size_t cap, const char *base_model, const char *suffix, const char *job_id);

#endif
