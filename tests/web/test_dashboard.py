"""The dashboard in headless Chromium against a real server: the page loads without console
errors; a run created through the form (upload + submit) appears in the runs list; the run's
reward plot gains points as metrics events arrive; the playground shows the model's reply
with its tool calls; a BFCL evaluation run is submitted and cancelled from the run page; 0 runs
and 500 runs both render; with project keys (`toolrl keys create`) the dashboard shows only the
key's project, and another project's run is "not found". Screenshots: tests/out/web/.
"""
import json
import os
import socket
import sqlite3
import subprocess
import tempfile
import time
import urllib.request

import pytest
from selenium import webdriver
from selenium.webdriver.common.by import By
from selenium.webdriver.support import expected_conditions as EC
from selenium.webdriver.support.ui import Select, WebDriverWait

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
BINARY = os.path.join(ROOT, "build", "toolrl")
MODEL_PATH = os.environ.get("TOOLRL_TEST_MODEL", os.path.join(ROOT, "models", "SmolLM2-135M-Instruct.Q4_1.gguf"))


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_ready(base, proc, timeout=120):
    deadline = time.time() + timeout
    while time.time() < deadline:
        assert proc.poll() is None, "toolrl serve exited"
        try:
            with urllib.request.urlopen(base + "/health", timeout=2) as r:
                if r.status == 200:
                    return
        except Exception:
            pass
        time.sleep(0.2)
    raise RuntimeError("server not ready")

SHOTS = os.path.join(ROOT, "tests", "out", "web")


@pytest.fixture(scope="module")
def server():
    d = tempfile.mkdtemp(prefix="toolrl-web-")
    db = os.path.join(d, "t.db")
    port = free_port()
    proc = subprocess.Popen([BINARY, "serve", "--model", MODEL_PATH, "--port", str(port), "--db", db,
                             "--data-dir", os.path.join(d, "files"), "--web-dir", os.path.join(ROOT, "web")],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    base = "http://127.0.0.1:%d" % port
    wait_ready(base, proc)
    yield base, db, d
    proc.terminate()
    proc.wait()


@pytest.fixture(scope="module")
def browser():
    os.makedirs(SHOTS, exist_ok=True)
    o = webdriver.ChromeOptions()
    o.binary_location = "/usr/bin/chromium"
    for a in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1280,1000"):
        o.add_argument(a)
    o.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    drv = webdriver.Chrome(service=webdriver.ChromeService(executable_path="/usr/bin/chromedriver"), options=o)
    yield drv
    drv.quit()


def console_errors(drv):
    return [e for e in drv.get_log("browser") if e["level"] == "SEVERE"]


def wait(drv, cond, t=30):
    return WebDriverWait(drv, t).until(cond)


def example(i):
    return {"id": "w%d" % i, "source": "test", "messages": [{"role": "user", "content": "add %d" % i}],
            "tools": [{"type": "function", "function": {"name": "add", "parameters": {"type": "dict",
                       "properties": {"a": {"type": "integer"}}}}}], "answer": [{"name": "add", "arguments": {"a": i}}]}


def test_empty_dashboard_loads_cleanly(server, browser):
    browser.get(server[0] + "/")
    wait(browser, EC.text_to_be_present_in_element((By.ID, "runs"), "No runs yet"))
    browser.save_screenshot(os.path.join(SHOTS, "runs-empty.png"))
    assert console_errors(browser) == []


def test_new_run_through_the_form(server, browser):
    base, db, d = server
    good = os.path.join(d, "train.jsonl")
    with open(good, "w") as f:
        for i in range(4):
            f.write(json.dumps(example(i)) + "\n")
    bad = os.path.join(d, "bad.jsonl")
    with open(bad, "w") as f:
        f.write(json.dumps(example(0)) + "\n{\"id\": 1}\n")
    browser.get(base + "/#/new")
    wait(browser, EC.presence_of_element_located((By.ID, "hp-batch_size")))
    # a bad file: the validation error is shown with its line
    browser.find_element(By.ID, "file").send_keys(bad)
    browser.find_element(By.ID, "submit").click()
    wait(browser, EC.text_to_be_present_in_element((By.ID, "file-status"), "line 2"))
    # the refusal is a 400 (nothing is stored), which the browser logs; nothing else is logged
    errs = console_errors(browser)
    assert len(errs) == 1 and "/v1/files" in errs[0]["message"] and "400" in errs[0]["message"], errs
    browser.find_element(By.ID, "file").clear()
    browser.find_element(By.ID, "file").send_keys(good)
    hp = browser.find_element(By.ID, "hp-max_steps")
    hp.clear()
    hp.send_keys("5")
    browser.save_screenshot(os.path.join(SHOTS, "new-run.png"))
    browser.find_element(By.ID, "submit").click()
    wait(browser, EC.url_contains("#/run/ftjob-"))
    job = browser.current_url.split("#/run/")[1]
    browser.get(base + "/#/runs")
    wait(browser, EC.presence_of_element_located((By.CSS_SELECTOR, 'tr[data-id="%s"]' % job)))
    assert console_errors(browser) == []
    # the run page: metrics events arrive (as a worker writes them) and the plot gains points
    browser.get(base + "/#/run/" + job)
    wait(browser, EC.text_to_be_present_in_element((By.ID, "charts"), "No metrics yet"))
    con = sqlite3.connect(db)
    for step in (1, 2, 3):
        con.execute("INSERT INTO job_events (id, job_id, created_at, level, type, message, data) VALUES "
                    "(?, ?, ?, 'info', 'metrics', ?, ?)",
                    ("ftevent-t%d" % step, job, int(time.time()), "Step %d" % step,
                     json.dumps({"step": step, "reward_mean": 0.1 * step, "exact_match": 0.1 * step, "kl": 0.001 * step})))
        con.commit()
        wait(browser, lambda drv: drv.find_element(By.ID, "charts").get_attribute("data-points") == str(step), 20)
        n = browser.execute_script("const g = window.__toolrlCharts.get('chart-reward_mean'); return g ? g.numRows() : 0;")
        assert n == step
    # BFCL results stored for the base model (as `toolrl eval --db` writes them) show per category
    con.execute("INSERT INTO eval_results (id, model, suite, category, score, n_cases, created_at) VALUES "
                "('eval-t1', 'SmolLM2-135M-Instruct.Q4_1.gguf', 'bfcl', 'simple_python', 0.25, 20, ?)", (int(time.time()),))
    con.commit()
    con.close()
    wait(browser, EC.text_to_be_present_in_element((By.ID, "evals"), "simple_python"), 30)
    assert "25.0%" in browser.find_element(By.ID, "bfcl").text
    browser.save_screenshot(os.path.join(SHOTS, "run.png"))
    assert console_errors(browser) == []
    # an evaluation run of the base model, submitted from the run page (no worker here: it stays
    # queued), listed with its status, then cancelled from the same table
    lim = browser.find_element(By.ID, "eval-limit")
    lim.clear()
    lim.send_keys("3")
    browser.find_element(By.ID, "eval-base").click()
    wait(browser, EC.presence_of_element_located((By.CSS_SELECTOR, "#evalruns tr[data-run]")))
    row = browser.find_element(By.CSS_SELECTOR, "#evalruns tr[data-run]")
    run_id = row.get_attribute("data-run")
    assert run_id.startswith("evalrun-") and "queued" in row.text and "SmolLM2" in row.text
    with urllib.request.urlopen(base + "/v1/evals/bfcl/runs/" + run_id) as r:
        assert json.loads(r.read())["data_source"]["limit"] == 3
    browser.find_element(By.CSS_SELECTOR, 'button[data-cancel-eval="%s"]' % run_id).click()
    wait(browser, EC.text_to_be_present_in_element((By.CSS_SELECTOR, 'tr[data-run="%s"]' % run_id), "canceled"))
    assert console_errors(browser) == []


def test_many_runs_render(server, browser):
    base, db, _ = server
    con = sqlite3.connect(db)
    (file_id,) = con.execute("SELECT id FROM files WHERE status = 'processed' LIMIT 1").fetchone()
    now = int(time.time())
    con.executemany("INSERT INTO jobs (id, model, method, hyperparameters, training_file, status, created_at) "
                    "VALUES (?, 'm', 'supervised', '{}', ?, 'succeeded', ?)",
                    [("ftjob-many%03d" % i, file_id, now) for i in range(500)])
    con.commit()
    con.close()
    browser.get(base + "/#/runs")
    wait(browser, EC.text_to_be_present_in_element((By.ID, "count"), "of 501 runs"), 60)
    Select(browser.find_element(By.ID, "flt")).select_by_visible_text("queued")
    wait(browser, EC.text_to_be_present_in_element((By.ID, "count"), "1 of 501 runs"), 60)
    Select(browser.find_element(By.ID, "flt")).select_by_visible_text("all")
    assert console_errors(browser) == []


def test_phone_width(server, browser):
    """Readable on a phone: no horizontal page scroll outside the scrollable tables."""
    browser.set_window_size(390, 844)
    try:
        for page in ("#/runs", "#/new", "#/playground", "#/models"):
            browser.get(server[0] + "/" + page)
            wait(browser, lambda d: "Loading" not in d.find_element(By.ID, "view").text)
            over = browser.execute_script("return document.documentElement.scrollWidth - window.innerWidth;")
            assert over <= 1, (page, over)
        browser.save_screenshot(os.path.join(SHOTS, "phone-runs.png"))
        assert console_errors(browser) == []
    finally:
        browser.set_window_size(1280, 1000)


def test_api_key_and_errors_are_shown(browser):
    """With an API key (--api-key-file): the page is public, the API answers 401 until the key is
    entered, and the error is shown; the key entered is kept by the browser across reloads."""
    d = tempfile.mkdtemp(prefix="toolrl-web-key-")
    port = free_port()
    with open(os.path.join(d, "key"), "w") as f:
        f.write("sekret\n")
    proc = subprocess.Popen([BINARY, "serve", "--model", MODEL_PATH, "--port", str(port), "--db", os.path.join(d, "t.db"),
                             "--data-dir", os.path.join(d, "files"), "--web-dir", os.path.join(ROOT, "web"),
                             "--api-key-file", os.path.join(d, "key")], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    base = "http://127.0.0.1:%d" % port
    try:
        wait_ready(base, proc)
        browser.get(base + "/#/runs")
        browser.execute_script("localStorage.clear()")
        browser.get(base + "/#/models")
        wait(browser, lambda drv: drv.find_element(By.ID, "error").get_attribute("hidden") is None)
        assert "401" in browser.find_element(By.ID, "error").text
        browser.find_element(By.CSS_SELECTOR, "details.key summary").click()
        key = browser.find_element(By.ID, "api-key")
        key.send_keys("sekret")
        browser.execute_script("arguments[0].dispatchEvent(new Event('change'))", key)
        wait(browser, EC.text_to_be_present_in_element((By.ID, "view"), "SmolLM2"))
        assert browser.find_element(By.ID, "error").get_attribute("hidden") is not None
        browser.refresh()
        wait(browser, EC.text_to_be_present_in_element((By.ID, "view"), "SmolLM2"))
        browser.execute_script("localStorage.clear()")
        browser.get_log("browser")  # the expected 401s are not part of the other tests
    finally:
        proc.terminate()
        proc.wait()


def test_playground_shows_the_reply(server, browser):
    browser.get(server[0] + "/#/playground")
    wait(browser, EC.presence_of_element_located((By.ID, "send")))
    Select(browser.find_element(By.ID, "tc")).select_by_visible_text("required")
    browser.find_element(By.ID, "send").click()
    wait(browser, EC.presence_of_element_located((By.ID, "out-content")), 180)
    browser.save_screenshot(os.path.join(SHOTS, "playground.png"))
    calls = browser.find_element(By.ID, "out-calls").text
    assert console_errors(browser) == []
    assert calls.startswith("get_weather(")  # tool_choice required is enforced by the token mask


def test_project_keys_in_dashboard(browser):
    """Stored keys of two projects and an admin key (toolrl keys create): each project's key shows
    its own run only, another project's run page is a 404, the admin key shows both."""
    d = tempfile.mkdtemp(prefix="toolrl-web-projects-")
    db = os.path.join(d, "t.db")
    tiny = os.path.join(d, "tiny.gguf")
    subprocess.run([os.path.join(ROOT, "build", "tiny-model"), "gguf", tiny], check=True)

    def make_key(*args):
        out = subprocess.run([BINARY, "keys", "create", "--db", db, *args], check=True, capture_output=True, text=True)
        return out.stdout.strip()

    keys = {"alpha": make_key("--project", "alpha"), "beta": make_key("--project", "beta"),
            "admin": make_key("--project", "ops", "--admin")}
    port = free_port()
    proc = subprocess.Popen([BINARY, "serve", "--model", tiny, "--port", str(port), "--db", db,
                             "--data-dir", os.path.join(d, "files"), "--web-dir", os.path.join(ROOT, "web"),
                             "--compute-threads", "1"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    base = "http://127.0.0.1:%d" % port

    def call(key, path, body=None, ctype="application/json"):
        req = urllib.request.Request(base + path, data=body, headers={"Authorization": "Bearer " + key})
        if body is not None:
            req.add_header("Content-Type", ctype)
        with urllib.request.urlopen(req, timeout=30) as r:
            return json.loads(r.read())

    def set_key(k):  # as the key field stores it; then a reload reads it
        browser.execute_script("localStorage.setItem('toolrl.apiKey', arguments[0])", k)
        browser.get(base + "/#/runs")
        browser.refresh()

    try:
        wait_ready(base, proc)
        jobs = {}
        for p in ("alpha", "beta"):
            row = (json.dumps(example(1)) + "\n").encode()
            form = (b"--XyZ\r\nContent-Disposition: form-data; name=\"purpose\"\r\n\r\nfine-tune\r\n"
                    b"--XyZ\r\nContent-Disposition: form-data; name=\"file\"; filename=\"t.jsonl\"\r\n\r\n" + row +
                    b"\r\n--XyZ--\r\n")
            f = call(keys[p], "/v1/files", form, "multipart/form-data; boundary=XyZ")
            jobs[p] = call(keys[p], "/v1/fine_tuning/jobs",
                           json.dumps({"model": "tiny.gguf", "training_file": f["id"]}).encode())["id"]
        browser.get(base + "/#/runs")
        for p, other in (("alpha", "beta"), ("beta", "alpha")):
            set_key(keys[p])
            wait(browser, EC.text_to_be_present_in_element((By.ID, "runs"), jobs[p]))
            assert jobs[other] not in browser.find_element(By.ID, "runs").text
            assert "1 of 1 runs" in browser.find_element(By.ID, "count").text
            browser.get(base + "/#/run/" + jobs[other])
            wait(browser, lambda drv: drv.find_element(By.ID, "error").get_attribute("hidden") is None)
            assert "404" in browser.find_element(By.ID, "error").text
        set_key(keys["admin"])
        wait(browser, EC.text_to_be_present_in_element((By.ID, "runs"), jobs["alpha"]))
        assert jobs["beta"] in browser.find_element(By.ID, "runs").text
        browser.save_screenshot(os.path.join(SHOTS, "runs-admin-key.png"))
        browser.execute_script("localStorage.clear()")
        browser.get_log("browser")  # the expected 404s are not part of the other tests
    finally:
        proc.terminate()
        proc.wait()
