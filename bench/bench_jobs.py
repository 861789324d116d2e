"""Load test of the training API on loopback: N client threads create fine-tuning jobs and
list them (alternating) for D seconds against a fresh `toolrl serve` with its own job store
(tiny model; the API does not touch the model). Reports requests/s, the error count (must be
0) and checks that every job whose creation was acknowledged is listed afterwards.

    .venv-test/bin/python bench/bench_jobs.py [--clients 8] [--seconds 20]
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))
sys.path.insert(0, os.path.join(ROOT, "tests", "api"))
from conftest import BINARY, free_port, wait_ready  # noqa: E402


def call(method, url, body=None, ctype="application/json"):
    req = urllib.request.Request(url, data=body, method=method, headers={"Content-Type": ctype})
    with urllib.request.urlopen(req, timeout=30) as r:
        return r.status, json.loads(r.read())


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--clients", type=int, default=8)
    ap.add_argument("--seconds", type=float, default=20)
    a = ap.parse_args()
    d = tempfile.mkdtemp(prefix="toolrl-bench-jobs-")
    tiny = os.path.join(d, "tiny.gguf")
    subprocess.run([os.path.join(ROOT, "build", "tiny-model"), "gguf", tiny], check=True)
    port = free_port()
    proc = subprocess.Popen([BINARY, "serve", "--model", tiny, "--port", str(port), "--db", os.path.join(d, "t.db"),
                             "--data-dir", os.path.join(d, "files")], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    base = "http://127.0.0.1:%d" % port
    try:
        wait_ready(base, proc)
        row = json.dumps({"id": "b", "source": "b", "messages": [{"role": "user", "content": "x"}], "tools": [],
                          "answer": []}) + "\n"
        boundary = "BenchBoundary"
        body = ("--%s\r\nContent-Disposition: form-data; name=\"purpose\"\r\n\r\nfine-tune\r\n--%s\r\n"
                "Content-Disposition: form-data; name=\"file\"; filename=\"b.jsonl\"\r\n\r\n%s\r\n--%s--\r\n"
                % (boundary, boundary, row, boundary)).encode()
        _, f = call("POST", base + "/v1/files", body, "multipart/form-data; boundary=" + boundary)
        create = json.dumps({"model": "tiny.gguf", "training_file": f["id"]}).encode()
        created, counts, errors, lock = set(), {"create": 0, "list": 0}, [], threading.Lock()
        stop = time.time() + a.seconds

        def client(n):
            i = 0
            while time.time() < stop:
                try:
                    if i % 2 == 0:
                        st, j = call("POST", base + "/v1/fine_tuning/jobs", create)
                        with lock:
                            created.add(j["id"])
                            counts["create"] += 1
                    else:
                        st, j = call("GET", base + "/v1/fine_tuning/jobs?limit=20")
                        with lock:
                            counts["list"] += 1
                except Exception as e:  # noqa: BLE001
                    with lock:
                        errors.append(repr(e))
                i += 1

        t0 = time.time()
        ts = [threading.Thread(target=client, args=(n,)) for n in range(a.clients)]
        for t in ts:
            t.start()
        for t in ts:
            t.join()
        dt = time.time() - t0
        listed, after = set(), None
        while True:
            _, page = call("GET", base + "/v1/fine_tuning/jobs?limit=100" + ("&after=" + after if after else ""))
            listed |= {j["id"] for j in page["data"]}
            if not page["has_more"]:
                break
            after = page["last_id"]
        lost = created - listed
        total = counts["create"] + counts["list"]
        print("clients %d, %.1f s: %d requests = %.0f req/s (creates %d = %.0f/s, lists %d = %.0f/s); "
              "errors %d; created %d, listed afterwards %d, lost %d"
              % (a.clients, dt, total, total / dt, counts["create"], counts["create"] / dt, counts["list"],
                 counts["list"] / dt, len(errors), len(created), len(listed), len(lost)))
        if errors:
            print("first error:", errors[0])
        return 1 if errors or lost else 0
    finally:
        proc.terminate()
        proc.wait()


if __name__ == "__main__":
    sys.exit(main())
