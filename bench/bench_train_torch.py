#!/usr/bin/env python3
"""bench_train_torch.py: PyTorch (CPU, fp32) counterpart of bench/bench_train.c.

Measures training throughput of the same model on the same work: the GGUF weights
dequantised to fp32, forward + backward with mean cross-entropy over every position of B
sequences of T random tokens (the same LCG, seeded 12345, as bench_train.c), then one AdamW
step with lr 0, timed separately; best of R reps after a warm-up. Prints one JSON line
with bench_train's keys plus "torch_version" and "blas".

    python bench/bench_train_torch.py --model M [--batch 4] [--tokens 256] [--reps 3] [--threads 2]
    python bench/bench_train_torch.py --model M --check   # correctness: loss of a fixed sequence,
                                                           # logits vs tests/fixtures (llama.cpp)

Needs torch (Debian python3-torch) and the `gguf` package: bench/run_train.sh sets up .venv-torch.
"""
import argparse
import ctypes
import json
import os
import pathlib
import resource
import sys
import time

ap = argparse.ArgumentParser()
ap.add_argument("--model", default="models/SmolLM2-135M-Instruct.Q4_1.gguf")
ap.add_argument("--batch", type=int, default=4)
ap.add_argument("--tokens", type=int, default=256)
ap.add_argument("--reps", type=int, default=3)
ap.add_argument("--threads", type=int, default=2)
ap.add_argument("--check", action="store_true")
args = ap.parse_args() if __name__ == "__main__" else ap.parse_args([])
# Before torch loads: its OpenMP pool and OpenBLAS's own pthread pool both take the thread
# count; passive waiting as bench_train.c sets it (libgomp's spinning workers otherwise steal
# the cores OpenBLAS's pthreads need, see trainer/README.md).
os.environ["OMP_NUM_THREADS"] = os.environ["OPENBLAS_NUM_THREADS"] = str(args.threads)
os.environ.setdefault("OMP_WAIT_POLICY", "passive")


def openblas_core():
    try:  # Debian: libblas.so.3 -> OpenBLAS (update-alternatives); None for another BLAS
        f = ctypes.CDLL("libblas.so.3").openblas_get_corename
    except (OSError, AttributeError):
        return None
    f.restype = ctypes.c_char_p
    return f().decode()


# The same kernels as bench_train (cli_blas_setup, cli/opts.c): Debian's OpenBLAS 0.3.21 falls
# back to its Prescott (SSE3) kernels on CPUs it does not know; then choose them by the CPU's
# features, which OpenBLAS reads only when it loads: run this script again, once, with it set.
if "OPENBLAS_CORETYPE" not in os.environ and (openblas_core() or "").lower() == "prescott":
    flags = set(next(ln for ln in open("/proc/cpuinfo") if ln.startswith("flags")).split())
    want = ("SkylakeX" if {"avx512f", "avx512bw", "avx512dq", "avx512vl", "avx512cd"} <= flags
            else "Haswell" if {"avx2", "fma"} <= flags else None)
    if want and __name__ == "__main__":
        os.environ["OPENBLAS_CORETYPE"] = want
        os.execv(sys.executable, [sys.executable] + sys.argv)

import gguf  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402
import torch.nn as nn  # noqa: E402
import torch.nn.functional as F  # noqa: E402


def field(r, key):
    return r.fields[key].contents()


class Config:
    def __init__(self, r):
        a = field(r, "general.architecture")
        assert a == "llama", f"{a}: only the Llama architecture is implemented"
        self.L = field(r, f"{a}.block_count")
        self.C = field(r, f"{a}.embedding_length")
        self.F = field(r, f"{a}.feed_forward_length")
        self.NH = field(r, f"{a}.attention.head_count")
        self.NKV = field(r, f"{a}.attention.head_count_kv")
        self.HS = self.C // self.NH
        self.eps = field(r, f"{a}.attention.layer_norm_rms_epsilon")
        self.theta = field(r, f"{a}.rope.freq_base")


class RMSNorm(nn.Module):
    def __init__(self, c, eps):
        super().__init__()
        self.w, self.eps = nn.Parameter(torch.ones(c)), eps

    def forward(self, x):
        return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + self.eps) * self.w


def rope(x, cos, sin):
    # RoPE on adjacent pairs (2i, 2i+1), llama.cpp's "norm" style (GPT-J): the GGUF keeps Q/K
    # rows in llama.cpp's permuted order, which this layout expects, so no un-permuting (the
    # same thing as HF's rotate_half on HF-ordered weights). x: (B, H, T, HS).
    x0, x1 = x[..., 0::2], x[..., 1::2]
    return torch.stack((x0 * cos - x1 * sin, x0 * sin + x1 * cos), -1).flatten(-2)


class Block(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.c = c
        self.attn_norm, self.ffn_norm = RMSNorm(c.C, c.eps), RMSNorm(c.C, c.eps)
        self.wq = nn.Linear(c.C, c.NH * c.HS, bias=False)
        self.wk = nn.Linear(c.C, c.NKV * c.HS, bias=False)
        self.wv = nn.Linear(c.C, c.NKV * c.HS, bias=False)
        self.wo = nn.Linear(c.NH * c.HS, c.C, bias=False)
        self.gate = nn.Linear(c.C, c.F, bias=False)
        self.up = nn.Linear(c.C, c.F, bias=False)
        self.down = nn.Linear(c.F, c.C, bias=False)

    def forward(self, x, cos, sin, mask):
        c, (B, T, _) = self.c, x.shape
        h = self.attn_norm(x)
        q = self.wq(h).view(B, T, c.NH, c.HS).transpose(1, 2)
        k = self.wk(h).view(B, T, c.NKV, c.HS).transpose(1, 2)
        v = self.wv(h).view(B, T, c.NKV, c.HS).transpose(1, 2)
        q, k = rope(q, cos, sin), rope(k, cos, sin)
        k = k.repeat_interleave(c.NH // c.NKV, 1)  # GQA: query head h reads KV head h // (NH/NKV)
        v = v.repeat_interleave(c.NH // c.NKV, 1)
        # torch 1.13 has no F.scaled_dot_product_attention: explicit masked softmax.
        att = (q @ k.transpose(-1, -2)) * c.HS**-0.5 + mask
        y = (att.softmax(-1) @ v).transpose(1, 2).reshape(B, T, c.NH * c.HS)
        x = x + self.wo(y)
        h = self.ffn_norm(x)
        return x + self.down(F.silu(self.gate(h)) * self.up(h))


class Llama(nn.Module):
    def __init__(self, c, V):
        super().__init__()
        self.c = c
        self.wte = nn.Embedding(V, c.C)
        self.blocks = nn.ModuleList(Block(c) for _ in range(c.L))
        self.norm = RMSNorm(c.C, c.eps)

    def forward(self, tok):  # (B, T) -> logits (B, T, V); lm_head tied to wte
        c, T = self.c, tok.shape[1]
        ang = torch.arange(T, dtype=torch.float64)[:, None] * c.theta ** (
            -torch.arange(0, c.HS, 2, dtype=torch.float64) / c.HS)
        cos, sin = ang.cos().float(), ang.sin().float()
        mask = torch.full((T, T), float("-inf")).triu(1)
        x = self.wte(tok)
        for b in self.blocks:
            x = b(x, cos, sin, mask)
        return F.linear(self.norm(x), self.wte.weight)


def load(path):
    r = gguf.GGUFReader(path)
    t = {x.name: torch.from_numpy(np.array(
        gguf.quants.dequantize(x.data, x.tensor_type), dtype=np.float32)) for x in r.tensors}
    c = Config(r)
    assert c.HS == field(r, "llama.rope.dimension_count") and "output.weight" not in t  # tied
    m = Llama(c, t["token_embd.weight"].shape[0])
    names = {"attn_norm": "attn_norm.w", "ffn_norm": "ffn_norm.w", "attn_q": "wq.weight",
             "attn_k": "wk.weight", "attn_v": "wv.weight", "attn_output": "wo.weight",
             "ffn_gate": "gate.weight", "ffn_up": "up.weight", "ffn_down": "down.weight"}
    sd = {"wte.weight": t["token_embd.weight"], "norm.w": t["output_norm.weight"]}
    for i in range(c.L):
        for g, n in names.items():
            sd[f"blocks.{i}.{n}"] = t[f"blk.{i}.{g}.weight"]
    m.load_state_dict(sd, strict=True)
    return m


def lcg_batch(st, B, T, V):
    """B sequences of T+1 tokens, exactly as bench_train.c draws them; returns (tokens, state)."""
    out = np.empty((B, T + 1), dtype=np.int64)
    for b in range(B):
        for i in range(T + 1):
            st = (st * 6364136223846793005 + 1442695040888963407) & 0xFFFFFFFFFFFFFFFF
            out[b, i] = (st >> 33) % V
    return torch.from_numpy(out), st


# "The quick brown fox jumps over the lazy dog. Machine learning is a field of study in ...",
# the first 65 ids from `build/toolrl tokenize`: 64 inputs, 64 next-token targets.
CHECK_IDS = [504, 2365, 6354, 16438, 27003, 690, 260, 23790, 2767, 30, 13400, 1380, 314, 253, 1955, 282,
             1108, 281, 6416, 5290, 6193, 351, 260, 1421, 282, 9598, 7688, 338, 416, 835, 429, 940, 284,
             48875, 288, 30060, 940, 28, 284, 3310, 1477, 4381, 1355, 7719, 6388, 30, 10043, 253, 840,
             36900, 281, 3746, 1380, 28, 8470, 281, 260, 1955, 282, 2276, 1380, 457, 3917, 8844, 5115]


@torch.no_grad()
def check(m):
    ids = torch.tensor([CHECK_IDS])
    loss = F.cross_entropy(m(ids[:, :-1])[0], ids[0, 1:]).item()
    print(json.dumps({"check": "loss_64", "mean_ce": round(loss, 5)}))
    fx = pathlib.Path("tests/fixtures/logits_smollm2.json")
    if not fx.exists():
        return
    meta = json.loads(fx.read_text())
    ref = np.fromfile(fx.with_name(meta["bin_layout"]["file"]), dtype="<f4").reshape(len(meta["prompts"]), -1)
    for p in meta["prompts"]:  # llama.cpp's last-position logits (it quantises activations to 8 bits)
        r = torch.from_numpy(ref[p["bin_offset_floats"] // ref.shape[1]])
        x = m(torch.tensor([p["ids"]]))[0, -1]
        kl = F.kl_div(x.log_softmax(-1), r.log_softmax(-1), log_target=True, reduction="sum").item()
        print(json.dumps({"check": "vs_llama_cpp", "prompt": p["name"], "max_abs": round((x - r).abs().max().item(), 4),
                          "kl": round(kl, 6), "top1_same": x.argmax().item() == r.argmax().item()}))


def blas():
    """torch's BLAS_INFO plus the BLAS libraries actually mapped (Debian: libblas.so.3 -> alternatives)."""
    info = [w.rstrip(",") for w in torch.__config__.show().split() if w.startswith("BLAS_INFO=")]
    libs = sorted({ln.split()[-1] for ln in open("/proc/self/maps") if "blas" in ln.rsplit("/", 1)[-1]})
    return " ".join(info + [os.path.realpath(x) for x in libs])


def main():
    torch.set_num_threads(args.threads)
    m = load(args.model)
    if args.check:
        return check(m)
    B, T, R, V = args.batch, args.tokens, args.reps, m.wte.weight.shape[0]
    opt = torch.optim.AdamW(m.parameters(), lr=0.0, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0)
    st, best, best_opt = 12345, 1e30, 1e30
    for rep in range(R + 1):  # rep 0 warms up
        tok, st = lcg_batch(st, B, T, V)
        t0 = time.perf_counter()
        logits = m(tok[:, :-1])
        loss = F.cross_entropy(logits.reshape(B * T, V), tok[:, 1:].reshape(-1))
        loss.backward()
        del logits, loss
        t1 = time.perf_counter()
        opt.step()
        opt.zero_grad(set_to_none=False)  # like bench_train's memset of the gradients
        t2 = time.perf_counter()
        if rep > 0:
            best, best_opt = min(best, t1 - t0), min(best_opt, t2 - t1)
    c = m.c
    QD, KVD = c.NH * c.HS, c.NKV * c.HS  # same FLOP count as bench_train.c
    n_mat = c.L * (c.C * QD * 2 + c.C * KVD * 2 + 3 * c.C * c.F) + V * c.C
    flops = 6.0 * n_mat * B * T + 6.0 * c.L * T * T * QD * B
    print(json.dumps({"engine": "pytorch", "batch": B, "tokens": T, "threads": torch.get_num_threads(),
                      "fwd_bwd_s": round(best, 3), "tokens_per_s": round(B * T / best, 1),
                      "gflops": round(flops / best / 1e9, 1), "adamw_s": round(best_opt, 3),
                      "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
                      "torch_version": torch.__version__, "blas": blas(), "blas_core": openblas_core()}))


if __name__ == "__main__":
    sys.exit(main())
