// registry.c: resident models, lazy loading of fine-tuned ones, and the hot swap (see registry.h).
#include "server/registry.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "model/quant.h"
#include "store/store.h"

struct registry {
    registry_config cfg;
    pthread_mutex_t mu;   // guards the list, the store handle and the counters
    served_model *list;   // current models; the base model first
    char alias[256];
    store *db;            // used only under mu
    pthread_t watcher;
    int have_watcher;
    atomic_int quit;
    atomic_long swaps;
};

static void sm_free(served_model *sm) {
    scheduler_free(sm->sched);
    model_free(&sm->m);
    free(sm);
}

void registry_release(registry *r, served_model *sm) {
    (void)r;
    if (sm && atomic_fetch_sub(&sm->refs, 1) == 1) sm_free(sm);
}

// Reads a model and starts its scheduler. Touches only r->cfg (constant): call it without mu.
static served_model *sm_load(registry *r, const char *id, const char *path, trl_err *e) {
    served_model *sm = calloc(1, sizeof(*sm));
    if (!sm) return trl_errf(e, "out of memory"), NULL;
    snprintf(sm->id, sizeof(sm->id), "%s", id);
    snprintf(sm->path, sizeof(sm->path), "%s", path);
    if (r->cfg.on_load) r->cfg.on_load(r->cfg.on_load_ctx, path);
    if (model_load(&sm->m, path, e)) {
        free(sm);
        return NULL;
    }
    // checkpoints are F32; serve them at the quantized speed (Q8_0 keeps them closest)
    if (r->cfg.quantize && !strcmp(r->cfg.quantize, "q8_0") && model_quantize(&sm->m, QTYPE_Q8_0, e)) {
        model_free(&sm->m);
        free(sm);
        return NULL;
    }
    scheduler_config sc = r->cfg.sched;
    if (sc.n_ctx > sm->m.cfg.n_ctx && sm->m.cfg.n_ctx > 0) sc.n_ctx = sm->m.cfg.n_ctx;
    if (scheduler_init(&sm->sched, &sm->m, &sc, e)) {
        model_free(&sm->m);
        free(sm);
        return NULL;
    }
    atomic_store(&sm->refs, 1);  // the registry's
    return sm;
}

static void *watcher_main(void *arg) {
    registry *r = arg;
    int period = r->cfg.poll_ms > 0 ? r->cfg.poll_ms : 1000;
    while (!atomic_load(&r->quit)) {
        for (int w = 0; w < period && !atomic_load(&r->quit); w += 50) {
            struct timespec ts = {0, 50 * 1000000L};
            nanosleep(&ts, NULL);
        }
        if (atomic_load(&r->quit)) break;
        trl_err e = {{0}};
        if (registry_refresh(r, &e) < 0) fprintf(stderr, "toolrl serve: model refresh: %s\n", e.msg);
    }
    return NULL;
}

int registry_init(registry **out, const registry_config *cfg, model *base, const char *base_id, const char *alias,
                  trl_err *e) {
    registry *r = calloc(1, sizeof(*r));
    served_model *sm = calloc(1, sizeof(*sm));
    if (!r || !sm) {
        free(r), free(sm);
        return trl_errf(e, "out of memory");
    }
    r->cfg = *cfg;
    pthread_mutex_init(&r->mu, NULL);
    snprintf(r->alias, sizeof(r->alias), "%s", alias ? alias : "");
    snprintf(sm->id, sizeof(sm->id), "%s", base_id);
    sm->m = *base;
    memset(base, 0, sizeof(*base));
    scheduler_config sc = cfg->sched;
    if (sc.n_ctx > sm->m.cfg.n_ctx && sm->m.cfg.n_ctx > 0) sc.n_ctx = sm->m.cfg.n_ctx;
    if (scheduler_init(&sm->sched, &sm->m, &sc, e)) {
        *base = sm->m;  // give it back
        free(sm), free(r);
        return TRL_ERR;
    }
    atomic_store(&sm->refs, 1);
    r->list = sm;
    if (cfg->db_path) {
        if (store_open(&r->db, cfg->db_path, e)) {
            registry_free(r);
            return TRL_ERR;
        }
        if (pthread_create(&r->watcher, NULL, watcher_main, r) == 0) r->have_watcher = 1;
    }
    *out = r;
    return TRL_OK;
}

void registry_free(registry *r) {
    if (!r) return;
    atomic_store(&r->quit, 1);
    if (r->have_watcher) pthread_join(r->watcher, NULL);
    for (served_model *sm = r->list; sm; sm = sm->next) scheduler_shutdown(sm->sched);
    served_model *sm = r->list;
    while (sm) {
        served_model *n = sm->next;
        registry_release(r, sm);
        sm = n;
    }
    store_close(r->db);
    pthread_mutex_destroy(&r->mu);
    free(r);
}

served_model *registry_base(registry *r) { return r->list; }

void registry_shutdown(registry *r) {
    atomic_store(&r->quit, 1);
    pthread_mutex_lock(&r->mu);
    for (served_model *sm = r->list; sm; sm = sm->next) scheduler_shutdown(sm->sched);
    pthread_mutex_unlock(&r->mu);
}

long registry_swaps(const registry *r) { return atomic_load(&r->swaps); }

static served_model *find(registry *r, const char *id) {
    for (served_model *sm = r->list; sm; sm = sm->next)
        if (!strcmp(sm->id, id)) return sm;
    if (r->alias[0] && !strcmp(id, r->alias)) return r->list;
    return NULL;
}

// Drops least-recently-loaded fine-tuned models beyond max_resident (their in-flight
// requests keep them alive until they finish). Called under mu.
static void evict(registry *r) {
    int max = r->cfg.max_resident > 0 ? r->cfg.max_resident : 2, n = 0;
    for (served_model *sm = r->list->next; sm; sm = sm->next) n++;
    while (n > max) {
        // the list is in load order after the base: drop the oldest
        served_model *old = r->list->next;
        r->list->next = old->next;
        registry_release(r, old);
        n--;
    }
}

served_model *registry_acquire(registry *r, const char *id, int *status, trl_err *e) {
    pthread_mutex_lock(&r->mu);
    served_model *sm = find(r, id);
    if (sm) {
        atomic_fetch_add(&sm->refs, 1);
        pthread_mutex_unlock(&r->mu);
        return sm;
    }
    store_model row = {0};
    int rc = r->db ? store_model_get(r->db, id, &row, e) : TRL_NOT_FOUND;
    pthread_mutex_unlock(&r->mu);
    if (rc != TRL_OK) {
        *status = rc == TRL_NOT_FOUND ? 404 : 500;
        trl_errf(e, "The model `%.200s` does not exist or you do not have access to it.", id);
        return NULL;
    }
    served_model *nw = sm_load(r, row.id, row.path, e);  // unlocked: other requests go on
    store_model_clear(&row);
    if (!nw) {
        *status = 503;
        return NULL;
    }
    pthread_mutex_lock(&r->mu);
    sm = find(r, id);
    if (sm) {  // another request loaded it meanwhile: use that one, drop ours
        atomic_fetch_add(&sm->refs, 1);
        pthread_mutex_unlock(&r->mu);
        registry_release(r, nw);
        return sm;
    }
    served_model **tail = &r->list;
    while (*tail) tail = &(*tail)->next;
    *tail = nw;
    atomic_fetch_add(&nw->refs, 1);  // the caller's
    evict(r);
    pthread_mutex_unlock(&r->mu);
    return nw;
}

// A resident model whose store row points somewhere new.
typedef struct {
    char id[256], path[1024];
    int generation;
} pending_swap;

int registry_refresh(registry *r, trl_err *e) {
    if (!r->db) return 0;
    // 1. Under the lock: which resident models have a newer checkpoint (store reads are quick).
    pending_swap *todo = NULL;
    int n = 0, cap = 0, swaps = 0;
    pthread_mutex_lock(&r->mu);
    for (served_model *cur = r->list->next; cur; cur = cur->next) {
        store_model row = {0};
        if (store_model_get(r->db, cur->id, &row, e) != TRL_OK) continue;
        if (strcmp(row.path, cur->path) != 0 && strcmp(row.path, cur->failed_path) != 0) {
            if (n == cap) {
                int nc = cap ? 2 * cap : 4;
                pending_swap *t = realloc(todo, sizeof(*todo) * (size_t)nc);
                if (!t) {
                    store_model_clear(&row);
                    break;
                }
                todo = t, cap = nc;
            }
            snprintf(todo[n].id, sizeof(todo[n].id), "%s", cur->id);
            snprintf(todo[n].path, sizeof(todo[n].path), "%s", row.path);
            todo[n++].generation = cur->generation + 1;
        }
        store_model_clear(&row);
    }
    pthread_mutex_unlock(&r->mu);
    // 2. Without it: load each, then swap it in if the model is still resident and not already
    //    on that checkpoint (a concurrent refresh may have got there first).
    for (int i = 0; i < n; i++) {
        served_model *nw = sm_load(r, todo[i].id, todo[i].path, e);
        pthread_mutex_lock(&r->mu);
        served_model **pp = &r->list->next;
        while (*pp && strcmp((*pp)->id, todo[i].id) != 0) pp = &(*pp)->next;
        served_model *cur = *pp;
        if (!nw) {
            if (cur) snprintf(cur->failed_path, sizeof(cur->failed_path), "%s", todo[i].path);
            fprintf(stderr, "toolrl serve: cannot load %s from %s: %s\n", todo[i].id, todo[i].path, e->msg);
        } else if (cur && strcmp(cur->path, todo[i].path) != 0) {
            nw->generation = todo[i].generation;
            nw->next = cur->next;
            *pp = nw;
            registry_release(r, cur);  // in-flight requests keep the old weights alive
            nw = NULL;
            atomic_fetch_add(&r->swaps, 1);
            swaps++;
        }
        pthread_mutex_unlock(&r->mu);
        if (nw) registry_release(r, nw);  // evicted or swapped meanwhile: not needed
    }
    free(todo);
    return swaps;
}
