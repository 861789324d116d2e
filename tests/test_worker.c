// test_worker.c: the worker against a real job store, on the tiny model: a queued GRPO job is
// claimed, trained, checkpointed and finished; its events carry metrics; its fine-tuned model
// row points at the newest checkpoint, which loads; a cancel requested while it runs stops it
// within seconds; a worker killed mid-run leaves a job that resumes from its checkpoint.
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "model/model.h"
#include "store/store.h"
#include "tests/support/toolrl_bin.h"
#include "tests/support/tiny_model.h"
#include "trainer/worker.h"

static const char *ROW =
    "{\"id\": \"t%d\", \"source\": \"test\", \"messages\": [{\"role\": \"user\", \"content\": \"add %d\"}], "
    "\"tools\": [{\"type\": \"function\", \"function\": {\"name\": \"add\", \"parameters\": {\"type\": \"dict\", "
    "\"properties\": {\"a\": {\"type\": \"integer\"}}}}}], \"answer\": [{\"name\": \"add\", \"arguments\": {\"a\": %d}}]}\n";

typedef struct {
    char dir[256], db[300], model[300], data[300], out[300];
} fx;

static int setup(void **state) {
    fx *f = calloc(1, sizeof(*f));
    trl_err e = {{0}};
    if (tiny_model_tempdir(f->dir, sizeof(f->dir))) return -1;
    snprintf(f->db, sizeof(f->db), "%s/t.db", f->dir);
    snprintf(f->model, sizeof(f->model), "%s/tiny.gguf", f->dir);
    snprintf(f->data, sizeof(f->data), "%s/train.jsonl", f->dir);
    snprintf(f->out, sizeof(f->out), "%s/ckpt", f->dir);
    tiny_model_spec s = tiny_model_default(0);
    s.n_ctx = 4096;
    if (tiny_model_write_gguf(&s, 0, f->model, &e)) return -1;
    FILE *o = fopen(f->data, "w");
    for (int i = 0; i < 8; i++) fprintf(o, ROW, i, i, i);
    fclose(o);
    *state = f;
    return 0;
}

static int teardown(void **state) {
    fx *f = *state;
    tiny_model_rmdir(f->dir);
    free(f);
    return 0;
}

static void make_job(fx *f, const char *hyper, char *job_id) {
    store *s;
    trl_err e = {{0}};
    assert_int_equal(store_open(&s, f->db, &e), TRL_OK);
    store_file file = {0};
    store_file_new fn = {NULL, "train.jsonl", "fine-tune", "processed", NULL, f->data, 100, 8, NULL};
    assert_int_equal(store_file_create(s, &fn, &file, &e), TRL_OK);
    store_job j = {0};
    store_job_new jn = {0};
    jn.model = "tiny.gguf";
    jn.method = "reinforcement";
    jn.hyperparameters = hyper;
    jn.training_file = file.id;
    jn.seed = 3;
    assert_int_equal(store_job_create(s, &jn, &j, &e), TRL_OK);
    strcpy(job_id, j.id);
    store_job_clear(&j);
    store_file_clear(&file);
    store_close(s);
}

// Runs a worker in this process until it has done one job.
static void run_worker(const fx *f, const char *worker_id) {
    worker_config wc = {f->db, f->out, f->model, worker_id, 30, 200, 50, 1, NULL, NULL};
    trl_err e = {{0}};
    assert_int_equal(worker_run(&wc, &e), TRL_OK);
}

static char g_toolrl[512];  // the toolrl binary next to this test's build folder

// Starts `toolrl worker` for one job in a child process (forking this process after OpenMP
// started would hang libgomp in the child).
static pid_t spawn_worker(const fx *f, const char *worker_id) {
    pid_t pid = fork();
    if (pid == 0) {
        execl(g_toolrl, g_toolrl, "worker", "--db", f->db, "--out", f->out, "--model", f->model, "--id", worker_id,
              "--heartbeat-ms", "200", "--poll-ms", "50", "--max-jobs", "1", "--threads", "1", (char *)NULL);
        _exit(127);
    }
    assert_true(pid > 0);
    return pid;
}

// The job, which must be in that status (the caller clears it).
static store_job job_in_status(store *s, const char *id, const char *status) {
    store_job j = {0};
    trl_err e = {{0}};
    assert_int_equal(store_job_get(s, id, &j, &e), TRL_OK);
    assert_string_equal(j.status, status);
    return j;
}

// Events of ev whose message starts with prefix.
static int count_events(const store_events *ev, const char *prefix) {
    int n = 0;
    for (int i = 0; i < ev->n; i++) n += !strncmp(ev->items[i].message, prefix, strlen(prefix));
    return n;
}

static void test_job_runs_to_success(void **state) {
    fx *f = *state;
    char id[STORE_ID_MAX];
    make_job(f, "{\"batch_size\": 1, \"group_size\": 2, \"max_steps\": 3, \"max_new_tokens\": 8, "
                "\"checkpoint_interval\": 2, \"eval_interval\": 3, \"eval_examples\": 1, \"max_seq_tokens\": 3000}",
             id);
    run_worker(f, "w1");
    store *s;
    trl_err e = {{0}};
    assert_int_equal(store_open(&s, f->db, &e), TRL_OK);
    store_job j = job_in_status(s, id, "succeeded");
    assert_non_null(j.fine_tuned_model);
    assert_int_equal(j.step, 3);
    // events: started, three metrics events with a reward, the end
    store_events ev = {0};
    store_page pg = {NULL, 100, 1, NULL};
    assert_int_equal(store_event_list(s, id, &pg, &ev, &e), TRL_OK);
    int metrics = 0;
    for (int i = 0; i < ev.n; i++)
        if (!strcmp(ev.items[i].type, "metrics")) {
            metrics++;
            assert_non_null(strstr(ev.items[i].data, "\"reward_mean\""));
        }
    assert_int_equal(metrics, 3);
    // exactly one closing event (the worker and the store each wrote one before)
    assert_int_equal(count_events(&ev, "The job has successfully completed"), 1);
    assert_int_equal(count_events(&ev, "The job"), 1);
    store_events_free(&ev);
    // checkpoints at steps 2 and 3; the model row points at the newest, which loads
    store_checkpoints cl = {0};
    assert_int_equal(store_checkpoint_list(s, id, &pg, &cl, &e), TRL_OK);
    assert_int_equal(cl.n, 2);
    store_checkpoints_free(&cl);
    store_model m = {0};
    assert_int_equal(store_model_get(s, j.fine_tuned_model, &m, &e), TRL_OK);
    assert_non_null(strstr(m.path, "step-3"));
    model loaded;
    assert_int_equal(model_load(&loaded, m.path, &e), TRL_OK);
    model_free(&loaded);
    store_model_clear(&m);
    store_job_clear(&j);
    store_close(s);
}

static void test_bad_job_fails_clearly(void **state) {
    fx *f = *state;
    char id[STORE_ID_MAX];
    make_job(f, "{\"batch_size\": \"many\"}", id);
    run_worker(f, "w2");
    store *s;
    trl_err e = {{0}};
    assert_int_equal(store_open(&s, f->db, &e), TRL_OK);
    store_job j = job_in_status(s, id, "failed");
    assert_non_null(strstr(j.error, "hyperparameters.batch_size"));
    // one closing event, naming the reason, with the error as its data
    store_events ev = {0};
    store_page pg = {NULL, 100, 1, NULL};
    assert_int_equal(store_event_list(s, id, &pg, &ev, &e), TRL_OK);
    int errors = 0;
    for (int i = 0; i < ev.n; i++) errors += !strcmp(ev.items[i].level, "error");
    assert_int_equal(errors, 1);
    assert_int_equal(count_events(&ev, "The job failed: "), 1);
    assert_int_equal(count_events(&ev, "The job"), 1);
    for (int i = 0; i < ev.n; i++)
        if (!strncmp(ev.items[i].message, "The job failed: ", 16)) {
            assert_non_null(strstr(ev.items[i].message, "hyperparameters.batch_size"));
            assert_non_null(strstr(ev.items[i].data, "hyperparameters.batch_size"));
        }
    store_events_free(&ev);
    store_job_clear(&j);
    store_close(s);
}

// A cancel while the job runs: the worker (a `toolrl worker` process) stops it within seconds.
static void test_cancel_reaches_worker(void **state) {
    fx *f = *state;
    char id[STORE_ID_MAX];
    make_job(f, "{\"batch_size\": 1, \"group_size\": 2, \"max_steps\": 1000, \"max_new_tokens\": 8, "
                "\"checkpoint_interval\": 0, \"eval_interval\": 0, \"max_seq_tokens\": 3000}", id);
    pid_t pid = spawn_worker(f, "w3");
    store *s;
    trl_err e = {{0}};
    assert_int_equal(store_open(&s, f->db, &e), TRL_OK);
    store_job j = {0};
    for (int i = 0; i < 600; i++) {  // wait until it has done a step
        assert_int_equal(store_job_get(s, id, &j, &e), TRL_OK);
        int running = !strcmp(j.status, "running") && j.step >= 1;
        store_job_clear(&j);
        if (running) break;
        usleep(100000);
    }
    assert_int_equal(store_job_cancel(s, id, NULL, &e), TRL_OK);
    int status = 0;
    double t0 = trl_now();
    assert_int_equal(waitpid(pid, &status, 0), pid);
    double waited = trl_now() - t0;
    assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    assert_true(waited < 10.0);
    j = job_in_status(s, id, "cancelled");
    store_job_clear(&j);
    store_events ev = {0};
    store_page pg = {NULL, 1000, 1, NULL};
    assert_int_equal(store_event_list(s, id, &pg, &ev, &e), TRL_OK);
    assert_int_equal(count_events(&ev, "Job cancelled"), 1);
    assert_int_equal(count_events(&ev, "The job"), 0);
    store_events_free(&ev);
    store_close(s);
}

// SIGKILL a worker after its first checkpoint: once the lease runs out the job is queued
// again, and the next worker resumes it from that checkpoint and finishes it.
static void test_killed_worker_resumes(void **state) {
    fx *f = *state;
    char id[STORE_ID_MAX];
    make_job(f, "{\"batch_size\": 1, \"group_size\": 2, \"max_steps\": 8, \"max_new_tokens\": 8, "
                "\"checkpoint_interval\": 1, \"eval_interval\": 0, \"max_seq_tokens\": 3000}", id);
    pid_t pid = spawn_worker(f, "w4");
    store *s;
    trl_err e = {{0}};
    assert_int_equal(store_open(&s, f->db, &e), TRL_OK);
    store_checkpoint ck = {0};
    for (int i = 0; i < 600 && store_checkpoint_latest(s, id, &ck, &e) != TRL_OK; i++) usleep(100000);
    assert_non_null(ck.path);
    store_checkpoint_clear(&ck);
    kill(pid, SIGKILL);
    waitpid(pid, NULL, 0);
    store_requeue_counts rq = {0};
    assert_int_equal(store_jobs_requeue_expired(s, store_now(s) + 3600, &rq, &e), TRL_OK);
    assert_int_equal(rq.requeued, 1);
    store_job j = job_in_status(s, id, "queued");
    store_job_clear(&j);
    store_close(s);
    run_worker(f, "w5");
    assert_int_equal(store_open(&s, f->db, &e), TRL_OK);
    j = job_in_status(s, id, "succeeded");
    assert_int_equal(j.step, 8);
    assert_int_equal(j.attempts, 2);
    store_job_clear(&j);
    store_events ev = {0};
    store_page pg = {NULL, 1000, 1, NULL};
    assert_int_equal(store_event_list(s, id, &pg, &ev, &e), TRL_OK);
    int resumed = 0;
    for (int i = 0; i < ev.n; i++) resumed += strstr(ev.items[i].message, "Resumed from checkpoint at step") != NULL;
    assert_int_equal(resumed, 1);
    assert_int_equal(count_events(&ev, "The job has successfully completed"), 1);
    store_events_free(&ev);
    store_close(s);
}

int main(int argc, char **argv) {
    (void)argc;
    toolrl_bin_path(argv[0], g_toolrl, sizeof(g_toolrl));
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_job_runs_to_success, setup, teardown),
        cmocka_unit_test_setup_teardown(test_bad_job_fails_clearly, setup, teardown),
        cmocka_unit_test_setup_teardown(test_cancel_reaches_worker, setup, teardown),
        cmocka_unit_test_setup_teardown(test_killed_worker_resumes, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
