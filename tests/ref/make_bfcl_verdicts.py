#!/usr/bin/env python3
"""Builds tests/fixtures/bfcl_verdicts.jsonl: verdicts of the official BFCL checker (PyPI package
`bfcl-eval`) on model outputs made up for rows of the shared BFCL files, so that tests/test_bfcl.c
can check that eval/bfcl_checker.c agrees with it on every row.

Usage (from the repository root):
    python3 tests/ref/make_bfcl_verdicts.py [--shared DIR] [--out FILE] [--venv DIR]

If `bfcl_eval` cannot be imported, a virtual environment is created at --venv (default
/tmp/toolrl-bfcl-venv) and `bfcl-eval==2026.3.23` (the release matching the shared data's
commit, 2026-03-23) is installed into it with pip, then the script re-runs itself there. The
package pulls in heavy dependencies (torch via sentence-transformers: several GB); its import
chain also needs `soundfile`, which qwen-agent uses but does not declare, so it is installed too.

For every row of each shared category, the script makes model outputs the way a model would
produce them: the JSON value of the first <tool_call> block (what Tool-N1's BFCL handler
passes on), i.e. a list of {"name", "arguments"} calls. It builds a correct call list from the
possible answers, then variants of it: other allowed values, omitted optional parameters, a
wrong value, a wrong type, int given for float (accepted) and float for int (rejected), a
missing required or non-optional parameter, an extra parameter, a wrong function name, a
missing or duplicated call, shuffled parallel calls, upper-cased and punctuated strings,
arguments given as a JSON string, and malformed outputs (null, "", {}, a bare dict, items
without "name"/"arguments", unhashable names). Some rows also carry the raw reply text; their
model_result is what the handler's regex + json.loads extracts from it.

The verdict comes from bfcl-eval's own runner helpers (_evaluate_single_ast_entry and
_evaluate_single_relevance_entry in bfcl_eval.eval_checker.eval_runner) with a handler whose
decode_ast does what Tool-N1's eval/bfcl_handler.py does: [{c["name"]: c["arguments"]} ...].
Each output line: {"category", "id", "variant", "model_result", ["raw"], "valid", "error_type"}.
Everything is seeded, so a re-run gives the same file.
"""
import argparse
import copy
import json
import os
import random
import re
import subprocess
import sys

BFCL_EVAL_VERSION = "2026.3.23"
CATEGORIES = [
    "simple_python", "multiple", "parallel", "parallel_multiple",
    "live_simple", "live_multiple", "live_parallel", "live_parallel_multiple",
    "irrelevance", "live_irrelevance", "live_relevance",
]
MODEL_NAME = "Qwen_Qwen3-8B"  # a prompting model whose config does not rename "." to "_"


def ensure_bfcl_eval(venv):
    try:
        import bfcl_eval  # noqa: F401
        return
    except ImportError:
        pass
    if os.environ.get("TOOLRL_BFCL_REEXEC"):
        sys.exit("bfcl_eval still not importable inside %s" % venv)
    py = os.path.join(venv, "bin", "python")
    if not os.path.exists(py):
        print("creating %s and installing bfcl-eval==%s (large download)" % (venv, BFCL_EVAL_VERSION), file=sys.stderr)
        subprocess.check_call([sys.executable, "-m", "venv", venv])
    subprocess.check_call([py, "-m", "pip", "install", "-q", "bfcl-eval==" + BFCL_EVAL_VERSION, "soundfile"])
    env = dict(os.environ, TOOLRL_BFCL_REEXEC="1")
    os.execve(py, [py] + sys.argv, env)


def load_jsonl(path):
    with open(path, encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


# ---- Tool-N1's BFCL handler, re-stated -------------------------------------------------------

def handler_extract(text):
    """First <tool_call>...</tool_call> block, stripped, json.loads'd; None on failure."""
    m = re.search(r"<tool_call>(.*?)</tool_call>", text, flags=re.DOTALL)
    if not m:
        return None
    try:
        return json.loads(m.group(1).strip())
    except json.JSONDecodeError:
        return None


class ToolN1Handler:
    def decode_ast(self, result, language=None, has_tool_call_tag=False):
        decoded = []
        for call in result:
            decoded.append({call["name"]: call["arguments"]})
        return decoded


# ---- model outputs ---------------------------------------------------------------------------

def first_value(allowed):
    for a in allowed:
        if a != "":
            return True, a
    return False, None


def realize(v, rng, mode):
    """A possible answer for a dict parameter lists allowed values per key: pick one each."""
    if isinstance(v, dict) and v and all(isinstance(x, list) for x in v.values()):
        out = {}
        for k, allowed in v.items():
            choices = [a for a in allowed if a != ""]
            if (mode == "min" and "" in allowed) or not choices:
                continue
            out[k] = realize(choices[0] if mode != "random" else rng.choice(choices), rng, mode)
        return out
    if isinstance(v, list) and v and all(isinstance(x, dict) for x in v):
        return [realize(x, rng, mode) for x in v]
    return v


def build_calls(gt, rng, mode):
    """mode: 'first' value, 'random' value, or 'min' (omit optional params)."""
    calls = []
    for item in gt:
        (fname, params), = item.items()
        args = {}
        for p, allowed in params.items():
            if mode == "min" and "" in allowed:
                continue
            choices = [a for a in allowed if a != ""]
            if not choices:
                continue
            args[p] = realize(copy.deepcopy(choices[0] if mode != "random" else rng.choice(choices)), rng, mode)
        calls.append({"name": fname, "arguments": args})
    return calls


def schema_of(entry, fname):
    for f in entry["function"]:
        if f["name"] == fname:
            return f
    return None


def mutate_value(v, rng):
    if isinstance(v, bool):
        return not v
    if isinstance(v, int):
        return v + rng.choice([1, -1, 7])
    if isinstance(v, float):
        return v + 1.5
    if isinstance(v, str):
        return v + "_zz" if rng.random() < 0.5 else "zz" + v
    if isinstance(v, list):
        return v + [v[0]] if v else ["zz"]
    if isinstance(v, dict):
        w = dict(v)
        w["zz_extra"] = 1
        return w
    return "zz"


def wrong_type_value(v):
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (int, float)):
        return str(v)
    if isinstance(v, str):
        return 12345
    if isinstance(v, list):
        return json.dumps(v)
    if isinstance(v, dict):
        return json.dumps(v)
    return 0


def shout(v):
    if isinstance(v, str):
        s = v.upper().replace(" ", " - ")
        return s + "."
    if isinstance(v, list):
        return [shout(x) for x in v]
    return v


def pick_arg(calls, rng, pred=lambda k, v: True):
    cands = [(i, k) for i, c in enumerate(calls) for k, v in c["arguments"].items() if pred(k, v)]
    return rng.choice(cands) if cands else None


def ast_variants(entry, gt, rng):
    base = build_calls(gt, rng, "first")
    out = [("correct", base)]
    pool = []

    def add(name, calls):
        pool.append((name, calls))

    def variant(name, change, pred=lambda k, v: True):
        """The base calls with change(arguments, key) applied to one argument pred picks."""
        c = copy.deepcopy(base)
        pick = pick_arg(c, rng, pred)
        if pick:
            i, k = pick
            change(c[i]["arguments"], k)
            add(name, c)

    def set_to(f):
        return lambda a, k: a.__setitem__(k, f(a[k]))

    def first_item_wrong_type(a, k):
        a[k][0] = wrong_type_value(a[k][0])

    def dict_drop(a, k):
        del a[k][rng.choice(list(a[k]))]

    def dict_change(a, k):
        kk = rng.choice(list(a[k]))
        a[k][kk] = mutate_value(a[k][kk], rng)

    add("correct_random_values", build_calls(gt, rng, "random"))
    add("correct_min_params", build_calls(gt, rng, "min"))
    variant("wrong_value", set_to(lambda v: mutate_value(v, rng)))
    variant("wrong_type", set_to(wrong_type_value))
    variant("int_for_float", set_to(int), lambda k, v: isinstance(v, float) and v == int(v) and abs(v) < 1e15)
    variant("float_for_int", set_to(float), lambda k, v: isinstance(v, int) and not isinstance(v, bool))
    c = copy.deepcopy(base)
    sch = [schema_of(entry, x["name"]) for x in c]
    req = [(i, k) for i, x in enumerate(c) if sch[i] for k in sch[i]["parameters"].get("required", []) if k in x["arguments"]]
    if req:
        i, k = rng.choice(req)
        del c[i]["arguments"][k]
        add("missing_required", c)
    c = copy.deepcopy(base)
    opt = [(i, k) for i, x in enumerate(c) if sch[i] for k in x["arguments"]
           if k not in sch[i]["parameters"].get("required", [])]
    if opt:
        i, k = rng.choice(opt)
        del c[i]["arguments"][k]
        add("missing_optional", c)
    c = copy.deepcopy(base)
    c[rng.randrange(len(c))]["arguments"]["zz_unexpected"] = 1
    add("extra_param", c)
    c = copy.deepcopy(base)
    c[rng.randrange(len(c))]["name"] += "_x"
    add("wrong_function", c)
    c = copy.deepcopy(base)
    del c[rng.randrange(len(c))]
    add("missing_call", c)
    c = copy.deepcopy(base)
    c.append(copy.deepcopy(c[0]))
    add("extra_call", c)
    if len(base) > 1:
        add("reordered_calls", list(reversed(copy.deepcopy(base))))
    variant("shouted_string", set_to(shout),
            lambda k, v: isinstance(v, str) or (isinstance(v, list) and any(isinstance(x, str) for x in v)))
    variant("wrong_item_type", first_item_wrong_type, lambda k, v: isinstance(v, list) and v)
    variant("dict_missing_key", dict_drop, lambda k, v: isinstance(v, dict) and v)
    variant("dict_wrong_value", dict_change, lambda k, v: isinstance(v, dict) and v)
    variant("dict_list_changed", set_to(lambda v: v[:-1] if rng.random() < 0.5 else list(reversed(v))),
            lambda k, v: isinstance(v, list) and v and all(isinstance(x, dict) for x in v))
    c = copy.deepcopy(base)
    c[0]["arguments"] = json.dumps(c[0]["arguments"])
    add("arguments_as_string", c)
    rng.shuffle(pool)
    out.extend(pool[:2])
    out.extend(v for v in pool[2:] if v[0].startswith("dict_"))
    return out


MALFORMED = [
    ("null", None), ("empty_list", []), ("empty_string", ""), ("empty_dict", {}), ("text", "I cannot help"),
    ("number", 5), ("bare_dict", {"name": "f", "arguments": {}}), ("no_arguments", [{"name": "f"}]),
    ("no_name", [{"arguments": {}}]), ("list_item", [["f", {}]]), ("unhashable_name", [{"name": ["f"], "arguments": {}}]),
    ("numeric_name", [{"name": 5, "arguments": {}}]), ("arguments_list", [{"name": "f", "arguments": [1]}]),
]


def relevance_variants(entry, rng):
    f0 = entry["function"][0]["name"] if entry["function"] else "f"
    props = entry["function"][0]["parameters"].get("properties", {}) if entry["function"] else {}
    args = {k: "x" for k in list(props)[:1]}
    return [("call", [{"name": f0, "arguments": args}]), ("empty_list", []), ("null", None),
            ("unknown_function_call", [{"name": f0 + "_x", "arguments": {}}]),
            ("bad_arguments", [{"name": f0, "arguments": "x"}]), ("no_name", [{"arguments": {}}])]


def raw_of(model_result, rng):
    body = json.dumps(model_result)
    return rng.choice([
        "<think>Let me call the tool.</think>\n<tool_call>\n%s\n</tool_call>" % body,
        "<think>ok</think><tool_call>%s</tool_call><tool_call>[]</tool_call>" % body,
        "Sure.\n<tool_call> %s </tool_call>\ntrailing text" % body,
    ])


RAW_MALFORMED = [
    "<think>no call needed</think> The functions do not fit.",
    "<think>x</think><tool_call>[{\"name\": \"f\", \"arguments\": {}</tool_call>",
    "<tool_call>[{\"name\": \"f\", \"arguments\": {\"a\": 1,}}]</tool_call>",
    "<tool_call>[]</tool_call><tool_call>[{\"name\": \"f\", \"arguments\": {}}]</tool_call>",
    "<tool_call>[{\"name\": \"f\", \"arguments\": {}}]",
]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--shared", default=os.environ.get("TOOLRL_SHARED", "../shared"))
    ap.add_argument("--out", default="tests/fixtures/bfcl_verdicts.jsonl")
    ap.add_argument("--venv", default="/tmp/toolrl-bfcl-venv")
    ap.add_argument("--seed", type=int, default=20250524)
    args = ap.parse_args()
    ensure_bfcl_eval(args.venv)

    from bfcl_eval.constants.enums import Language, ReturnFormat
    from bfcl_eval.eval_checker.eval_runner import _evaluate_single_ast_entry, _evaluate_single_relevance_entry

    handler = ToolN1Handler()
    rng = random.Random(args.seed)
    bfcl_dir = os.path.join(args.shared, "data", "bfcl")
    rows = []
    counts = {}
    for cat in CATEGORIES:
        qpath = os.path.join(bfcl_dir, "BFCL_v4_%s.json" % cat)
        entries = load_jsonl(qpath)
        apath = os.path.join(bfcl_dir, "possible_answer", "BFCL_v4_%s.json" % cat)
        answers = {a["id"]: a for a in load_jsonl(apath)} if os.path.exists(apath) else None
        relevance = "relevance" in cat  # also matches "irrelevance"
        for n, entry in enumerate(entries):
            if relevance:
                variants = relevance_variants(entry, rng)
                if n >= 20:
                    variants = [variants[0], rng.choice(variants[1:])]
            else:
                gt = answers[entry["id"]]["ground_truth"]
                variants = ast_variants(entry, gt, rng)
                if n % 10 == 0:
                    variants += [rng.choice(MALFORMED)]
            for vname, model_result in variants:
                model_result = json.loads(json.dumps(model_result))
                row = {"category": cat, "id": entry["id"], "variant": vname}
                if n % 5 == 0 and rng.random() < 0.5:
                    raw = raw_of(model_result, rng)
                    row["raw"] = raw
                    model_result = handler_extract(raw)
                elif n % 23 == 0:
                    raw = rng.choice(RAW_MALFORMED)
                    row["raw"] = raw
                    row["variant"] = "raw_malformed"
                    model_result = handler_extract(raw)
                row["model_result"] = model_result
                item = copy.deepcopy(model_result)
                prompt = copy.deepcopy(entry)
                try:
                    if relevance:
                        res = _evaluate_single_relevance_entry(handler, entry["id"], item, prompt, MODEL_NAME, cat)
                    else:
                        res = _evaluate_single_ast_entry(handler, entry["id"], item, copy.deepcopy(gt), prompt,
                                                         MODEL_NAME, cat, Language.PYTHON, ReturnFormat.PYTHON, False)
                    row["valid"] = bool(res["valid"])
                    row["error_type"] = "" if res["valid"] else res.get("error_type", "")
                except Exception as ex:  # the checker itself raised: the C side must report an error
                    row["valid"] = None
                    row["error_type"] = "exception:" + type(ex).__name__
                rows.append(row)
                counts[cat] = counts.get(cat, 0) + 1

    os.makedirs(os.path.dirname(args.out) or ".", exist_ok=True)
    with open(args.out, "w", encoding="utf-8") as f:
        for r in rows:
            f.write(json.dumps(r, ensure_ascii=False) + "\n")
    valid = sum(1 for r in rows if r["valid"])
    print("wrote %d rows (%d valid) to %s" % (len(rows), valid, args.out))
    for cat in CATEGORIES:
        print("  %-24s %d" % (cat, counts.get(cat, 0)))


if __name__ == "__main__":
    main()
