// registry.h: the models the server answers with, and their hot swap. The base model (from
// --model) is always resident. A fine-tuned model (a row of the store's models table, written
// by the worker, pointing at its newest checkpoint) is loaded on its first request. A watcher
// thread polls the store; when a resident fine-tuned model's row points at a newer checkpoint,
// the new weights are loaded beside the old ones with their own scheduler and swapped in:
// requests that arrive afterwards get the new weights, requests in flight finish on the old
// ones, which are freed when the last of them releases them. No restart, no request lost.
// Loading (reading, quantizing, a scheduler) happens outside the registry's lock: requests for
// any model, the base one included, go on while a checkpoint loads.
#ifndef TOOLRL_REGISTRY_H
#define TOOLRL_REGISTRY_H

#include <stdatomic.h>

#include "base/util.h"
#include "model/model.h"
#include "server/scheduler.h"

typedef struct served_model {
    char id[256];       // the name clients send as "model"
    char path[1024];    // where its weights came from
    model m;
    scheduler *sched;
    atomic_int refs;    // holders: the registry while current, plus each request using it
    int generation;     // 0 for the first load of this id, +1 per swap
    char failed_path[1024];  // a newer path that would not load (not retried until it changes)
    struct served_model *next;  // registry list
} served_model;

typedef struct registry registry;

typedef struct {
    const char *db_path;        // the job store (NULL: only the base model is served)
    scheduler_config sched;     // for every model's scheduler
    const char *quantize;       // NULL, or "q8_0": fine-tuned (F32) weights are quantized at load
    int poll_ms;                // watcher period (0: 1000)
    int max_resident;           // fine-tuned models kept loaded at once (0: 2)
    // May be NULL. Called in the loading thread just before a model's weights are read, with no
    // registry lock held (tests hold a load open with it to show requests are not blocked).
    void (*on_load)(void *ctx, const char *path);
    void *on_load_ctx;
} registry_config;

// Takes ownership of base (a loaded model, served as base_id; also matched by alias).
int registry_init(registry **out, const registry_config *cfg, model *base, const char *base_id, const char *alias,
                  trl_err *e);
void registry_free(registry *r);  // shuts every scheduler down first
// Ends every waiting or running request with an error and refuses new ones (before stopping
// the HTTP server, so its connection threads finish).
void registry_shutdown(registry *r);

// The current weights for a model id, with a reference the caller must release. NULL with
// *status 404 (no such model) or 500/503 (it exists but cannot be loaded), and a message.
served_model *registry_acquire(registry *r, const char *id, int *status, trl_err *e);
void registry_release(registry *r, served_model *sm);
// The base model (not referenced: it lives as long as the registry).
served_model *registry_base(registry *r);
// Checks the store now for newer checkpoints of resident models and swaps them in (the
// watcher calls this; tests may too). Returns the number of swaps.
int registry_refresh(registry *r, trl_err *e);
// Swaps and loads so far (for /metrics).
long registry_swaps(const registry *r);

#endif
