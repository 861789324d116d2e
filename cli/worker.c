// worker.c: `toolrl worker`: claims fine-tuning jobs from the job store and trains them
// (trainer/worker.h) until SIGINT/SIGTERM; a signal stops it after the current sequence, and
// the job it held resumes from its last checkpoint under the next worker.
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>

#include "cli/cli.h"
#include "trainer/worker.h"

static const cli_option WORKER_OPTIONS[] = {
    {.name = "--db", .arg = "PATH", .def = "var/toolrl.db", .help = "the job store (SQLite) to take jobs from"},
    {.name = "--out", .arg = "DIR", .def = "var/checkpoints", .help = "checkpoint folder (one subfolder per job)"},
    {.name = "--model", .arg = "PATH",
     .help = "base model for jobs whose model the store has no row for (default: none)"},
    {.name = "--id", .arg = "NAME", .help = "worker id in the job store (computed: HOSTNAME-PID)"},
    {.name = "--lease", .arg = "SECONDS", .def = "60",
     .help = "a job's lease: unrenewed that long, it goes to another worker"},
    {.name = "--heartbeat-ms", .arg = "MS", .def = "2000", .help = "how often the lease is renewed"},
    {.name = "--poll-ms", .arg = "MS", .def = "1000", .help = "idle wait between looks for a job"},
    {.name = "--max-jobs", .arg = "N", .def = "0", .help = "stop after N jobs (0: run until SIGINT/SIGTERM)"},
    CLI_OPTION_THREADS,
    {.name = "--device", .arg = "DEV", .def = "cpu",
     .help = "where evaluation jobs run: cpu, or cuda:N in a build made with CUDA=1 (training runs on the cpu)"},
    {0}};

static const cli_env WORKER_ENV[] = {
    {.name = "TOOLRL_SHARED", .help = "the shared benchmark data of evaluation jobs (default ../shared)"},
    {.name = "GOMP_SPINCOUNT", .help = "spins of an idle OpenMP thread before it sleeps (default here: " CLI_SPINCOUNT ")"},
    {0}};

static int cli_worker(const cli_args *a) {
    worker_config cfg = {0};
    cfg.db_path = cli_get(a, "--db");
    cfg.out_dir = cli_get(a, "--out");
    cfg.default_model = cli_get(a, "--model");
    cfg.worker_id = cli_get(a, "--id");
    cfg.lease_seconds = (int)cli_get_int(a, "--lease");
    cfg.heartbeat_ms = (int)cli_get_int(a, "--heartbeat-ms");
    cfg.poll_ms = (int)cli_get_int(a, "--poll-ms");
    cfg.max_jobs = (int)cli_get_int(a, "--max-jobs");
    cli_set_threads((int)cli_get_int(a, "--threads"));
    device dev;
    if (cli_device_open(a, &dev)) return 2;
    cfg.eval_be = dev.be;
    cfg.stop = cli_stop_on_signals();
    trl_err e = {{0}};
    if (worker_run(&cfg, &e)) {
        fprintf(stderr, "toolrl worker: %s\n", e.msg);
        return 1;
    }
    return 0;
}

const cli_command CLI_WORKER = {.name = "worker",
                                .summary = "Run the fine-tuning and evaluation jobs of a job store until "
                                           "SIGINT/SIGTERM.",
                                .usage = "[--db var/toolrl.db] [--model PATH] [options]",
                                .options = WORKER_OPTIONS,
                                .env = WORKER_ENV,
                                .run = cli_worker};
