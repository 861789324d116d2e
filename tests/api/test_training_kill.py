"""Nothing acknowledged is lost: `toolrl serve` is SIGKILLed 100 times at random moments while
clients upload files and create jobs over REST. After each kill the server restarts on the
same store; at the end every file and job whose creation was acknowledged (HTTP 200) exists
exactly once, each file's bytes still match the SHA-256 the server reported, and SQLite's
integrity check passes. (Worker-side kills are covered by tests/test_queue_faults.c and
tests/test_worker.c.)
"""
import hashlib
import json
import os
import random
import sqlite3
import subprocess
import tempfile
import threading
import time

import openai

from conftest import BINARY, ROOT, free_port, wait_ready

KILLS = int(os.environ.get("TOOLRL_KILLS", "100"))


def row(i):
    return json.dumps({"id": "k%d" % i, "source": "test", "messages": [{"role": "user", "content": "add %d" % i}],
                       "tools": [{"type": "function", "function": {"name": "add", "parameters": {}}}],
                       "answer": [{"name": "add", "arguments": {"a": i}}]}) + "\n"


def test_sigkill_loses_nothing_acknowledged():
    d = tempfile.mkdtemp(prefix="toolrl-kill-")
    tiny = os.path.join(d, "tiny.gguf")
    subprocess.run([os.path.join(ROOT, "build", "tiny-model"), "gguf", tiny], check=True)
    db = os.path.join(d, "t.db")
    files_ok, jobs_ok, lock = {}, set(), threading.Lock()
    rng = random.Random(int(os.environ.get("TOOLRL_FAULT_SEED", "1")))
    seed_file = None
    for k in range(KILLS):
        port = free_port()
        proc = subprocess.Popen([BINARY, "serve", "--model", tiny, "--port", str(port), "--db", db,
                                 "--data-dir", os.path.join(d, "files"), "--compute-threads", "1"],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        base = "http://127.0.0.1:%d" % port
        wait_ready(base, proc)
        c = openai.OpenAI(base_url=base + "/v1", api_key="x", max_retries=0, timeout=5)
        if seed_file is None:  # one known-good file for the jobs
            seed_file = c.files.create(file=("seed.jsonl", row(0).encode()), purpose="fine-tune").id

        def client(n):
            for i in range(1000):
                try:
                    if (i + n) % 2:
                        data = "".join(row(j) for j in range(n * 1000 + i, n * 1000 + i + 3)).encode()
                        f = c.files.create(file=("f%d.jsonl" % i, data), purpose="fine-tune")
                        with lock:
                            files_ok[f.id] = (hashlib.sha256(data).hexdigest(), f.model_extra["sha256"])
                    else:
                        j = c.fine_tuning.jobs.create(model="tiny.gguf", training_file=seed_file)
                        with lock:
                            jobs_ok.add(j.id)
                except Exception:
                    return  # the server died under us: whatever was not acknowledged may be gone

        ts = [threading.Thread(target=client, args=(n,)) for n in range(3)]
        for t in ts:
            t.start()
        time.sleep(rng.uniform(0.0, 0.25))
        proc.kill()
        proc.wait()
        for t in ts:
            t.join()
    # Restart once more and check everything acknowledged through the API and on disk.
    port = free_port()
    proc = subprocess.Popen([BINARY, "serve", "--model", tiny, "--port", str(port), "--db", db,
                             "--data-dir", os.path.join(d, "files")], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    try:
        base = "http://127.0.0.1:%d" % port
        wait_ready(base, proc)
        c = openai.OpenAI(base_url=base + "/v1", api_key="x", max_retries=0, timeout=30)
        assert len(files_ok) > 20 and len(jobs_ok) > 20, (len(files_ok), len(jobs_ok))
        for fid, (sent, reported) in files_ok.items():
            assert sent == reported
            f = c.files.retrieve(fid)
            assert f.status == "processed"
            assert hashlib.sha256(c.files.content(fid).read()).hexdigest() == sent
        listed = [j.id for j in c.fine_tuning.jobs.list(limit=100)]
        assert len(listed) == len(set(listed))
        assert jobs_ok <= set(listed)
    finally:
        proc.kill()
        proc.wait()
    con = sqlite3.connect(db)
    assert con.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    n_files = con.execute("SELECT count(*) FROM files").fetchone()[0]
    con.close()
    on_disk = [n for n in os.listdir(os.path.join(d, "files")) if n.endswith(".jsonl")]
    assert n_files >= len(files_ok)
    # every stored row has its bytes (a file is renamed into place before its row exists)
    assert len(on_disk) >= n_files
