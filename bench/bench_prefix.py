#!/usr/bin/env python3
"""Shared-prefix benchmark for a running `toolrl serve`: one warm-up request, then N concurrent
streaming requests that share one ~1,600-token prompt (12 tools) and differ in the question.
Prints each request's time to first token, the wall time of the N, and the server's prompt
cache counters. Usage: bench_prefix.py PORT N  (docs/api.md, "Prompt caching", has figures)."""
import json, sys, threading, time, urllib.request
port = int(sys.argv[1]); n = int(sys.argv[2])
base = f"http://127.0.0.1:{port}"
mid = json.load(urllib.request.urlopen(base + "/v1/models"))["data"][0]["id"]
tools = [{"type": "function", "function": {"name": f"tool_{i}", "description": f"Tool number {i}: looks up records of kind {i} in the company database and returns them as a list, filtered by the given fields.",
          "parameters": {"type": "object", "properties": {"query": {"type": "string", "description": "what to look for"}, "limit": {"type": "integer"}}, "required": ["query"]}}} for i in range(12)]
def req(q):
    body = {"model": mid, "messages": [{"role": "user", "content": q}], "tools": tools, "max_tokens": 8, "stream": True}
    r = urllib.request.Request(base + "/v1/chat/completions", json.dumps(body).encode(), {"content-type": "application/json"})
    t0 = time.time(); first = None
    with urllib.request.urlopen(r) as f:
        for line in f:
            if first is None and line.startswith(b"data: ") and line.strip() != b"data: [DONE]":
                d = json.loads(line[6:])
                ch = d.get("choices") or [{}]
                dl = ch[0].get("delta", {})
                if dl.get("content") or dl.get("tool_calls"):
                    first = time.time() - t0
    return first if first is not None else time.time() - t0
t = req("warm up: find the invoices of March")
res = [None] * n
def run(i): res[i] = req(f"question {i}: list the {i+3} newest orders for customer {i*7}")
th = [threading.Thread(target=run, args=(i,)) for i in range(n)]
t0 = time.time(); [x.start() for x in th]; [x.join() for x in th]; wall = time.time() - t0
m = urllib.request.urlopen(base + "/metrics").read().decode()
get = lambda k: [l.split()[-1] for l in m.splitlines() if l.startswith(k + " ")]
print(f"warm-up {t:.2f}s; {n} concurrent: TTFT {' '.join(f'{x:.2f}' for x in res)} s, all done {wall:.2f}s; prompt {get('toolrl_prompt_tokens_total')} cached {get('toolrl_prompt_tokens_cached_total')} copied {get('toolrl_prompt_tokens_copied_total')}")
