"""The training REST API (Files and Fine-tuning) driven by the official openai SDK against a
real `toolrl serve` with its own SQLite job store, plus one end-to-end run: a GRPO job on a
tiny model trained by a real `toolrl worker`, its checkpoints listed, its model answering.
"""
import hashlib
import json
import os
import socket
import sqlite3
import subprocess
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request

import openai
import pytest

from conftest import BINARY, MODEL_ID, ROOT, spawn_server, stop_server, free_port, wait_ready

SHARED = os.environ.get("TOOLRL_SHARED", os.path.join(ROOT, "..", "shared"))


def example(i, name="add"):
    return {"id": "t%d" % i, "source": "test",
            "messages": [{"role": "user", "content": "add %d" % i}],
            "tools": [{"type": "function", "function": {"name": name, "description": "Add.",
                       "parameters": {"type": "dict", "properties": {"a": {"type": "integer"}}}}}],
            "answer": [{"name": name, "arguments": {"a": i}}]}


def write_jsonl(path, rows, extra=""):
    with open(path, "w") as f:
        for r in rows:
            f.write(json.dumps(r) + "\n")
        f.write(extra)
    return path


@pytest.fixture(scope="module")
def train_server():
    d = tempfile.mkdtemp(prefix="toolrl-api-")
    db = os.path.join(d, "t.db")
    proc, url = spawn_server("--db", db, "--data-dir", os.path.join(d, "files"), "--max-upload", "200000")
    yield url, db, d
    stop_server(proc)


@pytest.fixture(scope="module")
def tc(train_server):
    return openai.OpenAI(base_url=train_server[0] + "/v1", api_key="unused", max_retries=0, timeout=120)


@pytest.fixture(scope="module")
def good_file(tc, train_server):
    path = write_jsonl(os.path.join(train_server[2], "good.jsonl"), [example(i) for i in range(5)])
    with open(path, "rb") as f:
        return tc.files.create(file=f, purpose="fine-tune"), path


def post_raw(url, body, ctype="application/json"):
    req = urllib.request.Request(url, data=body, headers={"Content-Type": ctype}, method="POST")
    try:
        with urllib.request.urlopen(req, timeout=30) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())


def get_raw(url):
    try:
        with urllib.request.urlopen(url, timeout=30) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())


def test_eval_runs_api(tc, train_server):
    """Evaluation runs over REST: validation, queueing, listing, cancel (no worker here)."""
    url = train_server[0]
    cases = [
        ("/v1/evals/mmlu/runs", {"model": MODEL_ID}, 404, None),
        ("/v1/evals/bfcl/runs", {}, 400, "model"),
        ("/v1/evals/bfcl/runs", {"model": 3}, 400, "model"),
        ("/v1/evals/bfcl/runs", {"model": MODEL_ID, "categories": ["simple_python", "nope"]}, 400, "categories[1]"),
        ("/v1/evals/bfcl/runs", {"model": MODEL_ID, "categories": []}, 400, "categories"),
        ("/v1/evals/apibank/runs", {"model": MODEL_ID, "categories": ["simple_python"]}, 400, "categories"),
        ("/v1/evals/bfcl/runs", {"model": MODEL_ID, "limit": 0}, 400, "limit"),
        ("/v1/evals/bfcl/runs", {"model": MODEL_ID, "limit": 1.5}, 400, "limit"),
        ("/v1/evals/bfcl/runs", {"model": MODEL_ID, "max_tokens": 99999}, 400, "max_tokens"),
        ("/v1/evals/bfcl/runs", {"model": "no-such-model"}, 404, "model"),
    ]
    for path, body, status, param in cases:
        st, err = post_raw(url + path, json.dumps(body).encode())
        assert st == status, (path, body, err)
        assert err["error"]["param"] == param and err["error"]["message"], err
    st, err = post_raw(url + "/v1/evals/bfcl/runs", b"{not json")
    assert st == 400 and err["error"]["code"] == "invalid_json"
    st, run = post_raw(url + "/v1/evals/bfcl/runs", json.dumps({"model": MODEL_ID, "limit": 3}).encode())
    assert st == 200 and run["status"] == "queued" and run["data_source"]["limit"] == 3, run
    assert run["result_counts"] is None and run["per_category_results"] == []
    st, one = get_raw(url + "/v1/evals/bfcl/runs/" + run["id"])
    assert st == 200 and one["id"] == run["id"]
    st, lst = get_raw(url + "/v1/evals/bfcl/runs")
    assert run["id"] in [x["id"] for x in lst["data"]]
    st, lst = get_raw(url + "/v1/evals/apibank/runs")
    assert run["id"] not in [x["id"] for x in lst["data"]]  # a run of the other eval
    assert get_raw(url + "/v1/evals/apibank/runs/" + run["id"])[0] == 404
    assert run["id"] not in [j.id for j in tc.fine_tuning.jobs.list(limit=100).data]  # not a fine-tuning job
    assert get_raw(url + "/v1/fine_tuning/jobs/" + run["id"])[0] == 404
    st, c = post_raw(url + "/v1/evals/bfcl/runs/" + run["id"], b"")
    assert st == 200 and c["status"] == "canceled"
    st, err = post_raw(url + "/v1/evals/bfcl/runs/" + run["id"], b"")
    assert st == 400 and err["error"]["code"] == "run_finished"
    assert get_raw(url + "/v1/evals/bfcl/runs/evalrun-nope")[0] == 404


def test_upload_validates_and_hashes(tc, good_file):
    f, path = good_file
    assert f.object == "file" and f.purpose == "fine-tune" and f.status == "processed"
    data = open(path, "rb").read()
    assert f.bytes == len(data)
    assert f.model_extra["sha256"] == hashlib.sha256(data).hexdigest()
    assert f.model_extra["line_count"] == 5
    assert tc.files.retrieve(f.id).id == f.id
    assert tc.files.content(f.id).read() == data
    assert f.id in [x.id for x in tc.files.list()]


def test_bad_line_is_reported_with_its_number(tc, train_server):
    rows = [example(0), example(1)]
    path = write_jsonl(os.path.join(train_server[2], "bad.jsonl"), rows, extra='{"id": "x", "source": "s"}\n')
    before = len(tc.files.list().data)
    with open(path, "rb") as f, pytest.raises(openai.BadRequestError) as ei:
        tc.files.create(file=f, purpose="fine-tune")
    # refused at upload, naming the line; nothing is stored
    assert ei.value.body["param"] == "file" and ei.value.body["code"] == "invalid_file"
    assert ei.value.body["message"].startswith("line 3:")
    assert len(tc.files.list().data) == before


def test_delete_file(tc, train_server):
    path = write_jsonl(os.path.join(train_server[2], "del.jsonl"), [example(9)])
    with open(path, "rb") as f:
        x = tc.files.create(file=f, purpose="fine-tune")
    d = tc.files.delete(x.id)
    assert d.deleted and d.id == x.id
    with pytest.raises(openai.NotFoundError):
        tc.files.retrieve(x.id)
    assert not os.path.exists(os.path.join(train_server[2], "files", x.id + ".jsonl"))


def test_upload_errors(tc, train_server):
    url = train_server[0]
    # over the size limit (--max-upload 200000): 413, nothing stored
    before = len(tc.files.list().data)
    big = os.path.join(train_server[2], "big.jsonl")
    write_jsonl(big, [example(i) for i in range(2000)])
    with open(big, "rb") as f, pytest.raises(openai.APIStatusError) as ei:
        tc.files.create(file=f, purpose="fine-tune")
    assert ei.value.status_code == 413
    # a multipart body cut before its closing boundary: 400, nothing stored
    b = b"--XyZ\r\nContent-Disposition: form-data; name=\"purpose\"\r\n\r\nfine-tune\r\n--XyZ\r\n" \
        b"Content-Disposition: form-data; name=\"file\"; filename=\"a.jsonl\"\r\n\r\n" + json.dumps(example(1)).encode()
    st, body = post_raw(url + "/v1/files", b, "multipart/form-data; boundary=XyZ")
    assert st == 400 and body["error"]["param"] == "file"
    # not multipart; a wrong purpose
    st, body = post_raw(url + "/v1/files", b"{}")
    assert st == 400
    with open(big, "rb") as f, pytest.raises(openai.BadRequestError) as ei:
        tc.files.create(file=("x.jsonl", b"{}\n"), purpose="assistants")
    assert ei.value.body["param"] == "purpose"
    # a client that disconnects mid-upload leaves no file and no temporary behind
    host, port = url[len("http://"):].split(":")
    s = socket.create_connection((host, int(port)))
    s.sendall(b"POST /v1/files HTTP/1.1\r\nHost: x\r\nContent-Type: multipart/form-data; boundary=XyZ\r\n"
              b"Content-Length: 100000\r\n\r\n" + b[:120])
    s.close()
    time.sleep(0.5)
    assert len(tc.files.list().data) == before
    assert not [n for n in os.listdir(os.path.join(train_server[2], "files")) if n.startswith("upload-")]


def test_create_and_inspect_jobs(tc, good_file, train_server):
    f, _ = good_file
    rl = tc.fine_tuning.jobs.create(
        model=MODEL_ID, training_file=f.id, suffix="demo", seed=7,
        method={"type": "reinforcement", "reinforcement": {
            "hyperparameters": {"batch_size": 2, "group_size": 4, "learning_rate": 2e-5, "kl_coef": "auto"},
            "grader": {"type": "tool_call", "variant": "partial"}}})
    assert rl.object == "fine_tuning.job" and rl.status == "queued" and rl.seed == 7
    assert rl.method.type == "reinforcement"
    hp = rl.method.reinforcement.hyperparameters
    assert hp.batch_size == 2 and hp.model_extra["group_size"] == 4 and hp.model_extra["kl_coef"] == 0.001
    sft = tc.fine_tuning.jobs.create(model=MODEL_ID, training_file=f.id,
                                     method={"type": "supervised",
                                             "supervised": {"hyperparameters": {"n_epochs": 2}}})
    assert sft.method.type == "supervised" and sft.status == "queued"
    got = tc.fine_tuning.jobs.retrieve(rl.id)
    assert got.id == rl.id and got.training_file == f.id
    ev = tc.fine_tuning.jobs.list_events(rl.id)
    assert ev.data and ev.data[0].object == "fine_tuning.job.event"
    assert tc.fine_tuning.jobs.checkpoints.list(rl.id).data == []
    # a checkpoint row (as a worker writes it) shows up in the SDK's shape
    db = sqlite3.connect(train_server[1])
    db.execute("INSERT INTO checkpoints (id, job_id, step, metrics, path, model_name, created_at) VALUES "
               "('ftckpt-abc', ?, 3, '{\"reward_mean\": 0.5}', '/tmp/x', 'ft:m:demo:x:ckpt-step-3', 1)", (rl.id,))
    db.commit()
    db.close()
    ck = tc.fine_tuning.jobs.checkpoints.list(rl.id).data
    assert len(ck) == 1 and ck[0].step_number == 3 and ck[0].metrics.model_extra["reward_mean"] == 0.5
    assert ck[0].fine_tuned_model_checkpoint == "ft:m:demo:x:ckpt-step-3"
    c = tc.fine_tuning.jobs.cancel(sft.id)
    assert c.status == "cancelled"
    with pytest.raises(openai.BadRequestError):
        tc.fine_tuning.jobs.cancel(sft.id)


def test_list_auto_pagination(tc, good_file):
    f, _ = good_file
    made = {tc.fine_tuning.jobs.create(model=MODEL_ID, training_file=f.id).id for _ in range(5)}
    page = tc.fine_tuning.jobs.list(limit=2)
    assert len(page.data) == 2 and page.has_more
    seen = [j.id for j in tc.fine_tuning.jobs.list(limit=2)]  # the SDK follows `after`
    assert made <= set(seen) and len(seen) == len(set(seen))
    times = [j.created_at for j in tc.fine_tuning.jobs.list(limit=100).data]
    assert times == sorted(times, reverse=True)


def test_job_errors(tc, good_file, train_server):
    f, _ = good_file
    url = train_server[0]
    st, body = post_raw(url + "/v1/fine_tuning/jobs", b"{not json")
    assert st == 400 and body["error"]["type"] == "invalid_request_error"
    with pytest.raises(openai.BadRequestError) as ei:
        tc.fine_tuning.jobs.create(model=MODEL_ID, training_file="file-nope")
    assert ei.value.body["param"] == "training_file"
    with pytest.raises(openai.BadRequestError) as ei:
        tc.fine_tuning.jobs.create(model=MODEL_ID, training_file=f.id, method={"type": "dpo"})
    assert ei.value.body["param"] == "method.type"
    with pytest.raises(openai.BadRequestError) as ei:
        tc.fine_tuning.jobs.create(model=MODEL_ID, training_file=f.id, method={
            "type": "reinforcement", "reinforcement": {"hyperparameters": {"group_size": "many"}}})
    assert ei.value.body["param"] == "method.reinforcement.hyperparameters.group_size"
    with pytest.raises(openai.BadRequestError) as ei:
        tc.fine_tuning.jobs.create(model=MODEL_ID, training_file=f.id, method={
            "type": "reinforcement", "reinforcement": {"grader": {"type": "string_check"}}})
    assert ei.value.body["param"] == "method.reinforcement.grader.type"
    with pytest.raises(openai.NotFoundError) as ei:
        tc.fine_tuning.jobs.create(model="no-such-model", training_file=f.id)
    assert ei.value.body["code"] == "model_not_found"
    with pytest.raises(openai.NotFoundError):
        tc.fine_tuning.jobs.retrieve("ftjob-nope")
    with pytest.raises(openai.NotFoundError):
        tc.fine_tuning.jobs.list_events("ftjob-nope")
    with pytest.raises(openai.NotFoundError):
        tc.files.retrieve("file-nope")


# ---- end to end: a real worker trains a GRPO job on a tiny model, the server serves it ----

def test_grpo_job_end_to_end():
    d = tempfile.mkdtemp(prefix="toolrl-e2e-")
    tiny = os.path.join(d, "tiny.gguf")
    subprocess.run([os.path.join(ROOT, "build", "tiny-model"), "gguf", tiny], check=True)
    port = free_port()
    proc = subprocess.Popen([BINARY, "serve", "--model", tiny, "--port", str(port), "--db", os.path.join(d, "t.db"),
                             "--data-dir", os.path.join(d, "files"), "--out", os.path.join(d, "ckpt"),
                             "--workers", "1", "--compute-threads", "1"],
                            stdout=subprocess.DEVNULL, stderr=open(os.path.join(d, "log"), "w"))
    base = "http://127.0.0.1:%d" % port
    try:
        wait_ready(base, proc)
        c = openai.OpenAI(base_url=base + "/v1", api_key="unused", max_retries=0, timeout=120)
        path = write_jsonl(os.path.join(d, "train.jsonl"), [example(i) for i in range(8)])
        with open(path, "rb") as f:
            up = c.files.create(file=f, purpose="fine-tune")
        job = c.fine_tuning.jobs.create(model="tiny.gguf", training_file=up.id, suffix="e2e", method={
            "type": "reinforcement", "reinforcement": {
                "hyperparameters": {"batch_size": 1, "group_size": 2, "max_steps": 2, "max_new_tokens": 8,
                                    "checkpoint_interval": 1, "eval_interval": 0, "max_seq_tokens": 3000},
                "grader": {"type": "tool_call", "variant": "binary"}}})
        deadline = time.time() + 300
        while time.time() < deadline:
            job = c.fine_tuning.jobs.retrieve(job.id)
            if job.status in ("succeeded", "failed", "cancelled"):
                break
            time.sleep(0.5)
        assert job.status == "succeeded", (job.status, job.error, open(os.path.join(d, "log")).read()[-2000:])
        assert job.fine_tuned_model == "ft:tiny.gguf:e2e:" + job.id
        events = c.fine_tuning.jobs.list_events(job.id, limit=100).data
        metrics = [e for e in events if e.type == "metrics"]
        assert len(metrics) == 2 and "reward_mean" in metrics[0].data
        ck = c.fine_tuning.jobs.checkpoints.list(job.id).data
        assert sorted(x.step_number for x in ck) == [1, 2]
        assert os.path.exists(os.path.join(d, "ckpt", job.id, "step-2", "model.safetensors"))
        assert job.fine_tuned_model in [m.id for m in c.models.list().data]
        r = c.chat.completions.create(model=job.fine_tuned_model, max_tokens=4,
                                      messages=[{"role": "user", "content": "hi"}])
        assert r.model == job.fine_tuned_model and r.choices[0].finish_reason in ("stop", "length")

        # the fine-tuned model evaluated on BFCL by a worker, submitted over REST
        st, run = post_raw(base + "/v1/evals/bfcl/runs", json.dumps({
            "model": job.fine_tuned_model, "categories": ["simple_python", "irrelevance"], "limit": 2,
            "max_tokens": 8}).encode())
        assert st == 200 and run["object"] == "eval.run" and run["id"].startswith("evalrun-"), run
        assert run["status"] == "queued" and run["data_source"]["suite"] == "bfcl"
        deadline = time.time() + 300
        while time.time() < deadline:
            st, run = get_raw(base + "/v1/evals/bfcl/runs/" + run["id"])
            if run["status"] in ("completed", "failed", "canceled"):
                break
            time.sleep(0.5)
        assert run["status"] == "completed", (run, open(os.path.join(d, "log")).read()[-2000:])
        cats = {x["category"]: x for x in run["per_category_results"]}
        assert set(cats) == {"simple_python", "irrelevance"} and all(x["n_cases"] == 2 for x in cats.values())
        assert run["result_counts"]["total"] == 4
        assert run["result_counts"]["passed"] == sum(x["passed"] for x in cats.values())
        assert "overall" in run["summary"] and run["progress"] == {"done": 4, "total": 4}
        assert os.path.exists(run["report_path"])
        rows = json.load(open(run["report_path"]))["rows"]
        assert len(rows) == 4 and all("output" in x and "verdict" in x for x in rows)
        st, ev = get_raw(base + "/v1/evals/bfcl/runs/%s/events?limit=100" % run["id"])
        assert any(e["message"].startswith("Evaluation finished") for e in ev["data"])
        st, stored = get_raw(base + "/v1/evals?model=" + urllib.parse.quote(job.fine_tuned_model))
        assert {x["category"] for x in stored["data"] if x["run_id"] == run["id"]} >= {"simple_python", "irrelevance"}
        # a whole-suite run, canceled while it runs
        st, big = post_raw(base + "/v1/evals/bfcl/runs", json.dumps({"model": "tiny.gguf"}).encode())
        while big["status"] == "queued" and time.time() < deadline:
            time.sleep(0.2)
            st, big = get_raw(base + "/v1/evals/bfcl/runs/" + big["id"])
        st, big = post_raw(base + "/v1/evals/bfcl/runs/" + big["id"], b"")
        assert st == 200
        t0 = time.time()
        while big["status"] != "canceled" and time.time() - t0 < 30:
            time.sleep(0.2)
            st, big = get_raw(base + "/v1/evals/bfcl/runs/" + big["id"])
        assert big["status"] == "canceled", big
    finally:
        stop_server(proc)
