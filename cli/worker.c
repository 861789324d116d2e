// worker.c: `toolrl worker`: claims fine-tuning jobs from the job store and trains them
// (trainer/worker.h) until SIGINT/SIGTERM; a signal stops it after the current sequence, and
// the job it held resumes from its last checkpoint under the next worker.
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>

#include "cli.h"
#include "worker.h"

static volatile sig_atomic_t g_stop;
static void on_signal(int sig) {
    (void)sig;
    g_stop = 1;
}

int cli_worker(int argc, char **argv) {
    static const char *const known[] = {"--db", "--out", "--model", "--id", "--lease", "--heartbeat-ms", "--poll-ms",
                                        "--max-jobs", "--threads", NULL};
    cli_check_opts(argc, argv, known);
    setenv("OMP_WAIT_POLICY", "passive", 0);  // before the first OpenMP region (trainer/README.md)
    worker_config cfg = {0};
    cfg.db_path = cli_opt(argc, argv, "--db", "var/toolrl.db");
    cfg.out_dir = cli_opt(argc, argv, "--out", "var/checkpoints");
    cfg.default_model = cli_opt(argc, argv, "--model", NULL);
    cfg.worker_id = cli_opt(argc, argv, "--id", NULL);
    cfg.lease_seconds = (int)cli_opt_int(argc, argv, "--lease", 60);
    cfg.heartbeat_ms = (int)cli_opt_int(argc, argv, "--heartbeat-ms", 2000);
    cfg.poll_ms = (int)cli_opt_int(argc, argv, "--poll-ms", 1000);
    cfg.max_jobs = (int)cli_opt_int(argc, argv, "--max-jobs", 0);
    cfg.stop = &g_stop;
    cli_set_threads((int)cli_opt_int(argc, argv, "--threads", 2));
    signal(SIGINT, on_signal);
    signal(SIGTERM, on_signal);
    trl_err e = {{0}};
    if (worker_run(&cfg, &e)) {
        fprintf(stderr, "toolrl worker: %s\n", e.msg);
        return 1;
    }
    return 0;
}
