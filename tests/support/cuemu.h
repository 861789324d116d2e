// cuemu.h: CUDA on the host, for tests. Enough of the CUDA runtime, cuBLAS and the kernel
// language that model/ops_cuda.cu compiles unchanged with g++ (forced in with
// `-include tests/support/cuemu.h`, which also defines TOOLRL_CUEMU) and its kernels run on
// the CPU, to be compared with ops_ref (tests/test_ops_cuda.c). The kernel text is the text
// nvcc compiles; only the launch (LAUNCH in ops_cuda.cu) and the headers differ.
//
// How a launch runs (cuemu.cpp): the blocks one after another on the calling thread; a
// block's threads as ucontext fibers, each on its own stack, resumed in rounds (each runs until
// it waits at a barrier or returns; a fresh seeded shuffle of the order each round), so
// __syncthreads is a real barrier (a thread waits there until every thread of its block
// arrived) and a warp shuffle a real exchange among the 32 lanes of a warp. `__shared__` is
// `static`: one copy that the block's fibers share (blocks never overlap).
// What it checks, beyond running the code: a launch of more than 1024 threads a block or a
// zero dimension fails as on a GPU (cudaGetLastError); __syncthreads after a thread of the
// block returned, or a barrier that can never open (deadlock), aborts with a message;
// cudaMalloc'd memory starts as NaN bytes (0xff), never zero; cudaMemcpy checks its kind
// against which pointers are device allocations; cublasSgemm checks its leading dimensions
// and that every matrix it touches lies inside one device allocation (under ASan, kernels'
// own out-of-bounds accesses are caught as heap overflows).
// What it does not model: concurrency between blocks or warps (a data race that depends on
// timing is not found; one that depends on the order of threads between two barriers is,
// when the shuffle puts the reader first), the
// memory model and caches, streams and asynchrony (everything is synchronous), warp
// divergence (shuffles need all 32 lanes of a full warp, blockDim a multiple of 32), device
// arithmetic (host libm and FPU, no fused multiply-add unless the compiler contracts it; the
// fp16 conversions are quant.c's, round-to-nearest-even as __float2half_rn), cuBLAS's own
// algorithms (the emulated GEMM is a plain fp32 loop), and performance.
#ifndef TOOLRL_TESTS_CUEMU_H
#define TOOLRL_TESTS_CUEMU_H

#include <math.h>
#include <stddef.h>
#include <stdint.h>

#define TOOLRL_CUEMU 1

// ---------------------------------------------------------------------------- kernel language

#define __global__
#define __device__
#define __host__
#define __forceinline__ inline
#define __shared__ static
#define __launch_bounds__(...)

struct uint3 {
    unsigned x, y, z;
};
struct dim3 {
    unsigned x, y, z;
    dim3(unsigned x_ = 1, unsigned y_ = 1, unsigned z_ = 1) : x(x_), y(y_), z(z_) {}
};
// The running thread's coordinates (set by the scheduler before each switch into a fiber).
extern uint3 threadIdx, blockIdx;
extern dim3 blockDim, gridDim;

void __syncthreads(void);
// One exchange among the 32 lanes of the caller's warp: every lane gives v and gets lane src's.
uint64_t cuemu_warp_exchange(unsigned mask, uint64_t v, int src);
unsigned cuemu_lane(void);

template <typename V>
static inline V cuemu_shfl(unsigned mask, V v, int src) {
    static_assert(sizeof(V) <= sizeof(uint64_t), "shuffle of at most 8 bytes");
    uint64_t bits = 0;
    __builtin_memcpy(&bits, &v, sizeof(V));
    bits = cuemu_warp_exchange(mask, bits, src);
    V out;
    __builtin_memcpy(&out, &bits, sizeof(V));
    return out;
}
template <typename V>
static inline V __shfl_xor_sync(unsigned mask, V v, int lane_mask, int width = 32) {
    int lane = (int)cuemu_lane();
    int src = lane ^ lane_mask;
    if (src / width != lane / width) src = lane;  // outside the caller's segment: its own value
    return cuemu_shfl(mask, v, src);
}
template <typename V>
static inline V __shfl_down_sync(unsigned mask, V v, unsigned delta, int width = 32) {
    int lane = (int)cuemu_lane();
    int src = lane % width + (int)delta < width ? lane + (int)delta : lane;
    return cuemu_shfl(mask, v, src);
}
template <typename V>
static inline V __shfl_sync(unsigned mask, V v, int src_lane, int width = 32) {
    int lane = (int)cuemu_lane();
    return cuemu_shfl(mask, v, lane / width * width + src_lane % width);
}

// fp16: the bits, converted by quant.c (round to nearest even, as __float2half_rn).
extern "C" float fp16_to_fp32(uint16_t h);
extern "C" uint16_t fp32_to_fp16(float f);
struct __half {
    unsigned short x;
};
static inline float __half2float(__half h) { return fp16_to_fp32(h.x); }
static inline __half __float2half_rn(float f) { return __half{fp32_to_fp16(f)}; }
static inline unsigned short __half_as_ushort(__half h) { return h.x; }
static inline __half __ushort_as_half(unsigned short u) { return __half{u}; }

// A launch: LAUNCH(kernel, grid, block)(args...) runs every block and thread before it returns.
typedef void (*cuemu_body)(void *ctx);
void cuemu_run(dim3 grid, dim3 block, cuemu_body body, void *ctx);

template <typename... P>
struct cuemu_launch {
    dim3 grid, block;
    void (*kernel)(P...);
    template <typename... A>
    void operator()(A... a) const {
        auto call = [&]() { kernel(a...); };
        cuemu_run(grid, block, [](void *c) { (*static_cast<decltype(call) *>(c))(); }, &call);
    }
};
template <typename... P>
static inline cuemu_launch<P...> cuemu_launcher(dim3 grid, dim3 block, void (*kernel)(P...)) {
    return cuemu_launch<P...>{grid, block, kernel};
}
#define LAUNCH(kernel, grid, block) cuemu_launcher(dim3(grid), dim3(block), kernel)

// ---------------------------------------------------------------------------- runtime

typedef enum {
    cudaSuccess = 0,
    cudaErrorInvalidValue = 1,
    cudaErrorMemoryAllocation = 2,
    cudaErrorInvalidConfiguration = 9,
    cudaErrorNoDevice = 100,
    cudaErrorInvalidDevice = 101,
} cudaError_t;
typedef enum {
    cudaMemcpyHostToHost = 0,
    cudaMemcpyHostToDevice = 1,
    cudaMemcpyDeviceToHost = 2,
    cudaMemcpyDeviceToDevice = 3,
} cudaMemcpyKind;
struct cudaDeviceProp {
    char name[256];
    size_t totalGlobalMem;
    int major, minor, multiProcessorCount;
};

cudaError_t cudaGetDeviceCount(int *n);
cudaError_t cudaSetDevice(int dev);
cudaError_t cudaGetDeviceProperties(cudaDeviceProp *p, int dev);
cudaError_t cudaMalloc(void **p, size_t n);
cudaError_t cudaFree(void *p);
cudaError_t cudaMemcpy(void *dst, const void *src, size_t n, cudaMemcpyKind kind);
cudaError_t cudaMemset(void *p, int v, size_t n);
cudaError_t cudaDeviceSynchronize(void);
cudaError_t cudaGetLastError(void);
const char *cudaGetErrorString(cudaError_t e);

#include "tests/support/cuemu_hooks.h"  // the test hooks: device count, live allocations, launches

// ---------------------------------------------------------------------------- cuBLAS

typedef struct cuemu_blas *cublasHandle_t;
typedef enum {
    CUBLAS_STATUS_SUCCESS = 0,
    CUBLAS_STATUS_NOT_INITIALIZED = 1,
    CUBLAS_STATUS_ALLOC_FAILED = 3,
    CUBLAS_STATUS_INVALID_VALUE = 7,
} cublasStatus_t;
typedef enum { CUBLAS_OP_N = 0, CUBLAS_OP_T = 1 } cublasOperation_t;
typedef enum { CUBLAS_DEFAULT_MATH = 0 } cublasMath_t;

cublasStatus_t cublasCreate(cublasHandle_t *h);
cublasStatus_t cublasDestroy(cublasHandle_t h);
cublasStatus_t cublasSetMathMode(cublasHandle_t h, cublasMath_t mode);
// Column-major, as cuBLAS: C (m, n) = alpha·op(A)·op(B) + beta·C; C is not read when beta is 0.
cublasStatus_t cublasSgemm(cublasHandle_t h, cublasOperation_t ta, cublasOperation_t tb, int m, int n, int k,
                           const float *alpha, const float *A, int lda, const float *B, int ldb, const float *beta,
                           float *C, int ldc);

#endif
