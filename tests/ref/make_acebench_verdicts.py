#!/usr/bin/env python3
"""Builds tests/fixtures/acebench_verdicts.jsonl: verdicts of the official ACEBench evaluation
code on model outputs made up for every row of the shared ACEBench files (normal single-prompt,
normal multi-turn and special), so that tests/test_acebench.c can check that eval/acebench.c
agrees with it on every row and candidate.

Usage (from the repository root):
    python3 tests/ref/make_acebench_verdicts.py ACEBENCH [--shared DIR] [--out FILE]

ACEBENCH is the ACEBench/ACEBench repository at commit e6db74b735ead22c24f27367606a9408573b848f:
either a checkout (holding eval_main.py) or a bare git directory, from which the few files the
evaluation needs are extracted at that commit into a temporary folder. No ACEBench code is
copied into this repository.

The verdicts come from the official per-file functions in eval_main.py, unchanged:
normal_single_turn_eval (atom, single_turn, similar_api, preference), normal_multi_turn_eval
(one turn at a time) and special_eval. They are called with one row at a time; their file
writers (save_score_as_json, convert_result_to_excel) are replaced by a function that keeps the
per-row error entry in memory, and pandas / openpyxl (used only for the Excel report) are
stubbed so that nothing has to be installed.

Candidates, in the official output format "[ApiName(key='value', ...)]" (values written with
Python's repr()):
  normal rows: the gold answer (every alternative when there are several), then some of: a
  wrong value, a missing required parameter, a missing optional parameter, an extra
  parameter, a wrong type, a wrong function name, a missing or an extra call, the calls in
  reverse order, an int for a float and a float for an int, a string upper-cased and
  punctuated, a string with text appended (the official rule is a substring test), a nested
  dict key dropped or changed, and some malformed outputs.
  special rows: the official phrase built from the answer, and wrong ones (a name or value
  left out, the phrase changed, a plain-language reply, a Tool-N1 style reply with a call).
Each output line: {"category", "id", "variant", "output", "valid", "error_type"}; "valid" is
null and error_type "exception:<Type>" where the official code itself raised. Seeded: a re-run
gives the same file.
"""
import argparse
import copy
import io
import json
import os
import random
import subprocess
import sys
import tarfile
import tempfile
import types

PINNED = "e6db74b735ead22c24f27367606a9408573b848f"
NEEDED = ["eval_main.py", "category.py", "model_eval", "model_inference/utils.py",
          "model_inference/prompt_en.py", "model_inference/prompt_zh.py"]
NORMAL = [
    "normal_atom_bool", "normal_atom_enum", "normal_atom_number", "normal_atom_list",
    "normal_atom_object_short", "normal_atom_object_deep", "normal_single_turn_single_function",
    "normal_single_turn_parallel_function", "normal_similar_api", "normal_preference",
]
MULTI_TURN = ["normal_multi_turn_user_adjust", "normal_multi_turn_user_switch"]
SPECIAL = ["special_incomplete", "special_error_param", "special_irrelevant"]


def official_root(path):
    """A folder holding the needed files at the pinned commit."""
    if os.path.exists(os.path.join(path, "eval_main.py")):
        try:
            head = subprocess.check_output(["git", "-C", path, "rev-parse", "HEAD"], text=True).strip()
            if head != PINNED:
                print("warning: %s is at %s, not the pinned %s" % (path, head, PINNED), file=sys.stderr)
        except (OSError, subprocess.CalledProcessError):
            print("warning: cannot tell the commit of %s" % path, file=sys.stderr)
        return path
    tar = subprocess.check_output(["git", "--git-dir", path, "archive", "--format=tar", PINNED] + NEEDED)
    tmp = tempfile.mkdtemp(prefix="acebench-")
    with tarfile.open(fileobj=io.BytesIO(tar)) as t:
        t.extractall(tmp)
    return tmp


def load_official(root):
    # pandas and openpyxl are imported by evaluation_helper for the Excel report only.
    pd = types.ModuleType("pandas")
    pd.DataFrame = pd.read_excel = pd.concat = lambda *a, **k: None
    ox = types.ModuleType("openpyxl")
    ox.Workbook = lambda *a, **k: None
    oxs = types.ModuleType("openpyxl.styles")
    oxs.Alignment = lambda *a, **k: None
    ox.styles = oxs
    sys.modules.setdefault("pandas", pd)
    sys.modules.setdefault("openpyxl", ox)
    sys.modules.setdefault("openpyxl.styles", oxs)
    sys.path.insert(0, root)
    import eval_main  # noqa: E402

    kept = {}

    def keep(filename, data, subdir=None):
        kept["rows"] = copy.deepcopy(data)

    eval_main.save_score_as_json = keep
    eval_main.convert_result_to_excel = lambda *a, **k: None
    eval_main.OUTPUT_PATH = tempfile.mkdtemp(prefix="acebench-score-")
    return eval_main, kept


def verdict(em, kept, category, question, answer, output):
    kept.clear()
    prompt = [copy.deepcopy(question)]
    possible = [copy.deepcopy(answer)]
    result = [{"id": question["id"], "result": output}]
    try:
        if category.startswith("special"):
            acc = em.special_eval(result, prompt, possible, category, "toolrl", {})
        elif category.startswith("normal_multi_turn"):
            acc = em.normal_multi_turn_eval(result, prompt, possible, category, "toolrl", {})
        else:
            acc = em.normal_single_turn_eval(result, prompt, possible, category, "toolrl", {})
    except Exception as ex:  # the official code raised: our checker must report an error
        return None, "exception:" + type(ex).__name__
    valid = acc == 1
    etype = ""
    if not valid:
        errs = [r for r in kept.get("rows", [])[1:] if isinstance(r, dict) and "error_type" in r]
        etype = errs[0]["error_type"] if errs else ""
    return valid, etype


# ---- candidates ------------------------------------------------------------------------------

def strip_suffix(name):
    import re
    return re.sub(r"_\d+$", "", name)


def render(calls):
    """[Name(k=repr(v), ...), ...] from [(name, {k: v})]."""
    parts = []
    for name, args in calls:
        parts.append("%s(%s)" % (name, ", ".join("%s=%r" % (k, v) for k, v in args.items())))
    return "[" + ", ".join(parts) + "]"


def gold_calls(gt):
    return [(strip_suffix(k), copy.deepcopy(v)) for k, v in gt.items()]


def schema_of(functions, name):
    for f in functions:
        if f.get("name") == name:
            return f.get("parameters") or {}
    return {}


def mutate(v, rng):
    if isinstance(v, bool):
        return not v
    if isinstance(v, int):
        return v + rng.choice([1, -3, 100])
    if isinstance(v, float):
        return v + 1.5
    if isinstance(v, str):
        return "zz" + v if rng.random() < 0.5 else v[: len(v) // 2] + "qq"
    if isinstance(v, list):
        return v + [v[0]] if v else ["zz"]
    if isinstance(v, dict):
        w = dict(v)
        w["zz_extra"] = 1
        return w
    return "zz"


def wrong_type(v):
    if isinstance(v, bool):
        return "yes" if v else "no"
    if isinstance(v, (int, float)):
        return str(v)
    if isinstance(v, str):
        return 12345
    if isinstance(v, (list, dict)):
        return json.dumps(v)
    return 0


def shout(v):
    if isinstance(v, str):
        return v.upper().replace(" ", "-") + "."
    if isinstance(v, list):
        return [shout(x) for x in v]
    return v


def picks(calls, pred):
    return [(i, k) for i, (_, a) in enumerate(calls) for k, v in a.items() if pred(k, v)]


def normal_candidates(question, gt, rng):
    alts = gt if isinstance(gt, list) else [gt]
    base = gold_calls(alts[0])
    out = [("gold", render(base))]
    for j, alt in enumerate(alts[1:], 1):
        out.append(("gold_alt%d" % j, render(gold_calls(alt))))
    funcs = question["function"]
    pool = []

    def add(name, calls):
        pool.append((name, render(calls)))

    def variant(pred, change, name):
        c = copy.deepcopy(base)
        p = picks(c, pred)
        if p:
            i, k = rng.choice(p)
            change(c[i][1], k)
            add(name, c)

    variant(lambda k, v: True, lambda a, k: a.__setitem__(k, mutate(a[k], rng)), "wrong_value")
    variant(lambda k, v: isinstance(v, str), lambda a, k: a.__setitem__(k, mutate(a[k], rng)), "wrong_string")
    variant(lambda k, v: True, lambda a, k: a.__setitem__(k, wrong_type(a[k])), "wrong_type")
    req = lambda i: set(schema_of(funcs, base[i][0]).get("required", []))  # noqa: E731
    c = copy.deepcopy(base)
    p = [(i, k) for i, (_, a) in enumerate(c) for k in a if k in req(i)]
    if p:
        i, k = rng.choice(p)
        del c[i][1][k]
        add("missing_required", c)
    c = copy.deepcopy(base)
    p = [(i, k) for i, (_, a) in enumerate(c) for k in a if k not in req(i)]
    if p:
        i, k = rng.choice(p)
        del c[i][1][k]
        add("missing_optional", c)
    c = copy.deepcopy(base)
    c[rng.randrange(len(c))][1]["zz_unexpected"] = 1
    add("extra_param", c)
    c = copy.deepcopy(base)
    i = rng.randrange(len(c))
    c[i] = (c[i][0] + "_x", c[i][1])
    add("wrong_function", c)
    c = copy.deepcopy(base)
    i = rng.randrange(len(c))
    c[i] = (c[i][0], {})
    add("no_arguments", c)
    if len(base) > 1:
        c = copy.deepcopy(base)
        del c[rng.randrange(len(c))]
        add("missing_call", c)
        add("reordered_calls", list(reversed(copy.deepcopy(base))))
    c = copy.deepcopy(base)
    c.append(copy.deepcopy(c[0]))
    add("extra_call", c)
    variant(lambda k, v: isinstance(v, float) and v == int(v) and abs(v) < 1e15,
            lambda a, k: a.__setitem__(k, int(a[k])), "int_for_float")
    variant(lambda k, v: isinstance(v, int) and not isinstance(v, bool),
            lambda a, k: a.__setitem__(k, float(a[k])), "float_for_int")
    variant(lambda k, v: isinstance(v, bool), lambda a, k: a.__setitem__(k, "true" if a[k] else "false"),
            "bool_as_string")
    variant(lambda k, v: isinstance(v, list) and v, lambda a, k: a.__setitem__(k, a[k][:-1]), "list_shorter")
    variant(lambda k, v: isinstance(v, list) and len(v) > 1, lambda a, k: a.__setitem__(k, a[k][::-1]),
            "list_reversed")

    def dict_drop(a, k):
        kk = rng.choice(list(a[k]))
        del a[k][kk]

    def dict_change(a, k):
        kk = rng.choice(list(a[k]))
        a[k][kk] = mutate(a[k][kk], rng)

    def dict_shout(a, k):
        for kk, vv in a[k].items():
            a[k][kk] = shout(vv)

    variant(lambda k, v: isinstance(v, dict) and v, dict_drop, "dict_missing_key")
    variant(lambda k, v: isinstance(v, dict) and v, dict_change, "dict_wrong_value")
    variant(lambda k, v: isinstance(v, dict) and v, dict_shout, "dict_shouted")
    rng.shuffle(pool)
    out.extend(pool[:5])
    # the string rules on every row that has a string: case and punctuation, and the substring
    c = copy.deepcopy(base)
    p = picks(c, lambda k, v: isinstance(v, str) or (isinstance(v, list) and any(isinstance(x, str) for x in v)))
    if p:
        i, k = rng.choice(p)
        c[i][1][k] = shout(c[i][1][k])
        out.append(("shouted_string", render(c)))
    c = copy.deepcopy(base)
    p = picks(c, lambda k, v: isinstance(v, str) and v)
    if p:
        i, k = rng.choice(p)
        c[i][1][k] = "about " + c[i][1][k] + " please"
        out.append(("string_superstring", render(c)))
    if rng.random() < 0.1:
        out.append(rng.choice(MALFORMED))
    return out


MALFORMED = [
    ("text", "I cannot help with that."), ("empty_list", "[]"), ("bare_call", "f(a=1)"),
    ("unclosed", "[f(a=1)"), ("not_a_call", "[1, 2]"), ("empty", ""),
]


def special_candidates(category, question, gt, rng):
    def fn0():
        f = question["function"]
        return f[0]["name"] if f else "f"

    tooln1 = ("tooln1_call", "<think>I can call it.</think>\n<tool_call>\n[{\"name\": \"%s\", \"arguments\": {}}]\n"
              "</tool_call>" % fn0())
    prose = ("prose", "<think>Something is wrong with the request.</think>\nCould you give me more details?")
    out = []
    if category == "special_irrelevant":
        out += [("phrase", '["Due to the limitations of the function, I cannot solve this problem."]'),
                ("phrase_bare", "the limitations of the function"),
                ("phrase_singular", "Due to the limitation of the function, I cannot solve this problem."),
                ("phrase_capitalised", "Due to The Limitations of the Function, I cannot solve this problem.")]
    elif category == "special_incomplete":
        (name, params), = list(gt.items())[:1]
        out.append(("phrase", '["Missing necessary parameters (%s) for the api (%s)"]' % (", ".join(params), name)))
        if len(params) > 1:
            out.append(("phrase_one_param_left_out",
                        "Missing necessary parameters (%s) for the api (%s)" % (", ".join(params[1:]), name)))
        out.append(("phrase_stripped_params", "Missing necessary parameters (%s) for the api (%s)" %
                    (", ".join(p.strip() for p in params), name)))
        out.append(("phrase_wrong_api", "Missing necessary parameters (%s) for the api (%s)" %
                    (", ".join(params), name[: len(name) // 2] + "X")))
        out.append(("no_phrase", "I need %s for %s." % (", ".join(params), name)))
        out.append(("phrase_lowercase", "missing necessary parameters (%s) for the api (%s)" % (", ".join(params), name)))
    else:
        keys = list(gt)
        vals = [v for k in keys for v in gt[k]]
        out.append(("phrase", '["There is incorrect value (%s) for the parameters (%s) in the conversation history."]'
                    % (", ".join(str(v) for v in vals), ", ".join(keys))))
        out.append(("phrase_no_value", "There is incorrect value for the parameters (%s)." % ", ".join(keys)))
        out.append(("value_no_phrase", "The value %s looks wrong." % ", ".join(str(v) for v in vals)))
        if vals and isinstance(vals[0], str) and len(vals[0]) > 1:
            out.append(("phrase_changed_value", "There is incorrect value (%s) for the parameters (%s)."
                        % (vals[0].upper() if vals[0].upper() != vals[0] else vals[0][1:], ", ".join(keys))))
    out += [prose, tooln1]
    rng.shuffle(out)
    return out


def load_jsonl(path):
    with open(path, encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("acebench", help="ACEBench checkout or bare git directory (commit %s)" % PINNED)
    ap.add_argument("--shared", default=os.environ.get("TOOLRL_SHARED", "../shared"))
    ap.add_argument("--out", default="tests/fixtures/acebench_verdicts.jsonl")
    ap.add_argument("--seed", type=int, default=20250501)
    args = ap.parse_args()
    out_path = os.path.abspath(args.out)
    data_dir = os.path.abspath(os.path.join(args.shared, "data", "acebench"))
    root = official_root(os.path.abspath(args.acebench))
    em, kept = load_official(root)
    os.chdir(root)

    rng = random.Random(args.seed)
    rows, stats = [], {}
    for cat in NORMAL + MULTI_TURN + SPECIAL:
        qs = load_jsonl(os.path.join(data_dir, "data_en", "data_%s.json" % cat))
        ans = load_jsonl(os.path.join(data_dir, "possible_answer_en", "data_%s.json" % cat))
        assert [q["id"] for q in qs] == [a["id"] for a in ans], cat
        for q, a in zip(qs, ans):
            gt = a["ground_truth"]
            cands = special_candidates(cat, q, gt, rng) if cat in SPECIAL else normal_candidates(q, gt, rng)
            for variant, output in cands:
                valid, etype = verdict(em, kept, cat, q, a, output)
                rows.append({"category": cat, "id": q["id"], "variant": variant, "output": output,
                             "valid": valid, "error_type": etype})
                s = stats.setdefault(cat, [0, 0, 0])
                s[0] += 1
                s[1] += valid is True
                s[2] += valid is None
    os.makedirs(os.path.dirname(out_path) or ".", exist_ok=True)
    with open(out_path, "w", encoding="utf-8") as f:
        for r in rows:
            f.write(json.dumps(r, ensure_ascii=False) + "\n")
    print("wrote %d candidates to %s" % (len(rows), out_path))
    for cat, (n, v, x) in stats.items():
        print("  %-40s %5d candidates, %4d valid, %d raised" % (cat, n, v, x))


if __name__ == "__main__":
    main()
