// spawn.c: `toolrl serve --workers N` starts N `toolrl worker` processes beside the server
// (same binary, same job store and base model) and stops them when the server stops, so that
// `make run` is one command. Each worker is its own process: one dying loses at most its
// current step (its job is requeued and resumes from the last checkpoint).
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "cli/cli.h"

extern char **environ;

pid_t cli_spawn_worker(const char *db, const char *model, const char *out_dir, int threads) {
    char self[4096];
    ssize_t n = readlink("/proc/self/exe", self, sizeof(self) - 1);
    if (n <= 0) return -1;
    self[n] = 0;
    char th[16];
    snprintf(th, sizeof(th), "%d", threads > 0 ? threads : 2);
    char *argv[] = {self, "worker", "--db", (char *)db, "--model", (char *)model, "--out", (char *)out_dir,
                    "--threads", th, NULL};
    pid_t pid;
    if (posix_spawn(&pid, self, NULL, NULL, argv, environ) != 0) return -1;
    return pid;
}

void cli_stop_worker(pid_t pid) {
    if (pid <= 0) return;
    kill(pid, SIGTERM);
    // A worker stops within one sequence; give it 30 s, then kill it (its job resumes later).
    for (int i = 0; i < 300; i++) {
        if (waitpid(pid, NULL, WNOHANG) == pid) return;
        struct timespec ts = {0, 100 * 1000000L};
        nanosleep(&ts, NULL);
    }
    kill(pid, SIGKILL);
    waitpid(pid, NULL, 0);
}
