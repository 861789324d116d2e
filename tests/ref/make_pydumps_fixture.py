#!/usr/bin/env python3
"""make_pydumps_fixture.py: writes tests/fixtures/pydumps.jsonl, the reference for how tool-call
JSON must print in prompts and SFT targets. Each case is a JSON text as a client or a training
file would send it, and what Python's json.dumps prints for it (the Tool-N1 pipeline's writer):
  kind "tool":   input is one function {name, description, parameters}; expected is
                 json.dumps({"type": "function", "function": tool}), the tool's line in <tools>.
  kind "answer": input is a call list [{name, arguments}]; expected is json.dumps(calls), what
                 goes between <tool_call> and </tool_call> in an SFT target or a history turn.
Run: python3 tests/ref/make_pydumps_fixture.py > tests/fixtures/pydumps.jsonl
"""
import json
import sys


def tool(name, params, desc="d"):
    return '{"name": "%s", "description": %s, "parameters": %s}' % (name, json.dumps(desc), params)


TOOLS = [
    # floats that a naive printer gets wrong
    tool("floats", '{"type": "object", "properties": {"x": {"type": "number", "default": 1.0, "minimum": 0.1,'
                   ' "maximum": 1e16, "multipleOf": 1e-05, "examples": [2.50, 100.0, -0.0, 1E5, 3.14159265358979,'
                   ' 0.000001, 1.5e300, 123456789.125, 5e-324]}}}'),
    # ints, including ones beyond 64 bits and -0
    tool("ints", '{"type": "object", "properties": {"n": {"type": "integer", "default": 0, "minimum": -5,'
                 ' "maximum": 12345678901234567890123, "enum": [1, 2, -0, 10]}}, "required": ["n"]}'),
    # unicode: non-ASCII, astral plane, escapes in the input, control characters, DEL
    tool("unicode", '{"type": "object", "properties": {"city": {"type": "string", "description":'
                    ' "Ville \\u00e9t\\u00e9 \u65e5\u672c \U0001F600 tab\\tnl\\n \\"q\\" back\\\\slash \\u0001 \x7f"}}}',
         desc="caf\u00e9 \u2014 r\u00e9sum\u00e9"),
    # nested: arrays of objects, enums of mixed scalars, null, booleans, empty containers
    tool("nested", '{"type": "dict", "properties": {"opts": {"type": "array", "items": {"type": "object",'
                   ' "properties": {"k": {"type": "string", "enum": ["a", "b"]}, "w": {"type": "float",'
                   ' "default": 0.5}}}}, "flag": {"type": "boolean", "default": false}, "none": {"default": null},'
                   ' "e": {}, "l": []}, "required": []}'),
    # a duplicate key (json.loads keeps the last value at the first key's place)
    tool("dupkey", '{"type": "object", "properties": {"a": {"type": "number", "default": 1}, "a": {"type": "number",'
                   ' "default": 2.0}}}'),
]

ANSWERS = [
    '[{"name": "f", "arguments": {"x": 1.0, "y": 0.1, "z": 1, "big": 1e16, "small": 1e-05}}]',
    '[{"name": "g", "arguments": {"city": "S\\u00e3o Paulo", "emoji": "\U0001F600", "nested": {"l": [1, 2.0, "3"],'
    ' "t": true, "n": null}}}, {"name": "h", "arguments": {}}]',
    '[]',
]


def main():
    out = sys.stdout
    for t in TOOLS:
        v = json.loads(t)
        out.write(json.dumps({"kind": "tool", "input": t,
                              "expected": json.dumps({"type": "function", "function": v})}) + "\n")
    for a in ANSWERS:
        out.write(json.dumps({"kind": "answer", "input": a, "expected": json.dumps(json.loads(a))}) + "\n")


if __name__ == "__main__":
    main()
