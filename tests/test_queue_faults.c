// test_queue_faults.c: the job store under SIGKILL. Rounds of forked worker processes create
// files and jobs, claim, heartbeat, checkpoint, log, cancel and finish against one database
// while the parent kills each at a random moment (some while still opening it). A child reports
// a write on its pipe only after the call returned, i.e. after the commit. Afterwards every
// reported write is in the database exactly as reported, no job was claimed twice for the same
// attempt, finished jobs stayed finished, requeueing leaves nothing running past its lease and
// resumes each job from its last checkpoint, draining the queue finishes every job, and
// PRAGMA integrity_check is ok. Each round runs on a clock a second further on (store_set_now),
// so leases of killed workers expire mid-run. Set TOOLRL_FAULT_SEED to replay a run.
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <cmocka.h>

#include <sqlite3.h>

#include "store/store.h"
#include "tests/support/tiny_model.h"  // tiny_model_tempdir, tiny_model_rmdir

enum { ROUNDS = 40, CHILDREN = 3, LEASE = 2, MAX_ACKS = 200000 };

// ---- the child: a random worker that reports what committed --------------------------------

static unsigned rnd_state;
static unsigned rnd(void) {  // xorshift32: independent of libc's rand in each child
    rnd_state ^= rnd_state << 13;
    rnd_state ^= rnd_state >> 17;
    rnd_state ^= rnd_state << 5;
    return rnd_state;
}

static void say(int fd, const char *fmt, ...) {
    char line[512];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(line, sizeof line - 1, fmt, ap);
    va_end(ap);
    if (n < 0) _exit(40);
    if (n > (int)sizeof line - 2) n = (int)sizeof line - 2;
    line[n++] = '\n';
    if (write(fd, line, (size_t)n) != n) _exit(41);  // < PIPE_BUF: all or nothing
}

static void die(int fd, int code, const char *what, const trl_err *e) {
    say(fd, "! %s: %s", what, e->msg);
    _exit(code);
}

static void child(const char *path, const char *worker, unsigned seed, int64_t clock, int fd) {
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    rnd_state = seed ? seed : 1;
    trl_err e = {{0}};
    store *s = NULL;
    if (store_open(&s, path, &e) != TRL_OK) die(fd, 20, "open", &e);
    store_set_now(s, clock);
    say(fd, "R");
    char jobs[16][STORE_ID_MAX];
    int n_jobs = 0;
    char last_file[STORE_ID_MAX] = "file-none";
    char mine[STORE_ID_MAX] = "";
    int64_t step = 0;
    for (int op = 0; op < 100000; op++) {
        unsigned r = rnd() % 100;
        if (r < 12) {
            char sha[17];
            snprintf(sha, sizeof sha, "%08x%08x", rnd(), rnd());
            store_file_new in = {.filename = "train.jsonl", .purpose = "fine-tune", .sha256 = sha,
                                 .bytes = rnd() % 100000, .line_count = rnd() % 1000};
            store_file f;
            if (store_file_create(s, &in, &f, &e) != TRL_OK) die(fd, 21, "file create", &e);
            say(fd, "F %s %s", f.id, sha);
            snprintf(last_file, sizeof last_file, "%s", f.id);
            store_file_clear(&f);
        } else if (r < 27) {
            store_job_new in = {.model = "SmolLM2-135M-Instruct", .method = rnd() % 2 ? "reinforcement" : "supervised",
                                .training_file = last_file, .seed = rnd() % 1000};
            store_job j;
            if (store_job_create(s, &in, &j, &e) != TRL_OK) die(fd, 22, "job create", &e);
            say(fd, "J %s", j.id);
            snprintf(jobs[n_jobs % 16], STORE_ID_MAX, "%s", j.id);
            n_jobs++;
            store_job_clear(&j);
        } else if (r < 31) {
            if (!n_jobs) continue;
            const char *id = jobs[rnd() % (unsigned)(n_jobs < 16 ? n_jobs : 16)];
            store_job j;
            int rc = store_job_cancel(s, id, &j, &e);
            if (rc == TRL_OK) {
                say(fd, "X %s %s", id, j.status);
                store_job_clear(&j);
            } else if (rc != TRL_CONFLICT) {
                die(fd, 23, "cancel", &e);
            }
        } else if (r < 36) {
            if (store_jobs_requeue_expired(s, store_now(s), NULL, &e) != TRL_OK) die(fd, 24, "requeue", &e);
        } else if (!*mine) {
            store_job j;
            int rc = store_job_claim(s, worker, LEASE, &j, &e);
            if (rc == TRL_NOT_FOUND) continue;
            if (rc != TRL_OK) die(fd, 25, "claim", &e);
            say(fd, "C %s %d", j.id, j.attempts);
            snprintf(mine, sizeof mine, "%s", j.id);
            step = j.step;
            store_job_clear(&j);
        } else {
            unsigned k = rnd() % 10;
            int rc;
            if (k < 4) {
                int cancel = 0;
                store_progress p = {.step = step + 1, .total_steps = 1000, .trained_tokens = (step + 1) * 64};
                rc = store_job_heartbeat(s, mine, worker, LEASE, &p, &cancel, &e);
                if (rc == TRL_OK) {
                    step++;
                    if (cancel) {
                        rc = store_job_finish(s, mine, worker, "cancelled", NULL, NULL, &e);
                        if (rc == TRL_OK) say(fd, "D %s cancelled", mine);
                        *mine = 0;
                    }
                }
            } else if (k < 6) {
                char p[96], m[64];
                snprintf(p, sizeof p, "runs/%s/%lld", mine, (long long)(step + 1));
                snprintf(m, sizeof m, "{\"step\":%lld,\"reward_mean\":0.5}", (long long)(step + 1));
                store_checkpoint_new in = {.step = step + 1, .metrics = m, .path = p};
                store_checkpoint c;
                rc = store_checkpoint_add(s, mine, worker, &in, &c, &e);
                if (rc == TRL_OK) {
                    step++;
                    say(fd, "K %s %lld %s", mine, (long long)c.step, c.id);
                    store_checkpoint_clear(&c);
                }
            } else if (k < 8) {
                store_event_new in = {.type = "metrics", .message = "step", .data = "{\"kl\":0.01}"};
                store_event ev;
                rc = store_event_append(s, mine, worker, &in, &ev, &e);
                if (rc == TRL_OK) {
                    say(fd, "E %s %s", mine, ev.id);
                    store_event_clear(&ev);
                }
            } else {
                const char *st = rnd() % 4 ? "succeeded" : "failed";
                rc = store_job_finish(s, mine, worker, st, !strcmp(st, "succeeded") ? "ft:SmolLM2:x" : NULL,
                                      !strcmp(st, "failed") ? "{\"code\":\"test\",\"message\":\"chosen\",\"param\":null}"
                                                            : NULL,
                                      &e);
                if (rc == TRL_OK) say(fd, "D %s %s", mine, st);
                if (rc == TRL_OK) *mine = 0;
            }
            if (rc == TRL_LEASE_LOST) *mine = 0;  // requeued behind our back (lease of 2 s)
            else if (rc != TRL_OK) die(fd, 26, "worker call", &e);
        }
    }
    store_close(s);
    _exit(0);
}

// ---- the parent: acks, kills, checks -------------------------------------------------------

typedef struct {
    char kind;
    char a[STORE_ID_MAX];
    char b[STORE_ID_MAX];
    int64_t n;
    int who;  // child index over the whole run
} ack;

typedef struct {
    ack *v;
    int n;
} acks;

static void parse_lines(acks *A, char *buf, int who, int *failed) {
    char *save = NULL;
    for (char *line = strtok_r(buf, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
        if (line[0] == 'R') continue;
        if (line[0] == '!') {
            fprintf(stderr, "child %d: %s\n", who, line + 2);
            (*failed)++;
            continue;
        }
        assert_true(A->n < MAX_ACKS);
        ack *k = &A->v[A->n];
        memset(k, 0, sizeof *k);
        k->kind = line[0];
        k->who = who;
        long long n = 0;
        char a[STORE_ID_MAX] = "", b[STORE_ID_MAX] = "";
        int got = 0;
        switch (line[0]) {
        case 'F': got = sscanf(line, "F %47s %47s", a, b) == 2; break;
        case 'J': got = sscanf(line, "J %47s", a) == 1; break;
        case 'C': got = sscanf(line, "C %47s %lld", a, &n) == 2; break;
        case 'K': got = sscanf(line, "K %47s %lld %47s", a, &n, b) == 3; break;
        case 'E': got = sscanf(line, "E %47s %47s", a, b) == 2; break;
        case 'D': got = sscanf(line, "D %47s %47s", a, b) == 2; break;
        case 'X': got = sscanf(line, "X %47s %47s", a, b) == 2; break;
        }
        if (!got) continue;  // a line cut by the kill cannot happen (atomic writes), but be safe
        memcpy(k->a, a, sizeof k->a);
        memcpy(k->b, b, sizeof k->b);
        k->n = n;
        A->n++;
    }
}

// Reads everything a dead child's pipe still holds.
static void drain(int fd, acks *A, int who, int *failed, char *pending, size_t pending_len) {
    size_t cap = 1 << 16, len = pending_len;
    char *buf = malloc(cap + 1);
    assert_non_null(buf);
    memcpy(buf, pending, pending_len);
    for (;;) {
        if (len == cap) {
            cap *= 2;
            char *nb = realloc(buf, cap + 1);
            assert_non_null(nb);
            buf = nb;
        }
        ssize_t r = read(fd, buf + len, cap - len);
        if (r < 0 && errno == EINTR) continue;
        if (r <= 0) break;
        len += (size_t)r;
    }
    buf[len] = 0;
    parse_lines(A, buf, who, failed);
    free(buf);
}

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static void sleep_until(double t) {
    for (;;) {
        double d = t - now_s();
        if (d <= 0) return;
        struct timespec ts = {(time_t)d, (long)((d - (double)(time_t)d) * 1e9)};
        nanosleep(&ts, NULL);
    }
}

static int64_t q_i64(sqlite3 *db, const char *sql, const char *a, int64_t n) {
    sqlite3_stmt *st = NULL;
    assert_int_equal(sqlite3_prepare_v2(db, sql, -1, &st, NULL), SQLITE_OK);
    if (a) sqlite3_bind_text(st, 1, a, -1, SQLITE_TRANSIENT);
    if (sqlite3_bind_parameter_count(st) >= 2) sqlite3_bind_int64(st, 2, n);
    int64_t v = -1;
    if (sqlite3_step(st) == SQLITE_ROW) v = sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
    return v;
}

static const char *q_text(sqlite3 *db, const char *sql, const char *a, char *out, size_t cap) {
    sqlite3_stmt *st = NULL;
    assert_int_equal(sqlite3_prepare_v2(db, sql, -1, &st, NULL), SQLITE_OK);
    sqlite3_bind_text(st, 1, a, -1, SQLITE_TRANSIENT);
    *out = 0;
    if (sqlite3_step(st) == SQLITE_ROW && sqlite3_column_text(st, 0))
        snprintf(out, cap, "%s", (const char *)sqlite3_column_text(st, 0));
    sqlite3_finalize(st);
    return out;
}

static int cmp_claim(const void *x, const void *y) {
    const ack *a = x, *b = y;
    int c = strcmp(a->a, b->a);
    if (c) return c;
    return (a->n > b->n) - (a->n < b->n);
}

static void test_kill_loop(void **state) {
    (void)state;
    char dir[256], path[300];
    assert_int_equal(tiny_model_tempdir(dir, sizeof dir), TRL_OK);
    snprintf(path, sizeof path, "%s/jobs.db", dir);
    trl_err e = {{0}};
    store *s = NULL;
    assert_int_equal(store_open(&s, path, &e), TRL_OK);  // schema first; children only open
    store_close(s);

    unsigned seed = (unsigned)time(NULL) ^ (unsigned)getpid();
    const char *env = getenv("TOOLRL_FAULT_SEED");
    if (env) seed = (unsigned)strtoul(env, NULL, 10);
    print_message("seed %u (TOOLRL_FAULT_SEED to replay)\n", seed);
    rnd_state = seed ? seed : 1;

    acks A = {calloc(MAX_ACKS, sizeof(ack)), 0};
    assert_non_null(A.v);
    int kills = 0, early_kills = 0, exited = 0, failed = 0, who = 0;
    // Round r runs on a clock r seconds on, so the 2-second leases of killed workers run out
    // while the loop goes on and later rounds requeue (and eventually give up on) their jobs.
    int64_t clock0 = (int64_t)time(NULL);
    double t0 = now_s();
    for (int round = 0; round < ROUNDS; round++) {
        int fds[CHILDREN];
        pid_t pids[CHILDREN];
        char pending[CHILDREN][64];
        size_t plen[CHILDREN];
        double kill_at[CHILDREN];
        for (int c = 0; c < CHILDREN; c++) {
            int p[2];
            assert_int_equal(pipe(p), 0);
            char worker[32];
            snprintf(worker, sizeof worker, "w%02d.%d", round, c);
            unsigned cseed = rnd();
            pid_t pid = fork();
            assert_true(pid >= 0);
            if (pid == 0) {
                close(p[0]);
                for (int k = 0; k < c; k++) close(fds[k]);
                child(path, worker, cseed, clock0 + round, p[1]);
            }
            close(p[1]);
            fds[c] = p[0];
            pids[c] = pid;
            plen[c] = 0;
        }
        // One kill in five lands while the child is still opening the database; the others
        // at a random moment of up to 60 ms of work.
        for (int c = 0; c < CHILDREN; c++) {
            if (rnd() % 5 == 0) {
                kill_at[c] = now_s() + (rnd() % 3000) * 1e-6;
                early_kills++;
                continue;
            }
            // Wait for "R" (the child writes nothing else before it).
            while (plen[c] < 2) {
                ssize_t r = read(fds[c], pending[c] + plen[c], 2 - plen[c]);
                if (r < 0 && errno == EINTR) continue;
                if (r <= 0) break;
                plen[c] += (size_t)r;
            }
            kill_at[c] = now_s() + (rnd() % 60000) * 1e-6;
        }
        for (int left = CHILDREN; left > 0; left--) {
            int c = -1;
            for (int k = 0; k < CHILDREN; k++)
                if (pids[k] > 0 && (c < 0 || kill_at[k] < kill_at[c])) c = k;
            sleep_until(kill_at[c]);
            kill(pids[c], SIGKILL);
            int status = 0;
            assert_int_equal(waitpid(pids[c], &status, 0), pids[c]);
            if (WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL) kills++;
            else if (WIFEXITED(status)) exited++, failed += WEXITSTATUS(status) != 0;
            drain(fds[c], &A, who + c, &failed, pending[c], plen[c]);
            close(fds[c]);
            pids[c] = 0;
        }
        who += CHILDREN;
    }
    double t_kill = now_s() - t0;
    assert_int_equal(failed, 0);
    assert_true(kills >= 100);

    // ---- checks -------------------------------------------------------------------------
    assert_int_equal(store_open(&s, path, &e), TRL_OK);  // recovers the WAL of the dead
    assert_int_equal(store_integrity_check(s, &e), TRL_OK);
    sqlite3 *db = NULL;
    assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
    int nf = 0, nj = 0, nc = 0, nk = 0, ne = 0, nd = 0, nx = 0;
    char buf[256];
    for (int i = 0; i < A.n; i++) {
        ack *k = &A.v[i];
        switch (k->kind) {
        case 'F': {
            store_file f;
            assert_int_equal(store_file_get(s, k->a, &f, &e), TRL_OK);
            assert_string_equal(f.sha256, k->b);
            store_file_clear(&f);
            nf++;
            break;
        }
        case 'J':
            assert_int_equal(q_i64(db, "SELECT count(*) FROM jobs WHERE id = ?1", k->a, 0), 1);
            nj++;
            break;
        case 'C':
            assert_true(q_i64(db, "SELECT attempts FROM jobs WHERE id = ?1", k->a, 0) >= k->n);
            nc++;
            break;
        case 'K':
            assert_int_equal(q_i64(db, "SELECT count(*) FROM checkpoints WHERE job_id = ?1 AND step = ?2", k->a, k->n),
                             1);
            assert_int_equal(q_i64(db, "SELECT count(*) FROM checkpoints WHERE id = ?1", k->b, 0), 1);
            nk++;
            break;
        case 'E':
            assert_int_equal(q_i64(db, "SELECT count(*) FROM job_events WHERE id = ?1", k->b, 0), 1);
            ne++;
            break;
        case 'D':
            assert_string_equal(q_text(db, "SELECT status FROM jobs WHERE id = ?1", k->a, buf, sizeof buf), k->b);
            nd++;
            break;
        case 'X':
            if (!strcmp(k->b, "cancelled"))
                assert_string_equal(q_text(db, "SELECT status FROM jobs WHERE id = ?1", k->a, buf, sizeof buf),
                                     "cancelled");
            nx++;
            break;
        }
    }
    // No job claimed twice for the same attempt, and none finished twice.
    ack *claims = calloc((size_t)A.n + 1, sizeof *claims), *done = calloc((size_t)A.n + 1, sizeof *done);
    assert_non_null(claims);
    assert_non_null(done);
    int ncl = 0, ndn = 0;
    for (int i = 0; i < A.n; i++) {
        if (A.v[i].kind == 'C') claims[ncl++] = A.v[i];
        if (A.v[i].kind == 'D') done[ndn++] = A.v[i];
    }
    qsort(claims, (size_t)ncl, sizeof *claims, cmp_claim);
    for (int i = 1; i < ncl; i++)
        if (!strcmp(claims[i].a, claims[i - 1].a) && claims[i].n == claims[i - 1].n)
            fail_msg("job %s claimed twice at attempt %lld (children %d and %d)", claims[i].a,
                     (long long)claims[i].n, claims[i - 1].who, claims[i].who);
    qsort(done, (size_t)ndn, sizeof *done, cmp_claim);
    for (int i = 1; i < ndn; i++)
        if (!strcmp(done[i].a, done[i - 1].a)) fail_msg("job %s finished twice", done[i].a);
    // The finisher held the job's last claim: the worker of the last acked claim of the job.
    for (int i = 0; i < ndn; i++) {
        int last = -1;
        for (int c = 0; c < ncl; c++)
            if (!strcmp(claims[c].a, done[i].a)) last = c;
        assert_true(last >= 0);
        assert_int_equal(claims[last].who, done[i].who);
    }

    // Everything running belongs to dead workers: requeue with a clock past every lease.
    int64_t running_before = q_i64(db, "SELECT count(*) FROM jobs WHERE status = 'running'", NULL, 0);
    store_requeue_counts rq;
    assert_int_equal(store_jobs_requeue_expired(s, store_now(s) + 3600, &rq, &e), TRL_OK);
    assert_int_equal(rq.requeued + rq.failed + rq.cancelled, running_before);
    assert_int_equal(q_i64(db, "SELECT count(*) FROM jobs WHERE status = 'running'", NULL, 0), 0);
    assert_int_equal(q_i64(db, "SELECT count(*) FROM jobs WHERE status = 'queued' AND step <>"
                               " (SELECT COALESCE(MAX(step), 0) FROM checkpoints WHERE job_id = jobs.id)",
                           NULL, 0),
                     0);
    assert_int_equal(q_i64(db, "SELECT count(*) FROM jobs WHERE attempts > max_attempts", NULL, 0), 0);
    int64_t multi = q_i64(db, "SELECT count(*) FROM jobs WHERE attempts > 1", NULL, 0);
    int64_t gave_up = q_i64(db, "SELECT count(*) FROM jobs WHERE error LIKE '%worker_lost%'", NULL, 0);

    // Drain: one last worker takes every queued job exactly once and finishes it.
    int64_t queued = q_i64(db, "SELECT count(*) FROM jobs WHERE status = 'queued'", NULL, 0);
    int drained = 0;
    for (;;) {
        store_job j;
        int rc = store_job_claim(s, "drainer", 60, &j, &e);
        if (rc == TRL_NOT_FOUND) break;
        assert_int_equal(rc, TRL_OK);
        for (int i = 0; i < ndn; i++)
            if (!strcmp(done[i].a, j.id)) fail_msg("finished job %s was claimed again", j.id);
        store_checkpoint c;
        int have = store_checkpoint_latest(s, j.id, &c, &e);
        assert_true(have == TRL_OK || have == TRL_NOT_FOUND);
        assert_int_equal(j.step, have == TRL_OK ? c.step : 0);  // resumes from its last checkpoint
        if (have == TRL_OK) store_checkpoint_clear(&c);
        assert_int_equal(store_job_finish(s, j.id, "drainer", "succeeded", NULL, NULL, &e), TRL_OK);
        store_job_clear(&j);
        drained++;
    }
    assert_int_equal(drained, queued);
    assert_int_equal(q_i64(db, "SELECT count(*) FROM jobs WHERE status NOT IN ('succeeded','failed','cancelled')",
                           NULL, 0),
                     0);
    assert_int_equal(store_integrity_check(s, &e), TRL_OK);
    int64_t n_jobs = q_i64(db, "SELECT count(*) FROM jobs", NULL, 0);
    int64_t n_files = q_i64(db, "SELECT count(*) FROM files", NULL, 0);
    print_message("%d rounds x %d children in %.1f s: %d SIGKILLs (%d while opening), %d exited on their own\n",
                  ROUNDS, CHILDREN, t_kill, kills, early_kills, exited);
    print_message("acked: %d files, %d jobs, %d claims, %d checkpoints, %d events, %d finishes, %d cancels; "
                  "all present (committed but killed before the ack: %lld files, %lld jobs)\n",
                  nf, nj, nc, nk, ne, nd, nx, (long long)(n_files - nf), (long long)(n_jobs - nj));
    print_message("%lld jobs; %lld left running by the dead -> %d requeued, %d failed, %d cancelled; "
                  "%lld claimed more than once, %lld out of attempts; %d drained\n",
                  (long long)n_jobs, (long long)running_before, rq.requeued, rq.failed, rq.cancelled,
                  (long long)multi, (long long)gave_up, drained);
    assert_true(nc > 0 && nj > 0 && nf > 0);
    sqlite3_close(db);
    store_close(s);
    free(claims);
    free(done);
    free(A.v);
    tiny_model_rmdir(dir);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_kill_loop),
    };
    return cmocka_run_group_tests_name("queue_faults", tests, NULL, NULL);
}
