#!/usr/bin/env python3
"""Speed of the peer, llama.cpp (PyPI `llama-cpp-python`, low-level ctypes API), on a GGUF.

Prints ONE JSON line on stdout (the same keys `toolrl bench` prints):

  {"engine":"llama.cpp","version":"<llama-cpp-python> (ggml <commit>)","threads":2,
   "prompt_tokens":P,"prefill_tps":...,"gen_tokens":N,"decode_tps":..., ...extras}

What is timed (model load and context creation are not):
  prefill  one llama_decode of the whole P-token prompt (logits for the last token only),
           on a fresh (cleared) KV cache; one warm-up run, then best of --reps.
           prefill_tps = P / seconds.
  decode   after prefilling the same prompt (untimed), N tokens generated one per
           llama_decode at positions P..P+N-1, greedy (numpy argmax of the logits,
           fed back); fresh KV cache each rep; best of --reps. decode_tps = N / seconds.

Python overhead: the Python work per generated token (numpy argmax over the 49152 logits,
two writes into the llama_batch) is timed separately and reported as
"py_overhead_us_per_token" / "py_overhead_pct" (share of the decode wall time). On the
2-core dev VM (AMD EPYC, AVX2) with SmolLM2-135M Q4_1, 14 runs: 30-48 us per token
(median 39 us; 72 us in one run under outside CPU load), 0.26-0.47 % of a decode step. "c_decode_tps" is llama.cpp's own
llama_perf_context timing of the same tokens (from the start of each llama_decode to the
end of the following llama_synchronize, so no Python in it); decode_tps is 0.5-1 % below
it, which bounds ALL Python + ctypes overhead per token. The prefill is one llama_decode
call per rep (the batch is filled before the clock starts), so its overhead is negligible.

Prompt: deterministic token ids, a fixed English paragraph tokenized (no BOS) and repeated
until it is at least P tokens long, then truncated to P.

Defaults are llama.cpp's own context defaults (flash attention "auto" = on for CPU, F16 KV
cache) except threads: n_threads = n_threads_batch = --threads.
"""
import argparse
import ctypes
import json
import pathlib
import sys
import time

import numpy as np
import llama_cpp as L

REPO = pathlib.Path(__file__).resolve().parents[1]
DEFAULT_MODEL = REPO / "models" / "SmolLM2-135M-Instruct.Q4_1.gguf"

PARAGRAPH = (
    "The history of computing is a story of people trying to make machines do arithmetic faster "
    "and more reliably than they could by hand. Early mechanical calculators used gears and levers; "
    "later, relays and vacuum tubes replaced them, and then transistors made it possible to build "
    "machines that filled a desk instead of a room. Each step made programs cheaper to run, and each "
    "new generation of hardware was quickly put to work on problems that had been out of reach: "
    "weather forecasts, the design of aircraft, the analysis of language, and the training of models "
    "that learn from examples rather than from explicit rules. "
)

_LOG_CB = L.llama_log_callback(lambda level, text, user: None)


def ggml_commit():
    libdir = pathlib.Path(L.__file__).parent / "lib"
    for name in ("libggml-base.so", "libggml-base.dylib", "ggml-base.dll"):
        p = libdir / name
        if p.exists():
            try:
                lib = ctypes.CDLL(str(p))
                lib.ggml_commit.restype = ctypes.c_char_p
                return lib.ggml_commit().decode()
            except (OSError, AttributeError):
                pass
    return "unknown"


def main():
    ap = argparse.ArgumentParser(description="llama.cpp prefill/decode tokens per second")
    ap.add_argument("--model", default=str(DEFAULT_MODEL))
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--prompt-tokens", type=int, default=128)
    ap.add_argument("--gen-tokens", type=int, default=128)
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--verbose", action="store_true", help="show llama.cpp logs and per-rep times")
    args = ap.parse_args()
    P, N, T = args.prompt_tokens, args.gen_tokens, args.threads
    assert P >= 1 and N >= 1 and args.reps >= 1

    if not args.verbose:
        L.llama_log_set(_LOG_CB, ctypes.c_void_p(0))
    L.llama_backend_init()
    model = L.llama_model_load_from_file(args.model.encode(), L.llama_model_default_params())
    if not model:
        sys.exit(f"cannot load {args.model}")
    vocab = L.llama_model_get_vocab(model)
    n_vocab = L.llama_vocab_n_tokens(vocab)

    cp = L.llama_context_default_params()
    cp.n_ctx = max(512, ((P + N + 255) // 256) * 256)
    cp.n_batch = max(512, P)
    cp.n_ubatch = max(512, P)
    cp.n_threads = T
    cp.n_threads_batch = T
    cp.no_perf = False
    ctx = L.llama_init_from_model(model, cp)
    if not ctx:
        sys.exit("cannot create context")
    mem = L.llama_get_memory(ctx)

    # deterministic prompt ids
    b = PARAGRAPH.encode()
    buf = (L.llama_token * (len(b) + 8))()
    n = L.llama_tokenize(vocab, b, len(b), buf, len(buf), False, False)
    para = list(buf[:n])
    prompt = (para * (P // len(para) + 1))[:P]

    batch = L.llama_batch_init(max(P, 1), 0, 1)
    for i in range(P):
        batch.seq_id[i][0] = 0
        batch.n_seq_id[i] = 1

    def prefill():
        L.llama_memory_clear(mem, True)
        batch.n_tokens = P
        for i, t in enumerate(prompt):
            batch.token[i] = t
            batch.pos[i] = i
            batch.logits[i] = 0
        batch.logits[P - 1] = 1
        t0 = time.perf_counter()
        rc = L.llama_decode(ctx, batch)
        L.llama_synchronize(ctx)
        dt = time.perf_counter() - t0
        assert rc == 0, rc
        return dt

    def generate():
        """Decode N tokens after the prompt. Returns (seconds, python seconds, C seconds)."""
        prefill()
        L.llama_perf_context_reset(ctx)
        batch.n_tokens = 1
        batch.logits[0] = 1
        py = 0.0
        # llama.cpp keeps the (single-row) logits at a fixed address in its output buffer:
        # map it once as a numpy view instead of calling llama_get_logits_ith per token
        # (that call plus np.ctypeslib.as_array cost ~60 us per token right after a decode)
        ptr = L.llama_get_logits_ith(ctx, -1)
        logits = np.ctypeslib.as_array(ptr, shape=(n_vocab,))
        t0 = time.perf_counter()
        for s in range(N):
            a = time.perf_counter()
            tok = int(logits.argmax())
            batch.token[0] = tok
            batch.pos[0] = P + s
            py += time.perf_counter() - a
            rc = L.llama_decode(ctx, batch)
            L.llama_synchronize(ctx)  # a no-op wait on CPU; closes llama.cpp's per-token perf timer
            assert rc == 0, rc
        dt = time.perf_counter() - t0
        assert ctypes.addressof(L.llama_get_logits_ith(ctx, -1).contents) == ctypes.addressof(ptr.contents)
        perf = L.llama_perf_context(ctx)
        assert perf.n_eval == N, (perf.n_eval, N)
        return dt, py, perf.t_eval_ms / 1e3

    # warm-up (page in the mmapped weights, spin up the thread pool)
    prefill()
    batch.n_tokens = 1
    batch.token[0], batch.pos[0], batch.logits[0] = prompt[0], P, 1
    for s in range(4):
        batch.pos[0] = P + s
        L.llama_decode(ctx, batch)

    pre = [prefill() for _ in range(args.reps)]
    gen = [generate() for _ in range(args.reps)]
    best_pre = min(pre)
    best = min(gen, key=lambda g: g[0])
    if args.verbose:
        print("prefill s:", [round(x, 5) for x in pre], file=sys.stderr)
        print("decode s (wall, python, llama.cpp):", [tuple(round(v, 5) for v in g) for g in gen], file=sys.stderr)

    out = {
        "engine": "llama.cpp",
        "version": f"llama-cpp-python {L.__version__} (ggml {ggml_commit()})",
        "threads": T,
        "prompt_tokens": P,
        "prefill_tps": round(P / best_pre, 2),
        "gen_tokens": N,
        "decode_tps": round(N / best[0], 2),
        "c_decode_tps": round(N / best[2], 2),
        "py_overhead_us_per_token": round(best[1] / N * 1e6, 1),
        "py_overhead_pct": round(100 * best[1] / best[0], 2),
        "reps": args.reps,
        "model": pathlib.Path(args.model).name,
    }
    print(json.dumps(out))
    L.llama_batch_free(batch)
    L.llama_free(ctx)
    L.llama_model_free(model)


if __name__ == "__main__":
    main()
