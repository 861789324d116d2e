// cuemu.cpp: the host emulation of cuemu.h: the fiber scheduler behind a launch (blocks in
// turn, a block's threads as ucontext fibers resumed in a shuffled order each round until
// each waits at a barrier or returns), barriers and warp exchanges, a tracked device
// heap, and cuBLAS's SGEMM as a plain loop with cuBLAS's argument checks.
#include "tests/support/cuemu.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <ucontext.h>

#if defined(__SANITIZE_ADDRESS__)
#include <sanitizer/common_interface_defs.h>
#define CUEMU_ASAN 1
#else
#define CUEMU_ASAN 0
#endif

uint3 threadIdx, blockIdx;
dim3 blockDim, gridDim;

[[noreturn]] static void die(const char *what) {
    fprintf(stderr, "cuemu: %s (block %u,%u,%u thread %u,%u,%u)\n", what, blockIdx.x, blockIdx.y, blockIdx.z,
            threadIdx.x, threadIdx.y, threadIdx.z);
    abort();
}

// ---------------------------------------------------------------------------- fibers

#define MAX_THREADS 1024
#define STACK_BYTES (256 * 1024)

struct fiber {
    ucontext_t ctx;
    char *stack;  // STACK_BYTES, kept between launches
    uint3 idx;
    int done;
    void *fake_stack;  // ASan's bookkeeping for this fiber's switches
};

struct group {  // a barrier: the threads of a block, or the lanes of a warp
    int n, arrived;
    unsigned gen;
};

static struct {
    fiber th[MAX_THREADS];
    int n, cur, exited;
    long progress;  // arrivals, releases and exits: a round without any is a deadlock
    group block;
    group warp[MAX_THREADS / 32];
    uint64_t slot[MAX_THREADS];  // warp exchange values, by linear thread id
    int order[MAX_THREADS];      // this round's order of resumption
    ucontext_t sched;
    void *sched_fake;
    const void *sched_bottom;
    size_t sched_size;
    cuemu_body body;
    void *ctx;
    long launches;
} S;

static unsigned linear_id(void) { return threadIdx.x + blockDim.x * (threadIdx.y + blockDim.y * threadIdx.z); }

unsigned cuemu_lane(void) { return linear_id() % 32; }

// Back to the scheduler; returns when this fiber is next resumed.
static void yield(void) {
    fiber *f = &S.th[S.cur];
#if CUEMU_ASAN
    __sanitizer_start_switch_fiber(&f->fake_stack, S.sched_bottom, S.sched_size);
#endif
    swapcontext(&f->ctx, &S.sched);
#if CUEMU_ASAN
    __sanitizer_finish_switch_fiber(f->fake_stack, NULL, NULL);
#endif
}

// Waits until all g->n members arrived (the last one opens the barrier and goes on).
static void barrier(group *g) {
    S.progress++;
    if (++g->arrived == g->n) {
        g->arrived = 0;
        g->gen++;
        return;
    }
    unsigned gen = g->gen;
    while (g->gen == gen) yield();
}

void __syncthreads(void) {
    if (S.exited) die("__syncthreads after a thread of the block returned (a divergent barrier)");
    barrier(&S.block);
}

uint64_t cuemu_warp_exchange(unsigned mask, uint64_t v, int src) {
    unsigned id = linear_id(), w = id / 32;
    if (mask != 0xffffffffu) die("warp shuffle with a partial mask (not emulated)");
    if (S.warp[w].n != 32) die("warp shuffle in a partial warp (blockDim not a multiple of 32)");
    if (src < 0 || src >= 32) die("warp shuffle source lane out of range");
    S.slot[id] = v;
    barrier(&S.warp[w]);
    uint64_t out = S.slot[w * 32 + (unsigned)src];
    barrier(&S.warp[w]);  // every lane has read before a next exchange overwrites the slots
    return out;
}

static void fiber_main(void) {
#if CUEMU_ASAN
    __sanitizer_finish_switch_fiber(NULL, &S.sched_bottom, &S.sched_size);
#endif
    S.body(S.ctx);
    fiber *f = &S.th[S.cur];
    f->done = 1;
    S.exited++;
    S.progress++;
    if (S.block.arrived) die("a thread returned while others wait at __syncthreads (a divergent barrier)");
#if CUEMU_ASAN
    __sanitizer_start_switch_fiber(NULL, S.sched_bottom, S.sched_size);
#endif
    swapcontext(&f->ctx, &S.sched);  // never resumed
    abort();
}

// A fresh order of the block's n threads for each round (xorshift, seeded once: runs repeat),
// so that a missing barrier shows whichever of two threads it lets run first.
static void shuffle(int *order, int n) {
    static uint64_t x = 0x2545f4914f6cdd1dull;
    for (int i = 0; i < n; i++) order[i] = i;
    for (int i = n - 1; i > 0; i--) {
        x ^= x << 13, x ^= x >> 7, x ^= x << 17;
        int j = (int)(x % (uint64_t)(i + 1)), t = order[i];
        order[i] = order[j], order[j] = t;
    }
}

// Makes thread i of the block a fresh fiber at fiber_main (getcontext returns twice: its own
// function, like resume).
__attribute__((noinline)) static void fiber_init(int i) {
    fiber *f = &S.th[i];
    if (!f->stack) {
        f->stack = (char *)mmap(NULL, STACK_BYTES, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        if (f->stack == MAP_FAILED) die("out of memory for fiber stacks");
    }
    unsigned id = (unsigned)i;
    f->idx = uint3{id % blockDim.x, id / blockDim.x % blockDim.y, id / (blockDim.x * blockDim.y)};
    f->done = 0;
    getcontext(&f->ctx);
    f->ctx.uc_stack.ss_sp = f->stack;
    f->ctx.uc_stack.ss_size = STACK_BYTES;
    f->ctx.uc_link = NULL;
    makecontext(&f->ctx, fiber_main, 0);
}

// Runs thread i until it waits at a barrier or returns. Its own function, so that no local of
// the scheduler's loop lives across swapcontext (which returns twice, as setjmp does).
__attribute__((noinline)) static void resume(int i) {
    fiber *f = &S.th[i];
    S.cur = i;
    threadIdx = f->idx;
#if CUEMU_ASAN
    __sanitizer_start_switch_fiber(&S.sched_fake, f->stack, STACK_BYTES);
#endif
    swapcontext(&S.sched, &f->ctx);
#if CUEMU_ASAN
    __sanitizer_finish_switch_fiber(S.sched_fake, NULL, NULL);
#endif
}

static void run_block(void) {
    int n = S.n;
    S.exited = 0;
    S.block = group{n, 0, 0};
    for (int w = 0; w < (n + 31) / 32; w++) S.warp[w] = group{n - 32 * w < 32 ? n - 32 * w : 32, 0, 0};
    for (int i = 0; i < n; i++) fiber_init(i);
    for (int live = n; live > 0;) {
        long before = S.progress;
        shuffle(S.order, n);
        for (int k = 0; k < n; k++) {
            int i = S.order[k];
            if (S.th[i].done) continue;
            resume(i);
            if (S.th[i].done) live--;
        }
        if (live > 0 && S.progress == before) die("deadlock: every live thread waits at a barrier that cannot open");
    }
}

static cudaError_t g_last;  // the sticky-until-read launch error (cudaGetLastError)

void cuemu_run(dim3 grid, dim3 block, cuemu_body body, void *ctx) {
    unsigned long n = (unsigned long)block.x * block.y * block.z;
    if (n == 0 || n > MAX_THREADS || grid.x == 0 || grid.y == 0 || grid.z == 0 || grid.y > 65535 || grid.z > 65535 ||
        block.z > 64) {
        g_last = cudaErrorInvalidConfiguration;
        return;
    }
    S.launches++;
    S.n = (int)n, S.body = body, S.ctx = ctx;
    gridDim = grid, blockDim = block;
    for (unsigned z = 0; z < grid.z; z++)
        for (unsigned y = 0; y < grid.y; y++)
            for (unsigned x = 0; x < grid.x; x++) {
                blockIdx = uint3{x, y, z};
                run_block();
            }
}

// ---------------------------------------------------------------------------- runtime

static int g_devices = 1;

#define MAX_ALLOCS 65536
static struct {
    char *p;
    size_t n;
} g_alloc[MAX_ALLOCS];
static int g_nalloc;

extern "C" void cuemu_set_device_count(int n) { g_devices = n; }
extern "C" int cuemu_live_allocations(void) { return g_nalloc; }
extern "C" long cuemu_launches(void) { return S.launches; }

// 1 when [p, p + n) lies inside one device allocation.
static int dev_range(const void *p, size_t n) {
    const char *c = (const char *)p;
    for (int i = 0; i < g_nalloc; i++)
        if (c >= g_alloc[i].p && c <= g_alloc[i].p + g_alloc[i].n && n <= (size_t)(g_alloc[i].p + g_alloc[i].n - c))
            return 1;
    return 0;
}

cudaError_t cudaGetDeviceCount(int *n) {
    *n = g_devices;
    return g_devices > 0 ? cudaSuccess : cudaErrorNoDevice;
}

cudaError_t cudaSetDevice(int dev) { return dev >= 0 && dev < g_devices ? cudaSuccess : cudaErrorInvalidDevice; }

cudaError_t cudaGetDeviceProperties(cudaDeviceProp *p, int dev) {
    if (dev < 0 || dev >= g_devices) return cudaErrorInvalidDevice;
    memset(p, 0, sizeof(*p));
    snprintf(p->name, sizeof(p->name), "cuemu (host emulation)");
    p->totalGlobalMem = (size_t)1 << 30;
    p->major = 9, p->minor = 0, p->multiProcessorCount = 1;
    return cudaSuccess;
}

cudaError_t cudaMalloc(void **p, size_t n) {
    void *q = NULL;
    if (g_nalloc == MAX_ALLOCS || posix_memalign(&q, 256, n ? n : 1)) return cudaErrorMemoryAllocation;
    memset(q, 0xff, n);  // NaN bytes: device memory is never zeroed for you
    g_alloc[g_nalloc].p = (char *)q, g_alloc[g_nalloc++].n = n;
    *p = q;
    return cudaSuccess;
}

cudaError_t cudaFree(void *p) {
    if (!p) return cudaSuccess;
    for (int i = 0; i < g_nalloc; i++)
        if (g_alloc[i].p == p) {
            free(p);
            g_alloc[i] = g_alloc[--g_nalloc];
            return cudaSuccess;
        }
    return cudaErrorInvalidValue;
}

cudaError_t cudaMemcpy(void *dst, const void *src, size_t n, cudaMemcpyKind kind) {
    int dd = dev_range(dst, n), sd = dev_range(src, n);
    int ok = (kind == cudaMemcpyHostToDevice && dd && !sd) || (kind == cudaMemcpyDeviceToHost && !dd && sd) ||
             (kind == cudaMemcpyDeviceToDevice && dd && sd) || (kind == cudaMemcpyHostToHost && !dd && !sd);
    if (!ok) return cudaErrorInvalidValue;
    if (n) memmove(dst, src, n);
    return cudaSuccess;
}

cudaError_t cudaMemset(void *p, int v, size_t n) {
    if (!dev_range(p, n)) return cudaErrorInvalidValue;
    memset(p, v, n);
    return cudaSuccess;
}

cudaError_t cudaDeviceSynchronize(void) { return cudaSuccess; }

cudaError_t cudaGetLastError(void) {
    cudaError_t e = g_last;
    g_last = cudaSuccess;
    return e;
}

const char *cudaGetErrorString(cudaError_t e) {
    switch (e) {
    case cudaSuccess: return "no error";
    case cudaErrorInvalidValue: return "invalid argument";
    case cudaErrorMemoryAllocation: return "out of memory";
    case cudaErrorInvalidConfiguration: return "invalid configuration argument";
    case cudaErrorNoDevice: return "no CUDA-capable device is detected";
    case cudaErrorInvalidDevice: return "invalid device ordinal";
    }
    return "unknown error";
}

// ---------------------------------------------------------------------------- cuBLAS

struct cuemu_blas {
    int live;
};

cublasStatus_t cublasCreate(cublasHandle_t *h) {
    *h = (cublasHandle_t)calloc(1, sizeof(cuemu_blas));
    if (!*h) return CUBLAS_STATUS_ALLOC_FAILED;
    (*h)->live = 1;
    return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t cublasDestroy(cublasHandle_t h) {
    free(h);
    return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t cublasSetMathMode(cublasHandle_t h, cublasMath_t mode) {
    (void)mode;
    return h ? CUBLAS_STATUS_SUCCESS : CUBLAS_STATUS_NOT_INITIALIZED;
}

// A column-major matrix of `rows` x `cols` with leading dimension ld inside one allocation.
static int dev_matrix(const float *p, int rows, int cols, int ld) {
    if (rows == 0 || cols == 0) return 1;
    return dev_range(p, sizeof(float) * ((size_t)(cols - 1) * (size_t)ld + (size_t)rows));
}

cublasStatus_t cublasSgemm(cublasHandle_t h, cublasOperation_t ta, cublasOperation_t tb, int m, int n, int k,
                           const float *alpha, const float *A, int lda, const float *B, int ldb, const float *beta,
                           float *C, int ldc) {
    if (!h || !h->live) return CUBLAS_STATUS_NOT_INITIALIZED;
    int ar = ta == CUBLAS_OP_N ? m : k, ac = ta == CUBLAS_OP_N ? k : m;  // A as stored
    int br = tb == CUBLAS_OP_N ? k : n, bc = tb == CUBLAS_OP_N ? n : k;  // B as stored
    if (m < 0 || n < 0 || k < 0 || lda < (ar > 1 ? ar : 1) || ldb < (br > 1 ? br : 1) || ldc < (m > 1 ? m : 1))
        return CUBLAS_STATUS_INVALID_VALUE;
    if (!dev_matrix(A, ar, ac, lda) || !dev_matrix(B, br, bc, ldb) || !dev_matrix(C, m, n, ldc))
        return CUBLAS_STATUS_INVALID_VALUE;  // cuBLAS would fault; here it is an error the test sees
    for (int j = 0; j < n; j++)
        for (int i = 0; i < m; i++) {
            float acc = 0.0f;
            for (int l = 0; l < k; l++) {
                float a = ta == CUBLAS_OP_N ? A[i + (size_t)l * lda] : A[l + (size_t)i * lda];
                float b = tb == CUBLAS_OP_N ? B[l + (size_t)j * ldb] : B[j + (size_t)l * ldb];
                acc += a * b;
            }
            float *c = &C[i + (size_t)j * ldc];
            *c = *beta == 0.0f ? *alpha * acc : *alpha * acc + *beta * *c;
        }
    return CUBLAS_STATUS_SUCCESS;
}
