#!/usr/bin/env python3
"""bench_serve.py: aggregate output tokens/s of `toolrl serve` with 1, 4, 8 concurrent
streaming clients (openai SDK; the server's continuous batching decodes them together).

    python bench/bench_serve.py [--base-url URL] [--model PATH] [--clients 1,4,8]
                                [--max-tokens 128] [--requests-per-client 2] [--client sdk|raw]
                                [--rounds 1]

Without --base-url it starts build/toolrl serve on a free port and stops it afterwards.
Prints one JSON line per concurrency: clients, requests, output tokens, wall seconds,
aggregate output tok/s, mean time to first token, mean per-request tok/s.
--client raw reads the same SSE stream with http.client instead of the openai SDK: the
clients share the server's cores, and the SDK's per-chunk parsing costs CPU time there.
--rounds R runs the whole sweep R times (each line says its round) and ends with a summary
line: per concurrency the median aggregate tok/s, and the ratio of the largest concurrency
to the smallest per round (measured minutes apart, not hours) with its median. On a shared
host whose speed drifts, the per-round ratio is the figure to trust.
"""
import argparse
import json
import os
import socket
import subprocess
import sys
import threading
import time
import http.client
import urllib.parse
import urllib.request

import openai

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_ready(base, proc, timeout=120):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if proc.poll() is not None:
            sys.exit("server exited")
        try:
            with urllib.request.urlopen(base + "/health", timeout=2) as r:
                if r.status == 200:
                    return
        except Exception:
            time.sleep(0.2)
    sys.exit("server not ready")


def one_client(client, model, max_tokens, n_req, idx, out):
    for k in range(n_req):
        t0 = time.time()
        first = None
        n_tok = 0
        stream = client.chat.completions.create(
            model=model, max_tokens=max_tokens, temperature=0.8, seed=idx * 100 + k, stream=True,
            stream_options={"include_usage": True},
            messages=[{"role": "user", "content": "Write a short story about a robot number %d." % (idx * 100 + k)}])
        for ch in stream:
            if ch.choices and ch.choices[0].delta.content and first is None:
                first = time.time() - t0
            if ch.usage is not None:
                n_tok = ch.usage.completion_tokens
        out.append((n_tok, first if first is not None else time.time() - t0, time.time() - t0))


def one_client_raw(base, model, max_tokens, n_req, idx, out):
    u = urllib.parse.urlparse(base)
    for k in range(n_req):
        t0 = time.time()
        first = None
        n_tok = 0
        body = json.dumps({
            "model": model, "max_tokens": max_tokens, "temperature": 0.8, "seed": idx * 100 + k, "stream": True,
            "stream_options": {"include_usage": True},
            "messages": [{"role": "user", "content": "Write a short story about a robot number %d." % (idx * 100 + k)}]})
        c = http.client.HTTPConnection(u.hostname, u.port, timeout=600)
        c.request("POST", "/v1/chat/completions", body, {"Content-Type": "application/json",
                                                         "Authorization": "Bearer bench"})
        r = c.getresponse()
        if r.status != 200:
            sys.exit("HTTP %d: %s" % (r.status, r.read()[:200]))
        for line in r:
            if not line.startswith(b"data: {"):
                continue
            if first is None and b'"content":"' in line and b'"content":""' not in line:
                first = time.time() - t0
            if b'"choices":[]' in line:
                n_tok = json.loads(line[6:])["usage"]["completion_tokens"]
        c.close()
        out.append((n_tok, first if first is not None else time.time() - t0, time.time() - t0))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--base-url")
    ap.add_argument("--model", default=os.path.join(ROOT, "models", "SmolLM2-135M-Instruct.Q4_1.gguf"))
    ap.add_argument("--clients", default="1,4,8")
    ap.add_argument("--max-tokens", type=int, default=128)
    ap.add_argument("--requests-per-client", type=int, default=2)
    ap.add_argument("--server-args", default="", help="extra flags for toolrl serve")
    ap.add_argument("--client", choices=["sdk", "raw"], default="sdk")
    ap.add_argument("--rounds", type=int, default=1)
    a = ap.parse_args()
    proc = None
    base = a.base_url
    if not base:
        port = free_port()
        proc = subprocess.Popen([os.path.join(ROOT, "build", "toolrl"), "serve", "--model", a.model, "--port",
                                 str(port), *a.server_args.split()], stderr=subprocess.DEVNULL)
        base = "http://127.0.0.1:%d" % port
        wait_ready(base, proc)
    model = os.path.basename(a.model)
    client = openai.OpenAI(base_url=base + "/v1", api_key="bench", max_retries=0, timeout=600)
    try:
        client.chat.completions.create(model=model, messages=[{"role": "user", "content": "hi"}], max_tokens=4)
        conc = [int(x) for x in a.clients.split(",")]
        agg = {c: [] for c in conc}
        for rnd, c in [(r, c) for r in range(a.rounds) for c in conc]:
            results = []
            if a.client == "raw":
                threads = [threading.Thread(target=one_client_raw, args=(base, model, a.max_tokens,
                                                                         a.requests_per_client, i, results))
                           for i in range(c)]
            else:
                threads = [threading.Thread(target=one_client, args=(client, model, a.max_tokens,
                                                                     a.requests_per_client, i, results))
                           for i in range(c)]
            t0 = time.time()
            for t in threads:
                t.start()
            for t in threads:
                t.join()
            wall = time.time() - t0
            toks = sum(r[0] for r in results)
            agg[c].append(toks / wall)
            print(json.dumps({
                "client": a.client, "round": rnd, "clients": c, "requests": len(results), "output_tokens": toks,
                "wall_s": round(wall, 2),
                "aggregate_tok_s": round(toks / wall, 1),
                "mean_ttft_s": round(sum(r[1] for r in results) / len(results), 3),
                "mean_request_tok_s": round(sum(r[0] / r[2] for r in results) / len(results), 1),
            }), flush=True)
        if a.rounds > 1:
            med = lambda v: sorted(v)[len(v) // 2] if len(v) % 2 else sum(sorted(v)[len(v) // 2 - 1:len(v) // 2 + 1]) / 2
            lo, hi = min(conc), max(conc)
            ratios = [h / l for h, l in zip(agg[hi], agg[lo])]
            print(json.dumps({
                "client": a.client, "rounds": a.rounds,
                "median_aggregate_tok_s": {str(c): round(med(agg[c]), 1) for c in conc},
                "ratio_%d_over_%d_per_round" % (hi, lo): [round(r, 2) for r in ratios],
                "median_ratio": round(med(ratios), 2)}), flush=True)
    finally:
        if proc:
            proc.terminate()
            proc.wait()


if __name__ == "__main__":
    main()
