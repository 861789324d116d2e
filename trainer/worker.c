// worker.c: claim → train → report, with a heartbeat thread (see worker.h).
#include "trainer/worker.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "eval/runner.h"
#include "model/model.h"
#include "model/quant.h"
#include "store/store.h"
#include "trainer/checkpoint.h"
#include "trainer/task.h"
#include "trainer/train.h"

static void sleep_ms(int ms) {
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) == -1 && errno == EINTR) {
    }
}

void worker_model_name(char *out, size_t cap, const char *base_model, const char *suffix, const char *job_id) {
    const char *b = strrchr(base_model, '/');
    b = b ? b + 1 : base_model;
    snprintf(out, cap, "ft:%s:%s:%s", b, suffix && *suffix ? suffix : "toolrl", job_id);
}

// ---- heartbeat thread -------------------------------------------------------------------------

typedef struct {
    const worker_config *cfg;
    const char *worker_id;
    char job_id[STORE_ID_MAX];
    volatile int abort;          // read by the trainer: stop now
    atomic_int cancel, lost, quit;
    atomic_long step, total, tokens;
    pthread_t th;
} job_watch;

static void *heartbeat_main(void *arg) {
    job_watch *w = arg;
    store *s = NULL;
    trl_err e = {{0}};
    if (store_open(&s, w->cfg->db_path, &e)) {
        fprintf(stderr, "toolrl worker: heartbeat: %s\n", e.msg);
        atomic_store(&w->lost, 1);
        w->abort = 1;
        return NULL;
    }
    int period = w->cfg->heartbeat_ms > 0 ? w->cfg->heartbeat_ms : 2000, lease = w->cfg->lease_seconds > 0 ? w->cfg->lease_seconds : 60;
    while (!atomic_load(&w->quit)) {
        for (int waited = 0; waited < period && !atomic_load(&w->quit); waited += 100) {
            sleep_ms(100);
            if (w->cfg->stop && *w->cfg->stop) w->abort = 1;
        }
        if (atomic_load(&w->quit)) break;
        store_progress p = {atomic_load(&w->step), atomic_load(&w->total), atomic_load(&w->tokens)};
        int cancel = 0;
        int rc = store_job_heartbeat(s, w->job_id, w->worker_id, lease, &p, &cancel, &e);
        if (rc == TRL_LEASE_LOST) {
            atomic_store(&w->lost, 1);
            w->abort = 1;
            break;
        }
        if (rc == TRL_OK && cancel) {
            atomic_store(&w->cancel, 1);
            w->abort = 1;
        }
    }
    store_close(s);
    return NULL;
}

// ---- one job ----------------------------------------------------------------------------------

typedef struct {
    store *s;
    const worker_config *cfg;
    const char *worker_id;
    store_job *j;
    char ft_name[512];
    char job_dir[1024];
    int last_ckpt_step;
} job_ctx;

static int event(job_ctx *c, const char *level, const char *type, const char *msg, const cJSON *data) {
    char *d = data ? cJSON_PrintUnformatted(data) : NULL;
    store_event_new ev = {level, type, msg, d};
    trl_err e = {{0}};
    int rc = store_event_append(c->s, c->j->id, c->worker_id, &ev, NULL, &e);
    free(d);
    return rc;
}

static char *error_json(const char *code, const char *message, const char *param) {
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "code", code);
    cJSON_AddStringToObject(o, "message", message);
    if (param) cJSON_AddStringToObject(o, "param", param);
    else cJSON_AddNullToObject(o, "param");
    char *s = cJSON_PrintUnformatted(o);
    cJSON_Delete(o);
    return s;
}

// Ends the job as failed. store_job_finish writes its closing event ("The job failed: message"),
// as it does for the other endings: the worker adds none of its own.
static void fail(job_ctx *c, const char *code, const char *message, const char *param) {
    char *ej = error_json(code, message, param);
    trl_err e = {{0}};
    if (store_job_finish(c->s, c->j->id, c->worker_id, "failed", NULL, ej, &e) != TRL_OK)
        fprintf(stderr, "toolrl worker: %s: cannot record failure: %s\n", c->j->id, e.msg);
    fprintf(stderr, "toolrl worker: %s failed: %s\n", c->j->id, message);
    free(ej);
}

// The base model's path: the store's models row, or the worker's default model when the job
// names it (by path or file name).
static int resolve_model(job_ctx *c, char *path, size_t cap) {
    store_model m = {0};
    trl_err e = {{0}};
    if (store_model_get(c->s, c->j->model, &m, &e) == TRL_OK) {
        snprintf(path, cap, "%s", m.path);
        store_model_clear(&m);
        return TRL_OK;
    }
    const char *d = c->cfg->default_model;
    if (d) {
        const char *b = strrchr(d, '/');
        b = b ? b + 1 : d;
        if (!strcmp(c->j->model, d) || !strcmp(c->j->model, b)) {
            snprintf(path, cap, "%s", d);
            return TRL_OK;
        }
    }
    return TRL_ERR;
}

static const char *grader_of(const cJSON *method_config) {
    const cJSON *g = cJSON_GetObjectItem(cJSON_GetObjectItem(method_config, "reinforcement"), "grader");
    const char *keys[] = {"variant", "reward", "name"};
    for (int i = 0; i < 3; i++) {
        const cJSON *v = cJSON_GetObjectItem(g, keys[i]);
        if (cJSON_IsString(v)) return v->valuestring;
    }
    return NULL;
}

// Writes a checkpoint of the trainer's state and registers it (checkpoints row, and the
// fine-tuned model's row pointing at it).
static int save_checkpoint(job_ctx *c, trainer *t, const model *base, const cJSON *metrics, trl_err *e) {
    char dir[1200], name[600];
    snprintf(dir, sizeof(dir), "%s/step-%d", c->job_dir, t->step);
    cJSON *cj = train_config_to_json(&t->cfg);
    char *cfg_s = cJSON_PrintUnformatted(cj), *mx_s = metrics ? cJSON_PrintUnformatted(metrics) : NULL;
    cJSON_Delete(cj);
    checkpoint_state st = {t->step, t->trained_tokens, t->cfg.seed, cfg_s, mx_s};
    int rc = checkpoint_save(dir, base, &t->p, &t->m, &t->v, &st, e);
    free(cfg_s), free(mx_s);
    if (rc) return TRL_ERR;
    // Only the newest checkpoint keeps its optimizer state (the only one a resume reads).
    if (c->last_ckpt_step > 0 && c->last_ckpt_step != t->step) {
        char old[1300];
        snprintf(old, sizeof(old), "%s/step-%d/optimizer.safetensors", c->job_dir, c->last_ckpt_step);
        unlink(old);
    }
    c->last_ckpt_step = t->step;
    snprintf(name, sizeof(name), "%s:ckpt-step-%d", c->ft_name, t->step);
    char *mj = metrics ? cJSON_PrintUnformatted(metrics) : NULL;
    store_checkpoint_new in = {t->step, mj, dir, name};
    rc = store_checkpoint_add(c->s, c->j->id, c->worker_id, &in, NULL, e);
    free(mj);
    if (rc == TRL_CONFLICT) rc = TRL_OK;  // resumed past a step already recorded
    if (rc) return rc;
    store_model_new mn = {c->ft_name, "fine-tuned", c->j->model, c->j->id, dir, NULL};  // the job's project
    return store_model_upsert(c->s, &mn, e);
}

// ---- an evaluation run ----------------------------------------------------------------------

typedef struct {
    job_ctx *c;
    job_watch *w;
    double t0, last_event;
} eval_progress;

// Progress of an evaluation: the job's step/total (sent by the heartbeat) and, every 30 s, an
// event with the rate.
static void eval_on_progress(void *ctx, int done, int total) {
    eval_progress *p = ctx;
    atomic_store(&p->w->step, done);
    atomic_store(&p->w->total, total);
    double now = trl_now();
    if (done == 0) p->t0 = p->last_event = now;
    if (done > 0 && (now - p->last_event >= 30 || done == total)) {
        char msg[160];
        snprintf(msg, sizeof(msg), "Evaluated %d/%d examples (%.2f examples/s)", done, total,
                 now > p->t0 ? done / (now - p->t0) : 0.0);
        event(p->c, "info", "message", msg, NULL);
        p->last_event = now;
    }
}

// method eval: method_config {"suite", "categories" (array or null), "limit", "max_tokens"}
// (validated by the API). The model is the one named by the job, quantized to Q8_0 when its
// weights are fp32, as the server serves fine-tuned models. Results go to eval_results with the
// job's id, the report to <out_dir>/<job id>/report.json. A cancel or a lost lease stops it
// within one decoding step; a run cut by a stopping worker starts over when requeued.
static void run_eval_job(job_ctx *c) {
    trl_err e = {{0}};
    store_job *j = c->j;
    char model_path[1024], cats[1024] = "", msg[1024];
    snprintf(c->job_dir, sizeof(c->job_dir), "%s/%s", c->cfg->out_dir, j->id);
    if (resolve_model(c, model_path, sizeof(model_path))) {
        snprintf(msg, sizeof(msg), "The model `%.300s` does not exist", j->model);
        fail(c, "model_not_found", msg, "model");
        return;
    }
    cJSON *mc = j->method_config ? cJSON_Parse(j->method_config) : NULL;
    const cJSON *suite = cJSON_GetObjectItem(mc, "suite"), *cl = cJSON_GetObjectItem(mc, "categories");
    const cJSON *lim = cJSON_GetObjectItem(mc, "limit"), *mt = cJSON_GetObjectItem(mc, "max_tokens");
    const cJSON *x;
    cJSON_ArrayForEach(x, cl) {
        if (!cJSON_IsString(x)) continue;
        size_t n = strlen(cats);
        snprintf(cats + n, sizeof(cats) - n, "%s%s", n ? "," : "", x->valuestring);
    }
    eval_opts o = {.suite = cJSON_IsString(suite) ? suite->valuestring : "bfcl",
                   .categories = cats[0] ? cats : NULL,
                   .limit = cJSON_IsNumber(lim) ? lim->valueint : 0,
                   .batch = 8,
                   .max_new = cJSON_IsNumber(mt) ? mt->valueint : 256,
                   .n_ctx = 4096,
                   .progress = eval_on_progress,
                   .be = c->cfg->eval_be};
    model m;
    if (model_load(&m, model_path, &e)) {
        cJSON_Delete(mc);
        fail(c, "model_load_failed", e.msg, "model");
        return;
    }
    if (m.layers[0].wq.type == QTYPE_F32 && model_quantize(&m, QTYPE_Q8_0, &e)) {
        cJSON_Delete(mc), model_free(&m);
        fail(c, "model_load_failed", e.msg, "model");
        return;
    }
    if (trl_mkdirs(c->job_dir, &e)) {
        cJSON_Delete(mc), model_free(&m);
        fail(c, "eval_error", "cannot create the job's directory", NULL);
        return;
    }
    job_watch w = {0};
    w.cfg = c->cfg;
    w.worker_id = c->worker_id;
    snprintf(w.job_id, sizeof(w.job_id), "%s", j->id);
    eval_progress ep = {c, &w, 0, 0};
    o.abort = &w.abort;
    o.ctx = &ep;
    snprintf(msg, sizeof(msg), "Evaluation started: %s on %s%s%s", o.suite, j->model, o.categories ? ", categories " : "",
             o.categories ? o.categories : "");
    event(c, "info", "message", msg, mc);
    pthread_create(&w.th, NULL, heartbeat_main, &w);
    eval_run r;
    int rc = eval_run_all(&r, &m, &o, &e);
    atomic_store(&w.quit, 1);
    pthread_join(w.th, NULL);
    char report[1100];
    snprintf(report, sizeof(report), "%s/report.json", c->job_dir);
    if (rc == TRL_OK && !atomic_load(&w.lost) && !atomic_load(&w.cancel)) {
        if (eval_run_report(&r, report, j->model, &e) || eval_run_store(&r, c->s, j->model, report, j->id, &e)) {
            fail(c, "eval_error", e.msg, NULL);
        } else {
            cJSON *res = cJSON_CreateObject();
            for (size_t k = 0; k < r.nres; k++)
                cJSON_AddNumberToObject(res, r.res[k].category, (double)r.res[k].correct / (double)r.res[k].total);
            if (r.is_bfcl && r.sum.overall >= 0) cJSON_AddNumberToObject(res, "overall", r.sum.overall);
            snprintf(msg, sizeof(msg), "Evaluation finished: %d examples", eval_run_count(&r));
            event(c, "info", "metrics", msg, res);
            cJSON_Delete(res);
            store_progress p = {eval_run_count(&r), eval_run_count(&r), -1};
            int cancel = 0;
            store_job_heartbeat(c->s, j->id, c->worker_id, c->cfg->lease_seconds > 0 ? c->cfg->lease_seconds : 60, &p,
                                &cancel, &e);
            if (store_job_finish(c->s, j->id, c->worker_id, "succeeded", NULL, NULL, &e) != TRL_OK)
                fprintf(stderr, "toolrl worker: %s: %s\n", j->id, e.msg);
            else fprintf(stderr, "toolrl worker: %s succeeded\n", j->id);
        }
    } else if (atomic_load(&w.lost)) {
        fprintf(stderr, "toolrl worker: %s: lease lost; stopped\n", j->id);
    } else if (atomic_load(&w.cancel)) {
        if (store_job_finish(c->s, j->id, c->worker_id, "cancelled", NULL, NULL, &e) != TRL_OK)
            fprintf(stderr, "toolrl worker: %s: %s\n", j->id, e.msg);
    } else if (rc == TRL_ABORTED) {
        fprintf(stderr, "toolrl worker: %s: stopping; the evaluation starts over when requeued\n", j->id);
    } else {
        fail(c, "eval_error", e.msg, NULL);
    }
    eval_run_free(&r);
    cJSON_Delete(mc);
    model_free(&m);
}

// The worker's side of trainer_run: progress for the heartbeat, a metrics event per step (a lost
// lease stops the run), a checkpoint with its event at each interval.
typedef struct {
    job_ctx *c;
    job_watch *w;
    const model *m;
} train_run;

static int job_on_step(void *ctx, trainer *t, cJSON *mx, trl_err *e) {
    (void)e;
    train_run *r = ctx;
    atomic_store(&r->w->step, t->step);
    atomic_store(&r->w->tokens, t->trained_tokens);
    int grpo = t->cfg.method == TRAIN_GRPO;
    const cJSON *rw = cJSON_GetObjectItem(mx, grpo ? "reward_mean" : "loss");
    char msg[256];
    snprintf(msg, sizeof(msg), "Step %d/%d: %s=%.4f", t->step, t->total_steps, grpo ? "reward_mean" : "loss",
             rw ? rw->valuedouble : 0.0);
    if (event(r->c, "info", "metrics", msg, mx) == TRL_LEASE_LOST) {
        r->w->abort = 1, atomic_store(&r->w->lost, 1);
        return TRL_ABORTED;
    }
    return TRL_OK;
}

static int job_on_checkpoint(void *ctx, trainer *t, const cJSON *mx, trl_err *e) {
    train_run *r = ctx;
    int rc = save_checkpoint(r->c, t, r->m, mx, e);
    if (rc != TRL_OK) return rc;
    char msg[64];
    snprintf(msg, sizeof(msg), "Checkpoint at step %d", t->step);
    event(r->c, "info", "message", msg, NULL);
    return TRL_OK;
}

static void run_job(job_ctx *c) {
    if (!strcmp(c->j->method, "eval")) {
        run_eval_job(c);
        return;
    }
    trl_err e = {{0}};
    store_job *j = c->j;
    char model_path[1024];
    worker_model_name(c->ft_name, sizeof(c->ft_name), j->model, j->suffix, j->id);
    snprintf(c->job_dir, sizeof(c->job_dir), "%s/%s", c->cfg->out_dir, j->id);
    if (resolve_model(c, model_path, sizeof(model_path))) {
        char m[512];
        snprintf(m, sizeof(m), "The model `%.300s` does not exist", j->model);
        fail(c, "model_not_found", m, "model");
        return;
    }
    store_file f = {0};
    if (store_file_get(c->s, j->training_file, &f, &e) != TRL_OK || !f.path) {
        store_file_clear(&f);
        fail(c, "invalid_training_file", "The training file does not exist", "training_file");
        return;
    }
    cJSON *hyper = cJSON_Parse(j->hyperparameters ? j->hyperparameters : "{}");
    cJSON *mc = j->method_config ? cJSON_Parse(j->method_config) : NULL;
    train_config cfg;
    int rc = train_config_from_json(&cfg, j->method, hyper, grader_of(mc), &e);
    cJSON_Delete(hyper);
    cJSON_Delete(mc);
    if (rc) {
        store_file_clear(&f);
        fail(c, "invalid_hyperparameters", e.msg, "hyperparameters");
        return;
    }
    if (j->seed) cfg.seed = (uint64_t)j->seed;
    model m;
    if (model_load(&m, model_path, &e)) {
        store_file_clear(&f);
        fail(c, "model_load_failed", e.msg, "model");
        return;
    }
    task_set ts;
    rc = task_set_load(&ts, f.path, &m, cfg.max_seq_tokens, &e);
    store_file_clear(&f);
    if (rc) {
        model_free(&m);
        fail(c, "invalid_training_file", e.msg, "training_file");
        return;
    }
    job_watch w = {0};
    w.cfg = c->cfg;
    w.worker_id = c->worker_id;
    snprintf(w.job_id, sizeof(w.job_id), "%s", j->id);
    trainer t;
    if (trainer_init(&t, &cfg, &m, &ts, NULL, &e)) {
        task_set_free(&ts), model_free(&m);
        fail(c, "training_error", e.msg, NULL);
        return;
    }
    t.abort = &w.abort;
    // Resume from the newest checkpoint, if this job has one.
    store_checkpoint last = {0};
    char msg[1024];
    if (store_checkpoint_latest(c->s, j->id, &last, &e) == TRL_OK) {
        checkpoint_state st;
        if (checkpoint_load(last.path, &m.cfg, &t.p, &t.m, &t.v, &st, &e) == TRL_OK && st.step <= t.total_steps) {
            t.step = st.step;
            t.trained_tokens = st.trained_tokens;
            c->last_ckpt_step = st.step;
            checkpoint_state_free(&st);
            snprintf(msg, sizeof(msg), "Resumed from checkpoint at step %d", t.step);
            event(c, "info", "message", msg, NULL);
        } else {
            snprintf(msg, sizeof(msg), "Could not resume from %.300s (%.300s); starting over", last.path, e.msg);
            event(c, "warn", "message", msg, NULL);
            trainer_free(&t);
            if (trainer_init(&t, &cfg, &m, &ts, NULL, &e)) {
                store_checkpoint_clear(&last), task_set_free(&ts), model_free(&m);
                fail(c, "training_error", e.msg, NULL);
                return;
            }
            t.abort = &w.abort;
        }
        store_checkpoint_clear(&last);
    }
    if (trl_mkdirs(c->job_dir, &e)) {
        trainer_free(&t), task_set_free(&ts), model_free(&m);
        fail(c, "training_error", "cannot create the checkpoint directory", NULL);
        return;
    }
    atomic_store(&w.total, t.total_steps);
    atomic_store(&w.step, t.step);
    cJSON *cj = train_config_to_json(&cfg);
    cJSON_AddNumberToObject(cj, "total_steps", t.total_steps);
    cJSON_AddNumberToObject(cj, "train_examples", t.n_train);
    cJSON_AddNumberToObject(cj, "held_out_examples", t.n_held);
    cJSON_AddNumberToObject(cj, "examples_too_long", ts.n_too_long);
    snprintf(msg, sizeof(msg), "Training started: %s, %d steps, %d examples (%d held out)", j->method, t.total_steps,
             t.n_train, t.n_held);
    event(c, "info", "message", msg, cj);
    cJSON_Delete(cj);
    pthread_create(&w.th, NULL, heartbeat_main, &w);
    train_run run = {.c = c, .w = &w, .m = &m};
    trainer_hooks hooks = {.ctx = &run, .on_step = job_on_step, .on_checkpoint = job_on_checkpoint};
    rc = trainer_run(&t, &hooks, &e);
    atomic_store(&w.quit, 1);
    pthread_join(w.th, NULL);
    if (rc == TRL_OK || atomic_load(&w.cancel)) {  // the final progress, before the status changes
        store_progress p = {t.step, t.total_steps, t.trained_tokens};
        int cancel = 0;
        store_job_heartbeat(c->s, j->id, c->worker_id, c->cfg->lease_seconds > 0 ? c->cfg->lease_seconds : 60, &p,
                            &cancel, &e);
    }
    if (rc == TRL_OK) {
        if (store_job_finish(c->s, j->id, c->worker_id, "succeeded", c->ft_name, NULL, &e) != TRL_OK)
            fprintf(stderr, "toolrl worker: %s: %s\n", j->id, e.msg);
        else fprintf(stderr, "toolrl worker: %s succeeded: %s\n", j->id, c->ft_name);
    } else if (atomic_load(&w.lost)) {
        fprintf(stderr, "toolrl worker: %s: lease lost; stopped\n", j->id);
    } else if (atomic_load(&w.cancel)) {
        if (store_job_finish(c->s, j->id, c->worker_id, "cancelled", NULL, NULL, &e) != TRL_OK)
            fprintf(stderr, "toolrl worker: %s: %s\n", j->id, e.msg);
        else fprintf(stderr, "toolrl worker: %s cancelled\n", j->id);
    } else if (rc == TRL_ABORTED) {
        // The worker is stopping: leave the job running; its lease runs out and it is requeued
        // to resume from its last checkpoint.
        fprintf(stderr, "toolrl worker: %s: stopping at step %d; the job resumes from its last checkpoint\n", j->id,
                t.step);
    } else {
        fail(c, "training_error", e.msg, NULL);
    }
    trainer_free(&t);
    task_set_free(&ts);
    model_free(&m);
}

int worker_run(const worker_config *cfg, trl_err *e) {
    char wid[160];
    if (cfg->worker_id) snprintf(wid, sizeof(wid), "%s", cfg->worker_id);
    else {
        char host[64] = "host";
        gethostname(host, sizeof(host) - 1);
        snprintf(wid, sizeof(wid), "%s-%d", host, (int)getpid());
    }
    store *s;
    if (store_open(&s, cfg->db_path, e)) return TRL_ERR;
    int jobs = 0, lease = cfg->lease_seconds > 0 ? cfg->lease_seconds : 60, poll = cfg->poll_ms > 0 ? cfg->poll_ms : 1000;
    fprintf(stderr, "toolrl worker: %s waiting for jobs in %s\n", wid, cfg->db_path);
    while (!(cfg->stop && *cfg->stop) && (cfg->max_jobs <= 0 || jobs < cfg->max_jobs)) {
        store_job j = {0};
        int rc = store_job_claim(s, wid, lease, &j, e);
        if (rc == TRL_NOT_FOUND) {
            sleep_ms(poll);
            continue;
        }
        if (rc != TRL_OK) {
            fprintf(stderr, "toolrl worker: claim: %s\n", e->msg);
            sleep_ms(poll);
            continue;
        }
        fprintf(stderr, "toolrl worker: claimed %s (%s on %s, attempt %d)\n", j.id, j.method, j.model, j.attempts);
        job_ctx c = {s, cfg, wid, &j, {0}, {0}, 0};
        run_job(&c);
        store_job_clear(&j);
        jobs++;
    }
    store_close(s);
    return TRL_OK;
}
