#!/usr/bin/env python3
"""The shared-memory ABI has one definition, include/hmmv/shm-abi.h; the QEMU patch series
(QEMU 10.0, qemu-patches/10.0/, the one supported version) carries a copy at the same path
inside QEMU's tree. Fail (exit 1, with a diff) when the copy
in the series differs from the definition by a single byte."""
import difflib
import pathlib
import re
import sys

top = pathlib.Path(sys.argv[1])
target = "include/hmmv/shm-abi.h"
definition = (top / target).read_text()

def copies_in(series_dir):
    """The copies of target that the series in series_dir adds, as (patch name, text)."""
    copies = []
    for name in [l.split("#")[0].strip() for l in (series_dir / "series").read_text().splitlines()]:
        if not name:
            continue
        lines = (series_dir / name).read_text().split("\n")
        i = 0
        while i < len(lines):
            if lines[i] == f"+++ b/{target}":
                hunk = re.match(r"@@ -0,0 \+1(?:,(\d+))? @@", lines[i + 1])
                if not hunk:
                    sys.exit(f"{name}: {target} is not added as a new file in one hunk")
                count = int(hunk.group(1) or 1)
                body = lines[i + 2:i + 2 + count]
                if any(not line.startswith("+") for line in body):
                    sys.exit(f"{name}: the hunk adding {target} is malformed")
                copies.append((name, "".join(line[1:] + "\n" for line in body)))
                i += 2 + count
            else:
                i += 1
    return copies


# The series: QEMU 10.0 (qemu-patches/10.0/; 7.2's, qemu-patches/, was retired on 2026-12-03).
failed = False
for series_dir in [top / "qemu-patches" / "10.0"]:
    if not (series_dir / "series").exists():
        sys.exit(f"{series_dir.relative_to(top)}/series: missing")
    copies = copies_in(series_dir)
    rel = series_dir.relative_to(top)
    if len(copies) != 1:
        sys.exit(f"{rel}: expected the series to add {target} exactly once, found {len(copies)}")
    name, copy = copies[0]
    if copy != definition:
        sys.stdout.writelines(difflib.unified_diff(definition.splitlines(True),
                                                   copy.splitlines(True), target,
                                                   f"{rel}/{name}:{target}"))
        print(f"{rel}/{name} carries a copy of {target} that differs from the definition")
        failed = True
    else:
        print(f"{target}: the copy in {rel}/{name} is identical ({len(copy)} bytes)")
sys.exit(1 if failed else 0)
