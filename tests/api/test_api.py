"""OpenAI-SDK integration tests for `toolrl serve` (tests/api/run.sh runs them).

The default model is tiny and its tool calls are often wrong, so tool tests assert the
server's guarantees (only well-formed calls to known tools, exact wire shapes, streamed ==
non-streamed) rather than what the model decides."""
import json
import os
import socket
import threading
import time
import urllib.error
import urllib.request

import openai
import pytest

from conftest import spawn_server, stop_server

WEATHER = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Get the current weather for a city",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
    },
}
SEARCH = {
    "type": "function",
    "function": {
        "name": "web_search",
        "description": "Search the web",
        "parameters": {"type": "object", "properties": {"query": {"type": "string"}}, "required": ["query"]},
    },
}
TOOLS = [WEATHER, SEARCH]
ASK = [{"role": "user", "content": "What is the weather in Paris right now?"}]


def raw(base_url, path, body=None, method=None, headers=None):
    data = body.encode() if isinstance(body, str) else body
    req = urllib.request.Request(base_url + path, data=data, method=method or ("POST" if data is not None else "GET"))
    req.add_header("Content-Type", "application/json")
    for k, v in (headers or {}).items():
        req.add_header(k, v)
    try:
        with urllib.request.urlopen(req, timeout=300) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()


def announce_big_body(base_url, n):
    """Announces an n-byte body and reads the answer the server gives before taking it."""
    host, port = base_url.rsplit("/", 1)[-1].split(":")
    with socket.create_connection((host, int(port)), timeout=30) as s:
        s.sendall(("POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                   "Content-Length: %d\r\n\r\n" % n).encode())
        s.sendall(b"{" * 65536)
        data = b""
        while b"\r\n\r\n" not in data or len(data.split(b"\r\n\r\n", 1)[1]) < 10 or not data.rstrip().endswith(b"}"):
            part = s.recv(65536)
            if not part:
                break
            data += part
    head, body = data.split(b"\r\n\r\n", 1)
    return int(head.split()[1]), body.decode()


def assert_error_shape(text, param=None, code=None, type_="invalid_request_error"):
    body = json.loads(text)
    assert set(body) == {"error"}
    err = body["error"]
    assert set(err) >= {"message", "type", "param", "code"}
    assert isinstance(err["message"], str) and err["message"]
    assert err["type"] == type_
    assert err["param"] == param
    assert err["code"] == code
    return err


def check_message(msg, tool_names=(), finish=None):
    """The server's guarantees on one returned message."""
    assert msg.role == "assistant"
    if msg.content is not None:
        assert "<think>" not in msg.content and "</think>" not in msg.content
        assert "<tool_call>" not in msg.content
    calls = msg.tool_calls or []
    ids = set()
    for c in calls:
        assert c.type == "function"
        assert c.id.startswith("call_") and len(c.id) >= 9 and c.id not in ids
        ids.add(c.id)
        assert c.function.name in tool_names
        assert isinstance(c.function.arguments, str)
        assert isinstance(json.loads(c.function.arguments), dict)
        assert c.function.arguments == json.dumps(json.loads(c.function.arguments), separators=(",", ":"),
                                                  ensure_ascii=False)
    if calls:
        assert msg.content is None or msg.content.strip()
        if finish is not None:
            assert finish == "tool_calls"
    elif finish is not None:
        assert finish in ("stop", "length")
    return calls


def collect_stream(stream):
    """Reassembles a stream exactly as the wire-format rules demand; returns per-choice results."""
    chunks = list(stream)
    assert chunks, "empty stream"
    cid = chunks[0].id
    created = chunks[0].created
    out = {}
    usage = None
    for ch in chunks:
        assert ch.id == cid and ch.created == created and ch.object == "chat.completion.chunk"
        if not ch.choices:
            assert ch.usage is not None
            usage = ch.usage
            continue
        assert len(ch.choices) == 1
        c = ch.choices[0]
        st = out.setdefault(c.index, {"role": 0, "content": "", "reasoning": "", "calls": {}, "finish": []})
        d = c.delta
        if d.role is not None:
            assert d.role == "assistant"
            assert st["role"] == 0 and st["content"] == "" and not st["calls"], "role must come first, once"
            st["role"] += 1
        else:
            assert st["role"] == 1, "first chunk must carry the role"
        if d.content:
            st["content"] += d.content
        extra = getattr(d, "model_extra", None) or {}
        if extra.get("reasoning_content"):
            st["reasoning"] += extra["reasoning_content"]
        for tc in d.tool_calls or []:
            assert isinstance(tc.index, int)
            if tc.index not in st["calls"]:
                assert tc.id and tc.type == "function" and tc.function.name, "new call: id/type/name at once"
                st["calls"][tc.index] = {"id": tc.id, "name": tc.function.name, "args": tc.function.arguments or ""}
            else:
                assert tc.id is None and tc.type is None and tc.function.name is None, "id/type/name sent once"
                st["calls"][tc.index]["args"] += tc.function.arguments or ""
        if c.finish_reason is not None:
            assert d.content is None and not d.tool_calls
            st["finish"].append(c.finish_reason)
    for st in out.values():
        assert len(st["finish"]) == 1, "exactly one finish chunk per choice"
    return out, usage


# ---------------------------------------------------------------- models / health / metrics

def test_health_and_models(client, base_url, model_id):
    status, body = raw(base_url, "/health")
    assert status == 200 and json.loads(body)["status"] == "ok" and json.loads(body)["device"] == "cpu"
    models = client.models.list()
    assert [m.id for m in models.data] == [model_id]
    assert client.models.retrieve(model_id).id == model_id
    with pytest.raises(openai.NotFoundError) as e:
        client.models.retrieve("gpt-nope")
    assert e.value.body["code"] == "model_not_found"


def test_metrics(client, base_url, model_id):
    client.chat.completions.create(model=model_id, messages=[{"role": "user", "content": "Hi"}], max_tokens=2)
    status, text = raw(base_url, "/metrics")
    assert status == 200
    assert 'toolrl_device_info{device="cpu",name=""} 1' in text
    for name in ("toolrl_chat_requests_total", "toolrl_prompt_tokens_total", "toolrl_completion_tokens_total",
                 "toolrl_queue_depth", "toolrl_batch_size", "toolrl_request_duration_seconds_bucket"):
        assert name in text


# ---------------------------------------------------------------- plain chat

def test_plain_completion(client, model_id):
    r = client.chat.completions.create(model=model_id, messages=[{"role": "user", "content": "Say hello."}],
                                       max_tokens=24, temperature=0)
    assert "chatcmpl" in r.id and r.object == "chat.completion" and r.model == model_id
    assert len(r.choices) == 1 and r.choices[0].index == 0
    msg = r.choices[0].message
    assert isinstance(msg.content, str) and msg.content
    assert msg.tool_calls is None
    assert r.choices[0].finish_reason in ("stop", "length")
    u = r.usage
    assert u.prompt_tokens > 0 and 0 < u.completion_tokens <= 24
    assert u.total_tokens == u.prompt_tokens + u.completion_tokens


def test_max_tokens_gives_length(client, model_id):
    r = client.chat.completions.create(model=model_id, messages=[{"role": "user", "content": "Tell a long story."}],
                                       max_completion_tokens=3, temperature=0)
    assert r.choices[0].finish_reason == "length"
    assert r.usage.completion_tokens == 3


def test_stop_sequence(client, model_id):
    base = client.chat.completions.create(model=model_id, messages=[{"role": "user", "content": "Count: 1, 2, 3"}],
                                          max_tokens=30, temperature=0).choices[0].message.content
    word = base.split()[1] if len(base.split()) > 1 else base[-1]
    r = client.chat.completions.create(model=model_id, messages=[{"role": "user", "content": "Count: 1, 2, 3"}],
                                       max_tokens=30, temperature=0, stop=[word])
    assert word not in r.choices[0].message.content
    assert r.choices[0].finish_reason == "stop"
    assert base.startswith(r.choices[0].message.content.rstrip())


def test_n_and_seed(client, model_id):
    kw = dict(model=model_id, messages=[{"role": "user", "content": "Name a colour."}], max_tokens=8,
              temperature=1.0, seed=1234)
    a = client.chat.completions.create(n=2, **kw)
    assert [c.index for c in a.choices] == [0, 1]
    b = client.chat.completions.create(n=2, **kw)
    assert [c.message.content for c in a.choices] == [c.message.content for c in b.choices]


def test_prompt_cache(client, model_id):
    # The same request again: a slot still holds the prompt's keys and values, so all but its
    # last token are reported cached (OpenAI's usage.prompt_tokens_details.cached_tokens),
    # and the seeded output is the same as computed from scratch.
    kw = dict(model=model_id, messages=[{"role": "system", "content": "You answer in one short line."},
                                        {"role": "user", "content": "Name three rivers of Europe."}],
              max_tokens=16, temperature=0.8, seed=77)
    a = client.chat.completions.create(**kw)
    b = client.chat.completions.create(**kw)
    assert b.usage.prompt_tokens == a.usage.prompt_tokens
    assert b.usage.prompt_tokens_details.cached_tokens == b.usage.prompt_tokens - 1
    assert b.choices[0].message.content == a.choices[0].message.content
    # a follow-up turn that repeats the conversation reuses its start; streamed usage says so too
    kw["messages"] = kw["messages"] + [{"role": "assistant", "content": a.choices[0].message.content},
                                       {"role": "user", "content": "And two lakes?"}]
    out, usage = collect_stream(client.chat.completions.create(stream=True, stream_options={"include_usage": True},
                                                               **kw))
    assert a.usage.prompt_tokens - 6 <= usage.prompt_tokens_details.cached_tokens < usage.prompt_tokens


def test_stream_plain_matches_non_stream(client, model_id):
    kw = dict(model=model_id, messages=[{"role": "user", "content": "What is 2+2?"}], max_tokens=20, temperature=0)
    full = client.chat.completions.create(**kw)
    out, usage = collect_stream(client.chat.completions.create(stream=True, stream_options={"include_usage": True},
                                                               **kw))
    assert set(out) == {0}
    assert out[0]["content"] == full.choices[0].message.content
    assert out[0]["finish"] == [full.choices[0].finish_reason]
    assert usage.completion_tokens == full.usage.completion_tokens
    assert usage.prompt_tokens == full.usage.prompt_tokens


def test_stream_without_usage_has_no_usage_chunk(client, model_id):
    chunks = list(client.chat.completions.create(model=model_id, messages=[{"role": "user", "content": "Hi"}],
                                                 max_tokens=4, stream=True))
    assert all(c.choices for c in chunks)
    assert chunks[0].choices[0].delta.role == "assistant"


def test_raw_sse_framing(base_url, model_id):
    status, body = raw(base_url, "/v1/chat/completions", json.dumps(
        {"model": model_id, "messages": [{"role": "user", "content": "Hi"}], "max_tokens": 3, "stream": True,
         "stream_options": {"include_usage": True}}))
    assert status == 200
    events = [e for e in body.split("\n\n") if e]
    assert all(e.startswith("data: ") for e in events)
    assert events[-1] == "data: [DONE]"
    last = json.loads(events[-2][6:])
    assert last["choices"] == [] and last["usage"]["completion_tokens"] >= 1
    first = json.loads(events[0][6:])
    assert first["choices"][0]["delta"] == {"role": "assistant", "content": ""}
    assert first["usage"] is None


# ---------------------------------------------------------------- tools

@pytest.mark.parametrize("tool_choice", [None, "auto", "required", "none",
                                         {"type": "function", "function": {"name": "get_weather"}}])
def test_tools_non_stream(client, model_id, tool_choice):
    kw = {} if tool_choice is None else {"tool_choice": tool_choice}
    r = client.chat.completions.create(model=model_id, messages=ASK, tools=TOOLS, max_tokens=48, temperature=0, **kw)
    ch = r.choices[0]
    names = ("get_weather", "web_search")
    if tool_choice == "none":
        names = ()
    elif isinstance(tool_choice, dict):
        names = ("get_weather",)
    check_message(ch.message, names, ch.finish_reason)


def test_tools_parallel_false(client, model_id):
    r = client.chat.completions.create(model=model_id, messages=ASK, tools=TOOLS, parallel_tool_calls=False,
                                       tool_choice="required", max_tokens=48, temperature=0)
    calls = check_message(r.choices[0].message, ("get_weather", "web_search"), r.choices[0].finish_reason)
    assert len(calls) <= 1


def test_tools_stream_matches_non_stream(client, model_id):
    kw = dict(model=model_id, messages=ASK, tools=TOOLS, max_tokens=64, temperature=0)
    full = client.chat.completions.create(**kw)
    msg = full.choices[0].message
    check_message(msg, ("get_weather", "web_search"), full.choices[0].finish_reason)
    out, _ = collect_stream(client.chat.completions.create(stream=True, **kw))
    st = out[0]
    assert st["content"] == (msg.content or "")
    assert st["reasoning"] == ((msg.model_extra or {}).get("reasoning_content") or "")
    assert st["finish"] == [full.choices[0].finish_reason]
    streamed = [(c["name"], json.loads(c["args"])) for _, c in sorted(st["calls"].items())]
    assert streamed == [(c.function.name, json.loads(c.function.arguments)) for c in (msg.tool_calls or [])]


def test_history_with_tool_results(client, model_id):
    messages = [
        {"role": "system", "content": "You are a helpful assistant."},
        {"role": "user", "content": "What is the weather in Paris?"},
        {"role": "assistant", "content": None, "tool_calls": [
            {"id": "call_abc123", "type": "function",
             "function": {"name": "get_weather", "arguments": "{\"city\": \"Paris\"}"}}]},
        {"role": "tool", "tool_call_id": "call_abc123", "name": "get_weather", "content": "18 C and sunny"},
    ]
    r = client.chat.completions.create(model=model_id, messages=messages, tools=TOOLS, max_tokens=40, temperature=0)
    check_message(r.choices[0].message, ("get_weather", "web_search"), r.choices[0].finish_reason)
    # the same history without tools renders as plain ChatML and still answers
    r2 = client.chat.completions.create(model=model_id, messages=messages, max_tokens=16, temperature=0)
    assert r2.choices[0].message.tool_calls is None


# ---------------------------------------------------------------- errors

def bad(client, model_id, param, code=None, **kw):
    args = dict(model=model_id, messages=[{"role": "user", "content": "hi"}], max_tokens=2)
    args.update(kw)
    with pytest.raises(openai.BadRequestError) as e:
        client.chat.completions.create(**args)
    err = e.value.body
    assert err["type"] == "invalid_request_error"
    assert err["param"] == param
    assert err["code"] == code
    assert err["message"]
    return err


def test_errors_validation(client, model_id):
    bad(client, model_id, "tools", tools=[])
    bad(client, model_id, "tool_choice", tool_choice="required")
    bad(client, model_id, "tool_choice.function.name", tools=TOOLS,
        tool_choice={"type": "function", "function": {"name": "nope"}})
    bad(client, model_id, "messages[0].role", messages=[{"role": "tool", "tool_call_id": "x", "content": "r"}])
    bad(client, model_id, "messages[1].tool_calls[0].function.arguments", messages=[
        {"role": "user", "content": "hi"},
        {"role": "assistant", "content": None, "tool_calls": [
            {"id": "c1", "type": "function", "function": {"name": "get_weather", "arguments": "{"}}]}])
    bad(client, model_id, "messages[2].tool_call_id", messages=[
        {"role": "user", "content": "hi"},
        {"role": "assistant", "content": None, "tool_calls": [
            {"id": "c1", "type": "function", "function": {"name": "get_weather", "arguments": "{}"}}]},
        {"role": "tool", "tool_call_id": "c9", "content": "r"}])
    bad(client, model_id, "messages", messages=[])
    bad(client, model_id, "temperature", temperature=5)
    bad(client, model_id, "n", n=0)
    bad(client, model_id, "messages[0].content", messages=[{"role": "user", "content": 3}])
    bad(client, model_id, "tools[0].function.name",
        tools=[{"type": "function", "function": {"name": "has space"}}])


def test_error_model_not_found(client):
    with pytest.raises(openai.NotFoundError) as e:
        client.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "hi"}])
    assert e.value.body["code"] == "model_not_found" and e.value.body["param"] == "model"


def test_error_raw_bodies(base_url, model_id):
    status, body = raw(base_url, "/v1/chat/completions", "{\"model\": ")
    assert status == 400
    assert_error_shape(body)
    status, body = raw(base_url, "/v1/chat/completions", "[1, 2]")
    assert status == 400
    assert_error_shape(body)
    status, body = raw(base_url, "/v1/chat/completions", b"\xff\xfe garbage")
    assert status == 400
    assert_error_shape(body)
    status, body = announce_big_body(base_url, 5 << 20)
    assert status == 413
    assert_error_shape(body, code="request_too_large")
    status, body = raw(base_url, "/v1/nothing-here")
    assert status == 404
    assert_error_shape(body, code="not_found")
    status, body = raw(base_url, "/v1/chat/completions")
    assert status == 405
    # still alive after all that
    status, _ = raw(base_url, "/health")
    assert status == 200


def raw_headers(base_url, path, method="GET", body=None, content_type="application/json"):
    """Like raw, for the answers common to every endpoint: (status, headers, body text)."""
    req = urllib.request.Request(base_url + path, data=body, method=method)
    if body is not None:
        req.add_header("Content-Type", content_type)
    try:
        with urllib.request.urlopen(req, timeout=60) as r:
            return r.status, r.headers, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.headers, e.read().decode()


def test_routing_answers(base_url, model_id):
    """The route table's answers (server/routes.c): 405 names the path's methods in the message
    and in Allow, GET endpoints answer HEAD, a trailing slash is another (unknown) path."""
    status, headers, body = raw_headers(base_url, "/v1/files", method="PUT", body=b"{}")
    assert status == 405 and headers["Allow"] == "GET, HEAD, POST"
    assert_error_shape(body, code="method_not_allowed")
    assert json.loads(body)["error"]["message"] == "method not allowed; use GET or POST /v1/files"
    status, headers, body = raw_headers(base_url, "/v1/chat/completions")
    assert status == 405 and headers["Allow"] == "POST"
    assert json.loads(body)["error"]["message"] == "method not allowed; use POST /v1/chat/completions"
    status, headers, _ = raw_headers(base_url, "/v1/fine_tuning/jobs/ftjob-x", method="POST", body=b"{}")
    assert status == 405 and headers["Allow"] == "GET, HEAD"
    status, headers, body = raw_headers(base_url, "/v1/models", method="HEAD")
    assert status == 200 and body == "" and headers["Content-Type"] == "application/json"
    status, _, _ = raw_headers(base_url, "/v1/evals", method="HEAD")
    assert status == 200
    for path in ("/v1/files/", "/v1/models/", "/health/", "/v1/files/file-x/other"):
        status, _, body = raw_headers(base_url, path)
        assert status == 404, path
        assert_error_shape(body, code="not_found")
    status, _, body = raw_headers(base_url, "/v1/models/" + model_id)
    assert status == 200 and json.loads(body)["id"] == model_id


def test_routing_without_store():
    """--no-db: every Files / Fine-tuning / Evals path answers the no-store 404, whatever the
    method; a multipart upload included (it was a 400 about the content type)."""
    proc, base = spawn_server("--no-db", "--slots", "1", "--ctx", "512")
    try:
        msg = "this server runs without a job store (start it with --db PATH)"
        for method, path in (("GET", "/v1/files"), ("PUT", "/v1/files"), ("GET", "/v1/fine_tuning/jobs/ftjob-x"),
                             ("GET", "/v1/evals"), ("POST", "/v1/evals/bfcl/runs")):
            status, _, body = raw_headers(base, path, method=method, body=b"{}" if method != "GET" else None)
            assert status == 404, (method, path)
            assert json.loads(body)["error"]["message"] == msg
        form = (b"--XyZ\r\nContent-Disposition: form-data; name=\"purpose\"\r\n\r\nfine-tune\r\n--XyZ--\r\n")
        status, _, body = raw_headers(base, "/v1/files", method="POST", body=form,
                                      content_type="multipart/form-data; boundary=XyZ")
        assert status == 404 and json.loads(body)["error"]["message"] == msg
        status, _, _ = raw_headers(base, "/v1/models")
        assert status == 200
    finally:
        stop_server(proc)


def test_client_disconnect_frees_sequence(base_url, model_id):
    req = urllib.request.Request(base_url + "/v1/chat/completions", data=json.dumps(
        {"model": model_id, "messages": [{"role": "user", "content": "Write a very long essay."}],
         "max_tokens": 1500, "stream": True}).encode(), method="POST")
    req.add_header("Content-Type", "application/json")
    r = urllib.request.urlopen(req, timeout=120)
    r.readline()
    r.close()
    deadline = time.time() + 60
    active = None
    while time.time() < deadline:
        _, text = raw(base_url, "/metrics")
        active = [ln for ln in text.splitlines() if ln.startswith("toolrl_active_sequences ")][0]
        if active.endswith(" 0"):
            break
        time.sleep(0.5)
    assert active.endswith(" 0"), active


# ---------------------------------------------------------------- a second server: auth and 429

@pytest.fixture(scope="module")
def small_server():
    proc, base = spawn_server("--slots", "1", "--max-queue", "1", "--ctx", "1024",
                              env=dict(os.environ, TOOLRL_API_KEY="sekrit"))
    yield base
    stop_server(proc)


def test_auth(small_server, model_id):
    status, _ = raw(small_server, "/health")
    assert status == 200
    status, body = raw(small_server, "/v1/models")
    assert status == 401
    assert_error_shape(body, code="invalid_api_key", type_="authentication_error")
    wrong = openai.OpenAI(base_url=small_server + "/v1", api_key="wrong", max_retries=0)
    with pytest.raises(openai.AuthenticationError):
        wrong.models.list()
    good = openai.OpenAI(base_url=small_server + "/v1", api_key="sekrit", max_retries=0)
    r = good.chat.completions.create(model=model_id, messages=[{"role": "user", "content": "hi"}], max_tokens=2)
    assert r.choices[0].message.content is not None


def test_queue_full_gives_429(small_server, model_id):
    c = openai.OpenAI(base_url=small_server + "/v1", api_key="sekrit", max_retries=0, timeout=300)
    results = []

    def one():
        try:
            c.chat.completions.create(model=model_id, messages=[{"role": "user", "content": "Write a long story."}],
                                      max_tokens=200)
            results.append("ok")
        except openai.RateLimitError as e:
            assert e.body["type"] == "rate_limit_error"
            results.append(429)
        except Exception as e:  # noqa: BLE001
            results.append(repr(e))

    threads = [threading.Thread(target=one) for _ in range(5)]
    for t in threads:
        t.start()
        time.sleep(0.05)
    for t in threads:
        t.join()
    assert results.count(429) >= 1, results
    assert results.count("ok") >= 1, results
    assert all(r in ("ok", 429) for r in results), results


# ---------------------------------------------------------------- constrained decoding

def test_required_and_named_are_enforced(client, model_id):
    """The untrained model writes no call by itself; under the token mask it must."""
    for choice, allowed in (("required", {"get_weather", "web_search"}),
                            ({"type": "function", "function": {"name": "web_search"}}, {"web_search"})):
        r = client.chat.completions.create(model=model_id, messages=ASK, tools=TOOLS, tool_choice=choice,
                                           parallel_tool_calls=False, max_tokens=400, temperature=0)
        ch = r.choices[0]
        assert ch.finish_reason == "tool_calls", (choice, ch)
        assert len(ch.message.tool_calls) == 1
        call = ch.message.tool_calls[0]
        assert call.function.name in allowed
        assert isinstance(json.loads(call.function.arguments), dict)


def test_response_format_json_object(client, model_id):
    r = client.chat.completions.create(model=model_id, max_tokens=300, temperature=0,
                                       messages=[{"role": "user", "content": "Describe a cat as JSON."}],
                                       response_format={"type": "json_object"})
    ch = r.choices[0]
    text = ch.message.content
    assert text.lstrip().startswith("{")
    if ch.finish_reason == "stop":
        assert isinstance(json.loads(text), dict)


BOOKING = {
    "type": "function",
    "function": {
        "name": "book_table",
        "description": "Book a restaurant table",
        "parameters": {
            "type": "object",
            "properties": {
                "restaurant": {"type": "string"},
                "people": {"type": "integer"},
                "time": {"type": "string", "enum": ["18:00", "19:00", "20:00"]},
                "outdoor": {"type": "boolean"},
            },
            "required": ["restaurant", "people", "time"],
        },
    },
}


def check_booking(args):
    props = BOOKING["function"]["parameters"]["properties"]
    assert set(args) <= set(props), args  # only declared arguments
    assert {"restaurant", "people", "time"} <= set(args), args  # every required one
    assert isinstance(args["restaurant"], str)
    assert isinstance(args["people"], int) and not isinstance(args["people"], bool)
    assert args["time"] in props["time"]["enum"]
    if "outdoor" in args:
        assert isinstance(args["outdoor"], bool)


def test_arguments_follow_the_tool_schema(client, model_id):
    """Under tool_choice the mask also holds the arguments to the tool's parameters schema:
    declared names only, required ones present, integer/boolean/enum values; streamed too."""
    msgs = [{"role": "user", "content": "Book a table for four at Chez Anna at 7 pm."}]
    choice = {"type": "function", "function": {"name": "book_table"}}
    r = client.chat.completions.create(model=model_id, messages=msgs, tools=[WEATHER, BOOKING], tool_choice=choice,
                                       max_tokens=400, temperature=0)
    ch = r.choices[0]
    assert ch.finish_reason == "tool_calls", ch
    for call in ch.message.tool_calls:
        assert call.function.name == "book_table"
        check_booking(json.loads(call.function.arguments))
    out, _ = collect_stream(client.chat.completions.create(
        model=model_id, messages=msgs, tools=[WEATHER, BOOKING], tool_choice=choice, max_tokens=400,
        temperature=0, stream=True))
    calls = out[0]["calls"]
    assert [c["args"] for c in calls.values()] == [c.function.arguments for c in ch.message.tool_calls]


PERSON = {
    "type": "object",
    "properties": {
        "name": {"type": "string"},
        "age": {"type": "integer"},
        "pets": {"type": "array", "items": {"type": "string"}, "maxItems": 3},
        "role": {"enum": ["admin", "user"]},
    },
    "required": ["name", "age", "role"],
    "additionalProperties": False,
}


def test_response_format_json_schema(client, model_id):
    r = client.chat.completions.create(
        model=model_id, max_tokens=300, temperature=0,
        messages=[{"role": "user", "content": "Describe the user Ada, 36 years old, as JSON."}],
        response_format={"type": "json_schema", "json_schema": {"name": "person", "schema": PERSON, "strict": True}})
    ch = r.choices[0]
    assert ch.finish_reason == "stop", ch
    obj = json.loads(ch.message.content)
    assert set(obj) <= set(PERSON["properties"]) and {"name", "age", "role"} <= set(obj), obj
    assert isinstance(obj["name"], str) and isinstance(obj["age"], int) and obj["role"] in ("admin", "user")
    assert all(isinstance(p, str) for p in obj.get("pets", [])) and len(obj.get("pets", [])) <= 3
    # without a schema: any object
    r = client.chat.completions.create(
        model=model_id, max_tokens=200, temperature=0, messages=[{"role": "user", "content": "A cat as JSON."}],
        response_format={"type": "json_schema", "json_schema": {"name": "any"}})
    assert r.choices[0].message.content.lstrip().startswith("{")


def test_response_format_json_schema_errors(client, model_id):
    msgs = [{"role": "user", "content": "hi"}]
    bad(client, model_id, "response_format.json_schema", messages=msgs, response_format={"type": "json_schema"})
    bad(client, model_id, "response_format.json_schema.name", messages=msgs,
        response_format={"type": "json_schema", "json_schema": {"schema": PERSON}})
    bad(client, model_id, "response_format.json_schema.schema", messages=msgs,
        response_format={"type": "json_schema", "json_schema": {"name": "p", "schema": [1]}})
    bad(client, model_id, "response_format.json_schema.schema.type", messages=msgs,
        response_format={"type": "json_schema", "json_schema": {"name": "p", "schema": {"type": "array"}}})
    bad(client, model_id, "response_format.type", messages=msgs, response_format={"type": "yaml"})


# ---------------------------------------------------------------- logprobs

def test_logprobs_non_stream_and_stream(client, model_id):
    kw = dict(model=model_id, max_tokens=8, temperature=0, logprobs=True, top_logprobs=3,
              messages=[{"role": "user", "content": "Say hello."}])
    r = client.chat.completions.create(**kw)
    lp = r.choices[0].logprobs.content
    assert len(lp) == r.usage.completion_tokens
    for t in lp:
        assert t.logprob <= 0 and len(t.top_logprobs) == 3
        assert t.top_logprobs[0].token == t.token  # greedy picks the most likely token
        assert abs(t.top_logprobs[0].logprob - t.logprob) < 1e-6
        assert t.top_logprobs[0].logprob >= t.top_logprobs[1].logprob >= t.top_logprobs[2].logprob
        assert bytes(t.bytes).decode("utf-8", "replace") == t.token or "\ufffd" in t.token
    streamed = []
    for ch in client.chat.completions.create(stream=True, **kw):
        for c in ch.choices:
            if c.logprobs and c.logprobs.content:
                streamed.extend(c.logprobs.content)
    assert [t.token for t in streamed] == [t.token for t in lp]
    assert [round(t.logprob, 5) for t in streamed] == [round(t.logprob, 5) for t in lp]


def test_logprobs_validation(client, model_id):
    msgs = [{"role": "user", "content": "a"}]
    for extra, param in (({"top_logprobs": 2}, "top_logprobs"), ({"logprobs": True, "top_logprobs": 21}, "top_logprobs"),
                         ({"logprobs": "yes"}, "logprobs")):
        with pytest.raises(openai.BadRequestError) as ei:
            client.chat.completions.create(model=model_id, messages=msgs, max_tokens=2, **extra)
        assert ei.value.body["param"] == param
