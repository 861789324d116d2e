"""Fixtures for the API integration tests: a running `toolrl serve` and openai clients.

tests/api/run.sh starts the server and sets TOOLRL_TEST_BASE_URL; without it the session
starts its own server on a free port. Tests that need other flags (API key, tiny queue)
start a second, small server with `spawn_server`.
"""
import os
import socket
import subprocess
import time
import urllib.request

import openai
import pytest

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
MODEL_PATH = os.environ.get("TOOLRL_TEST_MODEL", os.path.join(ROOT, "models", "SmolLM2-135M-Instruct.Q4_1.gguf"))
MODEL_ID = os.path.basename(MODEL_PATH)
BINARY = os.path.join(ROOT, "build", "toolrl")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_ready(base, proc=None, timeout=120):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError("toolrl serve exited with %s" % proc.returncode)
        try:
            with urllib.request.urlopen(base + "/health", timeout=2) as r:
                if r.status == 200:
                    return
        except Exception:
            pass
        time.sleep(0.2)
    raise RuntimeError("server at %s not ready" % base)


def spawn_server(*extra, env=None):
    port = free_port()
    proc = subprocess.Popen([BINARY, "serve", "--model", MODEL_PATH, "--port", str(port), *extra],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
    base = "http://127.0.0.1:%d" % port
    wait_ready(base, proc)
    return proc, base


def stop_server(proc):
    proc.terminate()
    try:
        proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


@pytest.fixture(scope="session")
def base_url():
    url = os.environ.get("TOOLRL_TEST_BASE_URL")
    if url:
        wait_ready(url)
        yield url
        return
    proc, url = spawn_server()
    yield url
    stop_server(proc)


@pytest.fixture(scope="session")
def client(base_url):
    return openai.OpenAI(base_url=base_url + "/v1", api_key="unused", max_retries=0, timeout=300)


@pytest.fixture(scope="session")
def model_id():
    return MODEL_ID
