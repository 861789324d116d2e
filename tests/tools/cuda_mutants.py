#!/usr/bin/env python3
"""cuda_mutants.py: shows that tests/test_ops_cuda.c can fail. Each mutant is one plausible bug
in one kernel or op of model/ops_cuda.cu; for each, the script compiles the mutated source
against the CUDA emulation in a temporary folder (the tracked file is never touched), links it
with build/'s objects in place of build/tests/support/ops_cuda_emu.o, runs the test and expects
it to fail. One line per mutant; exit 1 if any survived.

Needs `make build/tests/test_ops_cuda` first. Not part of `make check` (a few seconds a mutant).
Usage: python3 tests/tools/cuda_mutants.py [NAME_SUBSTRING]"""
import glob
import os
import subprocess
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SRC = "model/ops_cuda.cu"

# (name, text in ops_cuda.cu, its replacement); each text must occur exactly once.
MUTANTS = [
    ("rmsnorm drops the weight", "ot[c] = xt[c] * s * w[c];", "ot[c] = xt[c] * s;"),
    ("block_sum drops the last warp", "return warp_sum(lane < nw ? part[lane] : 0.0f);",
     "return warp_sum(lane < nw - 1 ? part[lane] : 0.0f);"),
    ("warp_sum reduces half warps", "for (int o = 16; o > 0; o >>= 1) v += ", "for (int o = 8; o > 0; o >>= 1) v += "),
    ("block_max misses a barrier", "    v = warp_max(v);\n    __syncthreads();\n    if (lane == 0) part[warp] = v;\n    __syncthreads();",
     "    v = warp_max(v);\n    __syncthreads();\n    if (lane == 0) part[warp] = v;"),
    ("rope NEOX pairs off by one", "int a = neox ? i : 2 * i, b = neox ? i + half : 2 * i + 1;",
     "int a = neox ? i : 2 * i, b = neox ? i + half - (i > 0) : 2 * i + 1;"),
    ("rope table sin read as cos", "s = table[(size_t)pos[t] * HS + 2 * i + 1];", "s = table[(size_t)pos[t] * HS + 2 * i];"),
    ("rope angle exponent", "double ang = pos[t] * pow((double)theta, -2.0 * i / HS);",
     "double ang = pos[t] * pow((double)theta, -2.0 * (i + 1) / HS);"),
    ("swiglu sign", "out[i] = gate[i] / (1.0f + expf(-gate[i])) * up[i];", "out[i] = gate[i] / (1.0f + expf(gate[i])) * up[i];"),
    ("add overwrites", "if (i < n) x[i] += y[i];", "if (i < n) x[i] = y[i];"),
    ("add_bias wrong column", "if (i < n) x[i] += b[i % N];", "if (i < n) x[i] += b[i / N % N];"),
    ("kv_store values from keys", "vc[dst] = float_to_half(v[id]);", "vc[dst] = float_to_half(k[id]);"),
    ("kv_store position ignored", "layer, seq[t], h, pos[t]) + (size_t)i;", "layer, seq[t], h, t) + (size_t)i;"),
    ("kv_copy first head only", "int h = (int)(id / run % NKV), l = (int)(id / run / NKV);",
     "int h = 0, l = (int)(id / run / NKV);"),
    ("gather ignores idx", "out[(int64_t)i * C + c] = x[(int64_t)idx[i] * C + c];", "out[(int64_t)i * C + c] = x[(int64_t)i * C + c];"),
    ("gather rows in reverse (in place breaks)", "for (int i = 0; i < n; i++) out[(int64_t)i * C + c]",
     "for (int i = n - 1; i >= 0; i--) out[(int64_t)i * C + c]"),
    ("embed first id only", "const float *src = table + (int64_t)ids[blockIdx.x] * C;", "const float *src = table + (int64_t)ids[0] * C;"),
    ("matmul untransposed weights", "cublasSgemm(g_dev.blas, CUBLAS_OP_T, CUBLAS_OP_N,", "cublasSgemm(g_dev.blas, CUBLAS_OP_N, CUBLAS_OP_N,"),
    ("matmul wrong leading dimension", "K, &zero, y, N);", "K, &zero, y, N + 1);"),
    ("weights_prepare chunks overlap", "stage + r * K, K);\n        cuda_upload(d + r0 * K,", "stage + r * K, K);\n        cuda_upload(d + r0 * K / 2 * 2 + (r0 > 0),"),
    ("weights_prepare drops the bias", "bad |= !(L->bk = weight_upload(w, S->bk, kvd));", "bad |= !(L->bk = weight_upload(w, S->bq, kvd));"),
    ("alloc does not zero", "if (cudaMemset(p, 0, r ? r : 256) != cudaSuccess) {", "if (cudaMemset(p, 0, 0) != cudaSuccess) {"),
    ("attention not causal", "int h = blockIdx.x, t = blockIdx.y, tid = threadIdx.x, P = pos[t] + 1;",
     "int h = blockIdx.x, t = blockIdx.y, tid = threadIdx.x, P = pos[t] + 1 + (pos[t] + 1 < n_ctx);"),
    ("attention GQA mapping", "layer, seq[t], h / (NH / NKV), 0);", "layer, seq[t], h % NKV, 0);"),
    ("attention forgets the rescale", "float corr = expf(m - mn);", "float corr = m == -INFINITY ? 0.0f : 1.0f;"),
    ("attention misses a barrier", "        wts[tid] = e;  // block_sum's barriers: the previous chunk's readers are done\n        __syncthreads();",
     "        wts[tid] = e;  // block_sum's barriers: the previous chunk's readers are done"),
    ("attention upper dims from lower", "vh[(size_t)(p0 + j) * HS + tid + ATT_THREADS]", "vh[(size_t)(p0 + j) * HS + tid]"),
    ("attention scale", "1.0f / sqrtf((float)HS));", "1.0f / sqrtf((float)HS + 1.0f));"),
    ("error not kept", "    if (tl.err[0]) return;\n    va_list ap;", "    tl.err[0] = 0;\n    return;\n    va_list ap;"),
]


def sh(cmd, **kw):
    return subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, **kw)


def main():
    only = sys.argv[1] if len(sys.argv) > 1 else ""
    test_obj = os.path.join(ROOT, "build/tests/test_ops_cuda.o")
    if not os.path.exists(test_obj):
        sys.exit("cuda_mutants: run `make build/tests/test_ops_cuda` first")
    objs = [test_obj]
    objs += [o for o in glob.glob(os.path.join(ROOT, "build/tests/support/*.o")) if not o.endswith("/ops_cuda_emu.o")]
    for d in ("base", "protocol", "model", "server", "store", "data", "eval", "trainer"):
        objs += [o for o in glob.glob(os.path.join(ROOT, "build", d, "*.o")) if "/ops_cuda" not in o]
    ldlibs = sh(["make", "-s", "--eval", "print-ldlibs: ; @echo $(LDLIBS)", "print-ldlibs"]).stdout.split()
    src = open(os.path.join(ROOT, SRC)).read()
    survived = 0
    with tempfile.TemporaryDirectory() as tmp:
        for name, old, new in MUTANTS:
            if only and only not in name:
                continue
            if src.count(old) != 1:
                sys.exit(f"cuda_mutants: '{name}': the text occurs {src.count(old)} times in {SRC}")
            mut = os.path.join(tmp, "ops_cuda.cu")
            open(mut, "w").write(src.replace(old, new))
            obj, exe = os.path.join(tmp, "emu.o"), os.path.join(tmp, "test_ops_cuda")
            cc = sh(["g++", "-O1", "-g", "-std=c++20", "-D_GNU_SOURCE", "-fno-exceptions", "-fno-rtti", "-I.", "-x", "c++",
                     "-include", "tests/support/cuemu.h", "-DOPS_CUDA_STAGE_FLOATS=3000", "-c", mut, "-o", obj])
            if cc.returncode:
                sys.exit(f"cuda_mutants: '{name}' does not compile:\n{cc.stderr}")
            ln = sh(["gcc", "-fopenmp", *objs, obj, "-o", exe, *ldlibs, "-lcmocka", "-lstdc++"])
            if ln.returncode:
                sys.exit(f"cuda_mutants: link failed:\n{ln.stderr}")
            try:
                run = sh([exe], timeout=300)
                rc, out = run.returncode, run.stdout + run.stderr
            except subprocess.TimeoutExpired:
                rc, out = -1, "timed out"
            failed = [l.split("]", 1)[1].strip() for l in out.splitlines() if l.startswith("[  FAILED  ]") and "test(s)" not in l]
            if rc == 0:
                survived += 1
                print(f"SURVIVED  {name}")
            else:
                why = ", ".join(dict.fromkeys(failed)) if failed else f"exit {rc}"
                print(f"killed    {name}: {why}")
    print(f"{survived} of the mutants survived")
    sys.exit(1 if survived else 0)


if __name__ == "__main__":
    main()
