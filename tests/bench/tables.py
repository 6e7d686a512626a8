#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0-or-later
"""The deterministic tables of BENCHMARKS.md, regenerated from the code.

BENCHMARKS.md marks each such table with a pair of HTML comments:

    <!-- bench:NAME begin: COMMAND -->
    ...table, exactly what COMMAND prints...
    <!-- bench:NAME end -->

where COMMAND runs a build-tree program (its path relative to the build directory) whose
output depends only on the code, never on the machine or the time (the modelled co-run,
test-churn's re-moves).

    tables.py BUILD_DIR BENCHMARKS_MD print    # every table as the code prints it now
    tables.py BUILD_DIR BENCHMARKS_MD check    # exit 1, with a diff, if BENCHMARKS.md differs
    tables.py BUILD_DIR BENCHMARKS_MD update   # rewrite the tables in BENCHMARKS.md

`scripts/bench` wraps this (setup, build, print or --update); the unit suite runs `check`, so
a change that moves a figure must regenerate the table in the same commit.
"""
import difflib
import os
import re
import shlex
import subprocess
import sys

BLOCK = re.compile(r"(<!-- bench:(?P<name>[\w.-]+) begin: (?P<cmd>.+?) -->\n)"
                   r"(?P<body>.*?)"
                   r"(<!-- bench:(?P=name) end -->)", re.S)


def run(build_dir, cmd):
    argv = shlex.split(cmd)
    argv[0] = os.path.join(build_dir, argv[0])
    out = subprocess.run(argv, check=True, capture_output=True, text=True).stdout
    # The table is the Markdown part of the output plus its key=value lines.
    # (a TAP test prints them as comments: `# |...` and `# key=value`, taken without the `# `)
    lines = [l[2:] if l.startswith("# |") or re.match(r"^# \w+=", l) else l
             for l in out.splitlines()]
    lines = [l for l in lines if l.startswith("|") or re.match(r"^\w+=", l)]
    if not lines:
        raise SystemExit(f"tables.py: '{cmd}' printed no table")
    return "\n".join(lines) + "\n"


def main():
    if len(sys.argv) != 4 or sys.argv[3] not in ("print", "check", "update"):
        raise SystemExit(__doc__)
    build_dir, path, mode = sys.argv[1:]
    with open(path) as f:
        text = f.read()
    blocks = list(BLOCK.finditer(text))
    if not blocks:
        raise SystemExit(f"tables.py: no '<!-- bench:NAME begin: COMMAND -->' block in {path}")
    new_text, pos, stale = [], 0, []
    for m in blocks:
        fresh = run(build_dir, m["cmd"])
        if mode == "print":
            print(f"{m['name']} ({m['cmd']}):\n{fresh}")
        if fresh != m["body"]:
            stale.append((m["name"], m["cmd"], m["body"], fresh))
        new_text += [text[pos:m.start("body")], fresh]
        pos = m.end("body")
    new_text.append(text[pos:])
    if mode == "update":
        with open(path, "w") as f:
            f.write("".join(new_text))
        print(f"tables.py: {len(stale)} of {len(blocks)} table(s) rewritten in {path}")
        return 0
    if mode == "check":
        for name, cmd, old, fresh in stale:
            sys.stdout.writelines(difflib.unified_diff(
                old.splitlines(True), fresh.splitlines(True),
                f"BENCHMARKS.md ({name})", f"what the code prints now: {cmd}"))
        if stale:
            print(f"tables.py: {len(stale)} table(s) of BENCHMARKS.md differ from what the code "
                  "prints; run `scripts/bench --update` and commit the tables with the change")
            return 1
        print(f"tables.py: all {len(blocks)} deterministic table(s) of BENCHMARKS.md match")
    return 0


if __name__ == "__main__":
    sys.exit(main())
