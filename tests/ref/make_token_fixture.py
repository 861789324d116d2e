#!/usr/bin/env python3
"""Reference token ids for the C tokenizer (model/tokenizer.c), from llama.cpp.

The peer is llama.cpp's tokenizer as shipped by the PyPI package `llama-cpp-python`
(vocab_only model, so nothing but the tokenizer is loaded).  Regenerate with:

    python3 -m venv /tmp/refenv
    CMAKE_ARGS="-DGGML_NATIVE=ON" /tmp/refenv/bin/pip install llama-cpp-python tokenizers
    /tmp/refenv/bin/python tests/ref/make_token_fixture.py          # from the repo root
    /tmp/refenv/bin/python tests/ref/make_token_fixture.py --hf     # also cross-check HF tokenizers

Inputs: models/SmolLM2-135M-Instruct.Q4_1.gguf and $TOOLRL_SHARED/data/bfcl/*.json
(TOOLRL_SHARED defaults to ../shared).  Texts, in this order (tests/test_tokenizer.c walks
them the same way): files sorted by name; each JSONL row in file order; first every
user/system message content of every turn of "question" (turn order, message order), then
the "description" of every entry of "function".  Texts are UTF-8 encoded; a text already
seen (same bytes) is skipped, so each line holds one distinct text.

Output (committed): tests/fixtures/tokens_bfcl.txt, tab-separated lines:

    T <fnv1a64 of the text bytes, 16 hex> <byte length> <source key> <ids, space-separated>
    P <S|N> <text as a JSON string> <ids>
    Q <pre> <S|N> <text as a JSON string> <ids>

T lines: BFCL texts tokenized with special=False (the C side: parse_special=0).
P lines: extra prompts (ChatML prompts built from BFCL rows, edge cases); S = special=True
(parse_special=1), N = special=False.
Q lines: the other pre-tokenizers, with SmolLM2's vocab: a vocab-only GGUF with the same
tokenizer.ggml.* arrays and tokenizer.ggml.pre = <pre> (gpt-2, qwen2, llama-bpe) is written to
a temp dir and tokenized by llama.cpp; the C test builds the same GGUF in memory.  Texts: the
edge cases, seeded random strings and the first distinct BFCL texts.  The random strings
avoid code points assigned after Unicode 14 (PCRE2 10.42's tables; llama.cpp's are newer).
No BOS is added anywhere.  Lines starting with '#' are comments.
"""
import argparse
import glob
import json
import os
import random
import sys

FNV_OFF = 0xCBF29CE484222325
FNV_PRIME = 0x100000001B3


def fnv1a64(b: bytes) -> int:
    h = FNV_OFF
    for c in b:
        h ^= c
        h = (h * FNV_PRIME) & 0xFFFFFFFFFFFFFFFF
    return h


def bfcl_texts(data_dir):
    """Yields (key, text bytes) in the documented order, duplicates included."""
    for path in sorted(glob.glob(os.path.join(data_dir, "*.json"))):
        name = os.path.basename(path)
        with open(path, encoding="utf-8") as f:
            row_i = -1
            for line in f:
                if not line.strip():
                    continue
                row_i += 1
                row = json.loads(line)
                for ti, turn in enumerate(row.get("question", [])):
                    for mi, m in enumerate(turn):
                        if m.get("role") in ("user", "system") and isinstance(m.get("content"), str):
                            yield f"{name}:{row_i}:q{ti}.{mi}", m["content"].encode("utf-8")
                for fi, fn in enumerate(row.get("function", [])):
                    if isinstance(fn.get("description"), str):
                        yield f"{name}:{row_i}:f{fi}", fn["description"].encode("utf-8")


def chatml(messages, add_generation_prompt=True):
    out = ""
    for i, m in enumerate(messages):
        if i == 0 and m["role"] != "system":
            out += ("<|im_start|>system\nYou are a helpful AI assistant named SmolLM, "
                    "trained by Hugging Face<|im_end|>\n")
        out += "<|im_start|>" + m["role"] + "\n" + m["content"] + "<|im_end|>\n"
    if add_generation_prompt:
        out += "<|im_start|>assistant\n"
    return out


EDGE_SPECIAL = [
    "<|im_start|><|im_end|>",
    "<|im_start|",
    "x<|endoftext|>y<|endoftext|>",
    "<reponame>foo<filename>bar.py<file_sep>",
    "<|im_start|>  \n\n<|im_end|>  ",
    "<|im_start|>user\n<empty_output><|im_end|><|im_end|>",
    "<<|im_start|>>|im_end|>",
]

EDGE_PLAIN = [
    "<|im_start|>user\nhi<|im_end|>",
    "a 12",
    "a  \t\n  b   ",
    "   ",
    "\n\n\nHi\n\n",
    "line1\r\nline2\r\n\r\n",
    "x123456 7.5e10 \u0661\u0662\u0663 \u00bd \u2163",
    "naïve café 日本語のテキスト 🙂👍🏽 Ünïcödé",
    "a\u00a0b a\u0085b a\u3000b a\u2028b a\u2009\u2009b",
    "x \u0085\u0085 y\u0085 z\u0085\u0085!\u0085 \u0085 x\u0085's y\u0085'll",
    "x \u00a0\u00a0 y\u3000 z\u2028\u2028!\u1680 \u205f",
    # each of llama.cpp's whitespace code points before a contraction (only \s lets "'s" split off)
    "".join(f"a{c}'s " for c in "\t\n\x0b\x0c\r\u0085\u00a0\u1680\u2000\u2001\u2002\u2003\u2004\u2005\u2006"
            "\u2007\u2008\u2009\u200a\u2028\u2029\u202f\u205f\u3000\u180e\u200b\ufeff\x1c\x1d\x1e\x1f"),
    "I'll don't we've THEY'RE it's 'S 'sa",
    "e\u0301 \u0915\u093f \u05e9\u05b8\u05c1",
    "\tHi (Hi) [x] {\"a\": 1}",
    "def f(x):\n    return x  # comment\n\n\n    pass\n",
    "https://example.com/a?b=c&d=e#f",
    "ﬁ ℌ 𝔘𝔫𝔦 ＡＢＣ１２３",
    "",
]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default="models/SmolLM2-135M-Instruct.Q4_1.gguf")
    ap.add_argument("--shared", default=os.environ.get("TOOLRL_SHARED", "../shared"))
    ap.add_argument("--out", default="tests/fixtures/tokens_bfcl.txt")
    ap.add_argument("--hf", action="store_true", help="also compare HF tokenizers built from the GGUF vocab")
    args = ap.parse_args()

    import llama_cpp

    llm = llama_cpp.Llama(model_path=args.model, vocab_only=True, verbose=False)
    data_dir = os.path.join(args.shared, "data", "bfcl")

    lines = [
        "# tokens_bfcl.txt: llama.cpp token ids for SmolLM2-135M-Instruct (tests/test_tokenizer.c).",
        f"# generated by tests/ref/make_token_fixture.py with llama-cpp-python {llama_cpp.__version__};"
        " see that script for the format.",
    ]
    seen = set()
    n_all = n_uniq = 0
    uniq_texts = []
    for key, text in bfcl_texts(data_dir):
        n_all += 1
        if text in seen:
            continue
        seen.add(text)
        n_uniq += 1
        ids = llm.tokenize(text, add_bos=False, special=False)
        uniq_texts.append(text)
        lines.append("\t".join(["T", f"{fnv1a64(text):016x}", str(len(text)), key, " ".join(map(str, ids))]))

    # ChatML prompts from the first rows of a few files, with the functions as JSON in the system turn.
    prompts = []
    for path in sorted(glob.glob(os.path.join(data_dir, "*.json")))[:4]:
        with open(path, encoding="utf-8") as f:
            for i, line in enumerate(f):
                if i >= 2:
                    break
                row = json.loads(line)
                msgs = [{"role": "system", "content": "You can call these functions:\n" +
                         json.dumps(row["function"], ensure_ascii=False)}]
                msgs += [m for m in row["question"][0] if m["role"] in ("user", "system")]
                prompts.append(("S", chatml(msgs)))
    prompts.append(("S", chatml([{"role": "user", "content": "What's 2+2?"}])))
    prompts += [("S", s) for s in EDGE_SPECIAL] + [("N", s) for s in EDGE_PLAIN]
    for flag, text in prompts:
        ids = llm.tokenize(text.encode("utf-8"), add_bos=False, special=(flag == "S"))
        lines.append("\t".join(["P", flag, json.dumps(text, ensure_ascii=True), " ".join(map(str, ids))]))

    lines += other_pre_lines(args.model, uniq_texts[:60])

    with open(args.out, "w", encoding="utf-8", newline="\n") as f:
        f.write("\n".join(lines) + "\n")
    print(f"{args.out}: {n_all} texts, {n_uniq} distinct, {len(prompts)} prompts, "
          f"{os.path.getsize(args.out)} bytes")

    if args.hf:
        hf_check(args.model, llm, uniq_texts + [p[1].encode() for p in prompts if p[0] == "N"])


POOLS = [
    [chr(c) for c in range(32, 127)] + ["\n", "\t", "\r", "\r\n", "\n\n", "  ", " \n", "'s", "'ll", "'T",
                                        "'Re", "123456"],
    ["\u0085", "\u00a0", "\u1680", "\u2000", "\u2005", "\u200a", "\u2028", "\u2029", "\u202f", "\u205f",
     "\u3000", "\u180e", "\ufeff", "\u200b", "\x0b", "\x0c", "\x1c", "\x1f"],
    list("éüßøłñçЖжΩωאבعربي한국어日本語ひらがなカタカナ") + ["\u0915", "\u093f", "\u0e01", "\u10d0"],
    list("0123456789") + ["\u0660", "\u0969", "\u00bd", "\u2163", "\u2460", "\uff11", "\U0001d7ce", "\u00b2"],
    ["\u0301", "\u0308", "\u093e", "\u05b8", "\u20dd", "\ufe0f", "\u200d"],
    list("€£¥©®™°±×÷→←∑∞≠≤≥") + ["🙂", "👍🏽", "🇺🇸", "👨‍👩‍👧"],
]


def random_texts(n, seed):
    rnd = random.Random(seed)
    out = []
    for _ in range(n):
        pools = rnd.sample(POOLS, rnd.randint(1, 3))
        out.append("".join(rnd.choice(rnd.choice(pools)) for _ in range(rnd.randint(1, 40))))
    return out


def other_pre_lines(model_path, bfcl_head):
    import tempfile

    import gguf
    import llama_cpp

    r = gguf.GGUFReader(model_path)
    f = r.fields
    texts = [("N", s) for s in EDGE_PLAIN] + [("S", s) for s in EDGE_SPECIAL]
    texts += [("N", s) for s in random_texts(150, 1)] + [("S", s) for s in random_texts(30, 2)]
    texts += [("N", b.decode("utf-8")) for b in bfcl_head]
    lines = []
    with tempfile.TemporaryDirectory() as tmp:
        for pre in ("gpt-2", "qwen2", "llama-bpe"):
            path = os.path.join(tmp, f"vocab_{pre}.gguf")
            w = gguf.GGUFWriter(path, "llama")
            for k in ("llama.context_length", "llama.embedding_length", "llama.block_count",
                      "llama.feed_forward_length", "llama.attention.head_count", "llama.attention.head_count_kv",
                      "llama.rope.freq_base", "llama.attention.layer_norm_rms_epsilon", "llama.vocab_size",
                      "llama.rope.dimension_count"):
                if k in f:
                    w.add_key_value(k, f[k].contents(), f[k].types[0])
            w.add_tokenizer_model("gpt2")
            w.add_tokenizer_pre(pre)
            w.add_token_list(f["tokenizer.ggml.tokens"].contents())
            w.add_token_types(f["tokenizer.ggml.token_type"].contents())
            w.add_token_merges(f["tokenizer.ggml.merges"].contents())
            w.add_bos_token_id(1)
            w.add_eos_token_id(2)
            w.add_add_bos_token(False)
            w.write_header_to_file()
            w.write_kv_data_to_file()
            w.write_tensors_to_file()
            w.close()
            llm = llama_cpp.Llama(model_path=path, vocab_only=True, verbose=False)
            for flag, text in texts:
                ids = llm.tokenize(text.encode("utf-8"), add_bos=False, special=(flag == "S"))
                lines.append("\t".join(["Q", pre, flag, json.dumps(text, ensure_ascii=True), " ".join(map(str, ids))]))
            del llm
    return lines


def hf_check(model_path, llm, texts):
    """Builds an HF tokenizers BPE from the GGUF vocab with SmolLM's pre-tokenizer and compares."""
    import gguf
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers

    r = gguf.GGUFReader(model_path)
    toks = r.fields["tokenizer.ggml.tokens"].contents()
    merges = [tuple(m.split(" ", 1)) for m in r.fields["tokenizer.ggml.merges"].contents()]
    tk = Tokenizer(models.BPE({t: i for i, t in enumerate(toks)}, merges))
    tk.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Digits(individual_digits=True),
        pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)])
    tk.decoder = decoders.ByteLevel()
    bad = 0
    for t in texts:
        a = llm.tokenize(t, add_bos=False, special=False)
        b = tk.encode(t.decode("utf-8"), add_special_tokens=False).ids
        if a != b:
            bad += 1
            if bad <= 5:
                print("HF differs:", repr(t[:80]), a[:20], b[:20], file=sys.stderr)
    print(f"HF tokenizers vs llama.cpp: {len(texts) - bad}/{len(texts)} identical")


if __name__ == "__main__":
    main()
