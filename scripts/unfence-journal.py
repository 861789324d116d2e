#!/usr/bin/env python3
"""unfence-journal.py IN OUT: a copy of a `toolrl eval --journal` file in which every reply's
```json ... ``` fence is rewritten as <tool_call> ... </tool_call> (the Hermes tool-call tags),
and nothing else. Scoring the copy (`toolrl eval` with the same options and --journal OUT: every
example is in the journal, so nothing is generated) measures what a model knows apart from the
wrapper it writes: the README's "only the fence rewritten" figures."""
import json
import re
import sys

FENCE = re.compile(r"```json\s*\n(.*?)\n\s*```", re.S)


def main(argv):
    if len(argv) != 3 or argv[1] in ("-h", "--help"):
        print(__doc__)
        return 0 if len(argv) > 1 and argv[1] in ("-h", "--help") else 2
    n = changed = 0
    with open(argv[1]) as f, open(argv[2], "w") as out:
        for i, line in enumerate(f):
            row = json.loads(line)
            if i and "output" in row:
                new = FENCE.sub(lambda m: "<tool_call>\n" + m.group(1) + "\n</tool_call>", row["output"])
                changed += new != row["output"]
                row["output"] = new
                n += 1
            out.write(json.dumps(row) + "\n")
    print(f"{changed} of {n} replies rewritten", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
